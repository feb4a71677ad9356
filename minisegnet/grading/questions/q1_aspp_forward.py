"""Q1: ``ASPPHead.forward`` of DeepLabV3 (syllabus quiz Q1), compared with ``heads.ASPPHead``
on the same random weights; the library's ASPP head forward is the answer key."""
from ... import functional as F
from ...models import heads
from ..compare import compare_modules
from ..question import Question
from . import stub

QUESTION = Question("q1_aspp_forward", "ASPPHead.forward (DeepLabV3, syllabus quiz Q1)", ("ASPPHead",),
                    answer_key=("minisegnet.models.heads:ASPPHead.forward",
                                "minisegnet.models.heads:ASPPHead._aspp_features",
                                "minisegnet.models.heads:DepthwiseSeparableASPPHead.forward"),
                    stub=stub("q1_aspp_forward"))
_HINT = ("The bottleneck expects the image-pool branch (resized back to the feature map's "
         "size) followed by the ASPP branches in the order of `dilations`, concatenated along "
         "channels; see the class docstring.")


def _concat(head, x, order):
    """The head's output with its branches concatenated in another ``order``."""
    x = head._transform_inputs(x)
    pooled = heads.resize(head.image_pool(x), x.shape[2:], align_corners=head.align_corners)
    return head.cls_seg(head.bottleneck(F.cat(order(pooled, list(head.aspp_modules(x))), dim=1)))


MISTAKES = [
    ("with the ASPP branches first and the image-pool branch last",
     lambda head, x: _concat(head, x, lambda pooled, aspp: aspp + [pooled])),
    ("with the ASPP branches in the reverse order of `dilations` (the bottleneck's weights "
     "then meet the wrong dilation rates)",
     lambda head, x: _concat(head, x, lambda pooled, aspp: [pooled] + aspp[::-1])),
    ("with the ASPP branches in the reverse order of `dilations` and the image-pool branch last",
     lambda head, x: _concat(head, x, lambda pooled, aspp: aspp[::-1] + [pooled])),
]


def aspp_case(student, rng, kwargs, inputs, train=False, grads=False):
    """Compare the student's ASPPHead with ``heads.ASPPHead`` (same random weights).

    Small heads (6 -> 4 channels, 3 classes, dilations 1, 2, 3 unless ``kwargs`` says
    otherwise) keep the check fast; ``inputs`` is one feature map or the backbone's list.
    A wrong output is tested against the common slips: branches concatenated in the wrong
    order (the bottleneck's weights then meet the wrong channels).
    """
    kwargs = dict(dict(in_channels=6, channels=4, num_classes=3, dilations=(1, 2, 3)), **kwargs)
    compare_modules(student, "ASPPHead", heads.ASPPHead, kwargs, inputs, rng, train=train,
                    grads=grads, mistakes=MISTAKES)


@QUESTION.check("eval mode, one 8x8 feature map", hint=_HINT)
def eval_mode(student, rng):
    aspp_case(student, rng, {}, rng.normal(size=(2, 6, 8, 8)))


@QUESTION.check("odd, non-square feature map (5x7)",
                hint=_HINT + " (The head here has align_corners=True; the 1x1 image-pool map "
                             "resizes to the same constant map with either setting.)")
def odd_map(student, rng):
    aspp_case(student, rng, dict(align_corners=True), rng.normal(size=(2, 6, 5, 7)))


@QUESTION.check("the backbone's list of feature maps as input",
                hint="Work on the map that self._transform_inputs(inputs) picked, not on inputs.")
def list_input(student, rng):
    aspp_case(student, rng, {}, [rng.normal(size=(2, 3, 12, 12)), rng.normal(size=(2, 6, 6, 6))])


@QUESTION.check("default dilations (1, 6, 12, 18)",
                hint="Use every module in self.aspp_modules, in order; their number follows "
                     "`dilations`.")
def default_dilations(student, rng):
    aspp_case(student, rng, dict(dilations=(1, 6, 12, 18)), rng.normal(size=(2, 6, 9, 11)))


@QUESTION.check("training mode (BatchNorm batch statistics)", hint=_HINT)
def training_mode(student, rng):
    aspp_case(student, rng, dict(dropout_ratio=0.0), rng.normal(size=(3, 6, 6, 5)), train=True)


@QUESTION.check("gradients reach the input and every branch",
                hint="Build the output from minisegnet ops (resize, cat, the modules) on Tensors so "
                     "that backward() can flow through every branch.")
def gradients(student, rng):
    aspp_case(student, rng, dict(dropout_ratio=0.0), rng.normal(size=(2, 6, 5, 6)), train=True,
              grads=True)
