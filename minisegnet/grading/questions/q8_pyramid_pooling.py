"""Q8: ``PyramidPooling.forward`` of PSPNet, compared with ``heads.PyramidPooling`` on the
same random weights; the library's pyramid pooling forward is the answer key."""
from ... import functional as F
from ...models import heads
from ...tensor import float64
from ..compare import compare_modules
from ..question import Question
from . import stub

QUESTION = Question("q8_pyramid_pooling", "PyramidPooling.forward (PSPNet)", ("PyramidPooling",),
                    answer_key=("minisegnet.models.heads:PyramidPooling.forward",
                                "minisegnet.models.heads:PSPHead.forward"),
                    stub=stub("q8_pyramid_pooling"))


def input_last(module, x):
    """Pyramid pooling with the input concatenated after the branches instead of before."""
    size = x.shape[2:]
    outs = [heads.resize(conv(pool(x)), size, align_corners=module.align_corners)
            for pool, conv in zip(module.avgpools, module.convs)]
    return F.cat(outs + [x], dim=1)


def flipped(module, x):
    """Pyramid pooling computed with the opposite ``align_corners``."""
    other = heads.PyramidPooling(module.in_channels, module.sizes, not module.align_corners)
    other.to("cpu", dtype=float64).load_state_dict(module.state_dict())
    return other.train(module.training)(x)


def ppm_case(student, rng, in_channels, x_shape, train=False, grads=False, **kwargs):
    """Compare the student's PyramidPooling with ``heads.PyramidPooling`` (same random
    weights); wrong outputs are tested against "input last" and "align_corners flipped"."""
    compare_modules(student, "PyramidPooling", heads.PyramidPooling, dict(in_channels=in_channels, **kwargs),
                    rng.normal(size=x_shape), rng, train=train, grads=grads, mistakes=[
                        ("with the input last instead of first", input_last),
                        ("with align_corners flipped (use the module's setting)", flipped)])


_HINT = ("Each branch pools x to s x s bins, reduces the channels with its 1x1 ConvModule "
         "and resizes back to x's size; the output is x followed by the branches, along channels.")


@QUESTION.check("default bins (1, 2, 3, 6), eval mode", hint=_HINT)
def default(student, rng):
    ppm_case(student, rng, 8, (2, 8, 6, 6))


@QUESTION.check("odd, non-square map (bins overlap)", hint=_HINT)
def odd(student, rng):
    ppm_case(student, rng, 8, (2, 8, 7, 5))


@QUESTION.check("align_corners=True", hint="Resize with the module's own align_corners setting.")
def align(student, rng):
    ppm_case(student, rng, 8, (2, 8, 7, 9), align_corners=True)


@QUESTION.check("other bin sizes (1, 3) and 4 channels",
                hint="Loop over the module's own pools and convs; do not assume four branches.")
def sizes(student, rng):
    ppm_case(student, rng, 4, (2, 4, 5, 6), sizes=(1, 3))


@QUESTION.check("training mode and gradients", hint="Build the output from minisegnet ops on Tensors "
                "so that backward() reaches x and every branch.")
def gradients(student, rng):
    ppm_case(student, rng, 8, (2, 8, 6, 7), train=True, grads=True)
