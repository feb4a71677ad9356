"""Loss modules: CrossEntropyLoss (``torch.nn.CrossEntropyLoss``) and DiceLoss.

Both take logits (N, C, H, W) and integer label maps (N, H, W); the formulas are in
:func:`minisegnet.functional.cross_entropy` and :func:`minisegnet.functional.dice_loss`.
"""
import numbers

from .. import functional as F
from ..functional.loss import REDUCTIONS
from ..tensor import Tensor, tensor
from .module import Module

__all__ = ["CrossEntropyLoss", "DiceLoss"]


class CrossEntropyLoss(Module):
    """Cross-entropy of logits against class indices, with optional class weights.

    Args:
        weight: optional (C,) weight per class (kept as a buffer, as in PyTorch).
        ignore_index: label of pixels that contribute nothing (e.g. 255 on VOC boundaries).
        reduction: 'mean' (weighted mean over non-ignored pixels), 'sum' or 'none'.
        label_smoothing: e in [0, 1], the target becomes ``(1 - e) * target + e / C``.

    ``loss = criterion(logits, labels)`` with logits (N, C, H, W) and labels (N, H, W)
    (or float class probabilities of the logits' shape).
    """

    def __init__(self, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
        super().__init__()
        if reduction not in REDUCTIONS:
            raise ValueError(f"CrossEntropyLoss: reduction must be one of {REDUCTIONS}, got {reduction!r}")
        if isinstance(ignore_index, bool) or not isinstance(ignore_index, numbers.Integral):
            raise TypeError(f"CrossEntropyLoss: ignore_index must be an int, got {ignore_index!r}")
        if weight is not None and not isinstance(weight, Tensor):
            weight = tensor(weight)
        self.register_buffer("weight", weight)
        if isinstance(label_smoothing, bool) or not isinstance(label_smoothing, numbers.Real) or \
                not 0.0 <= label_smoothing <= 1.0:
            raise ValueError(f"CrossEntropyLoss: label_smoothing must be a number in [0, 1], "
                             f"got {label_smoothing!r}")
        self.ignore_index, self.reduction = int(ignore_index), reduction
        self.label_smoothing = float(label_smoothing)

    def forward(self, input, target):
        return F.cross_entropy(input, target, self.weight, self.ignore_index, self.reduction,
                               self.label_smoothing)

    def extra_repr(self):
        smoothing = f", label_smoothing={self.label_smoothing}" if self.label_smoothing else ""
        return f"ignore_index={self.ignore_index}, reduction={self.reduction!r}{smoothing}"


class DiceLoss(Module):
    """Soft Dice loss ``1 - mean_c (2 sum(p t) + smooth) / (sum(p) + sum(t) + smooth)``.

    Args:
        ignore_index: label of pixels left out of every sum (None: none ignored).
        smooth: added to numerator and denominator (a class absent from both the
            prediction and the target then scores 1 instead of 0/0).
    """

    def __init__(self, ignore_index=None, smooth=1.0):
        super().__init__()
        if isinstance(smooth, bool) or not isinstance(smooth, numbers.Real) or smooth < 0:
            raise ValueError(f"DiceLoss: smooth must be a number >= 0, got {smooth!r}")
        self.ignore_index, self.smooth = ignore_index, smooth

    def forward(self, input, target):
        return F.dice_loss(input, target, self.ignore_index, self.smooth)

    def extra_repr(self):
        return f"ignore_index={self.ignore_index}, smooth={self.smooth}"
