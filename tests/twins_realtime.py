"""PyTorch twins of Fast-SCNN, BiSeNetV2 and SegFormer-B0, written independently of
minisegnet with the same structure and the same state-dict keys, so that weights copy
across by name. Used by tests/test_realtime_models.py (parity in float64) and reusable by
the benchmarks (``build_twin(name, num_classes, **kwargs)``).

Only torch is imported here; the module can be imported where minisegnet is not.
"""
import math

import torch
from torch import nn
from torch.nn import functional as TF


def resize(x, size, align_corners=False):
    size = tuple(int(s) for s in size)
    if tuple(x.shape[2:]) == size:
        return x
    return TF.interpolate(x, size=size, mode="bilinear", align_corners=align_corners)


# ------------------------------------------------------------------ shared units
class ConvModule(nn.Module):
    def __init__(self, cin, cout, k, stride=1, padding=0, dilation=1, groups=1, norm=True, act=True):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride, padding, dilation, groups, bias=not norm)
        self.bn = nn.BatchNorm2d(cout) if norm else None
        self.activate = nn.ReLU() if act else None

    def forward(self, x):
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x)
        return self.activate(x) if self.activate is not None else x


class DSConvModule(nn.Module):
    def __init__(self, cin, cout, k, stride=1, padding=0, norm=True, act=True):
        super().__init__()
        self.depthwise_conv = ConvModule(cin, cin, k, stride, padding, groups=cin, norm=norm, act=act)
        self.pointwise_conv = ConvModule(cin, cout, 1, norm=norm, act=act)

    def forward(self, x):
        return self.pointwise_conv(self.depthwise_conv(x))


class Head(nn.Module):
    """Decode-head base: ``conv_seg`` (dropout is 0 in the tests)."""

    def __init__(self, channels, num_classes, in_index):
        super().__init__()
        self.in_index = in_index
        self.conv_seg = nn.Conv2d(channels, num_classes, 1)


class FCNHead(Head):
    def __init__(self, cin, channels, num_classes, num_convs, in_index):
        super().__init__(channels, num_classes, in_index)
        self.convs = nn.Sequential(*[ConvModule(cin if i == 0 else channels, channels, 3, padding=1)
                                     for i in range(num_convs)])

    def forward(self, feats):
        return self.conv_seg(self.convs(feats[self.in_index]))


class PyramidPooling(nn.Module):
    def __init__(self, cin, sizes=(1, 2, 3, 6)):
        super().__init__()
        self.sizes = sizes
        self.convs = nn.ModuleList([ConvModule(cin, cin // 4, 1) for _ in sizes])

    def forward(self, x):
        return torch.cat([x] + [resize(conv(TF.adaptive_avg_pool2d(x, s)), x.shape[2:])
                                for s, conv in zip(self.sizes, self.convs)], dim=1)


class Segmentor(nn.Module):
    """backbone -> decode head -> bilinear resize to the image; auxiliary heads for the loss."""

    def __init__(self, backbone, decode_head, aux_heads=None, aux_weight=0.4):
        super().__init__()
        self.backbone, self.decode_head = backbone, decode_head
        self.auxiliary_head = nn.ModuleList(aux_heads) if aux_heads else None
        self.aux_weight = aux_weight

    def forward(self, img):
        return resize(self.decode_head(self.backbone(img)), img.shape[2:])

    def loss(self, img, target):
        feats = self.backbone(img)
        loss = TF.cross_entropy(resize(self.decode_head(feats), img.shape[2:]), target, ignore_index=255)
        if self.auxiliary_head is not None:
            aux = sum(TF.cross_entropy(resize(h(feats), img.shape[2:]), target, ignore_index=255)
                      for h in self.auxiliary_head)
            loss = loss + self.aux_weight * aux
        return loss


def _c(n, width, multiple):
    return max(multiple, int(round(n * width / multiple)) * multiple)


# ------------------------------------------------------------------ Fast-SCNN
class InvertedResidual(nn.Module):
    def __init__(self, cin, cout, stride, t=6):
        super().__init__()
        hidden = cin * t
        self.res = stride == 1 and cin == cout
        self.conv = nn.Sequential(ConvModule(cin, hidden, 1),
                                  ConvModule(hidden, hidden, 3, stride, 1, groups=hidden),
                                  ConvModule(hidden, cout, 1, act=False))

    def forward(self, x):
        return x + self.conv(x) if self.res else self.conv(x)


class FastSCNNBackbone(nn.Module):
    def __init__(self, width=1.0):
        super().__init__()
        c = lambda n: _c(n, width, 4)  # noqa: E731
        dw1, dw2, hi, lo = c(32), c(48), c(64), c(128)
        blocks = (c(64), c(96), c(128))
        self.learning_to_downsample = nn.Module()
        ltd = self.learning_to_downsample
        ltd.conv = ConvModule(3, dw1, 3, 2, 1)
        ltd.dsconv1 = DSConvModule(dw1, dw2, 3, 2, 1)
        ltd.dsconv2 = DSConvModule(dw2, hi, 3, 2, 1)
        self.global_feature_extractor = nn.Module()
        gfe = self.global_feature_extractor
        chans, strides = (hi,) + blocks, (2, 2, 1)
        for i in range(3):
            layers = [InvertedResidual(chans[i], chans[i + 1], strides[i])]
            layers += [InvertedResidual(chans[i + 1], chans[i + 1], 1) for _ in range(2)]
            setattr(gfe, f"bottleneck{i + 1}", nn.Sequential(*layers))
        gfe.ppm = PyramidPooling(blocks[2])
        gfe.out = ConvModule(2 * blocks[2], lo, 1)
        self.feature_fusion = nn.Module()
        ffm = self.feature_fusion
        ffm.dwconv = ConvModule(lo, lo, 3, padding=1, groups=lo)
        ffm.conv_lower_res = ConvModule(lo, lo, 1, act=False)
        ffm.conv_higher_res = ConvModule(hi, lo, 1, act=False)
        self.out_channels = (hi, lo, lo)

    def forward(self, x):
        ltd, gfe, ffm = self.learning_to_downsample, self.global_feature_extractor, self.feature_fusion
        higher = ltd.dsconv2(ltd.dsconv1(ltd.conv(x)))
        lower = gfe.out(gfe.ppm(gfe.bottleneck3(gfe.bottleneck2(gfe.bottleneck1(higher)))))
        up = ffm.conv_lower_res(ffm.dwconv(resize(lower, higher.shape[2:])))
        return [higher, lower, torch.relu(ffm.conv_higher_res(higher) + up)]


class FastSCNNHead(Head):
    def __init__(self, channels, num_classes):
        super().__init__(channels, num_classes, 2)
        self.convs = nn.Sequential(DSConvModule(channels, channels, 3, padding=1),
                                   DSConvModule(channels, channels, 3, padding=1))

    def forward(self, feats):
        return self.conv_seg(self.convs(feats[2]))


def fast_scnn(num_classes, width=1.0, aux=False):
    backbone = FastSCNNBackbone(width)
    hi, lo, fused = backbone.out_channels
    aux_heads = [FCNHead(lo, fused // 4, num_classes, 1, 1), FCNHead(hi, fused // 4, num_classes, 1, 0)] if aux else None
    return Segmentor(backbone, FastSCNNHead(fused, num_classes), aux_heads, 0.4)


# ------------------------------------------------------------------ BiSeNetV2
class GELayer(nn.Module):
    def __init__(self, cin, cout, stride, t=6):
        super().__init__()
        mid = cin * t
        self.conv1 = ConvModule(cin, cin, 3, padding=1)
        if stride == 1:
            self.dwconv = nn.Sequential(ConvModule(cin, mid, 3, padding=1, groups=cin))
            self.shortcut = None
        else:
            self.dwconv = nn.Sequential(ConvModule(cin, mid, 3, stride, 1, groups=cin, act=False),
                                        ConvModule(mid, mid, 3, padding=1, groups=mid))
            self.shortcut = nn.Sequential(DSConvModule(cin, cout, 3, stride, 1, act=False))
        self.conv2 = nn.Sequential(ConvModule(mid, cout, 1, act=False))

    def forward(self, x):
        short = x if self.shortcut is None else self.shortcut(x)
        return torch.relu(self.conv2(self.dwconv(self.conv1(x))) + short)


class BiSeNetV2Backbone(nn.Module):
    def __init__(self, width=1.0):
        super().__init__()
        c = lambda n: _c(n, width, 2)  # noqa: E731
        detail, sem = (c(64), c(64), c(128)), (c(16), c(32), c(64), c(128))
        self.detail = nn.Module()
        stages, cin = [], 3
        for i, cout in enumerate(detail):
            convs = [ConvModule(cin, cout, 3, 2, 1)] + [ConvModule(cout, cout, 3, padding=1)
                                                        for _ in range(1 if i == 0 else 2)]
            stages.append(nn.Sequential(*convs))
            cin = cout
        self.detail.detail_branch = nn.ModuleList(stages)
        self.semantic = nn.Module()
        s = self.semantic
        s.stage1 = nn.Module()
        s.stage1.conv_first = ConvModule(3, sem[0], 3, 2, 1)
        s.stage1.convs = nn.Sequential(ConvModule(sem[0], sem[0] // 2, 1), ConvModule(sem[0] // 2, sem[0], 3, 2, 1))
        s.stage1.fuse_last = ConvModule(2 * sem[0], sem[0], 3, padding=1)
        for i in (1, 2, 3):
            layers = [GELayer(sem[i - 1], sem[i], 2)] + [GELayer(sem[i], sem[i], 1) for _ in range(3 if i == 3 else 1)]
            setattr(s, f"stage{i + 1}", nn.Sequential(*layers))
        ce = s.stage4_CEBlock = nn.Module()
        ce.gap = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.BatchNorm2d(sem[3]))
        ce.conv_gap = ConvModule(sem[3], sem[3], 1)
        ce.conv_last = ConvModule(sem[3], sem[3], 3, padding=1)
        ch = detail[2]
        b = self.bga = nn.Module()
        b.detail_dwconv = nn.Sequential(ConvModule(ch, ch, 3, padding=1, groups=ch, act=False),
                                        ConvModule(ch, ch, 1, norm=False, act=False))
        b.detail_down = nn.Sequential(ConvModule(ch, ch, 3, 2, 1, act=False), nn.AvgPool2d(3, 2, 1))
        b.semantic_conv = nn.Sequential(ConvModule(ch, ch, 3, padding=1, act=False))
        b.semantic_dwconv = nn.Sequential(ConvModule(ch, ch, 3, padding=1, groups=ch, act=False),
                                          ConvModule(ch, ch, 1, norm=False, act=False))
        b.conv = ConvModule(ch, ch, 3, padding=1)
        self.out_channels = (ch,) + sem

    def forward(self, x):
        x_d = x
        for stage in self.detail.detail_branch:
            x_d = stage(x_d)
        s = self.semantic
        y = s.stage1.conv_first(x)
        y = s.stage1.fuse_last(torch.cat([s.stage1.convs(y), TF.max_pool2d(y, 3, 2, 1)], dim=1))
        outs = [y]
        for stage in (s.stage2, s.stage3, s.stage4):
            y = stage(y)
            outs.append(y)
        ce = s.stage4_CEBlock
        x_s = ce.conv_last(y + ce.conv_gap(ce.gap(y)))
        b = self.bga
        fuse1 = b.detail_dwconv(x_d) * torch.sigmoid(resize(b.semantic_conv(x_s), x_d.shape[2:]))
        fuse2 = resize(b.detail_down(x_d) * torch.sigmoid(b.semantic_dwconv(x_s)), x_d.shape[2:])
        return [b.conv(fuse1 + fuse2)] + outs


def bisenetv2(num_classes, width=1.0, aux=False):
    backbone = BiSeNetV2Backbone(width)
    ch = backbone.out_channels
    head = FCNHead(ch[0], 8 * ch[0], num_classes, 1, 0)
    boosters = [FCNHead(cin, cin * e, num_classes, 2, i + 1) for i, (cin, e) in enumerate(zip(ch[1:], (1, 2, 4, 8)))]
    return Segmentor(backbone, head, boosters if aux else None, 1.0)


# ------------------------------------------------------------------ SegFormer-B0
def to_tokens(x):
    return x.flatten(2).transpose(1, 2)


def to_map(x, hw):
    return x.transpose(1, 2).reshape(x.shape[0], x.shape[2], *hw)


class Attention(nn.Module):
    """Efficient self-attention written the long way: explicit softmax, no fused kernel."""

    def __init__(self, dim, heads, sr):
        super().__init__()
        self.heads, self.sr_ratio = heads, sr
        self.q, self.kv, self.proj = nn.Linear(dim, dim), nn.Linear(dim, 2 * dim), nn.Linear(dim, dim)
        if sr > 1:
            self.sr = nn.Conv2d(dim, dim, sr, sr)
            self.norm = nn.LayerNorm(dim, eps=1e-6)

    def forward(self, x, hw):
        n, length, c = x.shape
        d = c // self.heads
        q = self.q(x).reshape(n, length, self.heads, d).transpose(1, 2)
        src = self.norm(to_tokens(self.sr(to_map(x, hw)))) if self.sr_ratio > 1 else x
        kv = self.kv(src).reshape(n, -1, 2, self.heads, d).permute(2, 0, 3, 1, 4)
        k, v = kv[0], kv[1]
        weights = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(d), dim=-1)
        return self.proj((weights @ v).transpose(1, 2).reshape(n, length, c))


class Block(nn.Module):
    def __init__(self, dim, heads, sr):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads, sr)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.ffn = nn.Module()
        hidden = 4 * dim
        self.ffn.fc1 = nn.Conv2d(dim, hidden, 1)
        self.ffn.dwconv = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden)
        self.ffn.fc2 = nn.Conv2d(hidden, dim, 1)

    def forward(self, x, hw):
        x = x + self.attn(self.norm1(x), hw)
        f = self.ffn
        return x + to_tokens(f.fc2(TF.gelu(f.dwconv(f.fc1(to_map(self.norm2(x), hw))))))


class MiT(nn.Module):
    def __init__(self, dims, heads=(1, 2, 5, 8), sr=(8, 4, 2, 1), depth=2):
        super().__init__()
        self.stages = nn.ModuleList()
        cin = 3
        for i in range(4):
            st = nn.Module()
            k, s = (7, 4) if i == 0 else (3, 2)
            st.patch_embed = nn.Module()
            st.patch_embed.proj = nn.Conv2d(cin, dims[i], k, s, k // 2)
            st.patch_embed.norm = nn.LayerNorm(dims[i], eps=1e-6)
            st.blocks = nn.ModuleList([Block(dims[i], heads[i], sr[i]) for _ in range(depth)])
            st.norm = nn.LayerNorm(dims[i], eps=1e-6)
            self.stages.append(st)
            cin = dims[i]

    def forward(self, x):
        outs = []
        for st in self.stages:
            x = st.patch_embed.proj(x)
            hw = tuple(x.shape[2:])
            t = st.patch_embed.norm(to_tokens(x))
            for blk in st.blocks:
                t = blk(t, hw)
            x = to_map(st.norm(t), hw)
            outs.append(x)
        return outs


class SegFormerHead(Head):
    def __init__(self, dims, channels, num_classes):
        super().__init__(channels, num_classes, 0)
        self.convs = nn.ModuleList([ConvModule(c, channels, 1) for c in dims])
        self.fusion_conv = ConvModule(len(dims) * channels, channels, 1)

    def forward(self, feats):
        size = feats[0].shape[2:]
        return self.conv_seg(self.fusion_conv(torch.cat([resize(conv(x), size) for conv, x in zip(self.convs, feats)],
                                                        dim=1)))


def segformer_b0(num_classes, width=1.0, channels=None):
    dims = tuple(h * max(1, int(round(32 * width))) for h in (1, 2, 5, 8))
    return Segmentor(MiT(dims), SegFormerHead(dims, channels or max(8, int(round(256 * width))), num_classes))


TWINS = {"fast_scnn": fast_scnn, "bisenetv2": bisenetv2, "segformer_b0": segformer_b0}


def build_twin(name, num_classes, **kwargs):
    """The PyTorch twin of ``minisegnet.models.create(name, num_classes, **kwargs)``
    (kwargs: ``width``, ``aux`` for fast_scnn/bisenetv2, ``channels`` for segformer_b0)."""
    return TWINS[name](num_classes, **kwargs)
