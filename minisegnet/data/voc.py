"""Segmentation datasets read from folders: Pascal VOC 2012, Oxford-IIIT Pet, any images + masks pair.

Masks are PNG images whose *pixel values are class indices* (0, 1, 2, ...; 255 = ignore).
Pascal VOC stores them as palette ("P" mode) PNGs: each pixel holds an index into a
colour table, so the file *looks* coloured in an image viewer but its values are already
the labels. Read it with Pillow without converting to RGB::

    np.array(Image.open("2007_000032.png"))     # (H, W) uint8 of class indices

(``.convert("RGB")`` would turn the indices into colours, which then have to be mapped
back: the classic bug.) Every mask is validated when it is loaded: a value that is
neither a class nor the ignore index raises an error naming the file.

Nothing is downloaded unless asked: point ``root`` at a folder you have, or pass
``download=True`` to fetch the official archives into ``root`` first, in torchvision's
folder layout (:mod:`minisegnet.data.download`: mirrors, resume, checksums, safe extraction).
"""
import os

import numpy as np

from .download import Archive, download_and_extract

__all__ = ["VOCSegmentation", "OxfordIIITPet", "SegmentationFolder", "VOC_CLASSES", "PET_CLASSES",
           "PET_CLASSES_WITH_BORDER", "PET_TRIMAP_MAPPING", "PET_TRIMAP_MAPPING_WITH_BORDER", "VOC_ARCHIVES",
           "PET_ARCHIVES", "PET_PALETTE", "VOC_PALETTE", "voc_colormap", "load_image", "load_mask"]

VOC_CLASSES = ("background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car",
               "cat", "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person",
               "pottedplant", "sheep", "sofa", "train", "tvmonitor")

#: Oxford-IIIT Pet trimaps (``annotations/trimaps/*.png``) store 1 = pet, 2 = background,
#: 3 = the uncertain border. Map them to 0 background, 1 pet and ignore the border:
#: ``SegmentationFolder(images, trimaps, classes=PET_CLASSES, mask_mapping=PET_TRIMAP_MAPPING)``.
PET_TRIMAP_MAPPING = {1: 1, 2: 0, 3: 255}
#: Colours of background, pet and border in pictures.
PET_PALETTE = np.array([[0, 0, 0], [255, 140, 0], [200, 200, 200]], dtype=np.uint8)
PET_CLASSES = ("background", "pet")
#: The same with the border kept as a third class.
PET_TRIMAP_MAPPING_WITH_BORDER = {1: 1, 2: 0, 3: 2}
PET_CLASSES_WITH_BORDER = ("background", "pet", "border")

#: The official archives (names and MD5 checksums as torchvision lists them) and their mirrors.
VOC_ARCHIVES = (Archive("VOCtrainval_11-May-2012.tar", "6cd6e144f989b92b3379bac3b3de84fd", (
    "http://host.robots.ox.ac.uk/pascal/VOC/voc2012/VOCtrainval_11-May-2012.tar",
    "https://pjreddie.com/media/files/VOCtrainval_11-May-2012.tar")),)
PET_ARCHIVES = (
    Archive("images.tar.gz", "5c4f3ee8e5d25df40f4fd59a7f44e54c", (
        "https://www.robots.ox.ac.uk/~vgg/data/pets/data/images.tar.gz",
        "https://thor.robots.ox.ac.uk/~vgg/data/pets/images.tar.gz")),
    Archive("annotations.tar.gz", "95a8c909bbe2e81eed6a22bccdf3f68f", (
        "https://www.robots.ox.ac.uk/~vgg/data/pets/data/annotations.tar.gz",
        "https://thor.robots.ox.ac.uk/~vgg/data/pets/annotations.tar.gz")),
)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


def voc_colormap(n=256):
    """The Pascal VOC colour of labels 0..n-1, (n, 3) uint8: the devkit's ``labelcolormap``.

    The bits of the label are dealt out to red, green and blue in turn, from the most
    significant bit of each colour down: 1 -> (128, 0, 0), 2 -> (0, 128, 0), 15 -> (192, 128, 128).
    """
    labels = np.arange(n)
    colours = np.zeros((n, 3), dtype=np.int64)
    for shift in range(8):
        for channel in range(3):
            colours[:, channel] |= ((labels >> (3 * shift + channel)) & 1) << (7 - shift)
    return colours.astype(np.uint8)


#: The 21 VOC class colours (the ones VOC's own palette PNGs show).
VOC_PALETTE = voc_colormap(21)


def _require(path, kind):
    exists = os.path.isdir(path) if kind == "folder" else os.path.isfile(path)
    if not exists:
        raise FileNotFoundError(f"{kind} not found: {path}")
    return path


def load_image(path):
    """An RGB image file as float32 (3, H, W) in [0, 1]."""
    from PIL import Image
    with Image.open(_require(path, "file")) as img:
        array = np.asarray(img.convert("RGB"), dtype=np.float32)
    return np.ascontiguousarray(array.transpose(2, 0, 1)) / np.float32(255)


def load_mask(path):
    """A mask PNG of class indices ('P' palette or 'L'/'I' grey mode) as int64 (H, W).

    An RGB(A) mask is refused: its colours are not indices.
    """
    from PIL import Image
    with Image.open(_require(path, "file")) as img:
        if img.mode not in ("P", "L", "I", "I;16"):
            raise ValueError(f"mask {path} has mode {img.mode!r}: expected a palette ('P') or "
                             f"grey ('L') PNG whose pixel values are class indices")
        return np.asarray(img, dtype=np.int64)


class _MaskDataset:
    """Shared loading of (image, mask) pairs: label mapping, validation, transforms."""

    ignore_index = 255
    palette = None

    def _setup(self, transforms, mask_mapping=None):
        """Check and keep the options; build the lookup table of ``mask_mapping``."""
        if transforms is not None and not callable(transforms):
            raise TypeError(f"transforms must be callable (image, mask) -> (image, mask), "
                            f"got {type(transforms).__name__}")
        self.transforms, self._lookup = transforms, None
        if mask_mapping is not None:
            if not isinstance(mask_mapping, dict) or not mask_mapping or not all(
                    isinstance(k, (int, np.integer)) and 0 <= k < 65536
                    and isinstance(v, (int, np.integer)) for k, v in mask_mapping.items()):
                raise TypeError(f"mask_mapping must be a dict {{stored value: label}} of ints, "
                                f"got {mask_mapping!r}")
            self._lookup = np.full(max(mask_mapping) + 1, -1, dtype=np.int64)
            for stored, label in mask_mapping.items():
                self._lookup[stored] = label

    @property
    def num_classes(self):
        return len(self.classes)

    def _load_pair(self, image_path, mask_path):
        image, mask = load_image(image_path), load_mask(mask_path)
        if image.shape[1:] != mask.shape:
            raise ValueError(f"image {image_path} is {image.shape[1:]} but its mask {mask_path} "
                             f"is {mask.shape}")
        if self._lookup is not None:
            unmapped = np.unique(mask[mask >= len(self._lookup)])
            if unmapped.size == 0:
                unmapped = np.unique(mask[self._lookup[mask] < 0])
            if unmapped.size:
                raise ValueError(f"mask {mask_path} has values {unmapped.tolist()[:10]} that "
                                 f"mask_mapping does not map")
            mask = self._lookup[mask]
        bad = np.unique(mask[((mask < 0) | (mask >= self.num_classes)) & (mask != self.ignore_index)])
        if bad.size:
            raise ValueError(f"mask {mask_path} has label values {bad.tolist()[:10]} outside the "
                             f"{self.num_classes} classes [0, {self.num_classes}) and the ignore "
                             f"index {self.ignore_index}")
        if self.transforms is not None:
            image, mask = self.transforms(image, mask)
        return image, mask

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"dataset indices must be ints, got {type(index).__name__}")
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} is out of range for a dataset of length {len(self)}")
        return self._load_pair(self.images[index], self.masks[index])


class VOCSegmentation(_MaskDataset):
    """Pascal VOC 2012 semantic segmentation read from its folder layout.

    ``root`` is the ``VOC2012`` folder, or (as in torchvision) a folder holding
    ``VOCdevkit/VOC2012``::

        JPEGImages/<id>.jpg
        SegmentationClass/<id>.png          palette PNG of class indices, 255 = border
        ImageSets/Segmentation/train.txt    one <id> per line (also val.txt, trainval.txt)

    Args:
        root: the folder above.
        split: ``'train'``, ``'val'``, ``'trainval'`` (any ``<split>.txt`` present).
        transforms: optional paired transform ``(image, mask) -> (image, mask)``.
        download: fetch and unpack ``VOCtrainval_11-May-2012.tar`` (2 GB) into ``root``
            first, unless ``root/VOCdevkit/VOC2012`` is already there.

    ``ds[i]`` is ``(image float32 (3, H, W) in [0, 1], mask int64 (H, W))`` with labels
    0-20 (:data:`VOC_CLASSES`) and 255 on the ignored object borders.
    """

    archives = VOC_ARCHIVES

    def __init__(self, root, split="train", transforms=None, download=False, progress=True):
        self._setup(transforms)
        root = os.fspath(root)
        nested = os.path.join(root, "VOCdevkit", "VOC2012")
        if download and not os.path.isdir(nested) and not os.path.isdir(os.path.join(root, "SegmentationClass")):
            download_and_extract(self.archives, root, progress=progress)
        self.root = nested if os.path.isdir(nested) else _require(root, "folder")
        list_file = _require(os.path.join(self.root, "ImageSets", "Segmentation", f"{split}.txt"), "file")
        with open(list_file) as f:
            ids = [line.strip() for line in f if line.strip()]
        if not ids:
            raise ValueError(f"split file {list_file} lists no images")
        self.split, self.ids = split, ids
        self.images = [os.path.join(self.root, "JPEGImages", i + ".jpg") for i in ids]
        self.masks = [os.path.join(self.root, "SegmentationClass", i + ".png") for i in ids]
        for path in (self.images[0], self.masks[0]):   # a wrong root fails here, not mid-epoch
            _require(path, "file")
        self.classes = VOC_CLASSES
        self.palette = VOC_PALETTE

    def __repr__(self):
        return f"VOCSegmentation(root={self.root!r}, split={self.split!r}, images={len(self)})"


class OxfordIIITPet(_MaskDataset):
    """Oxford-IIIT Pet (37 breeds of cats and dogs) as segmentation: pet, background, border.

    ``root`` holds ``oxford-iiit-pet/`` as torchvision lays it out (``root`` may also be that
    folder itself)::

        images/<name>.jpg
        annotations/trimaps/<name>.png     1 = pet, 2 = background, 3 = the uncertain border
        annotations/trainval.txt           "<name> <class id> <species> <breed id>" per line
        annotations/test.txt

    Args:
        root: the folder above.
        split: ``'train'`` (= ``trainval.txt``, 3680 images), ``'val'`` (= ``test.txt``, 3669),
            or ``'trainval'`` / ``'test'`` by their own names.
        border: ``'ignore'`` (default) labels the border 255, left out of losses and metrics,
            as the trimaps intend; ``'class'`` makes it a third class ``'border'``.
        transforms: optional paired transform ``(image, mask) -> (image, mask)``.
        download: fetch and unpack ``images.tar.gz`` and ``annotations.tar.gz`` (800 MB)
            into ``root/oxford-iiit-pet`` first, unless they are already there.
    """

    archives = PET_ARCHIVES
    SPLIT_FILES = {"train": "trainval", "val": "test", "trainval": "trainval", "test": "test"}

    def __init__(self, root, split="train", border="ignore", transforms=None, download=False, progress=True):
        if border not in ("ignore", "class"):
            raise ValueError(f"OxfordIIITPet: border must be 'ignore' or 'class', got {border!r}")
        if split not in self.SPLIT_FILES:
            raise ValueError(f"OxfordIIITPet: split must be one of {sorted(self.SPLIT_FILES)}, got {split!r}")
        self._setup(transforms, PET_TRIMAP_MAPPING if border == "ignore" else PET_TRIMAP_MAPPING_WITH_BORDER)
        root = os.fspath(root)
        base = root if os.path.basename(os.path.normpath(root)) == "oxford-iiit-pet" else \
            os.path.join(root, "oxford-iiit-pet")
        if download and not os.path.isdir(os.path.join(base, "annotations", "trimaps")):
            download_and_extract(self.archives, base, progress=progress)
        self.root = _require(base, "folder")
        list_file = _require(os.path.join(base, "annotations", f"{self.SPLIT_FILES[split]}.txt"), "file")
        with open(list_file) as f:
            names = [line.split()[0] for line in f if line.strip() and not line.startswith("#")]
        if not names:
            raise ValueError(f"split file {list_file} lists no images")
        self.split, self.border, self.ids = split, border, names
        self.images = [os.path.join(base, "images", n + ".jpg") for n in names]
        self.masks = [os.path.join(base, "annotations", "trimaps", n + ".png") for n in names]
        for path in (self.images[0], self.masks[0]):   # a wrong root fails here, not mid-epoch
            _require(path, "file")
        self.classes = PET_CLASSES if border == "ignore" else PET_CLASSES_WITH_BORDER
        self.palette = PET_PALETTE[:len(self.classes)]

    def __repr__(self):
        return f"OxfordIIITPet(root={self.root!r}, split={self.split!r}, images={len(self)}, border={self.border!r})"


class SegmentationFolder(_MaskDataset):
    """Any dataset stored as a folder of images and a folder of same-named mask PNGs.

    ``images_dir/abc.jpg`` is paired with ``masks_dir/abc.png`` (images may be .jpg, .jpeg,
    .png or .bmp). Masks hold class indices, or stored values that ``mask_mapping``
    translates (a dict ``{stored value: label}``; unmapped values are an error).

    Args:
        images_dir, masks_dir: the two folders.
        classes: the class names; by default ``class0, class1, ...`` up to the largest label
            of ``mask_mapping`` or, without a mapping, of the masks (read once to find it).
        mask_mapping: e.g. :data:`PET_TRIMAP_MAPPING` for Oxford-IIIT Pet trimaps.
        transforms: optional paired transform ``(image, mask) -> (image, mask)``.
        ignore_index: the label left out of losses and metrics (255).
    """

    def __init__(self, images_dir, masks_dir, classes=None, mask_mapping=None, transforms=None,
                 ignore_index=255):
        self._setup(transforms, mask_mapping)
        images_dir, masks_dir = os.fspath(images_dir), os.fspath(masks_dir)
        _require(images_dir, "folder"), _require(masks_dir, "folder")
        names = sorted(n for n in os.listdir(images_dir) if n.lower().endswith(IMAGE_SUFFIXES))
        if not names:
            raise ValueError(f"no images ({', '.join(IMAGE_SUFFIXES)}) found in {images_dir}")
        self.images = [os.path.join(images_dir, n) for n in names]
        self.masks = [os.path.join(masks_dir, os.path.splitext(n)[0] + ".png") for n in names]
        for path in self.masks:
            _require(path, "file")
        self.ignore_index = int(ignore_index)
        if classes is None:
            if mask_mapping:
                labels = list(mask_mapping.values())
            else:
                labels = [int(m.max(initial=0, where=m != self.ignore_index))
                          for m in map(load_mask, self.masks)]
            top = max([0] + [v for v in labels if v != self.ignore_index])
            classes = [f"class{k}" for k in range(top + 1)]
        self.classes = tuple(classes)

    def __repr__(self):
        return f"SegmentationFolder(images={len(self)}, classes={self.num_classes})"
