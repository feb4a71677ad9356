"""Segment image files with a trained model: label maps, coloured masks and overlays.

For every input image ``scene.jpg``, :func:`predict_files` writes three PNGs into the
output folder:

* ``scene_labels.png`` – the predicted class of every pixel (grey values 0, 1, 2, ...);
* ``scene_mask.png``   – the same in the dataset's colours;
* ``scene_overlay.png`` – the colours blended over the photo (``alpha`` = their opacity).

Two inputs with the same stem (``a/scene.png`` and ``b/scene.jpg``) get distinct names
(:func:`output_stems`), so no output overwrites another. An image that cannot be read is
reported and skipped while the others are processed. Every file is written atomically
(:func:`minisegnet.fileio.atomic_write`).
"""
import os
from collections import Counter

import numpy as np

from .fileio import atomic_write

__all__ = ["DEFAULT_ALPHA", "OUTPUT_KINDS", "read_image", "predict_image", "output_stems", "save_png",
           "predict_files"]

#: Opacity of the colours in ``*_overlay.png``: 0 shows the photo, 1 only the mask.
DEFAULT_ALPHA = 0.5
OUTPUT_KINDS = ("labels", "mask", "overlay")


def read_image(path):
    """An image file as float32 (3, H, W) in [0, 1] (RGB; alpha and palettes converted).

    A file that is not an image, or cannot be opened, raises ValueError naming it and why.
    """
    from PIL import Image, UnidentifiedImageError
    try:
        with Image.open(path) as im:
            rgb = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
    except UnidentifiedImageError:
        raise ValueError(f"cannot read image {path}: not an image file Pillow knows") from None
    except OSError as e:
        reason = e.strerror or str(e)
        raise ValueError(f"cannot read image {path}: {reason}") from None
    return np.ascontiguousarray(rgb.transpose(2, 0, 1))


def predict_image(model, image, size=None, device="cpu"):
    """Labels (H, W) for one image (3, H, W) in [0, 1].

    The model runs at ``size`` (H', W') if given (the image is resized bilinearly), and its
    class scores are resized back to (H, W) *before* the argmax, so the labels' borders are
    as smooth as the scores'. The model is put in ``eval()`` mode.
    """
    from . import functional as F
    from .data.transforms import resize_bilinear
    from .tensor import no_grad, tensor
    H, W = image.shape[1:]
    x = image if size is None or tuple(size) == (H, W) else resize_bilinear(image, tuple(size))
    model.eval()
    with no_grad():
        logits = model(tensor(x[None], device=device))
        if tuple(logits.shape[2:]) != (H, W):
            logits = F.interpolate(logits, size=(H, W), mode="bilinear", align_corners=False)
        return np.asarray(F.argmax(logits, dim=1).numpy()[0])


def output_stems(paths):
    """One distinct output stem per input path, in order.

    A stem used once stays as it is (``scene.png`` -> ``scene``); stems that collide get their
    extension (``scene.png`` -> ``scene_png``, ``scene.jpg`` -> ``scene_jpg``), and any that
    still collide (the same name in two folders) a counter (``scene_png_2``).
    """
    bases = [os.path.splitext(os.path.basename(os.fspath(p))) for p in paths]
    counts = Counter(stem for stem, _ in bases)
    stems = [stem if counts[stem] == 1 else f"{stem}_{ext.lstrip('.') or 'noext'}" for stem, ext in bases]
    unique = []
    for stem in stems:
        candidate, k = stem, 2
        while candidate in unique:
            candidate, k = f"{stem}_{k}", k + 1
        unique.append(candidate)
    return unique


def save_png(array, path):
    """Write a uint8 (H, W) or (H, W, 3) array as a PNG, atomically."""
    from PIL import Image
    with atomic_write(path, "wb") as f:
        Image.fromarray(np.asarray(array, dtype=np.uint8)).save(f, format="PNG")
    return path


def predict_files(model, config, paths, out, alpha=DEFAULT_ALPHA, native=False, device="cpu", log=print,
                  warn=None):
    """Segment each image of ``paths`` into ``out`` (created if needed); see the module text.

    Args:
        model: a trained segmentor (e.g. from :func:`minisegnet.train.load_checkpoint`).
        config: its training config (``image_size``, ``num_classes``, ``class_names``, ``palette``).
        native: run at each image's own size instead of the training size.
        log: called with one line per image: the files written and the classes found.
        warn: called with one line per skipped image (default: ``log``).

    Returns ``(written, skipped)``: the paths of every file written, and ``(path, reason)`` for
    each image that was skipped. An OSError while writing (full disk, permission, ...) is
    raised at once, naming the file; the files already written stay listed by ``log``.
    """
    from . import viz
    warn = warn or log
    palette = config.get("palette")
    palette = np.asarray(viz.make_palette(config["num_classes"]) if palette is None else palette, dtype=np.uint8)
    names = list(config.get("class_names") or [str(k) for k in range(config["num_classes"])])
    smallest = int(getattr(model, "min_input_size", 1))
    os.makedirs(out, exist_ok=True)
    written, skipped = [], []
    for path, stem in zip(paths, output_stems(paths)):
        try:
            image = read_image(path)
            if native and min(image.shape[1:]) < smallest:
                raise ValueError(f"image {path} is {image.shape[1]}x{image.shape[2]}, smaller than the "
                                 f"{smallest}x{smallest} this model needs (leave out --native)")
        except ValueError as e:
            skipped.append((os.fspath(path), str(e)))
            warn(f"skipped {e}")
            continue
        labels = predict_image(model, image, None if native else tuple(config["image_size"]), device)
        pictures = {"labels": labels.astype(np.uint8), "mask": viz.colorize(labels, palette),
                    "overlay": viz.overlay(image, labels, alpha=alpha, palette=palette)}
        files = []
        for kind in OUTPUT_KINDS:
            files.append(save_png(pictures[kind], os.path.join(out, f"{stem}_{kind}.png")))
            written.append(files[-1])
        present = ", ".join(f"{names[k]} {100 * np.mean(labels == k):.0f}%"
                            for k in np.unique(labels) if k < len(names))
        log(f"{path}: {', '.join(files)} ({present})")
    return written, skipped
