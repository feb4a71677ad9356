"""Q10: transposed convolution, the adjoint of convolution.

FCN upsamples its coarse class scores with a *transposed convolution* (sometimes
wrongly called "deconvolution"). A strided convolution maps a big image to a small one
with a linear map ``y = C x``; the transposed convolution is the map with the
transposed matrix, ``C^T``, from the small size back to the big one. It is exactly what
the backward pass of conv2d does to the gradient with respect to its input.

Concretely, conv2d *gathers*: each output sums weight * input over one window. The
transpose *scatters*: each input pixel x[n, c, i, j] adds ``x[n, c, i, j] * weight[c, o]``
(a kH x kW patch) into the output channel o at rows ``i * stride ... i * stride + kH - 1``
and the matching columns, overlapping patches adding up. Padding p of the convolution
means the transpose finally crops p pixels from every side, so::

    H_out = (H - 1) * stride - 2 * padding + kH        (the same for W)

The weight layout is PyTorch's for ``ConvTranspose2d``: (C_in, C_out, kH, kW) - the
same array that a conv2d from C_out to C_in channels would use.
Check with ``minisegnet grade exercises/q10_transposed_conv.py``.
"""
import numpy as np


def conv_transpose2d(x, weight, stride=1, padding=0):
    """Transposed 2-d convolution on NumPy arrays, as ``F.conv_transpose2d`` computes it.

    Args:
        x: input, shape (N, C_in, H, W).
        weight: shape (C_in, C_out, kH, kW).
        stride, padding (int): the same along both axes.

    Returns:
        ``out`` of shape (N, C_out, H_out, W_out).
    """
    # ---- YOUR CODE BEGINS ----
    raise NotImplementedError("q10_transposed_conv: scatter weighted patches, then crop the padding")
    # ---- YOUR CODE ENDS ----
    return out
