"""ReLU, ``max(x, 0)``, and per-channel sums: two one-line ops with a fast and a slow NumPy spelling.

Both are single passes over memory, so their speed is that of NumPy's inner loop, and
NumPy has fast (SIMD) inner loops only for some operand layouts. Measured on the
project's 2-core test machine (NumPy 2.4, 8 x 64 x 16 x 16 float32, median of 400 calls):

* ``np.maximum(x, 0)`` compares every element with a *scalar*, a layout NumPy's maximum
  has no vectorised loop for: 49 us. ``np.maximum(x, zeros)``, with an array of zeros as
  long as one image, runs the contiguous-contiguous loop: 18 us, the speed of a copy.
  The zeros come from one read-only buffer kept per dtype (:func:`zeros_like_image`).
* ``x.sum(axis=(0, 2))`` of an ``(N, C, S)`` array (batch norm's per-channel sum)
  reduces over two separate axes: 38 us. ``np.einsum('ncs->c', x)`` sums each row of S
  values with a vectorised loop: 10 us. (A bias gradient's ``sum(axis=(0, 2, 3))``
  likewise: 36 -> 15 us.)

Same numbers either way: ``max(-0.0, 0)`` is ``+0.0`` and NaN propagates in both
spellings; the sums add in float32 like ``sum`` does (each row's S values pairwise in
NumPy's ``sum``, in vector lanes in einsum's -- both within float32 rounding of the exact
sum, which the tests check against PyTorch). On the GPU (CuPy) the plain spellings are
used: every layout is fast there.
"""
import numpy as np

from .. import backend

__all__ = ["relu", "channel_sum", "zeros_like_image"]

_ZEROS = {}                     # dtype -> a read-only 1-d array of zeros, grown as needed


def zeros_like_image(x):
    """A read-only array of zeros of shape ``x.shape[1:]`` (x's dtype), which broadcasts
    over x's first axis: a view of a buffer shared by every caller (CPU only)."""
    shape = x.shape[1:]
    size = int(np.prod(shape, dtype=np.int64))
    buf = _ZEROS.get(x.dtype)
    if buf is None or buf.size < size:
        buf = np.zeros(max(size, 1024), dtype=x.dtype)
        buf.flags.writeable = False
        _ZEROS[x.dtype] = buf
    return buf[:size].reshape(shape)


def relu(x, out=None):
    """``max(x, 0)`` element-wise, into ``out`` (may be ``x`` itself) or a new array."""
    xp = backend.array_module(x)
    if xp is not np or x.ndim == 0:
        return xp.maximum(x, 0, out=out)
    return np.maximum(x, zeros_like_image(x), out=out)


def channel_sum(x, axes):
    """``x.sum(axis=axes)`` for a float array, through einsum on the CPU (see above):
    the sum over every axis but the one left, e.g. ``axes=(0, 2)`` of an (N, C, S) array
    gives (C,)."""
    xp = backend.array_module(x)
    if xp is not np:
        return x.sum(axis=axes)
    letters = "abcdefghij"[:x.ndim]
    keep = "".join(c for i, c in enumerate(letters) if i not in axes)
    return np.einsum(f"{letters}->{keep}", x)
