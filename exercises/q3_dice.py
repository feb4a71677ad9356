"""Q3: the Dice coefficient of two binary masks.

With A and B the pixel sets of two masks, the Dice coefficient (the F1 score of the
pixels) is::

    Dice(A, B) = 2 |A ∩ B| / (|A| + |B|)

Like IoU it is 1 for identical masks and 0 for disjoint ones, but it counts the overlap
twice, so for the same masks Dice >= IoU. Check your answer with
``minisegnet grade exercises/q3_dice.py``.
"""
import numpy as np


def dice(a, b):
    """Dice coefficient of two binary masks of the same shape.

    Args:
        a, b: NumPy arrays of any (equal) shape holding 0/1 integers or booleans. You may
            assume that at least one pixel is set in ``a`` or in ``b``.

    Returns:
        a number in [0, 1], stored in ``Dice``.
    """
    # ---- YOUR CODE BEGINS ----
    raise NotImplementedError("q3_dice: count the intersection and both areas")
    # ---- YOUR CODE ENDS ----
    return Dice
