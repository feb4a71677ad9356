"""Q9: the pixel-wise cross-entropy loss, with an ignore index.

A segmentation network outputs ``logits`` of shape (N, K, H, W): K class scores per
pixel. For a pixel with scores z and true class t, the softmax turns the scores into
probabilities ``p_k = exp(z_k) / sum_j exp(z_j)`` and the loss is ``-log p_t``. The
loss of the batch is the mean over pixels.

Some pixels have no trustworthy label (Pascal VOC marks object borders with 255): their
target is ``ignore_index`` and they are left out completely - they add no loss and do
not count in the mean. (If every pixel counted, the network would be pushed towards a
class "255" that does not exist - or the code would index past the K scores.)

Numerics: ``exp(z)`` overflows for z above ~709 in float64. Since
``log sum_j exp(z_j) = m + log sum_j exp(z_j - m)`` for any m, choose m so that no
exponent is positive.

This is ``F.cross_entropy(logits, target, ignore_index=...)`` (PyTorch's semantics).
Check with ``minisegnet grade exercises/q9_cross_entropy.py``.
"""
import numpy as np


def cross_entropy(logits, target, ignore_index=255):
    """Mean cross-entropy over the pixels whose target is not ``ignore_index``.

    Args:
        logits: float array of shape (N, K, H, W), unnormalised class scores.
        target: int array of shape (N, H, W) with values in 0..K-1 or ``ignore_index``.
            You may assume that at least one pixel is not ignored.
        ignore_index (int): the label of pixels to leave out.

    Returns:
        ``loss``, a single number.
    """
    # ---- YOUR CODE BEGINS ----
    raise NotImplementedError("q9_cross_entropy: log-softmax over classes, pick the target, mean over counted pixels")
    # ---- YOUR CODE ENDS ----
    return loss
