"""The ops a transformer needs: layer norm, GELU, scaled dot-product attention, drop path.

**Layer norm** (Ba, Kiros, Hinton 2016) normalises every *token* on its own, over its
last dims (the features), instead of every channel over the batch as batch norm does::

    x: (..., D)           mean = mean(x, -1)    var = mean((x - mean)^2, -1)   (biased)
    xhat = (x - mean) / sqrt(var + eps)          y = weight * xhat + bias     (weight, bias: (D,))

so it behaves the same in training and evaluation and with a batch of one.

**GELU** (Hendrycks & Gimpel 2016) weighs its input by the probability that a standard
normal variable is below it: ``gelu(x) = x * Phi(x) = x/2 * (1 + erf(x / sqrt 2))``;
``approximate='tanh'`` uses ``x/2 * (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))``.

**Scaled dot-product attention** (Vaswani et al. 2017): every query takes a weighted
mean of the values, weighted by how well it matches each key::

    query (..., L, E), key (..., S, E), value (..., S, Ev)
    scores  = query @ key^T * scale                    (..., L, S)   scale = 1/sqrt(E)
    weights = softmax(scores + mask, dim=-1)            each row sums to 1
    out     = weights @ value                           (..., L, Ev)

It is composed from ``matmul`` and ``softmax``, whose backward passes already exist:
the gradient of attention is the chain rule through those three ops.

**Drop path** (stochastic depth, Huang et al. 2016) drops the *whole* residual branch
of a sample with probability p during training: ``x + drop_path(f(x))`` is then just
``x`` for that sample, which trains a deep stack like an ensemble of shallower ones.
"""
import math
import numbers

import numpy as np

from .. import backend
from ..autograd import Function
from ..kernels import gelu as K
from ..kernels import normalization as N
from ..kernels.gelu import erf  # noqa: F401  (the erf of the exact GELU, for users and tests)
from ..tensor import Tensor
from .elementwise import matmul
from .loss import softmax
from .normalization import ApplyMask, _dropout_mask, dropout
from .shape import transpose


def _check_float(name, arg, value):
    if not isinstance(value, Tensor):
        raise TypeError(f"{name}: {arg} must be a Tensor, got {type(value).__name__}")
    if value.dtype.kind != "f":
        raise TypeError(f"{name}: {arg} must be a floating point tensor, got dtype {value.dtype}")


# ---------------------------------------------------------------------- layer norm
class LayerNorm(Function):
    """Layer norm over the last ``k`` axes; see the module docstring.

    The kernels (blocks of tokens, on the threads) are in :mod:`minisegnet.kernels.normalization`.
    Backward, with D values per token, ``gw = grad_out * weight`` and means over those D
    values (the closed form: the mean and variance depend on every x of the token)::

        d x      = inv_std * (gw - mean(gw) - xhat * mean(gw * xhat))
        d weight = sum over tokens of grad_out * xhat
        d bias   = sum over tokens of grad_out
    """

    @staticmethod
    def forward(ctx, x, weight, bias, k, eps):
        shape = x.shape
        d = math.prod(shape[x.ndim - k:])
        flat = [None if v is None else v.reshape(d) for v in (weight, bias)]
        y, xhat, inv_std = N.layer_norm_forward(x.reshape(-1, d), *flat, eps)
        ctx.save_for_backward(xhat, inv_std, weight)
        ctx.shapes = (shape, shape[x.ndim - k:])               # the input's, the features'
        return y.reshape(shape)

    @staticmethod
    def backward(ctx, grad_out):
        xhat, inv_std, weight = ctx.saved_tensors
        (shape, features), d = ctx.shapes, xhat.shape[1]
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        dx, dweight, dbias = N.layer_norm_backward(
            grad_out.reshape(-1, d), xhat, inv_std, None if weight is None else weight.reshape(d),
            need_x, need_w, need_b)
        return (None if dx is None else dx.reshape(shape),
                None if dweight is None else dweight.reshape(features),
                None if dbias is None else dbias.reshape(features), None, None)


def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    """Normalise ``input`` (..., *normalized_shape) over its last ``len(normalized_shape)``
    dims to mean 0 and variance 1, then scale by ``weight`` and shift by ``bias`` (both of
    shape ``normalized_shape``, optional), as ``torch.nn.functional.layer_norm``.
    """
    _check_float("layer_norm", "input", input)
    if isinstance(normalized_shape, numbers.Integral):
        normalized_shape = (normalized_shape,)
    normalized_shape = tuple(normalized_shape)
    k = len(normalized_shape)
    if k == 0 or any(not isinstance(s, numbers.Integral) or s < 1 for s in normalized_shape):
        raise ValueError(f"layer_norm: normalized_shape must be a positive int or a non-empty tuple of "
                         f"them, got {normalized_shape!r}")
    if input.ndim < k or input.shape[input.ndim - k:] != normalized_shape:
        raise ValueError(f"layer_norm: input of shape {input.shape} does not end in normalized_shape "
                         f"{normalized_shape} (expected input of shape (*, {', '.join(map(str, normalized_shape))}))")
    for name, value in (("weight", weight), ("bias", bias)):
        if value is None:
            continue
        _check_float("layer_norm", name, value)
        if value.shape != normalized_shape:
            raise ValueError(f"layer_norm: {name} must have shape normalized_shape={normalized_shape}, "
                             f"got {value.shape}")
    if not isinstance(eps, numbers.Real) or eps < 0:
        raise ValueError(f"layer_norm: eps must be a non-negative number, got {eps!r}")
    return LayerNorm.apply(input, weight, bias, k, float(eps))


# ---------------------------------------------------------------------- GELU
_SQRT_2_OVER_PI = math.sqrt(2 / math.pi)
_TANH_CUBIC = 0.044715


class GELU(Function):
    """``x * Phi(x)``; d/dx = Phi(x) + x phi(x) with phi the standard normal density.

    ``approximate='tanh'``: y = x/2 (1 + t), t = tanh(u), u = c (x + 0.044715 x^3), and
    dy/dx = (1 + t)/2 + x/2 (1 - t^2) c (1 + 3 * 0.044715 x^2), c = sqrt(2/pi).
    The exact form's kernels (and how Phi is computed without an erf in NumPy) are in
    :mod:`minisegnet.kernels.gelu`.
    """

    @staticmethod
    def forward(ctx, x, approximate):
        xp = backend.array_module(x)
        ctx.approximate = approximate
        if approximate == "tanh":
            t = xp.tanh(_SQRT_2_OVER_PI * (x + _TANH_CUBIC * x * x * x))
            ctx.save_for_backward(x, t)
            return 0.5 * x * (1 + t)
        ctx.save_for_backward(x)
        return K.gelu_forward(x)

    @staticmethod
    def backward(ctx, grad_out):
        if ctx.approximate == "tanh":
            x, t = ctx.saved_tensors
            du = _SQRT_2_OVER_PI * (1 + 3 * _TANH_CUBIC * x * x)
            return grad_out * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * du), None
        (x,) = ctx.saved_tensors
        return K.gelu_backward(x, grad_out), None


def gelu(input, approximate="none"):
    """The Gaussian Error Linear Unit, ``x * Phi(x)``, as ``torch.nn.functional.gelu``.

    ``approximate``: ``'none'`` (exact, with erf) or ``'tanh'`` (the tanh formula of the
    original BERT/GPT code).
    """
    _check_float("gelu", "input", input)
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return GELU.apply(input, approximate)


# ---------------------------------------------------------------------- attention
def _attention_mask(attn_mask, is_causal, query, key):
    """The additive mask (0 or -inf for booleans; floats as given) as a Tensor, or None."""
    L, S = query.shape[-2], key.shape[-2]
    if is_causal:
        if attn_mask is not None:
            raise ValueError("scaled_dot_product_attention: pass either attn_mask or is_causal=True, not both")
        keep = np.tril(np.ones((L, S), dtype=bool))           # query i sees keys 0..i
        attn_mask = Tensor(backend.to_device(keep, query.device))
    if attn_mask is None:
        return None
    if not isinstance(attn_mask, Tensor):
        raise TypeError(f"scaled_dot_product_attention: attn_mask must be a Tensor or None, "
                        f"got {type(attn_mask).__name__}")
    if attn_mask.ndim < 2 or attn_mask.shape[-2:] != (L, S):
        raise ValueError(f"scaled_dot_product_attention: attn_mask must have shape (..., L, S) = "
                         f"(..., {L}, {S}) for query {query.shape} and key {key.shape}, got {attn_mask.shape}")
    try:
        np.broadcast_shapes(attn_mask.shape[:-2], query.shape[:-2])
    except ValueError:
        raise ValueError(f"scaled_dot_product_attention: attn_mask's batch dims {attn_mask.shape[:-2]} "
                         f"do not broadcast with query's {query.shape[:-2]}") from None
    if attn_mask.dtype == np.bool_:
        xp = backend.array_module(attn_mask.data)
        # True = this query may look at this key (PyTorch's meaning); False adds -inf.
        return Tensor(xp.where(attn_mask.data, 0.0, -np.inf).astype(query.dtype))
    if attn_mask.dtype.kind != "f":
        raise TypeError(f"scaled_dot_product_attention: attn_mask must be bool or floating point, "
                        f"got dtype {attn_mask.dtype}")
    return attn_mask


def _check_attention(query, key, value):
    for name, t in (("query", query), ("key", key), ("value", value)):
        _check_float("scaled_dot_product_attention", name, t)
        if t.ndim < 2:
            raise ValueError(f"scaled_dot_product_attention: {name} must have shape (..., length, features), "
                             f"got {t.shape}")
    if query.shape[-1] != key.shape[-1]:
        raise ValueError(f"scaled_dot_product_attention: query (..., L, E) and key (..., S, E) need the same "
                         f"E, got query {query.shape} and key {key.shape}")
    if key.shape[-2] != value.shape[-2]:
        raise ValueError(f"scaled_dot_product_attention: key (..., S, E) and value (..., S, Ev) need the same "
                         f"S (one value per key), got key {key.shape} and value {value.shape}")
    try:
        np.broadcast_shapes(query.shape[:-2], key.shape[:-2], value.shape[:-2])
    except ValueError:
        raise ValueError(f"scaled_dot_product_attention: the batch dims of query {query.shape}, key "
                         f"{key.shape} and value {value.shape} do not broadcast") from None


def attention_weights(query, key, attn_mask=None, is_causal=False, scale=None):
    """``softmax(query @ key^T * scale + mask)``: (..., L, S), each row a distribution over keys."""
    _check_attention(query, key, key)
    if scale is None:
        scale = 1 / math.sqrt(query.shape[-1])
    scores = matmul(query, transpose(key, -2, -1)) * float(scale)
    mask = _attention_mask(attn_mask, is_causal, query, key)
    if mask is not None:
        scores = scores + mask
    return softmax(scores, dim=-1)


def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False,
                                 scale=None):
    """Attention ``softmax(Q K^T * scale + mask) V`` on (..., L, E) queries, (..., S, E) keys
    and (..., S, Ev) values, as ``torch.nn.functional.scaled_dot_product_attention``.

    Args:
        attn_mask: bool (True = may attend, PyTorch's meaning) or float (added to the
            scores) of shape broadcastable to (..., L, S).
        dropout_p: dropout on the attention weights. As in PyTorch it applies whenever it
            is > 0 (the function knows no training mode); modules pass 0 in evaluation.
        is_causal: query i attends only to keys 0..i (a lower-triangular mask).
        scale: the factor on the scores, ``1/sqrt(E)`` by default.

    Returns (..., L, Ev). A row whose keys are all masked out has no distribution to take
    (0/0); PyTorch and minisegnet both give NaN there.
    """
    _check_attention(query, key, value)
    if isinstance(dropout_p, bool) or not isinstance(dropout_p, numbers.Real) or not 0 <= dropout_p < 1:
        raise ValueError(f"scaled_dot_product_attention: dropout_p must be in [0, 1), got {dropout_p!r}")
    if scale is not None and (not isinstance(scale, numbers.Real) or isinstance(scale, bool)):
        raise TypeError(f"scaled_dot_product_attention: scale must be a number or None, got {scale!r}")
    weights = attention_weights(query, key, attn_mask, is_causal, scale)
    if dropout_p > 0:
        weights = dropout(weights, dropout_p, training=True)
    return matmul(weights, value)


# ---------------------------------------------------------------------- drop path
def drop_path(input, p=0.0, training=False):
    """Zero the whole of ``input[n]`` for each sample n with probability ``p`` and scale the
    kept samples by ``1/(1-p)`` (training only; identity in evaluation or with p = 0).

    Used on a residual branch, ``x + drop_path(f(x))``, this is stochastic depth.
    """
    _check_float("drop_path", "input", input)
    if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0 <= p < 1:
        raise ValueError(f"drop_path: p must be in [0, 1), got {p!r}")
    if not training or p == 0:
        return input
    shape = (input.shape[0],) + (1,) * (input.ndim - 1)
    return ApplyMask.apply(input, _dropout_mask(shape, p, input.dtype, input.device))
