"""The core tensor ops on the ``cuda`` device, against PyTorch in float64.

``test_tensor_ops.py`` checks every op on the CPU; this file runs the same op tables on the
GPU path (a real GPU, or the strict CuPy stand-in in CI, see ``conftest.py``), so an op that
uses a NumPy-only API, or mixes host and device arrays, fails here. It also covers the
backward passes that need a scatter: gather with repeated indices, max/min along a dim.
"""
import collections
import contextlib
import traceback

import numpy as np
import pytest

import minisegnet as ms
from conftest import check_parity, torch
from test_tensor_ops import BINARY, SHAPE_OPS, UNARY

pytestmark = [pytest.mark.gpu, pytest.mark.torch]


@pytest.fixture(scope="module", autouse=True)
def _cuda():
    if not ms.cuda.is_available():
        pytest.skip("no usable CUDA device")


def _positive(shape, seed):
    return np.abs(np.random.default_rng(seed).standard_normal(shape)) + 0.5


@pytest.mark.parametrize("name", list(BINARY))
def test_binary_ops_on_cuda(name):
    a, b = _positive((2, 3, 4), 0), _positive((3, 1), 1)
    check_parity(*BINARY[name], [a, b], device="cuda")


@pytest.mark.parametrize("name", list(UNARY))
def test_unary_ops_on_cuda(name):
    ms_fn, torch_fn, positive = UNARY[name]
    a = _positive((3, 4), 2) if positive else np.random.default_rng(2).standard_normal((3, 4))
    check_parity(ms_fn, torch_fn, [a], device="cuda")


@pytest.mark.parametrize("name", list(SHAPE_OPS))
def test_shape_ops_on_cuda(name):
    a = np.random.default_rng(7).standard_normal((2, 3, 4))
    check_parity(*SHAPE_OPS[name], [a], device="cuda")


@pytest.mark.parametrize("name", ["sum", "mean", "amax", "amin"])
@pytest.mark.parametrize("dim,keepdim", [(None, False), (1, True), ((0, 2), False)])
def test_reductions_on_cuda(name, dim, keepdim):
    a = np.random.default_rng(4).standard_normal((3, 4, 5))
    kwargs = {} if dim is None else {"dim": dim, "keepdim": keepdim}
    check_parity(lambda x: getattr(x, name)(**kwargs), lambda t: getattr(t, name)(**kwargs), [a],
                 device="cuda")


@pytest.mark.parametrize("op", ["max", "min"])
def test_max_min_along_dim_on_cuda(op):
    a = np.random.default_rng(5).standard_normal((3, 4))
    check_parity(lambda x: getattr(x, op)(dim=1).values, lambda t: getattr(t, op)(dim=1).values,
                 [a], device="cuda")


def test_gather_with_repeated_indices_on_cuda():
    """Several indices per row, some repeated: their gradients add (a scatter-add backward)."""
    a = np.random.default_rng(9).standard_normal((2, 3, 4))
    index = np.array([[[0, 3, 3], [1, 1, 2], [2, 0, 0]]] * 2)
    check_parity(lambda x: x.gather(2, ms.tensor(index)), lambda t: t.gather(2, torch.tensor(index)),
                 [a], device="cuda")


@pytest.mark.parametrize("dim", [0, 1])
def test_cat_and_stack_on_cuda(dim):
    rng = np.random.default_rng(8)
    a, b, c = rng.standard_normal((2, 3)), rng.standard_normal((2, 3)), rng.standard_normal((2, 3))
    check_parity(lambda x, y, z: ms.cat([x, y, z], dim=dim), lambda x, y, z: torch.cat([x, y, z], dim=dim),
                 [a, b, c], device="cuda")
    check_parity(lambda x, y, z: ms.stack([x, y, z], dim=dim), lambda x, y, z: torch.stack([x, y, z], dim=dim),
                 [a, b, c], device="cuda")


# Device-to-host synchronisations a training step may make: the loss read, and
# cross-entropy's check that the labels are in range (max pooling's NaN test, the
# ``total_weight == 0`` test and the backward seed check no longer read back on a GPU).
KNOWN_SYNCS = {"tensor.py", "functional/loss.py"}


@contextlib.contextmanager
def host_syncs():
    """Collect ``file:line (what)`` of every device-to-host sync made inside, on the stand-in,
    which counts each one CuPy makes: ``float(x)``, ``x.item()``, ``bool(x)``, ``x.get()``,
    boolean-mask indexing, ``nonzero``. ``file`` is the innermost minisegnet frame."""
    from cupy_standin import STATE
    places = collections.Counter()

    def record(what):
        stack = traceback.extract_stack()[:-2]
        frames = [f for f in stack if "/minisegnet/" in f.filename.replace("\\", "/")]
        where = frames[-1] if frames else stack[-1]
        places[f"{where.filename.replace(chr(92), '/').split('minisegnet/')[-1]}:{where.lineno} ({what})"] += 1
    STATE.sync_hook = record
    try:
        yield places
    finally:
        STATE.sync_hook = None


def test_host_synchronisations_in_a_training_step():
    """Counts every device-to-host transfer of one PSPNet training step on the stand-in and
    checks each comes from a known place (a new ``float(x)`` in a loop would show here)."""
    from conftest import CUPY_KIND
    if CUPY_KIND != "standin":
        pytest.skip("counted on the stand-in")
    import minisegnet.functional as F
    from minisegnet.models import zoo
    model = zoo.create("pspnet", num_classes=4).to("cuda")
    opt = ms.optim.Adam(model.parameters(), lr=1e-3)
    x = ms.tensor(np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32), device="cuda")
    y = ms.tensor(np.random.default_rng(1).integers(0, 4, (2, 32, 32)), device="cuda")
    with host_syncs() as places:
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        loss.item()
    assert sorted(where.split(":")[0] for where in places.elements()) == sorted(KNOWN_SYNCS), dict(places)
