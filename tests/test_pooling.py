"""max/avg pooling and adaptive pooling: against PyTorch (float64), by hand, by gradcheck."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
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


def randn(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


# ------------------------------------------------------------------ geometry by hand
def test_adaptive_bins_by_hand():
    assert K.adaptive_bins(7, 3) == [(0, 3), (2, 5), (4, 7)]
    assert K.adaptive_bins(10, 6) == [(0, 2), (1, 4), (3, 5), (5, 7), (6, 9), (8, 10)]
    assert K.adaptive_bins(5, 6) == [(0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 5)]
    assert K.adaptive_bins(6, 3) == [(0, 2), (2, 4), (4, 6)]
    assert K.adaptive_bins(4, 1) == [(0, 4)]


def test_adaptive_avg_pool_by_hand():
    x = ms.tensor(np.arange(7.0).reshape(1, 1, 1, 7))         # bins [0,3) [2,5) [4,7)
    out = F.adaptive_avg_pool2d(x, (1, 3))
    np.testing.assert_allclose(out.numpy().ravel(), [1.0, 3.0, 5.0])
    out = F.adaptive_max_pool2d(x, (1, 3))
    np.testing.assert_allclose(out.numpy().ravel(), [2.0, 4.0, 6.0])


def test_pool_output_size_and_ceil_mode_rule():
    assert K.pool_output_size(6, 3, 2) == 2                           # floor(3/2) + 1
    assert K.pool_output_size(6, 3, 2, ceil_mode=True) == 3           # ceil(3/2) + 1
    # 5 + 2*1 padding, k=2, s=2: ceil gives 4 windows, but the 4th would start at padded
    # index 6 = in + pad, i.e. inside the right padding only: it is dropped.
    assert K.pool_output_size(5, 2, 2, padding=1, ceil_mode=True) == 3
    assert K.pool_output_size(7, 3, 1, padding=1, dilation=2) == 5    # span 5


@requires_torch
@pytest.mark.parametrize("size,k,s,p,d", [(5, 2, 2, 1, 1), (6, 3, 2, 0, 1), (7, 3, 3, 1, 1),
                                          (9, 3, 2, 1, 2), (4, 2, 3, 1, 1), (10, 4, 3, 2, 1)])
def test_output_sizes_match_torch(size, k, s, p, d):
    for ceil_mode in (False, True):
        ref = TF.max_pool2d(torch.zeros(1, 1, size, size), k, s, p, d, ceil_mode).shape[-1]
        assert K.pool_output_size(size, k, s, p, d, ceil_mode) == ref


def test_max_pool_ties_send_the_gradient_to_the_first_maximum():
    x = ms.tensor(np.ones((1, 1, 2, 3)), requires_grad=True)
    F.max_pool2d(x, 2, stride=1).sum().backward()           # windows cols [0,1] and [1,2]
    np.testing.assert_array_equal(x.grad.numpy()[0, 0], [[1, 1, 0], [0, 0, 0]])


def test_avg_pool_by_hand_count_include_pad():
    x = ms.tensor(np.full((1, 1, 2, 2), 4.0))
    with_pad = F.avg_pool2d(x, 2, stride=2, padding=1)               # corners: 4 / 4 cells
    without = F.avg_pool2d(x, 2, stride=2, padding=1, count_include_pad=False)
    np.testing.assert_allclose(with_pad.numpy()[0, 0], [[1, 1], [1, 1]])
    np.testing.assert_allclose(without.numpy()[0, 0], [[4, 4], [4, 4]])


# ------------------------------------------------------------------ parity with PyTorch
MAX_CASES = [  # shape, kernel_size, stride, padding, dilation, ceil_mode
    ((2, 3, 8, 8), 2, None, 0, 1, False),
    ((2, 3, 9, 7), 3, 2, 1, 1, False),
    ((2, 3, 9, 7), 3, 2, 1, 1, True),
    ((1, 2, 10, 11), (3, 2), (2, 1), (1, 0), 1, True),
    ((1, 2, 9, 9), 3, 1, 1, 2, False),
    ((1, 2, 11, 8), 3, 2, 1, (2, 1), True),
    ((2, 2, 5, 5), 2, 2, 1, 1, True),
    ((1, 1, 7, 7), 3, 3, 1, 1, True),
    ((1, 2, 4, 4), 4, 1, 2, 1, False),
]


@pytest.mark.parametrize("shape,k,s,p,d,ceil_mode", MAX_CASES)
def test_max_pool2d_matches_torch(shape, k, s, p, d, ceil_mode, device, parity):
    parity(lambda x: F.max_pool2d(x, k, s, p, d, ceil_mode),
           lambda x: TF.max_pool2d(x, k, s, p, d, ceil_mode), [randn(*shape)], device=device)


def test_max_pool2d_with_ties_matches_torch(device, parity):
    x = np.random.default_rng(1).integers(0, 3, (2, 2, 7, 8)).astype(np.float64)
    parity(lambda x: F.max_pool2d(x, 3, 1, 1), lambda x: TF.max_pool2d(x, 3, 1, 1), [x], device=device)
    parity(lambda x: F.max_pool2d(x, 3, 2, 1, ceil_mode=True),
           lambda x: TF.max_pool2d(x, 3, 2, 1, ceil_mode=True), [np.ones((1, 2, 6, 5))], device=device)


AVG_CASES = [  # shape, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override
    ((2, 3, 8, 8), 2, None, 0, False, True, None),
    ((2, 3, 9, 7), 3, 2, 1, False, True, None),
    ((2, 3, 9, 7), 3, 2, 1, False, False, None),
    ((2, 3, 9, 7), 3, 2, 1, True, True, None),
    ((2, 3, 9, 7), 3, 2, 1, True, False, None),
    ((1, 2, 10, 11), (3, 2), (2, 1), (1, 0), True, False, None),
    ((2, 2, 5, 5), 2, 2, 1, True, True, None),
    ((1, 1, 7, 7), 3, 3, 1, True, False, None),
    ((1, 2, 6, 6), 3, 2, 1, True, True, 5),
]


@pytest.mark.parametrize("shape,k,s,p,ceil_mode,cip,div", AVG_CASES)
def test_avg_pool2d_matches_torch(shape, k, s, p, ceil_mode, cip, div, device, parity):
    parity(lambda x: F.avg_pool2d(x, k, s, p, ceil_mode, cip, div),
           lambda x: TF.avg_pool2d(x, k, s, p, ceil_mode, cip, div), [randn(*shape)], device=device)


ADAPTIVE_CASES = [  # input (H, W), output_size
    ((7, 10), (3, 6)), ((10, 7), 6), ((5, 5), 6), ((5, 3), (6, 7)), ((9, 9), 1), ((16, 16), 2),
    ((13, 11), (3, None)), ((6, 8), (None, 3)), ((6, 6), 6), ((1, 4), (3, 2)), ((20, 19), (6, 3)),
]


@pytest.mark.parametrize("hw,out", ADAPTIVE_CASES)
def test_adaptive_avg_pool2d_matches_torch(hw, out, device, parity):
    parity(lambda x: F.adaptive_avg_pool2d(x, out), lambda x: TF.adaptive_avg_pool2d(x, out),
           [randn(2, 3, *hw)], device=device)


@pytest.mark.parametrize("hw,out", ADAPTIVE_CASES)
def test_adaptive_max_pool2d_matches_torch(hw, out, device, parity):
    parity(lambda x: F.adaptive_max_pool2d(x, out), lambda x: TF.adaptive_max_pool2d(x, out),
           [randn(2, 3, *hw)], device=device)


def test_adaptive_max_pool2d_ties_match_torch(device, parity):
    x = np.random.default_rng(2).integers(0, 2, (2, 2, 7, 5)).astype(np.float64)
    parity(lambda x: F.adaptive_max_pool2d(x, (3, 4)), lambda x: TF.adaptive_max_pool2d(x, (3, 4)),
           [x], device=device)


def test_adaptive_max_pool2d_index_is_the_flat_plane_position():
    x = randn(2, 3, 7, 6)
    _, index = K.adaptive_max_pool2d_forward(x, (3, 4))
    _, ref = TF.adaptive_max_pool2d(torch.tensor(x), (3, 4), return_indices=True)
    np.testing.assert_array_equal(index, ref.numpy())


NON_CONTIGUOUS = [  # an op applied to a transposed view (W and H swapped)
    (lambda x: F.max_pool2d(x, 3, 2, 1), lambda x: TF.max_pool2d(x, 3, 2, 1)),
    (lambda x: F.avg_pool2d(x, 3, 2, 1, True, False), lambda x: TF.avg_pool2d(x, 3, 2, 1, True, False)),
    (lambda x: F.adaptive_avg_pool2d(x, (3, 2)), lambda x: TF.adaptive_avg_pool2d(x, (3, 2))),
    (lambda x: F.adaptive_max_pool2d(x, (3, 2)), lambda x: TF.adaptive_max_pool2d(x, (3, 2))),
]


@pytest.mark.parametrize("ms_op,torch_op", NON_CONTIGUOUS)
def test_non_contiguous_inputs_match_torch(ms_op, torch_op, device, parity):
    out = parity(lambda x: ms_op(F.transpose(x, 2, 3)), lambda x: torch_op(x.transpose(2, 3)),
                 [randn(2, 3, 9, 7)], device=device)
    assert out.shape[2:] != (9, 7)
    parity(lambda x: ms_op(x[:, 1:, ::2]), lambda x: torch_op(x[:, 1:, ::2]),
           [randn(2, 3, 13, 7)], device=device)


def test_large_planes_use_the_two_step_product(device, parity):
    """Big planes take the separable two-step path (small ones one Kronecker product)."""
    parity(lambda x: F.adaptive_avg_pool2d(x, (6, 5)), lambda x: TF.adaptive_avg_pool2d(x, (6, 5)),
           [randn(1, 2, 23, 19)], device=device)
    parity(lambda x: F.adaptive_avg_pool2d(x, (21, 25)), lambda x: TF.adaptive_avg_pool2d(x, (21, 25)),
           [randn(1, 2, 6, 9)], device=device)


@pytest.mark.parametrize("op", [
    lambda x: F.max_pool2d(x, 3, 2, 1), lambda x: F.avg_pool2d(x, 3, 2, 1),
    lambda x: F.adaptive_avg_pool2d(x, 3), lambda x: F.adaptive_max_pool2d(x, (2, 3))])
def test_float32_stays_float32_and_agrees_with_float64(op, device):
    a = randn(2, 3, 8, 7)
    out32 = op(ms.tensor(a.astype(np.float32), device=device, requires_grad=True))
    out64 = op(ms.tensor(a, device=device))
    assert out32.dtype == ms.float32
    np.testing.assert_allclose(out32.numpy(), out64.numpy(), rtol=1e-5, atol=1e-6)


def test_max_pool_propagates_nan_like_torch(device, parity):
    a = randn(1, 2, 6, 6)
    a[0, 0, 2, 3] = a[0, 0, 3, 3] = a[0, 1, 0, 0] = np.nan    # two NaNs share windows
    ref = TF.max_pool2d(torch.tensor(a), 3, 2, 1).numpy()
    with ms.no_grad():                                         # the path without argmax
        np.testing.assert_array_equal(F.max_pool2d(ms.tensor(a, device=device), 3, 2, 1).numpy(), ref)
    # with gradients: NaN outputs agree, and the gradient goes to the last NaN as in PyTorch
    parity(lambda x: F.max_pool2d(x, 3, 2, 1), lambda x: TF.max_pool2d(x, 3, 2, 1), [a], device=device)


# ------------------------------------------------------------------ gradcheck and hypothesis
@pytest.mark.parametrize("op", [
    lambda x: F.max_pool2d(x, 3, 2, 1, ceil_mode=True), lambda x: F.max_pool2d(x, 2, 1, 1, 2),
    lambda x: F.avg_pool2d(x, 3, 2, 1, True, False), lambda x: F.adaptive_avg_pool2d(x, (3, 4)),
    lambda x: F.adaptive_max_pool2d(x, (4, 3))])
def test_gradcheck(op):
    x = ms.tensor(np.random.default_rng(3).permutation(2 * 5 * 6).reshape(1, 2, 5, 6) * 0.1,
                  dtype="float64", requires_grad=True)         # distinct values: max is smooth
    assert gradcheck(op, x)


@st.composite
def window_cases(draw):
    k = draw(st.integers(1, 4))
    p = draw(st.integers(0, k // 2))
    s = draw(st.integers(1, 3))
    d = draw(st.integers(1, 2))
    span = d * (k - 1) + 1
    # With dilation a tiny input can leave a window with only padding in it, which
    # PyTorch's backward does not survive; without, the padding rule prevents that.
    smallest = max(1, span - 2 * p) if d == 1 else span
    h = draw(st.integers(smallest, 9))
    w = draw(st.integers(smallest, 9))
    return (draw(st.integers(1, 2)), draw(st.integers(1, 3)), h, w), k, s, p, d, draw(st.booleans())


@requires_torch
@SETTINGS
@given(case=window_cases(), cip=st.booleans())
def test_pooling_random_shapes_match_torch(case, cip, parity):
    shape, k, s, p, d, ceil_mode = case
    parity(lambda x: F.max_pool2d(x, k, s, p, d, ceil_mode),
           lambda x: TF.max_pool2d(x, k, s, p, d, ceil_mode), [randn(*shape)])
    if K.pool_output_size(shape[2], k, s, p, 1, ceil_mode) >= 1 and \
            K.pool_output_size(shape[3], k, s, p, 1, ceil_mode) >= 1:
        parity(lambda x: F.avg_pool2d(x, k, s, p, ceil_mode, cip),
               lambda x: TF.avg_pool2d(x, k, s, p, ceil_mode, cip), [randn(*shape)])


@requires_torch
@SETTINGS
@given(h=st.integers(1, 12), w=st.integers(1, 12), oh=st.integers(1, 8), ow=st.integers(1, 8))
def test_adaptive_random_shapes_match_torch(h, w, oh, ow, parity):
    x = randn(2, 2, h, w)
    parity(lambda x: F.adaptive_avg_pool2d(x, (oh, ow)), lambda x: TF.adaptive_avg_pool2d(x, (oh, ow)), [x])
    parity(lambda x: F.adaptive_max_pool2d(x, (oh, ow)), lambda x: TF.adaptive_max_pool2d(x, (oh, ow)), [x])


# ------------------------------------------------------------------ errors
def image(*shape, dtype="float64"):
    return ms.zeros(*shape, dtype=dtype)


@pytest.mark.parametrize("call,error,message", [
    (lambda: F.max_pool2d(image(8, 8), 2), ValueError, r"max_pool2d: input must be 3-d or 4-d .*\(8, 8\)"),
    (lambda: F.avg_pool2d(np.zeros((1, 1, 4, 4)), 2), TypeError, "avg_pool2d: input must be a Tensor"),
    (lambda: F.max_pool2d(ms.zeros(1, 1, 4, 4, dtype="int64"), 2), TypeError,
     "max_pool2d: input must be floating point"),
    (lambda: F.max_pool2d(image(1, 1, 0, 4), 1), ValueError, "max_pool2d: input must have non-empty"),
    (lambda: F.max_pool2d(image(1, 1, 4, 4), 2.5), TypeError, "max_pool2d: kernel_size must be an int"),
    (lambda: F.max_pool2d(image(1, 1, 4, 4), (2, 2, 2)), TypeError, "kernel_size must be an int or a pair"),
    (lambda: F.max_pool2d(image(1, 1, 4, 4), 0), ValueError, r"max_pool2d: kernel_size must be positive, got \(0, 0\)"),
    (lambda: F.avg_pool2d(image(1, 1, 4, 4), 2, 0), ValueError, "avg_pool2d: stride must be positive"),
    (lambda: F.max_pool2d(image(1, 1, 4, 4), 2, 1, -1), ValueError, "max_pool2d: padding must be non-negative"),
    (lambda: F.max_pool2d(image(1, 1, 4, 4), 2, 1, 0, 0), ValueError, "max_pool2d: dilation must be positive"),
    (lambda: F.max_pool2d(image(1, 1, 8, 8), 3, 1, 2), ValueError,
     r"max_pool2d: padding \(2, 2\) must be at most half of kernel_size \(3, 3\)"),
    (lambda: F.avg_pool2d(image(1, 1, 8, 8), 2, 1, (0, 2)), ValueError, "at most half of kernel_size"),
    (lambda: F.max_pool2d(image(1, 1, 3, 8), 5), ValueError,
     r"max_pool2d: kernel_size \(5, 5\) .* does not fit in the input of spatial size \(3, 8\)"),
    (lambda: F.max_pool2d(image(1, 1, 5, 5), 3, 1, 0, 3), ValueError, r"dilation \(3, 3\)\) does not fit"),
    (lambda: F.avg_pool2d(image(1, 1, 4, 4), 2, divisor_override=0), ValueError,
     "avg_pool2d: divisor_override must be a non-zero int"),
    (lambda: F.adaptive_avg_pool2d(image(1, 1, 4, 4), 0), ValueError,
     r"adaptive_avg_pool2d: output_size must be positive, got \(0, 0\)"),
    (lambda: F.adaptive_max_pool2d(image(1, 1, 4, 4), (2, 0)), ValueError,
     "adaptive_max_pool2d: output_size must be positive"),
    (lambda: F.adaptive_avg_pool2d(image(1, 1, 4, 4), (1, 2, 3)), TypeError,
     "adaptive_avg_pool2d: output_size must be an int or a pair"),
    (lambda: F.adaptive_avg_pool2d(image(1, 2, 2, 4, 4), 2), ValueError,
     "adaptive_avg_pool2d: input must be 3-d or 4-d .* 3-d variants are out of scope"),
    (lambda: F.adaptive_max_pool2d(image(1, 1, 4, 4), 2.0), TypeError, "adaptive_max_pool2d: output_size"),
])
def test_bad_arguments_raise_clear_errors(call, error, message):
    with pytest.raises(error, match=message):
        call()


# ------------------------------------------------------------------ modules
@requires_torch
@pytest.mark.parametrize("make", [
    lambda m: m.MaxPool2d(3, 2, 1), lambda m: m.MaxPool2d((2, 3), ceil_mode=True),
    lambda m: m.AvgPool2d(3, 2, 1), lambda m: m.AvgPool2d(2),
    lambda m: m.AdaptiveAvgPool2d(6), lambda m: m.AdaptiveAvgPool2d((None, 3)),
    lambda m: m.AdaptiveMaxPool2d((2, 3))])
def test_modules_match_torch_repr_and_output(make):
    ours, ref = make(nn), make(torch.nn)
    assert repr(ours) == repr(ref)
    x = randn(2, 3, 9, 8)
    np.testing.assert_allclose(ours(ms.tensor(x)).numpy(), ref(torch.tensor(x)).numpy(), rtol=1e-10)
    assert list(ours.parameters()) == [] and ours.state_dict() == {}


# ------------------------------------------------------------------ CUDA raw kernel
@pytest.mark.gpu
@pytest.mark.parametrize("k,s,p,d,ceil_mode", [(3, 2, 1, 1, False), (2, 1, 1, 2, True), (3, 3, 1, 1, True)])
def test_cuda_max_pool_backward_kernel_matches_generic_reference(k, s, p, d, ceil_mode):
    if not ms.cuda.is_available():
        pytest.skip("no usable CUDA device")
    import cupy as cp
    for dtype in (np.float32, np.float64):
        x = cp.asarray(randn(2, 3, 11, 9).round(1), dtype=dtype)        # rounding makes ties
        geometry = K.pool_geometry(x.shape[2:], (k, k), (s, s), (p, p), (d, d), ceil_mode)
        _, argmax = K.max_pool2d_forward(x, geometry)
        grad = cp.asarray(randn(*argmax.shape, seed=1), dtype=dtype)
        fast = K.max_pool2d_backward(grad, argmax, geometry)
        reference = K.max_pool2d_backward(grad, argmax, geometry, use_raw_kernel=False)
        assert fast.dtype == dtype
        cp.testing.assert_allclose(fast, reference, rtol=1e-5, atol=1e-6)
