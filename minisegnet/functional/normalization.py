"""Batch normalization and dropout.

**Batch norm** (Ioffe & Szegedy, 2015) normalises every channel of a batch to zero
mean and unit variance, then lets the network rescale it::

    x: (N, C) or (N, C, H, W)             statistics per channel c, over N (and H, W)
    mean_c = mean(x[:, c])                var_c = mean((x[:, c] - mean_c)^2)   (biased)
    xhat   = (x - mean_c) / sqrt(var_c + eps)
    y      = weight_c * xhat + bias_c

In training the statistics come from the batch, and running estimates are kept for
evaluation: ``running = (1 - momentum) * running + momentum * batch_statistic``, with
the *unbiased* variance (``var * m / (m - 1)``, m values per channel) for
``running_var``. In evaluation the running estimates replace the batch statistics, so
the op is a fixed per-channel ``x * scale + shift``.

**Dropout** zeroes each element with probability p during training and scales the
survivors by 1/(1-p), so that the expected value of every element is unchanged and
evaluation (no dropout) needs no rescaling. ``dropout2d`` zeroes whole channels
(feature maps), since neighbouring pixels of one map are too correlated for
element-wise dropout to regularise anything.
"""
import numbers

import numpy as np

from .. import backend
from ..autograd import Function
from ..kernels import normalization as K
from ..random import generator
from ..tensor import Tensor


# ---------------------------------------------------------------------- batch norm
class BatchNorm(Function):
    """Batch norm over the channel axis (1) of an (N, C, *) input; see the module docstring.

    Backward, with m = N*H*W values per channel, ``g = weight * inv_std`` and sums over
    those m values (the closed form, one pass instead of autograd through every step)::

        d bias   = sum(dy)
        d weight = sum(dy * xhat)
        d x      = g / m * (m * dy - sum(dy) - xhat * sum(dy * xhat))     (training)
        d x      = g * dy                                                  (evaluation)

    In training the batch mean and variance depend on x, which gives the two extra terms.

    With ``relu`` the op is ``max(batch_norm(x), 0)`` in one pass (the conv -> BN -> ReLU
    unit of every CNN here): the output y is kept, and backward first sends dy through
    the ReLU, ``dy * (y > 0)``, inside the same blocks as the sums above.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, running_mean, running_var, training, momentum, eps, relu=False):
        x3 = K.as_3d(x, 1)                                     # (N, C, H*W)
        if training:
            mean, var = K.batch_statistics(x3)                 # float64, (C,)
            count = x3.shape[0] * x3.shape[2]
            if running_mean is not None:
                running_mean[...] = (1 - momentum) * running_mean + momentum * mean
            if running_var is not None:
                running_var[...] = (1 - momentum) * running_var + momentum * var * (count / (count - 1))
        else:
            mean, var = running_mean.astype(np.float64), running_var.astype(np.float64)
        inv_std = 1.0 / backend.array_module(x).sqrt(var + eps)
        scale = inv_std if weight is None else inv_std * weight
        shift = -mean * scale if bias is None else bias - mean * scale
        y3 = K.scale_shift(x3, scale, shift, relu=relu)
        ctx.save_for_backward(x3, mean, inv_std, weight, y3 if relu else None)
        ctx.meta = (x.shape, training, None if bias is None else bias.dtype)
        return y3.reshape(x.shape)

    @staticmethod
    def backward(ctx, grad_out):
        x3, mean, inv_std, weight, relu_out = ctx.saved_tensors
        shape, training, bias_dtype = ctx.meta
        dy3 = K.as_3d(grad_out, 1)
        count = x3.shape[0] * x3.shape[2]
        g = inv_std if weight is None else inv_std * weight
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        dx = dweight = dbias = None
        masked = None                                           # dy * (y > 0), when it was made
        if training or need_w or need_b:
            sums = K.batch_norm_grad_sums(dy3, x3, mean, relu_out)     # sum(dy), sum(dy * (x - mean))
            sum_dy, sum_dy_xc = sums[:2]
            if relu_out is not None:
                masked = dy3 = sums[2]
            if need_w:
                dweight = (sum_dy_xc * inv_std).astype(weight.dtype)    # sum(dy * xhat)
            if need_b:
                dbias = sum_dy.astype(bias_dtype)
        if need_x and training:
            # g/m * (m dy - sum(dy) - xhat sum(dy xhat)) with xhat = (x - mean) inv_std,
            # expanded into a * dy + b * x + c so that the kernel makes one pass.
            b = -g * inv_std * inv_std * sum_dy_xc / count
            c = -g * sum_dy / count - b * mean
            dx = K.affine_combination(dy3, x3, g, b, c, out=masked).reshape(shape)
        elif need_x:
            if relu_out is not None and masked is None:
                dy3 = dy3 * (relu_out > 0)
            dx = (dy3 * g.astype(dy3.dtype).reshape(1, -1, 1)).reshape(shape)
        return dx, dweight, dbias, None, None, None, None, None, None


def _per_channel(value, name, channels, device):
    """The raw array of a per-channel argument (Tensor or array) of shape (C,), or None."""
    if value is None:
        return None
    raw = value.data if isinstance(value, Tensor) else value
    if not hasattr(raw, "shape"):
        raise TypeError(f"batch_norm: {name} must be a Tensor or an array of shape ({channels},), "
                        f"got {type(value).__name__}")
    if tuple(raw.shape) != (channels,):
        raise ValueError(f"batch_norm: {name} must have shape ({channels},) (one value per channel "
                         f"of the input), got {tuple(raw.shape)}")
    if backend.device_of(raw) != device:
        raise RuntimeError(f"batch_norm: {name} is on {backend.device_of(raw)!r} but the input is on "
                           f"{device!r}; move them with .to(device)")
    return raw


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False,
               momentum=0.1, eps=1e-5, relu=False):
    """Batch normalization of an (N, C) or (N, C, H, W) (any (N, C, *)) input, as ``F.batch_norm``.

    Args:
        input: Tensor (N, C, *).
        running_mean, running_var: (C,) Tensors (buffers) or arrays. In training they are
            updated in place (when not None) with ``momentum``; in evaluation they are
            the statistics used.
        weight, bias: optional (C,) Tensors, the learned per-channel scale and shift.
        training: use the batch's statistics (True) or the running ones (False).
        momentum: weight of the new batch in the running averages.
        eps: added to the variance before the square root.
        relu: return ``relu(batch_norm(...))``, made in the same pass over memory (a
            minisegnet addition; PyTorch has no such argument). Same numbers as
            ``F.relu(F.batch_norm(...))``, in about one pass less each way.

    Returns a Tensor of the input's shape.
    """
    if not isinstance(input, Tensor):
        raise TypeError(f"batch_norm: input must be a Tensor, got {type(input).__name__}")
    if input.ndim < 2:
        raise ValueError(f"batch_norm: input must have shape (N, C) or (N, C, H, W) (channels on "
                         f"axis 1), got shape {input.shape}")
    if input.dtype.kind != "f":
        raise TypeError(f"batch_norm: input must be a floating point tensor, got dtype {input.dtype}")
    channels = input.shape[1]
    mean_raw = _per_channel(running_mean, "running_mean", channels, input.device)
    var_raw = _per_channel(running_var, "running_var", channels, input.device)
    if not training and (mean_raw is None or var_raw is None):
        raise ValueError("batch_norm: running_mean and running_var are needed when training=False "
                         "(they are the statistics evaluation uses); pass training=True to normalise "
                         "with the batch's own statistics")
    for name, value in (("weight", weight), ("bias", bias)):
        if value is not None and not isinstance(value, Tensor):
            raise TypeError(f"batch_norm: {name} must be a Tensor or None, got {type(value).__name__}")
        _per_channel(value, name, channels, input.device)
    if training and input.numel() // channels <= 1:
        raise ValueError(
            f"batch_norm: training needs more than 1 value per channel to compute batch statistics, "
            f"but the input of shape {input.shape} has only {input.numel() // max(channels, 1)} per channel "
            f"(a variance over one value is undefined). Use a batch of 2 or more, or switch the "
            f"model to evaluation mode with model.eval() to use the running statistics")
    return BatchNorm.apply(input, weight, bias, mean_raw, var_raw, bool(training), momentum, eps,
                           bool(relu))


# ---------------------------------------------------------------------- dropout
class ApplyMask(Function):
    """``y = x * mask``; the mask (a constant array of 0 and 1/(1-p)) scales the gradient alike."""

    @staticmethod
    def forward(ctx, x, mask):
        ctx.mask = mask
        return x * mask

    @staticmethod
    def backward(ctx, grad_out):
        return grad_out * ctx.mask, None


def _check_dropout(name, input, p):
    if not isinstance(input, Tensor):
        raise TypeError(f"{name}: input must be a Tensor, got {type(input).__name__}")
    if input.dtype.kind != "f":
        raise TypeError(f"{name}: input must be a floating point tensor, got dtype {input.dtype}")
    if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0 <= p <= 1:
        raise ValueError(f"{name}: dropout probability p has to be between 0 and 1, but got {p!r}")


def _dropout_mask(shape, p, dtype, device):
    """0 (dropped, probability p) or 1/(1-p) (kept), drawn on the host from the global
    generator (so a seed gives the same mask on every device), then moved to ``device``."""
    if p == 1:
        mask = np.zeros(shape, dtype=dtype)
    else:
        keep = generator().random(shape, dtype=np.float32) >= p
        mask = keep.astype(dtype) * np.asarray(1.0 / (1.0 - p), dtype=dtype)
    return backend.to_device(mask, device)


def dropout(input, p=0.5, training=True):
    """Zero each element with probability ``p`` and scale the rest by ``1/(1-p)`` (training only).

    In evaluation (``training=False``) or with ``p=0`` the input is returned unchanged.
    Masks come from :func:`minisegnet.random.generator`: ``manual_seed`` makes them repeat.
    """
    _check_dropout("dropout", input, p)
    if not training or p == 0:
        return input
    return ApplyMask.apply(input, _dropout_mask(input.shape, p, input.dtype, input.device))


def dropout2d(input, p=0.5, training=True):
    """Zero whole channels of an (N, C, H, W) input with probability ``p``, scaling the rest by ``1/(1-p)``.

    One random draw per (sample, channel): a dropped feature map is zero everywhere.
    Identity in evaluation (``training=False``) or with ``p=0``.
    """
    _check_dropout("dropout2d", input, p)
    if input.ndim != 4:
        raise ValueError(f"dropout2d: input must have shape (N, C, H, W), got shape {input.shape} "
                         f"(use F.dropout to drop single elements of other shapes)")
    if not training or p == 0:
        return input
    n, c = input.shape[:2]
    return ApplyMask.apply(input, _dropout_mask((n, c, 1, 1), p, input.dtype, input.device))
