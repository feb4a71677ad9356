"""Q12: the backward pass of bilinear resizing (align_corners=False), in NumPy.

The forward pass, ``F.interpolate(x, size=(OH, OW), mode='bilinear', align_corners=False)``
(Q6), computes each output pixel (i, j) from the four input pixels around its source point.
Along the rows::

    src = max((i + 0.5) * H / OH - 0.5, 0)      # pixel centres line up, clamped at 0
    y0 = min(floor(src), H - 1),   y1 = min(y0 + 1, H - 1),   ty = src - y0

and the same along the columns (x0, x1, tx with W / OW); the output mixes the four pixels
with weights (1 - ty)(1 - tx), (1 - ty) tx, ty (1 - tx) and ty tx.

Resizing is linear, out = R x, so the gradient with respect to the input is R^T applied to
``grad_out``: every output pixel sends its gradient back to the four input pixels it read,
times the same weights, and where several output pixels read the same input pixel their
contributions **add up** (``np.add.at``, or one weight matrix per axis). This is what
``loss.backward()`` does for every ``resize`` in FCN, PSPNet and DeepLab.

Check with ``minisegnet grade exercises/q12_bilinear_backward.py``.
"""
import numpy as np


def bilinear_backward(grad_out, in_size):
    """Gradient of bilinear resizing (align_corners=False) with respect to its input.

    Args:
        grad_out: (N, C, OH, OW), the gradient of the loss with respect to the resized output.
        in_size: (H, W), the spatial size of the input that was resized.

    Returns:
        ``grad_in`` of shape (N, C, H, W).
    """
    # ---- YOUR CODE BEGINS ----
    raise NotImplementedError("q12_bilinear_backward: send each output gradient back to its four source pixels")
    # ---- YOUR CODE ENDS ----
    return grad_in


if __name__ == "__main__":
    g = np.ones((1, 1, 4, 4))
    print(bilinear_backward(g, (2, 2))[0, 0])      # each input pixel feeds 4 outputs' worth
