"""PyTorch conformance of pooling: return_indices, dilation, max_unpool2d, unbatched input.

Every case runs in minisegnet and in PyTorch (float64) and compares outputs, indices
and every input gradient; ties are provoked with small integer-valued inputs.
"""
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import minisegnet as ms
import minisegnet.functional as F
import minisegnet.nn as nn
from minisegnet.gradcheck import gradcheck
from minisegnet.kernels import pooling as K
from conftest import requires_torch, torch

if torch is not None:
    import torch.nn.functional as TF

SETTINGS = settings(max_examples=20, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


def ties(*shape, seed=0, levels=3):
    """Small integers as float64: many equal maxima in every window."""
    return np.random.default_rng(seed).integers(0, levels, shape).astype(np.float64)


def assert_indices_equal(ours, ref):
    assert ours.dtype == np.int64
    np.testing.assert_array_equal(ours.numpy(), ref.numpy(), err_msg="indices differ from PyTorch")


# ------------------------------------------------------------------ max_pool2d(return_indices)
@st.composite
def max_cases(draw):
    k = draw(st.integers(1, 4))
    p = draw(st.integers(0, k // 2))
    s = draw(st.integers(1, 3))
    d = draw(st.integers(1, 3))
    h, w = draw(st.integers(1, 11)), draw(st.integers(1, 11))
    n, c = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    return (n, c, h, w), k, s, p, d, draw(st.booleans()), draw(st.integers(0, 100))


@requires_torch
@SETTINGS
@given(case=max_cases())
def test_max_pool2d_indices_and_gradient_match_torch_with_ties(case, parity):
    shape, k, s, p, d, ceil_mode, seed = case
    # PyTorch refuses kernels that do not fit, and its backward does not survive windows
    # that hold only padding (possible with dilation); skip those draws.
    span = d * (k - 1) + 1
    assume(all(K.pool_output_size(n, k, s, p, d, ceil_mode) >= 1 for n in shape[2:]))
    assume(all(n >= span - 2 * p if d == 1 else n >= span for n in shape[2:]))
    x = ties(*shape, seed=seed)
    out = parity(lambda t: F.max_pool2d(t, k, s, p, d, ceil_mode),
                 lambda t: TF.max_pool2d(t, k, s, p, d, ceil_mode), [x])
    _, index = F.max_pool2d(ms.tensor(x), k, s, p, d, ceil_mode, return_indices=True)
    _, ref = TF.max_pool2d(torch.tensor(x), k, s, p, d, ceil_mode, return_indices=True)
    assert_indices_equal(index, ref)
    assert out.shape == tuple(ref.shape)


def test_max_pool2d_indices_by_hand():
    x = ms.tensor(np.array([[[[1., 5., 5., 0.],
                              [2., 5., 3., 4.],
                              [0., 0., 9., 9.]]]]))
    out, index = F.max_pool2d(x, 2, stride=2, ceil_mode=True, return_indices=True)
    np.testing.assert_array_equal(out.numpy()[0, 0], [[5, 5], [0, 9]])
    # first maximum in row-major order: (0, 1) -> 1, (0, 2) -> 2, (2, 0) -> 8, (2, 2) -> 10
    np.testing.assert_array_equal(index.numpy()[0, 0], [[1, 2], [8, 10]])


@requires_torch
def test_window_of_minus_inf_points_at_its_first_real_element():
    x = np.full((1, 2, 5, 4), -np.inf)
    x[0, 1, 2, 2] = 1.0
    for args in [(3, 2, 1, 1), (3, 1, 1, 2), (2, 2, 1, 1)]:
        out, index = F.max_pool2d(ms.tensor(x), *args, return_indices=True)
        ref_out, ref = TF.max_pool2d(torch.tensor(x), *args, return_indices=True)
        np.testing.assert_array_equal(out.numpy(), ref_out.numpy())
        assert_indices_equal(index, ref)


@requires_torch
def test_nan_index_is_the_last_nan_like_torch(device):
    x = ties(1, 1, 6, 6, seed=4)
    x[0, 0, 0, 0] = x[0, 0, 1, 1] = x[0, 0, 4, 5] = np.nan
    for fn, tfn in [(lambda t: F.max_pool2d(t, 3, 1, 1, return_indices=True),
                     lambda t: TF.max_pool2d(t, 3, 1, 1, return_indices=True)),
                    (lambda t: F.adaptive_max_pool2d(t, (4, 3), return_indices=True),
                     lambda t: TF.adaptive_max_pool2d(t, (4, 3), return_indices=True))]:
        (out, index), (ref_out, ref) = fn(ms.tensor(x, device=device)), tfn(torch.tensor(x))
        assert out.device == index.device == device
        np.testing.assert_array_equal(out.numpy(), ref_out.numpy())
        assert_indices_equal(index, ref)


@requires_torch
@SETTINGS
@given(h=st.integers(1, 11), w=st.integers(1, 11), oh=st.integers(1, 7), ow=st.integers(1, 7),
       seed=st.integers(0, 100))
def test_adaptive_max_pool2d_indices_match_torch_with_ties(h, w, oh, ow, seed, parity):
    x = ties(2, 2, h, w, seed=seed)
    parity(lambda t: F.adaptive_max_pool2d(t, (oh, ow)), lambda t: TF.adaptive_max_pool2d(t, (oh, ow)), [x])
    _, index = F.adaptive_max_pool2d(ms.tensor(x), (oh, ow), True)
    _, ref = TF.adaptive_max_pool2d(torch.tensor(x), (oh, ow), True)
    assert_indices_equal(index, ref)


# ------------------------------------------------------------------ max_unpool2d
UNPOOL_CASES = [  # input shape, kernel_size, stride, padding, output_size
    ((2, 3, 8, 8), 2, None, 0, None),
    ((1, 2, 9, 7), 2, 2, 0, (9, 7)),              # odd sizes: the output size must be given
    ((1, 2, 9, 9), 3, 2, 1, None),                # overlapping windows: repeated indices
    ((2, 1, 10, 11), (3, 2), (2, 1), (1, 0), (1, 1, 10, 11)),
]


@requires_torch
@pytest.mark.parametrize("shape,k,s,p,size", UNPOOL_CASES)
def test_max_unpool2d_matches_torch(shape, k, s, p, size, device, parity):
    x = ties(*shape, seed=1)
    pooled, ref_index = TF.max_pool2d(torch.tensor(x), k, s, p, return_indices=True)
    index = ms.tensor(ref_index.numpy(), device=device)
    values = np.random.default_rng(2).standard_normal(tuple(pooled.shape))
    parity(lambda v: F.max_unpool2d(v, index, k, s, p, size),
           lambda v: TF.max_unpool2d(v, ref_index, k, s, p, size), [values], device=device)


@requires_torch
def test_pool_then_unpool_round_trip_with_modules_matches_torch():
    pool, unpool = nn.MaxPool2d(2, 2, return_indices=True), nn.MaxUnpool2d(2, 2)
    ref_pool, ref_unpool = torch.nn.MaxPool2d(2, 2, return_indices=True), torch.nn.MaxUnpool2d(2, 2)
    assert repr(pool) == repr(ref_pool) and repr(unpool) == repr(ref_unpool)
    x = ties(2, 3, 7, 9, seed=5)
    out, index = pool(ms.tensor(x))
    ref_out, ref_index = ref_pool(torch.tensor(x))
    assert_indices_equal(index, ref_index)
    back = unpool(out, index, output_size=x.shape)
    np.testing.assert_array_equal(back.numpy(), ref_unpool(ref_out, ref_index, output_size=x.shape).numpy())
    assert unpool.state_dict() == {} and list(unpool.parameters()) == []


def test_max_unpool2d_gradcheck():
    x = ms.tensor(np.random.default_rng(3).standard_normal((1, 2, 3, 3)), requires_grad=True)
    index = ms.tensor(np.array([0, 3, 5, 13, 14, 22, 24, 30, 35] * 2).reshape(1, 2, 3, 3))
    assert gradcheck(lambda t: F.max_unpool2d(t, index, 2, output_size=(6, 6)), x)


def test_max_pool2d_dilated_gradcheck():
    x = ms.tensor(np.random.default_rng(3).permutation(2 * 7 * 8).reshape(1, 2, 7, 8) * 0.1,
                  requires_grad=True)
    assert gradcheck(lambda t: F.max_pool2d(t, 3, 2, 1, dilation=2, ceil_mode=True), x)


# ------------------------------------------------------------------ unbatched (C, H, W)
@requires_torch
@pytest.mark.parametrize("ours,ref", [
    (lambda t: F.max_pool2d(t, 3, 2, 1), lambda t: TF.max_pool2d(t, 3, 2, 1)),
    (lambda t: F.max_pool2d(t, 2, return_indices=True)[0], lambda t: TF.max_pool2d(t, 2, return_indices=True)[0]),
    (lambda t: F.avg_pool2d(t, 3, 2, 1, count_include_pad=False),
     lambda t: TF.avg_pool2d(t, 3, 2, 1, count_include_pad=False)),
    (lambda t: F.adaptive_avg_pool2d(t, (3, 2)), lambda t: TF.adaptive_avg_pool2d(t, (3, 2))),
    (lambda t: F.adaptive_max_pool2d(t, (3, 2)), lambda t: TF.adaptive_max_pool2d(t, (3, 2))),
    (lambda t: nn.MaxPool2d(2)(t), lambda t: torch.nn.MaxPool2d(2)(t)),
])
def test_unbatched_input_matches_torch(ours, ref, device, parity):
    out = parity(ours, ref, [ties(3, 7, 6, seed=7)], device=device)
    assert out.ndim == 3


@requires_torch
def test_unbatched_indices_and_unpool_match_torch():
    x = ties(2, 6, 5, seed=8)
    out, index = F.max_pool2d(ms.tensor(x), 2, return_indices=True)
    ref_out, ref_index = TF.max_pool2d(torch.tensor(x), 2, return_indices=True)
    assert_indices_equal(index, ref_index)
    np.testing.assert_array_equal(F.max_unpool2d(out, index, 2, output_size=(6, 5)).numpy(),
                                  TF.max_unpool2d(ref_out, ref_index, 2, output_size=(6, 5)).numpy())


def test_float32_indices_agree_with_float64():
    x = ties(2, 2, 9, 8, seed=9)
    a = F.max_pool2d(ms.tensor(x, dtype="float32"), 3, 2, 1, dilation=2, return_indices=True)
    b = F.max_pool2d(ms.tensor(x), 3, 2, 1, dilation=2, return_indices=True)
    assert a[0].dtype == np.float32
    np.testing.assert_array_equal(a[1].numpy(), b[1].numpy())
    np.testing.assert_array_equal(a[0].numpy(), b[0].numpy())


# ------------------------------------------------------------------ refusals
def image(*shape):
    return ms.zeros(*shape, dtype="float64")


INDEX = ms.tensor(np.zeros((1, 1, 2, 2), dtype=np.int64))


@pytest.mark.parametrize("call,error,message", [
    (lambda: F.max_unpool2d(image(1, 1, 2, 2), image(1, 1, 2, 2), 2), TypeError,
     "max_unpool2d: indices must be an integer Tensor"),
    (lambda: F.max_unpool2d(image(1, 1, 2, 3), INDEX, 2), ValueError,
     r"max_unpool2d: indices must have the input's shape \(1, 1, 2, 3\)"),
    (lambda: F.max_unpool2d(image(1, 1, 2, 2), INDEX + 16, 2), ValueError,
     r"max_unpool2d: indices must lie in \[0, 16\)"),
    (lambda: F.max_unpool2d(image(1, 1, 2, 2), INDEX, 2, output_size=(6, 4)), ValueError,
     "max_unpool2d: output_size .* must lie strictly between 2 and 6"),
    (lambda: F.max_unpool2d(image(1, 1, 2, 2), INDEX, 2, output_size=5), TypeError,
     r"max_unpool2d: output_size must be \(OH, OW\)"),
    (lambda: F.max_pool2d(image(1, 1, 1, 4, 4), 2), ValueError, "3-d variants are out of scope"),
    (lambda: F.max_pool2d(image(4, 4), 2), ValueError, "1-d and 3-d variants are out of scope"),
])
def test_bad_arguments_raise_clear_errors(call, error, message):
    with pytest.raises(error, match=message):
        call()
