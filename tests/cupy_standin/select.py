"""Choose what ``import cupy`` gives the tests: a real GPU when usable, else the stand-in."""
import importlib.util
import os
import sys


def _real_gpu_usable():
    if importlib.util.find_spec("cupy") is None:
        return False
    try:
        import cupy
        return cupy.cuda.runtime.getDeviceCount() > 0 and int((cupy.arange(3) * 2).sum()) == 6
    except Exception:
        for name in [m for m in sys.modules if m == "cupy" or m.startswith(("cupy.", "cupyx"))]:
            del sys.modules[name]
        return False


def register_package_twins():
    """Every raw CUDA kernel of minisegnet runs on the stand-in through its NumPy twin."""
    from minisegnet.kernels import cuda_sources
    from . import register_twin
    for kernel in cuda_sources.RAW_KERNELS:
        register_twin(kernel.name, kernel.twin)


def select_cupy():
    """'gpu', 'standin' or 'none' (``MINISEGNET_STANDIN=0`` and no GPU)."""
    if getattr(sys.modules.get("cupy"), "IS_STANDIN", False):    # installed already (a dry run)
        register_package_twins()
        return "standin"
    if _real_gpu_usable():
        return "gpu"
    if os.environ.get("MINISEGNET_STANDIN", "1") == "0":
        return "none"
    from . import install
    install()
    register_package_twins()
    return "standin"
