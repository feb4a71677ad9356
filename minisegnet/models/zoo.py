"""The model zoo: build a named segmentation network in one call.

    >>> from minisegnet import models
    >>> model = models.create("deeplabv3", num_classes=21)          # resnet_tiny, output stride 8
    >>> sorted(models.list_models())
    ['bisenetv2', 'deeplabv3', 'deeplabv3plus', 'fast_scnn', 'fcn', 'fcn8s', 'pspnet', 'segformer_b0', 'segnet']

The defaults are deliberately tiny (``channels=64`` in the heads, ``resnet_tiny`` with
widths 16-32-64-128) so a model trains in minutes on a CPU; ``backbone='resnet18'`` and
``channels=256`` give the usual sizes.
"""
import os

from .backbones import BACKBONES, create_backbone
from .heads import ASPPHead, DepthwiseSeparableASPPHead, FCNHead, PSPHead
from .segmentor import EncoderDecoder, FCN8s
from .bisenetv2 import bisenetv2
from .fast_scnn import fast_scnn
from .segformer import segformer_b0

_DESCRIPTIONS = {
    "fcn": "FCN: a backbone (dilated, output stride 8 by default) and FCNHead (two 3x3 convs) on c4",
    "fcn8s": "FCN-8s: vgg_tiny with pool3/pool4 skip scores and bilinear-initialised transposed convs",
    "pspnet": "PSPNet: pyramid pooling (bins 1, 2, 3, 6) on c4, a 3x3 bottleneck, the classifier",
    "deeplabv3": "DeepLabV3: ASPP (image pool + rates 1, 12, 24, 36 at OS 8) on a dilated backbone",
    "deeplabv3plus": "DeepLabV3+: depthwise-separable ASPP plus a decoder fusing stride-4 features c1",
    "segnet": "SegNet: a VGG-style encoder whose max-pool indices drive the decoder's unpooling",
    "fast_scnn": "Fast-SCNN: learning to downsample, inverted residuals + pyramid pooling, fusion at stride 8",
    "bisenetv2": "BiSeNetV2: detail and semantic branches, guided aggregation, booster heads (aux)",
    "segformer_b0": "SegFormer-B0: Mix Transformer (efficient self-attention, Mix-FFN) and the all-MLP decoder",
}
# Models that bring their own backbone: create() passes them width, channels and aux only.
_OWN_BACKBONE = {"fast_scnn": fast_scnn, "bisenetv2": bisenetv2, "segformer_b0": segformer_b0}
#: the models that take ``width`` (a channel multiplier) and refuse ``backbone``/``output_stride``
OWN_BACKBONE_MODELS = tuple(_OWN_BACKBONE)


def list_models():
    """``{name: one-line description}`` of every model :func:`create` can build."""
    return dict(sorted(_DESCRIPTIONS.items()))


def aspp_dilations(output_stride):
    """ASPP rates for an output stride: (1, 6, 12, 18) at 16, doubled at 8, halved at 32.

    The rates are in feature pixels, so when the features get twice as dense, doubling
    the rates keeps the branches' fields of view the same in image pixels.
    """
    return {8: (1, 12, 24, 36), 16: (1, 6, 12, 18), 32: (1, 3, 6, 9)}[output_stride]


def create(name, num_classes, backbone=None, output_stride=None, pretrained=None, aux=False, channels=None,
           in_channels=3, dropout_ratio=0.1, align_corners=False, multi_grid=None, dilations=None,
           c1_channels=None, ignore_index=255, width=1.0):
    """Build the segmentation model ``name`` (see :func:`list_models`).

    Args:
        name: 'fcn', 'fcn8s', 'pspnet', 'deeplabv3', 'deeplabv3plus', or one of the models with
            their own backbone, 'fast_scnn', 'bisenetv2', 'segformer_b0' (these take only
            ``width``, ``aux``, ``in_channels``, ``dropout_ratio``, ``align_corners``,
            ``ignore_index`` and, for SegFormer, the decoder's ``channels``).
        num_classes: classes to predict (the logits' channel count).
        backbone: 'resnet_tiny' (default; 'vgg_tiny' for fcn8s), 'resnet18', 'resnet34'
            or 'vgg_tiny'.
        output_stride: stride of the deepest features, 8 (default), 16 or 32 (fcn8s: 32).
        pretrained: optional backbone weights – a torchvision-style ``.pth`` file or state
            dict (read through PyTorch, see :func:`load_torch_weights`) or a minisegnet
            ``.npz`` checkpoint of the backbone's state dict.
        aux: add the auxiliary FCNHead on c3 (its loss counts 0.4 in training).
        channels: width of the decode head (256-512 in the papers; 64 here).
        in_channels: image channels.
        dropout_ratio: Dropout2d before each classifier.
        align_corners: of every bilinear resize.
        multi_grid: ResNet stage-4 Multi-Grid factors, one per block.
        dilations: ASPP rates (default from :func:`aspp_dilations`).
        c1_channels: DeepLabV3+'s reduced low-level channels (default ``channels // 4``,
            like 48 for 256 in the paper).
        ignore_index: label ignored by the losses.
        width: channel multiplier of fast_scnn, bisenetv2 and segformer_b0 (1.0: the paper's).
    """
    if name not in _DESCRIPTIONS:
        raise ValueError(f"unknown model {name!r}; available models: {', '.join(sorted(_DESCRIPTIONS))}")
    if name == "segnet":                                   # its own encoder: no backbone options
        from .segnet import SegNet
        if backbone is not None or pretrained is not None or output_stride not in (None, 8):
            raise ValueError("segnet has its own encoder (output stride 8): backbone, pretrained and "
                             "output_stride do not apply")             # it has no auxiliary head: aux is ignored
        model = SegNet(num_classes, in_channels=in_channels, ignore_index=ignore_index)
        model.backbone.min_input_size = min_input_size(name)
        return model
    if name in _OWN_BACKBONE:
        model = _create_own_backbone(name, num_classes, backbone, output_stride, pretrained, aux, channels,
                                     in_channels, dropout_ratio, align_corners, ignore_index, width)
        model.backbone.min_input_size = min_input_size(name)
        return model
    channels = 64 if channels is None else channels
    if backbone is None:
        backbone = "vgg_tiny" if name == "fcn8s" else "resnet_tiny"
    if backbone not in BACKBONES:
        raise ValueError(f"unknown backbone {backbone!r}; available: {', '.join(sorted(BACKBONES))}")
    if output_stride is None:
        output_stride = 32 if (name == "fcn8s" or backbone == "vgg_tiny") else 8
    if output_stride not in (8, 16, 32):
        raise ValueError(f"output_stride must be 8, 16 or 32, got {output_stride!r}")
    if name == "fcn8s" and output_stride != 32:
        raise ValueError(f"fcn8s needs output_stride=32 (its skips come from strides 8, 16, 32), "
                         f"got {output_stride}")
    net = create_backbone(backbone, in_channels=in_channels, output_stride=output_stride,
                          multi_grid=multi_grid)
    net.min_input_size = min_input_size(name, backbone)
    if pretrained is not None:
        _load_pretrained(net, pretrained)
    c1, _, c3, c4 = net.out_channels
    common = dict(num_classes=num_classes, dropout_ratio=dropout_ratio, align_corners=align_corners,
                  ignore_index=ignore_index)
    aux_head = None
    if aux:
        aux_head = FCNHead(num_convs=1, concat_input=False, in_channels=c3, channels=max(channels // 2, 1),
                           in_index=2, **common)
    if name == "fcn8s":
        return FCN8s(net, num_classes, channels=channels, dropout_ratio=dropout_ratio, auxiliary_head=aux_head,
                     align_corners=align_corners, ignore_index=ignore_index)
    if name == "fcn":
        head = FCNHead(num_convs=2, concat_input=True, in_channels=c4, channels=channels, in_index=3, **common)
    elif name == "pspnet":
        head = PSPHead(pool_sizes=(1, 2, 3, 6), in_channels=c4, channels=channels, in_index=3, **common)
    elif name == "deeplabv3":
        head = ASPPHead(dilations=tuple(dilations or aspp_dilations(output_stride)), in_channels=c4,
                        channels=channels, in_index=3, **common)
    else:
        head = DepthwiseSeparableASPPHead(c1_in_channels=c1, c1_channels=c1_channels or max(channels // 4, 1),
                                          dilations=tuple(dilations or aspp_dilations(output_stride)),
                                          in_channels=c4, channels=channels, in_index=3, **common)
    return EncoderDecoder(net, head, auxiliary_head=aux_head, align_corners=align_corners)


def _create_own_backbone(name, num_classes, backbone, output_stride, pretrained, aux, channels, in_channels,
                         dropout_ratio, align_corners, ignore_index, width):
    for arg, value in (("backbone", backbone), ("output_stride", output_stride), ("pretrained", pretrained)):
        if value is not None:
            raise ValueError(f"{name} has its own backbone at fixed strides; {arg} must be None, got {value!r}")
    if channels is not None and name != "segformer_b0":
        raise ValueError(f"{name}: channels applies only to segformer_b0's decoder (use width), got {channels!r}")
    if isinstance(width, bool) or not isinstance(width, (int, float)) or not width > 0:
        raise ValueError(f"{name}: width must be a positive number, got {width!r}")
    common = dict(in_channels=in_channels, width=width, dropout_ratio=dropout_ratio, align_corners=align_corners,
                  ignore_index=ignore_index)
    if name == "segformer_b0":           # no auxiliary head: ``aux`` is accepted and ignored
        return segformer_b0(num_classes, channels=channels, **common)
    return _OWN_BACKBONE[name](num_classes, aux=aux, **common)


def _load_pretrained(backbone, pretrained):
    """Load backbone weights from a ``.npz`` checkpoint, a torch file or a state dict.

    A whole segmentor's state dict (keys ``backbone.*``) contributes its backbone part.
    """
    if isinstance(pretrained, (str, os.PathLike)) and os.fspath(pretrained).endswith(".npz"):
        from ..checkpoint import load
        pretrained = load(pretrained)
    from .convert import load_torch_weights
    load_torch_weights(backbone, pretrained, strict=False)


# the smallest input side a model (by name) or a backbone accepts: vgg_tiny halves the image
# with five 2x2 max pools (no padding), so a side under 32 pixels shrinks to nothing; the
# ResNets pad every strided conv and pool, so any side works. SegNet's three unpadded 2x2 pools
# need 8 pixels; SegFormer-B0's stage-1 attention reduces its stride-4 token grid by 8x8, so the
# grid must have 8 tokens a side: 29 pixels (the 7x7 stride-4 patch embedding pads by 3).
_MIN_INPUT_SIZE = {"vgg_tiny": 32, "segnet": 8, "segformer_b0": 29}


def min_input_size(name, backbone=None):
    """The smallest image side (pixels) model ``name`` with ``backbone`` accepts.

    ``create(name, ...).min_input_size`` says the same for a built model; the command line
    checks ``--image-size`` against it before any work.
    """
    if name not in _DESCRIPTIONS:
        raise ValueError(f"unknown model {name!r}; available models: {', '.join(sorted(_DESCRIPTIONS))}")
    if name in _OWN_BACKBONE or name == "segnet":
        return _MIN_INPUT_SIZE.get(name, 1)
    if backbone is None:
        backbone = "vgg_tiny" if name == "fcn8s" else "resnet_tiny"
    return _MIN_INPUT_SIZE.get(name, _MIN_INPUT_SIZE.get(backbone, 1))
