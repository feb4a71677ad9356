"""Shared fixtures: the device parametrisation and the PyTorch parity helper.

* ``device`` runs a test on ``'cpu'`` and on ``'cuda'``; the cuda case carries the
  ``gpu`` mark. It runs on a real GPU when CuPy finds one, and otherwise on the strict
  NumPy-backed CuPy stand-in (``tests/cupy_standin``), installed as ``cupy`` before
  minisegnet is imported; ``MINISEGNET_STANDIN=0`` turns the stand-in off (then the cuda
  cases skip). The summary says in one line which of the two ran.
* ``parity`` (see :func:`check_parity`) runs one op in minisegnet and in PyTorch on the
  same float64 inputs and compares the outputs and every input gradient.
"""
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))
from cupy_standin.select import select_cupy  # noqa: E402  (before minisegnet imports cupy)

CUPY_KIND = select_cupy()    # 'gpu' (a real GPU), 'standin' (the strict stand-in) or 'none'

import minisegnet as ms  # noqa: E402

try:
    import torch
    torch.set_default_dtype(torch.float64)
except ImportError:       # parity tests skip; .ci/run fails if they did
    torch = None
    if os.environ.get("MINISEGNET_REQUIRE_TORCH"):
        raise RuntimeError("MINISEGNET_REQUIRE_TORCH is set but PyTorch (the test oracle) cannot be "
                           "imported: install the test extra, pip install -e '.[test]'")

requires_torch = pytest.mark.skipif(torch is None, reason="PyTorch (the test oracle) is not installed")


@pytest.fixture(scope="session", params=["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def device(request):
    if request.param == "cuda" and not ms.cuda.is_available():
        pytest.skip("no usable CUDA device")
    return request.param


def pytest_terminal_summary(terminalreporter):
    ran = terminalreporter.stats.get("passed", []) + terminalreporter.stats.get("failed", [])
    if not any("gpu" in getattr(r, "keywords", {}) for r in ran):
        return
    line = {"gpu": "gpu-marked tests ran on a real GPU through CuPy",
            "standin": "gpu-marked tests ran on the strict CuPy stand-in (NumPy-backed, "
                       "tests/cupy_standin): no real GPU was used"}.get(CUPY_KIND)
    if line:
        terminalreporter.write_line(line)


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "parity" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.torch)


def to_ms(array, device="cpu", requires_grad=None):
    """A float64 minisegnet leaf on ``device`` (requires grad for floating arrays by default)."""
    array = np.asarray(array)
    if requires_grad is None:
        requires_grad = array.dtype.kind == "f"
    return ms.tensor(array, device=device, requires_grad=requires_grad)


def to_torch(array, requires_grad=None):
    array = np.asarray(array)
    if requires_grad is None:
        requires_grad = array.dtype.kind == "f"
    return torch.tensor(array, requires_grad=requires_grad)


def check_parity(ms_fn, torch_fn, arrays, device="cpu", rtol=1e-6, atol=1e-9, seed=0,
                 check_grad=True):
    """Run ``ms_fn`` and ``torch_fn`` on the same inputs; compare output and input gradients.

    ``arrays`` is a list of NumPy arrays (floating ones get requires_grad); the functions
    receive the converted tensors positionally. A random upstream gradient (the same for
    both) drives backward. Returns the minisegnet output for further checks.
    """
    if torch is None:
        pytest.skip("PyTorch (the test oracle) is not installed")
    xs = [to_ms(a, device) for a in arrays]
    ts = [to_torch(a) for a in arrays]
    out = ms_fn(*xs)
    ref = torch_fn(*ts)
    np.testing.assert_allclose(out.numpy(), ref.detach().numpy(), rtol=rtol, atol=atol,
                               err_msg="forward output differs from PyTorch")
    if check_grad and ref.requires_grad:
        g = np.random.default_rng(seed).standard_normal(ref.shape)
        out.backward(ms.tensor(g, dtype=out.dtype, device=device))
        ref.backward(torch.tensor(g, dtype=ref.dtype))
        for i, (x, t) in enumerate(zip(xs, ts)):
            if t.grad is None:
                continue
            assert x.grad is not None, f"input {i} got no gradient but PyTorch gives one"
            np.testing.assert_allclose(x.grad.numpy(), t.grad.numpy(), rtol=rtol, atol=atol,
                                       err_msg=f"gradient of input {i} differs from PyTorch")
    return out


@pytest.fixture(scope="session")
def parity():
    """The :func:`check_parity` helper, as a fixture (marks the test ``torch``)."""
    return check_parity
