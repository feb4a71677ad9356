"""BiSeNetV2 (Yu et al. 2021): a wide shallow branch for detail, a narrow deep branch for
context, and a guided aggregation that lets each branch gate the other.

    image (N, 3, H, W)
      --detail branch-->   x_d (N, 128, H/8, W/8)      6 plain 3x3 ConvModules, wide
      --semantic branch--> stem (H/4) -> GE stages (H/8, H/16, H/32) -> context embedding
                           x_s (N, 128, H/32, W/32)    narrow, deep, cheap (depthwise)
      --bga(x_d, x_s)-->   (N, 128, H/8, W/8)          each branch gates the other (sigmoid)
      --segment head-->    (N, K, H/8, W/8)

During training, *booster* heads (auxiliary FCN heads) classify the semantic branch's
intermediate maps (stem, stage 2, 3, 4) too, so its early layers get their own signal;
they cost nothing at inference. The backbone returns ``[bga, stem, s2, s3, s4]`` and the
heads pick their map by ``in_index``, as in MMSegmentation, whose ``BiSeNetV2`` the
structure and attribute names follow.
"""
from .. import functional as F
from .. import nn
from .heads import ConvModule, DepthwiseSeparableConvModule, FCNHead, resize
from .segmentor import EncoderDecoder


class DetailBranch(nn.Module):
    """Three stages of 3x3 ConvModules, each starting with stride 2 (2, 3 and 3 convs):
    (N, C, H, W) -> (N, channels[2], H/8, W/8). Wide and shallow: it keeps spatial detail."""

    def __init__(self, channels=(64, 64, 128), in_channels=3):
        super().__init__()
        stages, cin = [], in_channels
        for i, cout in enumerate(channels):
            convs = [ConvModule(cin, cout, 3, stride=2, padding=1)]
            convs += [ConvModule(cout, cout, 3, padding=1) for _ in range(1 if i == 0 else 2)]
            stages.append(nn.Sequential(*convs))
            cin = cout
        self.detail_branch = nn.ModuleList(stages)

    def forward(self, x):
        for stage in self.detail_branch:
            x = stage(x)
        return x


class StemBlock(nn.Module):
    """Stride 4 in two ways at once, concatenated and fused:
    conv (s2) -> [1x1 then 3x3 s2 conv | 3x3 s2 max-pool] -> concat -> 3x3 conv.
    (N, C, H, W) -> (N, out_channels, H/4, W/4)."""

    def __init__(self, in_channels=3, out_channels=16):
        super().__init__()
        self.conv_first = ConvModule(in_channels, out_channels, 3, stride=2, padding=1)
        self.convs = nn.Sequential(ConvModule(out_channels, out_channels // 2, 1),
                                   ConvModule(out_channels // 2, out_channels, 3, stride=2, padding=1))
        self.pool = nn.MaxPool2d(3, stride=2, padding=1)
        self.fuse_last = ConvModule(out_channels * 2, out_channels, 3, padding=1)

    def forward(self, x):
        x = self.conv_first(x)
        return self.fuse_last(F.cat([self.convs(x), self.pool(x)], dim=1))


class GELayer(nn.Module):
    """Gather-and-expand layer: 3x3 conv (gather), depthwise 3x3 to ``exp_ratio`` times
    the channels (expand), 1x1 projection (no ReLU), plus the shortcut, then ReLU.

    Stride 2 adds a second depthwise conv on the expanded map and a depthwise-separable
    shortcut (the identity no longer fits). (N, C_in, H, W) -> (N, C_out, H/s, W/s).
    """

    def __init__(self, in_channels, out_channels, exp_ratio=6, stride=1):
        super().__init__()
        mid = in_channels * exp_ratio
        self.conv1 = ConvModule(in_channels, in_channels, 3, padding=1)
        if stride == 1:
            self.dwconv = nn.Sequential(ConvModule(in_channels, mid, 3, padding=1, groups=in_channels))
            self.shortcut = None
        else:
            self.dwconv = nn.Sequential(
                ConvModule(in_channels, mid, 3, stride=stride, padding=1, groups=in_channels, act=False),
                ConvModule(mid, mid, 3, padding=1, groups=mid))
            self.shortcut = nn.Sequential(
                DepthwiseSeparableConvModule(in_channels, out_channels, 3, stride=stride, padding=1, act=False))
        self.conv2 = nn.Sequential(ConvModule(mid, out_channels, 1, act=False))
        self.act = nn.ReLU()

    def forward(self, x):
        shortcut = x if self.shortcut is None else self.shortcut(x)
        return self.act(self.conv2(self.dwconv(self.conv1(x))) + shortcut)


class CEBlock(nn.Module):
    """Context embedding: global average pool (+ BatchNorm), 1x1 conv, broadcast-add to
    the input, 3x3 conv. (N, C, H, W) -> (N, C, H, W); every pixel gets the image's gist."""

    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.gap = nn.Sequential(nn.AdaptiveAvgPool2d((1, 1)), nn.BatchNorm2d(in_channels))
        self.conv_gap = ConvModule(in_channels, out_channels, 1)
        self.conv_last = ConvModule(out_channels, out_channels, 3, padding=1)

    def forward(self, x):
        if self.training and x.shape[0] == 1:
            raise ValueError(f"CEBlock: the context embedding pools the map to 1x1 and batch-normalises it, "
                             f"which needs a batch of 2 or more in training (got input {x.shape}); "
                             f"use a larger batch or call model.eval()")
        return self.conv_last(x + self.conv_gap(self.gap(x)))


class SemanticBranch(nn.Module):
    """Stem (H/4), GE stages 2-4 (H/8, H/16, H/32; 2, 2, 4 layers), context embedding.
    Returns the five maps ``[stem, stage2, stage3, stage4, ce]``."""

    def __init__(self, channels=(16, 32, 64, 128), in_channels=3, exp_ratio=6):
        super().__init__()
        self.stage1 = StemBlock(in_channels, channels[0])
        for i in (1, 2, 3):
            layers = [GELayer(channels[i - 1], channels[i], exp_ratio, stride=2)]
            layers += [GELayer(channels[i], channels[i], exp_ratio) for _ in range(3 if i == 3 else 1)]
            setattr(self, f"stage{i + 1}", nn.Sequential(*layers))
        self.stage4_CEBlock = CEBlock(channels[3], channels[3])

    def forward(self, x):
        outs = []
        for stage in (self.stage1, self.stage2, self.stage3, self.stage4, self.stage4_CEBlock):
            x = stage(x)
            outs.append(x)
        return outs


class BGALayer(nn.Module):
    """Bilateral guided aggregation of x_d (N, C, H/8, W/8) and x_s (N, C, H/32, W/32)::

        detail_dwconv(x_d) * sigmoid(up(semantic_conv(x_s)))        at H/8: context gates detail
      + up( detail_down(x_d) * sigmoid(semantic_dwconv(x_s)) )      at H/32: detail gates context
      --> 3x3 ConvModule --> (N, C, H/8, W/8)
    """

    def __init__(self, channels=128, align_corners=False):
        super().__init__()
        self.align_corners = align_corners

        def dw_then_pointwise():         # depthwise 3x3 + BN, then a plain 1x1 conv (with bias)
            return nn.Sequential(ConvModule(channels, channels, 3, padding=1, groups=channels, act=False),
                                 ConvModule(channels, channels, 1, norm=False, act=False))

        self.detail_dwconv = dw_then_pointwise()
        self.detail_down = nn.Sequential(ConvModule(channels, channels, 3, stride=2, padding=1, act=False),
                                         nn.AvgPool2d(3, stride=2, padding=1))
        self.semantic_conv = nn.Sequential(ConvModule(channels, channels, 3, padding=1, act=False))
        self.semantic_dwconv = dw_then_pointwise()
        self.conv = ConvModule(channels, channels, 3, padding=1)

    def forward(self, x_d, x_s):
        guided_detail = self.detail_dwconv(x_d) * F.sigmoid(
            resize(self.semantic_conv(x_s), x_d.shape[2:], align_corners=self.align_corners))
        guided_context = self.detail_down(x_d) * F.sigmoid(self.semantic_dwconv(x_s))
        guided_context = resize(guided_context, x_d.shape[2:], align_corners=self.align_corners)
        return self.conv(guided_detail + guided_context)


class BiSeNetV2(nn.Module):
    """The two branches and their aggregation; returns ``[bga, stem, s2, s3, s4]``.

    ``width`` scales every channel count (1.0: the paper's 64-64-128 detail and
    16-32-64-128 semantic channels). The two branches meet at H/8 and H/32, so the
    inputs' sides should be at least 32 px; odd sizes work (the resizes round up).
    """

    def __init__(self, in_channels=3, width=1.0, exp_ratio=6, align_corners=False):
        super().__init__()
        if not width > 0:
            raise ValueError(f"BiSeNetV2: width must be positive, got {width!r}")

        def c(n):
            return max(2, int(round(n * width / 2)) * 2)

        self.in_channels = in_channels
        detail, semantic = (c(64), c(64), c(128)), (c(16), c(32), c(64), c(128))
        self.detail = DetailBranch(detail, in_channels)
        self.semantic = SemanticBranch(semantic, in_channels, exp_ratio)
        self.bga = BGALayer(detail[-1], align_corners)
        if detail[-1] != semantic[-1]:
            raise ValueError("BiSeNetV2: the last detail and semantic widths must match")
        self.out_channels = (detail[-1],) + semantic
        self.strides = (8, 4, 8, 16, 32)

    def forward(self, x):
        x_detail = self.detail(x)
        semantic = self.semantic(x)
        return [self.bga(x_detail, semantic[-1])] + semantic[:-1]


def bisenetv2(num_classes, in_channels=3, width=1.0, aux=False, dropout_ratio=0.1, align_corners=False,
              ignore_index=255):
    """BiSeNetV2 as an :class:`EncoderDecoder`: the segment head is an FCN head with one
    3x3 conv expanding to 8x the channels (1024 at width 1); ``aux`` adds the four booster
    heads on stem, stage 2, 3 and 4 (loss weight 1 each, as MMSegmentation)."""
    backbone = BiSeNetV2(in_channels, width=width, align_corners=align_corners)
    common = dict(num_classes=num_classes, dropout_ratio=dropout_ratio, align_corners=align_corners,
                  ignore_index=ignore_index)
    bga = backbone.out_channels[0]
    head = FCNHead(num_convs=1, concat_input=False, in_channels=bga, channels=8 * bga, in_index=0, **common)
    boosters = None
    if aux:
        boosters = nn.ModuleList([
            FCNHead(num_convs=2, concat_input=False, in_channels=cin, channels=cin * expand, in_index=i + 1, **common)
            for i, (cin, expand) in enumerate(zip(backbone.out_channels[1:], (1, 2, 4, 8)))])
    return EncoderDecoder(backbone, head, auxiliary_head=boosters, align_corners=align_corners,
                          aux_weight=1.0)


__all__ = ["BGALayer", "BiSeNetV2", "CEBlock", "DetailBranch", "GELayer", "SemanticBranch", "StemBlock",
           "bisenetv2"]
