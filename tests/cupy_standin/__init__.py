"""A strict NumPy-backed stand-in for CuPy, for running minisegnet's GPU path without a GPU.

``install()`` puts it into ``sys.modules`` as ``cupy`` (and ``cupy.cuda``, ``cupyx``) before
minisegnet imports CuPy; ``tests/conftest.py`` does so when no real GPU is usable. It offers
only CuPy's real public names with CuPy's real signatures (``_cupy_api.py``, generated from
CuPy's source by ``make_api_table.py``) and refuses what CuPy refuses: implicit conversion to
NumPy, NumPy arrays mixed into device arithmetic, unknown names and keywords. Raw and
elementwise kernels run through NumPy twins registered per kernel name.

    import cupy_standin; cupy_standin.install()
    import cupy                       # the stand-in
    x = cupy.arange(6.0).reshape(2, 3)
    x.sum()                           # a 0-d device array
    np.asarray(x)                     # TypeError, as in CuPy; use x.get()
"""
import contextlib
import sys

import numpy as np

from . import _cupy_api, cuda, cupyx, testing  # noqa: F401
from ._array import IMPLICIT_CONVERSION, STATE, Flags, ndarray  # noqa: F401
from ._kernels import ElementwiseKernel, RawKernel, register_twin  # noqa: F401
from ._module import lookup_function, lookup_ufunc, ufunc  # noqa: F401

__version__ = "13.6.0+standin"
IS_STANDIN = True

_numpy_names = {name for name, kind in _cupy_api.OTHER_NAMES.items() if kind == "numpy"}


def __getattr__(name):
    """``cupy.<name>``: only what CuPy has (functions, ufuncs, NumPy dtypes it re-exports)."""
    if name in _numpy_names:
        return getattr(np, name)
    f = lookup_function(name)
    if f is not None:
        return f
    raise AttributeError(f"module 'cupy' has no attribute '{name}' (the stand-in offers only "
                         "names every supported CuPy version has: see tests/cupy_standin/_cupy_api.py)")


def install():
    """Make ``import cupy`` / ``import cupyx`` give the stand-in (idempotent)."""
    this = sys.modules[__name__]
    sys.modules["cupy"] = this
    sys.modules["cupy.cuda"] = cuda
    sys.modules["cupy.cuda.runtime"] = cuda.runtime
    sys.modules["cupy.cuda.nvrtc"] = cuda.nvrtc
    sys.modules["cupy.testing"] = testing
    sys.modules["cupyx"] = cupyx
    return this


def installed():
    return getattr(sys.modules.get("cupy"), "IS_STANDIN", False)


@contextlib.contextmanager
def simulate(device_count=None, compute_capability=None, nvrtc_available=None):
    """Temporarily change the simulated machine (no GPU, an old GPU, no NVRTC)."""
    saved = (STATE.device_count, STATE.compute_capability, STATE.nvrtc_available)
    if device_count is not None:
        STATE.device_count = device_count
    if compute_capability is not None:
        STATE.compute_capability = compute_capability
    if nvrtc_available is not None:
        STATE.nvrtc_available = nvrtc_available
    try:
        yield STATE
    finally:
        STATE.device_count, STATE.compute_capability, STATE.nvrtc_available = saved


def syncs():
    """How many device-to-host transfers (``get``, ``item``, ``float(x)``, ...) happened so far."""
    return STATE.syncs
