"""Q4: output size and receptive field of stacked convolutions, measured by running the
library's conv2d (forward for the size, backward for the receptive field)."""
import numpy as np

from ... import functional as F
from ...tensor import no_grad
from ..compare import number, t
from ..question import CheckFailed, Question
from . import stub

QUESTION = Question("q4_conv_output_size", "Output size and receptive field of stacked convolutions",
                    ("conv_stack_geometry",),
                    answer_key=("minisegnet.functional.conv:*", "minisegnet.kernels.conv*:*"),
                    stub=stub("q4_conv_output_size"))


def conv_stack(x, layers, padded=True):
    """Run ``layers`` as 1-D convolutions (k x 1 kernels of ones) down axis 2 of ``x``."""
    for k, s, p, d in layers:
        w = t(np.ones((1, 1, k, 1)))
        x = F.conv2d(x, w, stride=(s, 1), padding=(p if padded else 0, 0), dilation=(d, 1))
    return x


def reference(in_size, layers):
    """Measured with the library: the output length of the stack on an input of
    ``in_size``, and the span of input positions that reach output 0 in backward()."""
    with no_grad():
        out_size = conv_stack(t(np.zeros((1, 1, in_size, 1))), layers).shape[2]
    stride_product = int(np.prod([s for _, s, _, _ in layers]))
    length = 1 + stride_product * sum((k - 1) * d for k, _, _, d in layers)
    x = t(np.ones((1, 1, length, 1)), requires_grad=True)
    y = conv_stack(x, layers, padded=False)
    y[0, 0, 0, 0].backward()
    reached = np.nonzero(x.grad.numpy()[0, 0, :, 0])[0]
    return out_size, int(reached[-1] - reached[0] + 1)


def jumps(layers):
    """How far apart in the input two neighbouring positions of each layer's input are."""
    out, j = [], 1
    for _, s, _, _ in layers:
        out.append(j)
        j *= s
    return out


def fold(n, layers, step):
    """Apply the per-layer size formula ``step(n, k, s, p, d)`` through the stack."""
    for k, s, p, d in layers:
        n = step(n, k, s, p, d)
    return n


MISTAKES = {
    "output size": [
        ("without the dilation (a dilated kernel spans d(k - 1) + 1 inputs)",
         lambda n, layers: fold(n, layers, lambda n, k, s, p, d: (n + 2 * p - k) // s + 1)),
        ("rounding up instead of down",
         lambda n, layers: fold(n, layers, lambda n, k, s, p, d: -(-(n + 2 * p - d * (k - 1) - 1) // s) + 1)),
    ],
    "receptive field": [
        ("without the dilation", lambda n, layers: 1 + sum((k - 1) * j for (k, _, _, _), j in
                                                           zip(layers, jumps(layers)))),
        ("ignoring the strides of earlier layers", lambda n, layers: 1 + sum((k - 1) * d for k, _, _, d in layers)),
        ("multiplying by this layer's own stride too",
         lambda n, layers: 1 + sum((k - 1) * d * j * s for (k, s, _, d), j in zip(layers, jumps(layers)))),
    ],
}


def geometry_case(student, in_size, layers):
    """Compare ``conv_stack_geometry`` with sizes measured by running the library's conv2d;
    a wrong number is matched against formulas with a known slip to say which one it was."""
    expected = reference(in_size, layers)
    got = student.conv_stack_geometry(in_size, [tuple(layer) for layer in layers])
    call = f"conv_stack_geometry({in_size}, {layers})"
    if not isinstance(got, (tuple, list)) or len(got) != 2:
        raise CheckFailed(f"{call}: expected a pair (out_size, receptive_field), got {got!r}")
    for what, g, e in zip(("output size", "receptive field"), got, expected):
        g = number(g, f"{call}: {what}")
        if g == e:
            continue
        for description, compute in MISTAKES[what]:
            if compute(in_size, layers) == g:
                raise CheckFailed(f"{call}: {what} {g:g} is what you get {description}; expected {e}")
        raise CheckFailed(f"{call}: {what} should be {e}, got {g:g}")


@QUESTION.check("a single 3x3 convolution", hint="Without padding a 3x3 kernel fits n - 2 times; "
                "padding adds p cells on each side.")
def single(student, rng):
    n = int(rng.integers(20, 40))
    geometry_case(student, n, [(3, 1, 0, 1)])
    geometry_case(student, n, [(3, 1, 1, 1)])


@QUESTION.check("strided convolutions on odd and even sizes",
                hint="Count the window positions whose whole kernel fits: the last one may not.")
def strided(student, rng):
    n = 2 * int(rng.integers(10, 20))
    geometry_case(student, n, [(3, 2, 1, 1)])
    geometry_case(student, n + 1, [(3, 2, 1, 1)])
    geometry_case(student, 225, [(7, 2, 3, 1)])
    geometry_case(student, 10, [(2, 3, 0, 1)])


@QUESTION.check("an atrous (dilated) convolution", hint="Dilation d spreads a k-tap kernel over "
                "d(k - 1) + 1 input cells, which changes both the size and the receptive field.")
def dilated(student, rng):
    geometry_case(student, 33, [(3, 1, 6, 6)])
    geometry_case(student, int(rng.integers(8, 14)), [(3, 1, 0, 2)])
    geometry_case(student, 21, [(3, 2, 0, 3)])


@QUESTION.check("a stack of dilated convolutions", hint="Each layer widens the receptive field by "
                "the extra span of its kernel.")
def dilated_stack(student, rng):
    geometry_case(student, int(rng.integers(30, 50)), [(3, 1, 1, 1), (3, 1, 2, 2), (3, 1, 4, 4)])
    geometry_case(student, 17, [(3, 1, 0, 1), (1, 1, 0, 1), (5, 1, 0, 2)])


@QUESTION.check("a stack with strides (a ResNet-like stem)",
                hint="After a stride-s layer, one step of the next layer moves s input pixels (the "
                     "'jump' grows with every stride).")
def strided_stack(student, rng):
    geometry_case(student, 65, [(7, 2, 3, 1), (3, 2, 1, 1), (3, 1, 1, 1), (3, 2, 1, 2)])
    geometry_case(student, int(rng.integers(28, 36)), [(2, 2, 0, 1), (3, 3, 1, 1), (3, 1, 2, 2)])
