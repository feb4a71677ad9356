"""The CuPy stand-in refuses what CuPy refuses, and the GPU path's error messages.

The stand-in (``tests/cupy_standin``) is only worth something if it is at least as strict as
CuPy: each test here is a call CuPy rejects (implicit conversion to NumPy, NumPy arrays mixed
into device work, names and keywords CuPy does not have, a badly typed kernel launch) and
checks that the stand-in rejects it too, plus the device-side behaviour the package relies on
(0-d results, ``flags``). These tests use the stand-in module directly, so they run (and mean
the same) whether or not a real GPU is present.
"""
import numpy as np
import pytest

import cupy_standin as cs
import minisegnet as ms
from conftest import CUPY_KIND
from minisegnet import backend
from minisegnet.kernels import cuda_sources


@pytest.fixture
def x():
    return cs.arange(6.0).reshape(2, 3)


# ---------------------------------------------------------------- what CuPy refuses
def test_refuses_implicit_conversion(x):
    for convert in (np.asarray, np.array, lambda a: np.array([a, a]), lambda a: np.float64(a)):
        with pytest.raises(TypeError, match="Implicit conversion to a NumPy array is not allowed"):
            convert(x)
    np.testing.assert_array_equal(x.get(), np.arange(6.0).reshape(2, 3))
    np.testing.assert_array_equal(cs.asnumpy(x), np.arange(6.0).reshape(2, 3))


def test_refuses_numpy_operands(x):
    host = np.ones(3)
    for mix in (lambda: x + host, lambda: host + x, lambda: x * host, lambda: host < x,
                lambda: cs.exp(host), lambda: cs.add(x, host), lambda: cs.concatenate([x, host[None]]),
                lambda: cs.matmul(x, np.ones((3, 2))), lambda: cs.where(x > 1, x, host)):
        with pytest.raises(TypeError, match="Unsupported type <class 'numpy.ndarray'>"):
            mix()
    with pytest.raises(ValueError, match="non-scalar numpy.ndarray"):
        x[0] = host
    with pytest.raises(TypeError, match="Unsupported type"):
        x += host


def test_host_data_enters_only_by_copy():
    host = np.arange(3.0)
    dev = cs.asarray(host)
    host[0] = 99.0                       # a device array is its own memory
    assert dev[0].item() == 0.0
    assert cs.asarray(dev) is dev        # already on the device: no copy


def test_refuses_names_cupy_lacks(x):
    for name in ("put_along_axis", "not_a_function", "setbufsize"):
        with pytest.raises(AttributeError, match=f"no attribute '{name}'"):
            getattr(cs, name)
    for name in ("setflags", "itemset", "ctypes"):
        with pytest.raises(AttributeError, match=name):
            getattr(x, name)
    with pytest.raises(AttributeError, match="writeable"):
        x.flags.writeable
    import cupy_standin.cupyx as cupyx
    with pytest.raises(AttributeError, match="scatter_add"):
        cupyx.scatter_add


def test_refuses_keywords_cupy_lacks(x):
    with pytest.raises(TypeError, match="unexpected keyword argument 'sparse'"):
        cs.indices((2, 3), sparse=True)
    with pytest.raises(TypeError, match="unexpected keyword argument 'like'"):
        cs.zeros(3, like=x)
    with pytest.raises(TypeError, match="unexpected keyword argument 'where'"):
        x.sum(where=x > 0)
    with pytest.raises(TypeError, match="Wrong arguments"):
        cs.add(x, x, where=x > 0)
    with pytest.raises(TypeError, match="too many positional"):
        cs.zeros(3, np.float32, "C", 1)


def test_scatter_add_rules_of_cupy(x):
    out = cs.zeros(4)
    cs.add.at(out, cs.asarray(np.array([0, 0, 3])), cs.ones(3))
    np.testing.assert_array_equal(out.get(), [2.0, 0.0, 0.0, 1.0])
    with pytest.raises(TypeError, match="only supports"):
        cs.add.at(cs.zeros(4, dtype=np.int64), cs.asarray(np.array([0])), 1)   # no int64 atomics
    with pytest.raises(NotImplementedError, match="maximum.at"):
        cs.maximum.at(cs.zeros(4), cs.asarray(np.array([0])), 1.0)


# ---------------------------------------------------------------- device-side behaviour
def test_reductions_and_integer_indexing_give_0d_arrays(x):
    for value in (x.sum(), x.max(), cs.mean(x), x[1, 2], x[0][1], np.sum(x), x.argmax()):
        assert isinstance(value, cs.ndarray) and value.ndim == 0
    assert float(x[1, 2]) == 5.0 and int(x.argmax()) == 5


def test_flags_are_cupys(x):
    assert x.flags.c_contiguous and not x.T.flags.c_contiguous and x.T.flags.f_contiguous
    assert x.copy().flags.owndata
    assert set(type(x.flags).__slots__) == {"c_contiguous", "f_contiguous", "owndata"}


def test_numpy_functions_dispatch_to_cupy(x):
    y = np.exp(x)
    assert isinstance(y, cs.ndarray)
    np.testing.assert_allclose(y.get(), np.exp(x.get()))
    assert isinstance(np.concatenate([x, x]), cs.ndarray)


def test_host_synchronisations_are_counted(x):
    before = cs.syncs()
    float(x.sum())
    x.get()
    assert cs.syncs() - before == 2


# ---------------------------------------------------------------- kernel launches
_SCALE = r"""
#define T float
extern "C" __global__ void standin_scale(const T* x, T* y, const int n, const double factor) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = x[i] * factor;
}
"""


def _scale_twin(grid, block, args):
    x, y, n, factor = args
    i = np.arange(grid[0] * block[0])
    i = i[i < n]
    y[i] = x[i] * factor


def test_raw_kernel_launch_runs_its_twin():
    cs.register_twin("standin_scale", _scale_twin)
    kernel = cs.RawKernel(_SCALE, "standin_scale")
    x, y = cs.arange(5, dtype=np.float32), cs.zeros(5, dtype=np.float32)
    kernel((1,), (8,), (x, y, np.int32(5), 2.0))
    np.testing.assert_array_equal(y.get(), np.arange(5) * 2.0)


@pytest.mark.parametrize("grid,block,args,error", [
    ((1,), (8,), "xy", None),
    (1, (8,), "xy", "grid"),                                             # not a tuple
    ((1,), (2048,), "xy", "block"),                                      # > 1024 threads
    ((1,), (8,), "x", "takes 4 arguments"),
    ((1,), (8,), "x64", "expected dtype float32"),
    ((1,), (8,), "xT", "not C-contiguous"),
    ((1,), (8,), "xn", "Unsupported type"),                              # a host array
    ((1,), (8,), "xy-pyint", "passed as int64"),                         # n must be np.int32
])
def test_raw_kernel_launch_is_checked(grid, block, args, error):
    cs.register_twin("standin_scale", _scale_twin)
    kernel = cs.RawKernel(_SCALE, "standin_scale")
    x = cs.zeros(4, dtype=np.float32)
    y = {"y": cs.zeros(4, dtype=np.float32), "6": cs.zeros(4, dtype=np.float64),
         "T": cs.zeros((2, 2), dtype=np.float32).T, "n": np.zeros(4, np.float32)}
    if args == "x":
        launch = (x, y["y"], np.int32(4))
    elif args == "xy-pyint":
        launch = (x, y["y"], 4, 1.0)
    else:
        launch = (x, y[{"xy": "y", "x64": "6", "xT": "T", "xn": "n"}[args]], np.int32(4), 1.0)
    if error is None:
        kernel(grid, block, launch)
        return
    with pytest.raises((TypeError, ValueError), match=error):
        kernel(grid, block, launch)


def test_every_package_kernel_has_a_twin_that_runs():
    """The stand-in runs each raw kernel of minisegnet through its twin: each is registered."""
    assert cuda_sources.RAW_KERNELS
    from cupy_standin._kernels import _TWINS
    from cupy_standin.select import register_package_twins
    register_package_twins()          # what conftest does when it installs the stand-in
    for kernel in cuda_sources.RAW_KERNELS:
        assert _TWINS.get(kernel.name) is kernel.twin, kernel.name
        grid, block, args = kernel.example(np.random.default_rng(0), np.float32)
        kernel.twin(grid, block, args)


def test_api_table_comes_from_cupy_source():
    from cupy_standin import _cupy_api as api
    assert set(api.TAGS) == {"v13.6.0", "v14.2.0"}
    assert all(len(commit) == 40 for commit in api.TAGS.values())
    assert "put_along_axis" in api.ONLY_IN_SOME_TAGS["v14.2.0"]      # missing in CuPy 13
    assert api.FUNCTIONS["indices"] == ["dimensions, dtype="]
    assert set(api.NDARRAY_METHODS) >= {"sum", "reshape", "astype", "get"}


# ---------------------------------------------------------------- "no usable CUDA device"
@pytest.mark.skipif(CUPY_KIND != "standin", reason="simulates machines on the stand-in only")
@pytest.mark.parametrize("machine,named", [
    (dict(device_count=0), "no NVIDIA driver or no GPU"),
    (dict(nvrtc_available=False), r"NVRTC.*cupy-cuda12x\[ctk\]"),
    (dict(compute_capability="35"), "too old: compute capability 3.5"),
])
def test_no_usable_device_names_the_missing_piece(machine, named, monkeypatch):
    monkeypatch.setattr(backend, "_cuda_problem", None)
    with cs.simulate(**machine):
        with pytest.raises(RuntimeError, match="no usable CUDA device was found: .*" + named):
            ms.zeros(2, device="cuda")
        monkeypatch.setattr(backend, "_cuda_problem", None)
        assert not ms.cuda.is_available()
    monkeypatch.setattr(backend, "_cuda_problem", None)
    assert ms.cuda.is_available()


def test_no_cupy_names_the_gpu_extra(monkeypatch):
    monkeypatch.setattr(backend, "_cuda_problem", None)
    monkeypatch.setattr(backend, "_cupy", None)
    monkeypatch.setitem(__import__("sys").modules, "cupy", None)    # import cupy -> ImportError
    assert "pip install 'minisegnet[gpu]'" in backend.cuda_problem()
    monkeypatch.setattr(backend, "_cuda_problem", None)


def test_elementwise_kernel_checks_types_and_runs_its_twin():
    def axpy_twin(x, y, a, z, size=None):
        z[...] = a * x + y
    cs.register_twin("standin_axpy", axpy_twin)
    axpy = cs.ElementwiseKernel("T x, T y, float32 a", "T z", "z = a * x + y", "standin_axpy")
    x, y = cs.arange(4, dtype=np.float32), cs.ones(4, dtype=np.float32)
    z = cs.zeros(4, dtype=np.float32)
    axpy(x, y, np.float32(2), z)
    np.testing.assert_array_equal(z.get(), 2 * np.arange(4) + 1)
    with pytest.raises(TypeError, match="type T is both"):
        axpy(x, cs.ones(4), np.float32(2), z)            # T bound to float32 and float64
    with pytest.raises(TypeError, match="a is float32"):
        axpy(x, y, np.float64(2), z)
    with pytest.raises(TypeError, match="Wrong number of arguments"):
        axpy(x, y)
    with pytest.raises(TypeError, match="Wrong arguments"):
        cs.ElementwiseKernel("T x", "T z", "z = x", "k", unknown_option=1)
