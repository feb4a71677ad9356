"""Q5: conv2d's forward via im2col in NumPy, compared with ``F.conv2d``; the library's
convolution (functional and kernels) is the answer key."""
from ... import functional as F
from ...tensor import no_grad
from ..compare import compare, t
from ..question import Question
from . import stub

QUESTION = Question("q5_conv2d_im2col", "conv2d forward via im2col", ("conv2d",),
                    answer_key=("minisegnet.functional.conv:*", "minisegnet.kernels.conv*:*",
                                "minisegnet.kernels.*im2col*:*"),
                    stub=stub("q5_conv2d_im2col"))


def _taps_swapped(w):
    """The weight a patch matrix with its taps in (kW, kH) order effectively applies."""
    o, c, kh, kw = w.shape
    return w.reshape(o, c, kh * kw).reshape(o, c, kw, kh).transpose(0, 1, 3, 2)


def _channels_inside(w):
    """The weight a patch matrix ordered (kH, kW, C_in) instead of (C_in, kH, kW) applies."""
    o, c, kh, kw = w.shape
    return w.reshape(o, kh, kw, c).transpose(0, 3, 1, 2)


MISTAKES = [
    ("with the kernel flipped (that is convolution in the signal-processing sense; "
     "deep-learning 'convolution' is cross-correlation)", lambda w: w[:, :, ::-1, ::-1]),
    ("with the kernel taps in the patch matrix in (kW, kH) order: the rows of `cols` must follow "
     "weight.reshape(C_out, -1), i.e. (C_in, kH, kW) with kW fastest", _taps_swapped),
    ("with the rows of the patch matrix in (kH, kW, C_in) order: they must follow "
     "weight.reshape(C_out, -1), i.e. (C_in, kH, kW)", _channels_inside),
    ("with the kernel's height and width exchanged", lambda w: w.transpose(0, 1, 3, 2)),
]
_ORDER_HINT = (" Build the rows of the patch matrix in the order of weight.reshape(C_out, -1): "
               "channel, then kernel row, then kernel column.")


def conv_case(student, rng, x_shape, w_shape, bias=False, **kwargs):
    """Compare the student's NumPy conv2d with ``F.conv2d`` on random float64 inputs;
    ``kwargs`` are stride / padding / dilation. Flipped kernels, patch rows in the wrong
    order and a lost bias are recognised."""
    x, w = rng.normal(size=x_shape), rng.normal(size=w_shape)
    b = rng.normal(size=w_shape[0]) if bias else None

    def reference(weight=w, bias_=b):
        with no_grad():
            return F.conv2d(t(x), t(weight), None if bias_ is None else t(bias_), **kwargs).numpy()
    got = student.conv2d(x, w, b, **kwargs)
    mistakes = [(d, lambda f=f: reference(f(w))) for d, f in MISTAKES if f(w).shape == w.shape]
    if bias:
        mistakes.append(("without the bias", lambda: reference(bias_=None)))
    args = ", ".join(f"{k}={v}" for k, v in kwargs.items())
    compare(got, reference(), f"conv2d of x {x_shape} with weight {w_shape}{', bias' if bias else ''}"
            f"{', ' + args if args else ''}", mistakes)


@QUESTION.check("3x3 kernel, no padding", hint="Output (N, C_out, H - 2, W - 2): every output pixel "
                "is the dot product of the weight with the window under it, summed over channels."
                + _ORDER_HINT)
def basic(student, rng):
    conv_case(student, rng, (2, 3, 6, 6), (4, 3, 3, 3))


@QUESTION.check("with a bias", hint="The bias adds one number per output channel.")
def with_bias(student, rng):
    conv_case(student, rng, (2, 3, 5, 6), (4, 3, 3, 3), bias=True)


@QUESTION.check("zero padding", hint="Pad the input with p zeros on every side before taking windows.")
def padding(student, rng):
    conv_case(student, rng, (1, 2, 5, 5), (3, 2, 3, 3), padding=1)
    conv_case(student, rng, (1, 2, 6, 4), (3, 2, 5, 5), padding=2)


@QUESTION.check("strides on odd sizes", hint="With stride s the windows start every s pixels; "
                "H_out = floor((H + 2p - d(k - 1) - 1) / s) + 1.")
def strides(student, rng):
    conv_case(student, rng, (1, 2, 7, 9), (3, 2, 3, 3), stride=2, padding=1)
    conv_case(student, rng, (2, 1, 8, 7), (2, 1, 3, 3), stride=3)


@QUESTION.check("dilation", hint="A dilated window reads every d-th pixel: taps at offsets "
                "0, d, 2d, ... of the window's start.")
def dilation(student, rng):
    conv_case(student, rng, (1, 2, 8, 7), (3, 2, 3, 3), padding=2, dilation=2)
    conv_case(student, rng, (1, 1, 9, 9), (2, 1, 3, 3), stride=2, dilation=3, padding=1)


@QUESTION.check("non-square kernels (2x3 and 3x2)",
                hint="Treat the kernel's height and width separately: tap (u, v) reads row "
                     "i*s + u*d and column j*s + v*d." + _ORDER_HINT)
def nonsquare(student, rng):
    conv_case(student, rng, (2, 3, 5, 6), (2, 3, 2, 3))
    conv_case(student, rng, (1, 2, 6, 5), (3, 2, 3, 2), padding=1, bias=True)
