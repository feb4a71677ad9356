"""softmax, log_softmax, cross_entropy, dice_loss and the loss modules, against PyTorch
(float64), finite differences and hand-computed values."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import minisegnet as ms
import minisegnet.functional as F
import minisegnet.nn as nn
from minisegnet.kernels import blocks as B
from minisegnet.kernels import normalization as K
from conftest import requires_torch, torch, to_ms

SETTINGS = settings(max_examples=20, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(params=["1", "2"], ids=["1thread", "2threads"])
def small_blocks(monkeypatch, request):
    """Split even tiny arrays into many kernel blocks, so the blocked path is what is tested."""
    monkeypatch.setattr(B, "BLOCK_ELEMENTS", 64)
    monkeypatch.setattr(B, "PARALLEL_MIN_ELEMENTS", 1)
    monkeypatch.setenv("MINISEGNET_NUM_THREADS", request.param)


def _labels(rng, shape, classes, ignore=None, ignore_frac=0.3):
    t = rng.integers(0, classes, shape)
    if ignore is not None:
        t[rng.random(shape) < ignore_frac] = ignore
    return t


# ------------------------------------------------------------------ softmax / log_softmax
@pytest.mark.parametrize("fn", ["softmax", "log_softmax"])
@pytest.mark.parametrize("shape,dim", [((4, 5), 1), ((4, 5), 0), ((2, 3, 4, 5), 1), ((2, 3, 4, 5), -1),
                                       ((3, 2, 4), 2), ((6,), 0)])
def test_softmax_matches_torch(fn, shape, dim, device, parity):
    x = np.random.default_rng(0).standard_normal(shape) * 3
    parity(lambda t: getattr(F, fn)(t, dim), lambda t: getattr(torch, fn)(t, dim), [x], device=device)


@pytest.mark.parametrize("fn", ["softmax", "log_softmax"])
def test_softmax_is_stable_for_huge_logits(fn, device, parity):
    x = np.array([[1000.0, 0.0, -1000.0], [-1e4, -1e4 + 1, -1e4 + 2], [800.0, 800.0, 800.0]])
    out = parity(lambda t: getattr(F, fn)(t, 1), lambda t: getattr(torch, fn)(t, 1), [x], device=device)
    assert np.isfinite(out.numpy()).all()
    assert np.isfinite(F.softmax(ms.tensor(x.astype(np.float32)), 1).numpy()).all()


def _logits_with_extremes(rng, dtype):
    """(8, 5, 12) logits: ordinary ones, plus images whose logits overflow exp (~+-95 in
    float32, beyond +-710 in float64) or underflow it, so that some kernel blocks take
    the unshifted path and others fall back to the shifted one."""
    big = 95.0 if dtype == np.float32 else 800.0
    x = rng.standard_normal((8, 5, 12)) * 3
    x[2] += big                                      # every class huge: exp overflows
    x[5] -= big                                      # every class tiny: exp underflows
    x[6, 0] = big                                    # one class huge on one image
    x[7, :, 4] = [-big, -big + 1, -big + 2, -big + 3, -big + 4]
    return x.astype(dtype)


@requires_torch
@pytest.mark.parametrize("fn", ["softmax", "log_softmax"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_unshifted_and_shifted_blocks_match_torch(fn, dtype, small_blocks):
    """Blocks of ordinary logits skip the max shift (exp, sum, scale); blocks where exp
    would overflow or underflow are done again with it. Both kinds, side by side in one
    array, give PyTorch's values and gradients."""
    x = _logits_with_extremes(np.random.default_rng(1), dtype)
    rtol = 1e-5 if dtype == np.float32 else 1e-10
    ours = ms.tensor(x, requires_grad=True)
    theirs = torch.tensor(x, requires_grad=True)
    y, ref = getattr(F, fn)(ours, 1), getattr(torch, fn)(theirs, 1)
    np.testing.assert_allclose(y.numpy(), ref.detach().numpy(), rtol=rtol, atol=rtol)
    g = np.random.default_rng(2).standard_normal(x.shape).astype(dtype)
    y.backward(ms.tensor(g))
    ref.backward(torch.tensor(g))
    np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy(), rtol=rtol, atol=rtol)


@requires_torch
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cross_entropy_unshifted_and_shifted_blocks_match_torch(dtype, small_blocks):
    rng = np.random.default_rng(3)
    x = _logits_with_extremes(rng, dtype)
    t = rng.integers(0, 5, (8, 12))
    t[1, 3] = 255
    rtol = 1e-5 if dtype == np.float32 else 1e-10
    ours = ms.tensor(x, requires_grad=True)
    theirs = torch.tensor(x, requires_grad=True)
    for reduction in ("none", "mean"):
        loss = F.cross_entropy(ours, ms.tensor(t), ignore_index=255, reduction=reduction)
        ref = torch.nn.functional.cross_entropy(theirs, torch.tensor(t), ignore_index=255, reduction=reduction)
        # float32 logits of ~95 carry an input rounding of ~1e-5, which the loss inherits
        np.testing.assert_allclose(loss.numpy(), ref.detach().numpy(), rtol=rtol, atol=rtol * 10)
    loss.backward()
    ref.backward()
    np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy(), rtol=rtol, atol=rtol)


def test_ordinary_logits_skip_the_shift(monkeypatch):
    """The max over the class axis (the shift) is taken only for blocks that need it."""
    calls = []
    real = K._exp_and_sum

    def spy(xp, xb, out):
        total, m = real(xp, xb, out)
        calls.append(m is None)
        return total, m
    monkeypatch.setattr(K, "_exp_and_sum", spy)
    x = np.random.default_rng(4).standard_normal((2, 3, 4)).astype(np.float32)
    F.softmax(ms.tensor(x), 1)
    x[0, 0, 0] = 200.0                               # exp overflows in float32
    F.log_softmax(ms.tensor(x), 1)
    assert calls == [True, False]


def test_softmax_by_hand():
    y = F.softmax(ms.tensor([[0.0, np.log(3.0)]], dtype=ms.float64), dim=1)
    np.testing.assert_allclose(y.numpy(), [[0.25, 0.75]])
    z = F.log_softmax(ms.tensor([[0.0, np.log(3.0)]], dtype=ms.float64), dim=-1)
    np.testing.assert_allclose(z.numpy(), np.log([[0.25, 0.75]]))
    assert F.softmax(ms.tensor([5.0]), 0).item() == 1.0
    x = ms.randn(2, 3)
    np.testing.assert_allclose(x.softmax(1).numpy(), F.softmax(x, 1).numpy())


@pytest.mark.parametrize("fn", ["softmax", "log_softmax"])
def test_softmax_gradcheck(fn, device):
    x = to_ms(np.random.default_rng(1).standard_normal((2, 3, 2)), device)
    assert ms.gradcheck(lambda t: getattr(F, fn)(t, 1), x)


@pytest.mark.parametrize("fn", ["softmax", "log_softmax"])
def test_softmax_blocked_path_matches_torch(fn, small_blocks, parity):
    rng = np.random.default_rng(2)
    for shape in [(6, 4, 5), (2, 4, 40)]:
        parity(lambda t: getattr(F, fn)(t, 1), lambda t: getattr(torch, fn)(t, 1),
               [rng.standard_normal(shape)])


def test_softmax_errors():
    with pytest.raises(IndexError, match=r"dim 2 is out of range for a tensor with 2 dimensions"):
        F.softmax(ms.randn(2, 3), 2)
    with pytest.raises(TypeError, match=r"softmax: dim must be an int"):
        F.softmax(ms.randn(2, 3), None)
    with pytest.raises(TypeError, match=r"log_softmax: input must be a floating point tensor, got dtype int64"):
        F.log_softmax(ms.tensor([1, 2]), 0)
    with pytest.raises(TypeError, match=r"softmax: input must be a Tensor"):
        F.softmax(np.ones(3), 0)


# ------------------------------------------------------------------ cross_entropy
CE_CASES = [
    # input shape, ignore_index used in the labels (None: no ignored labels)
    ((6, 4), None),
    ((6, 4), -100),
    ((2, 3, 4, 5), 255),
    ((2, 3, 4, 5), None),
    ((2, 3, 7), 1),            # an ignore_index inside [0, C) ignores that class
]


@pytest.mark.parametrize("shape,ignore", CE_CASES)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("weighted", [False, True])
def test_cross_entropy_matches_torch(shape, ignore, reduction, weighted, device, parity):
    rng = np.random.default_rng(3)
    x = rng.standard_normal(shape) * 2
    t = _labels(rng, (shape[0],) + shape[2:], shape[1], ignore)
    weight = rng.random(shape[1]) + 0.1 if weighted else None
    ignore_index = -100 if ignore is None else ignore
    ms_w = None if weight is None else ms.tensor(weight, device=device)
    th_w = None if weight is None else torch.tensor(weight)
    parity(lambda a, b: F.cross_entropy(a, b, ms_w, ignore_index, reduction),
           lambda a, b: torch.nn.functional.cross_entropy(a, b, th_w, ignore_index=ignore_index,
                                                          reduction=reduction),
           [x, t], device=device)


def test_cross_entropy_by_hand():
    # logits (0, log 3): p = (1/4, 3/4). Labels 1 and 0 -> losses -log(3/4), -log(1/4).
    x = ms.tensor([[0.0, np.log(3.0)], [0.0, np.log(3.0)]], dtype=ms.float64, requires_grad=True)
    t = ms.tensor([1, 0])
    loss = F.cross_entropy(x, t, weight=ms.tensor([2.0, 1.0], dtype=ms.float64))
    # weighted mean: (1 * -log(3/4) + 2 * -log(1/4)) / (1 + 2)
    np.testing.assert_allclose(loss.item(), (-np.log(0.75) - 2 * np.log(0.25)) / 3)
    loss.backward()
    # (softmax - onehot) * w / sum(w)
    np.testing.assert_allclose(x.grad.numpy(), [[0.25 / 3, -0.25 / 3], [2 * -0.75 / 3, 2 * 0.75 / 3]])


def test_cross_entropy_all_ignored_is_nan_with_zero_gradient(device):
    x = to_ms(np.random.default_rng(4).standard_normal((2, 3, 2, 2)), device)
    t = ms.full((2, 2, 2), 255, dtype=ms.int64, device=device)
    loss = F.cross_entropy(x, t, ignore_index=255)
    assert np.isnan(loss.item())
    loss.backward()
    np.testing.assert_array_equal(x.grad.numpy(), 0)          # as PyTorch
    assert F.cross_entropy(x, t, ignore_index=255, reduction="sum").item() == 0
    np.testing.assert_array_equal(F.cross_entropy(x, t, ignore_index=255, reduction="none").numpy(), 0)


def test_cross_entropy_is_stable_for_huge_logits(parity):
    x = np.array([[1000.0, -1000.0, 0.0], [-5e3, 5e3, 0.0]])
    out = parity(lambda a, b: F.cross_entropy(a, b), lambda a, b: torch.nn.functional.cross_entropy(a, b),
                 [x, np.array([1, 1])])
    np.testing.assert_allclose(out.item(), 1000.0)            # (2000 + 0) / 2
    big32 = F.cross_entropy(ms.tensor(x.astype(np.float32)), ms.tensor([0, 1]))
    assert np.isfinite(big32.item())


@pytest.mark.parametrize("dtype", [np.uint8, np.int32, np.int64])
def test_cross_entropy_accepts_integer_label_dtypes(dtype, parity):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 4, 3, 3))
    t = _labels(rng, (2, 3, 3), 4, 255).astype(dtype)
    out = F.cross_entropy(ms.tensor(x), ms.tensor(t), ignore_index=255)
    ref = torch.nn.functional.cross_entropy(torch.tensor(x), torch.tensor(t.astype(np.int64)), ignore_index=255)
    np.testing.assert_allclose(out.item(), ref.item(), rtol=1e-6)


def test_cross_entropy_float32_matches_torch_float32():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 5, 8, 8)).astype(np.float32)
    t = _labels(rng, (2, 8, 8), 5, 255)
    a = ms.tensor(x, requires_grad=True)
    loss = F.cross_entropy(a, ms.tensor(t), ignore_index=255)
    assert loss.dtype == np.float32
    loss.backward()
    b = torch.tensor(x, requires_grad=True)
    ref = torch.nn.functional.cross_entropy(b, torch.tensor(t), ignore_index=255)
    ref.backward()
    np.testing.assert_allclose(loss.item(), ref.item(), rtol=1e-5)
    np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-4, atol=1e-7)


def test_cross_entropy_scales_gradient_by_upstream(parity):
    # loss * 3 (upstream gradient != 1) and a loss used inside a bigger graph
    rng = np.random.default_rng(7)
    x, t = rng.standard_normal((3, 4, 2)), _labels(rng, (3, 2), 4)
    parity(lambda a, b: F.cross_entropy(a, b) * 3.0 + a.sum(),
           lambda a, b: torch.nn.functional.cross_entropy(a, b) * 3.0 + a.sum(), [x, t])


@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_cross_entropy_gradcheck(reduction, device):
    rng = np.random.default_rng(8)
    x = to_ms(rng.standard_normal((2, 3, 2, 2)), device)
    t = ms.tensor(_labels(rng, (2, 2, 2), 3, 7), device=device)
    w = ms.tensor(rng.random(3) + 0.5, device=device)
    assert ms.gradcheck(lambda a: F.cross_entropy(a, t, w, ignore_index=7, reduction=reduction), x)


@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_cross_entropy_blocked_path_matches_torch(reduction, small_blocks, parity):
    rng = np.random.default_rng(9)
    w = rng.random(4) + 0.5
    for shape in [(6, 4, 5), (2, 4, 5, 8)]:          # whole items per block / items split
        x, t = rng.standard_normal(shape), _labels(rng, (shape[0],) + shape[2:], 4, 255)
        parity(lambda a, b: F.cross_entropy(a, b, ms.tensor(w), 255, reduction),
               lambda a, b: torch.nn.functional.cross_entropy(a, b, torch.tensor(w), ignore_index=255,
                                                              reduction=reduction), [x, t])


@SETTINGS
@given(n=st.integers(1, 3), c=st.integers(1, 5), spatial=st.lists(st.integers(1, 4), max_size=2),
       reduction=st.sampled_from(["mean", "sum", "none"]), seed=st.integers(0, 2 ** 16))
def test_cross_entropy_any_shape_matches_torch(n, c, spatial, reduction, seed, parity):
    rng = np.random.default_rng(seed)
    shape = (n, c) + tuple(spatial)
    x = rng.standard_normal(shape)
    t = _labels(rng, (n,) + tuple(spatial), c, -100, ignore_frac=0.2)
    t.reshape(-1)[0] = 0                                      # at least one pixel counts
    parity(lambda a, b: F.cross_entropy(a, b, reduction=reduction),
           lambda a, b: torch.nn.functional.cross_entropy(a, b, reduction=reduction), [x, t])


def test_cross_entropy_errors():
    x = ms.randn(2, 4, 3, 3)
    t = ms.zeros(2, 3, 3, dtype=ms.int64)
    bad = t.numpy()
    bad[0, 0, 0], bad[1, 1, 1] = 4, 9
    with pytest.raises(ValueError, match=r"class index 4, 9 outside \[0, 4\).*C=4 classes.*ignore_index=-100"):
        F.cross_entropy(x, ms.tensor(bad))
    neg = t.numpy()
    neg[0, 0, 0] = -1
    with pytest.raises(ValueError, match=r"class index -1 outside \[0, 4\)"):
        F.cross_entropy(x, ms.tensor(neg), ignore_index=255)
    with pytest.raises(ValueError, match=r"target has shape \(2, 4, 4\).*input of shape \(2, 4, 3, 3\).*\(2, 3, 3\)"):
        F.cross_entropy(x, ms.zeros(2, 4, 4, dtype=ms.int64))
    with pytest.raises(TypeError, match=r"target must hold integer class indices.*float32.*\.long\(\)"):
        F.cross_entropy(x, ms.zeros(2, 3, 3))
    with pytest.raises(ValueError, match=r"reduction must be one of \('mean', 'sum', 'none'\), got 'avg'"):
        F.cross_entropy(x, t, reduction="avg")
    with pytest.raises(ValueError, match=r"weight must have shape \(4,\).*got \(3,\)"):
        F.cross_entropy(x, t, weight=ms.ones(3))
    with pytest.raises(TypeError, match=r"weight must be a float tensor, got dtype bool"):
        F.cross_entropy(x, t, weight=np.ones(4, dtype=bool))
    with pytest.raises(ValueError, match=r"logits of shape \(N, C\) or \(N, C, H, W\), got shape \(4,\)"):
        F.cross_entropy(ms.randn(4), ms.tensor(1))
    with pytest.raises(TypeError, match=r"input \(logits\) must be a floating point tensor"):
        F.cross_entropy(ms.zeros(2, 4, dtype=ms.int64), ms.zeros(2, dtype=ms.int64))
    with pytest.raises(TypeError, match=r"ignore_index must be an int"):
        F.cross_entropy(x, t, ignore_index=2.5)
    with pytest.raises(TypeError, match=r"input must be a Tensor of logits"):
        F.cross_entropy(np.zeros((2, 4)), t)


# ------------------------------------------------------------------ dice_loss
def _torch_dice(logits, target, ignore_index=None, smooth=1.0):
    """The documented formula, written independently in PyTorch."""
    probs = torch.softmax(logits, 1)
    c = logits.shape[1]
    valid = torch.ones_like(target, dtype=probs.dtype) if ignore_index is None else (target != ignore_index).to(probs.dtype)
    safe = torch.where(target == (ignore_index if ignore_index is not None else -10**9),
                       torch.zeros_like(target), target)
    onehot = torch.nn.functional.one_hot(safe, c).movedim(-1, 1).to(probs.dtype) * valid.unsqueeze(1)
    probs = probs * valid.unsqueeze(1)
    dims = (0,) + tuple(range(2, logits.ndim))
    inter = (probs * onehot).sum(dims)
    dice = (2 * inter + smooth) / (probs.sum(dims) + onehot.sum(dims) + smooth)
    return 1 - dice.mean()


@pytest.mark.parametrize("shape,ignore,smooth", [((2, 3, 4, 5), None, 1.0), ((2, 3, 4, 5), 255, 1.0),
                                                 ((6, 4), None, 0.5), ((2, 3, 6), 0, 1e-3)])
def test_dice_loss_matches_torch_formula(shape, ignore, smooth, device, parity):
    rng = np.random.default_rng(10)
    x = rng.standard_normal(shape) * 2
    t = _labels(rng, (shape[0],) + shape[2:], shape[1], ignore)
    parity(lambda a, b: F.dice_loss(a, b, ignore_index=ignore, smooth=smooth),
           lambda a, b: _torch_dice(a, b, ignore, smooth), [x, t], device=device)


def test_dice_loss_by_hand():
    # a confident, correct prediction: dice = (2*2 + s) / (2 + 2 + s) = 1 for every class -> loss 0
    big = 50.0
    x = ms.tensor([[big, 0.0], [0.0, big]], dtype=ms.float64)
    np.testing.assert_allclose(F.dice_loss(x, ms.tensor([0, 1]), smooth=0.0).item(), 0.0, atol=1e-12)
    # uniform prediction (p = 1/2 everywhere), labels [0, 0], smooth 1:
    # class 0: (2 * 1 + 1) / (1 + 2 + 1) = 3/4; class 1: (0 + 1) / (1 + 0 + 1) = 1/2
    u = ms.zeros(2, 2, dtype=ms.float64)
    np.testing.assert_allclose(F.dice_loss(u, ms.tensor([0, 0])).item(), 1 - (0.75 + 0.5) / 2)
    # the ignored second sample changes nothing
    np.testing.assert_allclose(F.dice_loss(ms.zeros(3, 2, dtype=ms.float64), ms.tensor([0, 0, 9]),
                                           ignore_index=9).item(), 1 - (0.75 + 0.5) / 2)


def test_dice_loss_gradcheck(device):
    rng = np.random.default_rng(11)
    x = to_ms(rng.standard_normal((2, 3, 2, 2)), device)
    t = ms.tensor(_labels(rng, (2, 2, 2), 3, 5), device=device)
    assert ms.gradcheck(lambda a: F.dice_loss(a, t, ignore_index=5), x)


def test_dice_loss_errors():
    x = ms.randn(2, 3, 4, 4)
    with pytest.raises(ValueError, match=r"dice_loss: target contains class index 255 outside \[0, 3\).*or pass ignore_index"):
        F.dice_loss(x, ms.full((2, 4, 4), 255, dtype=ms.int64))
    with pytest.raises(ValueError, match=r"dice_loss: target has shape \(2, 4\)"):
        F.dice_loss(x, ms.zeros(2, 4, dtype=ms.int64))
    with pytest.raises(ValueError, match=r"smooth must be a number >= 0, got -1"):
        F.dice_loss(x, ms.zeros(2, 4, 4, dtype=ms.int64), smooth=-1)
    with pytest.raises(TypeError, match=r"dice_loss: ignore_index must be an int or None"):
        F.dice_loss(x, ms.zeros(2, 4, 4, dtype=ms.int64), ignore_index="x")
    with pytest.raises(ValueError, match=r"DiceLoss: smooth must be a number >= 0"):
        nn.DiceLoss(smooth=-0.5)


# ------------------------------------------------------------------ modules
@requires_torch
def test_loss_modules_match_torch():
    rng = np.random.default_rng(12)
    x = rng.standard_normal((2, 4, 3, 3))
    t = _labels(rng, (2, 3, 3), 4, 255)
    w = rng.random(4) + 0.5
    ours = nn.CrossEntropyLoss(weight=ms.tensor(w), ignore_index=255)
    theirs = torch.nn.CrossEntropyLoss(weight=torch.tensor(w), ignore_index=255)
    np.testing.assert_allclose(ours(ms.tensor(x), ms.tensor(t)).item(),
                               theirs(torch.tensor(x), torch.tensor(t)).item(), rtol=1e-6)
    assert list(ours.state_dict()) == list(theirs.state_dict()) == ["weight"]
    assert list(nn.CrossEntropyLoss().state_dict()) == []
    assert nn.CrossEntropyLoss(ignore_index=255, reduction="none")(ms.tensor(x), ms.tensor(t)).shape == (2, 3, 3)
    dice = nn.DiceLoss(ignore_index=255, smooth=0.5)
    np.testing.assert_allclose(dice(ms.tensor(x), ms.tensor(t)).item(),
                               _torch_dice(torch.tensor(x), torch.tensor(t), 255, 0.5).item(), rtol=1e-6)
    assert "ignore_index=255" in repr(ours) and "smooth=0.5" in repr(dice)


def test_loss_module_errors():
    with pytest.raises(ValueError, match=r"CrossEntropyLoss: reduction must be one of"):
        nn.CrossEntropyLoss(reduction="elementwise")
    with pytest.raises(TypeError, match=r"CrossEntropyLoss: ignore_index must be an int"):
        nn.CrossEntropyLoss(ignore_index=None)
