"""Q2 (syllabus quiz): the IoU of two binary masks.

Let A be the set of pixels where mask ``a`` is 1 and B the same for ``b``. The
intersection over union (Jaccard index) is::

    IoU(A, B) = |A ∩ B| / |A ∪ B|

where |S| counts the pixels of a set. It is 1 when the masks agree exactly and 0 when
they do not overlap at all. Check your answer with ``minisegnet grade exercises/q2_iou.py``.
"""
import numpy as np


def iou(a, b):
    """IoU of two binary masks of the same shape.

    Args:
        a, b: NumPy arrays of any (equal) shape holding 0/1 integers or booleans, e.g.
            ``np.random.randint(2, size=(10, 10))``. You may assume that at least one
            pixel is set in ``a`` or in ``b``.

    Returns:
        a number in [0, 1], stored in ``IoU``.
    """
    # ---- YOUR CODE BEGINS ----
    raise NotImplementedError("q2_iou: count the intersection and the union")
    # ---- YOUR CODE ENDS ----
    return IoU


if __name__ == "__main__":
    a = np.random.randint(2, size=(10, 10))
    b = np.random.randint(2, size=(10, 10))
    print("IoU =", iou(a, b))
