"""Checkpoints: ``minisegnet.save(state, path)`` and ``minisegnet.load(path)``.

A checkpoint is a NumPy ``.npz`` file: one array per key of a (possibly nested) state
dict, nested keys joined with ``/``. Plain Python values (numbers, strings, lists of
them, None) are stored as JSON in one extra entry, so nothing ever needs pickle:
files are read with ``allow_pickle=False`` and a checkpoint cannot run code when it is
loaded.

Writing is atomic (:func:`minisegnet.fileio.atomic_write`): the data goes to a temporary
file in the same folder, which is then renamed over the target (``os.replace`` is atomic on
one file system). A crash, a full disk or a file-size limit half-way leaves the previous
checkpoint intact and no temporary file behind; the OSError names the checkpoint.
"""
import json
import os
import zipfile

import numpy as np

from . import backend
from .fileio import atomic_write
from .tensor import Tensor

_META_KEY = "__minisegnet_meta__"


class CheckpointError(ValueError):
    """A checkpoint that is missing, truncated, or not written by minisegnet."""


def _flatten(obj, prefix, arrays, meta):
    if isinstance(obj, Tensor):
        obj = obj.data
    if isinstance(obj, dict):
        meta[prefix or "/"] = {"type": "dict", "keys": [str(k) for k in obj]}
        for k, v in obj.items():
            if "/" in str(k):
                raise ValueError(f"save: key {k!r} contains '/', which checkpoints use as a separator")
            _flatten(v, f"{prefix}/{k}" if prefix else str(k), arrays, meta)
    elif hasattr(obj, "shape") and hasattr(obj, "dtype") and not isinstance(obj, np.generic):
        if obj.dtype == object:
            raise TypeError(f"save: {prefix!r} is an object array, which cannot be stored without pickle")
        arrays[prefix] = backend.to_numpy(obj)
    else:
        try:
            json.dumps(obj)
        except TypeError:
            raise TypeError(f"save: value at {prefix!r} of type {type(obj).__name__} is neither an "
                            "array nor a JSON value (number, string, list, dict, None)") from None
        meta[prefix] = {"type": "json", "value": obj.item() if isinstance(obj, np.generic) else obj}


def save(state, path):
    """Write ``state`` (a dict of arrays/Tensors, nested dicts and JSON values) to ``path``
    atomically. Returns the path."""
    if not isinstance(state, dict):
        raise TypeError(f"save: expected a dict (e.g. model.state_dict()), got {type(state).__name__}")
    path = os.fspath(path)
    arrays, meta = {}, {}
    _flatten(state, "", arrays, meta)
    arrays[_META_KEY] = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
    with atomic_write(path, "wb") as f:        # a missing folder: FileNotFoundError naming it
        np.savez(f, **arrays)
    return path


def _unflatten(meta, arrays, prefix):
    info = meta.get(prefix or "/")
    if info is None:
        if prefix in arrays:
            return arrays[prefix]
        raise CheckpointError(f"checkpoint is inconsistent: no entry for {prefix!r}")
    if info["type"] == "json":
        return info["value"]
    return {k: _unflatten(meta, arrays, f"{prefix}/{k}" if prefix else k) for k in info["keys"]}


def load(path):
    """Read a checkpoint written by :func:`save`; returns the same nested dict with NumPy arrays.

    A missing, truncated, corrupt or foreign file raises :class:`CheckpointError` (or
    FileNotFoundError) naming the path; a file that cannot be opened (no permission, a
    read error) raises the ``OSError`` itself, so it is reported as what it is.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"checkpoint {path!r} does not exist")
    try:
        stream = open(path, "rb")
    except OSError as e:
        e.filename = path
        raise
    try:
        with stream, np.load(stream, allow_pickle=False) as data:
            if _META_KEY not in data.files:
                raise CheckpointError(f"{path!r} is an .npz file but not a minisegnet checkpoint "
                                      "(it has no metadata entry)")
            meta = json.loads(bytes(data[_META_KEY]).decode("utf-8"))
            arrays = {k: data[k] for k in data.files if k != _META_KEY}
    except CheckpointError:
        raise
    except OSError as e:
        if e.errno is not None:               # a real OS failure (EIO, ...), not a bad format
            e.filename = e.filename or path
            raise
        raise CheckpointError(f"cannot read checkpoint {path!r}: the file is truncated, corrupt or "
                              f"not an .npz file ({type(e).__name__}: {e})") from None
    except (zipfile.BadZipFile, ValueError, EOFError, KeyError) as e:
        raise CheckpointError(f"cannot read checkpoint {path!r}: the file is truncated, corrupt or "
                              f"not an .npz file ({type(e).__name__}: {e})") from None
    return _unflatten(meta, arrays, "")
