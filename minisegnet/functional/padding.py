"""``pad``: PyTorch's ``F.pad`` with the modes constant, reflect, replicate and circular.

``pad=(left, right, top, bottom, ...)`` pads the *last* dim by (left, right), the one
before by (top, bottom), and so on; negative values crop. The modes (worked example
in :mod:`minisegnet.kernels.padding`):

* ``constant`` (default): the border is ``value``; any number of dims.
* ``reflect``: mirror the image at its edge without repeating the edge pixel, the usual
  padding for random crops and for convolutions that should not see a dark frame;
  each pad must be smaller than its dim.
* ``replicate``: repeat the edge pixel.
* ``circular``: wrap around (periodic images); each pad at most its dim (after cropping).

The non-constant modes pad the last two dims of an (N, C, H, W) or unbatched (C, H, W)
input, ``pad=(left, right, top, bottom)``: the 2-d padding of ``nn.ReflectionPad2d``
and friends. Their 1-d and 3-d forms (2 or 6 numbers) are out of scope.
"""
import numbers

from ..autograd import Function
from ..kernels import padding as kernels
from ..tensor import Tensor


class Pad(Function):
    """Every output copies one input (or is the constant): a gather; backward adds the
    gradient of each copy back to its source."""

    @staticmethod
    def forward(ctx, x, widths, mode, value):
        ctx.meta = (x.shape, widths, mode)
        return kernels.pad_forward(x, widths, mode, value)

    @staticmethod
    def backward(ctx, grad_out):
        in_shape, widths, mode = ctx.meta
        return kernels.pad_backward(grad_out, in_shape, widths, mode), None, None, None


def _check_pad(x, pad, mode, value):
    """The per-axis ``(lo, hi)`` widths of ``pad`` for ``x``, after PyTorch's checks."""
    if not isinstance(x, Tensor):
        raise TypeError(f"pad: input must be a Tensor, got {type(x).__name__}")
    if mode not in kernels.MODES:
        raise ValueError(f"pad: mode must be one of {kernels.MODES}, got {mode!r}")
    if not isinstance(pad, (tuple, list)) or not all(
            isinstance(p, numbers.Integral) and not isinstance(p, bool) for p in pad):
        raise TypeError(f"pad: pad must be a tuple of ints (left, right, top, bottom, ...), got {pad!r}")
    pad = tuple(int(p) for p in pad)
    if len(pad) % 2 or len(pad) // 2 > x.ndim:
        raise ValueError(f"pad: pad must hold (low, high) pairs for at most {x.ndim} dims (the input is "
                         f"{x.ndim}-d), got {len(pad)} values {pad}")
    if mode != "constant":
        if value not in (None, 0, 0.0):
            raise ValueError(f"pad: mode={mode!r} takes no value argument (only mode='constant' "
                             f"fills with a value), got value={value!r}")
        if len(pad) != 4:
            raise NotImplementedError(
                f"pad: mode={mode!r} with {len(pad)} pad values is {len(pad) // 2}-d padding, which "
                f"minisegnet leaves out of scope (it covers 2-d spatial ops only); give 4 values "
                f"(left, right, top, bottom)")
        if x.ndim not in (3, 4):
            raise ValueError(f"pad: mode={mode!r} pads the last two dims of an (N, C, H, W) or "
                             f"unbatched (C, H, W) input, got a {x.ndim}-d input of shape {x.shape}")
    widths = [(0, 0)] * x.ndim
    for i in range(len(pad) // 2):
        widths[x.ndim - 1 - i] = (pad[2 * i], pad[2 * i + 1])
    for axis, (lo, hi) in enumerate(widths):
        n = x.shape[axis]
        if mode == "constant" and n + min(lo, 0) + min(hi, 0) < 0:     # PyTorch crops first
            raise ValueError(f"pad: cropping {(lo, hi)} of dim {axis} (size {n}) of the input of shape "
                             f"{x.shape} removes more than the whole dim")
        if n + lo + hi < (0 if mode == "constant" else 1):
            raise ValueError(f"pad: padding {(lo, hi)} of dim {axis} (size {n}) of the input of shape "
                             f"{x.shape} leaves an output size of {n + lo + hi}")
        if mode == "reflect" and (lo >= n or hi >= n):
            raise ValueError(f"pad: reflect padding must be smaller than the padded dim: got padding "
                             f"{(lo, hi)} for dim {axis} of size {n} (input shape {x.shape})")
        if mode == "circular":
            left = n - max(-lo, 0) - max(-hi, 0)           # what cropping leaves to wrap around
            if left < 1 or lo > left or hi > left:
                raise ValueError(f"pad: circular padding {(lo, hi)} of dim {axis} (size {n}, {left} "
                                 f"after cropping) would wrap around more than once; each pad must be "
                                 f"at most {left}")
    return tuple(widths)


def pad(x, pad, mode="constant", value=None):
    """Pad (or, with negative values, crop) ``x`` as ``torch.nn.functional.pad`` does.

    Args:
        x: Tensor; any shape for ``mode='constant'``, (N, C, H, W) or (C, H, W) otherwise.
        pad: ``(left, right, top, bottom, ...)``, pairs from the last dim backwards.
        mode: 'constant', 'reflect', 'replicate' or 'circular' (see the module docstring).
        value: the fill of ``mode='constant'`` (default 0).

    Example, one row ``[0, 1, 2, 3, 4]`` with ``pad=(2, 2)``: reflect gives
    ``[2, 1, 0, 1, 2, 3, 4, 3, 2]``, replicate ``[0, 0, 0, 1, 2, 3, 4, 4, 4]``, circular
    ``[3, 4, 0, 1, 2, 3, 4, 0, 1]``; ``pad=(-1, 2)`` crops the 0 first.
    """
    widths = _check_pad(x, pad, mode, value)
    return Pad.apply(x, widths, mode, 0.0 if value is None else value)
