"""Which array module a tensor lives on, and moving arrays between devices.

minisegnet runs the same code on two array libraries that share one API:

* ``'cpu'``  -> NumPy arrays,
* ``'cuda'`` -> CuPy arrays (on an NVIDIA GPU).

Everything above this module asks ``xp = array_module(x)`` and then writes
``xp.zeros(...)``, ``xp.matmul(...)`` and so on, so one implementation serves both
devices. CuPy is imported lazily: a machine without it never pays for (or fails on)
the import.

The default device is ``'cpu'`` unless the environment variable ``MINISEGNET_DEVICE``
says otherwise (``MINISEGNET_DEVICE=cuda``).
"""
import os

import numpy as np

DEVICES = ("cpu", "cuda")

_cupy = None          # the cupy module once imported successfully
_cuda_usable = None   # cached result of the device probe


def _import_cupy():
    global _cupy
    if _cupy is None:
        import cupy  # noqa: F401  (ImportError is handled by the callers)
        _cupy = cupy
    return _cupy


def cuda_is_available():
    """True when CuPy imports *and* a CUDA device actually runs a kernel.

    Importing cupy is not enough (the wheel installs fine on machines with no GPU or
    no driver), so the probe allocates a small array and does arithmetic on it.
    """
    global _cuda_usable
    if _cuda_usable is None:
        try:
            cp = _import_cupy()
            _cuda_usable = bool(cp.cuda.runtime.getDeviceCount() > 0
                                and int((cp.arange(3) * 2).sum()) == 6)
        except Exception:
            _cuda_usable = False
    return _cuda_usable


def normalize_device(device):
    """Turn ``None``, ``'cpu'``, ``'cuda'``, ``'cuda:0'`` into ``'cpu'`` or ``'cuda'``.

    ``None`` means the default device. Asking for cuda where none is usable is an error.
    """
    if device is None:
        return default_device()
    if not isinstance(device, str):
        device = str(device)
    name = device.split(":")[0].lower()
    if name not in DEVICES:
        raise ValueError(f"unknown device {device!r}: expected one of {DEVICES}")
    if name == "cuda" and not cuda_is_available():
        raise RuntimeError(
            f"device {device!r} was requested but no usable CUDA device was found "
            "(install the GPU extra, `pip install minisegnet[gpu]`, on a machine with an "
            "NVIDIA GPU, or use device='cpu')")
    return name


def default_device():
    """The device new tensors go to: ``$MINISEGNET_DEVICE`` or ``'cpu'``."""
    env = os.environ.get("MINISEGNET_DEVICE", "cpu").strip() or "cpu"
    if env.split(":")[0].lower() not in DEVICES:
        raise ValueError(f"MINISEGNET_DEVICE={env!r} is not a device: expected one of {DEVICES}")
    return normalize_device(env)


def is_cupy_array(x):
    return _cupy is not None and isinstance(x, _cupy.ndarray)


def device_of(array):
    """``'cuda'`` for a CuPy array, ``'cpu'`` for anything else."""
    return "cuda" if is_cupy_array(array) else "cpu"


def array_module(*arrays):
    """The module (``numpy`` or ``cupy``) that owns these arrays: ``xp = array_module(x)``."""
    for a in arrays:
        if is_cupy_array(a):
            return _cupy
    return np


def module_for(device):
    """The array module of a device name: numpy for 'cpu', cupy for 'cuda'."""
    return _import_cupy() if normalize_device(device) == "cuda" else np


def to_device(array, device):
    """Copy ``array`` to ``device`` if it is not there already (returns the same array if it is)."""
    device = normalize_device(device)
    if device == device_of(array):
        return array
    if device == "cpu":
        return array.get()
    return _import_cupy().asarray(array)


def owns_writable_memory(array):
    """True when ``array`` owns its memory and may be written in place (not a view).

    CuPy's ``flags`` has only ``c_contiguous``, ``f_contiguous`` and ``owndata`` (device
    memory is always writable); NumPy arrays also have to be ``writeable``.
    """
    flags = array.flags
    return bool(flags.owndata) and (is_cupy_array(array) or bool(flags.writeable))


def to_numpy(array):
    """A NumPy array with the same contents (a host copy for CuPy arrays)."""
    return array.get() if is_cupy_array(array) else np.asarray(array)
