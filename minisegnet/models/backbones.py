"""Backbones (encoders): image -> a list of feature maps at growing strides.

A backbone returns four maps ``[c1, c2, c3, c4]``. In a plain classification network
their strides (image pixels per feature pixel) are 4, 8, 16 and 32: each stage halves
the resolution and deepens the features. Segmentation wants both depth and resolution,
so the DeepLab way is to *remove* the last strides and *dilate* the convolutions after
them instead, which keeps each 3x3 kernel's field of view (in image pixels) without
shrinking the map:

================  ==================  ===================
output_stride     strides of stages   dilations of stages
================  ==================  ===================
32 (classifier)   1, 2, 2, 2          1, 1, 1, 1
16                1, 2, 2, 1          1, 1, 1, 2
8                 1, 2, 1, 1          1, 1, 2, 4
================  ==================  ===================

(after the stem's stride 4). Dilation adds no weights and no multiply-adds per output
pixel, but output stride 8 has 16 times as many pixels at stage 4 as stride 32 – that
is where the extra cost of dense features comes from (see ``models.summary``).

* :class:`ResNet` with :class:`BasicBlock` – ``resnet18``, ``resnet34`` and the small
  ``resnet_tiny`` that trains in minutes on a CPU. Parameter names are torchvision's
  (``conv1``, ``bn1``, ``layer1.0.conv1``, ``layer1.0.downsample.0``, ...), so converted
  torchvision weights load by name (``models.load_torch_weights``).
* :class:`VGG` – a small VGG (``vgg_tiny``) for the classic FCN / FCN-8s; names follow
  torchvision's ``vgg*_bn`` (``features.0.weight``, ...).
"""
import numbers

from .. import nn
from ..tensor import Tensor

# dilations of the four stages for each output stride; strides follow from them
_STAGE_DILATIONS = {32: (1, 1, 1, 1), 16: (1, 1, 1, 2), 8: (1, 1, 2, 4)}


def _check_image(name, x, in_channels):
    if not isinstance(x, Tensor):
        raise TypeError(f"{name}: expected a Tensor image batch, got {type(x).__name__}")
    if x.ndim != 4 or x.shape[1] != in_channels:
        raise ValueError(f"{name}: expected images of shape (N, {in_channels}, H, W), got {x.shape}")


class BasicBlock(nn.Module):
    """The ResNet-18/34 residual block: two 3x3 convolutions plus a shortcut.

    ``out = relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))``. The first conv carries
    the block's ``stride``; when the stride or the channel count changes, the shortcut is
    ``downsample`` (1x1 conv with that stride + BN), otherwise the identity. Both 3x3 convs
    use ``dilation`` with ``padding=dilation``, so the map keeps its size.
    Shapes: (N, inplanes, H, W) -> (N, planes, ceil(H / stride), ceil(W / stride)).
    """

    expansion = 1

    def __init__(self, inplanes, planes, stride=1, dilation=1, downsample=None):
        super().__init__()
        self.stride, self.dilation = stride, dilation
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=dilation, dilation=dilation,
                               bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = nn.norm_act(self.bn1, self.relu, self.conv1(x))      # relu(bn1(...)), fused
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    """A ResNet encoder returning its four stage outputs ``[c1, c2, c3, c4]``.

    Stem: 7x7 conv stride 2 (``conv1``, ``bn1``, ReLU) and 3x3 max-pool stride 2, so c1 has
    stride 4. Stage i (``layer1`` .. ``layer4``) has ``layers[i]`` BasicBlocks with
    ``base_width * 2**i`` channels; stages 2-4 halve the resolution in their first block
    unless ``output_stride`` turns that stride into dilation (table in the module doc).

    Args:
        layers: blocks per stage, e.g. (2, 2, 2, 2) for ResNet-18. ``depth`` (18 or 34)
            may be given instead.
        base_width: channels of the stem and stage 1 (64 in ResNet-18/34).
        in_channels: image channels.
        output_stride: 32, 16 or 8 – stride of c4 with respect to the image.
        multi_grid: optional per-block factors for stage 4 (DeepLabV3's "Multi-Grid"):
            block j of stage 4 uses dilation ``stage_dilation * multi_grid[j]``, e.g.
            (1, 2, 4) at output stride 16 gives rates (2, 4, 8). Needs one factor per block.

    Attributes: ``out_channels`` (channels of c1..c4), ``strides`` (their strides after
    dilation), ``dilations`` (the per-stage dilation).
    """

    DEPTHS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3)}

    def __init__(self, layers=None, base_width=64, in_channels=3, output_stride=32, multi_grid=None,
                 depth=None):
        super().__init__()
        if depth is not None:
            if depth not in self.DEPTHS:
                raise ValueError(f"ResNet: depth must be one of {sorted(self.DEPTHS)} (BasicBlock), got {depth!r}")
            layers = self.DEPTHS[depth]
        layers = (2, 2, 2, 2) if layers is None else tuple(layers)
        if len(layers) != 4 or any(not isinstance(n, numbers.Integral) or n < 1 for n in layers):
            raise ValueError(f"ResNet: layers must be 4 positive block counts, got {layers!r}")
        if output_stride not in _STAGE_DILATIONS:
            raise ValueError(f"ResNet: output_stride must be 32, 16 or 8, got {output_stride!r}")
        if multi_grid is not None and len(multi_grid) != layers[3]:
            raise ValueError(f"ResNet: multi_grid needs one factor per block of stage 4 "
                             f"({layers[3]} blocks), got {tuple(multi_grid)!r}")
        self.layers, self.in_channels, self.output_stride = layers, in_channels, output_stride
        self.multi_grid = None if multi_grid is None else tuple(multi_grid)
        self.dilations = _STAGE_DILATIONS[output_stride]
        stage_strides = [1] + [1 if d > 1 else 2 for d in self.dilations[1:]]

        self.conv1 = nn.Conv2d(in_channels, base_width, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(base_width)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.inplanes = base_width
        widths = [base_width * 2 ** i for i in range(4)]
        for i in range(4):
            grid = self.multi_grid if (i == 3 and self.multi_grid is not None) else (1,) * layers[i]
            stage = self._make_layer(widths[i], layers[i], stage_strides[i], self.dilations[i], grid)
            setattr(self, f"layer{i + 1}", stage)
        self.out_channels = tuple(w * BasicBlock.expansion for w in widths)
        self.strides = self._strides(stage_strides)
        self._init_weights()

    @staticmethod
    def _strides(stage_strides):
        strides, s = [], 4
        for st in stage_strides:
            s *= st
            strides.append(s)
        return tuple(strides)

    def _make_layer(self, planes, blocks, stride, dilation, grid):
        downsample = None
        if stride != 1 or self.inplanes != planes * BasicBlock.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * BasicBlock.expansion, 1, stride=stride, bias=False),
                nn.BatchNorm2d(planes * BasicBlock.expansion))
        stage = [BasicBlock(self.inplanes, planes, stride, dilation * grid[0], downsample)]
        self.inplanes = planes * BasicBlock.expansion
        stage += [BasicBlock(self.inplanes, planes, 1, dilation * grid[j]) for j in range(1, blocks)]
        return nn.Sequential(*stage)

    def _init_weights(self):
        """torchvision's initialisation: He-normal (fan_out) convs, BN weight 1 and bias 0."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        """(N, in_channels, H, W) -> [c1, c2, c3, c4], ci of shape (N, out_channels[i], H/si, W/si)."""
        _check_image("ResNet", x, self.in_channels)
        x = self.maxpool(nn.norm_act(self.bn1, self.relu, self.conv1(x)))
        outs = []
        for i in range(4):
            x = getattr(self, f"layer{i + 1}")(x)
            outs.append(x)
        return outs

    def extra_repr(self):
        return (f"layers={self.layers}, output_stride={self.output_stride}, dilations={self.dilations}"
                + (f", multi_grid={self.multi_grid}" if self.multi_grid else ""))


class VGG(nn.Module):
    """A VGG-style encoder: blocks of 3x3 conv + BN + ReLU separated by 2x2 max-pools.

    ``cfg`` lists the layers as torchvision does: an int is a conv with that many output
    channels, ``'M'`` a max-pool halving the resolution. With five pools the outputs
    after pool2..pool5 have strides 4, 8, 16, 32 and are returned as ``[c1, c2, c3, c4]``;
    FCN-8s reads pool3, pool4 and pool5 (the last three). Names follow torchvision's
    ``vgg*_bn``: ``features.0.weight`` (conv), ``features.1.running_mean`` (BN), ...
    Only output stride 32 exists (VGG has no dilated variant here).
    """

    def __init__(self, cfg=(16, "M", 32, "M", 64, 64, "M", 128, 128, "M", 128, 128, "M"), in_channels=3,
                 batch_norm=True):
        super().__init__()
        if list(cfg).count("M") != 5:
            raise ValueError(f"VGG: cfg needs exactly 5 'M' (pooling) entries to give strides 4..32, got {cfg!r}")
        self.cfg, self.in_channels, self.output_stride = tuple(cfg), in_channels, 32
        layers, c, self._pool_indices, out_channels = [], in_channels, [], []
        for v in cfg:
            if v == "M":
                layers.append(nn.MaxPool2d(2, stride=2))
                self._pool_indices.append(len(layers) - 1)
                out_channels.append(c)
            else:
                layers.append(nn.Conv2d(c, v, 3, padding=1, bias=not batch_norm))
                if batch_norm:
                    layers.append(nn.BatchNorm2d(v))
                layers.append(nn.ReLU())
                c = v
        self.features = nn.Sequential(*layers)
        self.out_channels = tuple(out_channels[1:])
        self.strides = (4, 8, 16, 32)
        self.dilations = (1, 1, 1, 1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x):
        """(N, in_channels, H, W) -> [pool2, pool3, pool4, pool5] (strides 4, 8, 16, 32)."""
        _check_image("VGG", x, self.in_channels)
        outs = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self._pool_indices[1:]:
                outs.append(x)
        return outs


def resnet_tiny(in_channels=3, output_stride=32, multi_grid=None):
    """A small ResNet (one BasicBlock per stage, widths 16-32-64-128, ~0.7 M parameters)
    that trains in minutes on a CPU."""
    return ResNet((1, 1, 1, 1), base_width=16, in_channels=in_channels, output_stride=output_stride,
                  multi_grid=multi_grid)


def resnet18(in_channels=3, output_stride=32, multi_grid=None):
    """ResNet-18 (11 M parameters in the encoder); loads torchvision's weights by name."""
    return ResNet(depth=18, in_channels=in_channels, output_stride=output_stride, multi_grid=multi_grid)


def resnet34(in_channels=3, output_stride=32, multi_grid=None):
    """ResNet-34 (21 M parameters in the encoder); loads torchvision's weights by name."""
    return ResNet(depth=34, in_channels=in_channels, output_stride=output_stride, multi_grid=multi_grid)


def vgg_tiny(in_channels=3, output_stride=32):
    """A small VGG with BatchNorm (8 convs, widths 16-32-64-128-128) for FCN / FCN-8s."""
    if output_stride != 32:
        raise ValueError(f"vgg_tiny: only output_stride=32 is available, got {output_stride!r}")
    return VGG(in_channels=in_channels)


BACKBONES = {"resnet_tiny": resnet_tiny, "resnet18": resnet18, "resnet34": resnet34, "vgg_tiny": vgg_tiny}


def create_backbone(name, in_channels=3, output_stride=32, multi_grid=None):
    """Build a backbone by name (one of ``BACKBONES``)."""
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; available: {', '.join(sorted(BACKBONES))}")
    if name == "vgg_tiny":
        if multi_grid is not None:
            raise ValueError("vgg_tiny: multi_grid applies to ResNet backbones only")
        return vgg_tiny(in_channels, output_stride)
    return BACKBONES[name](in_channels=in_channels, output_stride=output_stride, multi_grid=multi_grid)
