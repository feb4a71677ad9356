"""Q10: transposed convolution in NumPy, compared with ``F.conv_transpose2d`` and checked
as the adjoint of ``F.conv2d``; the library's convolutions are the answer key."""
import math

from ... import functional as F
from ...tensor import no_grad
from ..compare import RTOL, ATOL, as_array, compare, t
from ..question import CheckFailed, Question
from . import stub

QUESTION = Question("q10_transposed_conv", "Transposed convolution, the adjoint of conv2d",
                    ("conv_transpose2d",),
                    answer_key=("minisegnet.functional.conv:*", "minisegnet.kernels.conv*:*"),
                    stub=stub("q10_transposed_conv"))


def tconv_case(student, rng, x_shape, w_shape, stride=1, padding=0):
    """Compare the student's transposed convolution with ``F.conv_transpose2d``; a flipped
    kernel and a weight read with in/out channels swapped are recognised. Returns
    ``(x, weight, student_output)`` for the adjoint check."""
    x, w = rng.normal(size=x_shape), rng.normal(size=w_shape)

    def reference(weight=w):
        with no_grad():
            return F.conv_transpose2d(t(x), t(weight), stride=stride, padding=padding).numpy()
    got = student.conv_transpose2d(x, w, stride=stride, padding=padding)
    mistakes = [("with the kernel flipped", lambda: reference(w[:, :, ::-1, ::-1])),
                ("with the weight read as (C_out, C_in, kH, kW); its layout is (C_in, C_out, kH, kW)",
                 lambda: reference(w.transpose(1, 0, 2, 3)))]
    compare(got, reference(), f"conv_transpose2d of x {x_shape} with weight {w_shape}, "
            f"stride={stride}, padding={padding}", mistakes)
    return x, w, as_array(got, "conv_transpose2d")


_HINT = ("Every input pixel adds weight * value into an output window starting at "
         "(i * stride, j * stride); the output is then cropped by `padding` on every side.")


@QUESTION.check("stride 1, no padding", hint=_HINT)
def basic(student, rng):
    tconv_case(student, rng, (2, 3, 4, 5), (3, 2, 3, 3))


@QUESTION.check("stride 2, kernel 4, padding 1 (FCN's x2 upsampling)",
                hint="H_out = (H - 1) * stride - 2 * padding + kH: windows of neighbouring inputs overlap.")
def fcn(student, rng):
    tconv_case(student, rng, (1, 3, 5, 6), (3, 3, 4, 4), stride=2, padding=1)


@QUESTION.check("other kernels, strides and paddings", hint=_HINT)
def other(student, rng):
    tconv_case(student, rng, (1, 2, 3, 4), (2, 3, 3, 3), stride=3)
    tconv_case(student, rng, (2, 4, 4, 3), (4, 1, 5, 5), stride=2, padding=2)
    tconv_case(student, rng, (1, 3, 4, 5), (3, 2, 3, 1), stride=2, padding=1)


@QUESTION.check("the adjoint of conv2d: <conv2d(y), x> == <y, conv_transpose2d(x)>",
                hint="conv_transpose2d(x) is the gradient of conv2d with respect to its input: every "
                     "product w * x that conv2d sums into one output, send it back to where it came from.")
def adjoint(student, rng):
    x, w, got = tconv_case(student, rng, (2, 3, 5, 4), (3, 2, 3, 3), stride=2, padding=1)
    y = rng.normal(size=got.shape)
    with no_grad():
        conv_y = F.conv2d(t(y), t(w), stride=2, padding=1).numpy()
    lhs, rhs = float((conv_y * x).sum()), float((y * got).sum())
    if not math.isclose(lhs, rhs, rel_tol=RTOL, abs_tol=ATOL):
        raise CheckFailed(f"<conv2d(y), x> = {lhs:.6g} but <y, conv_transpose2d(x)> = {rhs:.6g}")
