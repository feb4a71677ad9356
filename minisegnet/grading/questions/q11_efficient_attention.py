"""Q11: ``EfficientSelfAttention.forward`` of SegFormer, compared with
``segformer.EfficientSelfAttention`` on the same random weights; the library's attention
(that module's forward and head split, ``F.scaled_dot_product_attention``, the attention
weights, ``nn.MultiheadAttention``) is the answer key.

A wrong output is tested against the common slips, each computed here with the
reference module's own layers: no 1/sqrt(d) scale (or 1/sqrt(C)), the softmax over the
queries, keys from all tokens, no LayerNorm after the reduction, heads split or merged by
a reshape alone, no output projection, tokens reshaped to a map without moving the
channels first, H and W swapped.
"""
import math

from ...models import segformer
from ..compare import compare_modules
from ..question import Question
from . import stub

QUESTION = Question("q11_efficient_attention", "EfficientSelfAttention.forward (SegFormer)",
                    ("EfficientSelfAttention",),
                    answer_key=("minisegnet.models.segformer:EfficientSelfAttention.forward",
                                "minisegnet.models.segformer:EfficientSelfAttention.split_heads",
                                "minisegnet.functional.transformer:scaled_dot_product_attention",
                                "minisegnet.functional.transformer:attention_weights",
                                "minisegnet.nn.transformer:MultiheadAttention.forward",
                                "minisegnet.nn.transformer:MultiheadAttention._heads"),
                    stub=stub("q11_efficient_attention"))


def attention(module, x, hw, scale="d", softmax_dim=-1, reduce=True, norm=True, split="permute",
              merge="permute", proj=True, to_map="transpose"):
    """The efficient self-attention of ``module`` on tokens ``x`` (N, L, C) with one step
    done another way (the defaults give the right answer):

    ``scale``: ``'d'`` (1/sqrt(d)), ``'C'`` (1/sqrt(C)) or None; ``softmax_dim``: the
    axis of the (N, h, L, L') scores; ``reduce``/``norm``: the spatial reduction and its
    LayerNorm; ``split``/``merge``: ``'permute'`` or ``'reshape'`` (no axis swap);
    ``proj``: the output projection; ``to_map``: ``'transpose'``, ``'reshape'`` (tokens
    reshaped to (N, C, H, W) directly) or ``'swap'`` (the grid read as (W, H)).
    """
    n, length, c = x.shape
    h = module.num_heads
    d = c // h

    def heads(t):
        if split == "reshape":
            return t.reshape(n, h, t.shape[1], d)
        return t.reshape(n, t.shape[1], h, d).permute(0, 2, 1, 3)

    q = heads(module.q(x))
    source = x
    if module.sr_ratio > 1 and reduce:
        if to_map == "reshape":
            grid = x.reshape(n, c, hw[0], hw[1])
        else:
            grid = segformer.tokens_to_map(x, hw if to_map == "transpose" else hw[::-1])
        source = segformer.map_to_tokens(module.sr(grid))
        if norm:
            source = module.norm(source)
    kv = module.kv(source)
    k, v = heads(kv[:, :, :c]), heads(kv[:, :, c:])
    scores = q @ k.transpose(-2, -1)
    if scale is not None:
        scores = scores * (1 / math.sqrt(d if scale == "d" else c))
    out = scores.softmax(softmax_dim) @ v                                  # (N, h, L, d)
    if merge == "reshape":
        out = out.reshape(n, length, c)
    else:
        out = out.permute(0, 2, 1, 3).reshape(n, length, c)
    return module.proj(out) if proj else out


def _slips(hw):
    """``(description, fn(reference, x))`` for the common wrong forwards on grid ``hw``."""
    def slip(**how):
        return lambda module, x: attention(module, x, hw, **how)
    return [
        ("without the 1/sqrt(d) scale on the scores Q K^T", slip(scale=None)),
        ("with the scale 1/sqrt(C) of all the channels instead of 1/sqrt(d) of one head "
         "(d = C / num_heads)", slip(scale="C")),
        ("with the softmax over the queries (dim=-2) instead of over the keys (dim=-1)",
         slip(softmax_dim=-2)),
        ("with keys and values from all the tokens, without the spatial reduction self.sr",
         slip(reduce=False)),
        ("without the LayerNorm self.norm after the reduction conv", slip(norm=False)),
        ("with the heads split (and merged) by a reshape to (N, h, L, d) alone, without the "
         "transpose (N, L, h, d) -> (N, h, L, d)", slip(split="reshape", merge="reshape")),
        ("with the heads split by a reshape to (N, h, L, d) alone, without the transpose "
         "(N, L, h, d) -> (N, h, L, d)", slip(split="reshape")),
        ("with the heads merged by a reshape of (N, h, L, d) to (N, L, C) alone, without "
         "first moving the heads back behind the tokens", slip(merge="reshape")),
        ("without the output projection self.proj", slip(proj=False)),
        ("with the tokens (N, L, C) reshaped straight to (N, C, H, W), without moving the "
         "channels in front of the tokens first", slip(to_map="reshape")),
        ("with H and W swapped when the tokens become a map (the grid is H rows of W tokens)",
         slip(to_map="swap")),
    ]


def attention_case(student, rng, dim, num_heads, sr_ratio, hw, batch=2, grads=False):
    """Compare the student's EfficientSelfAttention with the library's (same random
    weights) on random tokens (batch, H * W, dim) on the grid ``hw``."""
    x = rng.normal(size=(batch, hw[0] * hw[1], dim))
    compare_modules(student, "EfficientSelfAttention", segformer.EfficientSelfAttention,
                    dict(dim=dim, num_heads=num_heads, sr_ratio=sr_ratio), x, rng, grads=grads,
                    mistakes=_slips(tuple(hw)), extra_args=(tuple(hw),))


_HINT = ("out = proj(concat_heads(softmax(Q K^T / sqrt(d), dim=-1) V)) with Q from every "
         "token and K, V from self.kv; the scale uses d = C / num_heads, the features of one head.")


@QUESTION.check("one head, no spatial reduction (sr_ratio=1), 4x4 grid",
                hint=_HINT + " With sr_ratio=1 the module has no self.sr or self.norm: keys and "
                             "values come from x itself.")
def plain(student, rng):
    attention_case(student, rng, 8, 1, 1, (4, 4))


@QUESTION.check("spatial reduction sr_ratio=2, one head, 4x4 grid",
                hint="Keys and values come from the reduced map: tokens -> (N, C, H, W) -> self.sr "
                     "-> tokens (N, L/R^2, C) -> self.norm -> self.kv. Queries still come from every token.")
def reduction(student, rng):
    attention_case(student, rng, 8, 1, 2, (4, 4))


@QUESTION.check("two and four heads (d = C / num_heads)",
                hint="Split each of Q, K, V as (N, L, C) -> (N, L, h, d) -> (N, h, L, d) and merge "
                     "back with the inverse; scale by 1/sqrt(d), the features of one head.")
def multi_head(student, rng):
    attention_case(student, rng, 8, 2, 2, (4, 4))
    attention_case(student, rng, 16, 4, 1, (3, 3), batch=1)


@QUESTION.check("odd, non-square grids (5x7 with sr_ratio=2, 9x6 with sr_ratio=4)",
                hint="The grid has H rows of W tokens: tokens_to_map(x, (H, W)), i.e. (N, L, C) -> "
                     "(N, C, L) -> (N, C, H, W). The reduction conv floors: (H // R, W // R).")
def odd(student, rng):
    attention_case(student, rng, 8, 2, 2, (5, 7))
    attention_case(student, rng, 12, 3, 4, (9, 6), batch=1)


@QUESTION.check("float64 gradients reach x and every layer (sr_ratio=2, two heads, 5x6 grid)",
                hint="Build the output from minisegnet ops on Tensors (the layers, reshape, "
                     "transpose/permute, @, softmax) so that backward() reaches x, q, kv, sr, norm and proj.")
def gradients(student, rng):
    attention_case(student, rng, 8, 2, 2, (5, 6), grads=True)
    attention_case(student, rng, 8, 2, 1, (3, 4), batch=1, grads=True)
