"""Decode heads: the part of a segmentation network that turns backbone features into
per-pixel class scores.

Every head here is built from one unit, :class:`ConvModule` (conv -> BatchNorm -> ReLU),
and ends the same way, in :meth:`BaseDecodeHead.cls_seg`: dropout, then a 1x1 convolution
(``conv_seg``) from ``channels`` feature maps to ``num_classes`` score maps. What differs
is how a head gathers context before that classifier:

* :class:`FCNHead` – a few plain convolutions on the deepest features (FCN).
* :class:`PSPHead` – :class:`PyramidPooling`: average the feature map into 1x1, 2x2, 3x3
  and 6x6 bins, reduce each, upsample back and concatenate (PSPNet).
* :class:`ASPPHead` – :class:`ASPPModule`: parallel 3x3 convolutions with dilations
  (1, 6, 12, 18) plus a global image-pool branch (DeepLabV3).
* :class:`DepthwiseSeparableASPPHead` – ASPP with depthwise-separable branches plus a
  decoder that fuses the result with stride-4 features (DeepLabV3+).
* :class:`FCN8sHead` – the original FCN-8s: score maps from three depths merged by
  learnable (transposed-convolution) upsampling.

A head's input is the backbone's list of feature maps ``[c1, c2, c3, c4]`` (strides
4, 8, 16, 32 before dilation); ``in_index`` picks the one it decodes. Its output is the
score map at that feature's resolution, shape (N, num_classes, h, w); the segmentor
resizes it to the image. Attribute names (``conv_seg``, ``image_pool``,
``aspp_modules``, ``bottleneck``, ``c1_bottleneck``, ``sep_bottleneck``) follow
MMSegmentation, so its code and configs read the same.
"""
import numbers

from .. import functional as F
from .. import nn
from ..tensor import Tensor


def resize(x, size, mode="bilinear", align_corners=False):
    """Resize a (N, C, H, W) tensor to spatial ``size = (H_out, W_out)``.

    A thin wrapper over :func:`minisegnet.functional.interpolate` that every head uses to
    bring maps to a common resolution. ``align_corners`` only applies to ``'bilinear'``
    (it must be None for ``'nearest'``, as in PyTorch). Resizing to the size a map
    already has is the identity, so it is skipped.
    """
    size = tuple(int(s) for s in size)
    if x.ndim != 4 or len(size) != 2:
        raise ValueError(f"resize: expected x of shape (N, C, H, W) and size (H_out, W_out), "
                         f"got x {x.shape} and size {size}")
    if x.shape[2:] == size:
        return x
    if mode == "nearest":
        align_corners = None
    return F.interpolate(x, size=size, mode=mode, align_corners=align_corners)


class ConvModule(nn.Module):
    """Conv2d -> BatchNorm2d -> ReLU, the unit every head is made of.

    Input (N, in_channels, H, W), output (N, out_channels, H_out, W_out) with the usual
    convolution arithmetic ``H_out = floor((H + 2p - d(k - 1) - 1) / s) + 1``.
    The convolution has no bias when a BatchNorm follows it (BN's shift ``beta`` would
    cancel it anyway). ``norm=False`` drops the BatchNorm, ``act=False`` the ReLU.

    Attributes: ``conv``, ``bn`` (when ``norm``), ``activate`` (when ``act``) –
    MMCV's names, so state-dict keys read ``...conv.weight``, ``...bn.running_mean``.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, norm=True, act=True):
        super().__init__()
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels)):
            if not isinstance(value, numbers.Integral) or value < 1:
                raise ValueError(f"ConvModule: {name} must be a positive integer, got {value!r}")
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.with_norm, self.with_activation = bool(norm), bool(act)
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                              dilation=dilation, groups=groups, bias=not norm)
        if norm:
            self.bn = nn.BatchNorm2d(out_channels)
        if act:
            self.activate = nn.ReLU()
        if act:       # He initialisation for a conv feeding a ReLU (MMCV's default)
            nn.init.kaiming_normal_(self.conv.weight, mode="fan_out", nonlinearity="relu")
            if self.conv.bias is not None:
                nn.init.zeros_(self.conv.bias)

    def forward(self, x):
        x = self.conv(x)
        if self.with_norm and self.with_activation:
            return nn.norm_act(self.bn, self.activate, x)      # fused when it is BN -> ReLU
        if self.with_norm:
            x = self.bn(x)
        if self.with_activation:
            x = self.activate(x)
        return x


class DepthwiseSeparableConvModule(nn.Module):
    """A k x k convolution factored into depthwise + pointwise (MobileNet, Xception).

    ``depthwise_conv``: ConvModule(C_in, C_in, k, groups=C_in) filters every channel on
    its own; ``pointwise_conv``: ConvModule(C_in, C_out, 1) mixes channels. Cost per output
    pixel: ``C_in*k*k + C_in*C_out`` multiply-adds instead of ``C_in*C_out*k*k``.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 norm=True, act=True):
        super().__init__()
        self.depthwise_conv = ConvModule(in_channels, in_channels, kernel_size, stride=stride,
                                         padding=padding, dilation=dilation, groups=in_channels,
                                         norm=norm, act=act)
        self.pointwise_conv = ConvModule(in_channels, out_channels, 1, norm=norm, act=act)

    def forward(self, x):
        return self.pointwise_conv(self.depthwise_conv(x))


def _check_batch_for_pooled_bn(head, x, bins, branch):
    """BatchNorm over a branch that pools to ``bins`` x ``bins`` sees N*bins^2 values per
    channel; with one value (batch size 1, global pooling) training statistics are undefined."""
    if head.training and x.shape[0] * bins * bins == 1:
        raise ValueError(
            f"{type(head).__name__}: the {branch} averages the feature map to a single 1x1 value, "
            f"so in training mode with batch size 1 its BatchNorm would normalise one value per "
            f"channel (variance 0, output meaningless). Use a batch size of at least 2 for training, "
            f"or call model.eval() for inference on a single image (got input of shape {x.shape}).")


class BaseDecodeHead(nn.Module):
    """What every decode head shares: picking its input level and classifying pixels.

    Args:
        in_channels: channels of the feature map the head decodes.
        channels: channels of the head's last feature map, the classifier's input.
        num_classes: number of classes (score maps) to output.
        dropout_ratio: probability of ``nn.Dropout2d`` before the classifier (drops whole
            channels); 0 removes the layer (``self.dropout is None``).
        align_corners: passed to every bilinear resize inside the head.
        in_index: which backbone output to decode (-1: the deepest, ``c4``).
        ignore_index: label value that :meth:`loss` ignores (255 marks "void" pixels).

    Subclasses build their layers and define ``forward(inputs)`` ending in ``cls_seg``.
    """

    def __init__(self, in_channels, channels, num_classes, dropout_ratio=0.1, align_corners=False,
                 in_index=-1, ignore_index=255):
        super().__init__()
        for name, value in (("in_channels", in_channels), ("channels", channels),
                            ("num_classes", num_classes)):
            if not isinstance(value, numbers.Integral) or value < 1:
                raise ValueError(f"{type(self).__name__}: {name} must be a positive integer, got {value!r}")
        if not 0 <= dropout_ratio < 1:
            raise ValueError(f"{type(self).__name__}: dropout_ratio must be in [0, 1), got {dropout_ratio}")
        if not isinstance(in_index, numbers.Integral):
            raise TypeError(f"{type(self).__name__}: in_index must be an int, got {in_index!r}")
        self.in_channels, self.channels, self.num_classes = int(in_channels), int(channels), int(num_classes)
        self.dropout_ratio, self.align_corners = dropout_ratio, align_corners
        self.in_index, self.ignore_index = int(in_index), ignore_index
        self.conv_seg = nn.Conv2d(channels, num_classes, 1)
        nn.init.normal_(self.conv_seg.weight, 0.0, 0.01)      # start with near-uniform class scores
        nn.init.zeros_(self.conv_seg.bias)
        self.dropout = nn.Dropout2d(dropout_ratio) if dropout_ratio > 0 else None

    def _transform_inputs(self, inputs):
        """The feature map this head decodes: ``inputs[in_index]`` from the backbone's list
        (a single tensor passes through), checked to be (N, in_channels, H, W)."""
        if isinstance(inputs, (list, tuple)):
            if not -len(inputs) <= self.in_index < len(inputs):
                raise ValueError(f"{type(self).__name__}: in_index={self.in_index} but the backbone "
                                 f"gave {len(inputs)} feature maps")
            x = inputs[self.in_index]
        elif isinstance(inputs, Tensor):
            x = inputs
        else:
            raise TypeError(f"{type(self).__name__}: expected a Tensor or a list of Tensors, "
                            f"got {type(inputs).__name__}")
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"{type(self).__name__}: expected features of shape (N, {self.in_channels}, H, W), "
                             f"got {x.shape}")
        return x

    def cls_seg(self, feat):
        """Classify each pixel: dropout, then the 1x1 conv ``conv_seg``:
        (N, channels, h, w) -> (N, num_classes, h, w)."""
        if self.dropout is not None:
            feat = self.dropout(feat)
        return self.conv_seg(feat)

    def loss(self, logits, target):
        """Pixel-wise cross-entropy of ``logits`` (N, K, h, w) against labels ``target`` (N, H, W).

        Logits are first resized (bilinear) to the label map's size, so the loss is taken at
        full resolution; pixels labelled ``ignore_index`` do not count.
        """
        if target.ndim != 3 or target.shape[0] != logits.shape[0]:
            raise ValueError(f"{type(self).__name__}.loss: expected target of shape (N, H, W) with "
                             f"N={logits.shape[0]}, got {target.shape}")
        logits = resize(logits, target.shape[1:], align_corners=self.align_corners)
        return F.cross_entropy(logits, target, ignore_index=self.ignore_index)

    def extra_repr(self):
        return (f"in_channels={self.in_channels}, channels={self.channels}, num_classes={self.num_classes}, "
                f"in_index={self.in_index}")


class FCNHead(BaseDecodeHead):
    """FCN's head: ``num_convs`` ConvModules on the deepest features, then the classifier.

    With ``concat_input`` the head also concatenates its input with the convs' output and
    fuses the two with one more ConvModule (``conv_cat``), a short-cut that helps deep
    features through. ``dilation`` dilates the convs (padding keeps the size).
    Shapes: (N, in_channels, h, w) -> (N, num_classes, h, w).
    """

    def __init__(self, num_convs=2, kernel_size=3, concat_input=True, dilation=1, **kwargs):
        super().__init__(**kwargs)
        if num_convs < 0 or (num_convs == 0 and self.in_channels != self.channels):
            raise ValueError(f"FCNHead: num_convs must be >= 1 (or 0 when in_channels == channels), "
                             f"got num_convs={num_convs}, in_channels={self.in_channels}, "
                             f"channels={self.channels}")
        self.num_convs, self.concat_input, self.kernel_size = num_convs, concat_input, kernel_size
        padding = (kernel_size // 2) * dilation
        convs = [ConvModule(self.in_channels if i == 0 else self.channels, self.channels, kernel_size,
                            padding=padding, dilation=dilation) for i in range(num_convs)]
        self.convs = nn.Sequential(*convs) if convs else nn.Identity()
        if concat_input:
            self.conv_cat = ConvModule(self.in_channels + self.channels, self.channels, kernel_size,
                                       padding=kernel_size // 2)

    def forward(self, inputs):
        x = self._transform_inputs(inputs)
        output = self.convs(x)
        if self.concat_input:
            output = self.conv_cat(F.cat([x, output], dim=1))
        return self.cls_seg(output)


class PyramidPooling(nn.Module):
    """PSPNet's pyramid pooling module: context at several scales, concatenated.

    For every bin size s in ``sizes`` (default 1, 2, 3, 6): average-pool the map into an
    s x s grid (``nn.AdaptiveAvgPool2d(s)``), reduce it with a 1x1 ConvModule to
    ``in_channels // 4`` channels, and upsample it (bilinear) back to the input's H x W.
    The output is the input followed by the pooled branches along channels:
    (N, C, H, W) -> (N, C + len(sizes) * (C // 4), H, W) – with four sizes, 2C channels.
    The 1x1 bin sees the whole image (global context); the 6x6 bins see regions.
    """

    def __init__(self, in_channels, sizes=(1, 2, 3, 6), align_corners=False):
        super().__init__()
        if in_channels < 4:
            raise ValueError(f"PyramidPooling: in_channels must be >= 4 (branches get in_channels // 4), "
                             f"got {in_channels}")
        if not sizes or any(not isinstance(s, numbers.Integral) or s < 1 for s in sizes):
            raise ValueError(f"PyramidPooling: sizes must be positive integers, got {sizes!r}")
        self.in_channels, self.sizes, self.align_corners = in_channels, tuple(sizes), align_corners
        self.out_channels = in_channels + len(sizes) * (in_channels // 4)
        self.avgpools = nn.ModuleList([nn.AdaptiveAvgPool2d(s) for s in sizes])
        self.convs = nn.ModuleList([ConvModule(in_channels, in_channels // 4, 1) for _ in sizes])

    def forward(self, x):
        for s in self.sizes:
            _check_batch_for_pooled_bn(self, x, s, f"{s}x{s} pyramid-pooling branch")
        size = x.shape[2:]
        feats = [x]
        for avgpool, conv in zip(self.avgpools, self.convs):
            feats.append(resize(conv(avgpool(x)), size, align_corners=self.align_corners))
        return F.cat(feats, dim=1)


class PSPHead(BaseDecodeHead):
    """PSPNet's head: pyramid pooling, a 3x3 bottleneck ConvModule, the classifier.

    (N, in_channels, h, w) -> ``psp_modules`` -> (N, ~2*in_channels, h, w) -> ``bottleneck``
    -> (N, channels, h, w) -> ``cls_seg`` -> (N, num_classes, h, w).
    """

    def __init__(self, pool_sizes=(1, 2, 3, 6), **kwargs):
        super().__init__(**kwargs)
        self.psp_modules = PyramidPooling(self.in_channels, pool_sizes, align_corners=self.align_corners)
        self.bottleneck = ConvModule(self.psp_modules.out_channels, self.channels, 3, padding=1)

    def forward(self, inputs):
        x = self._transform_inputs(inputs)
        return self.cls_seg(self.bottleneck(self.psp_modules(x)))


class ASPPModule(nn.ModuleList):
    """Atrous Spatial Pyramid Pooling branches: one ConvModule per dilation rate.

    Rate 1 is a 1x1 convolution; rate r > 1 a 3x3 convolution with ``dilation=r`` and
    ``padding=r``, which keeps H x W and sees a (2r + 1) x (2r + 1) window with only 9
    weights per channel pair. ``forward`` returns the list of branch outputs, each
    (N, channels, H, W), for the head to concatenate.
    """

    def __init__(self, dilations, in_channels, channels):
        super().__init__()
        if not isinstance(dilations, (list, tuple)) or not dilations or \
                any(not isinstance(d, numbers.Integral) or d < 1 for d in dilations):
            raise ValueError(f"{type(self).__name__}: dilations must be a non-empty list of positive "
                             f"integers, got {dilations!r}")
        self.dilations, self.in_channels, self.channels = tuple(dilations), in_channels, channels
        for dilation in dilations:
            self.append(self._branch(dilation))

    def _branch(self, dilation):
        if dilation == 1:
            return ConvModule(self.in_channels, self.channels, 1)
        return ConvModule(self.in_channels, self.channels, 3, padding=dilation, dilation=dilation)

    def forward(self, x):
        return [branch(x) for branch in self]


class DepthwiseSeparableASPPModule(ASPPModule):
    """ASPP whose dilated branches are depthwise-separable 3x3 convolutions (DeepLabV3+)."""

    def _branch(self, dilation):
        if dilation == 1:
            return ConvModule(self.in_channels, self.channels, 1)
        return DepthwiseSeparableConvModule(self.in_channels, self.channels, 3, padding=dilation,
                                            dilation=dilation)


class ASPPHead(BaseDecodeHead):
    """DeepLabV3's head: ASPP plus image pooling, a bottleneck, the classifier.

    Branches, all (N, channels, h, w) and concatenated image pool first:

    * ``image_pool``: global average pooling to 1x1, a 1x1 ConvModule, and a bilinear
      resize back to h x w – the whole image's context at every pixel;
    * ``aspp_modules``: one branch per rate in ``dilations`` (default 1, 6, 12, 18).

    ``bottleneck`` (3x3 ConvModule) fuses the (len(dilations) + 1) * channels maps down to
    ``channels``; ``cls_seg`` classifies. Training needs a batch of at least 2 because the
    image-pool branch's BatchNorm sees one value per image and channel.
    """

    def __init__(self, dilations=(1, 6, 12, 18), **kwargs):
        super().__init__(**kwargs)
        if not isinstance(dilations, (list, tuple)):
            raise TypeError(f"ASPPHead: dilations must be a list or tuple, got {dilations!r}")
        self.dilations = tuple(dilations)
        self.image_pool = nn.Sequential(nn.AdaptiveAvgPool2d(1),
                                        ConvModule(self.in_channels, self.channels, 1))
        self.aspp_modules = self._make_aspp(dilations)
        self.bottleneck = ConvModule((len(dilations) + 1) * self.channels, self.channels, 3, padding=1)

    def _make_aspp(self, dilations):
        return ASPPModule(dilations, self.in_channels, self.channels)

    def _aspp_features(self, x):
        """The bottleneck's output (N, channels, h, w) over the image pool + ASPP branches."""
        _check_batch_for_pooled_bn(self, x, 1, "image-pool branch (global average pooling)")
        aspp_outs = [resize(self.image_pool(x), x.size()[2:], mode="bilinear",
                            align_corners=self.align_corners)]
        aspp_outs.extend(self.aspp_modules(x))
        return self.bottleneck(F.cat(aspp_outs, dim=1))

    def forward(self, inputs):
        x = self._transform_inputs(inputs)
        return self.cls_seg(self._aspp_features(x))


class DepthwiseSeparableASPPHead(ASPPHead):
    """DeepLabV3+'s head: separable ASPP as the encoder's end, plus a light decoder.

    The ASPP output (stride 8 or 16) is upsampled to the stride-4 features ``c1``
    (``inputs[c1_in_index]``), which ``c1_bottleneck`` first reduces to ``c1_channels``
    (few channels, so the low-level detail does not drown the semantics). The two are
    concatenated and refined by ``sep_bottleneck`` (two depthwise-separable 3x3
    ConvModules) before ``cls_seg``. The output is at c1's resolution.
    ``c1_in_channels=0`` disables the decoder (then it is DeepLabV3 with separable ASPP).
    """

    def __init__(self, c1_in_channels, c1_channels, c1_in_index=0, **kwargs):
        super().__init__(**kwargs)
        if c1_in_channels < 0 or (c1_in_channels > 0 and c1_channels < 1):
            raise ValueError(f"DepthwiseSeparableASPPHead: need c1_in_channels >= 0 and c1_channels >= 1, "
                             f"got {c1_in_channels} and {c1_channels}")
        self.c1_in_channels, self.c1_in_index = c1_in_channels, c1_in_index
        if c1_in_channels > 0:
            self.c1_bottleneck = ConvModule(c1_in_channels, c1_channels, 1)
        else:
            self.c1_bottleneck = None
            c1_channels = 0
        self.sep_bottleneck = nn.Sequential(
            DepthwiseSeparableConvModule(self.channels + c1_channels, self.channels, 3, padding=1),
            DepthwiseSeparableConvModule(self.channels, self.channels, 3, padding=1))

    def _make_aspp(self, dilations):
        return DepthwiseSeparableASPPModule(dilations, self.in_channels, self.channels)

    def forward(self, inputs):
        x = self._transform_inputs(inputs)
        output = self._aspp_features(x)
        if self.c1_bottleneck is not None:
            if not isinstance(inputs, (list, tuple)):
                raise TypeError("DepthwiseSeparableASPPHead: needs the backbone's list of feature maps "
                                "(it reads low-level features c1 from it), got a single Tensor")
            c1 = inputs[self.c1_in_index]
            if c1.ndim != 4 or c1.shape[1] != self.c1_in_channels:
                raise ValueError(f"DepthwiseSeparableASPPHead: expected low-level features of shape "
                                 f"(N, {self.c1_in_channels}, H, W), got {c1.shape}")
            c1_output = self.c1_bottleneck(c1)
            output = resize(output, c1_output.shape[2:], align_corners=self.align_corners)
            output = F.cat([output, c1_output], dim=1)
        return self.cls_seg(self.sep_bottleneck(output))


class FCN8sHead(BaseDecodeHead):
    """The original FCN-8s decoder (Long et al., 2015): learnable upsampling with skips.

    Inputs are three feature maps at strides 8, 16, 32 (``inputs[-3:]``, e.g. VGG's
    pool3, pool4, pool5); ``in_channels`` is a tuple of their channel counts.

    1. ``fc`` (two ConvModules standing in for VGG's fc6/fc7) and the classifier turn pool5
       into class scores at stride 32;
    2. ``upscore2`` (transposed conv, stride 2) upsamples them to stride 16, where they are
       added to ``score_pool4`` (a 1x1 conv scoring pool4);
    3. ``upscore_pool4`` upsamples that sum to stride 8, added to ``score_pool3``;
    4. ``upscore8`` (stride 8) upsamples to the image's resolution.

    Each transposed convolution starts as exact bilinear upsampling (``nn.init.bilinear_``)
    and is trained from there. The skip scores start at zero, so at first the net is
    FCN-32s and learns to use finer detail. When floor-mode pooling made a map one pixel
    smaller than twice the next one (odd sizes), the upsampled scores are resized to the
    skip's size before the addition.
    """

    def __init__(self, in_channels, channels, num_classes, dropout_ratio=0.1, align_corners=False,
                 ignore_index=255):
        if not isinstance(in_channels, (list, tuple)) or len(in_channels) != 3:
            raise ValueError(f"FCN8sHead: in_channels must be the channel counts of the stride-8, -16 "
                             f"and -32 features (3 ints), got {in_channels!r}")
        c3, c4, c5 = in_channels
        super().__init__(c5, channels, num_classes, dropout_ratio=dropout_ratio,
                         align_corners=align_corners, in_index=-1, ignore_index=ignore_index)
        self.in_channels = tuple(in_channels)
        self.fc = nn.Sequential(ConvModule(c5, channels, 3, padding=1), ConvModule(channels, channels, 1))
        self.score_pool4 = nn.Conv2d(c4, num_classes, 1)
        self.score_pool3 = nn.Conv2d(c3, num_classes, 1)
        for layer in (self.score_pool4, self.score_pool3):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)
        self.upscore2 = nn.ConvTranspose2d(num_classes, num_classes, 4, stride=2, padding=1, bias=False)
        self.upscore_pool4 = nn.ConvTranspose2d(num_classes, num_classes, 4, stride=2, padding=1, bias=False)
        self.upscore8 = nn.ConvTranspose2d(num_classes, num_classes, 16, stride=8, padding=4, bias=False)
        for up in (self.upscore2, self.upscore_pool4, self.upscore8):
            nn.init.bilinear_(up.weight)

    def _align(self, x, ref):
        """``x`` cropped (the paper's crop layer) or resized to ``ref``'s H x W."""
        (h, w), (hr, wr) = x.shape[2:], ref.shape[2:]
        if (h, w) == (hr, wr):
            return x
        if h >= hr and w >= wr:
            return x[:, :, :hr, :wr]
        return resize(x, (hr, wr), align_corners=self.align_corners)

    def forward(self, inputs):
        if not isinstance(inputs, (list, tuple)) or len(inputs) < 3:
            raise TypeError("FCN8sHead: expected the backbone's list of feature maps (at least the "
                            "stride-8, -16 and -32 ones)")
        pool3, pool4, pool5 = inputs[-3:]
        for name, feat, c in zip(("pool3", "pool4", "pool5"), (pool3, pool4, pool5), self.in_channels):
            if feat.ndim != 4 or feat.shape[1] != c:
                raise ValueError(f"FCN8sHead: expected {name} features of shape (N, {c}, H, W), got {feat.shape}")
        score = self.cls_seg(self.fc(pool5))                                    # stride 32
        score = self.score_pool4(pool4) + self._align(self.upscore2(score), pool4)          # stride 16
        score = self.score_pool3(pool3) + self._align(self.upscore_pool4(score), pool3)     # stride 8
        return self.upscore8(score)                                             # ~ stride 1

    def extra_repr(self):
        return f"in_channels={self.in_channels}, channels={self.channels}, num_classes={self.num_classes}"

