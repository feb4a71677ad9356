"""SegFormer (Xie et al. 2021): a hierarchical transformer encoder and an all-MLP decoder.

    image (N, 3, H, W)
      stage 1: overlapping patch embedding 7x7/4 -> tokens (N, H/4 * W/4, C1) -> blocks -> map c1
      stage 2: patch embedding 3x3/2 on c1       -> (N, H/8 * W/8, C2)      -> blocks -> map c2
      stage 3, 4 likewise                        -> c3 (H/16), c4 (H/32)
      decoder: each c_i --1x1--> D channels, upsampled to H/4; concat; 1x1 fuse; classify

A block is pre-norm self-attention and a Mix-FFN, each added back to its input::

    x = x + attn(norm1(x))        EfficientSelfAttention: keys and values come from a map
                                  shrunk R x R times by a stride-R conv (R = 8, 4, 2, 1)
    x = x + ffn(norm2(x))         Mix-FFN: 1x1 conv, 3x3 depthwise conv, GELU, 1x1 conv

There is no positional encoding: the 3x3 depthwise convolution inside the FFN (and the
zero padding of the overlapping patch embeddings) tells the tokens where they are, so
the network runs at any input size. Global attention on stage 1 would cost (HW/16)^2;
the spatial reduction cuts it by R^2 = 64.

Widths of MiT-B0: C = 32, 64, 160, 256 with 1, 2, 5, 8 heads (32 features per head), two
blocks per stage, decoder width 256. The structure follows MMSegmentation's
``MixVisionTransformer`` and ``SegformerHead``; the attention is written out (``q``,
``kv``, ``proj``) as in the authors' code rather than through ``nn.MultiheadAttention``.
"""
from .. import functional as F
from .. import nn
from .heads import BaseDecodeHead, ConvModule, resize
from .segmentor import EncoderDecoder


def tokens_to_map(x, hw):
    """(N, H*W, C) tokens -> (N, C, H, W) feature map."""
    n, _, c = x.shape
    return x.transpose(1, 2).reshape(n, c, hw[0], hw[1])


def map_to_tokens(x):
    """(N, C, H, W) feature map -> (N, H*W, C) tokens, row by row."""
    n, c = x.shape[:2]
    return x.reshape(n, c, -1).transpose(1, 2)


class OverlapPatchEmbed(nn.Module):
    """A strided conv whose windows overlap (kernel 7 stride 4, or 3 stride 2), then LayerNorm.
    (N, C_in, H, W) -> tokens (N, h*w, C) and their grid (h, w)."""

    def __init__(self, in_channels, embed_dim, patch_size, stride):
        super().__init__()
        self.proj = nn.Conv2d(in_channels, embed_dim, patch_size, stride=stride, padding=patch_size // 2)
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)

    def forward(self, x):
        x = self.proj(x)
        return self.norm(map_to_tokens(x)), x.shape[2:]


class EfficientSelfAttention(nn.Module):
    """Multi-head self-attention whose keys and values come from a reduced map.

    For tokens x (N, L, C) on an (H, W) grid (L = H*W), h heads of d = C/h features::

        Q  = x W_q                                              (N, L, C) -> heads (N, h, L, d)
        x' = LayerNorm(tokens(Conv_RxR,stride R(map(x))))       (N, L/R^2, C)  (x' = x when R = 1)
        K, V = x' W_k, x' W_v                                   heads (N, h, L/R^2, d) each
        out = concat_heads(softmax(Q K^T / sqrt(d)) V) W_o      (N, L, C)

    Every query still sees the whole image, but through L/R^2 keys: the cost of the
    attention falls from L^2 to L^2/R^2. ``kv`` holds W_k and W_v stacked (2C, C).
    """

    def __init__(self, dim, num_heads, sr_ratio=1, qkv_bias=True):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"EfficientSelfAttention: dim must be divisible by num_heads, got {dim} and {num_heads}")
        self.dim, self.num_heads, self.sr_ratio = dim, num_heads, sr_ratio
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.kv = nn.Linear(dim, 2 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        if sr_ratio > 1:
            self.sr = nn.Conv2d(dim, dim, sr_ratio, stride=sr_ratio)
            self.norm = nn.LayerNorm(dim, eps=1e-6)

    def split_heads(self, x):
        """(N, L, C) -> (N, h, L, d)."""
        n, length, _ = x.shape
        return x.reshape(n, length, self.num_heads, self.dim // self.num_heads).permute(0, 2, 1, 3)

    def forward(self, x, hw):
        n, length, c = x.shape
        q = self.split_heads(self.q(x))                                   # (N, h, L, d)
        if self.sr_ratio > 1:
            if min(hw) < self.sr_ratio:
                raise ValueError(f"EfficientSelfAttention: the {hw[0]}x{hw[1]} token grid is smaller than the "
                                 f"spatial reduction {self.sr_ratio}x{self.sr_ratio}; use a larger input image")
            x = self.norm(map_to_tokens(self.sr(tokens_to_map(x, hw))))   # (N, L/R^2, C)
        kv = self.kv(x)                                                   # (N, L/R^2, 2C)
        k, v = self.split_heads(kv[:, :, :c]), self.split_heads(kv[:, :, c:])          # (N, h, L/R^2, d)
        out = F.scaled_dot_product_attention(q, k, v)                                   # (N, h, L, d)
        return self.proj(out.permute(0, 2, 1, 3).reshape(n, length, c))

    def extra_macs(self, inputs, output):
        """MACs of ``Q K^T`` and ``weights V`` (2 N L L' C), which no child module counts."""
        x, hw = inputs
        n, length, c = x.shape
        keys = length if self.sr_ratio == 1 else (hw[0] // self.sr_ratio) * (hw[1] // self.sr_ratio)
        return 2 * n * length * keys * c


class MixFFN(nn.Module):
    """1x1 conv to ``hidden`` channels, 3x3 depthwise conv (the positional cue), GELU,
    1x1 conv back: tokens (N, L, C) -> (N, L, C)."""

    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Conv2d(dim, hidden, 1)
        self.dwconv = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Conv2d(hidden, dim, 1)

    def forward(self, x, hw):
        x = self.fc2(self.act(self.dwconv(self.fc1(tokens_to_map(x, hw)))))
        return map_to_tokens(x)


class TransformerBlock(nn.Module):
    """Pre-norm residual block: ``x + attn(norm1(x))``, then ``x + ffn(norm2(x))``
    (each branch through DropPath, stochastic depth, in training)."""

    def __init__(self, dim, num_heads, mlp_ratio=4, sr_ratio=1, drop_path=0.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = EfficientSelfAttention(dim, num_heads, sr_ratio)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.ffn = MixFFN(dim, dim * mlp_ratio)
        self.drop_path = nn.DropPath(drop_path)

    def forward(self, x, hw):
        x = x + self.drop_path(self.attn(self.norm1(x), hw))
        return x + self.drop_path(self.ffn(self.norm2(x), hw))


class MixVisionTransformer(nn.Module):
    """The MiT encoder: four stages of (patch embedding, blocks, LayerNorm), returning the
    maps ``[c1, c2, c3, c4]`` at strides 4, 8, 16, 32 with ``embed_dims`` channels."""

    def __init__(self, in_channels=3, embed_dims=(32, 64, 160, 256), num_heads=(1, 2, 5, 8), depths=(2, 2, 2, 2),
                 sr_ratios=(8, 4, 2, 1), mlp_ratio=4, drop_path_rate=0.1):
        super().__init__()
        self.in_channels, self.out_channels, self.strides = in_channels, tuple(embed_dims), (4, 8, 16, 32)
        total, done = sum(depths), 0
        self.stages = nn.ModuleList()
        cin = in_channels
        for i in range(4):
            patch = 7 if i == 0 else 3
            rates = [drop_path_rate * (done + j) / max(total - 1, 1) for j in range(depths[i])]  # 0 .. rate
            stage = nn.Module()
            stage.patch_embed = OverlapPatchEmbed(cin, embed_dims[i], patch, 4 if i == 0 else 2)
            stage.blocks = nn.ModuleList([TransformerBlock(embed_dims[i], num_heads[i], mlp_ratio, sr_ratios[i], r)
                                          for r in rates])
            stage.norm = nn.LayerNorm(embed_dims[i], eps=1e-6)
            self.stages.append(stage)
            cin, done = embed_dims[i], done + depths[i]

    def forward(self, x):
        outs = []
        for stage in self.stages:
            tokens, hw = stage.patch_embed(x)
            for block in stage.blocks:
                tokens = block(tokens, hw)
            x = tokens_to_map(stage.norm(tokens), hw)
            outs.append(x)
        return outs


class SegFormerHead(BaseDecodeHead):
    """The all-MLP decoder: a 1x1 ConvModule per level to ``channels``, upsample all to
    c1's size (H/4), concatenate, fuse with a 1x1 ConvModule, classify.
    [c1..c4] -> (N, num_classes, H/4, W/4)."""

    def __init__(self, in_channels_list, **kwargs):
        super().__init__(in_channels=in_channels_list[0], **kwargs)
        self.in_channels_list = tuple(in_channels_list)
        self.convs = nn.ModuleList([ConvModule(c, self.channels, 1) for c in in_channels_list])
        self.fusion_conv = ConvModule(len(in_channels_list) * self.channels, self.channels, 1)

    def forward(self, inputs):
        size = inputs[0].shape[2:]
        outs = [resize(conv(x), size, align_corners=self.align_corners) for conv, x in zip(self.convs, inputs)]
        return self.cls_seg(self.fusion_conv(F.cat(outs, dim=1)))


def segformer_b0(num_classes, in_channels=3, width=1.0, channels=None, dropout_ratio=0.1, align_corners=False,
                 ignore_index=255, drop_path_rate=0.1):
    """SegFormer-B0 as an :class:`EncoderDecoder` (no auxiliary head).

    ``width`` scales the embedding widths (heads keep their count, so 0.5 gives 16
    features per head) and, unless ``channels`` is given, the decoder's 256 channels.
    ``width=0.5`` suits the 64-256 px built-in datasets. Inputs need sides of at least
    29 px (stage 1's 8x8 spatial reduction needs an 8x8 token grid).
    """
    if not width > 0:
        raise ValueError(f"segformer_b0: width must be positive, got {width!r}")
    heads = (1, 2, 5, 8)
    dims = tuple(h * max(1, int(round(32 * width))) for h in heads)
    backbone = MixVisionTransformer(in_channels, dims, heads, drop_path_rate=drop_path_rate)
    head = SegFormerHead(dims, channels=channels or max(8, int(round(256 * width))), num_classes=num_classes,
                         dropout_ratio=dropout_ratio, align_corners=align_corners, ignore_index=ignore_index)
    return EncoderDecoder(backbone, head, align_corners=align_corners)


__all__ = ["EfficientSelfAttention", "MixFFN", "MixVisionTransformer", "OverlapPatchEmbed", "SegFormerHead",
           "TransformerBlock", "map_to_tokens", "segformer_b0", "tokens_to_map"]
