"""Pooling on raw arrays: sliding windows (max, average) and adaptive bins.

All functions take an image batch of shape (N, C, H, W) and give (N, C, OH, OW).

**Sliding windows without building them.** A pooling window at output (oh, ow) covers
the padded input rows ``oh * s + i * d`` for kernel offsets ``i = 0..k-1`` (stride s,
dilation d), and the same for columns. Fix one offset (i, j): the values at that
offset in *every* window form one strided slice of the padded input::

    xpad[:, :, i*d : i*d + s*(OH-1) + 1 : s,  j*d : j*d + s*(OW-1) + 1 : s]   # (N, C, OH, OW)

So a pool is a loop over the ``k * k`` offsets with one whole-array operation each
(a running maximum, a running sum), and its backward adds the gradient back through
the same slices. No copy of the windows is made.

**Adaptive pooling** picks the windows from the output size instead: output ``i`` of
``out`` pools the input range ``[floor(i * in / out), ceil((i + 1) * in / out))``
(:func:`adaptive_bins`). Neighbouring bins overlap when ``out`` does not divide ``in``.
Adaptive *average* pooling is linear and separable, ``P_h @ x @ P_w.T`` with small
averaging matrices (:func:`adaptive_avg_weights`); adaptive *max* pooling gathers the
bins, padded to a common length by repeating their last index.
"""
from collections import namedtuple

import numpy as np

from .. import backend
from .interpolation import cached_matrix, separable_apply
from .threads import num_threads, parallel_for

#: Max pooling of at least this many input elements splits the batch over the threads
#: (measured on 2 cores: 8x64x64x64 forward 9.3 -> 3.9 ms, backward 15 -> 9 ms; at
#: 8x16x64x64 no gain, at 8x16x32x32 a loss: the hand-off costs more than it saves).
PARALLEL_MIN_ELEMENTS = 1 << 20


# ---------------------------------------------------------------------- geometry
def pool_output_size(in_size, kernel_size, stride, padding=0, dilation=1, ceil_mode=False):
    """Number of windows along one axis (PyTorch's formula).

    ``floor((in + 2p - d(k-1) - 1) / s) + 1``, or with ``ceil`` in ``ceil_mode``; in
    ``ceil_mode`` a last window that would *start* in the right padding (beyond
    ``in + p``) is dropped, so every window starts inside the input or the left padding.
    The result can be 0 or negative when the kernel does not fit; callers check.
    """
    span = dilation * (kernel_size - 1) + 1
    numerator = in_size + 2 * padding - span + (stride - 1 if ceil_mode else 0)
    out = numerator // stride + 1
    if ceil_mode and out > 0 and (out - 1) * stride >= in_size + padding:
        out -= 1
    return out


PoolGeometry = namedtuple("PoolGeometry", "in_size out_size padded_size kernel stride padding dilation")
PoolGeometry.__doc__ = """Where the windows of a 2-d pool lie; every field is an (h, w) pair.

``padded_size`` is the input size plus the left padding, plus whatever right padding
the last window reaches (with ``ceil_mode`` that can exceed ``padding``)."""


def pool_geometry(in_size, kernel_size, stride, padding=(0, 0), dilation=(1, 1), ceil_mode=False):
    """The :class:`PoolGeometry` of pooling an (H, W) image; all arguments are pairs."""
    out_size, padded = [], []
    for axis in range(2):
        n, k, s, p, d = (in_size[axis], kernel_size[axis], stride[axis], padding[axis],
                         dilation[axis])
        out = pool_output_size(n, k, s, p, d, ceil_mode)
        out_size.append(out)
        padded.append(max(p + n + p, (out - 1) * s + (k - 1) * d + 1))
    return PoolGeometry(tuple(in_size), tuple(out_size), tuple(padded), tuple(kernel_size),
                        tuple(stride), tuple(padding), tuple(dilation))


def offset_slice(geometry, axis, i):
    """The slice along ``axis`` (0 = rows, 1 = columns) of kernel offset ``i`` in every window."""
    start = i * geometry.dilation[axis]
    return slice(start, start + geometry.stride[axis] * (geometry.out_size[axis] - 1) + 1,
                 geometry.stride[axis])


def window_offsets(geometry):
    """``[(k, region)]`` for the kernel offsets in row-major order; ``xpad[region]`` is (N, C, OH, OW)."""
    kh, kw = geometry.kernel
    return [(i * kw + j, (Ellipsis, offset_slice(geometry, 0, i), offset_slice(geometry, 1, j)))
            for i in range(kh) for j in range(kw)]


def pad_input(x, geometry, value):
    """``x`` placed at (padding_h, padding_w) in a ``padded_size`` array filled with ``value``."""
    (h, w), (hp, wp), (ph, pw) = geometry.in_size, geometry.padded_size, geometry.padding
    if (hp, wp) == (h, w):
        return x
    xp = backend.array_module(x)
    out = xp.full(x.shape[:2] + (hp, wp), value, dtype=x.dtype)
    out[:, :, ph:ph + h, pw:pw + w] = x
    return out


def crop_padding(xpad, geometry):
    """The inverse of :func:`pad_input`: the (H, W) part of a padded array."""
    (h, w), (ph, pw) = geometry.in_size, geometry.padding
    return xpad[:, :, ph:ph + h, pw:pw + w]


# ---------------------------------------------------------------------- max pooling
def first_real_offset(geometry):
    """The (OH, OW) table of each window's first kernel offset that lies in the input.

    Windows at the border start in the padding; PyTorch starts every window's search
    at its first real element (``maxindex`` before any comparison), so a window whose
    real values are all ``-inf`` points there and not into the padding. Offsets before
    it in row-major order are all padding (a padding row, or a padding column of the
    same row), so starting ``argmax`` from this table keeps "first maximum" intact.
    """
    first = []
    for axis in range(2):
        starts = np.arange(geometry.out_size[axis]) * geometry.stride[axis] - geometry.padding[axis]
        first.append(np.maximum(0, -(starts // geometry.dilation[axis])))     # ceil(-start / d)
    return first[0][:, None] * geometry.kernel[1] + first[1][None, :]


def _split_batch(array, input_elements):
    """Whether a max pool (of ``input_elements``, batch ``array``) is worth splitting over
    the images: on the CPU, several images, several threads and a large input."""
    return (backend.array_module(array) is np and array.shape[0] > 1 and num_threads() > 1
            and input_elements >= PARALLEL_MIN_ELEMENTS)


def max_pool2d_forward(x, geometry, return_argmax=True):
    """Max over each window: (N, C, H, W) -> (N, C, OH, OW), and where it was; large CPU
    batches are split over the threads (see :func:`max_pool2d_block`)."""
    if not _split_batch(x, x.size):
        return max_pool2d_block(x, geometry, return_argmax)
    out = np.empty(x.shape[:2] + geometry.out_size, dtype=x.dtype)
    argmax = np.empty(out.shape, dtype=_argmax_dtype(geometry)) if return_argmax else None

    def work(start, stop):
        out[start:stop], where = max_pool2d_block(x[start:stop], geometry, return_argmax)
        if return_argmax:
            argmax[start:stop] = where

    parallel_for(work, x.shape[0])
    return out, argmax


def _argmax_dtype(geometry):
    """The smallest integer type that holds every kernel offset ``k < kh * kw``."""
    return np.uint8 if geometry.kernel[0] * geometry.kernel[1] <= 256 else np.int32


def max_pool2d_block(x, geometry, return_argmax=True):
    """Max over each window: (N, C, H, W) -> (N, C, OH, OW), and where it was.

    Returns ``(out, argmax)``. ``argmax`` holds, per output, the kernel offset
    ``k = i * kw + j`` of the *first* maximum in row-major window order (PyTorch's
    rule); ``None`` when ``return_argmax`` is False (inference), which skips that
    bookkeeping. The padding is ``-inf``, so it never wins against a real value.

    Offsets are visited in increasing ``k`` and ``argmax`` moves to ``k`` only when
    offset ``k`` holds a *strictly* larger value than all before it; so ``argmax``
    ends as the largest such ``k``, which ``maximum(argmax, k * better)`` computes
    without a masked assignment (slow in NumPy). It starts at each window's first real
    element (:func:`first_real_offset`). A NaN propagates to the output; in such windows
    PyTorch points ``argmax`` at the last NaN, and so do we.
    """
    xp = backend.array_module(x)
    xpad = pad_input(x, geometry, -np.inf)
    offsets = window_offsets(geometry)
    out = xpad[offsets[0][1]].copy()
    if not return_argmax:
        for _, region in offsets[1:]:
            xp.maximum(out, xpad[region], out=out)
        return out, None
    dtype = _argmax_dtype(geometry)
    if geometry.padding == (0, 0):
        argmax = xp.zeros(out.shape, dtype=dtype)
    else:
        start = cached_matrix(first_real_offset, (geometry,), x, dtype)
        argmax = xp.broadcast_to(start, out.shape).copy()
    for k, region in offsets[1:]:
        values = xpad[region]
        better = values > out
        xp.maximum(out, values, out=out)
        xp.maximum(argmax, xp.multiply(better, k, dtype=argmax.dtype), out=argmax)
    # On the CPU the NaN pass runs only when a NaN is there; on a GPU asking would make the
    # host wait for the device, so the (elementwise, cheap) pass always runs there.
    if xp is not np or xp.isnan(out).any():
        for k, region in offsets:
            argmax = xp.where(xp.isnan(xpad[region]), argmax.dtype.type(k), argmax)
    return out, argmax


def argmax_to_plane_index(argmax, geometry):
    """Turn kernel offsets ``k = i * kw + j`` into positions ``h * W + w`` in the (H, W) plane.

    The window of output (oh, ow) starts at input row ``oh * s - p``; offset ``i`` is
    ``i * d`` rows further (and likewise for columns). This flat index into one input
    plane is what PyTorch's ``return_indices=True`` returns (int64, (N, C, OH, OW)).
    """
    xp = backend.array_module(argmax)
    (oh, ow), kw, width = geometry.out_size, geometry.kernel[1], geometry.in_size[1]
    k = argmax.astype(np.int64)
    row_start = xp.arange(oh, dtype=np.int64)[:, None] * geometry.stride[0] - geometry.padding[0]
    col_start = xp.arange(ow, dtype=np.int64)[None, :] * geometry.stride[1] - geometry.padding[1]
    rows = row_start + (k // kw) * geometry.dilation[0]
    cols = col_start + (k % kw) * geometry.dilation[1]
    return rows * width + cols


def max_pool2d_backward(grad_out, argmax, geometry, use_raw_kernel=True):
    """Send each output's gradient to the input element that was its maximum.

    For each kernel offset ``k``, the outputs whose maximum sat at ``k`` add their
    gradient into that offset's strided slice of the (padded) input gradient. Windows
    overlap when stride < kernel, so one input can receive several gradients: they
    add. On CuPy a RawKernel does this in one pass (:mod:`.cuda_pooling`) unless
    ``use_raw_kernel`` is False; the loop below is the reference it is tested against.
    """
    xp = backend.array_module(grad_out)
    if xp is not np and use_raw_kernel:
        from .cuda_pooling import max_pool2d_backward_cuda
        return max_pool2d_backward_cuda(grad_out, argmax, geometry)
    n, c = grad_out.shape[:2]
    if _split_batch(grad_out, n * c * geometry.in_size[0] * geometry.in_size[1]):
        grad_x = np.empty((n, c) + tuple(geometry.in_size), dtype=grad_out.dtype)

        def work(start, stop):
            grad_x[start:stop] = _max_pool2d_backward_block(grad_out[start:stop], argmax[start:stop],
                                                            geometry)

        parallel_for(work, n)
        return grad_x
    return _max_pool2d_backward_block(grad_out, argmax, geometry)


def _max_pool2d_backward_block(grad_out, argmax, geometry):
    """:func:`max_pool2d_backward` of one block of images, on the CPU."""
    xp = backend.array_module(grad_out)
    grad_pad = xp.zeros(grad_out.shape[:2] + geometry.padded_size, dtype=grad_out.dtype)
    for k, region in window_offsets(geometry):
        grad_pad[region] += grad_out * (argmax == k)
    return crop_padding(grad_pad, geometry)


# ---------------------------------------------------------------------- average pooling
def avg_pool_divisor(in_size, out_size, kernel_size, stride, padding, count_include_pad):
    """What each window's sum is divided by, as an (OH, OW) float64 array (PyTorch's rule).

    A window is first clipped to the padded input ``[-p, in + p)`` (with ``ceil_mode``
    it may reach past it); ``count_include_pad=True`` divides by that clipped size,
    False by the number of real input elements in it. Both are products of a row
    count and a column count.
    """
    counts = []
    for axis in range(2):
        starts = np.arange(out_size[axis]) * stride[axis] - padding[axis]
        ends = np.minimum(starts + kernel_size[axis], in_size[axis] + padding[axis])
        if count_include_pad:
            counts.append(ends - starts)
        else:
            counts.append(np.minimum(ends, in_size[axis]) - np.maximum(starts, 0))
    return np.outer(counts[0], counts[1]).astype(np.float64)


def _divisor(geometry, like, count_include_pad, divisor_override):
    if divisor_override:
        return divisor_override
    return cached_matrix(avg_pool_divisor, (geometry.in_size, geometry.out_size, geometry.kernel,
                                            geometry.stride, geometry.padding, count_include_pad),
                         like)


def avg_pool2d_forward(x, geometry, count_include_pad=True, divisor_override=None):
    """Mean over each window: (N, C, H, W) -> (N, C, OH, OW).

    A box sum is separable: sum the ``kh`` row offsets first, giving (N, C, OH, Wp),
    then the ``kw`` column offsets, giving (N, C, OH, OW); then divide by
    :func:`avg_pool_divisor` (or by ``divisor_override``).
    """
    xpad = pad_input(x, geometry, 0)
    (kh, kw) = geometry.kernel
    rows = xpad[:, :, offset_slice(geometry, 0, 0)].copy()
    for i in range(1, kh):
        rows += xpad[:, :, offset_slice(geometry, 0, i)]
    total = rows[..., offset_slice(geometry, 1, 0)].copy()
    for j in range(1, kw):
        total += rows[..., offset_slice(geometry, 1, j)]
    total /= _divisor(geometry, x, count_include_pad, divisor_override)
    return total


def avg_pool2d_backward(grad_out, geometry, count_include_pad=True, divisor_override=None):
    """Spread each output's gradient, divided by its divisor, evenly over its window."""
    xp = backend.array_module(grad_out)
    (kh, kw), (hp, wp), (oh, _) = geometry.kernel, geometry.padded_size, geometry.out_size
    scaled = grad_out / _divisor(geometry, grad_out, count_include_pad, divisor_override)
    rows = xp.zeros(grad_out.shape[:2] + (oh, wp), dtype=grad_out.dtype)
    for j in range(kw):
        rows[..., offset_slice(geometry, 1, j)] += scaled
    grad_pad = xp.zeros(grad_out.shape[:2] + (hp, wp), dtype=grad_out.dtype)
    for i in range(kh):
        grad_pad[:, :, offset_slice(geometry, 0, i)] += rows
    return crop_padding(grad_pad, geometry)


# ---------------------------------------------------------------------- adaptive pooling
def adaptive_bins(in_size, out_size):
    """The input range ``[start, end)`` pooled by each of ``out_size`` outputs (PyTorch's bins).

    ``start = floor(i * in / out)`` and ``end = ceil((i + 1) * in / out)``: the bins
    cover the input, have (almost) equal lengths and overlap by one element where
    ``out`` does not divide ``in``. Example: ``adaptive_bins(7, 3) == [(0, 3), (2, 5), (4, 7)]``;
    upsizing repeats elements: ``adaptive_bins(2, 3) == [(0, 1), (0, 2), (1, 2)]``.
    """
    return [((i * in_size) // out_size, -(-((i + 1) * in_size) // out_size))
            for i in range(out_size)]


def adaptive_avg_weights(in_size, out_size):
    """The (out_size, in_size) averaging matrix: row i is ``1 / len`` on bin i, 0 elsewhere."""
    weights = np.zeros((out_size, in_size))
    for i, (start, end) in enumerate(adaptive_bins(in_size, out_size)):
        weights[i, start:end] = 1.0 / (end - start)
    return weights


def adaptive_avg_pool2d_forward(x, out_size):
    """Average over adaptive bins: ``P_h @ x[n, c] @ P_w.T``, (N, C, H, W) -> (N, C, OH, OW)."""
    (h, w), (oh, ow) = x.shape[2:], out_size
    return separable_apply(x, cached_matrix(adaptive_avg_weights, (h, oh), x),
                           cached_matrix(adaptive_avg_weights, (w, ow), x))


def adaptive_avg_pool2d_backward(grad_out, in_size):
    """The transpose of the forward map: ``P_h.T @ grad_out[n, c] @ P_w``, back to (N, C, H, W)."""
    (h, w), (oh, ow) = in_size, grad_out.shape[2:]
    return separable_apply(grad_out, cached_matrix(adaptive_avg_weights, (h, oh), grad_out).T,
                           cached_matrix(adaptive_avg_weights, (w, ow), grad_out).T)


def adaptive_bin_indices(in_size, out_size):
    """An (out_size, longest bin) int64 table of each bin's indices, short bins padded
    by repeating their last index (harmless to a maximum, and after the original in
    scan order, so the *first* maximum is still an original element)."""
    bins = adaptive_bins(in_size, out_size)
    longest = max(end - start for start, end in bins)
    return np.array([[min(start + k, end - 1) for k in range(longest)] for start, end in bins],
                    dtype=np.int64)


def adaptive_max_pool2d_forward(x, out_size):
    """Max over adaptive bins: returns ``(out, index)``, both (N, C, OH, OW).

    ``index`` is the position ``h * W + w`` of the first maximum (the last NaN, if
    any) in its (H, W) plane, as PyTorch's ``return_indices`` gives it. The bins are gathered at once into a
    (N, C, OH, OW, KH * KW) array (KH, KW: the longest bins), about the input's size.
    """
    xp = backend.array_module(x)
    (h, w), (oh, ow) = x.shape[2:], out_size
    rows = xp.asarray(adaptive_bin_indices(h, oh))           # (OH, KH)
    cols = xp.asarray(adaptive_bin_indices(w, ow))           # (OW, KW)
    kh, kw = rows.shape[1], cols.shape[1]
    windows = x[:, :, rows[:, None, :, None], cols[None, :, None, :]]     # (N, C, OH, OW, KH, KW)
    windows = windows.reshape(x.shape[:2] + (oh, ow, kh * kw))
    local = windows.argmax(axis=-1)                          # first maximum (or first NaN)
    out = xp.take_along_axis(windows, local[..., None], axis=-1)[..., 0]
    nan = xp.isnan(out)
    if xp is not np or nan.any():        # PyTorch keeps the *last* NaN (asking would sync a GPU)
        last_nan = kh * kw - 1 - xp.isnan(windows[..., ::-1]).argmax(axis=-1)
        local = xp.where(nan, last_nan, local)
    row = rows[xp.arange(oh)[:, None], local // kw]
    col = cols[xp.arange(ow)[None, :], local % kw]
    return out, row * w + col


def scatter_add_planes(index, values, plane_shape):
    """Add ``values[n, c, ...]`` into zeros of shape (N, C) + plane_shape at flat ``index[n, c, ...]``.

    Repeated indices add up (unlike ``a[index] = values``).
    """
    xp = backend.array_module(values)
    n, c = values.shape[:2]
    plane = int(np.prod(plane_shape))
    flat = (index.reshape(n * c, -1) + xp.arange(n * c)[:, None] * plane).ravel()
    if xp is np:
        summed = np.bincount(flat, weights=values.ravel(), minlength=n * c * plane)
        return summed.astype(values.dtype, copy=False).reshape((n, c) + tuple(plane_shape))
    out = xp.zeros(n * c * plane, dtype=values.dtype)
    xp.add.at(out, flat, xp.ascontiguousarray(values).ravel())
    return out.reshape((n, c) + tuple(plane_shape))


def adaptive_max_pool2d_backward(grad_out, index, in_size):
    """Each output's gradient goes to its maximum's position; overlapping bins add."""
    return scatter_add_planes(index, grad_out, in_size)


# ---------------------------------------------------------------------- max unpooling
def max_unpool2d_forward(x, index, out_size):
    """Place each value of ``x`` (N, C, H, W) at its flat plane position ``index`` in zeros
    of shape (N, C, OH, OW): the inverse of max pooling's selection (SegNet's decoder).

    Positions no index names stay 0. When an index repeats, NumPy (like PyTorch on the
    CPU) keeps the value written last; on CuPy which one wins is unspecified.
    """
    xp = backend.array_module(x)
    n, c = x.shape[:2]
    plane = out_size[0] * out_size[1]
    out = xp.zeros((n * c, plane), dtype=x.dtype)
    flat = index.reshape(n * c, -1) + xp.arange(n * c, dtype=np.int64)[:, None] * plane
    out.reshape(-1)[flat.reshape(-1)] = x.reshape(-1)
    return out.reshape((n, c) + tuple(out_size))


def max_unpool2d_backward(grad_out, index):
    """The gradient of unpooling gathers: ``grad_x[n, c, i, j] = grad_out[n, c].flat[index[n, c, i, j]]``."""
    xp = backend.array_module(grad_out)
    n, c = grad_out.shape[:2]
    planes = grad_out.reshape(n, c, -1)
    return xp.take_along_axis(planes, index.reshape(n, c, -1), axis=2).reshape(index.shape)
