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
import sys

import numpy as np

DEVICES = ("cpu", "cuda")

_cupy = None          # the cupy module once imported successfully
_cuda_problem = None  # cached result of the device probe: "" when usable, else the reason

# CUDA 12 (what the gpu extra installs) runs on compute capability 5.0 (Maxwell) and newer.
MIN_COMPUTE_CAPABILITY = (5, 0)


def _import_cupy():
    global _cupy
    if _cupy is None:
        import cupy  # noqa: F401  (ImportError is handled by the callers)
        _cupy = cupy
    return _cupy


def _probe_cuda():
    """'' when a CUDA device runs CuPy's kernels here, else one sentence naming the missing piece.

    CuPy needs four things, checked in order: the ``cupy`` package, an NVIDIA driver that
    sees a GPU, NVRTC (the CUDA runtime compiler: CuPy compiles every kernel, ours included,
    on first use) and a GPU that CUDA 12 still supports. The wheel installs fine without
    any of the last three, so each is asked for, and then a small kernel is run.
    """
    try:
        cp = _import_cupy()
    except ImportError as e:
        return f"CuPy is not installed ({e}); install the GPU extra: pip install 'minisegnet[gpu]'"
    except Exception as e:   # a broken installation (e.g. two CuPy wheels)
        return f"CuPy fails to import: {type(e).__name__}: {e}"
    try:
        count = cp.cuda.runtime.getDeviceCount()
    except Exception as e:
        return f"no NVIDIA driver or no GPU: the CUDA driver cannot be queried ({e})"
    if count == 0:
        return "no NVIDIA GPU: the CUDA driver sees 0 devices"
    try:
        cp.cuda.nvrtc.getVersion()
    except Exception as e:
        return ("no CUDA toolkit compiler: CuPy cannot load NVRTC, which compiles its kernels "
                f"({e}); install it with pip install 'minisegnet[gpu]' (cupy-cuda12x[ctk]) "
                "or the CUDA toolkit")
    cc = str(cp.cuda.Device(0).compute_capability)
    major, minor = int(cc[:-1]), int(cc[-1])
    if (major, minor) < MIN_COMPUTE_CAPABILITY:
        return (f"the GPU is too old: compute capability {major}.{minor}, CUDA 12 needs "
                f"{MIN_COMPUTE_CAPABILITY[0]}.{MIN_COMPUTE_CAPABILITY[1]} or newer")
    try:
        if int((cp.arange(3) * 2).sum()) != 6:
            return "a test kernel on the GPU gave a wrong result"
    except Exception as e:
        return f"a test kernel fails on the GPU: {type(e).__name__}: {e}"
    return ""


def cuda_problem():
    """``None`` when a CUDA device is usable, else why not (no CuPy, no driver, no NVRTC,
    too old a GPU). The probe runs once per process."""
    global _cuda_problem
    if _cuda_problem is None:
        _cuda_problem = _probe_cuda()
    return _cuda_problem or None


def cuda_is_available():
    """True when CuPy imports *and* a CUDA device actually runs a kernel (see :func:`cuda_problem`)."""
    return cuda_problem() is None


def normalize_device(device):
    """Turn ``None``, ``'cpu'``, ``'cuda'``, ``'cuda:0'`` into ``'cpu'`` or ``'cuda'``.

    ``None`` means the default device. Asking for cuda where none is usable is an error
    that names the missing piece.
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
            f"device {device!r} was requested but no usable CUDA device was found: "
            f"{cuda_problem()} (or use device='cpu')")
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


def sole_view_of_fresh_array(array):
    """True when ``array`` is a NumPy view that spans all of its base array's memory and
    nothing else refers to that base: typically ``fresh.reshape(shape)`` returned by a
    backward, where ``fresh`` was made inside it. Such a view may be kept as a leaf's
    ``.grad`` without a copy, as if it owned its memory.

    Every other reference to the memory -- the base itself held somewhere (a saved array,
    the caller's seed gradient), another view of it -- holds a reference to the base
    (NumPy collapses ``base`` chains to the array that owns the memory), which the
    reference count shows.
    """
    base = getattr(array, "base", None)
    if type(array) is not np.ndarray or type(base) is not np.ndarray:
        return False
    if not (base.flags.owndata and base.flags.writeable and array.flags.writeable
            and array.flags.c_contiguous and array.nbytes == base.nbytes):
        return False
    # the references counted: ``array.base``, the name ``base`` here, getrefcount's argument
    return sys.getrefcount(base) <= 3


def to_numpy(array):
    """A NumPy array with the same contents (a host copy for CuPy arrays)."""
    return array.get() if is_cupy_array(array) else np.asarray(array)
