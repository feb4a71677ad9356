"""Q3: the Dice coefficient of two binary masks; the answer key is ``metrics.dice``."""
from ..question import Question
from . import _overlap, stub

QUESTION = Question("q3_dice", "Dice coefficient of two binary masks", ("dice",),
                    answer_key=("minisegnet.metrics:dice", "minisegnet.metrics:ConfusionMatrix",
                                "minisegnet.functional.loss:dice_loss"),
                    stub=stub("q3_dice"))
_overlap.register(QUESTION, "dice", "2 |A ∩ B| / (|A| + |B|)")
