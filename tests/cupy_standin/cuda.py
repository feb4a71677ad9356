"""The stand-in's ``cupy.cuda``: the pieces minisegnet reads (device count, versions, NVRTC,
compute capability). Names and signatures from CuPy v13.6.0/v14.2.0:
``cupy_backends/cuda/api/runtime.pyx`` (``getDeviceCount()``, ``runtimeGetVersion()``,
``driverGetVersion()``, ``CUDARuntimeError(status)``), ``cupy_backends/cuda/libs/nvrtc.pyx``
(``getVersion()``), ``cupy/cuda/device.pyx`` (``Device(device=None)``, ``.compute_capability``
a string such as ``'90'``, ``.synchronize()``, ``.use()``). ``STATE`` (see ``simulate``) decides
what the simulated machine has.
"""
import types

from ._array import STATE


class CUDARuntimeError(RuntimeError):
    _NAMES = {35: ("cudaErrorInsufficientDriver",
                   "CUDA driver version is insufficient for CUDA runtime version"),
              100: ("cudaErrorNoDevice", "no CUDA-capable device is detected")}

    def __init__(self, status):
        self.status = status
        name, msg = self._NAMES.get(status, ("cudaErrorUnknown", "unknown error"))
        super().__init__(f"{name}: {msg}")


def _check_device():
    if STATE.device_count == 0:
        raise CUDARuntimeError(100)


def getDeviceCount():
    _check_device()
    return STATE.device_count


def runtimeGetVersion():
    return 12080


def driverGetVersion():
    _check_device()
    return 12080


runtime = types.ModuleType("cupy.cuda.runtime")
runtime.CUDARuntimeError = CUDARuntimeError
runtime.getDeviceCount = getDeviceCount
runtime.runtimeGetVersion = runtimeGetVersion
runtime.driverGetVersion = driverGetVersion


def getVersion():
    if not STATE.nvrtc_available:
        # what CuPy raises when libnvrtc cannot be loaded (cupy_backends/cuda/libs/nvrtc.pyx)
        raise RuntimeError("CuPy failed to load libnvrtc.so.12: OSError: libnvrtc.so.12: "
                           "cannot open shared object file: No such file or directory")
    return (12, 8)


nvrtc = types.ModuleType("cupy.cuda.nvrtc")
nvrtc.getVersion = getVersion


class Device:
    def __init__(self, device=None):
        _check_device()
        self.id = 0 if device is None else int(device)
        if not 0 <= self.id < STATE.device_count:
            raise CUDARuntimeError(101)

    @property
    def compute_capability(self):
        return STATE.compute_capability

    def synchronize(self):
        pass

    def use(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def __repr__(self):
        return f"<CUDA Device {self.id}>"


def is_available():
    return STATE.device_count > 0
