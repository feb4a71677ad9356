"""Palettes, colorize / overlay and the PNG figures."""
import numpy as np
import pytest

import minisegnet as ms
from minisegnet import viz
from minisegnet.data import ContextStrips, Shapes
from minisegnet.metrics import ConfusionMatrix


def _png_size(path):
    from PIL import Image
    assert path.stat().st_size > 1000
    with Image.open(path) as img:
        assert img.format == "PNG"
        return img.size


def _expected_size(fig):
    w, h = fig.get_size_inches() * fig.dpi
    return int(round(w)), int(round(h))


def test_voc_palette_known_colours():
    p = viz.voc_palette()
    assert p.shape == (256, 3) and p.dtype == np.uint8
    known = {0: (0, 0, 0), 1: (128, 0, 0), 2: (0, 128, 0), 3: (128, 128, 0), 4: (0, 0, 128),
             8: (64, 0, 0), 15: (192, 128, 128), 20: (0, 64, 128), 255: (224, 224, 192)}
    for k, colour in known.items():
        assert tuple(p[k]) == colour
    assert len({tuple(c) for c in p}) == 256


def test_make_palette_distinct_and_deterministic():
    p = viz.make_palette(40)
    assert p.shape == (40, 3) and p.dtype == np.uint8 and tuple(p[0]) == (0, 0, 0)
    assert len({tuple(c) for c in p}) == 40
    np.testing.assert_array_equal(p, viz.make_palette(40))
    np.testing.assert_array_equal(viz.make_palette(5), p[:5])
    with pytest.raises(ValueError, match="num_classes must be a positive int, got 0"):
        viz.make_palette(0)


def test_palette_for_prefers_the_dataset_palette():
    np.testing.assert_array_equal(viz.palette_for(Shapes(2)), Shapes.palette)
    np.testing.assert_array_equal(viz.palette_for(7), viz.make_palette(7))

    class VOCLike:
        classes = ms.data.VOC_CLASSES
        num_classes = 21
    np.testing.assert_array_equal(viz.palette_for(VOCLike()), viz.voc_palette()[:21])


def test_colorize_maps_class_k_to_palette_k_and_ignore_to_white():
    palette = viz.make_palette(4)
    mask = np.array([[0, 1, 2], [3, 255, 1]])
    out = viz.colorize(ms.tensor(mask), palette)
    assert out.shape == (2, 3, 3) and out.dtype == np.uint8
    for (i, j), k in np.ndenumerate(mask):
        expected = (255, 255, 255) if k == 255 else tuple(palette[k])
        assert tuple(out[i, j]) == expected
    assert tuple(viz.colorize(np.array([[15]]))[0, 0]) == (192, 128, 128)    # VOC by default
    with pytest.raises(ValueError, match=r"labels \[4, 9\] have no colour in a palette of 4 entries"):
        viz.colorize(np.array([4, 9, 1]), palette)
    with pytest.raises(TypeError, match="integer labels"):
        viz.colorize(np.zeros((2, 2)))


def test_overlay_blends_labelled_pixels_only():
    image = np.full((3, 2, 2), 0.5, np.float32)
    mask = np.array([[0, 1], [255, 2]])
    palette = np.array([[0, 0, 0], [255, 0, 0], [0, 0, 255]], np.uint8)
    out = viz.overlay(image, mask, alpha=0.5, palette=palette)
    assert out.shape == (2, 2, 3) and out.dtype == np.uint8
    assert tuple(out[0, 0]) == (128, 128, 128) and tuple(out[1, 0]) == (128, 128, 128)
    assert tuple(out[0, 1]) == (191, 64, 64) and tuple(out[1, 1]) == (64, 64, 191)
    assert tuple(viz.overlay(image, mask, alpha=1.0, palette=palette)[0, 1]) == (255, 0, 0)
    with pytest.raises(ValueError, match=r"mask \(3, 3\) does not match image \(2, 2\)"):
        viz.overlay(image, np.zeros((3, 3), int))


def test_plot_predictions_writes_png_of_the_figure_size(tmp_path):
    ds = Shapes(4, image_size=32)
    images = np.stack([ds[i][0] for i in range(4)])
    masks = np.stack([ds[i][1] for i in range(4)])
    logits = np.moveaxis(np.eye(4)[masks], -1, 1)             # (N, C, H, W): a perfect model
    path = tmp_path / "sub" / "pred.png"
    fig = viz.plot_predictions(ms.tensor(images), ms.tensor(masks), ms.tensor(logits),
                               list(ds.classes), path, palette=ds.palette, max_images=3)
    assert _png_size(path) == _expected_size(fig)
    assert len([ax for ax in fig.axes if ax.images]) == 3 * 3
    with pytest.raises(ValueError, match=r"preds \(4, 16, 16\) must match targets \(4, 32, 32\)"):
        viz.plot_predictions(images, masks, np.zeros((4, 16, 16), int), list(ds.classes))
    with pytest.raises(ValueError, match=r"need images \(N, 3, H, W\) and targets \(N, H, W\)"):
        viz.plot_predictions(images[0], masks, None)


def test_plot_samples_tall_strips(tmp_path):
    fig = viz.plot_samples(ContextStrips(3), range(3), tmp_path / "strips.png")
    assert _png_size(tmp_path / "strips.png") == _expected_size(fig)
    assert len([ax for ax in fig.axes if ax.images]) == 3 * 2
    assert fig.get_figheight() > fig.get_figwidth() / 3            # one tall row of panels


def test_plot_curves_from_dict_and_csv(tmp_path):
    history = {"epoch": [1, 2, 3, 4], "train_loss": [1.0, 0.6, 0.4, 0.3], "val_loss": [1.1, 0.7, 0.5, 0.45],
               "lr": [0.01, 0.0075, 0.005, 0.0025], "val_mIoU": [float("nan"), 0.5, float("nan"), 0.7],
               "seconds": [1, 2, 3, 4]}
    fig = viz.plot_curves(history, tmp_path / "curves.png")
    assert _png_size(tmp_path / "curves.png") == _expected_size(fig)
    assert [ax.get_title() for ax in fig.axes] == ["loss", "learning rate", "metrics"]
    x, y = fig.axes[2].lines[0].get_data()
    np.testing.assert_array_equal(x, [2, 4])            # the missing validations are skipped
    np.testing.assert_array_equal(y, [0.5, 0.7])

    csv = tmp_path / "history.csv"
    csv.write_text("step,loss,val_mIoU\n1,0.9,\n2,0.7,0.4\n3,0.6,\n")
    fig = viz.plot_curves(csv)
    assert [ax.get_title() for ax in fig.axes] == ["loss", "metrics"]
    np.testing.assert_array_equal(fig.axes[1].lines[0].get_data()[0], [2])
    with pytest.raises(ValueError, match=r"no loss, lr or metric columns among \['epoch', 'time'\]"):
        viz.plot_curves({"epoch": [1], "time": [3]})
    with pytest.raises(FileNotFoundError, match="history file not found: .*missing.csv"):
        viz.plot_curves(tmp_path / "missing.csv")


def test_plot_confusion(tmp_path):
    cm = ConfusionMatrix(3)
    cm.update(np.array([0, 0, 1, 1, 2, 1]), np.array([0, 0, 1, 2, 2, 2]))
    fig = viz.plot_confusion(cm, ["bg", "a", "b"], tmp_path / "cm.png")
    assert _png_size(tmp_path / "cm.png") == _expected_size(fig)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert "2\n100.0%" in texts and "2\n66.7%" in texts and "1\n33.3%" in texts
    assert fig.axes[0].images[0].get_array()[2, 1] == pytest.approx(2 / 3)   # row-normalised
    with pytest.raises(ValueError, match=r"matrix must be square \(K, K\), got \(2, 3\)"):
        viz.plot_confusion(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="2 class names for a 3x3 matrix"):
        viz.plot_confusion(cm, ["a", "b"])
