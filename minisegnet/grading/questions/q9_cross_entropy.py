"""Q9: pixel-wise cross-entropy with an ignore index in NumPy, compared with
``F.cross_entropy``; the library's softmax and losses are the answer key."""
import numpy as np

from ... import functional as F
from ...tensor import no_grad, tensor
from ..compare import compare, number, t
from ..question import Question
from . import stub

QUESTION = Question("q9_cross_entropy", "Pixel-wise cross-entropy with an ignore index", ("cross_entropy",),
                    answer_key=("minisegnet.functional.loss:*", "minisegnet.kernels.*softmax*:*",
                                "minisegnet.kernels.*entropy*:*", "minisegnet.kernels.*loss*:*"),
                    stub=stub("q9_cross_entropy"))


def ce_case(student, rng, shape, ignore_index=255, ignored=0.0, scale=1.0):
    """Compare the student's cross-entropy with ``F.cross_entropy(ignore_index=...)``.

    ``ignored`` is the fraction of pixels labelled ``ignore_index``; ``scale`` multiplies the
    logits (1000 makes a naive ``exp`` overflow). Averaging over all pixels, ignored ones
    included, and summing instead of averaging are recognised.
    """
    n, c, h, w = shape
    logits = rng.normal(size=shape) * scale
    target = rng.integers(0, c, size=(n, h, w))
    target[rng.random(size=(n, h, w)) < ignored] = ignore_index
    target[0, 0, 0] = 0                  # at least one pixel counts

    def reference(reduction="mean"):
        with no_grad():
            return F.cross_entropy(t(logits), tensor(target, dtype=np.int64, device="cpu"),
                                   ignore_index=ignore_index, reduction=reduction).numpy()
    got = number(student.cross_entropy(logits, target, ignore_index=ignore_index), "cross_entropy")
    mistakes = [("by averaging over all pixels, ignored ones included",
                 lambda: reference("sum") / target.size),
                ("by summing instead of averaging", lambda: reference("sum"))]
    compare(got, reference(), f"cross_entropy of logits {shape}, ignore_index={ignore_index}", mistakes)


_HINT = ("loss = mean over the counted pixels of -log softmax(logits)[target], where softmax "
         "runs over the class axis (axis 1).")


@QUESTION.check("every pixel labelled", hint=_HINT)
def plain(student, rng):
    ce_case(student, rng, (2, 4, 3, 5))


@QUESTION.check("pixels labelled 255 are ignored", hint="Ignored pixels add nothing to the sum and do "
                "not count in the mean's denominator; do not index the logits with their label.")
def ignored(student, rng):
    ce_case(student, rng, (2, 4, 5, 3), ignored=0.3)


@QUESTION.check("another ignore_index (-1)", hint="Use the ignore_index argument, not a fixed 255.")
def other_index(student, rng):
    ce_case(student, rng, (2, 3, 4, 4), ignore_index=-1, ignored=0.3)


@QUESTION.check("large logits (numerical stability)", hint="exp(1000) overflows; rewrite log(sum(exp(z))) "
                "so that the largest exponent is 0 (the log-sum-exp trick).")
def stable(student, rng):
    ce_case(student, rng, (2, 5, 3, 3), ignored=0.2, scale=1000.0)


@QUESTION.check("one pixel, many classes", hint=_HINT)
def many_classes(student, rng):
    ce_case(student, rng, (3, 10, 1, 1))
