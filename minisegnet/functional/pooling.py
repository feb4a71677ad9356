"""Pooling: max and average over sliding windows, and adaptive pooling to a fixed size.

All ops take ``input`` of shape (N, C, H, W) and return (N, C, OH, OW), with PyTorch's
arguments and output sizes. For a sliding window (kernel k, stride s, padding p,
dilation d) along one axis::

    OH = floor((H + 2p - d(k - 1) - 1) / s) + 1        (ceil instead of floor in ceil_mode)

Adaptive pooling is given (OH, OW) and chooses the windows itself: output row i pools
input rows ``floor(i * H / OH)`` to ``ceil((i + 1) * H / OH) - 1`` (see
:func:`minisegnet.kernels.pooling.adaptive_bins`). PSPNet's pyramid pooling module is
adaptive average pooling to 1, 2, 3 and 6 bins; DeepLab's image pooling is the 1 case.

The loops are in :mod:`minisegnet.kernels.pooling`; each Function below is the math:
what forward computes, what backward sends back.
"""
import numbers

from ..autograd import Function
from ..kernels import pooling as kernels
from ..tensor import Tensor


# ---------------------------------------------------------------------- argument checks
def check_image_batch(input, op):
    """Raise a clear error unless ``input`` is a floating (N, C, H, W) Tensor with H, W > 0."""
    if not isinstance(input, Tensor):
        raise TypeError(f"{op}: input must be a Tensor, got {type(input).__name__}")
    if input.ndim != 4:
        raise ValueError(f"{op}: input must be 4-d with shape (N, C, H, W), got a {input.ndim}-d "
                         f"tensor of shape {input.shape}")
    if input.dtype.kind != "f":
        raise TypeError(f"{op}: input must be floating point (float32 or float64), got {input.dtype}")
    if input.shape[2] < 1 or input.shape[3] < 1:
        raise ValueError(f"{op}: input must have non-empty spatial dims (H, W), got shape {input.shape}")


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def as_pair(value, name, op):
    """``3 -> (3, 3)``, ``(2, 3) -> (2, 3)``; anything else is a TypeError naming ``name``."""
    if _is_int(value):
        return (int(value), int(value))
    if isinstance(value, (tuple, list)) and len(value) in (1, 2) and all(_is_int(v) for v in value):
        return (int(value[0]), int(value[-1]))
    raise TypeError(f"{op}: {name} must be an int or a pair of ints, got {value!r}")


def _window_geometry(input, op, kernel_size, stride, padding, dilation, ceil_mode):
    """Check sliding-window arguments and return the kernels' PoolGeometry."""
    kernel = as_pair(kernel_size, "kernel_size", op)
    stride = kernel if stride is None or stride == () or stride == [] else as_pair(stride, "stride", op)
    padding = as_pair(padding, "padding", op)
    dilation = as_pair(dilation, "dilation", op)
    for name, value, low in (("kernel_size", kernel, 1), ("stride", stride, 1),
                             ("padding", padding, 0), ("dilation", dilation, 1)):
        if min(value) < low:
            bound = "positive" if low else "non-negative"
            raise ValueError(f"{op}: {name} must be {bound}, got {value}")
    if padding[0] > kernel[0] // 2 or padding[1] > kernel[1] // 2:
        raise ValueError(f"{op}: padding {padding} must be at most half of kernel_size {kernel} "
                         f"(padding <= kernel_size // 2)")
    geometry = kernels.pool_geometry(input.shape[2:], kernel, stride, padding, dilation, bool(ceil_mode))
    if min(geometry.out_size) < 1:
        raise ValueError(
            f"{op}: kernel_size {kernel} (dilation {dilation}) does not fit in the input of spatial "
            f"size {tuple(input.shape[2:])} with padding {padding}: the output would be "
            f"{geometry.out_size}")
    return geometry


# ---------------------------------------------------------------------- max / average pooling
class MaxPool2d(Function):
    """``out[n, c, i, j] = max`` of the window at (i, j); the gradient goes to that max."""

    @staticmethod
    def forward(ctx, x, geometry):
        out, argmax = kernels.max_pool2d_forward(x, geometry, return_argmax=ctx.needs_input_grad[0])
        ctx.argmax, ctx.geometry = argmax, geometry
        return out

    @staticmethod
    def backward(ctx, grad_out):
        return kernels.max_pool2d_backward(grad_out, ctx.argmax, ctx.geometry), None


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    """2-d max pooling, (N, C, H, W) -> (N, C, OH, OW).

    Args:
        kernel_size, stride, padding, dilation: ints or (h, w) pairs; ``stride``
            defaults to ``kernel_size`` (non-overlapping windows). Padding counts as
            ``-inf`` and must be at most ``kernel_size // 2``.
        ceil_mode: round the output size up, allowing a last partial window, as long
            as it starts inside the input or the left padding.

    Where a window holds its maximum twice, the gradient goes to the first one in
    row-major order, as in PyTorch; a NaN in a window wins and propagates.
    """
    op = "max_pool2d"
    check_image_batch(input, op)
    geometry = _window_geometry(input, op, kernel_size, stride, padding, dilation, ceil_mode)
    return MaxPool2d.apply(input, geometry)


class AvgPool2d(Function):
    """``out = (sum of the window) / divisor``; backward spreads ``grad / divisor`` over the window."""

    @staticmethod
    def forward(ctx, x, geometry, count_include_pad, divisor_override):
        ctx.args = (geometry, count_include_pad, divisor_override)
        return kernels.avg_pool2d_forward(x, *ctx.args)

    @staticmethod
    def backward(ctx, grad_out):
        return kernels.avg_pool2d_backward(grad_out, *ctx.args), None, None, None


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    """2-d average pooling, (N, C, H, W) -> (N, C, OH, OW).

    Padding counts as zeros. Each window sum is divided by the window's size clipped
    to the padded input (``count_include_pad=True``, the default) or by the number of
    real input elements in it (False), or by ``divisor_override`` when given. Other
    arguments as in :func:`max_pool2d` (no dilation).
    """
    op = "avg_pool2d"
    check_image_batch(input, op)
    geometry = _window_geometry(input, op, kernel_size, stride, padding, 1, ceil_mode)
    if divisor_override is not None and (not _is_int(divisor_override) or divisor_override == 0):
        raise ValueError(f"avg_pool2d: divisor_override must be a non-zero int, got {divisor_override!r}")
    return AvgPool2d.apply(input, geometry, bool(count_include_pad), divisor_override)


# ---------------------------------------------------------------------- adaptive pooling
def _adaptive_output_size(input, output_size, op):
    """``output_size`` as an (OH, OW) pair of positive ints; ``None`` keeps the input size."""
    if output_size is None or _is_int(output_size):
        output_size = (output_size, output_size)
    if not isinstance(output_size, (tuple, list)) or len(output_size) != 2 or \
            not all(s is None or _is_int(s) for s in output_size):
        raise TypeError(f"{op}: output_size must be an int or a pair of ints (or None), "
                        f"got {output_size!r}")
    size = tuple(int(input.shape[2 + i]) if s is None else int(s) for i, s in enumerate(output_size))
    if min(size) < 1:
        raise ValueError(f"{op}: output_size must be positive, got {tuple(output_size)}")
    return size


class AdaptiveAvgPool2d(Function):
    """``out[n, c] = P_h @ x[n, c] @ P_w.T`` (averaging matrices); backward is the transpose."""

    @staticmethod
    def forward(ctx, x, output_size):
        ctx.in_size = x.shape[2:]
        return kernels.adaptive_avg_pool2d_forward(x, output_size)

    @staticmethod
    def backward(ctx, grad_out):
        return kernels.adaptive_avg_pool2d_backward(grad_out, ctx.in_size), None


def adaptive_avg_pool2d(input, output_size):
    """Average pooling to a fixed ``output_size`` (int or (OH, OW); ``None`` keeps that dim).

    Output (i, j) is the mean of the input over bin i of the rows times bin j of the
    columns (:func:`minisegnet.kernels.pooling.adaptive_bins`), exact also when the
    sizes do not divide: e.g. 7 rows to 3 uses rows [0, 3), [2, 5), [4, 7).
    """
    op = "adaptive_avg_pool2d"
    check_image_batch(input, op)
    return AdaptiveAvgPool2d.apply(input, _adaptive_output_size(input, output_size, op))


class AdaptiveMaxPool2d(Function):
    """``out = max`` over each adaptive bin; the gradient goes to the (first) maximum."""

    @staticmethod
    def forward(ctx, x, output_size):
        out, ctx.index = kernels.adaptive_max_pool2d_forward(x, output_size)
        ctx.in_size = x.shape[2:]
        return out

    @staticmethod
    def backward(ctx, grad_out):
        return kernels.adaptive_max_pool2d_backward(grad_out, ctx.index, ctx.in_size), None


def adaptive_max_pool2d(input, output_size):
    """Max pooling to a fixed ``output_size`` over the same bins as :func:`adaptive_avg_pool2d`."""
    op = "adaptive_max_pool2d"
    check_image_batch(input, op)
    return AdaptiveMaxPool2d.apply(input, _adaptive_output_size(input, output_size, op))
