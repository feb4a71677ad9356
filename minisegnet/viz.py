"""Pictures: class palettes, coloured masks, overlays and training plots.

A label map is an (H, W) array of class indices; to look at it, give every class a colour
(a *palette*, (K, 3) uint8) and index the palette with the map: ``palette[mask]``. Pixels
with the ignore index (255) are drawn **white** by :func:`colorize` whatever the palette.

Every ``plot_*`` function builds a matplotlib ``Figure`` on the Agg canvas (files only, no
window, no pyplot state), saves it as PNG when ``path`` is given and returns it. matplotlib
is imported inside the functions, so ``import minisegnet`` stays fast.
"""
import colorsys
import csv
import os

import numpy as np

from . import backend
from .data.voc import VOC_CLASSES
from .tensor import Tensor

__all__ = ["voc_palette", "make_palette", "palette_for", "colorize", "overlay", "plot_predictions",
           "plot_samples", "plot_curves", "plot_confusion", "IGNORE_COLOUR"]

IGNORE_COLOUR = np.array([255, 255, 255], dtype=np.uint8)


def _host(x, name):
    """A NumPy copy of a Tensor / NumPy / CuPy array."""
    if isinstance(x, Tensor):
        return x.numpy()
    if hasattr(x, "shape") and hasattr(x, "dtype"):
        return backend.to_numpy(x)
    if isinstance(x, (list, tuple)):
        return np.asarray(x)
    raise TypeError(f"{name} must be an array or a Tensor, got {type(x).__name__}")


# ----------------------------------------------------------------------------- palettes
def voc_palette(num_colors=256):
    """The Pascal VOC colour map, (num_colors, 3) uint8.

    Colour ``k`` spreads the bits of ``k`` over the channels, most significant first:
    bit 0 of ``k`` -> bit 7 of red, bit 1 -> bit 7 of green, bit 2 -> bit 7 of blue,
    bit 3 -> bit 6 of red, and so on. So 1 = (128, 0, 0) aeroplane, 2 = (0, 128, 0) bicycle,
    15 = (192, 128, 128) person, 255 = (224, 224, 192) the border colour of VOC's PNGs.
    """
    k = np.arange(num_colors)
    palette = np.zeros((num_colors, 3), dtype=np.int64)
    for bit in range(8):
        for channel in range(3):
            palette[:, channel] |= ((k >> (3 * bit + channel)) & 1) << (7 - bit)
    return palette.astype(np.uint8)


def make_palette(num_classes):
    """``num_classes`` distinct colours, (num_classes, 3) uint8, the same on every call.

    Class 0 (usually background) is black; the others walk around the hue circle in
    golden-ratio steps (neighbouring classes get far-apart hues) and cycle through three
    brightness/saturation levels so that many classes stay distinguishable.
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    colours = [(0.0, 0.0, 0.0)]
    for k in range(1, num_classes):
        hue = (0.6 + 0.618033988749895 * (k - 1)) % 1.0
        saturation, value = ((0.85, 0.95), (0.55, 1.0), (0.9, 0.65))[(k - 1) % 3]
        colours.append(colorsys.hsv_to_rgb(hue, saturation, value))
    return np.round(np.array(colours) * 255).astype(np.uint8)


def palette_for(dataset_or_num_classes):
    """The palette to draw a dataset with: its own ``.palette``, the VOC colours for the VOC
    classes, else :func:`make_palette` of its class count (an int works too)."""
    if isinstance(dataset_or_num_classes, (int, np.integer)):
        return make_palette(int(dataset_or_num_classes))
    ds = dataset_or_num_classes
    if getattr(ds, "palette", None) is not None:
        return np.asarray(ds.palette, dtype=np.uint8)
    if tuple(getattr(ds, "classes", ())) == VOC_CLASSES:
        return voc_palette(len(VOC_CLASSES))
    return make_palette(ds.num_classes)


def colorize(mask, palette=None, ignore_index=255):
    """Colour a label map: (..., H, W) integers -> (..., H, W, 3) uint8 ``palette[mask]``.

    ``palette`` defaults to :func:`voc_palette`; ``ignore_index`` pixels are white
    (:data:`IGNORE_COLOUR`). A label without a palette entry is an error.
    """
    mask = _host(mask, "mask")
    if mask.dtype.kind not in "iub":
        raise TypeError(f"colorize: mask must hold integer labels, got dtype {mask.dtype}")
    palette = voc_palette() if palette is None else np.asarray(palette)
    if palette.ndim != 2 or palette.shape[1] != 3:
        raise ValueError(f"colorize: palette must be (K, 3), got {palette.shape}")
    palette = palette.astype(np.uint8)
    ignored = mask == ignore_index
    bad = np.unique(mask[((mask < 0) | (mask >= len(palette))) & ~ignored])
    if bad.size:
        raise ValueError(f"colorize: labels {bad.tolist()[:10]} have no colour in a palette of "
                         f"{len(palette)} entries")
    out = palette[np.where(ignored, 0, mask)]
    out[ignored] = IGNORE_COLOUR
    return out


def _display_image(image, mean=None, std=None):
    """(3, H, W) float / (H, W, 3) uint8 image -> (H, W, 3) float in [0, 1] for showing.

    ``mean``/``std`` undo a :class:`~minisegnet.data.Normalize`; values still outside
    [0, 1] (normalised with unknown statistics) are rescaled by the image's min and max.
    """
    image = _host(image, "image")
    if image.ndim != 3 or 3 not in (image.shape[0], image.shape[-1]):
        raise ValueError(f"image must be (3, H, W) or (H, W, 3), got {image.shape}")
    if image.shape[0] == 3:           # channels first, the library's layout
        image = image.transpose(1, 2, 0)
    if image.dtype == np.uint8:
        return image.astype(np.float64) / 255
    image = image.astype(np.float64)
    if mean is not None:
        image = image * np.asarray(std, dtype=np.float64) + np.asarray(mean, dtype=np.float64)
    if image.min() < -1e-3 or image.max() > 1 + 1e-3:
        image = (image - image.min()) / max(np.ptp(image), 1e-12)
    return np.clip(image, 0, 1)


def overlay(image, mask, alpha=0.5, palette=None, mean=None, std=None):
    """Blend the coloured mask over the image: (H, W, 3) uint8.

    ``out = (1 - alpha) image + alpha palette[mask]`` on labelled pixels; background (0)
    and ignored (255) pixels show the plain image. ``image`` is (3, H, W) float (``mean``,
    ``std`` undo a normalisation) or (H, W, 3) uint8; ``mask`` is (H, W).
    """
    if not 0 <= alpha <= 1:
        raise ValueError(f"overlay: alpha must be in [0, 1], got {alpha!r}")
    picture = _display_image(image, mean, std)
    mask = _host(mask, "mask")
    if mask.shape != picture.shape[:2]:
        raise ValueError(f"overlay: mask {mask.shape} does not match image {picture.shape[:2]}")
    colours = colorize(mask, palette).astype(np.float64) / 255
    labelled = ((mask != 0) & (mask != 255))[..., None]
    blended = np.where(labelled, (1 - alpha) * picture + alpha * colours, picture)
    return np.round(blended * 255).astype(np.uint8)


# ----------------------------------------------------------------------------- figures
def _figure(width, height, dpi=100):
    """A Figure on the Agg canvas (no pyplot, no display)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path):
    if path is not None:
        path = os.fspath(path)
        if os.path.dirname(path):
            os.makedirs(os.path.dirname(path), exist_ok=True)
        from .fileio import atomic_write          # a failed write keeps the old picture
        with atomic_write(path, "wb") as f:
            fig.savefig(f, format="png")
    return fig


def _legend(fig, class_names, palette, labels):
    from matplotlib.patches import Patch
    handles = [Patch(facecolor=palette[k] / 255, edgecolor="0.3", label=class_names[k])
               for k in labels if k < len(class_names)]
    if handles:
        fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 6),
                   frameon=False, fontsize=8)


def plot_predictions(images, targets, preds=None, class_names=None, path=None, palette=None,
                     mean=None, std=None, max_images=8, title=None):
    """A grid of image / ground truth / prediction for a few samples, with a class legend.

    Args:
        images: (N, 3, H, W) (Tensor or array; ``mean``/``std`` undo a normalisation).
        targets: (N, H, W) labels. preds: (N, H, W) labels, (N, C, H, W) logits (argmax
            taken) or None to show only images and ground truth.
        class_names: names for the legend (default ``'0', '1', ...``).
        palette: (K, 3) uint8; by default :func:`voc_palette` for 21 classes, else
            :func:`make_palette`.
        max_images: show at most this many samples.

    Square-ish images get one row per sample; tall strips (H >= 2 W) one column per panel.
    Returns the Figure (saved as PNG at ``path`` if given).
    """
    images, targets = _host(images, "images"), _host(targets, "targets")
    if images.ndim != 4 or targets.ndim != 3 or images.shape[0] != targets.shape[0] \
            or images.shape[2:] != targets.shape[1:]:
        raise ValueError(f"plot_predictions: need images (N, 3, H, W) and targets (N, H, W) of the "
                         f"same N, H, W, got {images.shape} and {targets.shape}")
    panels = [("image", images), ("ground truth", targets)]
    if preds is not None:
        preds = _host(preds, "preds")
        if preds.ndim == 4:
            preds = preds.argmax(axis=1)
        if preds.shape != targets.shape:
            raise ValueError(f"plot_predictions: preds {preds.shape} must match targets {targets.shape}")
        panels.append(("prediction", preds))
    n = min(len(images), max_images)
    labels = np.unique(np.concatenate([p[:n].ravel() for name, p in panels[1:]]))
    labels = labels[labels != 255]
    if class_names is None:
        class_names = [str(k) for k in range(int(labels.max(initial=0)) + 1)]
    if palette is None:
        palette = voc_palette(21) if len(class_names) == 21 else make_palette(len(class_names))
    palette = np.asarray(palette, dtype=np.uint8)

    H, W = targets.shape[1:]
    tall = H >= 2 * W
    if tall:          # strips side by side, one column per panel
        rows, cols, panel_w = 1, n * len(panels), 0.7
        panel_h = min(panel_w * H / W, 6.0)
    else:             # one row per sample
        rows, cols = n, len(panels)
        panel_w, panel_h = 2.2 * W / max(H, W), 2.2 * H / max(H, W)
    top, bottom = 0.45 + (0.3 if title else 0), 0.5
    fig = _figure(cols * panel_w + 0.4, rows * (panel_h + 0.3) + top + bottom)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    short = {"image": "img", "ground truth": "gt", "prediction": "pred"}
    for i in range(n):
        for j, (name, data) in enumerate(panels):
            ax = axes[i * len(panels) + j]
            picture = _display_image(data[i], mean, std) if j == 0 else colorize(data[i], palette)
            ax.imshow(picture, interpolation="nearest")
            ax.set_xticks([]), ax.set_yticks([])
            if tall:
                ax.set_title(f"{short[name]} {i}", fontsize=7)
            elif i == 0:
                ax.set_title(name, fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    _legend(fig, class_names, palette, [int(k) for k in labels])
    height = fig.get_figheight()
    fig.subplots_adjust(left=0.02, right=0.98, top=1 - top / height, bottom=bottom / height,
                        wspace=0.08, hspace=0.3)
    return _save(fig, path)


def plot_samples(dataset, indices=range(6), path=None, title=None):
    """Show a few items of a dataset (image and mask) with its palette and class names."""
    items = [dataset[int(i)] for i in indices]
    images = np.stack([image for image, _ in items])
    masks = np.stack([mask for _, mask in items])
    return plot_predictions(images, masks, None, list(dataset.classes), path,
                            palette=palette_for(dataset), max_images=len(items),
                            title=title or type(dataset).__name__)


def _read_history(history):
    """A dict ``{column: float array}`` from a dict of lists or a CSV file with a header."""
    if isinstance(history, (str, os.PathLike)):
        path = os.fspath(history)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"plot_curves: history file not found: {path}")
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
        columns = {key: [row.get(key) for row in rows] for key in (rows[0] if rows else {})}
    elif isinstance(history, dict):
        columns = history
    else:
        raise TypeError(f"plot_curves: history must be a dict of lists or a CSV path, "
                        f"got {type(history).__name__}")

    def number(value):
        try:
            return float(value)
        except (TypeError, ValueError):
            return float("nan")

    return {key: np.array([number(v) for v in values], dtype=np.float64)
            for key, values in columns.items() if np.ndim(values) == 1}


def plot_curves(history, path=None):
    """Training curves: losses, learning rate and metrics, one panel each.

    ``history`` is a dict of equal-or-shorter lists (``{'epoch': [...], 'train_loss': [...],
    'lr': [...], 'val_mIoU': [...]}``) or the path of a CSV file with those columns. The x
    axis is the first of ``epoch``, ``step``, ``iter``, ``iteration`` present (else the
    row number). Columns are grouped by name: ``*loss*``, ``lr`` / ``*_lr`` /
    ``learning_rate``, and ``*iou*`` / ``*acc*`` / ``*dice*`` (any case); missing values
    (NaN, empty CSV cells, e.g. validation every few epochs) are skipped.
    """
    columns = _read_history(history)
    x_key = next((k for k in ("epoch", "step", "iter", "iteration") if k in columns), None)
    groups = {"loss": [], "learning rate": [], "metrics": []}
    for key in columns:
        low = key.lower()
        if key == x_key:
            continue
        if "loss" in low:
            groups["loss"].append(key)
        elif low in ("lr", "learning_rate") or low.endswith("_lr"):
            groups["learning rate"].append(key)
        elif any(word in low for word in ("iou", "acc", "dice")):
            groups["metrics"].append(key)
    groups = {name: keys for name, keys in groups.items() if keys}
    if not groups:
        raise ValueError(f"plot_curves: no loss, lr or metric columns among {sorted(columns)}")
    fig = _figure(4.2 * len(groups), 3.4)
    axes = fig.subplots(1, len(groups), squeeze=False).ravel()
    for ax, (name, keys) in zip(axes, groups.items()):
        for key in keys:
            y = columns[key]
            x = columns[x_key] if x_key and len(columns[x_key]) == len(y) else np.arange(len(y))
            ok = ~np.isnan(y) & ~np.isnan(x)
            sparse = ok.sum() < 0.5 * len(y) or ok.sum() <= 20
            ax.plot(x[ok], y[ok], marker="o" if sparse else None, markersize=3, label=key)
        ax.set_title(name), ax.set_xlabel(x_key or "row"), ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def plot_confusion(matrix, class_names=None, path=None, normalize=True):
    """The confusion matrix as a heat map: rows = target class, columns = prediction.

    Args:
        matrix: a (K, K) array of counts or a :class:`~minisegnet.metrics.ConfusionMatrix`.
        class_names: tick labels (default ``'0' ... 'K-1'``).
        normalize: colour by the fraction of each *row* (how the pixels of a true class
            were labelled: the diagonal is the per-class accuracy); otherwise by counts.

    Non-empty cells show the count and the row percentage (for up to 30 classes).
    """
    matrix = _host(getattr(matrix, "matrix", matrix), "matrix")
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"plot_confusion: matrix must be square (K, K), got {matrix.shape}")
    K = matrix.shape[0]
    class_names = [str(k) for k in range(K)] if class_names is None else [str(c) for c in class_names]
    if len(class_names) != K:
        raise ValueError(f"plot_confusion: {len(class_names)} class names for a {K}x{K} matrix")
    rows = matrix.sum(axis=1, keepdims=True).astype(np.float64)
    fraction = np.divide(matrix, rows, out=np.zeros(matrix.shape), where=rows > 0)
    shown = fraction if normalize else matrix

    side = min(2.5 + 0.55 * K, 16)
    fig = _figure(side + 1.5, side)
    ax = fig.subplots()
    im = ax.imshow(shown, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04,
                 label="fraction of the target row" if normalize else "pixels")
    ax.set_xticks(range(K), class_names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(K), class_names, fontsize=8)
    ax.set_xlabel("prediction"), ax.set_ylabel("target")
    if K <= 30:
        dark = shown > 0.6 * (shown.max() if shown.max() > 0 else 1)
        for t, p in zip(*np.nonzero(matrix)):
            ax.text(p, t, f"{int(matrix[t, p])}\n{100 * fraction[t, p]:.1f}%", ha="center",
                    va="center", fontsize=max(5, 9 - K // 5), color="white" if dark[t, p] else "black")
    ax.set_title("confusion matrix (row-normalised)" if normalize else "confusion matrix")
    fig.tight_layout()
    return _save(fig, path)
