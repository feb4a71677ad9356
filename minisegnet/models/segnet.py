"""SegNet (Badrinarayanan, Kendall, Cipolla 2017), small: upsampling with pooling indices.

FCN upsamples coarse scores with transposed convolutions it has to learn (and adds skip
connections to get the boundaries back). SegNet remembers instead: every 2x2 max pool of
its VGG-style encoder also returns *where* each maximum was
(``max_pool2d(..., return_indices=True)``), and the mirrored decoder puts each value back
at exactly that position with :func:`~minisegnet.functional.max_unpool2d` (zeros
elsewhere), then densifies the sparse map with 3x3 convolutions::

    image (N, 3, H, W)
      encoder stage 1: [conv-bn-relu] x 2 -> 16 ch --pool--> H/2   (indices 1, size 1)
      encoder stage 2: [conv-bn-relu] x 2 -> 32 ch --pool--> H/4   (indices 2, size 2)
      encoder stage 3: [conv-bn-relu] x 2 -> 64 ch --pool--> H/8   (indices 3, size 3)
      decoder stage 3: unpool(indices 3) -> H/4, [conv-bn-relu] x 2 -> 32 ch
      decoder stage 2: unpool(indices 2) -> H/2, [conv-bn-relu] x 2 -> 16 ch
      decoder stage 1: unpool(indices 1) -> H,   [conv-bn-relu] x 2 -> 16 ch
      classifier: 3x3 conv -> (N, num_classes, H, W)

The indices cost no parameters and keep boundaries sharp; only integer positions are
stored. Each unpool is given the size before its pool, so odd sizes come back exactly.

It plugs into :class:`~minisegnet.models.segmentor.EncoderDecoder` like the other
models: :class:`SegNetEncoder` is the backbone and returns
``[(indices_1, size_1), ..., (indices_k, size_k), bottom]``, and :class:`SegNetDecoder`
is the decode head that reads that list.
"""
from .. import nn
from .segmentor import EncoderDecoder


def conv_bn_relu(in_channels, out_channels):
    """3x3 convolution (padding 1, no bias: BN follows), batch norm, ReLU."""
    return [nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False), nn.BatchNorm2d(out_channels),
            nn.ReLU()]


class SegNetEncoder(nn.Module):
    """VGG-style stages, each ``[conv-bn-relu] x 2`` then a 2x2 max pool that keeps its indices."""

    def __init__(self, in_channels=3, widths=(16, 32, 64)):
        super().__init__()
        self.in_channels, self.widths = in_channels, tuple(widths)
        channels = (in_channels,) + self.widths
        self.stages = nn.ModuleList([nn.Sequential(*conv_bn_relu(channels[i], channels[i + 1]),
                                                   *conv_bn_relu(channels[i + 1], channels[i + 1]))
                                     for i in range(len(self.widths))])
        self.pool = nn.MaxPool2d(2, 2, return_indices=True)

    def forward(self, x):
        """``[(indices, size_before_pool) per stage..., bottom features (N, widths[-1], H/2^k, W/2^k)]``."""
        record = []
        for stage in self.stages:
            x = stage(x)
            size = x.shape[2:]
            x, indices = self.pool(x)
            record.append((indices, size))
        return record + [x]


class SegNetDecoder(nn.Module):
    """Mirror of the encoder: per stage, unpool with that stage's indices, then ``[conv-bn-relu] x 2``."""

    def __init__(self, num_classes, widths=(16, 32, 64), ignore_index=255):
        super().__init__()
        self.num_classes, self.ignore_index = num_classes, ignore_index
        widths = tuple(widths)
        outs = (widths[0],) + widths[:-1]                  # stage i ends at the width of stage i - 1
        self.stages = nn.ModuleList([nn.Sequential(*conv_bn_relu(widths[i], widths[i]),
                                                   *conv_bn_relu(widths[i], outs[i]))
                                     for i in range(len(widths))])
        self.unpool = nn.MaxUnpool2d(2, 2)
        self.classifier = nn.Conv2d(widths[0], num_classes, 3, padding=1)

    def forward(self, feats):
        *record, x = feats
        for stage, (indices, size) in zip(reversed(list(self.stages)), reversed(record)):
            x = stage(self.unpool(x, indices, output_size=size))
        return self.classifier(x)


class SegNet(EncoderDecoder):
    """SegNet: :class:`SegNetEncoder` + :class:`SegNetDecoder`, logits (N, num_classes, H, W)."""

    def __init__(self, num_classes, in_channels=3, widths=(16, 32, 64), ignore_index=255):
        super().__init__(SegNetEncoder(in_channels, widths),
                         SegNetDecoder(num_classes, widths, ignore_index))
