"""conv2d the textbook way: pad, take a strided view of every window, one matrix product.

    y[n, o, yo, xo] = sum_{c, i, j} w[o, c, i, j] * xpad[n, g*C/g + c, sh*yo + i*dh, sw*xo + j*dw]

1. pad the input with zeros (top/left ``pt, pl``; bottom/right as much as the output needs);
2. ``windows[n, c, i, j, yo, xo] = xpad[n, c, sh*yo + i*dh, sw*xo + j*dw]`` is a *view*:
   the same memory read with six strides, no copy (``as_strided``);
3. every output pixel is a dot product of a window with a filter, so the whole
   convolution is one contraction over (c, i, j) per group -- ``einsum``, which hands it
   to a single matrix product (this is *im2col* + GEMM with the copy left to NumPy).

Slow and memory-hungry next to :mod:`minisegnet.kernels.conv` (the contraction copies
kh*kw times the input), but short enough to check by eye: the tests use it as a second
oracle for the fast kernels. NumPy only.
"""
import numpy as np
from numpy.lib.stride_tricks import as_strided


def conv2d(x, weight, bias=None, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1, out_hw=None):
    """x (N, C, H, W), weight (O, C/groups, kh, kw), bias (O,) or None -> y (N, O, Ho, Wo).

    ``padding`` is (top, left); ``out_hw`` defaults to symmetric padding.
    """
    (sh, sw), (pt, pl), (dh, dw) = stride, padding, dilation
    N, C, H, W = x.shape
    O, Cg, kh, kw = weight.shape
    if out_hw is None:
        out_hw = ((H + 2 * pt - dh * (kh - 1) - 1) // sh + 1, (W + 2 * pl - dw * (kw - 1) - 1) // sw + 1)
    Ho, Wo = out_hw
    Hp, Wp = sh * (Ho - 1) + dh * (kh - 1) + 1, sw * (Wo - 1) + dw * (kw - 1) + 1   # rows/cols read
    xpad = np.zeros((N, C, max(Hp, pt + H), max(Wp, pl + W)), dtype=x.dtype)
    xpad[:, :, pt:pt + H, pl:pl + W] = x
    n_, c_, h_, w_ = xpad.strides
    windows = as_strided(xpad, (N, groups, Cg, kh, kw, Ho, Wo),
                         (n_, Cg * c_, c_, dh * h_, dw * w_, sh * h_, sw * w_), writeable=False)
    w = weight.reshape(groups, O // groups, Cg, kh, kw)
    y = np.einsum("ngcijyx,gocij->ngoyx", windows, w, optimize=True).reshape(N, O, Ho, Wo)
    return y if bias is None else y + bias.reshape(1, O, 1, 1)
