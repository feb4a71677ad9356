"""Q2: the IoU of two binary masks (syllabus quiz Q2); the answer key is ``metrics.iou``."""
from ..question import Question
from . import _overlap, stub

QUESTION = Question("q2_iou", "IoU of two binary masks (syllabus quiz Q2)", ("iou",),
                    answer_key=("minisegnet.metrics:iou", "minisegnet.metrics:ConfusionMatrix"),
                    stub=stub("q2_iou"))
_overlap.register(QUESTION, "iou", "|A ∩ B| / |A ∪ B|")
