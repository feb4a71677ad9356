"""interpolate's modes nearest-exact, bicubic, area and antialias=True against PyTorch (float64)."""
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import minisegnet as ms
import minisegnet.functional as F
import minisegnet.nn as nn
from minisegnet.gradcheck import gradcheck
from minisegnet.kernels import interpolation as K
from conftest import requires_torch, torch

if torch is not None:
    import torch.nn.functional as TF

SETTINGS = settings(max_examples=25, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])
NEW_MODES = [dict(mode="nearest-exact"), dict(mode="area"),
             dict(mode="bicubic", align_corners=False), dict(mode="bicubic", align_corners=True),
             dict(mode="bilinear", antialias=True), dict(mode="bilinear", align_corners=True, antialias=True),
             dict(mode="bicubic", antialias=True), dict(mode="bicubic", align_corners=True, antialias=True)]


def randn(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def torch_resize(t, size=None, **kwargs):
    """PyTorch's interpolate, except antialias to an output width of 1: PyTorch 2.x's CPU
    kernel gives every row the first row's value there (a PyTorch bug), so that case is
    computed on the transposed image, where PyTorch is right."""
    out = TF.interpolate(t, size=size, **kwargs)
    if kwargs.get("antialias") and out.shape[-1] == 1 and out.shape[-2] > 1:
        size = None if size is None else tuple(size)[::-1]
        if "scale_factor" in kwargs:
            kwargs = dict(kwargs, scale_factor=tuple(kwargs["scale_factor"])[::-1])
        out = TF.interpolate(t.transpose(2, 3), size=size, **kwargs).transpose(2, 3)
    return out


def test_nearest_exact_and_bicubic_by_hand():
    assert K.nearest_exact_indices(6, 3).tolist() == [1, 3, 5]          # pixel centres 1, 3, 5
    assert K.nearest_indices(6, 3).tolist() == [0, 2, 4]
    # t = 0: the cubic kernel interpolates (weight 1 on the pixel itself)
    np.testing.assert_allclose(K.cubic_coefficients(np.array([0.0]))[:, 0], [0, 1, 0, 0], atol=1e-15)
    # t = 0.5, A = -0.75: (-0.09375, 0.59375, 0.59375, -0.09375), summing to 1
    np.testing.assert_allclose(K.cubic_coefficients(np.array([0.5]))[:, 0],
                               [-0.09375, 0.59375, 0.59375, -0.09375])


@requires_torch
@pytest.mark.parametrize("kwargs", NEW_MODES)
@pytest.mark.parametrize("hw,size", [((5, 7), (9, 4)), ((8, 8), (3, 3)), ((4, 6), (4, 13)), ((9, 5), (2, 1))])
def test_new_modes_size_match_torch(kwargs, hw, size, device, parity):
    parity(lambda t: F.interpolate(t, size=size, **kwargs), lambda t: torch_resize(t, size=size, **kwargs),
           [randn(2, 3, *hw)], device=device)


@requires_torch
@SETTINGS
@given(kwargs=st.sampled_from(NEW_MODES), h=st.integers(1, 12), w=st.integers(1, 12),
       sh=st.floats(0.2, 3.5), sw=st.floats(0.2, 3.5), recompute=st.sampled_from([None, True]))
def test_new_modes_scale_factor_match_torch(kwargs, h, w, sh, sw, recompute, parity):
    assume(int(h * sh) >= 1 and int(w * sw) >= 1)
    # PyTorch's bicubic forward resamples a dim whose size a scale_factor leaves unchanged,
    # but its backward copies the gradient straight through there (a PyTorch inconsistency);
    # there the gradient is checked against finite differences instead.
    # (The antialiased modes behave the same way the other way round: PyTorch's forward
    # keeps such a dim as it is and its backward resamples.)
    resamples = kwargs["mode"] == "bicubic" or kwargs.get("antialias")
    torch_grad_wrong = resamples and not kwargs.get("align_corners") and not recompute and \
        any(int(n * f) == n and f != 1.0 for n, f in ((h, sh), (w, sw)))
    ours = lambda t: F.interpolate(t, scale_factor=(sh, sw), recompute_scale_factor=recompute, **kwargs)  # noqa: E731
    parity(ours, lambda t: torch_resize(t, scale_factor=(sh, sw), recompute_scale_factor=recompute, **kwargs),
           [randn(1, 2, h, w)], check_grad=not torch_grad_wrong)
    if torch_grad_wrong:
        assert gradcheck(ours, ms.tensor(randn(1, 2, h, w), requires_grad=True))


@requires_torch
@SETTINGS
@given(kwargs=st.sampled_from(NEW_MODES), h=st.integers(1, 12), w=st.integers(1, 12),
       oh=st.integers(1, 14), ow=st.integers(1, 14))
def test_new_modes_random_sizes_match_torch(kwargs, h, w, oh, ow, parity):
    parity(lambda t: F.interpolate(t, size=(oh, ow), **kwargs),
           lambda t: torch_resize(t, size=(oh, ow), **kwargs), [randn(1, 2, h, w)])


@pytest.mark.parametrize("kwargs", NEW_MODES)
def test_gradcheck(kwargs):
    x = ms.tensor(randn(1, 2, 5, 4), requires_grad=True)
    assert gradcheck(lambda t: F.interpolate(t, size=(3, 7), **kwargs), x)


@pytest.mark.parametrize("kwargs", NEW_MODES)
def test_float32_stays_float32(kwargs):
    x = ms.tensor(randn(1, 2, 6, 6), dtype="float32", requires_grad=True)
    out = F.interpolate(x, size=(4, 9), **kwargs)
    out.sum().backward()
    assert out.dtype == np.float32 and x.grad.dtype == np.float32
    ref = F.interpolate(ms.tensor(randn(1, 2, 6, 6)), size=(4, 9), **kwargs)
    np.testing.assert_allclose(out.numpy(), ref.numpy(), rtol=1e-5, atol=1e-5)


@requires_torch
@pytest.mark.parametrize("kwargs", [dict(scale_factor=2, mode="bicubic"), dict(size=(3, 5), mode="area"),
                                    dict(scale_factor=0.5, mode="nearest-exact"),
                                    dict(size=7, mode="bicubic", align_corners=True)])
def test_upsample_modes_match_torch(kwargs):
    ours, ref = nn.Upsample(**kwargs), torch.nn.Upsample(**kwargs)
    assert repr(ours) == repr(ref)
    x = randn(2, 3, 6, 8)
    np.testing.assert_allclose(ours(ms.tensor(x)).numpy(), ref(torch.tensor(x)).numpy(), rtol=1e-10)


def image(*shape):
    return ms.zeros(*shape, dtype="float64")


@pytest.mark.parametrize("call,error,message", [
    (lambda: F.interpolate(image(1, 1, 4, 4), size=2, mode="linear"), NotImplementedError,
     "mode='linear' resizes 1-d or 3-d data, which minisegnet leaves out of scope"),
    (lambda: F.interpolate(image(1, 1, 4, 4), size=2, mode="trilinear"), NotImplementedError, "out of scope"),
    (lambda: F.interpolate(image(1, 1, 2, 4, 4), size=2), NotImplementedError,
     "a 5-d input means 3-d resizing"),
    (lambda: F.interpolate(image(1, 1, 4, 4), size=2, mode="area", align_corners=True), ValueError,
     "align_corners can only be set with the interpolating modes"),
    (lambda: F.interpolate(image(1, 1, 4, 4), size=2, mode="nearest", antialias=True), ValueError,
     "antialias=True is defined for the modes"),
])
def test_bad_arguments_raise_clear_errors(call, error, message):
    with pytest.raises(error, match=message):
        call()
