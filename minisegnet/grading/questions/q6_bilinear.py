"""Q6: bilinear resizing with both ``align_corners`` in NumPy, compared with
``F.interpolate(mode='bilinear')``; the library's resizing is the answer key."""
from ... import functional as F
from ...tensor import no_grad
from ..compare import compare, t
from ..question import Question
from . import stub

QUESTION = Question("q6_bilinear", "Bilinear resizing with both align_corners", ("bilinear_resize",),
                    answer_key=("minisegnet.functional.resize:*", "minisegnet.kernels.interpolation*:*"),
                    stub=stub("q6_bilinear"))


def bilinear_case(student, rng, x_shape, size, align_corners):
    """Compare ``bilinear_resize`` with ``F.interpolate(mode='bilinear')``; a wrong result
    is also compared with the *other* align_corners, the classic mix-up."""
    x = rng.normal(size=x_shape)

    def reference(ac):
        with no_grad():
            return F.interpolate(t(x), size=size, mode="bilinear", align_corners=ac).numpy()
    got = student.bilinear_resize(x, size, align_corners=align_corners)
    compare(got, reference(align_corners),
            f"bilinear_resize of {x_shape} to {size}, align_corners={align_corners}",
            [(f"with align_corners={not align_corners}", lambda: reference(not align_corners))])


_ALIGN_HINT = ("align_corners=True maps the centres of the corner pixels onto each other; False "
               "maps the images' outer edges onto each other (pixel centres at i + 0.5).")


@QUESTION.check("upsampling x2, align_corners=False", hint=_ALIGN_HINT)
def up_false(student, rng):
    bilinear_case(student, rng, (2, 3, 4, 5), (8, 10), False)


@QUESTION.check("upsampling x2, align_corners=True", hint=_ALIGN_HINT)
def up_true(student, rng):
    bilinear_case(student, rng, (2, 3, 4, 5), (8, 10), True)


@QUESTION.check("downsampling", hint="Source coordinates can fall between any two input pixels; "
                "for align_corners=False clamp negative ones at 0.")
def down(student, rng):
    for ac in (False, True):
        bilinear_case(student, rng, (1, 2, 9, 8), (4, 3), ac)


@QUESTION.check("odd sizes, one axis up and one down, and the same size",
                hint="Rows and columns are interpolated independently, each with its own scale.")
def odd(student, rng):
    for ac in (False, True):
        bilinear_case(student, rng, (1, 1, 5, 7), (11, 3), ac)
        bilinear_case(student, rng, (1, 2, 5, 7), (5, 7), ac)


@QUESTION.check("to and from a single pixel", hint="A 1-pixel axis has no neighbour to interpolate "
                "with; with align_corners=True and one output pixel, it reads input pixel 0.")
def single_pixel(student, rng):
    for ac in (False, True):
        bilinear_case(student, rng, (1, 2, 1, 1), (3, 4), ac)
        bilinear_case(student, rng, (1, 2, 4, 5), (1, 1), ac)
        bilinear_case(student, rng, (1, 1, 1, 6), (3, 2), ac)
