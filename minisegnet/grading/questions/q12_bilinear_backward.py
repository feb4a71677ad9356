"""Q12: the backward of bilinear resizing (align_corners=False) in NumPy, compared with the
library's autograd through ``F.interpolate`` and with central finite differences of the
forward; the library's resizing (forward and backward) is the answer key."""
import numpy as np

from ... import functional as F
from ...tensor import no_grad
from ..compare import as_array, compare, t
from ..question import CheckFailed, Question
from . import stub

QUESTION = Question("q12_bilinear_backward", "The backward of bilinear resizing", ("bilinear_backward",),
                    answer_key=("minisegnet.functional.resize:*", "minisegnet.kernels.interpolation*:*"),
                    stub=stub("q12_bilinear_backward"))


def reference(grad_out, in_size, align_corners=False):
    """The library's gradient: backward() through ``F.interpolate`` from ``grad_out``."""
    n, c = grad_out.shape[:2]
    x = t(np.zeros((n, c) + tuple(in_size)), requires_grad=True)
    y = F.interpolate(x, size=grad_out.shape[2:], mode="bilinear", align_corners=align_corners)
    y.backward(t(grad_out))
    return x.grad.numpy()


def _axis(n_in, n_out, clamp=True):
    """Source pixels and weights along one axis: ``(i0, i1, t)``, each of length ``n_out``."""
    src = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
    if clamp:
        src = np.maximum(src, 0.0)
    i0 = np.minimum(np.floor(src).astype(int), n_in - 1)
    i0 = np.maximum(i0, 0)
    i1 = np.minimum(i0 + 1, n_in - 1)
    return i0, i1, src - i0


def _scatter(grad_out, in_size, accumulate=True, clamp=True):
    """``R^T grad_out`` by scattering (with ``accumulate=False``: the classic slip of a
    fancy-index ``+=`` that drops repeated indices)."""
    (h, w), (oh, ow) = in_size, grad_out.shape[2:]
    y0, y1, ty = _axis(h, oh, clamp)
    x0, x1, tx = _axis(w, ow, clamp)
    out = np.zeros(grad_out.shape[:2] + (h, w))
    rows, cols = np.meshgrid(np.arange(oh), np.arange(ow), indexing="ij")
    for ys, wy in ((y0, 1 - ty), (y1, ty)):
        for xs, wx in ((x0, 1 - tx), (x1, tx)):
            contribution = grad_out * (wy[:, None] * wx[None, :])
            index = (slice(None), slice(None), ys[rows], xs[cols])
            if accumulate:
                np.add.at(out, index, contribution)
            else:
                out[index] += contribution
    return out


def backward_case(student, rng, grad_shape, in_size):
    """Compare ``bilinear_backward`` with the library's autograd; name the known slips."""
    g = rng.normal(size=grad_shape)
    got = student.bilinear_backward(g, tuple(in_size))

    def resized_back():
        with no_grad():
            return F.interpolate(t(g), size=tuple(in_size), mode="bilinear", align_corners=False).numpy()
    compare(got, reference(g, in_size), f"bilinear_backward of grad_out {grad_shape} to {tuple(in_size)}", [
        ("with an assignment-style `+=` on repeated indices (use np.add.at: several output pixels "
         "read the same input pixel and their gradients must add up)",
         lambda: _scatter(g, in_size, accumulate=False)),
        ("with the weights of align_corners=True", lambda: reference(g, in_size, align_corners=True)),
        ("by resizing grad_out back to the input size (the forward again, not its transpose)",
         resized_back),
        ("without clamping negative source coordinates at 0", lambda: _scatter(g, in_size, clamp=False)),
    ])
    return g, as_array(got, "bilinear_backward")


_HINT = ("Work out y0, y1, ty and x0, x1, tx as in the forward pass, then add each output "
         "gradient times each of its four weights into its source pixel; repeated source pixels "
         "accumulate.")


@QUESTION.check("upsampling x2 (every input pixel feeds several outputs)", hint=_HINT)
def upsampling(student, rng):
    backward_case(student, rng, (2, 3, 8, 10), (4, 5))


@QUESTION.check("downsampling", hint="Downsampling skips input pixels: those get no gradient.")
def downsampling(student, rng):
    backward_case(student, rng, (1, 2, 4, 3), (9, 8))


@QUESTION.check("odd sizes, one axis up and one down, and the same size",
                hint="Rows and columns have their own scale; the same size gives the identity.")
def odd(student, rng):
    backward_case(student, rng, (1, 1, 11, 3), (5, 7))
    backward_case(student, rng, (1, 2, 5, 7), (5, 7))


@QUESTION.check("to and from a single pixel", hint="A 1-pixel axis: every source index is 0.")
def single(student, rng):
    backward_case(student, rng, (1, 2, 3, 4), (1, 1))
    backward_case(student, rng, (1, 1, 1, 1), (4, 5))


@QUESTION.check("central finite differences of the forward pass agree",
                hint="grad_in[n, c, y, x] is how fast sum(resize(x) * grad_out) changes when "
                     "input pixel (y, x) moves: R^T grad_out.")
def finite_differences(student, rng):
    in_size = (int(rng.integers(3, 7)), int(rng.integers(3, 7)))
    g, got = backward_case(student, rng, (1, 2, 7, 5), in_size)
    x = rng.normal(size=(1, 2) + in_size)

    def loss(values):
        with no_grad():
            return float((F.interpolate(t(values), size=(7, 5), mode="bilinear",
                                        align_corners=False).numpy() * g).sum())
    h = 1e-6
    for _ in range(6):
        index = tuple(int(rng.integers(0, s)) for s in x.shape)
        bump = np.zeros_like(x)
        bump[index] = h
        numeric = (loss(x + bump) - loss(x - bump)) / (2 * h)
        if not np.isclose(got[index], numeric, rtol=1e-5, atol=1e-7):
            raise CheckFailed(f"at input pixel {index}: your gradient {got[index]:.6g}, central "
                              f"finite differences {numeric:.6g}")
