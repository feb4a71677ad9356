"""Q1 (syllabus quiz): the forward pass of DeepLabV3's ASPP head.

DeepLabV3 looks at every pixel of the backbone's feature map at several scales at once:

* an **image-pool** branch averages the whole map to 1x1, reduces it with a 1x1
  ConvModule, and stretches it back (bilinear) to the map's h x w - every pixel gets
  the same summary of the whole image;
* the **ASPP** branches (``self.aspp_modules``) are ConvModules with dilation rates
  ``dilations`` (a 1x1 conv for rate 1, 3x3 atrous convs otherwise); each keeps h x w.

All branches give (N, channels, h, w). Concatenated along the channel axis, image-pool
branch first and then the ASPP branches in the order of ``dilations``, they form a
(N, (len(dilations) + 1) * channels, h, w) map, which ``self.bottleneck`` fuses back to
(N, channels, h, w) before ``self.cls_seg`` classifies every pixel.

Complete ``forward`` between the markers, leaving the class's result in ``output``.
Useful: ``resize(t, size=..., mode='bilinear', align_corners=...)``, ``ms.cat(list, dim=...)``,
``x.size()[2:]`` (the spatial size). Check your answer with
``minisegnet grade exercises/q1_aspp_forward.py``.
"""
import minisegnet as ms
from minisegnet import nn
from minisegnet.models.heads import ASPPModule, BaseDecodeHead, ConvModule, resize


class ASPPHead(BaseDecodeHead):
    """Rethinking Atrous Convolution for Semantic Image Segmentation (DeepLabV3).

    Args:
        dilations (tuple[int]): dilation rates of the ASPP branches. Default: (1, 6, 12, 18).
        **kwargs: ``in_channels``, ``channels``, ``num_classes``, ``dropout_ratio``,
            ``align_corners``, ``in_index`` (see ``BaseDecodeHead``).

    Shapes: the feature map x is (N, in_channels, h, w); the output (N, num_classes, h, w).
    """

    def __init__(self, dilations=(1, 6, 12, 18), **kwargs):
        super().__init__(**kwargs)
        assert isinstance(dilations, (list, tuple))
        self.dilations = dilations
        self.image_pool = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            ConvModule(self.in_channels, self.channels, 1))
        self.aspp_modules = ASPPModule(dilations, self.in_channels, self.channels)
        self.bottleneck = ConvModule((len(dilations) + 1) * self.channels, self.channels, 3,
                                     padding=1)

    def cls_seg(self, feat):
        """Classify each pixel: dropout, then the 1x1 conv ``conv_seg``."""
        if self.dropout is not None:
            feat = self.dropout(feat)
        output = self.conv_seg(feat)
        return output

    def forward(self, inputs):
        """Forward function."""
        x = self._transform_inputs(inputs)
        # ---- YOUR CODE BEGINS ----
        raise NotImplementedError("q1_aspp_forward: image-pool and ASPP branches -> cat -> bottleneck")
        # ---- YOUR CODE ENDS ----
        output = self.cls_seg(output)
        return output
