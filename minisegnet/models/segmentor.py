"""Segmentors: a backbone, a decode head, and the resize back to the image.

:class:`EncoderDecoder` is the whole segmentation network::

    image (N, 3, H, W) --backbone--> [c1, c2, c3, c4] --decode_head--> (N, K, h, w)
                       --bilinear resize--> logits (N, K, H, W)

and, in training, an optional auxiliary head on c3 whose loss (weight 0.4) gives the
middle of the backbone a direct learning signal (PSPNet's "deep supervision").
:class:`FCN8s` is the same with the original FCN-8s decoder.
"""
import numbers

from .. import functional as F
from .. import nn
from ..tensor import Tensor, no_grad
from .heads import FCN8sHead, resize


class EncoderDecoder(nn.Module):
    """Backbone + decode head (+ auxiliary head): logits at the input's exact size.

    Args:
        backbone: a module mapping (N, C, H, W) images to a list of feature maps.
        decode_head: a :class:`~minisegnet.models.heads.BaseDecodeHead`.
        auxiliary_head: optional head used only for the training loss (or an
            ``nn.ModuleList`` of heads, whose losses are summed).
        align_corners: of the final bilinear resize (and of the losses' resize).
        aux_weight: weight of the auxiliary loss (0.4 as in PSPNet / MMSegmentation).

    Any input size works, odd ones too: the backbone's convolutions and pools round the
    way PyTorch's do, and the final resize goes to exactly (H, W).
    """

    def __init__(self, backbone, decode_head, auxiliary_head=None, align_corners=False, aux_weight=0.4):
        super().__init__()
        for name, m in (("backbone", backbone), ("decode_head", decode_head)):
            if not isinstance(m, nn.Module):
                raise TypeError(f"EncoderDecoder: {name} must be a Module, got {type(m).__name__}")
        if auxiliary_head is not None and not isinstance(auxiliary_head, nn.Module):
            raise TypeError(f"EncoderDecoder: auxiliary_head must be a Module or None, "
                            f"got {type(auxiliary_head).__name__}")
        self.backbone = backbone
        self.decode_head = decode_head
        self.auxiliary_head = auxiliary_head
        self.align_corners, self.aux_weight = align_corners, aux_weight
        self.num_classes = decode_head.num_classes
        self.ignore_index = getattr(decode_head, "ignore_index", 255)

    @property
    def min_input_size(self):
        """The smallest image side the backbone accepts (1 if it does not say)."""
        return int(getattr(self.backbone, "min_input_size", 1))

    @property
    def with_auxiliary_head(self):
        return self.auxiliary_head is not None

    def _check_image(self, img):
        if not isinstance(img, Tensor):
            raise TypeError(f"{type(self).__name__}: expected a Tensor image batch, got {type(img).__name__}")
        c = getattr(self.backbone, "in_channels", None)
        if img.ndim != 4 or (c is not None and img.shape[1] != c):
            raise ValueError(f"{type(self).__name__}: expected images of shape (N, {c or 'C'}, H, W), "
                             f"got {img.shape}")
        if min(img.shape[2:]) < self.min_input_size:
            raise ValueError(f"{type(self).__name__}: images must be at least {self.min_input_size} x "
                             f"{self.min_input_size} pixels for this backbone, got {img.shape[2]} x {img.shape[3]}")

    def forward_backbone(self, img):
        """The backbone's feature maps ``[c1, c2, c3, c4]`` for images (N, C, H, W)."""
        self._check_image(img)
        return self.backbone(img)

    def _decode(self, head, feats, size):
        return resize(head(feats), size, mode="bilinear", align_corners=self.align_corners)

    def forward(self, img):
        """Per-pixel class scores (N, num_classes, H, W) for images (N, C, H, W)."""
        feats = self.forward_backbone(img)
        return self._decode(self.decode_head, feats, img.shape[2:])

    def loss(self, img, target, dice_weight=0.0, label_smoothing=0.0):
        """The training losses as a dict of scalar Tensors.

        ``target`` holds integer labels (N, H, W); pixels equal to ``ignore_index`` (255)
        do not count. Returns ``{'loss_decode', 'loss'}``, plus ``'loss_aux'`` with an
        auxiliary head and ``'loss_dice'`` (soft Dice of the main logits) when
        ``dice_weight > 0``; ``loss = loss_decode + aux_weight * loss_aux +
        dice_weight * loss_dice`` is what to ``backward()``. ``label_smoothing`` goes to
        both cross-entropies.
        """
        self._check_image(img)
        if not isinstance(target, Tensor):
            raise TypeError(f"{type(self).__name__}.loss: target must be a Tensor, got {type(target).__name__}")
        if target.ndim != 3 or target.shape != (img.shape[0],) + img.shape[2:]:
            raise ValueError(f"{type(self).__name__}.loss: expected target of shape "
                             f"{(img.shape[0],) + img.shape[2:]} (N, H, W) for images {img.shape}, "
                             f"got {target.shape}")
        if target.dtype.kind not in "iu":
            raise TypeError(f"{type(self).__name__}.loss: target must hold integer class labels, "
                            f"got dtype {target.dtype}")
        feats = self.backbone(img)
        size = img.shape[2:]
        logits = self._decode(self.decode_head, feats, size)
        losses = {"loss_decode": F.cross_entropy(logits, target, ignore_index=self.ignore_index,
                                                         label_smoothing=label_smoothing)}
        total = losses["loss_decode"]
        if self.auxiliary_head is not None:
            # one head, or several (a ModuleList, e.g. BiSeNetV2's boosters): their losses add up
            heads = self.auxiliary_head if isinstance(self.auxiliary_head, nn.ModuleList) else [self.auxiliary_head]
            losses["loss_aux"] = sum(F.cross_entropy(self._decode(head, feats, size), target,
                                                     ignore_index=self.ignore_index,
                                                     label_smoothing=label_smoothing) for head in heads)
            total = total + losses["loss_aux"] * self.aux_weight
        if dice_weight:
            losses["loss_dice"] = F.dice_loss(logits, target, ignore_index=self.ignore_index)
            total = total + losses["loss_dice"] * dice_weight
        losses["loss"] = total
        return losses

    def predict(self, img):
        """Predicted class of every pixel, an int64 Tensor (N, H, W) (no graph is recorded).

        Runs in whatever mode the model is in; call ``model.eval()`` first for inference.
        """
        with no_grad():
            return F.argmax(self.forward(img), dim=1)

    def extra_repr(self):
        return f"num_classes={self.num_classes}, align_corners={self.align_corners}"


class FCN8s(EncoderDecoder):
    """FCN-8s (Long, Shelhamer, Darrell 2015): a stride-32 encoder and the FCN-8s decoder.

    ``backbone`` must return maps at strides 8, 16 and 32 as its last three outputs (e.g.
    ``vgg_tiny``, or a ResNet at output stride 32). The head
    (:class:`~minisegnet.models.heads.FCN8sHead`) upsamples with transposed convolutions
    initialised to bilinear interpolation and adds skip scores from pool4 and pool3.
    """

    def __init__(self, backbone, num_classes, channels=64, dropout_ratio=0.1, auxiliary_head=None,
                 align_corners=False, ignore_index=255):
        strides = tuple(getattr(backbone, "strides", (4, 8, 16, 32)))
        if strides[-3:] != (8, 16, 32):
            raise ValueError(f"FCN8s: the backbone's last three outputs must have strides (8, 16, 32) "
                             f"(output_stride=32), got strides {strides}")
        if not isinstance(num_classes, numbers.Integral) or num_classes < 1:
            raise ValueError(f"FCN8s: num_classes must be a positive integer, got {num_classes!r}")
        head = FCN8sHead(tuple(backbone.out_channels[-3:]), channels, num_classes,
                         dropout_ratio=dropout_ratio, align_corners=align_corners, ignore_index=ignore_index)
        super().__init__(backbone, head, auxiliary_head=auxiliary_head, align_corners=align_corners)
