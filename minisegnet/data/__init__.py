"""Datasets, paired transforms and the DataLoader.

A dataset is anything indexable with ``ds[i] -> (image, mask)``:

* ``image``: float32 NumPy array (3, H, W), in [0, 1] (or normalised by a transform);
* ``mask``:  int64 NumPy array (H, W) of class indices, ``ds.ignore_index`` (255) = no label;

plus ``len(ds)``, ``ds.classes`` (names), ``ds.num_classes`` and optionally ``ds.palette``
((num_classes, 3) uint8 colours for pictures).

Datasets by name (:func:`get_dataset`, :func:`list_datasets`):

=================  ===========================================================
``shapes``         generated circles / squares / triangles (:class:`Shapes`)
``context``        generated strips where only far context decides boat vs car
``context_control`` the same with boats and cars shaped differently
``voc``            Pascal VOC 2012 from a folder (``root=...``, ``download=True``)
``pets``           Oxford-IIIT Pet trimaps (``root=...``, ``download=True``)
``folder``         any images + masks folders (``images_dir=..., masks_dir=...``)
=================  ===========================================================

The registry (:mod:`.registry`) holds each one's description, default size, classes,
transforms and download recipe; :func:`build` makes a training-ready split from it.
"""
from .context import ContextStrips
from .loader import DataLoader, collate
from .shapes import Shapes
from .transforms import (IMAGENET_MEAN, IMAGENET_STD, Compose, Normalize, PhotometricJitter,
                         RandomCrop, RandomHorizontalFlip, RandomResize, Resize)
from .download import Archive, DownloadError
from .registry import DATASETS, DatasetInfo, build, dataset_info, default_data_root
from .voc import (PET_CLASSES, PET_TRIMAP_MAPPING, VOC_CLASSES, OxfordIIITPet, SegmentationFolder,
                  VOCSegmentation)

__all__ = ["Shapes", "ContextStrips", "VOCSegmentation", "SegmentationFolder", "DataLoader",
           "collate", "Compose", "Resize", "RandomResize", "RandomCrop", "RandomHorizontalFlip",
           "PhotometricJitter", "Normalize", "IMAGENET_MEAN", "IMAGENET_STD", "VOC_CLASSES",
           "PET_CLASSES", "PET_TRIMAP_MAPPING", "get_dataset", "list_datasets", "OxfordIIITPet", "DATASETS",
           "DatasetInfo", "dataset_info", "build", "default_data_root", "Archive", "DownloadError"]


def list_datasets():
    """The names :func:`get_dataset` knows, sorted."""
    return sorted(DATASETS)


def get_dataset(name, split="train", **kwargs):
    """Build a dataset by name: ``get_dataset('shapes', 'val', length=200)``.

    ``kwargs`` go to the dataset's constructor (``root=`` for ``'voc'``; ``images_dir=``,
    ``masks_dir=`` and friends for ``'folder'``, which has no splits: point it at the
    split's folders).
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}: expected one of {list_datasets()}")
    if name == "voc" and "root" not in kwargs:
        raise ValueError("get_dataset('voc') needs root=<the VOC2012 folder>")
    if name == "pets" and "root" not in kwargs:
        raise ValueError("get_dataset('pets') needs root=<the folder holding oxford-iiit-pet/>")
    if name == "folder" and not {"images_dir", "masks_dir"} <= set(kwargs):
        raise ValueError("get_dataset('folder') needs images_dir=... and masks_dir=...")
    return DATASETS[name].factory(split, **kwargs)
