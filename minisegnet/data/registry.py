"""The dataset registry: everything a run needs to know about each dataset, in one place.

Each :class:`DatasetInfo` says what the dataset is (``description``), how it is built
(``factory``), its default image size, its classes and colours when they are fixed, the
transforms its images get (generated datasets are made at the right size; photos are
scaled, cropped and flipped for training and resized for validation) and, for real
datasets, the download recipe (``archives``). :func:`build` turns a name and a few
settings into a dataset; ``minisegnet datasets``, :func:`minisegnet.train.make_config` and
:func:`minisegnet.train.build_dataset` all read from here.
"""
import os
from dataclasses import dataclass, field
from typing import Callable

from .context import ContextStrips
from .shapes import Shapes
from .transforms import Compose, RandomCrop, RandomHorizontalFlip, RandomResize, Resize
from .voc import (PET_ARCHIVES, PET_CLASSES, PET_PALETTE, VOC_ARCHIVES, VOC_CLASSES, VOC_PALETTE, OxfordIIITPet,
                  SegmentationFolder, VOCSegmentation)

__all__ = ["DatasetInfo", "DATASETS", "dataset_info", "build", "default_data_root", "DATA_ENV"]

#: Where downloaded datasets go when no root is given: ``$MINISEGNET_DATA``, else ``./data``.
DATA_ENV = "MINISEGNET_DATA"


def default_data_root():
    return os.environ.get(DATA_ENV) or "data"


@dataclass(frozen=True)
class DatasetInfo:
    """One dataset of the registry (see the module text)."""
    name: str
    description: str
    factory: Callable                     # factory(split, **kwargs) -> dataset
    image_size: tuple                     # default (H, W)
    generated: bool = False
    classes: tuple = None                 # None: read from the data (folder)
    palette: tuple = None
    archives: tuple = ()                  # the download recipe: minisegnet.data.download.Archive
    options: dict = field(default_factory=dict)    # extra settings and their defaults, e.g. border

    @property
    def downloadable(self):
        return bool(self.archives)

    def transforms(self, split, size):
        """The paired transform of ``split`` at ``size`` (H, W); None for generated data."""
        if self.generated:
            return None
        if split == "train":
            return Compose([RandomResize((0.75, 1.5)), RandomCrop(tuple(size)), RandomHorizontalFlip()])
        return Resize(tuple(size))


DATASETS = {info.name: info for info in (
    DatasetInfo("shapes", "generated circles, squares and triangles on textured backgrounds (4 classes)",
                lambda split, **kw: Shapes(split=split, **kw), (64, 64), generated=True,
                classes=Shapes.classes, palette=tuple(map(tuple, Shapes.palette.tolist()))),
    DatasetInfo("context", "generated tall strips: a blob is a boat or a car only by the water/road band far "
                "below (5 classes)", lambda split, **kw: ContextStrips(split=split, control=False, **kw),
                (256, 32), generated=True, classes=ContextStrips.classes,
                palette=tuple(map(tuple, ContextStrips.palette.tolist()))),
    DatasetInfo("context_control", "the context strips with boats and cars shaped differently: local "
                "appearance suffices", lambda split, **kw: ContextStrips(split=split, control=True, **kw),
                (256, 32), generated=True, classes=ContextStrips.classes,
                palette=tuple(map(tuple, ContextStrips.palette.tolist()))),
    DatasetInfo("voc", "Pascal VOC 2012 (21 classes): --data-root DIR you have, or --download (2 GB)",
                lambda split, **kw: VOCSegmentation(split=split, **kw), (128, 128), classes=VOC_CLASSES,
                palette=tuple(map(tuple, VOC_PALETTE.tolist())), archives=VOC_ARCHIVES),
    DatasetInfo("pets", "Oxford-IIIT Pet trimaps: background, pet (border ignored, or a class with "
                "--pets-border class); --download (800 MB) or --data-root DIR",
                lambda split, **kw: OxfordIIITPet(split=split, **kw), (128, 128), classes=PET_CLASSES,
                palette=tuple(map(tuple, PET_PALETTE[:2].tolist())), archives=PET_ARCHIVES,
                options={"border": "ignore"}),
    DatasetInfo("folder", "any images + masks folders (--data-root DIR with DIR/{train,val}/{images,masks})",
                lambda split, **kw: SegmentationFolder(**kw), (128, 128)),
)}


def dataset_info(name):
    """The :class:`DatasetInfo` of ``name``; ValueError listing the known names otherwise."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; available: {', '.join(sorted(DATASETS))}")
    return DATASETS[name]


class Subset:
    """The first ``length`` items of a dataset (its attributes pass through)."""

    def __init__(self, dataset, length):
        self.dataset, self.length = dataset, min(int(length), len(dataset))

    def __len__(self):
        return self.length

    def __getitem__(self, index):
        if not -self.length <= index < self.length:
            raise IndexError(f"index {index} is out of range for a dataset of length {self.length}")
        return self.dataset[int(index) % self.length]

    def __getattr__(self, name):
        return getattr(self.__dict__["dataset"], name)


def _folder_split_dirs(root, split):
    """``root/<split>/{images,masks}`` if present, else ``root/{images,masks}`` (no splits)."""
    for base in (os.path.join(root, split), root):
        images, masks = os.path.join(base, "images"), os.path.join(base, "masks")
        if os.path.isdir(images) and os.path.isdir(masks):
            return images, masks
    raise FileNotFoundError(f"dataset 'folder' needs {root}/{split}/images and {root}/{split}/masks "
                            f"(or {root}/images and {root}/masks): not found")


def build(name, split, image_size=None, length=None, root=None, download=False, classes=None, progress=True,
          **options):
    """The ``split`` ('train' / 'val') of dataset ``name``, ready for training.

    Generated datasets get ``length`` images of ``image_size``. Real datasets are read from
    ``root`` (fetched there first with ``download=True`` when they can be), get the
    registry's transforms at ``image_size`` and are cut to ``length`` images when it is set.
    ``classes`` names the classes of a ``'folder'`` dataset; ``options`` are the dataset's own
    settings (``border`` for ``'pets'``).
    """
    info = dataset_info(name)
    size = tuple(image_size or info.image_size)
    unknown = set(options) - set(info.options)
    if unknown:
        raise ValueError(f"dataset {name!r} has no option(s) {sorted(unknown)}; "
                         f"it has {sorted(info.options) or 'none'}")
    if info.generated:
        return info.factory(split, length=length, image_size=size)
    if root is None:
        raise ValueError(f"dataset {name!r} is read from a folder: give data_root (--data-root DIR)"
                         + (" or download it (--download)" if info.downloadable else ""))
    root = os.fspath(root)
    if download and not info.downloadable:
        raise ValueError(f"dataset {name!r} cannot be downloaded; point --data-root at your folder")
    if not download and not os.path.isdir(root):
        raise FileNotFoundError(f"data folder not found: {root}"
                                + (" (add --download to fetch it)" if info.downloadable else ""))
    transforms = info.transforms(split, size)
    if name == "folder":
        images, masks = _folder_split_dirs(root, split)
        ds = info.factory(split, images_dir=images, masks_dir=masks, transforms=transforms,
                          **({"classes": classes} if classes is not None else {}))
    else:
        extra = {"download": True, "progress": progress} if download else {}
        ds = info.factory(split, root=root, transforms=transforms, **extra, **options)
    return ds if length is None else Subset(ds, length)
