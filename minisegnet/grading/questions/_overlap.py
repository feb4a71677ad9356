"""The checks shared by IoU (Q2) and Dice (Q3): random, extreme, nested, boolean and
odd-shaped masks, compared with ``metrics.iou`` / ``metrics.dice``."""
import numpy as np

from ... import metrics
from ..compare import compare, number

MISTAKES = {
    "iou": [("by dividing by |A| + |B| instead of the union's area",
             lambda a, b: (a & b).sum() / (a.sum() + b.sum())),
            ("with the Dice formula", lambda a, b: 2 * (a & b).sum() / (a.sum() + b.sum())),
            ("by dividing by the number of pixels", lambda a, b: (a & b).sum() / a.size),
            ("by dividing by |A| (the first mask's area) instead of the union's",
             lambda a, b: (a & b).sum() / a.sum()),
            ("with integer division (//), which rounds the ratio down to 0 or 1",
             lambda a, b: (a & b).sum() // (a | b).sum())],
    "dice": [("with the IoU formula", lambda a, b: (a & b).sum() / (a | b).sum()),
             ("without the factor 2", lambda a, b: (a & b).sum() / (a.sum() + b.sum())),
             ("by dividing by the union's area", lambda a, b: 2 * (a & b).sum() / (a | b).sum()),
             ("with integer division (//), which rounds the ratio down",
              lambda a, b: 2 * (a & b).sum() // (a.sum() + b.sum()))],
}


def overlap_case(student, fn_name, a, b):
    """Compare ``student.<fn_name>(a, b)`` with ``metrics.<fn_name>`` on one pair of masks,
    naming the formula slip (wrong denominator, missing factor) the result matches."""
    reference = getattr(metrics, fn_name)(a, b)
    got = number(getattr(student, fn_name)(a, b), f"{fn_name} of {a.shape} masks")
    ab = (a.astype(bool), b.astype(bool))
    mistakes = [(d, lambda f=f: f(*ab)) for d, f in MISTAKES[fn_name]]
    compare(got, reference, f"{fn_name}(a, b) of {a.shape} masks", mistakes)


def random_masks(rng, shape, dtype=np.int64):
    """Two random 0/1 masks of ``shape`` whose union is not empty."""
    while True:
        a, b = rng.integers(0, 2, size=shape), rng.integers(0, 2, size=shape)
        if (a | b).any():
            return a.astype(dtype), b.astype(dtype)


def register(q, fn_name, formula):
    """Register the five checks shared by IoU (Q2) and Dice (Q3) on question ``q``."""
    @q.check("random 10x10 masks, as in the quiz", hint=f"{fn_name} = {formula}; sum the masks "
             f"(or logical combinations of them) to count pixels.")
    def random_10x10(student, rng):
        for _ in range(5):
            overlap_case(student, fn_name, *random_masks(rng, (10, 10)))

    @q.check("identical, disjoint and one-empty masks",
             hint=f"{fn_name} is 1 for identical masks and 0 when they do not overlap; an empty "
                  f"mask overlaps nothing.")
    def extremes(student, rng):
        a, b = random_masks(rng, (6, 6))
        a[0, 0], a[0, 1] = 1, 0
        overlap_case(student, fn_name, a, a.copy())
        overlap_case(student, fn_name, a, 1 - a)
        overlap_case(student, fn_name, a, np.zeros_like(a))
        overlap_case(student, fn_name, np.zeros_like(a), a)

    @q.check("one mask inside the other (both orders)",
             hint=f"{fn_name} = {formula} is symmetric in A and B and a fraction between 0 and 1: "
                  f"divide as floats, and by the right area.")
    def nested(student, rng):
        inner = np.zeros((7, 8), dtype=np.int64)
        inner[1:4, 2:6] = 1
        outer = inner.copy()
        outer[rng.integers(4, 7), rng.integers(0, 8)] = 1
        outer[0, :rng.integers(1, 8)] = 1
        overlap_case(student, fn_name, inner, outer)
        overlap_case(student, fn_name, outer, inner)

    @q.check("boolean masks", hint="Your code should work for bool arrays as well as 0/1 integers.")
    def boolean(student, rng):
        for _ in range(3):
            overlap_case(student, fn_name, *random_masks(rng, (7, 9), dtype=bool))

    @q.check("masks of other shapes (1-D, 3-D, odd sizes)",
             hint="Count over all pixels, whatever the masks' shape.")
    def shapes(student, rng):
        for shape in ((13,), (3, 5, 7), (1, 11)):
            overlap_case(student, fn_name, *random_masks(rng, shape))
