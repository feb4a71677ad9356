"""Q7: the bins of adaptive pooling.

PSPNet pools a feature map of *any* size into a fixed 1x1, 2x2, 3x3 and 6x6 grid
(``nn.AdaptiveAvgPool2d(s)``). Along one axis, ``out`` outputs split ``in`` input
cells into ``out`` contiguous bins ``[start, end)`` of (nearly) equal length that
together cover the whole input. Output i is responsible for the fractional stretch
``[i * in / out, (i + 1) * in / out)`` of the axis, and its bin holds every cell that
stretch touches, even partly. So when ``out`` does not divide ``in`` neighbouring bins
share a cell, and when ``out > in`` cells are reused. (These are PyTorch's bins.)

``adaptive_avg_pool2d`` below is complete: it averages a (N, C, H, W) array over your
bins. Once ``adaptive_bins`` is right, it matches ``F.adaptive_avg_pool2d``.
Check with ``minisegnet grade exercises/q7_adaptive_bins.py``.
"""
import numpy as np


def adaptive_bins(in_size, out_size):
    """The input range ``[start, end)`` pooled by each output of adaptive pooling.

    Args:
        in_size (int): number of input cells along the axis.
        out_size (int): number of outputs (bins) along the axis.

    Returns:
        ``bins``: a list of ``out_size`` pairs ``(start, end)`` of ints, for example
        ``adaptive_bins(6, 3) == [(0, 2), (2, 4), (4, 6)]``.
    """
    # ---- YOUR CODE BEGINS ----
    raise NotImplementedError("q7_adaptive_bins: one (start, end) pair per output")
    # ---- YOUR CODE ENDS ----
    return bins


def adaptive_avg_pool2d(x, output_size):
    """Average (N, C, H, W) over the adaptive bins of both axes: (N, C, OH, OW)."""
    oh, ow = output_size
    out = np.empty(x.shape[:2] + (oh, ow), dtype=x.dtype)
    for i, (h0, h1) in enumerate(adaptive_bins(x.shape[2], oh)):
        for j, (w0, w1) in enumerate(adaptive_bins(x.shape[3], ow)):
            out[:, :, i, j] = x[:, :, h0:h1, w0:w1].mean(axis=(2, 3))
    return out
