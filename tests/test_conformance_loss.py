"""cross_entropy with class-probability targets and label_smoothing, against PyTorch (float64)."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import minisegnet as ms
import minisegnet.functional as F
import minisegnet.nn as nn
from minisegnet.gradcheck import gradcheck
from conftest import requires_torch, torch

SETTINGS = settings(max_examples=20, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


def labels(rng, shape, classes, ignore):
    t = rng.integers(0, classes, shape)
    if ignore is not None:
        t[rng.random(shape) < 0.3] = ignore
    return t


def probabilities(rng, shape):
    p = rng.random(shape)
    return p / p.sum(axis=1, keepdims=True)


@requires_torch
@pytest.mark.parametrize("shape,ignore", [((6, 4), None), ((2, 3, 4, 5), 255), ((2, 3, 7), 1)])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("weighted", [False, True])
def test_label_smoothing_with_index_targets_matches_torch(shape, ignore, reduction, weighted, device,
                                                          parity):
    rng = np.random.default_rng(5)
    x = rng.standard_normal(shape) * 2
    t = labels(rng, (shape[0],) + shape[2:], shape[1], ignore)
    weight = rng.random(shape[1]) + 0.1 if weighted else None
    ignore_index = -100 if ignore is None else ignore
    ms_w = None if weight is None else ms.tensor(weight, device=device)
    th_w = None if weight is None else torch.tensor(weight)
    parity(lambda a, b: F.cross_entropy(a, b, ms_w, ignore_index, reduction, label_smoothing=0.2),
           lambda a, b: torch.nn.functional.cross_entropy(a, b, th_w, ignore_index=ignore_index,
                                                          reduction=reduction, label_smoothing=0.2),
           [x, t], device=device)


@requires_torch
@pytest.mark.parametrize("shape", [(5, 3), (2, 4, 3, 5)])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("weighted,smoothing", [(False, 0.0), (True, 0.0), (False, 0.3), (True, 0.1)])
def test_probability_targets_match_torch_with_target_gradient(shape, reduction, weighted, smoothing,
                                                             device, parity):
    rng = np.random.default_rng(6)
    x = rng.standard_normal(shape) * 2
    y = probabilities(rng, shape)
    weight = rng.random(shape[1]) + 0.1 if weighted else None
    ms_w = None if weight is None else ms.tensor(weight, device=device)
    th_w = None if weight is None else torch.tensor(weight)
    # both inputs are floats, so the parity helper also compares d loss / d target
    parity(lambda a, b: F.cross_entropy(a, b, ms_w, reduction=reduction, label_smoothing=smoothing),
           lambda a, b: torch.nn.functional.cross_entropy(a, b, th_w, reduction=reduction,
                                                          label_smoothing=smoothing),
           [x, y], device=device)


@requires_torch
@SETTINGS
@given(n=st.integers(1, 3), c=st.integers(1, 5), spatial=st.lists(st.integers(1, 4), max_size=2),
       smoothing=st.floats(0.0, 1.0), reduction=st.sampled_from(["mean", "sum", "none"]),
       soft=st.booleans(), seed=st.integers(0, 100))
def test_random_shapes_match_torch(n, c, spatial, smoothing, reduction, soft, seed, parity):
    rng = np.random.default_rng(seed)
    shape = (n, c) + tuple(spatial)
    x = rng.standard_normal(shape)
    t = probabilities(rng, shape) if soft else labels(rng, (n,) + tuple(spatial), c, -100)
    parity(lambda a, b: F.cross_entropy(a, b, reduction=reduction, label_smoothing=smoothing),
           lambda a, b: torch.nn.functional.cross_entropy(a, b, reduction=reduction,
                                                          label_smoothing=smoothing), [x, t])


def test_label_smoothing_by_hand():
    # two classes, equal logits: p = (1/2, 1/2); e = 0.5 -> q = (0.75, 0.25), loss = log 2
    x = ms.tensor(np.zeros((1, 2)), requires_grad=True)
    loss = F.cross_entropy(x, ms.tensor(np.array([0])), label_smoothing=0.5)
    np.testing.assert_allclose(loss.item(), np.log(2.0))
    loss.backward()
    np.testing.assert_allclose(x.grad.numpy(), [[0.5 - 0.75, 0.5 - 0.25]])


def test_gradcheck_both_paths():
    rng = np.random.default_rng(7)
    x = ms.tensor(rng.standard_normal((2, 3, 2, 2)), requires_grad=True)
    y = ms.tensor(probabilities(rng, (2, 3, 2, 2)), requires_grad=True)
    t = ms.tensor(labels(rng, (2, 2, 2), 3, 255))
    w = ms.tensor(rng.random(3) + 0.5)
    assert gradcheck(lambda a, b: F.cross_entropy(a, b, w, label_smoothing=0.2), x, y)
    assert gradcheck(lambda a: F.cross_entropy(a, t, w, 255, label_smoothing=0.2), x)


def test_float32_stays_float32():
    rng = np.random.default_rng(8)
    x = ms.tensor(rng.standard_normal((2, 3, 4)), dtype="float32", requires_grad=True)
    y = ms.tensor(probabilities(rng, (2, 3, 4)), dtype="float32")
    loss = F.cross_entropy(x, y, label_smoothing=0.1)
    loss.backward()
    assert loss.dtype == np.float32 and x.grad.dtype == np.float32


@requires_torch
def test_module_label_smoothing_matches_torch():
    rng = np.random.default_rng(9)
    x, t = rng.standard_normal((2, 4, 3, 3)), labels(rng, (2, 3, 3), 4, 255)
    ours = nn.CrossEntropyLoss(ignore_index=255, label_smoothing=0.1)
    ref = torch.nn.CrossEntropyLoss(ignore_index=255, label_smoothing=0.1)
    np.testing.assert_allclose(ours(ms.tensor(x), ms.tensor(t)).item(),
                               ref(torch.tensor(x), torch.tensor(t)).item(), rtol=1e-10)
    assert "label_smoothing=0.1" in repr(ours)


@pytest.mark.parametrize("call,error,message", [
    (lambda: F.cross_entropy(ms.zeros(2, 3), ms.tensor([0, 1]), label_smoothing=1.5), ValueError,
     r"label_smoothing must be a number in \[0, 1\], got 1.5"),
    (lambda: F.cross_entropy(ms.zeros(2, 3), ms.zeros(2, 3), ignore_index=0), ValueError,
     "ignore_index is not supported with class-probability"),
    (lambda: F.cross_entropy(ms.zeros(2, 3), ms.zeros(2, 4)), TypeError,
     r"class-probability targets are floats of the input's shape \(2, 3\)"),
    (lambda: nn.CrossEntropyLoss(label_smoothing=-0.1), ValueError, "CrossEntropyLoss: label_smoothing"),
    (lambda: F.cross_entropy(ms.zeros(5), ms.zeros(5)), ValueError,          # unbatched: out of scope
     r"input must be logits of shape \(N, C\) or \(N, C, H, W\), got shape \(5,\)"),
])
def test_bad_arguments_raise_clear_errors(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_label_smoothing_training_option_reaches_the_loss():
    from minisegnet import models, train
    assert train.make_config(label_smoothing=0.1)["label_smoothing"] == 0.1
    with pytest.raises(train.ConfigError, match="label_smoothing must be a finite number >= 0.0 and <= 1"):
        train.make_config(label_smoothing=1.5)
    rng = np.random.default_rng(10)
    model = models.create("fcn", num_classes=3, channels=8)
    model.eval()                                        # no dropout: two calls see the same logits
    img = ms.tensor(rng.standard_normal((1, 3, 32, 32)), dtype="float32")
    target = ms.tensor(labels(rng, (1, 32, 32), 3, 255))
    with ms.no_grad():
        logits = model(img)
        smoothed = model.loss(img, target, label_smoothing=0.3)["loss_decode"].item()
        plain = model.loss(img, target)["loss_decode"].item()
    expected = F.cross_entropy(logits, target, ignore_index=255, label_smoothing=0.3).item()
    np.testing.assert_allclose(smoothed, expected, rtol=1e-6)
    assert abs(smoothed - plain) > 1e-6
