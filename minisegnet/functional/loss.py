"""Softmax, log-softmax and the segmentation losses: cross-entropy and soft Dice.

A segmentation network outputs *logits* of shape (N, C, H, W): C unnormalised scores
per pixel. Softmax over the class axis turns them into probabilities::

    softmax(x)_c = exp(x_c) / sum_k exp(x_k)

and the per-pixel cross-entropy of the true class t is minus its log-probability::

    loss = -log softmax(x)_t = logsumexp(x) - x_t

Both are computed with the largest logit ``m`` subtracted first
(``logsumexp(x) = m + log(sum exp(x - m))``): mathematically the same, but ``exp``
can no longer overflow (``exp(1000.)`` is inf in float64, ``exp(89.)`` in float32).

``cross_entropy`` fuses log-softmax and the negative log-likelihood into one op whose
gradient is simply ``softmax(x) - onehot(t)`` (times the pixel's weight), without ever
building the one-hot tensor. With a target *distribution* q per pixel (class
probabilities, or label smoothing) the loss is ``-sum_c q_c log softmax(x)_c`` and the
gradient ``sum(q) * softmax(x) - q``.
"""
import numbers

import numpy as np

from .. import backend
from ..autograd import Function
from ..kernels import normalization as K
from ..tensor import Tensor
from .reduction import sum as _sum
from .shape import normalize_dims

REDUCTIONS = ("mean", "sum", "none")


# ---------------------------------------------------------------------- softmax
class Softmax(Function):
    """Softmax (or log-softmax, ``log=True``) along one axis.

    Backward from the output y and the upstream gradient g (sums along the axis):
    softmax ``dx = y * (g - sum(g * y))``; log-softmax ``dx = g - exp(y) * sum(g)``.
    """

    @staticmethod
    def forward(ctx, x, axis, log):
        y = K.softmax(K.as_3d(x, axis), log=log).reshape(x.shape)
        ctx.save_for_backward(y)
        ctx.meta = (axis, log)
        return y

    @staticmethod
    def backward(ctx, grad_out):
        (y,) = ctx.saved_tensors
        axis, log = ctx.meta
        dx = K.softmax_backward(K.as_3d(y, axis), K.as_3d(grad_out, axis), log=log)
        return dx.reshape(y.shape), None, None


def _softmax_args(name, input, dim):
    if not isinstance(input, Tensor):
        raise TypeError(f"{name}: input must be a Tensor, got {type(input).__name__}")
    if input.dtype.kind != "f":
        raise TypeError(f"{name}: input must be a floating point tensor, got dtype {input.dtype}")
    if isinstance(dim, bool) or not isinstance(dim, numbers.Integral):
        raise TypeError(f"{name}: dim must be an int (the axis to normalise, e.g. dim=1 for the "
                        f"classes of (N, C, H, W) logits), got {dim!r}")
    (axis,) = normalize_dims(int(dim), input.ndim, name)
    return axis


def softmax(input, dim):
    """``exp(x) / sum(exp(x))`` along ``dim``: non-negative values that sum to 1 along it."""
    axis = _softmax_args("softmax", input, dim)
    if input.ndim == 0:
        return Softmax.apply(input.reshape(1), 0, False).reshape(())
    return Softmax.apply(input, axis, False)


def log_softmax(input, dim):
    """``x - logsumexp(x)`` along ``dim``: the log of :func:`softmax`, computed without
    taking the log of a probability that underflowed to 0."""
    axis = _softmax_args("log_softmax", input, dim)
    if input.ndim == 0:
        return Softmax.apply(input.reshape(1), 0, True).reshape(())
    return Softmax.apply(input, axis, True)


# ---------------------------------------------------------------------- argument checks
def _class_target(name, input, target, ignore_index):
    """Check logits (N, C, *) against integer targets (N, *); return the target as an
    int64 array on the input's device. Raises before any computation on the logits."""
    if not isinstance(input, Tensor):
        raise TypeError(f"{name}: input must be a Tensor of logits, got {type(input).__name__}")
    if input.dtype.kind != "f":
        raise TypeError(f"{name}: input (logits) must be a floating point tensor, got dtype {input.dtype}")
    if input.ndim < 2:
        raise ValueError(f"{name}: input must be logits of shape (N, C) or (N, C, H, W), got shape "
                         f"{input.shape}")
    raw = target.data if isinstance(target, Tensor) else target
    if not hasattr(raw, "dtype"):
        raw = np.asarray(raw)
    if raw.dtype.kind not in "iu":
        raise TypeError(f"{name}: target must hold integer class indices (e.g. int64), got dtype "
                        f"{raw.dtype}; convert a label map with .long() (class-probability targets "
                        f"are floats of the input's shape {input.shape})")
    expected = (input.shape[0],) + input.shape[2:]
    if tuple(raw.shape) != expected:
        raise ValueError(f"{name}: target has shape {tuple(raw.shape)} but input of shape {input.shape} "
                         f"(N, C, ...) needs a target of shape {expected} (N, ...), one class index "
                         f"per sample/pixel")
    source = raw
    raw = backend.to_device(raw, input.device).astype(np.int64, copy=False)
    classes = input.shape[1]
    on_device = backend.array_module(raw) is not np
    if on_device and _LAST_CHECKED[0] is source and _LAST_CHECKED[1] == (classes, ignore_index):
        return _LAST_CHECKED[2]                   # this batch's labels passed for another loss term
    outside = raw.view(np.uint64) >= classes      # negative labels wrap around to huge values
    if ignore_index is not None:
        outside &= raw != ignore_index
    if bool(outside.any()):
        values = sorted(int(v) for v in backend.to_numpy(raw[outside]).ravel()[:100000])
        shown = sorted(set(values))[:8]
        hint = (f"; labels must be in 0..{classes - 1} or equal ignore_index={ignore_index}"
                if ignore_index is not None else f"; labels must be in 0..{classes - 1} (or pass ignore_index)")
        raise ValueError(f"{name}: target contains class index {', '.join(map(str, shown))}"
                         f"{' ...' if len(set(values)) > 8 else ''} outside [0, {classes}) for an input "
                         f"with C={classes} classes ({int(outside.sum())} entries){hint}")
    if on_device:
        _LAST_CHECKED[:] = [source, (classes, ignore_index), raw]
    return raw


# On a GPU the label check reads one bool back to the host (a synchronisation): the label
# array last found valid is remembered, so a batch is checked once however many loss terms
# (main head, auxiliary heads, Dice) read it. (Labels changed in place between two loss
# terms would escape the second check: a training loop makes a new label array per batch.)
_LAST_CHECKED = [None, None, None]       # the labels as given, (C, ignore_index), as int64


def _class_weight(name, weight, classes, input):
    if weight is None:
        return None
    raw = weight.data if isinstance(weight, Tensor) else weight
    if not hasattr(raw, "shape"):
        raw = np.asarray(raw)
    if tuple(raw.shape) != (classes,):
        raise ValueError(f"{name}: weight must have shape ({classes},) (one weight per class), got "
                         f"{tuple(raw.shape)}")
    if raw.dtype.kind not in "fiu":
        raise TypeError(f"{name}: weight must be a float tensor, got dtype {raw.dtype}")
    return backend.to_device(raw, input.device).astype(input.dtype, copy=False)


# ---------------------------------------------------------------------- cross-entropy
class CrossEntropy(Function):
    """Fused ``nll_loss(log_softmax(x, 1), target)`` for logits (N, C, *) and targets (N, *).

    With per-pixel weight ``w_i = weight[t_i]`` (1 without class weights, 0 at ignored
    pixels) and per-pixel loss ``l_i = logsumexp(x_i) - x_i[t_i]``::

        'none':  out_i = w_i * l_i                 (shape (N, *))
        'sum':   out   = sum_i w_i * l_i
        'mean':  out   = sum_i w_i * l_i / sum_i w_i     (a weighted mean, as in PyTorch)

    Gradient: ``d out / d x_i = (softmax(x_i) - onehot(t_i)) * w_i`` (divided by
    ``sum w`` for 'mean'). It is computed in the forward pass when a gradient will be
    needed, while the probabilities are at hand, and backward only scales it by the
    upstream gradient.
    """

    @staticmethod
    def forward(ctx, x, target, weight, ignore_index, reduction):
        xp = backend.array_module(x)
        n, c = x.shape[:2]
        x3 = K.as_3d(x, 1)                                 # (N, C, S): no transpose needed
        t = target.reshape(n, -1)                          # (N, S)
        valid = t != ignore_index
        t = xp.where(valid, t, 0)                          # any class: its weight is 0
        w = valid.astype(x.dtype) if weight is None else weight[t] * valid
        with np.errstate(invalid="ignore", divide="ignore"):
            total_weight = w.sum()
            coef = w
            if reduction == "mean":
                # ignored pixels get no gradient, even when every weight is 0 (0/0, as torch);
                # a where instead of testing total_weight == 0 keeps the device from syncing
                coef = xp.where(valid, w / total_weight, xp.zeros((), dtype=x.dtype))
            loss, grad = K.softmax_cross_entropy(x3, t, coef if ctx.needs_input_grad[0] else None)
            loss *= w
            if reduction == "none":
                out = loss.reshape(target.shape)
            elif reduction == "sum":
                out = loss.sum()
            else:
                out = loss.sum() / total_weight            # nan when every pixel is ignored, as torch
        ctx.grad = grad
        ctx.meta = (x.shape, reduction)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        shape, reduction = ctx.meta
        grad = ctx.grad
        if reduction == "none":
            scale = grad_out.reshape(shape[0], 1, -1)           # one upstream value per pixel
            return (grad * scale).reshape(shape), None, None, None, None
        # loss.backward() seeds exactly 1: skip the multiply then on the CPU; on a GPU reading
        # the seed back would stall the device, multiplying is cheaper
        if backend.array_module(grad) is not np or float(grad_out) != 1.0:
            grad = grad * grad_out
        return grad.reshape(shape), None, None, None, None


class SoftCrossEntropy(Function):
    """Cross-entropy against a target *distribution* ``q`` (N, C, *) per pixel.

    ``l_i = -sum_c q_ic * log softmax(x_i)_c``; the outputs as in :class:`CrossEntropy`,
    with 'mean' dividing by ``divisor``. Gradients, with ``p_i = softmax(x_i)``::

        d l_i / d x_i  = (sum_c q_ic) * p_i - q_i
        d l_i / d q_ic = -log p_ic

    Class-probability targets and label smoothing are both this op with different ``q``.
    """

    @staticmethod
    def forward(ctx, x, q, divisor, reduction):
        x3, q3 = K.as_3d(x, 1), K.as_3d(q, 1)
        log_p = K.softmax(x3, log=True)
        loss = -(q3 * log_p).sum(axis=1)                           # (N, S)
        ctx.save_for_backward(log_p, q3)
        ctx.meta = (x.shape, divisor, reduction)
        if reduction == "none":
            return loss.reshape((x.shape[0],) + x.shape[2:])
        with np.errstate(invalid="ignore", divide="ignore"):
            return loss.sum() / divisor if reduction == "mean" else loss.sum()

    @staticmethod
    def backward(ctx, grad_out):
        log_p, q3 = ctx.saved_tensors
        shape, divisor, reduction = ctx.meta
        if reduction == "none":
            g = grad_out.reshape(shape[0], 1, -1)
        else:
            with np.errstate(divide="ignore", invalid="ignore"):
                g = grad_out / divisor if reduction == "mean" else grad_out
        grad_x = grad_q = None
        if ctx.needs_input_grad[0]:
            xp = backend.array_module(log_p)
            grad_x = q3.sum(axis=1, keepdims=True) * xp.exp(log_p) - q3
            # pixels with q = 0 (ignored ones) get 0, also when 'mean' divides by a divisor of 0
            # (every pixel ignored: g is inf), as in torch
            with np.errstate(invalid="ignore"):
                grad_x = xp.where(grad_x == 0, grad_x, grad_x * g).reshape(shape)
        if ctx.needs_input_grad[1]:
            grad_q = (-log_p * g).reshape(shape)
        return grad_x, grad_q, None, None


def _check_label_smoothing(label_smoothing):
    if isinstance(label_smoothing, bool) or not isinstance(label_smoothing, numbers.Real) or \
            not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be a number in [0, 1], got {label_smoothing!r}")
    return float(label_smoothing)


def _is_probability_target(input, target):
    raw = target.data if isinstance(target, Tensor) else target
    return isinstance(input, Tensor) and hasattr(raw, "dtype") and raw.dtype.kind == "f" and \
        tuple(raw.shape) == tuple(input.shape)


def _probability_cross_entropy(input, target, weight, ignore_index, reduction, smoothing):
    """``q = weight_c * ((1 - e) * y + e / C)`` for float targets y; 'mean' over pixels."""
    if ignore_index >= 0:
        raise ValueError(f"cross_entropy: ignore_index is not supported with class-probability (float) "
                         f"targets, got ignore_index={ignore_index}")
    if input.dtype.kind != "f":
        raise TypeError(f"cross_entropy: input (logits) must be a floating point tensor, got dtype {input.dtype}")
    if input.ndim < 2:             # PyTorch's unbatched (C,) form is out of scope, as for index targets
        raise ValueError(f"cross_entropy: input must be logits of shape (N, C) or (N, C, H, W), got shape "
                         f"{input.shape}")
    classes = input.shape[1]
    y = target if isinstance(target, Tensor) else Tensor(backend.to_device(target, input.device))
    y = y.to(dtype=input.dtype) if y.dtype != input.dtype else y
    if smoothing:
        y = y * (1.0 - smoothing) + smoothing / classes
    raw_weight = _class_weight("cross_entropy", weight, classes, input)
    if raw_weight is not None:
        y = y * Tensor(raw_weight.reshape((1, classes) + (1,) * (input.ndim - 2)))
    pixels = input.numel() // classes if classes else 0
    return SoftCrossEntropy.apply(input, y, pixels, reduction)


def _smoothed_cross_entropy(input, raw_target, raw_weight, ignore_index, reduction, smoothing):
    """Label smoothing for class-index targets, as PyTorch defines it::

        l_i = (1 - e) * w[t_i] * (-log p_i[t_i])  +  (e / C) * sum_c w_c * (-log p_ic)

    for non-ignored pixels (0 for ignored ones): the target distribution
    ``q_ic = (1 - e) * w[t_i] * [c == t_i] + (e / C) * w_c``. 'mean' divides by
    ``sum_i w[t_i]`` over non-ignored pixels, as without smoothing.
    """
    xp = backend.array_module(raw_target)
    n, classes = input.shape[:2]
    t = raw_target.reshape(n, 1, -1)
    valid = t != ignore_index
    t = xp.where(valid, t, 0)
    onehot = t == xp.arange(classes).reshape(1, classes, 1)             # (N, C, S)
    w_c = (xp.ones(classes, dtype=input.dtype) if raw_weight is None else raw_weight).reshape(1, classes, 1)
    w_t = (w_c * onehot).sum(axis=1, keepdims=True) * valid               # (N, 1, S)
    q = onehot * ((1.0 - smoothing) * w_t) + (smoothing / classes) * w_c * valid
    return SoftCrossEntropy.apply(input, q.astype(input.dtype, copy=False).reshape(input.shape),
                                  w_t.sum(), reduction)


def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    """Cross-entropy between logits and targets, as ``F.cross_entropy``.

    Args:
        input: logits (N, C) or (N, C, H, W) (any (N, C, *)), float.
        target: class indices (N,) or (N, H, W) (any (N, *)), integer; or class
            probabilities, a float tensor of the input's shape (each pixel's target
            distribution, e.g. soft labels from a teacher or a mix of two images).
        weight: optional (C,) weight per class (e.g. to up-weight rare classes); no
            gradient flows into it.
        ignore_index: target value whose pixels contribute nothing (e.g. 255 for object
            boundaries in Pascal VOC); ignored pixels are left out of the mean too.
            Index targets only.
        reduction: 'mean', 'sum' or 'none' (per-pixel losses of shape (N, *), 0 at
            ignored pixels). For index targets the mean is weighted: divided by the sum
            of ``weight[target]`` over non-ignored pixels; for probability targets it
            is divided by the number of pixels.
        label_smoothing: e in [0, 1]; the target becomes ``(1 - e) * target + e / C``
            (a little probability on every class, which keeps the network from growing
            its logits without bound). For index targets, PyTorch's rule is
            ``(1 - e) * nll + (e / C) * sum_c w_c * (-log p_c)`` per pixel.

    Labels outside [0, C) that are not ``ignore_index`` are an error. If every pixel is
    ignored, the 'mean' is 0/0 = nan, as in PyTorch.
    """
    if reduction not in REDUCTIONS:
        raise ValueError(f"cross_entropy: reduction must be one of {REDUCTIONS}, got {reduction!r}")
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, numbers.Integral):
        raise TypeError(f"cross_entropy: ignore_index must be an int, got {ignore_index!r}")
    smoothing = _check_label_smoothing(label_smoothing)
    if _is_probability_target(input, target):
        return _probability_cross_entropy(input, target, weight, int(ignore_index), reduction, smoothing)
    raw_target = _class_target("cross_entropy", input, target, int(ignore_index))
    raw_weight = _class_weight("cross_entropy", weight, input.shape[1], input)
    if smoothing:
        return _smoothed_cross_entropy(input, raw_target, raw_weight, int(ignore_index), reduction,
                                       smoothing)
    return CrossEntropy.apply(input, raw_target, raw_weight, int(ignore_index), reduction)


# ---------------------------------------------------------------------- Dice
def dice_loss(input, target, ignore_index=None, smooth=1.0):
    """Soft Dice loss over classes, from logits (N, C, *) and integer targets (N, *).

    With probabilities ``p = softmax(input, dim=1)``, the one-hot target ``t`` and sums
    over every non-ignored pixel of the batch::

        dice_c = (2 * sum(p_c * t_c) + smooth) / (sum(p_c) + sum(t_c) + smooth)
        loss   = 1 - mean_c dice_c

    Dice measures overlap (2|A∩B| / (|A| + |B|)), so unlike cross-entropy it does not
    let a large background class dominate a small object. ``smooth`` keeps a class that
    is absent from both prediction and target from dividing 0 by 0 (its dice is then 1).
    Built from differentiable ops (softmax, mul, sum, div), so autograd gives the gradient.
    """
    if ignore_index is not None and (isinstance(ignore_index, bool)
                                     or not isinstance(ignore_index, numbers.Integral)):
        raise TypeError(f"dice_loss: ignore_index must be an int or None, got {ignore_index!r}")
    if isinstance(smooth, bool) or not isinstance(smooth, numbers.Real) or smooth < 0:
        raise ValueError(f"dice_loss: smooth must be a number >= 0, got {smooth!r}")
    raw_target = _class_target("dice_loss", input, target, ignore_index)
    xp = backend.array_module(raw_target)
    classes = input.shape[1]
    t = raw_target[:, None]                                    # (N, 1, *)
    classes_col = xp.arange(classes).reshape((1, classes) + (1,) * (input.ndim - 2))
    onehot = (t == classes_col).astype(input.dtype)            # (N, C, *), constant
    probs = softmax(input, 1)
    if ignore_index is not None:
        valid = (t != ignore_index).astype(input.dtype)        # (N, 1, *)
        probs = probs * Tensor(valid)                          # ignored pixels count nowhere
        onehot *= valid
    axes = (0,) + tuple(range(2, input.ndim))                  # everything but the class axis
    onehot_t = Tensor(onehot)
    intersection = _sum(probs * onehot_t, axes)                # (C,)
    cardinality = _sum(probs, axes) + Tensor(onehot.sum(axis=axes))
    dice = (2 * intersection + smooth) / (cardinality + smooth)
    return 1 - dice.mean()
