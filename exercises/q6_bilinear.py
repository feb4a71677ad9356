"""Q6: bilinear resizing, with both meanings of ``align_corners``.

Segmentation networks predict at 1/8 or 1/16 of the image size and upsample the scores
bilinearly. Resizing one axis from ``n_in`` to ``n_out`` pixels: output pixel i reads
the input at a *source coordinate* ``src(i)``, generally between two pixels
``i0 = floor(src)`` and ``i0 + 1``, and mixes them with weights ``1 - t`` and ``t``
(``t = src - i0``; at the last pixel there is no right neighbour). Bilinear resizing of
an image does this along the rows, then along the columns.

Where does output pixel i read?

* ``align_corners=True``: the centres of the first and last pixels of input and output
  coincide, so ``src(i)`` runs evenly from 0 to ``n_in - 1`` (a single output pixel
  reads pixel 0).
* ``align_corners=False``: the outer *edges* of the two images coincide, and a pixel's
  centre sits at ``i + 0.5`` in its image: map output centres to input coordinates
  (scale ``n_in / n_out``) and subtract the 0.5 again; a coordinate below 0 reads
  pixel 0.

These are PyTorch's rules (``F.interpolate(x, size, mode='bilinear', align_corners=...)``).
Check with ``minisegnet grade exercises/q6_bilinear.py``.
"""
import numpy as np


def bilinear_resize(x, size, align_corners=False):
    """Resize a batch of images bilinearly.

    Args:
        x: NumPy array of shape (N, C, H, W).
        size: ``(OH, OW)``, the output's spatial size.
        align_corners (bool): see the module docstring.

    Returns:
        ``out`` of shape (N, C, OH, OW).
    """
    # ---- YOUR CODE BEGINS ----
    raise NotImplementedError("q6_bilinear: source coordinates, neighbours and weights per axis")
    # ---- YOUR CODE ENDS ----
    return out
