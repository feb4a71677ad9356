"""Paired, label-safe augmentation: every transform maps ``(image, mask) -> (image, mask)``.

In segmentation the mask is a picture too: whatever moves the image's pixels must move
the mask's pixels the same way, or the labels stop matching. The rules:

* geometry (resize, crop, flip) is applied to both, with the *same* random draw;
* the image is resampled bilinearly, the mask with nearest neighbour -- averaging labels
  would invent classes (halfway between 'cat' (8) and 'dog' (12) is not 'cow' (10));
* padding fills the image with 0 and the mask with the ignore index 255, so padded pixels
  are never trained on;
* colour changes (:class:`PhotometricJitter`, :class:`Normalize`) touch only the image.

Images are NumPy float32 arrays (C, H, W), masks int64 (H, W). Randomness comes from the
``rng`` given to a transform, else from :func:`current_generator`: the generator a
:class:`~minisegnet.data.DataLoader` installs for each item (so worker threads do not
change the result), else ``minisegnet.random.generator()``. Seeded runs reproduce.
"""
import contextlib
import threading

import numpy as np

from .. import random as ms_random
from ..kernels import interpolation

__all__ = ["Compose", "Resize", "RandomResize", "RandomCrop", "RandomHorizontalFlip",
           "PhotometricJitter", "Normalize", "current_generator", "use_generator",
           "resize_bilinear", "resize_nearest", "IMAGENET_MEAN", "IMAGENET_STD"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

_local = threading.local()


def current_generator():
    """The generator random transforms draw from when they were given none."""
    return getattr(_local, "generator", None) or ms_random.generator()


@contextlib.contextmanager
def use_generator(rng):
    """Within this block (in this thread) transforms without an ``rng`` draw from ``rng``."""
    previous = getattr(_local, "generator", None)
    _local.generator = rng
    try:
        yield rng
    finally:
        _local.generator = previous


def _check_pair(image, mask, who):
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.dtype.kind != "f":
        raise TypeError(f"{who}: image must be a float NumPy array (C, H, W), got "
                        f"{type(image).__name__} {getattr(image, 'shape', '')} {getattr(image, 'dtype', '')}")
    if not isinstance(mask, np.ndarray) or mask.shape != image.shape[1:]:
        raise ValueError(f"{who}: mask must be a NumPy array (H, W) = {image.shape[1:]} matching the "
                         f"image, got {type(mask).__name__} {getattr(mask, 'shape', '')}")


def _size(size, who):
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        size = (size, size)
    if not (isinstance(size, (tuple, list)) and len(size) == 2
            and all(isinstance(s, (int, np.integer)) and s > 0 for s in size)):
        raise ValueError(f"{who}: size must be a positive int or (H, W), got {size!r}")
    return int(size[0]), int(size[1])


# ----------------------------------------------------------------------------- resampling
def resize_bilinear(image, size):
    """Bilinear resize of (C, H, W) to ``size = (H', W')``, exactly PyTorch's
    ``F.interpolate(x, size, mode='bilinear', align_corners=False)``: the interpolation
    matrices of :mod:`minisegnet.kernels.interpolation`, applied to rows and columns."""
    (h, w), (H, W) = image.shape[1:], size
    rows = interpolation.cached_matrix(interpolation.linear_weights, (h, H, False), like=image)
    cols = interpolation.cached_matrix(interpolation.linear_weights, (w, W, False), like=image)
    return interpolation.separable_apply(image[None], rows, cols)[0]


def resize_nearest(mask, size):
    """Nearest-neighbour resize of a label map (H, W) to ``size``: each output pixel takes
    the label of the input pixel whose centre is nearest to its own (PyTorch's
    ``mode='nearest-exact'``, ``src = floor((dst + 0.5) * in / out)``), so the labels stay
    aligned with the bilinearly resized image."""
    def nearest(n_in, n_out):
        centres = interpolation.source_coordinates(n_in, n_out, align_corners=False)
        return np.minimum(np.floor(centres + 0.5).astype(np.int64), n_in - 1)
    return mask[nearest(mask.shape[0], size[0])[:, None], nearest(mask.shape[1], size[1])[None, :]]


# ----------------------------------------------------------------------------- transforms
class Compose:
    """Apply transforms in order: ``Compose([RandomResize(), RandomCrop(64), ...])``."""

    def __init__(self, transforms):
        transforms = list(transforms)
        for t in transforms:
            if not callable(t):
                raise TypeError(f"Compose: every transform must be callable, got {type(t).__name__}")
        self.transforms = transforms

    def __call__(self, image, mask):
        for t in self.transforms:
            image, mask = t(image, mask)
        return image, mask

    def __repr__(self):
        return "Compose([" + ", ".join(map(repr, self.transforms)) + "])"


class Resize:
    """Resize to a fixed ``size`` (int or (H, W)): image bilinear, mask nearest."""

    def __init__(self, size):
        self.size = _size(size, "Resize")

    def __call__(self, image, mask):
        _check_pair(image, mask, "Resize")
        return resize_bilinear(image, self.size), resize_nearest(mask, self.size)

    def __repr__(self):
        return f"Resize(size={self.size})"


class RandomResize:
    """Scale both sides by one factor drawn uniformly from ``scale_range`` (e.g. 0.5-2.0,
    the multi-scale training of PSPNet and DeepLab). Image bilinear, mask nearest."""

    def __init__(self, scale_range=(0.5, 2.0), rng=None):
        if len(scale_range) != 2 or not 0 < scale_range[0] <= scale_range[1]:
            raise ValueError(f"RandomResize: scale_range must be (low, high) with 0 < low <= high, "
                             f"got {scale_range!r}")
        self.scale_range, self.rng = tuple(scale_range), rng

    def __call__(self, image, mask):
        _check_pair(image, mask, "RandomResize")
        scale = (self.rng or current_generator()).uniform(*self.scale_range)
        size = tuple(max(1, int(round(s * scale))) for s in mask.shape)
        return resize_bilinear(image, size), resize_nearest(mask, size)

    def __repr__(self):
        return f"RandomResize(scale_range={self.scale_range})"


class RandomCrop:
    """Cut a random ``size`` window (int or (H, W)) out of image and mask.

    A side smaller than the window is first padded at the bottom/right. With
    ``padding_mode='constant'`` (default) the image gets ``0`` and the mask
    ``ignore_index`` (255), so the padding is never a label but the network sees a dark
    frame it learns nothing from; with ``'reflect'`` both are mirrored at the edge
    (``F.pad(..., mode='reflect')``'s rule), so the padding is plausible image content
    with its true labels.
    """

    def __init__(self, size, ignore_index=255, rng=None, padding_mode="constant"):
        if padding_mode not in ("constant", "reflect"):
            raise ValueError(f"RandomCrop: padding_mode must be 'constant' or 'reflect', got {padding_mode!r}")
        self.size, self.ignore_index, self.rng = _size(size, "RandomCrop"), int(ignore_index), rng
        self.padding_mode = padding_mode

    def __call__(self, image, mask):
        _check_pair(image, mask, "RandomCrop")
        (H, W), (h, w) = self.size, mask.shape
        if h < H or w < W:
            pad_h, pad_w = max(H - h, 0), max(W - w, 0)
            if self.padding_mode == "reflect":        # numpy reflects again past the far edge
                image = np.pad(image, ((0, 0), (0, pad_h), (0, pad_w)), mode="reflect")
                mask = np.pad(mask, ((0, pad_h), (0, pad_w)), mode="reflect")
            else:
                image = np.pad(image, ((0, 0), (0, pad_h), (0, pad_w)))
                mask = np.pad(mask, ((0, pad_h), (0, pad_w)), constant_values=self.ignore_index)
            h, w = mask.shape
        rng = self.rng or current_generator()
        top, left = int(rng.integers(0, h - H + 1)), int(rng.integers(0, w - W + 1))
        return (np.ascontiguousarray(image[:, top:top + H, left:left + W]),
                np.ascontiguousarray(mask[top:top + H, left:left + W]))

    def __repr__(self):
        mode = f", padding_mode={self.padding_mode!r}" if self.padding_mode != "constant" else ""
        return f"RandomCrop(size={self.size}{mode})"


class RandomHorizontalFlip:
    """Mirror image and mask left-right with probability ``p``."""

    def __init__(self, p=0.5, rng=None):
        if not 0 <= p <= 1:
            raise ValueError(f"RandomHorizontalFlip: p must be in [0, 1], got {p!r}")
        self.p, self.rng = float(p), rng

    def __call__(self, image, mask):
        _check_pair(image, mask, "RandomHorizontalFlip")
        if (self.rng or current_generator()).random() < self.p:
            return np.ascontiguousarray(image[:, :, ::-1]), np.ascontiguousarray(mask[:, ::-1])
        return image, mask

    def __repr__(self):
        return f"RandomHorizontalFlip(p={self.p})"


class PhotometricJitter:
    """Random brightness, contrast and saturation of an RGB image in [0, 1] (mask untouched).

    Each factor is drawn from ``[1 - x, 1 + x]``; in order::

        brightness:  img = b * img
        contrast:    img = mean + c * (img - mean)         mean = the image's mean grey
        saturation:  img = grey + s * (img - grey)         grey = 0.299 R + 0.587 G + 0.114 B

    and the result is clipped to [0, 1]. Put it before :class:`Normalize`.
    """

    def __init__(self, brightness=0.2, contrast=0.2, saturation=0.2, rng=None):
        for name, x in (("brightness", brightness), ("contrast", contrast), ("saturation", saturation)):
            if not 0 <= x <= 1:
                raise ValueError(f"PhotometricJitter: {name} must be in [0, 1], got {x!r}")
        self.brightness, self.contrast, self.saturation, self.rng = brightness, contrast, saturation, rng

    def __call__(self, image, mask):
        _check_pair(image, mask, "PhotometricJitter")
        if image.shape[0] != 3:
            raise ValueError(f"PhotometricJitter: needs an RGB image (3, H, W), got {image.shape}")
        rng = self.rng or current_generator()
        b, c, s = (rng.uniform(1 - x, 1 + x) for x in (self.brightness, self.contrast, self.saturation))
        weights = np.array([0.299, 0.587, 0.114], dtype=image.dtype)[:, None, None]
        image = image * image.dtype.type(b)
        grey = (image * weights).sum(axis=0, keepdims=True)
        image = grey.mean() + image.dtype.type(c) * (image - grey.mean())
        grey = (image * weights).sum(axis=0, keepdims=True)
        image = grey + image.dtype.type(s) * (image - grey)
        return np.clip(image, 0, 1), mask

    def __repr__(self):
        return (f"PhotometricJitter(brightness={self.brightness}, contrast={self.contrast}, "
                f"saturation={self.saturation})")


class Normalize:
    """``image = (image - mean) / std`` per channel (mask untouched), like torchvision's.

    Use :data:`IMAGENET_MEAN` / :data:`IMAGENET_STD` for ImageNet-pretrained backbones.
    """

    def __init__(self, mean, std):
        self.mean = np.asarray(mean, dtype=np.float64).reshape(-1, 1, 1)
        self.std = np.asarray(std, dtype=np.float64).reshape(-1, 1, 1)
        if self.mean.shape != self.std.shape or np.any(self.std <= 0):
            raise ValueError(f"Normalize: mean and std need one value per channel and std > 0, "
                             f"got mean={mean!r}, std={std!r}")

    def __call__(self, image, mask):
        _check_pair(image, mask, "Normalize")
        if image.shape[0] != self.mean.shape[0]:
            raise ValueError(f"Normalize: {self.mean.shape[0]} channel statistics for an image "
                             f"with {image.shape[0]} channels {image.shape}")
        return ((image - self.mean.astype(image.dtype)) / self.std.astype(image.dtype)), mask

    def __repr__(self):
        return f"Normalize(mean={self.mean.ravel().tolist()}, std={self.std.ravel().tolist()})"
