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

    Backward, with D values per token, ``gw = grad_out * weight`` and means over those D
    values (the closed form: the mean and variance depend on every x of the token)::

        d x      = inv_std * (gw - mean(gw) - xhat * mean(gw * xhat))
        d weight = sum over tokens of grad_out * xhat
        d bias   = sum over tokens of grad_out
    """

    @staticmethod
    def forward(ctx, x, weight, bias, k, eps):
        xp = backend.array_module(x)
        axes = tuple(range(x.ndim - k, x.ndim))
        mean = x.mean(axis=axes, keepdims=True)
        centered = x - mean
        var = (centered * centered).mean(axis=axes, keepdims=True)
        inv_std = 1 / xp.sqrt(var + eps)
        xhat = centered * inv_std
        ctx.save_for_backward(xhat, inv_std, weight)
        ctx.axes = axes
        out = xhat if weight is None else xhat * weight
        return out if bias is None else out + bias

    @staticmethod
    def backward(ctx, grad_out):
        xhat, inv_std, weight = ctx.saved_tensors
        axes = ctx.axes
        lead = tuple(range(grad_out.ndim - len(axes)))          # the token axes
        dx = dweight = dbias = None
        if ctx.needs_input_grad[0]:
            gw = grad_out if weight is None else grad_out * weight
            dx = inv_std * (gw - gw.mean(axis=axes, keepdims=True)
                            - xhat * (gw * xhat).mean(axis=axes, keepdims=True))
        if ctx.needs_input_grad[1]:
            dweight = (grad_out * xhat).sum(axis=lead)
        if ctx.needs_input_grad[2]:
            dbias = grad_out.sum(axis=lead)
        return dx, dweight, dbias, None, None


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
# erf(x) for the exact GELU. NumPy has no erf, so this is the classic rational
# approximation of fdlibm's s_erf.c (Sun Microsystems, 1993, freely redistributable),
# accurate to about one unit in the last place of a float64 on four intervals of |x|.
_ERX = 8.45062911510467529297e-01
_PP = (1.28379167095512558561e-01, -3.25042107247001499370e-01, -2.84817495755985104766e-02,
       -5.77027029648944159157e-03, -2.37630166566501626084e-05)
_QQ = (1.0, 3.97917223959155352819e-01, 6.50222499887672944485e-02, 5.08130628187576562776e-03,
       1.32494738004321644526e-04, -3.96022827877536812320e-06)
_PA = (-2.36211856075265944077e-03, 4.14856118683748331666e-01, -3.72207876035701323847e-01,
       3.18346619901161753674e-01, -1.10894694282396677476e-01, 3.54783043256182359371e-02,
       -2.16637559486879084300e-03)
_QA = (1.0, 1.06420880400844228286e-01, 5.40397917702171048937e-01, 7.18286544141962662868e-02,
       1.26171219808761642112e-01, 1.36370839120290507362e-02, 1.19844998467991074170e-02)
_RA = (-9.86494403484714822705e-03, -6.93858572707181764372e-01, -1.05586262253232909814e+01,
       -6.23753324503260060396e+01, -1.62396669462573470355e+02, -1.84605092906711035994e+02,
       -8.12874355063065934246e+01, -9.81432934416914548592e+00)
_SA = (1.0, 1.96512716674392571292e+01, 1.37657754143519042600e+02, 4.34565877475229228821e+02,
       6.45387271733267880336e+02, 4.29008140027567833386e+02, 1.08635005541779435134e+02,
       6.57024977031928170135e+00, -6.04244152148580987438e-02)
_RB = (-9.86494292470009928597e-03, -7.99283237680523006574e-01, -1.77579549177547519889e+01,
       -1.60636384855821916062e+02, -6.37566443368389627722e+02, -1.02509513161107724954e+03,
       -4.83519191608651397019e+02)
_SB = (1.0, 3.03380607434824582924e+01, 3.25792512996573918826e+02, 1.53672958608443695994e+03,
       3.19985821950859553908e+03, 2.55305040643316442583e+03, 4.74528541206955367215e+02,
       -2.24409524465858183362e+01)


def _poly(coefs, z):
    """c0 + c1 z + c2 z^2 + ... by Horner's rule."""
    out = coefs[-1] + 0 * z
    for c in reversed(coefs[:-1]):
        out = out * z + c
    return out


def _erf_small(z):                                            # |x| < 0.84375
    return z + z * _poly(_PP, z * z) / _poly(_QQ, z * z)


def _erf_mid(z):                                              # 0.84375 <= |x| < 1.25
    return _ERX + _poly(_PA, z - 1) / _poly(_QA, z - 1)


def _erf_tail(r, q):                                          # erf = 1 - erfc out there
    def piece(z):
        s = 1 / (z * z)
        return 1 - backend.array_module(z).exp(-z * z - 0.5625 + _poly(r, s) / _poly(q, s)) / z
    return piece


def erf(x):
    """The error function of a float array (NumPy or CuPy), ``2/sqrt(pi) int_0^x e^{-t^2} dt``,
    computed in float64 and returned in the input's dtype.

    Each interval of ``|x|`` has its own formula. On NumPy each formula runs on its own
    elements only; on CuPy picking those elements (``a[mask]``) would make the host wait for
    the GPU to count them, so there every formula runs on the whole array (at a harmless
    argument, 1.0, outside its interval) and ``where`` keeps the right one.
    """
    xp = backend.array_module(x)
    a = xp.abs(x.astype(np.float64))
    out = xp.ones_like(a)                                     # erf = 1 from |x| >= 6 on
    pieces = ((a < 0.84375, _erf_small), ((a >= 0.84375) & (a < 1.25), _erf_mid),
              ((a >= 1.25) & (a < 1 / 0.35), _erf_tail(_RA, _SA)), ((a >= 1 / 0.35) & (a < 6), _erf_tail(_RB, _SB)))
    for inside, piece in pieces:
        if xp is np:
            out[inside] = piece(a[inside])
        else:
            out = xp.where(inside, piece(xp.where(inside, a, 1.0)), out)
    return (xp.sign(x) * out).astype(x.dtype, copy=False)


_SQRT_2_OVER_PI = math.sqrt(2 / math.pi)
_TANH_CUBIC = 0.044715


class GELU(Function):
    """``x * Phi(x)``; d/dx = Phi(x) + x phi(x) with phi the standard normal density.

    ``approximate='tanh'``: y = x/2 (1 + t), t = tanh(u), u = c (x + 0.044715 x^3), and
    dy/dx = (1 + t)/2 + x/2 (1 - t^2) c (1 + 3 * 0.044715 x^2), c = sqrt(2/pi).
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
        return 0.5 * x * (1 + erf(x * (1 / math.sqrt(2))))

    @staticmethod
    def backward(ctx, grad_out):
        xp = backend.array_module(grad_out)
        if ctx.approximate == "tanh":
            x, t = ctx.saved_tensors
            du = _SQRT_2_OVER_PI * (1 + 3 * _TANH_CUBIC * x * x)
            return grad_out * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * du), None
        (x,) = ctx.saved_tensors
        cdf = 0.5 * (1 + erf(x * (1 / math.sqrt(2))))
        pdf = xp.exp(-0.5 * x * x) * (1 / math.sqrt(2 * math.pi))
        return grad_out * (cdf + x * pdf), None


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
