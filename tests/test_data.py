"""Datasets (generated and from folders), paired transforms and the DataLoader."""
import threading

import numpy as np
import pytest

import minisegnet as ms
from minisegnet.data import (PET_CLASSES, PET_TRIMAP_MAPPING, VOC_CLASSES, Compose, ContextStrips,
                             DataLoader, Normalize, PhotometricJitter, RandomCrop,
                             RandomHorizontalFlip, RandomResize, Resize, SegmentationFolder,
                             Shapes, VOCSegmentation, collate, get_dataset, list_datasets)
from minisegnet.data.transforms import resize_bilinear, resize_nearest, use_generator

from conftest import requires_torch

try:
    import torch
except ImportError:
    torch = None


# ----------------------------------------------------------------------------- Shapes
def test_shapes_items_have_the_dataset_contract():
    ds = Shapes(length=5, image_size=(40, 56))
    assert len(ds) == 5 and ds.num_classes == 4 and ds.ignore_index == 255
    assert ds.classes == ("background", "circle", "square", "triangle")
    assert ds.palette.shape == (4, 3) and ds.palette.dtype == np.uint8
    image, mask = ds[0]
    assert image.shape == (3, 40, 56) and image.dtype == np.float32
    assert mask.shape == (40, 56) and mask.dtype == np.int64
    assert 0 <= image.min() and image.max() <= 1
    assert np.array_equal(ds[-1][1], ds[4][1])


def test_shapes_deterministic_per_index_and_seed_in_any_order():
    a = Shapes(length=10, seed=7)
    first = [a[i] for i in (3, 8)]
    b = Shapes(length=10, seed=7)
    for i in (9, 8, 0, 3):          # another order, other items in between
        b[i]
    for (im1, m1), i in zip(first, (3, 8)):
        im2, m2 = b[i]
        np.testing.assert_array_equal(im1, im2)
        np.testing.assert_array_equal(m1, m2)
    assert not np.array_equal(Shapes(10, seed=8)[3][0], first[0][0])
    assert not np.array_equal(Shapes(10, seed=7, split="val")[3][0], first[0][0])


def test_shapes_labels_cover_all_classes_and_colour_does_not_tell_the_class():
    ds = Shapes(length=60, seed=1)
    counts = np.zeros(4)
    mean_colour = {k: [] for k in (1, 2, 3)}
    for i in range(len(ds)):
        image, mask = ds[i]
        assert set(np.unique(mask)) <= {0, 1, 2, 3}
        counts += np.bincount(mask.ravel(), minlength=4)
        for k in mean_colour:
            if (mask == k).any():
                mean_colour[k].append(image[:, mask == k].mean(axis=1))
    fractions = counts / counts.sum()
    assert fractions[0] < 0.85 and np.all(fractions[1:] > 0.04)
    means = np.array([np.mean(mean_colour[k], axis=0) for k in (1, 2, 3)])
    assert np.abs(means - means.mean(axis=0)).max() < 0.1


def test_shapes_argument_errors():
    with pytest.raises(ValueError, match="length must be a positive int, got 0"):
        Shapes(length=0)
    with pytest.raises(ValueError, match=r"split must be one of \['test', 'train', 'val'\], got 'dev'"):
        Shapes(split="dev")
    with pytest.raises(ValueError, match=r"image_size must be an int or an \(H, W\) pair.*\(4, 64\)"):
        Shapes(image_size=(4, 64))
    with pytest.raises(ValueError, match="min_shapes <= max_shapes"):
        Shapes(min_shapes=3, max_shapes=2)
    with pytest.raises(IndexError, match="index 5 is out of range for a dataset of length 5"):
        Shapes(length=5)[5]
    with pytest.raises(TypeError, match="dataset indices must be ints, got float"):
        Shapes(length=5)[1.0]


# ----------------------------------------------------------------------------- ContextStrips
def test_context_layout_band_decides_the_object_class():
    ds = ContextStrips(length=30, seed=2)
    H, W = ds.image_size
    assert (H, W) == (256, 32) and ds.classes == ("background", "water", "road", "boat", "car")
    scenes = set()
    for i in range(len(ds)):
        image, mask = ds[i]
        assert image.shape == (3, H, W) and mask.dtype == np.int64
        band = mask[224:]
        scene = int(band[0, 0])
        assert np.all(band == scene) and scene in (1, 2)
        scenes.add(scene)
        objects = np.isin(mask, (3, 4))
        assert objects.any() and not objects[int(0.3 * H):].any()
        assert np.all(mask[objects] == (3 if scene == 1 else 4))
        assert np.all(mask[int(0.3 * H):224] == 0)
        # the cue lies farther than half a 263-pixel receptive field from every object
        assert 224 - np.nonzero(objects.any(axis=1))[0].max() > 263 / 2
    assert scenes == {1, 2}


def test_context_blobs_look_alike_unless_control():
    def masks(control):
        ds = ContextStrips(length=40, seed=0, control=control, max_objects=1)
        return [ds[i][1] for i in range(len(ds))]

    def fill_ratio(masks, label):
        """Object pixels / bounding-box pixels: about pi/4 for ellipses, 1/2 for hulls,
        1 for rectangles."""
        ratios = []
        for m in masks:
            rows, cols = np.nonzero(m == label)
            if rows.size:
                ratios.append(rows.size / (np.ptp(rows) + 1) / (np.ptp(cols) + 1))
        return np.mean(ratios)

    plain, control = masks(False), masks(True)
    assert abs(fill_ratio(plain, 3) - fill_ratio(plain, 4)) < 0.05
    assert fill_ratio(control, 4) - fill_ratio(control, 3) > 0.3
    # the same scenes otherwise: the bands agree item by item
    assert all(np.array_equal(p[224:], c[224:]) for p, c in zip(plain, control))


def test_context_deterministic_and_seed_dependent():
    a, b = ContextStrips(5, seed=1)[2], ContextStrips(5, seed=1)[2]
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(ContextStrips(5, seed=2)[2][0], a[0])
    with pytest.raises(ValueError, match="max_objects must be a positive int, got 0"):
        ContextStrips(max_objects=0)


# ----------------------------------------------------------------------------- folders
VOC_COLOURS = [0, 0, 0, 128, 0, 0, 0, 128, 0] + [64] * (3 * 253)  # any palette: values are indices


def _palette_png(path, labels):
    from PIL import Image
    img = Image.fromarray(np.asarray(labels, dtype=np.uint8), mode="P")
    img.putpalette(VOC_COLOURS)
    img.save(path)


@pytest.fixture
def voc_root(tmp_path):
    from PIL import Image
    root = tmp_path / "VOC2012"
    for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (root / sub).mkdir(parents=True)
    rng = np.random.default_rng(0)
    masks = {}
    for name in ("a", "b", "c"):
        Image.fromarray(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)).save(root / "JPEGImages" / f"{name}.jpg")
        mask = rng.choice([0, 1, 15, 20, 255], size=(12, 16))
        _palette_png(root / "SegmentationClass" / f"{name}.png", mask)
        masks[name] = mask
    (root / "ImageSets/Segmentation/train.txt").write_text("a\nb\n")
    (root / "ImageSets/Segmentation/val.txt").write_text("c\n")
    return root, masks


def test_voc_reads_palette_pngs_as_class_indices(voc_root):
    root, masks = voc_root
    ds = VOCSegmentation(root, split="train")
    assert len(ds) == 2 and ds.num_classes == 21 and ds.classes == VOC_CLASSES
    assert ds.ignore_index == 255 and ds.classes[15] == "person"
    image, mask = ds[1]
    assert image.shape == (3, 12, 16) and image.dtype == np.float32 and 0 <= image.min() <= image.max() <= 1
    assert mask.dtype == np.int64
    np.testing.assert_array_equal(mask, masks["b"])          # indices, not RGB colours
    np.testing.assert_array_equal(VOCSegmentation(root, split="val")[0][1], masks["c"])


def test_voc_nested_root_and_errors(voc_root, tmp_path):
    root, masks = voc_root
    nested = tmp_path / "data" / "VOCdevkit"
    nested.mkdir(parents=True)
    root.rename(nested / "VOC2012")
    assert len(VOCSegmentation(tmp_path / "data", "val")) == 1
    root = nested / "VOC2012"
    with pytest.raises(FileNotFoundError, match="folder not found: .*nowhere"):
        VOCSegmentation(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match=r"file not found: .*Segmentation.test\.txt"):
        VOCSegmentation(root, split="test")
    bad = masks["a"].copy()
    bad[0, :2] = [30, 22]
    _palette_png(root / "SegmentationClass" / "a.png", bad)
    with pytest.raises(ValueError, match=r"mask .*a\.png has label values \[22, 30\] outside the 21 classes"):
        VOCSegmentation(root)[0]
    from PIL import Image
    Image.new("RGB", (16, 12)).save(root / "SegmentationClass" / "b.png")
    with pytest.raises(ValueError, match=r"mask .*b\.png has mode 'RGB'"):
        VOCSegmentation(root)[1]
    (root / "JPEGImages" / "a.jpg").unlink()
    with pytest.raises(FileNotFoundError, match=r"file not found: .*a\.jpg"):
        VOCSegmentation(root)


def test_segmentation_folder_with_pet_trimap_mapping(tmp_path):
    from PIL import Image
    images, trimaps = tmp_path / "images", tmp_path / "trimaps"
    images.mkdir(), trimaps.mkdir()
    trimap = np.array([[1, 2, 3], [3, 2, 1]], dtype=np.uint8)
    Image.fromarray(np.zeros((2, 3, 3), np.uint8)).save(images / "cat_1.jpg")
    Image.fromarray(trimap, mode="L").save(trimaps / "cat_1.png")
    ds = SegmentationFolder(images, trimaps, classes=PET_CLASSES, mask_mapping=PET_TRIMAP_MAPPING)
    assert ds.num_classes == 2 and ds.ignore_index == 255
    np.testing.assert_array_equal(ds[0][1], [[1, 0, 255], [255, 0, 1]])
    assert SegmentationFolder(images, trimaps, mask_mapping=PET_TRIMAP_MAPPING).classes == ("class0", "class1")
    # without classes or mapping the masks are scanned for their largest label (3)
    assert SegmentationFolder(images, trimaps).num_classes == 4

    Image.fromarray(trimap + 3, mode="L").save(trimaps / "cat_1.png")
    with pytest.raises(ValueError, match=r"mask .*cat_1\.png has values \[4, 5, 6\] that mask_mapping does not map"):
        ds[0]
    Image.fromarray(np.zeros((2, 3, 3), np.uint8)).save(images / "dog_2.png")
    with pytest.raises(FileNotFoundError, match=r"file not found: .*dog_2\.png"):
        SegmentationFolder(images, trimaps, classes=PET_CLASSES)
    with pytest.raises(TypeError, match="mask_mapping must be a dict"):
        SegmentationFolder(images, images, classes=PET_CLASSES, mask_mapping={1: "pet"})


# ----------------------------------------------------------------------------- registry
def test_registry():
    assert {"shapes", "context", "context_control", "voc", "folder"} <= set(list_datasets())
    ds = get_dataset("shapes", "val", length=3, image_size=32)
    assert isinstance(ds, Shapes) and ds.split == "val" and len(ds) == 3
    assert get_dataset("context_control", length=2).control
    with pytest.raises(ValueError, match=r"unknown dataset 'mnist': expected one of \["):
        get_dataset("mnist")
    with pytest.raises(ValueError, match="get_dataset\\('voc'\\) needs root="):
        get_dataset("voc")
    with pytest.raises(ValueError, match="needs images_dir=... and masks_dir=..."):
        get_dataset("folder")
    with pytest.raises(ValueError, match="get_dataset\\('pets'\\) needs root="):
        get_dataset("pets")


def test_registry_entries_agree_with_the_datasets_they_build():
    from minisegnet.data import DATASETS, build
    for name, info in DATASETS.items():
        assert info.name == name and len(info.description) > 20 and len(info.image_size) == 2
        if info.generated:
            ds = build(name, "train", length=2)
            assert tuple(ds.classes) == tuple(info.classes)
            assert tuple(ds[0][0].shape[1:]) == tuple(info.image_size)
            assert np.array_equal(np.asarray(ds.palette), np.asarray(info.palette))
            assert info.transforms("train", (8, 8)) is None
        else:
            assert isinstance(info.transforms("train", (8, 8)), Compose)
            assert isinstance(info.transforms("val", (8, 8)), Resize)
    assert DATASETS["pets"].downloadable and DATASETS["voc"].downloadable
    assert not DATASETS["folder"].downloadable and not DATASETS["shapes"].downloadable
    with pytest.raises(ValueError, match="has no option"):
        build("shapes", "train", length=2, border="class")
    with pytest.raises(ValueError, match="--data-root DIR\\) or download it"):
        build("pets", "train")


# ----------------------------------------------------------------------------- transforms
@requires_torch
@pytest.mark.parametrize("size", [(5, 9), (17, 4), (10, 12), (23, 31)])
def test_resize_matches_torch_interpolate(size):
    rng = np.random.default_rng(0)
    image = rng.random((3, 10, 12))
    expected = torch.nn.functional.interpolate(torch.tensor(image[None]), size=size, mode="bilinear",
                                               align_corners=False)[0].numpy()
    np.testing.assert_allclose(resize_bilinear(image, size), expected, rtol=1e-6, atol=1e-12)
    mask = rng.integers(0, 5, (10, 12))
    expected = torch.nn.functional.interpolate(torch.tensor(mask[None, None].astype(np.float64)), size=size,
                                               mode="nearest-exact")[0, 0].numpy()
    np.testing.assert_array_equal(resize_nearest(mask, size), expected.astype(np.int64))


def _coded_pair(H=24, W=30, seed=0):
    """An image whose first channel is the mask / 10 (the mask is read off the image)."""
    rng = np.random.default_rng(seed)
    mask = np.repeat(np.repeat(rng.integers(0, 6, (H // 6, W // 6)), 6, axis=0), 6, axis=1)
    image = np.stack([mask / 10, rng.random((H, W)), rng.random((H, W))]).astype(np.float32)
    return image, mask.astype(np.int64)


def test_flip_and_crop_keep_image_and_mask_aligned():
    image, mask = _coded_pair()
    t = Compose([RandomHorizontalFlip(p=1.0), RandomCrop((10, 13), rng=np.random.default_rng(1))])
    out_image, out_mask = t(image, mask)
    assert out_image.shape == (3, 10, 13) and out_mask.shape == (10, 13) and out_mask.dtype == np.int64
    np.testing.assert_array_equal(np.round(out_image[0] * 10).astype(int), out_mask)
    flipped_image, flipped_mask = RandomHorizontalFlip(p=1.0)(image, mask)
    np.testing.assert_array_equal(flipped_mask, mask[:, ::-1])
    np.testing.assert_array_equal(flipped_image, image[:, :, ::-1])
    same = RandomHorizontalFlip(p=0.0)(image, mask)
    assert same[0] is image and same[1] is mask


def test_random_resize_keeps_labels_aligned_with_image_content():
    image, mask = _coded_pair()
    for seed in range(4):
        out_image, out_mask = RandomResize((0.6, 1.8), rng=np.random.default_rng(seed))(image, mask)
        assert out_image.shape[1:] == out_mask.shape
        assert set(np.unique(out_mask)) <= set(np.unique(mask))   # nearest: no invented labels
        code = np.pad(out_image[0] * 10, 1, mode="edge")
        centre = code[1:-1, 1:-1]
        # inside a block the bilinear image equals the block's code, like its 4 neighbours
        flat = np.ones(centre.shape, dtype=bool)
        for dy, dx in ((0, 1), (2, 1), (1, 0), (1, 2)):
            flat &= np.abs(code[dy:dy + centre.shape[0], dx:dx + centre.shape[1]] - centre) < 1e-5
        assert flat.mean() > 0.3
        np.testing.assert_array_equal(np.round(centre[flat]).astype(int), out_mask[flat])


def test_random_crop_pads_image_with_zero_and_mask_with_ignore():
    image, mask = np.ones((3, 4, 4), np.float32), np.ones((4, 4), np.int64)
    out_image, out_mask = RandomCrop(6, rng=np.random.default_rng(0))(image, mask)
    assert out_image.shape == (3, 6, 6) and out_mask.shape == (6, 6)
    assert (out_mask == 255).sum() == 36 - 16 and np.all(out_image[:, out_mask == 255] == 0)
    assert np.all(out_image[:, out_mask == 1] == 1)


def test_photometric_and_normalize_touch_only_the_image():
    rng = np.random.default_rng(0)
    image, mask = rng.random((3, 5, 6)).astype(np.float32) * 0.5, rng.integers(0, 3, (5, 6))
    out, out_mask = PhotometricJitter(brightness=0.3, contrast=0, saturation=0, rng=rng)(image, mask)
    assert out_mask is mask
    ratio = out / image
    assert np.ptp(ratio) < 1e-5 and 0.7 <= ratio.mean() <= 1.3      # one brightness factor
    out, _ = PhotometricJitter(0.5, 0.5, 0.5, rng=rng)(image, mask)
    assert out.dtype == np.float32 and 0 <= out.min() and out.max() <= 1
    grey = PhotometricJitter(0, 0, 0)(image, mask)[0]
    np.testing.assert_allclose(grey, image, atol=1e-6)
    out, out_mask = Normalize((0.5, 0.25, 0.0), (0.5, 0.25, 2.0))(image, mask)
    np.testing.assert_allclose(out[0], (image[0] - 0.5) / 0.5, rtol=1e-6)
    np.testing.assert_allclose(out[2], image[2] / 2, rtol=1e-6)
    assert out_mask is mask and out.dtype == np.float32
    np.testing.assert_array_equal(Resize((3, 3))(image, mask)[1], resize_nearest(mask, (3, 3)))


def test_transforms_reproduce_from_the_global_seed_and_use_generator():
    image, mask = _coded_pair()
    t = Compose([RandomResize((0.5, 1.5)), RandomCrop(8), RandomHorizontalFlip(), PhotometricJitter()])
    ms.manual_seed(3)
    first = t(image, mask)
    ms.manual_seed(3)
    second = t(image, mask)
    np.testing.assert_array_equal(first[0], second[0])
    with use_generator(np.random.default_rng(3)):
        a = t(image, mask)
    with use_generator(np.random.default_rng(3)):
        b = t(image, mask)
    np.testing.assert_array_equal(a[1], b[1])


def test_transform_errors():
    image, mask = _coded_pair()
    with pytest.raises(ValueError, match=r"RandomCrop: mask must be a NumPy array \(H, W\) = \(24, 30\).*\(5, 5\)"):
        RandomCrop(4)(image, np.zeros((5, 5)))
    with pytest.raises(TypeError, match=r"Resize: image must be a float NumPy array \(C, H, W\)"):
        Resize(4)(mask, mask)
    with pytest.raises(ValueError, match="size must be a positive int or"):
        RandomCrop((0, 3))
    with pytest.raises(ValueError, match="scale_range must be"):
        RandomResize((2.0, 1.0))
    with pytest.raises(ValueError, match="p must be in"):
        RandomHorizontalFlip(1.5)
    with pytest.raises(ValueError, match="Normalize: 2 channel statistics for an image with 3 channels"):
        Normalize((0, 0), (1, 1))(image, mask)
    with pytest.raises(ValueError, match="std > 0"):
        Normalize((0, 0, 0), (1, 0, 1))
    with pytest.raises(TypeError, match="Compose: every transform must be callable"):
        Compose([3])


# ----------------------------------------------------------------------------- DataLoader
class IndexDataset:
    """Item i is an image filled with i and a mask filled with i (plus one random draw)."""

    classes = ("a",)

    def __init__(self, n, random=False):
        self.n, self.random = n, random

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        from minisegnet.data.transforms import current_generator
        extra = current_generator().random() if self.random else 0.0
        return np.full((3, 2, 2), i + extra, np.float32), np.full((2, 2), i, np.int64)


def _order(loader):
    return [int(v) for _, masks in loader for v in masks.numpy()[:, 0, 0]]


def test_loader_batches_and_lengths():
    loader = DataLoader(IndexDataset(10), batch_size=4)
    batches = list(loader)
    assert len(loader) == 3 and len(batches) == 3
    images, masks = batches[0]
    assert isinstance(images, ms.Tensor) and images.shape == (4, 3, 2, 2) and images.dtype == ms.float32
    assert masks.shape == (4, 2, 2) and masks.dtype == ms.int64 and images.device == "cpu"
    assert batches[-1][0].shape[0] == 2
    assert _order(loader) == list(range(10))
    dropped = DataLoader(IndexDataset(10), batch_size=4, drop_last=True)
    assert len(dropped) == 2 and _order(dropped) == list(range(8))


def test_loader_shuffle_is_seeded_per_epoch():
    a = DataLoader(IndexDataset(12), batch_size=5, shuffle=True, seed=4)
    e0, e1 = _order(a), _order(a)
    assert sorted(e0) == list(range(12)) and sorted(e1) == list(range(12))
    assert e0 != e1 and e0 != list(range(12))
    b = DataLoader(IndexDataset(12), batch_size=5, shuffle=True, seed=4)
    assert _order(b) == e0
    b.set_epoch(1)
    assert _order(b) == e1
    b.set_epoch(1)
    assert _order(b) == e1
    assert _order(DataLoader(IndexDataset(12), batch_size=5, shuffle=True, seed=5)) != e0
    ms.manual_seed(0)
    unseeded = _order(DataLoader(IndexDataset(12), batch_size=5, shuffle=True))
    ms.manual_seed(0)
    assert _order(DataLoader(IndexDataset(12), batch_size=5, shuffle=True)) == unseeded


@pytest.mark.parametrize("workers, prefetch", [(2, False), (0, True), (3, True)])
def test_loader_threads_and_prefetch_give_the_same_batches(workers, prefetch):
    def run(**kw):
        loader = DataLoader(IndexDataset(9, random=True), batch_size=2, shuffle=True, seed=1, **kw)
        return [images.numpy() for epoch in range(2) for images, _ in loader]
    reference = run()
    for got, want in zip(run(num_workers=workers, prefetch=prefetch), reference):
        np.testing.assert_array_equal(got, want)


def test_loader_with_real_dataset_and_transforms():
    ds = Shapes(length=6, image_size=20, transforms=Compose([RandomCrop(16), RandomHorizontalFlip()]))
    images, masks = next(iter(DataLoader(ds, batch_size=3, seed=0, prefetch=True)))
    assert images.shape == (3, 3, 16, 16) and masks.shape == (3, 16, 16)


class FailingDataset(IndexDataset):
    def __getitem__(self, i):
        if i == 5:
            raise RuntimeError("broken item 5")
        return super().__getitem__(i)


def test_loader_errors_reach_the_consumer_and_prefetch_stops_early():
    with pytest.raises(RuntimeError, match="broken item 5"):
        list(DataLoader(FailingDataset(8), batch_size=2, prefetch=True, num_workers=2))
    before = threading.active_count()
    for _ in DataLoader(IndexDataset(100), batch_size=1, prefetch=True):
        break
    assert threading.active_count() <= before


def test_loader_argument_errors():
    with pytest.raises(ValueError, match="batch_size must be an int >= 1, got 0"):
        DataLoader(IndexDataset(3), batch_size=0)
    with pytest.raises(ValueError, match="num_workers must be an int >= 0, got -1"):
        DataLoader(IndexDataset(3), num_workers=-1)
    with pytest.raises(ValueError, match="seed must be a non-negative int or None"):
        DataLoader(IndexDataset(3), seed=-2)
    with pytest.raises(TypeError, match="dataset must support len"):
        DataLoader(object())
    with pytest.raises(ValueError, match=r"collate: items of one batch must have the same shapes"):
        collate([(np.zeros((3, 2, 2)), np.zeros((2, 2))), (np.zeros((3, 4, 4)), np.zeros((4, 4)))])


def test_loader_to_device(device):
    images, masks = next(iter(DataLoader(IndexDataset(4), batch_size=2, device=device)))
    assert images.device == device and masks.device == device
