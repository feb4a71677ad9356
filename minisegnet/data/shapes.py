"""Shapes: a synthetic segmentation dataset that is generated, never downloaded.

Each image shows a few circles, squares and triangles of random size, position, rotation
and colour on a textured background, with per-pixel labels::

    0 background   1 circle   2 square   3 triangle

The colour of a shape says nothing about its class (every shape draws its colour from the
same distribution) and the three shapes have the same area on average, so a network has
to learn *shape*: curved vs straight edges, four corners vs three. Later shapes may hide
part of earlier ones, so the labels are those of the visible (topmost) shape.

Item ``i`` is generated from its own random generator ``np.random.default_rng((seed,
split, i))``: the same (index, seed, split) always gives the same arrays, in any order and
in any thread, and the train and val splits never share a scene.

This module also holds the small rasterisers (discs, polygons, textures) that the other
synthetic dataset, :mod:`.context`, draws with.
"""
import numpy as np

__all__ = ["Shapes", "SyntheticDataset"]

SPLITS = {"train": 0, "val": 1, "test": 2}


def _size_pair(image_size, name="image_size"):
    """``64 -> (64, 64)``; ``(H, W) -> (H, W)``; anything else is an error."""
    if isinstance(image_size, (int, np.integer)) and not isinstance(image_size, bool):
        image_size = (int(image_size), int(image_size))
    if (not isinstance(image_size, (tuple, list)) or len(image_size) != 2
            or not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in image_size)
            or min(image_size) < 8):
        raise ValueError(f"{name} must be an int or an (H, W) pair of ints >= 8, got {image_size!r}")
    return int(image_size[0]), int(image_size[1])


class SyntheticDataset:
    """Base of the generated datasets: length, split, seed and deterministic indexing.

    A subclass sets ``classes`` and ``palette`` and implements ``generate(rng)`` returning
    ``(image float32 (3, H, W) in [0, 1], mask int64 (H, W))``.
    """

    classes = ()
    palette = None
    ignore_index = 255

    def __init__(self, length, seed, split, transforms):
        if isinstance(length, bool) or not isinstance(length, (int, np.integer)) or length < 1:
            raise ValueError(f"length must be a positive int, got {length!r}")
        if split not in SPLITS:
            raise ValueError(f"split must be one of {sorted(SPLITS)}, got {split!r}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {seed!r}")
        if transforms is not None and not callable(transforms):
            raise TypeError(f"transforms must be callable (image, mask) -> (image, mask), "
                            f"got {type(transforms).__name__}")
        self.length, self.seed, self.split, self.transforms = int(length), int(seed), split, transforms

    @property
    def num_classes(self):
        return len(self.classes)

    def __len__(self):
        return self.length

    def __getitem__(self, index):
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"dataset indices must be ints, got {type(index).__name__}")
        if not -self.length <= index < self.length:
            raise IndexError(f"index {index} is out of range for a dataset of length {self.length}")
        index = int(index) % self.length
        rng = np.random.default_rng((self.seed, SPLITS[self.split], index))
        image, mask = self.generate(rng)
        if self.transforms is not None:
            image, mask = self.transforms(image, mask)
        return image, mask

    def generate(self, rng):
        raise NotImplementedError

    def __repr__(self):
        return (f"{type(self).__name__}(length={self.length}, split={self.split!r}, "
                f"seed={self.seed}, image_size={self.image_size})")


# ----------------------------------------------------------------------------- drawing helpers
def pixel_grid(H, W):
    """Row and column coordinates of the pixel centres, each (H, W) float32."""
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    return yy + 0.5, xx + 0.5


def disc(yy, xx, cy, cx, ry, rx=None):
    """Boolean mask of the ellipse (a disc when ``rx`` is None) centred at (cy, cx)."""
    rx = ry if rx is None else rx
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0


def polygon(yy, xx, vertices):
    """Boolean mask of a convex polygon given by (y, x) vertices in counter-clockwise order
    (in image coordinates, y down): inside = on the inner side of every edge."""
    inside = np.ones(yy.shape, dtype=bool)
    n = len(vertices)
    for k in range(n):
        (y0, x0), (y1, x1) = vertices[k], vertices[(k + 1) % n]
        inside &= (x1 - x0) * (yy - y0) - (y1 - y0) * (xx - x0) <= 0
    return inside


def regular_polygon(cy, cx, radius, sides, angle):
    """The vertices of a regular polygon with circumradius ``radius``, rotated by ``angle``."""
    t = angle - 2 * np.pi * np.arange(sides) / sides
    return list(zip(cy + radius * np.sin(t), cx + radius * np.cos(t)))


def gratings(rng, yy, xx, count, amplitude, cycles=(1.0, 4.0)):
    """A smooth random texture: the sum of ``count`` sinusoidal gratings, (H, W) float32.

    Each grating has a random orientation, a frequency of ``cycles`` periods across the
    image and a random phase; their amplitudes add up to at most ``amplitude``.
    """
    H, W = yy.shape
    texture = np.zeros((H, W), dtype=np.float32)
    for _ in range(count):
        theta = rng.uniform(0, np.pi)
        freq = rng.uniform(*cycles) * 2 * np.pi / max(H, W)
        phase = rng.uniform(0, 2 * np.pi)
        texture += np.sin(freq * (np.cos(theta) * xx + np.sin(theta) * yy) + phase)
    return (amplitude / max(count, 1)) * texture


def contrasting_colour(rng, against, min_distance=0.35, tries=20):
    """A random RGB colour (3,) at least ``min_distance`` away from ``against`` (3,)."""
    for _ in range(tries):
        colour = rng.uniform(0.0, 1.0, size=3).astype(np.float32)
        if np.linalg.norm(colour - against) >= min_distance:
            return colour
    return np.where(against > 0.5, 0.05, 0.95).astype(np.float32)


def paint(image, region, colour, rng, yy, xx, shading=0.12):
    """Fill ``region`` of ``image`` (3, H, W) with ``colour``, lit by a soft linear gradient."""
    theta = rng.uniform(0, 2 * np.pi)
    ramp = np.cos(theta) * xx[region] + np.sin(theta) * yy[region]
    if ramp.size > 1 and np.ptp(ramp) > 0:
        ramp = (ramp - ramp.min()) / np.ptp(ramp) - 0.5
    else:
        ramp = np.zeros_like(ramp)
    image[:, region] = colour[:, None] + shading * ramp[None, :]


def finish(image, noise, rng):
    """Add Gaussian pixel noise of std ``noise`` and clip to [0, 1]."""
    if noise > 0:
        image += rng.normal(0.0, noise, size=image.shape).astype(np.float32)
    return np.clip(image, 0.0, 1.0, out=image)


# ----------------------------------------------------------------------------- the dataset
class Shapes(SyntheticDataset):
    """Circles, squares and triangles on a textured background, labelled per pixel.

    Args:
        length: number of images (any positive int; items are generated on demand).
        image_size: ``H`` for square images or ``(H, W)``; shapes scale with the image.
        seed: which family of scenes; the same seed gives the same dataset everywhere.
        split: ``'train'``, ``'val'`` or ``'test'`` -- disjoint families of scenes.
        min_shapes, max_shapes: how many shapes each image gets (uniform in the range).
        size_range: a shape's radius as a fraction of ``min(H, W)`` (a circle's radius;
            squares and triangles are sized to the same area).
        noise: standard deviation of the Gaussian pixel noise (images live in [0, 1]).
        transforms: optional paired transform ``(image, mask) -> (image, mask)``.

    ``ds[i]`` returns ``(image, mask)``: float32 (3, H, W) in [0, 1] and int64 (H, W).
    """

    classes = ("background", "circle", "square", "triangle")
    palette = np.array([[0, 0, 0], [230, 25, 75], [60, 180, 75], [0, 130, 200]], dtype=np.uint8)

    # circumradius of a circle / square / triangle with the area of a disc of radius 1:
    # a square of half side sqrt(pi)/2 and an equilateral triangle of area pi
    _CIRCUMRADIUS = {1: 1.0, 2: np.sqrt(np.pi / 2), 3: np.sqrt(np.pi / (3 * np.sqrt(3) / 4))}
    MAX_HIDDEN = 0.15       # a new shape may hide at most this fraction of any shape below

    def __init__(self, length=1000, image_size=64, seed=0, split="train", min_shapes=1,
                 max_shapes=4, size_range=(0.15, 0.25), noise=0.05, transforms=None):
        super().__init__(length, seed, split, transforms)
        self.image_size = _size_pair(image_size)
        if not (isinstance(min_shapes, (int, np.integer)) and isinstance(max_shapes, (int, np.integer))
                and 0 <= min_shapes <= max_shapes):
            raise ValueError(f"need ints 0 <= min_shapes <= max_shapes, got min_shapes={min_shapes!r}, "
                             f"max_shapes={max_shapes!r}")
        if len(size_range) != 2 or not 0 < size_range[0] <= size_range[1] <= 0.5:
            raise ValueError(f"size_range must be (low, high) with 0 < low <= high <= 0.5, "
                             f"got {size_range!r}")
        if not 0 <= noise <= 0.5:
            raise ValueError(f"noise must be in [0, 0.5], got {noise!r}")
        self.min_shapes, self.max_shapes = int(min_shapes), int(max_shapes)
        self.size_range, self.noise = tuple(size_range), float(noise)

    def generate(self, rng):
        H, W = self.image_size
        yy, xx = pixel_grid(H, W)
        base = rng.uniform(0.2, 0.8, size=3).astype(np.float32)
        image = base[:, None, None] + gratings(rng, yy, xx, count=3, amplitude=0.12)[None]
        image += gratings(rng, yy, xx, count=2, amplitude=0.05, cycles=(6.0, 12.0))[None]
        mask = np.zeros((H, W), dtype=np.int64)
        instances = np.zeros((H, W), dtype=np.int64)    # which shape (1, 2, ...) is on top
        for k in range(rng.integers(self.min_shapes, self.max_shapes + 1)):
            self._add_shape(rng, image, mask, instances, k + 1, base, yy, xx)
        return finish(image, self.noise, rng), mask

    def _add_shape(self, rng, image, mask, instances, instance, base, yy, xx):
        """Draw one random shape on top, unless 10 tries all hide too much of one below."""
        H, W = mask.shape
        label = int(rng.integers(1, 4))
        colour = contrasting_colour(rng, base)
        for _ in range(10):
            radius = rng.uniform(*self.size_range) * min(H, W) * self._CIRCUMRADIUS[label]
            # the whole shape inside the image: a shape cut by the border is a different shape
            cy = rng.uniform(radius, H - radius) if H > 2 * radius else H / 2
            cx = rng.uniform(radius, W - radius) if W > 2 * radius else W / 2
            if label == 1:
                region = disc(yy, xx, cy, cx, radius)
            else:
                corners = regular_polygon(cy, cx, radius, {2: 4, 3: 3}[label], rng.uniform(0, 2 * np.pi))
                region = polygon(yy, xx, corners)
            below = np.bincount(instances.ravel(), minlength=instance)[1:]
            hidden = np.bincount(instances[region], minlength=instance)[1:]
            if region.sum() >= 4 and np.all(hidden <= self.MAX_HIDDEN * below):
                paint(image, region, colour, rng, yy, xx)
                mask[region] = label
                instances[region] = instance
                return
