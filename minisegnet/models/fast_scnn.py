"""Fast-SCNN (Poudel, Liwicki, Cipolla 2019): real-time segmentation with two branches
that share their first layers.

    image (N, 3, H, W)
      --learning_to_downsample-->  higher (N, 64, H/8, W/8)        conv + 2 depthwise-separable, stride 8
      --global_feature_extractor-> lower  (N, 128, H/32, W/32)     inverted residuals + pyramid pooling
      --feature_fusion(higher, lower)--> (N, 128, H/8, W/8)        upsample lower, add the two, ReLU
      --classifier (decode head)-->  (N, K, H/8, W/8)              2 depthwise-separable convs + 1x1

The "learning to downsample" layers are computed once and used twice: as the
high-resolution detail branch (skip connection) and as the input of the deep, narrow,
low-resolution branch that gathers context. Almost every convolution is depthwise
separable (MobileNet), which is how the network stays at ~1.1M parameters.

The structure follows MMSegmentation's ``FastSCNN`` backbone and
``DepthwiseSeparableFCNHead``; differences: ReLU instead of ReLU6 in the bottlenecks,
padding 1 in the first convolution (strides stay exact powers of two), and a 3x3
depthwise convolution on the upsampled low-resolution features as in the paper's
feature-fusion figure (MMSegmentation uses a 1x1 convolution there).
"""
from .. import nn
from .heads import BaseDecodeHead, ConvModule, DepthwiseSeparableConvModule, FCNHead, PyramidPooling, resize
from .segmentor import EncoderDecoder


class InvertedResidual(nn.Module):
    """MobileNetV2's bottleneck: expand (1x1), filter (3x3 depthwise), project (1x1, linear).

    (N, C_in, H, W) -> (N, C_out, H/s, W/s). The expansion to ``C_in * expand_ratio``
    channels gives the depthwise filter room; the projection has no ReLU, so the narrow
    output keeps its information. With stride 1 and C_in == C_out the input is added
    back (the residual).
    """

    def __init__(self, in_channels, out_channels, stride=1, expand_ratio=6):
        super().__init__()
        hidden = in_channels * expand_ratio
        self.use_res_connect = stride == 1 and in_channels == out_channels
        layers = [] if expand_ratio == 1 else [ConvModule(in_channels, hidden, 1)]
        layers += [ConvModule(hidden, hidden, 3, stride=stride, padding=1, groups=hidden),
                   ConvModule(hidden, out_channels, 1, act=False)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x):
        out = self.conv(x)
        return x + out if self.use_res_connect else out


class LearningToDownsample(nn.Module):
    """Three stride-2 layers: a 3x3 conv and two depthwise-separable 3x3 convs.
    (N, C, H, W) -> (N, out_channels, H/8, W/8)."""

    def __init__(self, in_channels, dw_channels, out_channels):
        super().__init__()
        self.conv = ConvModule(in_channels, dw_channels[0], 3, stride=2, padding=1)
        self.dsconv1 = DepthwiseSeparableConvModule(dw_channels[0], dw_channels[1], 3, stride=2, padding=1)
        self.dsconv2 = DepthwiseSeparableConvModule(dw_channels[1], out_channels, 3, stride=2, padding=1)

    def forward(self, x):
        return self.dsconv2(self.dsconv1(self.conv(x)))


class GlobalFeatureExtractor(nn.Module):
    """Three groups of inverted residuals (strides 2, 2, 1), then pyramid pooling.

    (N, C_in, h, w) -> bottlenecks -> (N, C, h/4, w/4) -> ppm (input + 4 pooled branches,
    2C channels) -> ``out`` 1x1 ConvModule -> (N, out_channels, h/4, w/4).
    """

    def __init__(self, in_channels, block_channels=(64, 96, 128), out_channels=128, expand_ratio=6,
                 num_blocks=(3, 3, 3), strides=(2, 2, 1), align_corners=False):
        super().__init__()
        chans = (in_channels,) + tuple(block_channels)
        for i in range(3):
            blocks = [InvertedResidual(chans[i], chans[i + 1], strides[i], expand_ratio)]
            blocks += [InvertedResidual(chans[i + 1], chans[i + 1], 1, expand_ratio)
                       for _ in range(num_blocks[i] - 1)]
            setattr(self, f"bottleneck{i + 1}", nn.Sequential(*blocks))
        self.ppm = PyramidPooling(block_channels[2], sizes=(1, 2, 3, 6), align_corners=align_corners)
        self.out = ConvModule(self.ppm.out_channels, out_channels, 1)

    def forward(self, x):
        x = self.bottleneck3(self.bottleneck2(self.bottleneck1(x)))
        return self.out(self.ppm(x))


class FeatureFusionModule(nn.Module):
    """Add the two branches at the higher resolution.

    lower (N, C_l, h, w) --upsample to (H, W)--> depthwise 3x3 --> 1x1 (no ReLU) --+
    higher (N, C_h, H, W) ------------------------------------> 1x1 (no ReLU) --+--> ReLU
    Output (N, out_channels, H, W).
    """

    def __init__(self, higher_in_channels, lower_in_channels, out_channels, align_corners=False):
        super().__init__()
        self.align_corners = align_corners
        self.dwconv = ConvModule(lower_in_channels, lower_in_channels, 3, padding=1, groups=lower_in_channels)
        self.conv_lower_res = ConvModule(lower_in_channels, out_channels, 1, act=False)
        self.conv_higher_res = ConvModule(higher_in_channels, out_channels, 1, act=False)
        self.relu = nn.ReLU()

    def forward(self, higher, lower):
        lower = resize(lower, higher.shape[2:], align_corners=self.align_corners)
        lower = self.conv_lower_res(self.dwconv(lower))
        return self.relu(self.conv_higher_res(higher) + lower)


class FastSCNN(nn.Module):
    """The Fast-SCNN backbone: returns ``[higher, lower, fused]`` feature maps
    (strides 8, 32, 8); the classifier decodes ``fused``, auxiliary heads the other two.

    ``width`` scales every channel count (rounded to a multiple of 4, the pyramid
    pooling's need): 1.0 is the paper, 0.25-0.5 suit 64-128 px images.
    """

    def __init__(self, in_channels=3, width=1.0, align_corners=False):
        super().__init__()
        if not width > 0:
            raise ValueError(f"FastSCNN: width must be positive, got {width!r}")

        def c(n):
            return max(4, int(round(n * width / 4)) * 4)

        self.in_channels = in_channels
        dw, higher, blocks, lower, fused = (c(32), c(48)), c(64), (c(64), c(96), c(128)), c(128), c(128)
        self.learning_to_downsample = LearningToDownsample(in_channels, dw, higher)
        self.global_feature_extractor = GlobalFeatureExtractor(higher, blocks, lower, align_corners=align_corners)
        self.feature_fusion = FeatureFusionModule(higher, lower, fused, align_corners=align_corners)
        self.out_channels = (higher, lower, fused)
        self.strides = (8, 32, 8)

    def forward(self, x):
        higher = self.learning_to_downsample(x)
        lower = self.global_feature_extractor(higher)
        return [higher, lower, self.feature_fusion(higher, lower)]


class FastSCNNHead(BaseDecodeHead):
    """The classifier: two depthwise-separable 3x3 ConvModules, then ``cls_seg``.
    (N, in_channels, h, w) -> (N, num_classes, h, w)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.convs = nn.Sequential(DepthwiseSeparableConvModule(self.in_channels, self.channels, 3, padding=1),
                                   DepthwiseSeparableConvModule(self.channels, self.channels, 3, padding=1))

    def forward(self, inputs):
        return self.cls_seg(self.convs(self._transform_inputs(inputs)))


def fast_scnn(num_classes, in_channels=3, width=1.0, aux=False, dropout_ratio=0.1, align_corners=False,
              ignore_index=255):
    """Fast-SCNN as an :class:`EncoderDecoder`; ``aux`` adds MMSegmentation's two auxiliary
    FCN heads (on ``lower`` and ``higher``, weight 0.4 each)."""
    backbone = FastSCNN(in_channels, width=width, align_corners=align_corners)
    higher, lower, fused = backbone.out_channels
    common = dict(num_classes=num_classes, dropout_ratio=dropout_ratio, align_corners=align_corners,
                  ignore_index=ignore_index)
    head = FastSCNNHead(in_channels=fused, channels=fused, in_index=2, **common)
    aux_heads = None
    if aux:
        small = max(fused // 4, 1)
        aux_heads = nn.ModuleList([
            FCNHead(num_convs=1, concat_input=False, in_channels=lower, channels=small, in_index=1, **common),
            FCNHead(num_convs=1, concat_input=False, in_channels=higher, channels=small, in_index=0, **common)])
    return EncoderDecoder(backbone, head, auxiliary_head=aux_heads, align_corners=align_corners)


__all__ = ["FastSCNN", "FastSCNNHead", "FeatureFusionModule", "GlobalFeatureExtractor", "InvertedResidual",
           "LearningToDownsample", "fast_scnn"]
