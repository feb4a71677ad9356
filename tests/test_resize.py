"""interpolate (nearest, bilinear, both align_corners) and Upsample: by hand, against PyTorch."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import minisegnet as ms
import minisegnet.functional as F
import minisegnet.nn as nn
from minisegnet.gradcheck import gradcheck
from minisegnet.kernels import interpolation as K
from conftest import requires_torch, torch

if torch is not None:
    import torch.nn.functional as TF

SETTINGS = settings(max_examples=20, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


def randn(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


# ------------------------------------------------------------------ by hand
def test_worked_example_from_the_docstring():
    """One row [0, 1] resized from 2 to 4 pixels, in both conventions."""
    row = ms.tensor(np.array([0.0, 1.0]).reshape(1, 1, 1, 2))
    corners = F.interpolate(row, size=(1, 4), mode="bilinear", align_corners=True)
    edges = F.interpolate(row, size=(1, 4), mode="bilinear", align_corners=False)
    np.testing.assert_allclose(corners.numpy().ravel(), [0, 1 / 3, 2 / 3, 1], rtol=1e-12)
    np.testing.assert_allclose(edges.numpy().ravel(), [0, 0.25, 0.75, 1], rtol=1e-12)
    default = F.interpolate(row, size=(1, 4), mode="bilinear")           # None behaves as False
    np.testing.assert_allclose(default.numpy(), edges.numpy())


def test_source_coordinates_by_hand():
    np.testing.assert_allclose(K.source_coordinates(2, 4, True), [0, 1 / 3, 2 / 3, 1])
    np.testing.assert_allclose(K.source_coordinates(2, 4, False), [0, 0.25, 0.75, 1.25])
    np.testing.assert_allclose(K.source_coordinates(4, 2, False), [0.5, 2.5])
    np.testing.assert_allclose(K.source_coordinates(5, 1, True), [0])
    # a scale factor replaces in/out by 1/scale: 3 * 1.5 -> 4 outputs, ratio 2/3 rather than 3/4:
    # (i + 0.5) * 2/3 - 0.5 = [-1/6 -> 0, 1/2, 7/6, 11/6]   (with 3/4: [0, 0.625, 1.375, 2.125])
    np.testing.assert_allclose(K.source_coordinates(3, 4, False, 1.5), [0, 0.5, 7 / 6, 11 / 6])
    np.testing.assert_allclose(K.source_coordinates(3, 4, False), [0, 0.625, 1.375, 2.125])


def test_linear_weights_by_hand():
    np.testing.assert_allclose(K.linear_weights(2, 4, False),
                               [[1, 0], [0.75, 0.25], [0.25, 0.75], [0, 1]])
    np.testing.assert_allclose(K.linear_weights(3, 3, True), np.eye(3))


def test_nearest_by_hand():
    x = ms.tensor(np.array([10.0, 20.0, 30.0, 40.0, 50.0]).reshape(1, 1, 1, 5))
    np.testing.assert_array_equal(F.interpolate(x, size=(1, 3)).numpy().ravel(), [10, 20, 40])  # floor(i*5/3)
    np.testing.assert_array_equal(F.interpolate(x, size=(1, 10)).numpy().ravel(),
                                  [10, 10, 20, 20, 30, 30, 40, 40, 50, 50])
    np.testing.assert_array_equal(K.nearest_indices(5, 2), [0, 2])


# ------------------------------------------------------------------ parity with PyTorch
RESIZES = [  # input (H, W), size
    ((4, 5), (8, 10)), ((5, 3), (2, 7)), ((7, 9), (3, 4)), ((6, 6), (6, 6)), ((1, 4), (3, 1)),
    ((3, 3), (1, 1)), ((16, 16), (16, 32)), ((9, 30), (20, 17)), ((21, 13), (5, 31)), ((6, 5), (25, 22)),
]


@pytest.mark.parametrize("hw,size", RESIZES)
@pytest.mark.parametrize("align_corners", [False, True])
def test_bilinear_size_matches_torch(hw, size, align_corners, device, parity):
    parity(lambda x: F.interpolate(x, size=size, mode="bilinear", align_corners=align_corners),
           lambda x: TF.interpolate(x, size=size, mode="bilinear", align_corners=align_corners),
           [randn(2, 3, *hw)], device=device)


SCALES = [((4, 5), 2), ((5, 7), 1.7), ((9, 6), 0.5), ((7, 7), 0.6), ((5, 6), (0.7, 2.5)), ((3, 4), 3.3),
          ((8, 8), 1.0)]


@pytest.mark.parametrize("hw,scale", SCALES)
@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("recompute", [None, True])
def test_bilinear_scale_factor_matches_torch(hw, scale, align_corners, recompute, device, parity):
    kwargs = dict(scale_factor=scale, mode="bilinear", align_corners=align_corners,
                  recompute_scale_factor=recompute)
    parity(lambda x: F.interpolate(x, **kwargs), lambda x: TF.interpolate(x, **kwargs),
           [randn(2, 3, *hw)], device=device)


def test_scale_factor_and_size_use_different_source_rules():
    """5 * 1.7 -> 8 pixels: the scale-factor rule (1/1.7) and the size rule (5/8) differ."""
    x = randn(1, 1, 5, 5)
    by_scale = F.interpolate(ms.tensor(x), scale_factor=1.7, mode="bilinear").numpy()
    by_size = F.interpolate(ms.tensor(x), size=(8, 8), mode="bilinear").numpy()
    assert by_scale.shape == by_size.shape == (1, 1, 8, 8)
    assert not np.allclose(by_scale, by_size)


@pytest.mark.parametrize("hw,size", RESIZES + [((5, 5), (15, 7)), ((9, 7), (4, 3)), ((6, 11), (17, 29))])
def test_nearest_size_matches_torch(hw, size, device, parity):
    parity(lambda x: F.interpolate(x, size=size), lambda x: TF.interpolate(x, size=size, mode="nearest"),
           [randn(2, 3, *hw)], device=device)


@pytest.mark.parametrize("hw,scale", SCALES + [((10, 7), 0.3), ((6, 6), 2.9)])
def test_nearest_scale_factor_matches_torch(hw, scale, device, parity):
    parity(lambda x: F.interpolate(x, scale_factor=scale), lambda x: TF.interpolate(x, scale_factor=scale),
           [randn(2, 3, *hw)], device=device)


@pytest.mark.parametrize("mode,align_corners", [("bilinear", False), ("bilinear", True), ("nearest", None)])
def test_non_contiguous_inputs_match_torch(mode, align_corners, device, parity):
    kwargs = dict(size=(11, 6), mode=mode, align_corners=align_corners)
    parity(lambda x: F.interpolate(F.transpose(x, 2, 3), **kwargs),
           lambda x: TF.interpolate(x.transpose(2, 3), **kwargs), [randn(2, 3, 9, 7)], device=device)
    kwargs["size"] = (23, 19)                                        # the two-step (large plane) path
    parity(lambda x: F.interpolate(x[:, ::2, 1:], **kwargs),
           lambda x: TF.interpolate(x[:, ::2, 1:], **kwargs), [randn(2, 4, 10, 9)], device=device)


@pytest.mark.parametrize("small_plane,small_product", [(0, 0), (0, 1 << 40), (1 << 40, 0)],
                         ids=["transposed-rows", "batched-rows", "kronecker"])
def test_every_product_path_matches_torch(small_plane, small_product, monkeypatch, device, parity):
    """separable_apply picks one of three ways to multiply; force each on small shapes."""
    monkeypatch.setattr(K, "SMALL_PLANE", small_plane)
    monkeypatch.setattr(K, "SMALL_PRODUCT", small_product)
    for hw, size in [((4, 5), (9, 11)), ((9, 11), (4, 5)), ((6, 7), (3, 14)), ((1, 6), (5, 1))]:
        kwargs = dict(size=size, mode="bilinear", align_corners=False)
        parity(lambda x: F.interpolate(F.transpose(x, 2, 3), **kwargs),
               lambda x: TF.interpolate(x.transpose(2, 3), **kwargs), [randn(2, 3, *hw[::-1])], device=device)
        parity(lambda x: F.adaptive_avg_pool2d(x, size), lambda x: TF.adaptive_avg_pool2d(x, size),
               [randn(2, 3, *hw)], device=device)
        parity(lambda x: F.interpolate(x, size=size), lambda x: TF.interpolate(x, size=size),
               [randn(1, 2, *hw)], device=device)


@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
def test_float32_stays_float32(mode, device):
    a = randn(2, 3, 5, 6)
    out32 = F.interpolate(ms.tensor(a.astype(np.float32), device=device, requires_grad=True),
                          scale_factor=2.5, mode=mode)
    out64 = F.interpolate(ms.tensor(a, device=device), scale_factor=2.5, mode=mode)
    assert out32.dtype == ms.float32
    np.testing.assert_allclose(out32.numpy(), out64.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kwargs", [dict(size=(7, 4), mode="bilinear", align_corners=True),
                                    dict(scale_factor=1.5, mode="bilinear"),
                                    dict(size=(3, 9), mode="nearest")])
def test_gradcheck(kwargs):
    x = ms.tensor(randn(1, 2, 4, 5), requires_grad=True)
    assert gradcheck(lambda x: F.interpolate(x, **kwargs), x)


@requires_torch
@SETTINGS
@given(h=st.integers(1, 12), w=st.integers(1, 12), oh=st.integers(1, 20), ow=st.integers(1, 20),
       mode=st.sampled_from(["nearest", "bilinear-True", "bilinear-False"]))
def test_random_sizes_match_torch(h, w, oh, ow, mode, parity):
    mode, _, corners = mode.partition("-")
    align_corners = None if not corners else corners == "True"
    kwargs = dict(size=(oh, ow), mode=mode, align_corners=align_corners)
    parity(lambda x: F.interpolate(x, **kwargs), lambda x: TF.interpolate(x, **kwargs), [randn(1, 2, h, w)])


# ------------------------------------------------------------------ errors
def image(*shape):
    return ms.zeros(*shape, dtype="float64")


@pytest.mark.parametrize("call,error,message", [
    (lambda: F.interpolate(image(1, 1, 4, 4), size=2, scale_factor=2), ValueError,
     "interpolate: give only one of size and scale_factor"),
    (lambda: F.interpolate(image(1, 1, 4, 4)), ValueError, "interpolate: either size or scale_factor must be given"),
    (lambda: F.interpolate(image(1, 4, 4), size=2), NotImplementedError,
     "interpolate: a 3-d input means 1-d resizing in PyTorch, which minisegnet leaves out of scope"),
    (lambda: F.interpolate(image(4, 4), size=2), ValueError,
     r"interpolate: input must be 4-d with shape \(N, C, H, W\), got a 2-d tensor of shape \(4, 4\)"),
    (lambda: F.interpolate(image(1, 1, 4, 4), size=2, mode="cubic"), ValueError,
     "interpolate: unknown mode 'cubic'"),
    (lambda: F.interpolate(image(1, 1, 4, 4), size=2, mode="nearest", align_corners=False), ValueError,
     "interpolate: align_corners can only be set with the interpolating modes"),
    (lambda: F.interpolate(image(1, 1, 4, 4), size=(0, 3)), ValueError, r"interpolate: size must be positive, got \(0, 3\)"),
    (lambda: F.interpolate(image(1, 1, 4, 4), size=-2), ValueError, "interpolate: size must be positive"),
    (lambda: F.interpolate(image(1, 1, 4, 4), scale_factor=0), ValueError, "interpolate: scale_factor must be positive"),
    (lambda: F.interpolate(image(1, 1, 4, 4), scale_factor=(2, -1)), ValueError, "scale_factor must be positive"),
    (lambda: F.interpolate(image(1, 1, 4, 4), scale_factor=0.2), ValueError,
     r"scale_factor 0.2 turns the input size \(4, 4\) into \(0, 0\)"),
    (lambda: F.interpolate(image(1, 1, 4, 4), size=(2, 2, 2)), TypeError, "interpolate: size must be an int"),
    (lambda: F.interpolate(image(1, 1, 4, 4), size=2.5), TypeError, "interpolate: size must be an int"),
    (lambda: F.interpolate(image(1, 1, 4, 4), scale_factor="2"), TypeError, "interpolate: scale_factor must be a number"),
    (lambda: F.interpolate(image(1, 1, 4, 4), size=3, recompute_scale_factor=True), ValueError,
     "recompute_scale_factor is not meaningful with an explicit size"),
    (lambda: F.interpolate(np.zeros((1, 1, 4, 4)), size=3), TypeError, "interpolate: input must be a Tensor"),
    (lambda: F.interpolate(ms.zeros(1, 1, 4, 4, dtype="int64"), size=3), TypeError,
     "interpolate: input must be floating point"),
])
def test_bad_arguments_raise_clear_errors(call, error, message):
    with pytest.raises(error, match=message):
        call()


# ------------------------------------------------------------------ Upsample
@requires_torch
@pytest.mark.parametrize("kwargs", [dict(scale_factor=2, mode="bilinear"), dict(size=(5, 7)),
                                    dict(scale_factor=(1.5, 2), mode="bilinear", align_corners=True),
                                    dict(size=9, mode="bilinear", align_corners=False)])
def test_upsample_matches_torch_repr_and_output(kwargs):
    ours, ref = nn.Upsample(**kwargs), torch.nn.Upsample(**kwargs)
    assert repr(ours) == repr(ref)
    x = randn(2, 3, 4, 6)
    np.testing.assert_allclose(ours(ms.tensor(x)).numpy(), ref(torch.tensor(x)).numpy(), rtol=1e-10)
