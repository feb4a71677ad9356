"""The ReLU and per-channel-sum kernels (minisegnet.kernels.relu): NumPy's fast spellings
of ``max(x, 0)`` and ``x.sum(axis=...)`` give PyTorch's numbers (special values, signed
zeros, layouts, dtypes), on the CPU and on the CuPy path; and batch norm's statistics,
which now sum that way, stay precise with a large mean."""
import numpy as np
import pytest

import minisegnet as ms
import minisegnet.functional as F
from minisegnet.kernels import normalization as K
from minisegnet.kernels import relu as R
from conftest import requires_torch, torch

SPECIAL = [-0.0, 0.0, np.nan, -np.inf, np.inf, -1.5, 2.5, 1e-45, -1e-45, 3e38, -3e38]


@requires_torch
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(), (7,), (2, 3, 5, 4), (8, 16, 12, 12)])
def test_relu_matches_torch_with_special_values(dtype, shape):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(dtype)
    if x.size >= len(SPECIAL):
        x.reshape(-1)[:len(SPECIAL)] = SPECIAL
    y = R.relu(x)
    expected = torch.relu(torch.from_numpy(x.copy())).numpy()
    assert y.dtype == x.dtype and y.shape == x.shape
    np.testing.assert_array_equal(y, expected)                      # NaN where NaN, bit for bit
    assert not np.signbit(y[y == 0]).any()                          # max(-0.0, 0) is +0.0, as torch


@requires_torch
def test_relu_of_a_strided_view_and_in_place():
    rng = np.random.default_rng(1)
    base = rng.standard_normal((4, 6, 10, 10)).astype(np.float32)
    x = base.transpose(0, 2, 1, 3)[:, ::2]                          # not contiguous
    np.testing.assert_array_equal(R.relu(x), torch.relu(torch.from_numpy(np.ascontiguousarray(x))).numpy())
    y = base.copy()
    out = R.relu(y, out=y)
    assert out is y
    np.testing.assert_array_equal(y, np.where(base > 0, base, 0))


def test_the_zeros_are_shared_read_only_and_grow():
    small = R.zeros_like_image(np.ones((2, 3, 4), np.float32))
    big = R.zeros_like_image(np.ones((1, 64, 64, 64), np.float32))
    again = R.zeros_like_image(np.ones((5, 3, 4), np.float32))
    assert small.shape == again.shape == (3, 4) and big.shape == (64, 64, 64)
    assert not big.flags.writeable and not again.flags.writeable
    assert not big.any() and not again.any()
    assert np.shares_memory(big, again)                             # one buffer, reused
    assert R.zeros_like_image(np.ones((2, 3), np.float64)).dtype == np.float64


@requires_torch
@pytest.mark.parametrize("shape,axes", [((8, 16, 100), (0, 2)), ((3, 5, 7, 9), (0, 2, 3)), ((4, 6), (0,)),
                                        ((2, 3, 4), (1,))])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_channel_sum_matches_torch(shape, axes, dtype):
    x = np.random.default_rng(2).standard_normal(shape).astype(dtype) + 3.0
    got = R.channel_sum(x, axes)
    expected = torch.from_numpy(x.astype(np.float64)).sum(dim=axes).numpy()
    assert got.dtype == dtype and got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-6 if dtype == np.float32 else 1e-13)


@requires_torch
def test_relu_op_forward_and_gradient_match_torch(device):
    rng = np.random.default_rng(3)
    x_np = rng.standard_normal((4, 8, 9, 9))
    x_np.reshape(-1)[:3] = 0.0                                      # the kink: gradient 0, as torch
    x = ms.tensor(x_np, device=device, requires_grad=True)
    y = F.relu(x)
    g = rng.standard_normal(x_np.shape)
    y.backward(ms.tensor(g, device=device))
    xt = torch.tensor(x_np, requires_grad=True)
    yt = torch.relu(xt)
    yt.backward(torch.tensor(g))
    np.testing.assert_array_equal(y.numpy(), yt.detach().numpy())
    np.testing.assert_array_equal(x.grad.numpy(), xt.grad.numpy())


@pytest.mark.parametrize("mean,std", [(1e5, 1.0), (3e4, 1.0), (1000.0, 0.01)])
def test_batch_statistics_correct_the_first_sums_rounding(mean, std):
    """The corrected two-pass variance: a float32 first sum of 32768 values near 1e5 is off
    by far more than the spread, and without the correction term the variance would be
    off by ~6e-5 relative (measured); with it, within 1e-5 of the float64 truth."""
    x = (np.random.default_rng(4).standard_normal((8, 4, 64 * 64)) * std + mean).astype(np.float32)
    got_mean, got_var = K.batch_statistics(x)
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(got_mean, x64.mean(axis=(0, 2)), rtol=1e-9)
    np.testing.assert_allclose(got_var, x64.var(axis=(0, 2)), rtol=1e-5)
