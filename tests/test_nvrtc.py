"""Every CUDA source of minisegnet compiles with NVRTC, and every raw kernel agrees with its twin.

NVRTC (the CUDA runtime compiler CuPy uses for ``RawKernel``) runs on the CPU: the
``nvidia-cuda-nvrtc-cu12`` and ``cuda-bindings`` wheels of the test extra are enough, no GPU
or driver. Each kernel is compiled for compute capabilities 5.0 (the oldest CUDA 12 supports),
6.0 (the first with a float64 ``atomicAdd``), 8.0 and 9.0, in each dtype it is built for, so a
syntax or type error fails CI instead of a user's first GPU run. On a real GPU, each kernel is
also launched on its example inputs and compared with its NumPy twin.
"""
import numpy as np
import pytest

from conftest import CUPY_KIND
from minisegnet.kernels.cuda_sources import RAW_KERNELS

try:
    from cuda.bindings import nvrtc
except ImportError:            # older cuda-python spells it cuda.nvrtc
    try:
        from cuda import nvrtc
    except ImportError:
        nvrtc = None

ARCHS = (50, 60, 80, 90)
CASES = [(k, np.dtype(d), arch) for k in RAW_KERNELS for d in k.dtypes for arch in ARCHS]


def compile_ptx(source, arch):
    """(ok, log, ptx) of compiling ``source`` for ``compute_<arch>`` with NVRTC."""
    err, prog = nvrtc.nvrtcCreateProgram(source.encode(), b"kernel.cu", 0, [], [])
    assert err == nvrtc.nvrtcResult.NVRTC_SUCCESS, err
    try:
        opts = [f"--gpu-architecture=compute_{arch}".encode()]
        (result,) = nvrtc.nvrtcCompileProgram(prog, len(opts), opts)
        _, size = nvrtc.nvrtcGetProgramLogSize(prog)
        log = b" " * size
        nvrtc.nvrtcGetProgramLog(prog, log)
        ptx = b""
        if result == nvrtc.nvrtcResult.NVRTC_SUCCESS:
            _, size = nvrtc.nvrtcGetPTXSize(prog)
            ptx = b" " * size
            nvrtc.nvrtcGetPTX(prog, ptx)
        return result == nvrtc.nvrtcResult.NVRTC_SUCCESS, log.decode(errors="replace"), ptx.decode(errors="replace")
    finally:
        nvrtc.nvrtcDestroyProgram(prog)


needs_nvrtc = pytest.mark.skipif(nvrtc is None, reason="NVRTC wheels (nvidia-cuda-nvrtc-cu12, "
                                 "cuda-bindings) are not installed: pip install -e '.[test]'")


@needs_nvrtc
@pytest.mark.parametrize("kernel,dtype,arch", CASES,
                         ids=[f"{k.name}-{d.name}-sm{a}" for k, d, a in CASES])
def test_cuda_source_compiles(kernel, dtype, arch):
    ok, log, ptx = compile_ptx(kernel.source(dtype), arch)
    assert ok, f"{kernel.name} ({dtype}) does not compile for compute_{arch}:\n{log}"
    assert f".entry {kernel.name}(" in ptx, f"no extern \"C\" entry point {kernel.name} in the PTX"


@needs_nvrtc
def test_float64_atomic_add_is_native_from_sm60_and_emulated_before():
    """The double ``atomicAdd`` exists from compute capability 6.0; below, a CAS loop stands in."""
    from minisegnet.kernels.cuda_sources import MAX_POOL2D_BACKWARD
    source = MAX_POOL2D_BACKWARD.source(np.float64)
    _, _, old = compile_ptx(source, 50)
    _, _, new = compile_ptx(source, 60)
    assert "atom.global.cas.b64" in old and "atom.global.add.f64" not in old
    assert "atom.global.add.f64" in new


@needs_nvrtc
def test_a_broken_source_fails_the_check():
    ok, log, _ = compile_ptx('extern "C" __global__ void broken(float* x) { x[0] = undefined; }', 80)
    assert not ok and "undefined" in log


@pytest.mark.gpu
@pytest.mark.skipif(CUPY_KIND != "gpu", reason="needs a real GPU (on the stand-in a launch runs the twin)")
@pytest.mark.parametrize("kernel,dtype", [(k, np.dtype(d)) for k in RAW_KERNELS for d in k.dtypes])
def test_raw_kernel_matches_its_twin_on_a_gpu(kernel, dtype):
    import cupy as cp
    grid, block, args = kernel.example(np.random.default_rng(0), dtype)
    device_args = tuple(cp.asarray(a) if isinstance(a, np.ndarray) else a for a in args)
    cp.RawKernel(kernel.source(dtype), kernel.name)(grid, block, device_args)
    host_args = tuple(a.copy() if isinstance(a, np.ndarray) else a for a in args)
    kernel.twin(grid, block, host_args)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for i, (d, h) in enumerate(zip(device_args, host_args)):
        if isinstance(h, np.ndarray):
            np.testing.assert_allclose(cp.asnumpy(d), h, rtol=tol, atol=tol,
                                       err_msg=f"{kernel.name} argument {i}: kernel and twin differ")
