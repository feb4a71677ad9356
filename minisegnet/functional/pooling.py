"""Pooling: max and average over sliding windows, and adaptive pooling to a fixed size.

All ops take ``input`` of shape (N, C, H, W) (or an unbatched (C, H, W) image, as in
PyTorch) and return (N, C, OH, OW) (or (C, OH, OW)), with PyTorch's arguments and
output sizes. For a sliding window (kernel k, stride s, padding p,
dilation d) along one axis::

    OH = floor((H + 2p - d(k - 1) - 1) / s) + 1        (ceil instead of floor in ceil_mode)

Adaptive pooling is given (OH, OW) and chooses the windows itself: output row i pools
input rows ``floor(i * H / OH)`` to ``ceil((i + 1) * H / OH) - 1`` (see
:func:`minisegnet.kernels.pooling.adaptive_bins`). PSPNet's pyramid pooling module is
adaptive average pooling to 1, 2, 3 and 6 bins; DeepLab's image pooling is the 1 case.

Max pooling can also return *where* each maximum was (``return_indices=True``): the
flat position ``h * W + w`` in the input plane, PyTorch's layout. :func:`max_unpool2d`
uses those indices to put values back where they came from, SegNet's decoder.

The loops are in :mod:`minisegnet.kernels.pooling`; each Function below is the math:
what forward computes, what backward sends back.
"""
import numbers

from ..autograd import Function
from ..kernels import pooling as kernels
from ..tensor import Tensor


# ---------------------------------------------------------------------- argument checks
def check_image_batch(input, op, unbatched=False):
    """Raise a clear error unless ``input`` is a floating (N, C, H, W) Tensor with H, W > 0
    (or, with ``unbatched=True``, also a (C, H, W) one)."""
    if not isinstance(input, Tensor):
        raise TypeError(f"{op}: input must be a Tensor, got {type(input).__name__}")
    dims = (3, 4) if unbatched else (4,)
    if input.ndim not in dims:
        expected = "(N, C, H, W) or unbatched (C, H, W)" if unbatched else "(N, C, H, W)"
        raise ValueError(f"{op}: input must be {'3-d or ' if unbatched else ''}4-d with shape "
                         f"{expected}, got a {input.ndim}-d tensor of shape {input.shape} "
                         f"(minisegnet covers the 2-d spatial ops only; 1-d and 3-d variants are "
                         f"out of scope)")
    if input.dtype.kind != "f":
        raise TypeError(f"{op}: input must be floating point (float32 or float64), got {input.dtype}")
    if input.shape[-2] < 1 or input.shape[-1] < 1:
        raise ValueError(f"{op}: input must have non-empty spatial dims (H, W), got shape {input.shape}")


def _on_unbatched(fn, input, *args, **kwargs):
    """Run ``fn`` on a (C, H, W) image as a batch of one, and drop the batch axis again."""
    out = fn(input.unsqueeze(0), *args, **kwargs)
    if isinstance(out, tuple):
        return tuple(o.squeeze(0) for o in out)
    return out.squeeze(0)


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
    """``out[n, c, i, j] = max`` of the window at (i, j); the gradient goes to that max.

    ``indices`` is None, or a list that forward appends the flat plane positions of the
    maxima to (for ``return_indices=True``: a Function returns one array).
    """

    @staticmethod
    def forward(ctx, x, geometry, indices):
        need_argmax = ctx.needs_input_grad[0] or indices is not None
        out, argmax = kernels.max_pool2d_forward(x, geometry, return_argmax=need_argmax)
        if indices is not None:
            indices.append(kernels.argmax_to_plane_index(argmax, geometry))
        ctx.argmax, ctx.geometry = argmax, geometry
        return out

    @staticmethod
    def backward(ctx, grad_out):
        return kernels.max_pool2d_backward(grad_out, ctx.argmax, ctx.geometry), None, None


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """2-d max pooling, (N, C, H, W) -> (N, C, OH, OW) (or (C, H, W) -> (C, OH, OW)).

    Args:
        kernel_size, stride, padding, dilation: ints or (h, w) pairs; ``stride``
            defaults to ``kernel_size`` (non-overlapping windows). Padding counts as
            ``-inf`` and must be at most ``kernel_size // 2``. ``dilation`` spreads the
            window's taps ``d`` pixels apart (the window spans ``d * (k - 1) + 1``).
        ceil_mode: round the output size up, allowing a last partial window, as long
            as it starts inside the input or the left padding.
        return_indices: also return an int64 Tensor of the output's shape holding
            where each maximum is, as the flat position ``h * W + w`` in its (H, W)
            input plane (what :func:`max_unpool2d` takes).

    Where a window holds its maximum twice, the first one in row-major order wins (its
    index is returned, the gradient goes to it), as in PyTorch; a NaN in a window wins
    and propagates (the last NaN's index).
    """
    op = "max_pool2d"
    check_image_batch(input, op, unbatched=True)
    if input.ndim == 3:
        return _on_unbatched(max_pool2d, input, kernel_size, stride, padding, dilation, ceil_mode,
                             return_indices)
    geometry = _window_geometry(input, op, kernel_size, stride, padding, dilation, ceil_mode)
    indices = [] if return_indices else None
    out = MaxPool2d.apply(input, geometry, indices)
    return (out, Tensor(indices[0])) if return_indices else out


class MaxUnpool2d(Function):
    """``out.flat[index] = x`` in each (OH, OW) plane of zeros; backward gathers ``grad_out.flat[index]``."""

    @staticmethod
    def forward(ctx, x, index, out_size):
        ctx.index = index
        return kernels.max_unpool2d_forward(x, index, out_size)

    @staticmethod
    def backward(ctx, grad_out):
        return kernels.max_unpool2d_backward(grad_out, ctx.index), None, None


def _unpool_output_size(input, kernel, stride, padding, output_size, op):
    """The default ``(H - 1) * s - 2p + k`` per axis, or ``output_size`` checked against it."""
    default = tuple((input.shape[2 + a] - 1) * stride[a] - 2 * padding[a] + kernel[a] for a in range(2))
    if output_size is None:
        size = default
    else:
        if isinstance(output_size, Tensor) or not isinstance(output_size, (tuple, list)) or \
                len(output_size) not in (2, 4) or not all(_is_int(v) for v in output_size):
            raise TypeError(f"{op}: output_size must be (OH, OW) or a full (N, C, OH, OW) shape of "
                            f"ints, got {output_size!r}")
        size = tuple(int(v) for v in output_size[-2:])
        for a in range(2):
            low, high = default[a] - stride[a], default[a] + stride[a]
            if not low < size[a] < high:
                raise ValueError(f"{op}: output_size {size} is not possible for input of shape "
                                 f"{input.shape} with kernel_size {kernel}, stride {stride}, padding "
                                 f"{padding}: each size must lie strictly between {low} and {high}")
    if min(size) < 1:
        raise ValueError(f"{op}: the output size {size} is not positive (input of shape {input.shape}, "
                         f"kernel_size {kernel}, stride {stride}, padding {padding})")
    return size


def max_unpool2d(input, indices, kernel_size, stride=None, padding=0, output_size=None):
    """The partial inverse of :func:`max_pool2d`: (N, C, H, W) -> (N, C, OH, OW), mostly zeros.

    Each ``input[n, c, i, j]`` goes to the flat plane position ``indices[n, c, i, j]``
    (``h * OW + w``, as ``max_pool2d(..., return_indices=True)`` gives them); every
    other output is 0. The output size is ``(H - 1) * stride - 2 * padding +
    kernel_size`` per axis, or ``output_size`` ((OH, OW) or a full shape) when the
    pooled input's size was ambiguous (odd sizes): it must lie within ``stride`` of
    the default. The gradient reads ``grad_out`` back at the same positions.

    SegNet's decoder upsamples this way: the encoder's pooling indices say where the
    strongest activation was, so the decoder restores sharp boundaries without
    learning an upsampling.
    """
    op = "max_unpool2d"
    check_image_batch(input, op, unbatched=True)
    if not isinstance(indices, Tensor) or indices.dtype.kind not in "iu":
        raise TypeError(f"{op}: indices must be an integer Tensor (from max_pool2d(..., "
                        f"return_indices=True)), got {getattr(indices, 'dtype', type(indices).__name__)}")
    if tuple(indices.shape) != tuple(input.shape):
        raise ValueError(f"{op}: indices must have the input's shape {input.shape}, got {indices.shape}")
    if input.ndim == 3:
        out_size = None if output_size is None else tuple(output_size)[-2:]
        return max_unpool2d(input.unsqueeze(0), indices.unsqueeze(0), kernel_size, stride, padding,
                            out_size).squeeze(0)
    kernel = as_pair(kernel_size, "kernel_size", op)
    stride = kernel if stride is None or stride == () or stride == [] else as_pair(stride, "stride", op)
    padding = as_pair(padding, "padding", op)
    for name, value, low in (("kernel_size", kernel, 1), ("stride", stride, 1), ("padding", padding, 0)):
        if min(value) < low:
            raise ValueError(f"{op}: {name} must be {'positive' if low else 'non-negative'}, got {value}")
    size = _unpool_output_size(input, kernel, stride, padding, output_size, op)
    index = indices.data.astype("int64", copy=False)
    if index.size and bool(((index < 0) | (index >= size[0] * size[1])).any()):     # one host sync
        raise ValueError(f"{op}: indices must lie in [0, {size[0] * size[1]}) for an output plane of "
                         f"size {size}, got values from {int(index.min())} to {int(index.max())}")
    return MaxUnpool2d.apply(input, index, size)


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
    check_image_batch(input, op, unbatched=True)
    if input.ndim == 3:
        return _on_unbatched(avg_pool2d, input, kernel_size, stride, padding, ceil_mode,
                             count_include_pad, divisor_override)
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
    check_image_batch(input, op, unbatched=True)
    if input.ndim == 3:
        return _on_unbatched(adaptive_avg_pool2d, input, output_size)
    return AdaptiveAvgPool2d.apply(input, _adaptive_output_size(input, output_size, op))


class AdaptiveMaxPool2d(Function):
    """``out = max`` over each adaptive bin; the gradient goes to the (first) maximum.

    ``indices``: None, or a list that forward appends the flat plane positions to.
    """

    @staticmethod
    def forward(ctx, x, output_size, indices):
        out, ctx.index = kernels.adaptive_max_pool2d_forward(x, output_size)
        ctx.in_size = x.shape[2:]
        if indices is not None:
            indices.append(ctx.index)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        return kernels.adaptive_max_pool2d_backward(grad_out, ctx.index, ctx.in_size), None, None


def adaptive_max_pool2d(input, output_size, return_indices=False):
    """Max pooling to a fixed ``output_size`` over the same bins as :func:`adaptive_avg_pool2d`.

    With ``return_indices=True`` also returns the int64 flat plane positions ``h * W + w``
    of the maxima (the first in row-major order within a bin), as :func:`max_pool2d` does.
    """
    op = "adaptive_max_pool2d"
    check_image_batch(input, op, unbatched=True)
    if input.ndim == 3:
        return _on_unbatched(adaptive_max_pool2d, input, output_size, return_indices)
    indices = [] if return_indices else None
    out = AdaptiveMaxPool2d.apply(input, _adaptive_output_size(input, output_size, op), indices)
    return (out, Tensor(indices[0])) if return_indices else out
