"""``minisegnet.models``: backbones, decode heads, segmentors and a zoo of named models.

* :mod:`.heads`     – ConvModule, FCNHead, PyramidPooling/PSPHead, ASPPModule/ASPPHead,
  DepthwiseSeparableASPPHead (DeepLabV3+), FCN8sHead.
* :mod:`.backbones` – ResNet (resnet_tiny, resnet18, resnet34) with output stride 32/16/8
  by dilation, and vgg_tiny.
* :mod:`.segmentor` – EncoderDecoder (backbone + head + resize to the image, losses) and FCN8s.
* :mod:`.fast_scnn`, :mod:`.bisenetv2`, :mod:`.segformer` – real-time and transformer models
  with their own backbones (Fast-SCNN, BiSeNetV2, SegFormer-B0).
* :mod:`.zoo`       – ``create(name, num_classes, ...)`` and ``list_models()``.
* :mod:`.summary`   – a table of layers, shapes, parameters and multiply-adds.
* :mod:`.convert`   – ``load_torch_weights``: PyTorch state dicts into minisegnet models.
"""
from .backbones import BACKBONES, VGG, BasicBlock, ResNet, create_backbone, resnet18, resnet34, resnet_tiny, vgg_tiny
from .convert import load_torch_weights
from .heads import (ASPPHead, ASPPModule, BaseDecodeHead, ConvModule, DepthwiseSeparableASPPHead,
                    DepthwiseSeparableASPPModule, DepthwiseSeparableConvModule, FCN8sHead, FCNHead, PSPHead,
                    PyramidPooling, resize)
from .segmentor import FCN8s, EncoderDecoder
from .summary import print_summary, profile, summary
from .fast_scnn import FastSCNN, fast_scnn
from .bisenetv2 import BiSeNetV2, bisenetv2
from .segformer import EfficientSelfAttention, MixVisionTransformer, SegFormerHead, segformer_b0
from .zoo import aspp_dilations, create, list_models
