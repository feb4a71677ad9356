"""Q8: the forward pass of PSPNet's pyramid pooling module.

A pixel classifier that sees only a small window confuses things that look alike up
close (a boat's deck and a road). PSPNet adds *context* at several scales: for every
bin size s in ``sizes`` (default 1, 2, 3, 6) a branch

1. averages the feature map x (N, C, H, W) into an s x s grid (``self.avgpools[k]``,
   an ``nn.AdaptiveAvgPool2d(s)``): (N, C, s, s);
2. reduces the channels with a 1x1 ConvModule (``self.convs[k]``): (N, C // 4, s, s);
3. stretches the result back to H x W with bilinear resizing, using the module's
   ``align_corners``: (N, C // 4, H, W).

The output is x itself followed by the branches in the order of ``sizes``, concatenated
along the channels: (N, C + len(sizes) * (C // 4), H, W) = (N, ``self.out_channels``, H, W).
The 1x1 branch summarises the whole image; the 6x6 one, regions of it.

Useful: ``resize(t, size, mode='bilinear', align_corners=...)``, ``ms.cat(list, dim=...)``.
Check with ``minisegnet grade exercises/q8_pyramid_pooling.py``.
"""
import minisegnet as ms
from minisegnet import nn
from minisegnet.models.heads import ConvModule, resize


class PyramidPooling(nn.Module):
    """PSPNet's pyramid pooling module: (N, C, H, W) -> (N, out_channels, H, W)."""

    def __init__(self, in_channels, sizes=(1, 2, 3, 6), align_corners=False):
        super().__init__()
        self.in_channels, self.sizes, self.align_corners = in_channels, tuple(sizes), align_corners
        self.out_channels = in_channels + len(self.sizes) * (in_channels // 4)
        self.avgpools = nn.ModuleList([nn.AdaptiveAvgPool2d(s) for s in self.sizes])
        self.convs = nn.ModuleList([ConvModule(in_channels, in_channels // 4, 1) for _ in self.sizes])

    def forward(self, x):
        """x: (N, in_channels, H, W) -> ``output``: (N, out_channels, H, W)."""
        size = x.shape[2:]
        # ---- YOUR CODE BEGINS ----
        raise NotImplementedError("q8_pyramid_pooling: pool, reduce and resize each branch; concatenate")
        # ---- YOUR CODE ENDS ----
        return output
