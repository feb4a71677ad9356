"""The exact GELU's kernels (minisegnet.kernels.gelu): the float32 one-formula Phi against
math.erfc (the oracle) over the whole line, tails included; forward and gradient against
a float64 reference and against PyTorch in float32; the fitted coefficients; blocks split
over 1, 2 and 3 threads."""
import math
import threading

import numpy as np
import pytest

import minisegnet as ms
import minisegnet.functional as F
from minisegnet.kernels import gelu as G
from minisegnet.kernels import threads as T
from conftest import requires_torch, torch


def _reference(x):
    """gelu(x) and its slope in float64 from math.erfc: Phi(x) = erfc(-x / sqrt 2) / 2."""
    x = np.asarray(x, dtype=np.float64)
    phi_cdf = np.array([0.5 * math.erfc(-v / math.sqrt(2)) for v in x.ravel()]).reshape(x.shape)
    density = np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)
    return x * phi_cdf, phi_cdf + x * density


def test_fitted_exponent_gives_erfc_to_3e_7_relative():
    z = np.linspace(0, 9.5, 20001)
    t = 1 / (1 + z / 2)
    approx = t * np.exp(-z * z + np.polyval(np.array(G.ERFC_EXPONENT)[::-1], t))
    exact = np.array([math.erfc(v) for v in z])
    assert np.max(np.abs(approx - exact) / exact) < 3e-7


def test_the_stored_coefficients_are_what_the_fit_gives():
    np.testing.assert_allclose(G.fit_erfc_exponent(), G.ERFC_EXPONENT, rtol=1e-9, atol=1e-12)


def test_float32_forward_and_slope_are_close_to_the_float64_truth_everywhere():
    """Relative error below 2e-5 on [-12, 12] (the negative tail has no 1 + erf
    cancellation), and exact zeros/saturation far out."""
    x = np.concatenate([np.linspace(-12, 12, 48001), [0.0, -0.0, 1e-30, -1e-30, 40.0, -40.0]]).astype(np.float32)
    y_ref, slope_ref = _reference(x)
    y = G.gelu_forward(x)
    slope = G.gelu_backward(x, np.ones_like(x))
    assert y.dtype == slope.dtype == np.float32
    tiny = np.abs(y_ref) < 1e-30                                # below float32's normal range
    rel = np.abs(y.astype(np.float64) - y_ref) / np.maximum(np.abs(y_ref), 1e-300)
    assert rel[~tiny].max() < 2e-5
    assert np.abs(y[tiny]).max() < 1e-30
    assert np.abs(slope.astype(np.float64) - slope_ref).max() < 3e-6   # the slope is O(1): absolute
    assert y[-2] == 40.0 and y[-1] == 0.0


@requires_torch
def test_float32_matches_torch():
    x = (np.random.default_rng(0).standard_normal((4, 8, 33, 17)) * 3).astype(np.float32)
    g = np.random.default_rng(1).standard_normal(x.shape).astype(np.float32)
    ours = ms.tensor(x, requires_grad=True)
    out = F.gelu(ours)
    out.backward(ms.tensor(g))
    theirs = torch.tensor(x, requires_grad=True)
    ref = torch.nn.functional.gelu(theirs)
    ref.backward(torch.tensor(g))
    np.testing.assert_allclose(out.numpy(), ref.detach().numpy(), rtol=1e-5, atol=2e-6)
    np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy(), rtol=1e-5, atol=2e-6)


def test_float64_keeps_the_exact_erf():
    """Float64 keeps ``x/2 (1 + erf(x / sqrt 2))`` with fdlibm's erf, as PyTorch computes it:
    exact to ~1e-16 absolute (relative in the far negative tail it has 1 + erf's
    cancellation, as PyTorch's float64 GELU has)."""
    x = np.linspace(-8, 8, 3001)
    y_ref, slope_ref = _reference(x)
    np.testing.assert_allclose(G.gelu_forward(x), y_ref, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(G.gelu_backward(x, np.ones_like(x)), slope_ref, rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("n", [1, 2, 3])
def test_blocks_split_over_n_threads(monkeypatch, n):
    seen, run_chunk = [], T._run_chunk

    def recording(fn, start, stop):
        seen.append((threading.get_ident(), start, stop))
        return run_chunk(fn, start, stop)
    monkeypatch.setattr(T, "_run_chunk", recording)
    x = np.linspace(-6, 6, 7 * (G.BLOCK // 2 * 5 // 7 + 11)).astype(np.float32).reshape(-1, 7)[:, ::-1]   # strided
    g = np.cos(x)
    y_ref, slope_ref = _reference(x)
    try:
        T.set_num_threads(n)
        y, dx = G.gelu_forward(x), G.gelu_backward(x, g)
    finally:
        T.set_num_threads(None)
    assert (seen == []) if n == 1 else (len(seen) == 2 * n and len({i for i, _, _ in seen}) >= 2)
    np.testing.assert_allclose(y, y_ref, rtol=2e-5, atol=1e-6)
    np.testing.assert_allclose(dx, g * slope_ref, rtol=2e-5, atol=3e-6)
