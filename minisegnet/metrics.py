"""How good is a segmentation? IoU, Dice and the confusion matrix they both come from.

For one class, let ``A`` be the predicted pixels and ``B`` the true pixels. Then::

    IoU(A, B)  = |A ∩ B| / |A ∪ B|            (Jaccard index)
    Dice(A, B) = 2 |A ∩ B| / (|A| + |B|)       (F1 score of the pixels)

Both lie in [0, 1]: 0 when the masks do not overlap, 1 when they match exactly. In terms
of true/false positives and negatives of that class::

    IoU  = TP / (TP + FP + FN)
    Dice = 2 TP / (2 TP + FP + FN)             so  Dice = 2 IoU / (1 + IoU) >= IoU

For many classes, a :class:`ConfusionMatrix` counts ``M[t, p]`` = pixels whose target is
``t`` and prediction ``p``; then ``TP = M[k, k]``, ``FP`` is the rest of column ``k`` and
``FN`` the rest of row ``k``. It is accumulated over the *whole dataset* before dividing,
as MMSegmentation and the Pascal VOC benchmark do: a class seen in a few pixels of one
image is not weighted like a class filling another image (the mean of per-image IoUs
would be a different, noisier number).
"""
import numpy as np

from . import backend
from .tensor import Tensor

__all__ = ["iou", "dice", "ConfusionMatrix"]


def _raw(x, name):
    """The backend array behind a Tensor / NumPy / CuPy array / nested list."""
    if isinstance(x, Tensor):
        return x.data
    if hasattr(x, "shape") and hasattr(x, "dtype"):
        return x
    if isinstance(x, (list, tuple)):
        return np.asarray(x)
    raise TypeError(f"{name} must be a NumPy/CuPy array or a minisegnet Tensor, "
                    f"got {type(x).__name__}")


def _binary_pair(a, b, fn):
    """Check two masks for iou/dice: same shape, same device, values only 0/1 (or bool)."""
    a, b = _raw(a, "a"), _raw(b, "b")
    if tuple(a.shape) != tuple(b.shape):
        raise ValueError(f"{fn}(a, b): the masks must have the same shape, "
                         f"got a {tuple(a.shape)} and b {tuple(b.shape)}")
    if backend.device_of(a) != backend.device_of(b):
        raise ValueError(f"{fn}(a, b): the masks are on different devices "
                         f"({backend.device_of(a)} and {backend.device_of(b)})")
    xp = backend.array_module(a, b)
    for name, m in (("a", a), ("b", b)):
        if m.dtype != bool:
            bad = m[(m != 0) & (m != 1)]
            if bad.size:
                values = sorted(set(backend.to_numpy(bad).ravel().tolist()))[:8]
                raise ValueError(f"{fn}(a, b): {name} must be a binary mask (bool or 0/1), "
                                 f"found values {values}")
    return xp, a.astype(bool), b.astype(bool)


def iou(a, b):
    """Intersection over union of two binary masks: ``|A ∩ B| / |A ∪ B|``.

    Args:
        a, b: masks of the same (any) shape, bool or 0/1 integers (or floats), as NumPy /
            CuPy arrays or Tensors. ``1`` marks a pixel as belonging to the object.

    Returns:
        a Python float in [0, 1]. When both masks are empty the union is empty too;
        the masks then agree perfectly and the result is ``1.0`` (not a 0/0 warning).

    Example (the syllabus quiz)::

        a = np.random.randint(2, size=(10, 10)); b = np.random.randint(2, size=(10, 10))
        iou(a, b) == (a & b).sum() / (a | b).sum()
    """
    xp, a, b = _binary_pair(a, b, "iou")
    intersection = int(xp.logical_and(a, b).sum())
    union = int(xp.logical_or(a, b).sum())
    return 1.0 if union == 0 else intersection / union


def dice(a, b):
    """Dice coefficient of two binary masks: ``2 |A ∩ B| / (|A| + |B|)``.

    Same arguments as :func:`iou`; two empty masks give ``1.0``. Dice counts the
    intersection twice, so for the same masks ``dice = 2 iou / (1 + iou) >= iou``.
    """
    xp, a, b = _binary_pair(a, b, "dice")
    intersection = int(xp.logical_and(a, b).sum())
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * intersection / total


def _nan_mean(values):
    """Mean over the non-NaN entries; NaN (without a warning) if there are none."""
    values = values[~np.isnan(values)]
    return float(values.mean()) if values.size else float("nan")


class ConfusionMatrix:
    """Accumulates a ``(num_classes, num_classes)`` confusion matrix over a dataset.

    ``matrix[t, p]`` counts the pixels whose target class is ``t`` (row) and predicted
    class is ``p`` (column). Update it batch by batch, then :meth:`compute` the scores::

        cm = ConfusionMatrix(num_classes=21)
        for images, masks in loader:
            cm.update(model(images), masks)      # logits (N, C, H, W) or labels (N, H, W)
        scores = cm.compute()                    # scores['mIoU'], scores['IoU'][k], ...
        print(cm.table(class_names))

    Pixels whose target equals ``ignore_index`` (255: object borders in Pascal VOC) are
    left out of every count, whatever was predicted there.

    Attributes:
        matrix: ``numpy.int64`` array of shape (num_classes, num_classes), on the host.
    """

    def __init__(self, num_classes, ignore_index=255):
        if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) \
                or num_classes < 1:
            raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
        if ignore_index is not None and (isinstance(ignore_index, bool)
                                         or not isinstance(ignore_index, (int, np.integer))):
            raise TypeError(f"ignore_index must be an int or None, got {ignore_index!r}")
        self.num_classes = int(num_classes)
        self.ignore_index = None if ignore_index is None else int(ignore_index)
        self.matrix = np.zeros((self.num_classes, self.num_classes), dtype=np.int64)

    def reset(self):
        """Forget everything counted so far."""
        self.matrix[...] = 0

    def update(self, pred, target):
        """Add one batch to the counts.

        Args:
            pred: predicted labels with the shape of ``target`` (e.g. (N, H, W)), or
                logits/scores (N, C, H, W) with ``C == num_classes``; the class is then
                the argmax over dim 1.
            target: true labels, (N, H, W) (any shape works for labels), integers in
                ``[0, num_classes)`` or ``ignore_index``.

        NumPy arrays, CuPy arrays and Tensors all work; the counting runs on the device
        of the inputs (one ``bincount`` of ``num_classes * target + pred``) and only the
        small matrix comes back to the host.
        """
        pred, target = _raw(pred, "pred"), _raw(target, "target")
        C = self.num_classes
        if pred.ndim == target.ndim + 1 and target.ndim >= 1:
            if pred.shape[0] != target.shape[0] or tuple(pred.shape[2:]) != tuple(target.shape[1:]) \
                    or pred.shape[1] != C:
                raise ValueError(
                    f"update(pred, target): logits must have shape (N, {C}, *target.shape[1:]) "
                    f"for target {tuple(target.shape)}, got pred {tuple(pred.shape)}")
            if pred.dtype.kind not in "fiu":
                raise TypeError(f"update(pred, target): logits must be numeric, got dtype {pred.dtype}")
        elif tuple(pred.shape) != tuple(target.shape):
            raise ValueError(
                f"update(pred, target): pred must be labels with the shape of target "
                f"{tuple(target.shape)} or logits (N, {C}, ...), got pred {tuple(pred.shape)}")
        labels = {"target": target} if pred.ndim != target.ndim else {"target": target, "pred": pred}
        for name, arr in labels.items():
            if arr.dtype.kind not in "iub":
                raise TypeError(f"update(pred, target): {name} must hold integer labels, "
                                f"got dtype {arr.dtype}")
        if backend.device_of(pred) != backend.device_of(target):
            raise ValueError(f"update(pred, target): pred is on {backend.device_of(pred)} but "
                             f"target on {backend.device_of(target)}; move them to one device")

        xp = backend.array_module(pred, target)
        if pred.ndim == target.ndim + 1:
            pred = xp.argmax(pred, axis=1)
        target = target.astype(xp.int64).ravel()
        pred = pred.astype(xp.int64).ravel()
        if self.ignore_index is not None:
            keep = target != self.ignore_index
            target, pred = target[keep], pred[keep]
        for name, arr in (("target", target), ("pred", pred)):
            outside = (arr < 0) | (arr >= C)
            if bool(outside.any()):
                values = sorted(set(backend.to_numpy(arr[outside]).tolist()))[:10]
                ignore = "" if self.ignore_index is None or name == "pred" \
                    else f" or ignore_index={self.ignore_index}"
                raise ValueError(f"update(pred, target): {name} has labels {values} outside "
                                 f"[0, {C}){ignore}")
        counts = xp.bincount(C * target + pred, minlength=C * C).reshape(C, C)
        self.matrix += backend.to_numpy(counts).astype(np.int64)
        return self

    def compute(self):
        """The scores of everything counted so far.

        Returns a dict with

        * ``'IoU'``, ``'Dice'``: per-class arrays (num_classes,); a class absent from both
          the predictions and the targets has no score (NaN), not 0 or 1;
        * ``'Acc'``: per-class accuracy ``TP / (TP + FN)`` (recall; NaN for a class with
          no target pixels);
        * ``'mIoU'``, ``'mDice'``, ``'mAcc'``: means over the classes that have a score
          (NaN entries skipped), as Python floats;
        * ``'aAcc'``: pixel accuracy, correctly labelled pixels / counted pixels.

        An empty matrix gives NaN everywhere, silently.
        """
        m = self.matrix.astype(np.float64)
        tp = np.diag(m)
        target_total = m.sum(axis=1)                 # TP + FN
        pred_total = m.sum(axis=0)                   # TP + FP
        with np.errstate(invalid="ignore", divide="ignore"):
            iou_k = tp / (target_total + pred_total - tp)
            dice_k = 2 * tp / (target_total + pred_total)
            acc_k = tp / target_total
        total = m.sum()
        return {
            "IoU": iou_k, "Dice": dice_k, "Acc": acc_k,
            "mIoU": _nan_mean(iou_k), "mDice": _nan_mean(dice_k), "mAcc": _nan_mean(acc_k),
            "aAcc": float(tp.sum() / total) if total else float("nan"),
        }

    def table(self, class_names=None):
        """The per-class scores as a text table (percent), then the means and ``aAcc``.

        ``class_names`` defaults to ``['0', '1', ...]``; NaN scores print as ``nan``.
        """
        if class_names is None:
            class_names = [str(k) for k in range(self.num_classes)]
        class_names = [str(n) for n in class_names]
        if len(class_names) != self.num_classes:
            raise ValueError(f"table(class_names): expected {self.num_classes} names, "
                             f"got {len(class_names)}")
        s = self.compute()
        width = max(len("Class"), len("mean"), *(len(n) for n in class_names))

        def row(name, *values):
            return f"{name:<{width}} " + " ".join(f"{100 * v:>7.2f}" for v in values)

        lines = [f"{'Class':<{width}} " + " ".join(f"{h:>7}" for h in ("IoU", "Dice", "Acc")),
                 "-" * (width + 24)]
        lines += [row(n, s["IoU"][k], s["Dice"][k], s["Acc"][k]) for k, n in enumerate(class_names)]
        lines += ["-" * (width + 24), row("mean", s["mIoU"], s["mDice"], s["mAcc"]),
                  f"{'aAcc':<{width}} {100 * s['aAcc']:>7.2f}"]
        return "\n".join(lines)

    def __repr__(self):
        return (f"ConfusionMatrix(num_classes={self.num_classes}, ignore_index={self.ignore_index}, "
                f"pixels={int(self.matrix.sum())})")
