"""Transformer layers: LayerNorm, GELU, MultiheadAttention and DropPath.

Names, arguments, defaults and ``state_dict`` keys follow ``torch.nn``, so weights load
from PyTorch by name (``in_proj_weight``, ``in_proj_bias``, ``out_proj.weight``, ...).
"""
import math
import numbers

from .. import functional as F
from ..functional import transformer as T
from ..tensor import Tensor, ones, zeros
from . import init
from .layers import Linear
from .module import Module, Parameter

__all__ = ["DropPath", "GELU", "LayerNorm", "MultiheadAttention"]


class LayerNorm(Module):
    """Layer normalisation over the last dims, ``torch.nn.LayerNorm``.

    Input (*, *normalized_shape), output the same shape; see
    :func:`minisegnet.functional.layer_norm`. ``weight`` (ones) and ``bias`` (zeros)
    have shape ``normalized_shape`` when ``elementwise_affine``.
    """

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True):
        super().__init__()
        if isinstance(normalized_shape, numbers.Integral):
            normalized_shape = (normalized_shape,)
        normalized_shape = tuple(normalized_shape)
        if not normalized_shape or any(isinstance(s, bool) or not isinstance(s, numbers.Integral) or s < 1
                                       for s in normalized_shape):
            raise ValueError(f"LayerNorm: normalized_shape must be a positive int or a tuple of them, "
                             f"got {normalized_shape!r}")
        self.normalized_shape = tuple(int(s) for s in normalized_shape)
        self.eps, self.elementwise_affine = eps, elementwise_affine
        if elementwise_affine:
            self.weight = Parameter(ones(*self.normalized_shape))
            self.register_parameter("bias", Parameter(zeros(*self.normalized_shape)) if bias else None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def forward(self, x):
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"


class GELU(Module):
    """``x * Phi(x)`` (``approximate='tanh'``: the tanh formula), ``torch.nn.GELU``."""

    def __init__(self, approximate="none"):
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"GELU: approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def forward(self, x):
        return F.gelu(x, approximate=self.approximate)

    def extra_repr(self):
        return f"approximate={self.approximate!r}"


class DropPath(Module):
    """Stochastic depth: drop a sample's whole residual branch with probability ``drop_prob``
    in training (scaling the kept ones by ``1/(1-p)``); identity in evaluation."""

    def __init__(self, drop_prob=0.0):
        super().__init__()
        if not 0 <= drop_prob < 1:
            raise ValueError(f"DropPath: drop_prob must be in [0, 1), got {drop_prob!r}")
        self.drop_prob = drop_prob

    def forward(self, x):
        return F.drop_path(x, self.drop_prob, self.training)

    def extra_repr(self):
        return f"drop_prob={self.drop_prob}"


class MultiheadAttention(Module):
    """Multi-head attention, ``torch.nn.MultiheadAttention`` (self- or cross-attention)::

        Q = query W_q^T + b_q     K = key W_k^T + b_k     V = value W_v^T + b_v     (N, L|S, E)
        split E into num_heads heads of E/h features:                           (N, h, L|S, E/h)
        head_i = softmax(Q_i K_i^T / sqrt(E/h) + mask) V_i                      (N, h, L, E/h)
        out    = concat(head_1 .. head_h) W_o^T + b_o                           (N, L, E)

    Every head attends with its own slice of the projections, so the heads can look for
    different things. ``W_q, W_k, W_v`` are stacked in ``in_proj_weight`` (3E, E) and
    their biases in ``in_proj_bias`` (3E,); ``out_proj`` is a Linear(E, E) – PyTorch's keys.

    Args:
        embed_dim: E, the features of every token (query, key and value alike).
        num_heads: h; E must be divisible by it.
        dropout: dropout on the attention weights (training only).
        bias: add the biases ``in_proj_bias`` and ``out_proj.bias``.
        batch_first: inputs are (N, L, E) when True, (L, N, E) when False (the default, as
            in PyTorch). Unbatched (L, E) inputs work too.

    ``forward`` returns ``(output, weights)``: output like the query; weights (N, L, S),
    averaged over heads (or (N, h, L, S) with ``average_attn_weights=False``), or None
    when ``need_weights=False``.
    """

    def __init__(self, embed_dim, num_heads, dropout=0.0, bias=True, batch_first=False):
        super().__init__()
        for name, value in (("embed_dim", embed_dim), ("num_heads", num_heads)):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
                raise ValueError(f"MultiheadAttention: {name} must be a positive int, got {value!r}")
        if embed_dim % num_heads:
            raise ValueError(f"MultiheadAttention: embed_dim must be divisible by num_heads, got "
                             f"embed_dim={embed_dim} and num_heads={num_heads}")
        if not 0 <= dropout < 1:
            raise ValueError(f"MultiheadAttention: dropout must be in [0, 1), got {dropout!r}")
        self.embed_dim, self.num_heads, self.head_dim = int(embed_dim), int(num_heads), embed_dim // num_heads
        self.dropout, self.batch_first = dropout, batch_first
        self.in_proj_weight = Parameter(zeros(3 * embed_dim, embed_dim))
        self.register_parameter("in_proj_bias", Parameter(zeros(3 * embed_dim)) if bias else None)
        self.out_proj = Linear(embed_dim, embed_dim, bias=bias)
        self.reset_parameters()

    def reset_parameters(self):
        """PyTorch's: Xavier-uniform ``in_proj_weight``, zero biases (``out_proj.weight`` keeps
        Linear's default)."""
        bound = math.sqrt(6.0 / (self.embed_dim + 3 * self.embed_dim))
        init.uniform_(self.in_proj_weight, -bound, bound)
        if self.in_proj_bias is not None:
            init.zeros_(self.in_proj_bias)
            init.zeros_(self.out_proj.bias)

    def _check(self, query, key, value):
        for name, t in (("query", query), ("key", key), ("value", value)):
            if not isinstance(t, Tensor):
                raise TypeError(f"MultiheadAttention: {name} must be a Tensor, got {type(t).__name__}")
            if t.ndim not in (2, 3) or t.shape[-1] != self.embed_dim or t.ndim != query.ndim:
                layout = "(N, L, E)" if self.batch_first else "(L, N, E)"
                raise ValueError(f"MultiheadAttention: {name} must have shape {layout} or (L, E) with "
                                 f"E={self.embed_dim}, like the query; got query {query.shape}, {name} {t.shape}")
        if key.shape[:-1] != value.shape[:-1]:
            raise ValueError(f"MultiheadAttention: key and value need the same length and batch, got "
                             f"key {key.shape} and value {value.shape}")
        batch_axis = 0 if self.batch_first else 1
        if query.ndim == 3 and query.shape[batch_axis] != key.shape[batch_axis]:
            raise ValueError(f"MultiheadAttention: query and key have different batch sizes "
                             f"({query.shape} and {key.shape}; batch_first={self.batch_first})")

    def _heads(self, x, index):
        """Project (N, L, E) with the ``index``-th third of in_proj, split into (N, h, L, E/h)."""
        e = self.embed_dim
        w = self.in_proj_weight[index * e:(index + 1) * e]
        out = F.matmul(x, F.transpose(w, 0, 1))
        if self.in_proj_bias is not None:
            out = out + self.in_proj_bias[index * e:(index + 1) * e]
        n, length = out.shape[:2]
        return out.reshape(n, length, self.num_heads, self.head_dim).permute(0, 2, 1, 3)

    def forward(self, query, key, value, need_weights=True, attn_mask=None, average_attn_weights=True):
        self._check(query, key, value)
        unbatched = query.ndim == 2
        if unbatched:
            query, key, value = (t.unsqueeze(0) for t in (query, key, value))
        elif not self.batch_first:              # (L, N, E) -> (N, L, E)
            query, key, value = (t.transpose(0, 1) for t in (query, key, value))
        n, length = query.shape[:2]
        mask = self._mask(attn_mask, n, length, key.shape[1])
        q, k, v = self._heads(query, 0), self._heads(key, 1), self._heads(value, 2)   # (N, h, L|S, d)
        weights = T.attention_weights(q, k, attn_mask=mask)                             # (N, h, L, S)
        if self.training and self.dropout > 0:
            weights = F.dropout(weights, self.dropout, training=True)
        heads = F.matmul(weights, v)                                                    # (N, h, L, d)
        out = self.out_proj(heads.permute(0, 2, 1, 3).reshape(n, length, self.embed_dim))
        if unbatched:
            out = out.squeeze(0)
        elif not self.batch_first:
            out = out.transpose(0, 1)
        if not need_weights:
            return out, None
        if average_attn_weights:
            weights = weights.mean(dim=1)
        return out, (weights.squeeze(0) if unbatched else weights)

    def _mask(self, attn_mask, n, length, source):
        """PyTorch's mask shapes, (L, S) for all or (N*h, L, S) per sample and head, as (.., h, L, S)."""
        if attn_mask is None:
            return None
        if not isinstance(attn_mask, Tensor):
            raise TypeError(f"MultiheadAttention: attn_mask must be a Tensor or None, got {type(attn_mask).__name__}")
        if attn_mask.shape == (length, source):
            return attn_mask
        if attn_mask.shape == (n * self.num_heads, length, source):
            return attn_mask.reshape(n, self.num_heads, length, source)
        raise ValueError(f"MultiheadAttention: attn_mask must have shape (L, S) = ({length}, {source}) or "
                         f"(N*num_heads, L, S) = ({n * self.num_heads}, {length}, {source}), got {attn_mask.shape}")

    def extra_repr(self):
        return f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, dropout={self.dropout}, " \
               f"batch_first={self.batch_first}"
