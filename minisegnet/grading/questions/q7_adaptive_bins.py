"""Q7: the bins of adaptive pooling, compared with ``kernels.pooling.adaptive_bins`` and
``F.adaptive_avg_pool2d``, which are the answer key."""
from ... import functional as F
from ...kernels import pooling as pooling_kernels
from ...tensor import no_grad
from ..compare import compare, t
from ..question import CheckFailed, Question
from . import stub

QUESTION = Question("q7_adaptive_bins", "Adaptive pooling bins", ("adaptive_bins", "adaptive_avg_pool2d"),
                    answer_key=("minisegnet.functional.pooling:*daptive*",
                                "minisegnet.kernels.pooling:adaptive_*"),
                    stub=stub("q7_adaptive_bins"))

MISTAKES = [
    ("with the end rounded down (off by one: the bins then miss input cells)",
     lambda n, m: [(i * n // m, (i + 1) * n // m) for i in range(m)]),
    ("with the start rounded up", lambda n, m: [(-(-i * n // m), -(-(i + 1) * n // m)) for i in range(m)]),
    ("with an inclusive end (Python ranges exclude their end)",
     lambda n, m: [(i * n // m, -(-(i + 1) * n // m) - 1) for i in range(m)]),
]


def bins_case(student, in_size, out_size):
    """Compare ``adaptive_bins`` with ``kernels.pooling.adaptive_bins``; name the rounding
    slip the wrong bins match, if any."""
    expected = [tuple(int(v) for v in b) for b in pooling_kernels.adaptive_bins(in_size, out_size)]
    call = f"adaptive_bins({in_size}, {out_size})"
    got = student.adaptive_bins(in_size, out_size)
    try:
        got = [tuple(int(v) for v in b) for b in got]
    except (TypeError, ValueError):
        raise CheckFailed(f"{call}: expected a list of (start, end) pairs, got {got!r}") from None
    if got == expected:
        return
    if len(got) != len(expected):
        raise CheckFailed(f"{call}: expected {len(expected)} bins, got {len(got)}")
    for description, compute in MISTAKES:
        if compute(in_size, out_size) == got:
            raise CheckFailed(f"{call} gives {got}: that is {description}")
    i = next(i for i, (g, e) in enumerate(zip(got, expected)) if g != e)
    raise CheckFailed(f"{call}: bin {i} should be {expected[i]}, got {got[i]}")


_HINT = ("Bin i holds every cell that the stretch [i * in / out, (i + 1) * in / out) touches, "
         "even partly; round each end the way that keeps those cells, in integer arithmetic.")


@QUESTION.check("output size divides the input size", hint=_HINT)
def divides(student, rng):
    for n, m in ((6, 3), (8, 4), (6, 1), (12, 6)):
        bins_case(student, n, m)


@QUESTION.check("bins that overlap (7 -> 3, 10 -> 4, 5 -> 2)", hint=_HINT)
def overlap(student, rng):
    for n, m in ((7, 3), (10, 4), (5, 2), (13, 6), (int(rng.integers(14, 30)), 5)):
        bins_case(student, n, m)


@QUESTION.check("more outputs than inputs (2 -> 3, 3 -> 5)", hint=_HINT)
def upsizing(student, rng):
    for n, m in ((2, 3), (3, 5), (1, 4)):
        bins_case(student, n, m)


@QUESTION.check("one bin per input cell", hint="in == out gives one cell per bin.")
def identity(student, rng):
    for n in (1, 5, 6):
        bins_case(student, n, n)


@QUESTION.check("your bins pool like F.adaptive_avg_pool2d",
                hint="adaptive_avg_pool2d averages x over the bins of both axes; fix adaptive_bins first.")
def pooled(student, rng):
    for x_shape, size in (((2, 3, 7, 10), (3, 4)), ((1, 2, 6, 6), (6, 1)), ((1, 1, 5, 9), (2, 6))):
        x = rng.normal(size=x_shape)
        with no_grad():
            expected = F.adaptive_avg_pool2d(t(x), size).numpy()
        compare(student.adaptive_avg_pool2d(x, size), expected, f"adaptive_avg_pool2d of {x_shape} to {size}")
