"""Q5: a 2-d convolution as one matrix product (im2col).

A convolution layer slides a (C_in, kH, kW) weight over the input and takes a dot product
at every position (deep learning's "convolution" is cross-correlation: the kernel is
*not* flipped)::

    out[n, o, i, j] = bias[o] + sum_{c, u, v} weight[o, c, u, v]
                                 * xpad[n, c, i*s + u*d, j*s + v*d]

with ``xpad`` the input padded by p zeros on every side, stride s, dilation d, and
``OH = floor((H + 2p - d(kH - 1) - 1) / s) + 1`` (the same for OW).

**im2col** turns this into matrix algebra: copy every window into a column, giving
``cols`` of shape (N, C_in * kH * kW, OH * OW); reshape the weight to a matrix
(C_out, C_in * kH * kW); then ``weight_matrix @ cols`` is (N, C_out, OH * OW), which
reshapes to the output. Building ``cols`` needs only a loop over the kH * kW kernel
taps: for a fixed tap (u, v), the values it reads in *every* window form one strided
slice of ``xpad``.

Check with ``minisegnet grade exercises/q5_conv2d_im2col.py``.
"""
import numpy as np


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1):
    """Forward pass of a 2-d convolution on NumPy arrays, as ``F.conv2d`` computes it.

    Args:
        x: input, shape (N, C_in, H, W).
        weight: kernels, shape (C_out, C_in, kH, kW).
        bias: None or shape (C_out,).
        stride, padding, dilation (int): the same along both axes.

    Returns:
        ``out`` of shape (N, C_out, OH, OW).
    """
    # ---- YOUR CODE BEGINS ----
    raise NotImplementedError("q5_conv2d_im2col: pad, gather the windows into columns, one matmul")
    # ---- YOUR CODE ENDS ----
    return out
