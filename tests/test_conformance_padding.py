"""F.pad's modes (constant, reflect, replicate, circular) and negative padding against PyTorch."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import minisegnet as ms
import minisegnet.functional as F
import minisegnet.nn as nn
from minisegnet.gradcheck import gradcheck
from minisegnet.kernels import padding as K
from conftest import requires_torch, torch

if torch is not None:
    import torch.nn.functional as TF

SETTINGS = settings(max_examples=25, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])
MODES = ["constant", "reflect", "replicate", "circular"]


def randn(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def test_source_index_by_hand():
    assert K.source_index(5, 2, 2, "reflect").tolist() == [2, 1, 0, 1, 2, 3, 4, 3, 2]
    assert K.source_index(5, 2, 2, "replicate").tolist() == [0, 0, 0, 1, 2, 3, 4, 4, 4]
    assert K.source_index(5, 2, 2, "circular").tolist() == [3, 4, 0, 1, 2, 3, 4, 0, 1]
    assert K.source_index(5, 1, 1, "constant").tolist() == [-1, 0, 1, 2, 3, 4, -1]
    # circular wraps around what cropping leaves: [0, 1, 2, 3] -> 2 3 | 0 1 2 3
    assert K.source_index(5, 2, -1, "circular").tolist() == [2, 3, 0, 1, 2, 3]


def test_reflect_gradient_by_hand():
    x = ms.tensor(np.arange(3.0).reshape(1, 1, 1, 3), requires_grad=True)
    F.pad(x, (2, 1, 0, 0), mode="reflect").sum().backward()     # [2 1 | 0 1 2 | 1]
    np.testing.assert_array_equal(x.grad.numpy().ravel(), [1, 3, 2])


@requires_torch
@SETTINGS
@given(mode=st.sampled_from(MODES), h=st.integers(1, 7), w=st.integers(1, 7),
       pads=st.tuples(*[st.integers(-3, 6)] * 4), batched=st.booleans())
def test_random_pads_match_torch_or_both_refuse(mode, h, w, pads, batched, parity):
    shape = (2, 2, h, w) if batched else (2, h, w)
    x = randn(*shape)
    try:
        TF.pad(torch.tensor(x), pads, mode=mode)
        torch_ok = True
    except (RuntimeError, ValueError):
        torch_ok = False
    try:
        F.pad(ms.tensor(x), pads, mode=mode)
        ours_ok = True
    except ValueError:
        ours_ok = False
    if not torch_ok:
        assert not ours_ok, "PyTorch refuses this padding but minisegnet accepts it"
    if ours_ok:
        parity(lambda t: F.pad(t, pads, mode=mode), lambda t: TF.pad(t, pads, mode=mode), [x])
    else:                  # the only refusals PyTorch lacks: empty outputs, wrapping twice
        out = tuple(n + lo + hi for n, lo, hi in zip((h, w), pads[2::-2], pads[3::-2]))
        cropped = [n - max(-lo, 0) - max(-hi, 0) for n, lo, hi in zip((h, w), pads[2::-2], pads[3::-2])]
        assert not torch_ok or min(out) < 1 or mode == "circular" and min(cropped) < max(pads)


@requires_torch
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("pads", [(1, 2, 3, 0), (2, 2, 2, 2), (-1, 2, 0, -2), (0, 0, 1, 1)])
def test_pad_matches_torch(mode, pads, device, parity):
    parity(lambda t: F.pad(t, pads, mode=mode), lambda t: TF.pad(t, pads, mode=mode),
           [randn(2, 3, 5, 6)], device=device)


@requires_torch
@pytest.mark.parametrize("shape,pads,value", [
    ((4, 5), (1, -2, 2, 0), 1.5), ((2, 3, 4, 5, 6), (1, 1, -1, 0, 2, 3), -2.0), ((6,), (-2, 3), 0.0)])
def test_constant_pad_any_dims_and_cropping_match_torch(shape, pads, value, parity):
    parity(lambda t: F.pad(t, pads, value=value), lambda t: TF.pad(t, pads, value=value), [randn(*shape)])


@pytest.mark.parametrize("mode", MODES)
def test_gradcheck(mode):
    x = ms.tensor(randn(1, 2, 4, 5), requires_grad=True)
    assert gradcheck(lambda t: F.pad(t, (3, -1, 2, 3), mode=mode), x)


def test_float32_stays_float32():
    x = ms.tensor(randn(1, 1, 4, 4), dtype="float32", requires_grad=True)
    out = F.pad(x, (1, 1, 1, 1), mode="reflect")
    out.sum().backward()
    assert out.dtype == np.float32 and x.grad.dtype == np.float32


@requires_torch
@pytest.mark.parametrize("make", [
    lambda m: m.ReflectionPad2d(2), lambda m: m.ReplicationPad2d((1, 2, 3, 0)),
    lambda m: m.CircularPad2d((1, 0, 2, 1)), lambda m: m.ZeroPad2d((1, -1, 2, 0)),
    lambda m: m.ConstantPad2d(1, 3.5)])
def test_pad_modules_match_torch(make):
    ours, ref = make(nn), make(torch.nn)
    assert repr(ours) == repr(ref)
    x = randn(2, 3, 5, 4)
    np.testing.assert_allclose(ours(ms.tensor(x)).numpy(), ref(torch.tensor(x)).numpy(), rtol=1e-12)
    assert ours.state_dict() == {}


@pytest.mark.parametrize("call,error,message", [
    (lambda: F.pad(ms.zeros(1, 1, 4, 4), (1, 1), mode="reflect"), NotImplementedError,
     "1-d padding, which minisegnet leaves out of scope"),
    (lambda: F.pad(ms.zeros(1, 1, 2, 4, 4), (1,) * 6, mode="replicate"), NotImplementedError,
     "3-d padding"),
    (lambda: F.pad(ms.zeros(4, 4), (1,) * 4, mode="reflect"), ValueError, "got a 2-d input"),
    (lambda: F.pad(ms.zeros(1, 1, 4, 4), (4, 0, 0, 0), mode="reflect"), ValueError,
     r"reflect padding must be smaller than the padded dim: got padding \(4, 0\) for dim 3 of size 4"),
    (lambda: F.pad(ms.zeros(1, 1, 4, 4), (5, 0, 0, 0), mode="circular"), ValueError,
     "would wrap around more than once"),
    (lambda: F.pad(ms.zeros(1, 1, 4, 4), (1,) * 4, mode="reflect", value=2), ValueError,
     "takes no value argument"),
    (lambda: F.pad(ms.zeros(1, 1, 4, 4), (1,) * 4, mode="symmetric"), ValueError, "mode must be one of"),
    (lambda: F.pad(ms.zeros(1, 1, 4, 4), (1, 1, 1)), ValueError, "pairs"),
    (lambda: F.pad(ms.zeros(1, 1, 4, 4), (1.5, 1)), TypeError, "pad must be a tuple of ints"),
    (lambda: F.pad(ms.zeros(1, 1, 4, 4), (-3, -2, 0, 0), mode="replicate"), ValueError,
     "leaves an output size of -1"),
])
def test_bad_arguments_raise_clear_errors(call, error, message):
    with pytest.raises(error, match=message):
        call()


@requires_torch
def test_random_crop_reflect_padding_is_torch_reflect_pad():
    from minisegnet.data.transforms import RandomCrop
    image = randn(3, 4, 5).astype(np.float32)
    mask = np.arange(20).reshape(4, 5)
    crop = RandomCrop((7, 8), rng=np.random.default_rng(0), padding_mode="reflect")
    out_image, out_mask = crop(image, mask)          # window = whole padded image
    np.testing.assert_array_equal(out_image, TF.pad(torch.tensor(image)[None], (0, 3, 0, 3), mode="reflect")[0])
    np.testing.assert_array_equal(out_mask, TF.pad(torch.tensor(mask, dtype=torch.float64)[None, None],
                                                   (0, 3, 0, 3), mode="reflect")[0, 0].numpy())
    with pytest.raises(ValueError, match="padding_mode must be 'constant' or 'reflect'"):
        RandomCrop(4, padding_mode="edge")
