"""Q11: the forward pass of SegFormer's efficient self-attention.

A transformer sees an image as a sequence of tokens: x (N, L, C) holds one C-vector per
position of an H x W grid, row by row (L = H * W). In self-attention every token (a
*query*) takes a weighted mean of all tokens (the *values*), weighted by how well it
matches each of them (the *keys*). On a 128 x 128 grid that is L^2 = 268 million query-key
pairs. SegFormer keeps every query but shrinks the keys and values R x R times
(R = ``sr_ratio``):

1. queries from every token: ``Q = self.q(x)``                                   (N, L, C)
2. spatial reduction (only when sr_ratio > 1): turn the tokens back into a map
   (N, L, C) -> (N, C, L) -> (N, C, H, W), apply ``self.sr`` (a conv with kernel =
   stride = R: (N, C, H // R, W // R)), back to tokens (N, L', C) with L' = (H // R)(W // R),
   then ``self.norm`` (LayerNorm over the C channels). With sr_ratio = 1 the module has
   no ``sr`` and no ``norm``: the keys and values come from x itself (L' = L).
3. keys and values from the reduced tokens: ``self.kv`` gives (N, L', 2C); the first C
   features are K, the last C are V.
4. h = ``self.num_heads`` heads of d = C / h features each: split the features of Q, K
   and V, (N, L, C) -> (N, L, h, d) -> (N, h, L, d) (reshape, then swap the middle axes:
   a reshape alone would mix tokens into heads).
5. in every head, scaled dot-product attention::

       A = softmax(Q K^T / sqrt(d))      (N, h, L, L')   softmax over the keys (the last
                                                         axis): each row sums to 1
       out = A V                          (N, h, L, d)

6. concatenate the heads back, (N, h, L, d) -> (N, L, h, d) -> (N, L, C), and mix them
   with the output projection ``self.proj``: ``output`` (N, L, C).

Dividing by sqrt(d) keeps the scores' spread near 1 whatever d is, so the softmax does
not saturate. Every query still sees the whole image, through L' = L / R^2 keys.

Write it with minisegnet's Tensor operations so that gradients flow: the layers of
``__init__``, ``t.reshape(...)``, ``t.transpose(a, b)``, ``t.permute(...)``, ``a @ b``
(batched matrix product on the last two axes), ``t.softmax(dim)`` or ``F.softmax``.
``tokens_to_map(x, (H, W))`` and ``map_to_tokens(m)`` do the reshapes of step 2.
(``F.scaled_dot_product_attention`` and the library's own attention are the answer key:
they are switched off while grading.)
Check with ``minisegnet grade exercises/q11_efficient_attention.py``.
"""
import math

from minisegnet import functional as F
from minisegnet import nn
from minisegnet.models.segformer import map_to_tokens, tokens_to_map


class EfficientSelfAttention(nn.Module):
    """Multi-head self-attention with spatially reduced keys and values (SegFormer).

    Args:
        dim (int): C, the features per token; divisible by ``num_heads``.
        num_heads (int): h; each head works on d = C / h features.
        sr_ratio (int): R, the spatial reduction of keys and values (1: none).
        qkv_bias (bool): biases in the ``q`` and ``kv`` projections.

    Shapes: tokens x (N, L, C) on an (H, W) grid, L = H * W -> output (N, L, C).
    """

    def __init__(self, dim, num_heads, sr_ratio=1, qkv_bias=True):
        super().__init__()
        self.dim, self.num_heads, self.sr_ratio = dim, num_heads, sr_ratio
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.kv = nn.Linear(dim, 2 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        if sr_ratio > 1:
            self.sr = nn.Conv2d(dim, dim, sr_ratio, stride=sr_ratio)
            self.norm = nn.LayerNorm(dim, eps=1e-6)

    def forward(self, x, hw):
        """x: (N, L, C) tokens on the grid hw = (H, W) -> ``output``: (N, L, C)."""
        n, length, c = x.shape
        h, d = self.num_heads, self.dim // self.num_heads
        # ---- YOUR CODE BEGINS ----
        raise NotImplementedError("q11_efficient_attention: queries, reduced keys and values, attention per head, proj")
        # ---- YOUR CODE ENDS ----
        return output
