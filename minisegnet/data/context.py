"""ContextStrips: a dataset where only the scene, not the object, decides the class.

PSPNet was motivated by mistakes like "a boat on a river labelled *car*": the boat looks
like a car, and only the water around it says otherwise. A network whose receptive field
is too small to reach the water cannot get it right; global context (pyramid pooling, or
atrous convolution with large rates) can. This dataset isolates that effect.

Each item is a tall strip (``H x W``, by default 256 x 32)::

    rows [0, 0.3 H)         1-3 objects (blobs) on a neutral textured background
    rows [0.3 H, 7/8 H)     background only
    rows [7/8 H, H)         a band of water (blue, wavy) or of road (grey, dashed line)

Classes: ``0 background, 1 water, 2 road, 3 boat, 4 car``. A blob is a *boat* when the
band is water and a *car* when it is road, and boats and cars are drawn from exactly the
same distribution of shapes and colours: nothing local tells them apart. The band is at
least 0.575 H = 147 px from every object, farther than half the receptive field of a
small ResNet at output stride 8 (about 263 / 2 px), so plain FCN has to guess while PSP
and ASPP heads, which pool over the whole image, can look.

With ``control=True`` the same scenes are drawn but boats and cars have different shapes
(boats: hulls, wide at the top and pointed below; cars: upright rectangles), so local
appearance suffices and all heads should do equally well.

Measured with a PyTorch prototype of the setting (tiny ResNet, output stride 8, 1000 Adam
iterations at batch 16): FCN about 0.70 val mIoU, PSP/ASPP 0.92-0.93 -- boats and cars
are where FCN loses (IoU 0.2-0.3 against about 0.8); on the control FCN reaches 0.88.
"""
import numpy as np

from .shapes import (SyntheticDataset, _size_pair, contrasting_colour, disc, finish, gratings,
                     paint, pixel_grid, polygon)

__all__ = ["ContextStrips"]

WATER, ROAD, BOAT, CAR = 1, 2, 3, 4


class ContextStrips(SyntheticDataset):
    """Tall strips in which a blob is a boat or a car depending on a band far below it.

    Args:
        length: number of strips.
        image_size: ``(H, W)``, default ``(256, 32)``; the layout scales with ``H``.
        seed, split: as in :class:`~minisegnet.data.Shapes` (deterministic per index).
        control: draw boats and cars with different shapes (the local-appearance control).
        max_objects: at most this many blobs per strip (at least one).
        noise: standard deviation of the Gaussian pixel noise.
        transforms: optional paired transform ``(image, mask) -> (image, mask)``.
    """

    classes = ("background", "water", "road", "boat", "car")
    palette = np.array([[0, 0, 0], [0, 110, 230], [128, 128, 128], [255, 140, 0], [220, 20, 60]],
                       dtype=np.uint8)

    OBJECT_ZONE = 0.30      # objects live in the top 30% of the rows
    BAND_START = 7 / 8      # the water / road band fills the bottom eighth

    def __init__(self, length=1000, image_size=(256, 32), seed=0, split="train", control=False,
                 max_objects=3, noise=0.04, transforms=None):
        super().__init__(length, seed, split, transforms)
        self.image_size = _size_pair(image_size)
        if isinstance(max_objects, bool) or not isinstance(max_objects, (int, np.integer)) \
                or max_objects < 1:
            raise ValueError(f"max_objects must be a positive int, got {max_objects!r}")
        if not 0 <= noise <= 0.5:
            raise ValueError(f"noise must be in [0, 0.5], got {noise!r}")
        self.control, self.max_objects, self.noise = bool(control), int(max_objects), float(noise)

    def generate(self, rng):
        H, W = self.image_size
        yy, xx = pixel_grid(H, W)
        grey = np.float32(rng.uniform(0.45, 0.65))
        base = np.full(3, grey, dtype=np.float32) + rng.uniform(-0.03, 0.03, size=3).astype(np.float32)
        image = base[:, None, None] + gratings(rng, yy, xx, count=3, amplitude=0.08, cycles=(2, 8))[None]
        mask = np.zeros((H, W), dtype=np.int64)

        scene = WATER if rng.random() < 0.5 else ROAD
        band_top = int(round(self.BAND_START * H))
        self._draw_band(rng, image, scene, band_top, yy, xx)
        mask[band_top:] = scene

        label = BOAT if scene == WATER else CAR
        for _ in range(rng.integers(1, self.max_objects + 1)):
            self._add_object(rng, image, mask, label, base, yy, xx)
        return finish(image, self.noise, rng), mask

    def _draw_band(self, rng, image, scene, top, yy, xx):
        """Water: blue with horizontal wave crests. Road: dark grey grain with a dashed line."""
        rows, cols = yy[top:], xx[top:]
        if scene == WATER:
            colour = np.array([0.15, 0.35, 0.65], dtype=np.float32) + rng.uniform(-0.05, 0.05, 3)
            period = rng.uniform(3.0, 5.0)
            waves = np.sin(2 * np.pi * rows / period + 0.6 * np.sin(2 * np.pi * cols / rng.uniform(10, 20))
                           + rng.uniform(0, 2 * np.pi))
            image[:, top:] = colour[:, None, None] + 0.12 * waves[None]
        else:
            colour = np.float32(rng.uniform(0.25, 0.35))
            grain = rng.normal(0.0, 0.06, size=rows.shape).astype(np.float32)
            image[:, top:] = colour + grain[None]
            middle = top + (image.shape[1] - top) // 2
            dashes = ((cols[0] + rng.uniform(0, 8)) % 8) < 4
            image[:, middle - 1:middle + 1, dashes] = 0.9

    def _add_object(self, rng, image, mask, label, base, yy, xx):
        """One blob in the object zone that overlaps no other blob (skipped after 20 tries)."""
        H, W = mask.shape
        zone = self.OBJECT_ZONE * H
        colour = contrasting_colour(rng, base)
        for _ in range(20):
            half_w = rng.uniform(0.16, 0.30) * W
            half_h = rng.uniform(0.5, 0.9) * half_w
            cy = rng.uniform(half_h, zone - half_h)
            cx = rng.uniform(half_w, W - half_w)
            if not self.control:
                region = disc(yy, xx, cy, cx, half_h, half_w)
            elif label == BOAT:   # a hull: flat deck on top, pointed keel below
                region = polygon(yy, xx, [(cy - half_h, cx - half_w), (cy + half_h, cx),
                                          (cy - half_h, cx + half_w)])
            else:                 # a car: an upright rectangle
                region = (np.abs(yy - cy) <= half_h) & (np.abs(xx - cx) <= 0.7 * half_w)
            if region.sum() >= 4 and not (region & (mask > 0)).any():
                paint(image, region, colour, rng, yy, xx)
                mask[region] = label
                return
