"""Convolution and transposed convolution: ``conv2d`` and ``conv_transpose2d``.

``conv2d`` slides a (kh, kw) kernel over the input: every output pixel is a weighted
sum over a kh x kw window of every input channel of its group,

    y[n, o, yo, xo] = b[o] + sum_{c, i, j} w[o, c, i, j] * x[n, g(o) + c, sh*yo + i*dh - pt, sw*xo + j*dw - pl]

(stride (sh, sw), dilation (dh, dw), padding (pt, pl) on top/left, zeros outside the image),
and the output size along each axis is

    Ho = (H + pad_top + pad_bottom - dh*(kh - 1) - 1) // sh + 1.

Its backward pass is two more products of the same shape: d loss/d w correlates the
input with grad_out, and d loss/d x sends grad_out back through the kernel to where
each tap read (the *transpose* of the forward map).

``conv_transpose2d`` is exactly that transpose: it maps a (N, C_in, H, W) input to a
larger output the way conv2d's backward maps grad_out to grad_x, so its forward is
conv2d's grad-input kernel and its backward is conv2d's forward and grad-weight kernels.
No loop is written twice: all three products live in :mod:`minisegnet.kernels.conv`.
"""
import numbers

from ..autograd import Function
from ..kernels import conv as K
from ..tensor import Tensor
from .shape import reshape


# --------------------------------------------------------------------------- the ops

class Conv2d(Function):
    """y = conv2d(x, weight) + bias; the kernels take (top, left) padding and the output size."""

    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding, dilation, groups, out_hw):
        ctx.save_for_backward(x, weight)
        ctx.args = (stride, padding, dilation, groups)
        return K.conv2d_forward(x, weight, bias, stride, padding, dilation, groups, out_hw)

    @staticmethod
    def backward(ctx, grad_out):
        x, weight = ctx.saved_tensors
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        gx, gw, gb = K.conv2d_backward(grad_out, x, weight, *ctx.args, need_x, need_w, need_b)
        return gx, gw, gb, None, None, None, None, None


class ConvTranspose2d(Function):
    """y = conv_transpose2d(x, weight) + bias: the adjoint of conv2d with the same arguments.

    With ``weight`` (C_in, C_out/groups, kh, kw) read as a conv2d weight from C_out to
    C_in channels, conv2d maps a (C_out, Ho, Wo) image to (C_in, H, W); this op is its
    transpose, (C_in, H, W) -> (C_out, Ho, Wo). So:

    * forward  = conv2d's grad-input product (x plays grad_out),
    * grad x   = conv2d forward of grad_out (the transpose of the transpose),
    * grad w   = conv2d's grad-weight product with the roles of x and grad_out swapped.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding, dilation, groups, out_hw):
        ctx.save_for_backward(x, weight)
        ctx.args = (stride, padding, dilation, groups)
        y = K.conv2d_grad_input(x, weight, out_hw, stride, padding, dilation, groups)
        if bias is not None:
            y += bias.reshape(1, -1, 1, 1)
        return y

    @staticmethod
    def backward(ctx, grad_out):
        x, weight = ctx.saved_tensors
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        gx, gw, gb = K.conv_transpose2d_backward(grad_out, x, weight, *ctx.args, x.shape[2:],
                                                 need_x, need_w, need_b)
        return gx, gw, gb, None, None, None, None, None


# --------------------------------------------------------------------------- argument checks

def _pair(value, name, op, minimum):
    """An int or a pair of ints as a pair, each >= ``minimum`` (else a clear error)."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        pair = (int(value), int(value))
    elif (isinstance(value, (tuple, list)) and len(value) == 2
          and all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in value)):
        pair = (int(value[0]), int(value[1]))
    else:
        raise TypeError(f"{op}: {name} must be an int or a pair of ints, got {value!r}")
    if min(pair) < minimum:
        raise ValueError(f"{op}: {name} must be >= {minimum} along each axis, got {value!r}")
    return pair


def _check_tensors(op, input, weight, bias, weight_layout):
    """Types, ranks and dtypes of input/weight/bias; returns input as (N, C, H, W) shape."""
    for name, t in (("input", input), ("weight", weight)):
        if not isinstance(t, Tensor):
            raise TypeError(f"{op}: {name} must be a Tensor, got {type(t).__name__}")
    if bias is not None and not isinstance(bias, Tensor):
        raise TypeError(f"{op}: bias must be a Tensor or None, got {type(bias).__name__}")
    if input.ndim not in (3, 4):
        raise ValueError(f"{op}: input must be 4-D (N, C, H, W) or 3-D (C, H, W), "
                         f"got shape {input.shape}")
    if weight.ndim != 4:
        raise ValueError(f"{op}: weight must be 4-D {weight_layout}, got shape {weight.shape}")
    if input.dtype.kind != "f":
        raise TypeError(f"{op}: input must be a floating point tensor, got dtype {input.dtype}")
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and t.dtype != input.dtype:
            raise TypeError(f"{op}: {name} dtype {t.dtype} differs from input dtype "
                            f"{input.dtype}; convert one with .to(dtype)")
    return input.shape if input.ndim == 4 else (1,) + input.shape


def _check_groups(op, groups, shape, weight, in_channels, out_channels):
    if not isinstance(groups, numbers.Integral) or isinstance(groups, bool) or groups < 1:
        raise ValueError(f"{op}: groups must be a positive int, got {groups!r}")
    for what, n in (("input channels", in_channels), ("output channels", out_channels)):
        if n % groups:
            raise ValueError(f"{op}: groups={groups} must divide the number of {what}, "
                             f"got {n} (input {shape}, weight {weight.shape})")


def _check_bias(op, bias, out_channels, weight):
    if bias is not None and tuple(bias.shape) != (out_channels,):
        raise ValueError(f"{op}: bias must have shape ({out_channels},) (one per output "
                         f"channel of weight {weight.shape}), got {bias.shape}")


def _run(fn, input, weight, bias, *args):
    """Apply ``fn``, adding and removing a batch axis for 3-D (unbatched) input."""
    if input.ndim == 3:
        out = fn.apply(reshape(input, (1,) + input.shape), weight, bias, *args)
        return reshape(out, out.shape[1:])
    return fn.apply(input, weight, bias, *args)


# --------------------------------------------------------------------------- public functions

def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D convolution (cross-correlation, as in every deep learning library).

    Args:
        input: (N, C_in, H, W) (or unbatched (C_in, H, W)).
        weight: (C_out, C_in/groups, kh, kw).
        bias: (C_out,) or None.
        stride, dilation: int or (sh, sw) / (dh, dw); dilation spaces the kernel taps
            (atrous convolution: a 3x3 kernel with dilation 12 spans 25x25 pixels).
        padding: int, (ph, pw) zeros on both sides, or ``'valid'`` (none) or ``'same'``
            (output size = input size; stride must be 1; an odd total padding puts the
            extra row/column at the bottom/right, as PyTorch does).
        groups: split channels into ``groups`` independent convolutions
            (``groups == C_in == C_out`` is a depthwise convolution).

    Returns:
        (N, C_out, Ho, Wo) with ``Ho = (H + 2*ph - dh*(kh-1) - 1) // sh + 1``.
    """
    op = "conv2d"
    shape = _check_tensors(op, input, weight, bias, "(out_channels, in_channels/groups, kh, kw)")
    N, C, H, W = shape
    O, Cg, kh, kw = weight.shape
    _check_groups(op, groups, shape, weight, C, O)
    if Cg * groups != C:
        raise ValueError(f"{op}: input has {C} channels but weight {weight.shape} with "
                         f"groups={groups} expects {Cg * groups} (input {shape})")
    _check_bias(op, bias, O, weight)
    stride = _pair(stride, "stride", op, 1)
    dilation = _pair(dilation, "dilation", op, 1)
    if isinstance(padding, str):
        if padding == "valid":
            pads = (0, 0, 0, 0)
        elif padding == "same":
            if stride != (1, 1):
                raise ValueError(f"{op}: padding='same' is not supported for strided "
                                 f"convolutions (stride={stride})")
            th, tw = dilation[0] * (kh - 1), dilation[1] * (kw - 1)
            pads = (th // 2, th - th // 2, tw // 2, tw - tw // 2)
        else:
            raise ValueError(f"{op}: padding must be an int, a pair, 'same' or 'valid', "
                             f"got {padding!r}")
    else:
        ph, pw = _pair(padding, "padding", op, 0)
        pads = (ph, ph, pw, pw)
    spans = (dilation[0] * (kh - 1) + 1, dilation[1] * (kw - 1) + 1)
    padded = (H + pads[0] + pads[1], W + pads[2] + pads[3])
    if spans[0] > padded[0] or spans[1] > padded[1]:
        raise ValueError(f"{op}: the kernel {(kh, kw)} with dilation {dilation} spans "
                         f"{spans[0]}x{spans[1]} pixels, larger than the padded input "
                         f"{padded[0]}x{padded[1]} (input {shape}, padding {padding!r})")
    out_hw = (K.conv_output_size(H, kh, stride[0], pads[0], pads[1], dilation[0]),
              K.conv_output_size(W, kw, stride[1], pads[2], pads[3], dilation[1]))
    return _run(Conv2d, input, weight, bias, stride, (pads[0], pads[2]), dilation, groups, out_hw)


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1):
    """2-D transposed convolution ("deconvolution"): the adjoint (transpose) of conv2d.

    Each input pixel scatters a weighted copy of the kernel into the output, at
    ``stride`` spacing; overlapping copies add up. With kernel 4, stride 2, padding 1 it
    doubles H and W: FCN's learned upsampling (initialised to bilinear interpolation).

    Args:
        input: (N, C_in, H, W) (or unbatched (C_in, H, W)).
        weight: (C_in, C_out/groups, kh, kw) -- note: in-channels first, unlike conv2d.
        bias: (C_out,) or None.
        stride, padding, dilation: those of the conv2d this op transposes; ``padding``
            crops ``padding`` rows/columns from each side of the full output.
        output_padding: extra rows/columns on the bottom/right, to pick among the output
            sizes that a strided conv2d maps to the same H (must be < stride or < dilation).
        groups: as in conv2d.

    Returns:
        (N, C_out, Ho, Wo) with ``Ho = (H - 1)*sh - 2*ph + dh*(kh - 1) + oph + 1``.
    """
    op = "conv_transpose2d"
    if isinstance(padding, str):
        raise ValueError(f"{op}: padding must be an int or a pair (no 'same'/'valid' for "
                         f"transposed convolutions), got {padding!r}")
    shape = _check_tensors(op, input, weight, bias, "(in_channels, out_channels/groups, kh, kw)")
    N, C, H, W = shape
    Cw, Og, kh, kw = weight.shape
    if Cw != C:
        raise ValueError(f"{op}: input has {C} channels but weight {weight.shape} expects "
                         f"{Cw} (weight is (in_channels, out_channels/groups, kh, kw); "
                         f"input {shape})")
    _check_groups(op, groups, shape, weight, C, Og * groups)
    _check_bias(op, bias, Og * groups, weight)
    stride = _pair(stride, "stride", op, 1)
    dilation = _pair(dilation, "dilation", op, 1)
    pad = _pair(padding, "padding", op, 0)
    out_pad = _pair(output_padding, "output_padding", op, 0)
    for a in range(2):
        if out_pad[a] >= stride[a] and out_pad[a] >= dilation[a]:
            raise ValueError(f"{op}: output_padding {out_pad} must be smaller than either "
                             f"stride {stride} or dilation {dilation} along each axis")
    out_hw = tuple((n - 1) * stride[a] - 2 * pad[a] + dilation[a] * (k - 1) + out_pad[a] + 1
                   for a, (n, k) in enumerate(((H, kh), (W, kw))))
    if min(out_hw) < 1:
        raise ValueError(f"{op}: the output would be {out_hw[0]}x{out_hw[1]} (input {shape}, "
                         f"weight {weight.shape}, stride {stride}, padding {pad}, "
                         f"dilation {dilation}): padding crops more than the output has")
    return _run(ConvTranspose2d, input, weight, bias, stride, pad, dilation, groups, out_hw)
