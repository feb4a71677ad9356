"""batch_norm, dropout, dropout2d and their modules, against PyTorch (float64) and by hand."""
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
    """Make the kernels split even tiny arrays into many blocks (run in this thread, or
    shared with a worker thread), so that the blocked code path is what the test checks."""
    monkeypatch.setattr(B, "BLOCK_ELEMENTS", 64)
    monkeypatch.setattr(B, "PARALLEL_MIN_ELEMENTS", 1)
    monkeypatch.setenv("MINISEGNET_NUM_THREADS", request.param)


# ------------------------------------------------------------------ kernel blocks
@pytest.mark.parametrize("shape3", [(6, 4, 5), (3, 4, 30), (1, 70, 1), (2, 3, 1)])
def test_blocks_tile_the_array_exactly_once(shape3, small_blocks):
    covered = np.zeros((shape3[0], shape3[2]), dtype=int)
    for rows, cols in K.blocks(shape3):
        covered[rows, cols] += 1
    assert (covered == 1).all()


def test_for_each_block_returns_results_in_block_order(small_blocks):
    shape3 = (6, 4, 5)
    got = K.for_each_block(shape3, lambda rows, cols: (rows.start, cols.start))
    assert got == [(r.start, c.start) for r, c in K.blocks(shape3)]


# ------------------------------------------------------------------ batch_norm
def _bn_case(rng, shape, affine):
    c = shape[1]
    arrays = [rng.standard_normal(shape) * 3 + 1.5]
    if affine:
        arrays += [rng.standard_normal(c), rng.standard_normal(c)]
    return arrays


@pytest.mark.parametrize("shape", [(5, 3), (4, 3, 5, 6), (2, 3, 7)])
@pytest.mark.parametrize("affine", [True, False])
def test_batch_norm_training_matches_torch(shape, affine, device, parity):
    rng = np.random.default_rng(0)
    c = shape[1]
    start_mean, start_var = rng.standard_normal(c), rng.random(c) + 0.5
    rm, rv = ms.tensor(start_mean, device=device), ms.tensor(start_var, device=device)
    trm, trv = torch.tensor(start_mean), torch.tensor(start_var)

    def ms_fn(x, *wb):
        return F.batch_norm(x, rm, rv, *wb, training=True, momentum=0.2, eps=1e-3)

    def torch_fn(x, *wb):
        return torch.nn.functional.batch_norm(x, trm, trv, *wb, training=True, momentum=0.2, eps=1e-3)

    parity(ms_fn, torch_fn, _bn_case(rng, shape, affine), device=device)
    np.testing.assert_allclose(rm.numpy(), trm.numpy(), rtol=1e-6)
    np.testing.assert_allclose(rv.numpy(), trv.numpy(), rtol=1e-6)


@pytest.mark.parametrize("shape", [(5, 3), (4, 3, 5, 6)])
@pytest.mark.parametrize("affine", [True, False])
def test_batch_norm_eval_matches_torch_and_leaves_running_stats(shape, affine, device, parity):
    rng = np.random.default_rng(1)
    c = shape[1]
    mean, var = rng.standard_normal(c), rng.random(c) + 0.5
    rm, rv = ms.tensor(mean, device=device), ms.tensor(var, device=device)

    def ms_fn(x, *wb):
        return F.batch_norm(x, rm, rv, *wb, training=False)

    def torch_fn(x, *wb):
        return torch.nn.functional.batch_norm(x, torch.tensor(mean), torch.tensor(var), *wb, training=False)

    parity(ms_fn, torch_fn, _bn_case(rng, shape, affine), device=device)
    np.testing.assert_array_equal(rm.numpy(), mean)
    np.testing.assert_array_equal(rv.numpy(), var)


def test_batch_norm_by_hand():
    # one channel, values 1, 2, 3, 6: mean 3, biased var 3.5, unbiased 14/3
    x = ms.tensor(np.array([[1.0], [2.0], [3.0], [6.0]]))
    rm, rv = np.zeros(1), np.ones(1)
    y = F.batch_norm(x, rm, rv, training=True, momentum=0.5, eps=0.0)
    np.testing.assert_allclose(y.numpy()[:, 0], (np.array([1, 2, 3, 6]) - 3) / np.sqrt(3.5))
    np.testing.assert_allclose(rm, [1.5])                      # 0.5 * 0 + 0.5 * 3
    np.testing.assert_allclose(rv, [0.5 + 0.5 * 14 / 3])       # unbiased variance


def test_batch_norm_blocked_threaded_path_matches_torch(small_blocks, parity):
    rng = np.random.default_rng(2)
    for shape in [(6, 3, 2, 3), (2, 3, 5, 7)]:      # blocks of whole items / split inside an item
        rm, rv = np.zeros(3), np.ones(3)
        trm, trv = torch.zeros(3), torch.ones(3)
        parity(lambda x, w, b: F.batch_norm(x, rm, rv, w, b, training=True),
               lambda x, w, b: torch.nn.functional.batch_norm(x, trm, trv, w, b, training=True),
               _bn_case(rng, shape, True))
        np.testing.assert_allclose(rv, trv.numpy(), rtol=1e-6)
        parity(lambda x, w, b: F.batch_norm(x, rm, rv, w, b, training=False),
               lambda x, w, b: torch.nn.functional.batch_norm(x, trm, trv, w, b, training=False),
               _bn_case(rng, shape, True))


@SETTINGS
@given(n=st.integers(1, 4), c=st.integers(1, 4), h=st.integers(1, 4), w=st.integers(1, 4),
       seed=st.integers(0, 2 ** 16))
def test_batch_norm_any_shape_matches_torch(n, c, h, w, seed, parity):
    if n * h * w < 2:
        return
    rng = np.random.default_rng(seed)
    rm, rv = np.zeros(c), np.ones(c)
    trm, trv = torch.zeros(c), torch.ones(c)
    parity(lambda x, g, b: F.batch_norm(x, rm, rv, g, b, training=True),
           lambda x, g, b: torch.nn.functional.batch_norm(x, trm, trv, g, b, training=True),
           _bn_case(rng, (n, c, h, w), True))
    np.testing.assert_allclose(rm, trm.numpy(), rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(rv, trv.numpy(), rtol=1e-6)


@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_gradcheck(training, device):
    rng = np.random.default_rng(3)
    x = to_ms(rng.standard_normal((3, 2, 2, 2)), device)
    w, b = to_ms(rng.standard_normal(2), device), to_ms(rng.standard_normal(2), device)
    rm, rv = ms.tensor(rng.standard_normal(2), device=device), ms.tensor(rng.random(2) + 0.5, device=device)
    assert ms.gradcheck(lambda x, w, b: F.batch_norm(x, rm, rv, w, b, training=training, momentum=0.0),
                        x, w, b)


# ------------------------------------------------------------------ fused batch norm + ReLU
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("shape", [(4, 3, 5, 6), (6, 3)])
def test_fused_batch_norm_relu_matches_torch(training, affine, shape, device, parity):
    """F.batch_norm(..., relu=True) is torch's relu(batch_norm(...)): output, the gradient
    of x, weight and bias (through the ReLU's mask), and the running statistics."""
    rng = np.random.default_rng(6)
    c = shape[1]
    mean, var = rng.standard_normal(c), rng.random(c) + 0.5
    rm, rv = ms.tensor(mean, device=device), ms.tensor(var, device=device)
    trm, trv = torch.tensor(mean), torch.tensor(var)
    parity(lambda x, *wb: F.batch_norm(x, rm, rv, *wb, training=training, momentum=0.2, relu=True),
           lambda x, *wb: torch.relu(torch.nn.functional.batch_norm(x, trm, trv, *wb, training=training,
                                                                    momentum=0.2)),
           _bn_case(rng, shape, affine), device=device)
    np.testing.assert_allclose(rm.numpy(), trm.numpy(), rtol=1e-6)
    np.testing.assert_allclose(rv.numpy(), trv.numpy(), rtol=1e-6)


@requires_torch
def test_fused_batch_norm_relu_gradient_of_weight_and_bias_only():
    """With x a constant (no grad), the weight and bias gradients still pass the mask."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((3, 2, 4, 4))
    w, b = rng.standard_normal(2), rng.standard_normal(2)
    for training in (True, False):
        ours = [ms.tensor(v, requires_grad=True) for v in (w, b)]
        theirs = [torch.tensor(v, requires_grad=True) for v in (w, b)]
        y = F.batch_norm(ms.tensor(x), np.zeros(2), np.ones(2), *ours, training=training, relu=True)
        ref = torch.relu(torch.nn.functional.batch_norm(torch.tensor(x), torch.zeros(2, dtype=torch.float64),
                                                        torch.ones(2, dtype=torch.float64), *theirs,
                                                        training=training))
        (y * y).sum().backward()
        (ref * ref).sum().backward()
        for a, t in zip(ours, theirs):
            np.testing.assert_allclose(a.grad.numpy(), t.grad.numpy(), rtol=1e-9, atol=1e-12)


def test_fused_batch_norm_relu_blocked_threaded_path_matches_torch(small_blocks, parity):
    rng = np.random.default_rng(8)
    for shape in [(6, 3, 2, 3), (2, 3, 5, 7)]:
        rm, rv = np.zeros(3), np.ones(3)
        trm, trv = torch.zeros(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64)
        parity(lambda x, w, b: F.batch_norm(x, rm, rv, w, b, training=True, relu=True),
               lambda x, w, b: torch.relu(torch.nn.functional.batch_norm(x, trm, trv, w, b, training=True)),
               _bn_case(rng, shape, True))


@pytest.mark.parametrize("training", [True, False])
def test_fused_batch_norm_relu_gradcheck(training, device):
    rng = np.random.default_rng(12)
    x = to_ms(rng.standard_normal((3, 2, 2, 2)) + 0.3, device)
    w, b = to_ms(rng.standard_normal(2), device), to_ms(rng.standard_normal(2), device)
    rm, rv = ms.tensor(rng.standard_normal(2), device=device), ms.tensor(rng.random(2) + 0.5, device=device)
    assert ms.gradcheck(lambda x, w, b: F.batch_norm(x, rm, rv, w, b, training=training, momentum=0.0,
                                                     relu=True), x, w, b)


def test_fused_batch_norm_relu_by_hand():
    # one channel, values 1, 2, 3, 6: mean 3, std sqrt(3.5); below the mean -> 0
    x = ms.tensor(np.array([[1.0], [2.0], [3.0], [6.0]]), requires_grad=True)
    y = F.batch_norm(x, None, None, training=True, eps=0.0, relu=True)
    np.testing.assert_allclose(y.numpy()[:, 0], [0, 0, 0, 3 / np.sqrt(3.5)])
    y.sum().backward()
    # d/dx of xhat_3 = (x_3 - m)/s for the one pixel the ReLU lets through:
    # (delta_3j - 1/4)/s - xhat_3 * xhat_j / (4 s)
    s = np.sqrt(3.5)
    xhat = (np.array([1.0, 2, 3, 6]) - 3) / s
    expected = (np.array([0, 0, 0, 1]) - 0.25) / s - xhat[3] * xhat / (4 * s)
    np.testing.assert_allclose(x.grad.numpy()[:, 0], expected, rtol=1e-12)


@requires_torch
def test_batchnorm2d_relu_argument_matches_torch_module(device):
    rng = np.random.default_rng(9)
    ours, theirs = nn.BatchNorm2d(3).to(device).double(), torch.nn.BatchNorm2d(3).double()
    x = rng.standard_normal((4, 3, 5, 5))
    np.testing.assert_allclose(ours(ms.tensor(x, device=device), relu=True).numpy(),
                               torch.relu(theirs(torch.tensor(x))).detach().numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(ours.running_var.numpy(), theirs.running_var.numpy(), rtol=1e-9)


def test_batch_norm_float32_stays_float32():
    x = ms.randn(4, 3, 5, 5)
    w = ms.ones(3, requires_grad=True)
    y = F.batch_norm(x, ms.zeros(3), ms.ones(3), w, training=True)
    assert y.dtype == np.float32
    y.sum().backward()
    assert w.grad.dtype == np.float32
    np.testing.assert_allclose(y.numpy().mean(axis=(0, 2, 3)), 0, atol=1e-5)


@pytest.mark.parametrize("blocked", [False, True])
def test_batch_statistics_are_precise_in_float32_with_a_large_mean(blocked, monkeypatch):
    if blocked:
        monkeypatch.setattr(B, "BLOCK_ELEMENTS", 256)
    x = (np.random.default_rng(9).standard_normal((8, 3, 20, 20)) * 0.01 + 1000.0).astype(np.float32)
    mean, var = K.batch_statistics(x.reshape(8, 3, -1))
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(mean, x64.mean(axis=(0, 2, 3)), rtol=1e-6)   # a few float32 ulps
    np.testing.assert_allclose(var, x64.var(axis=(0, 2, 3)), rtol=1e-3)


@pytest.mark.parametrize("shape", [(512, 3, 1, 1), (64, 5, 4, 4), (16, 4, 7, 9)])
def test_batch_statistics_of_short_rows_are_precise(shape):
    """(N, C) inputs and 4x4 / 7x9 maps take the short-row sums: same precision."""
    x = (np.random.default_rng(10).standard_normal(shape) * 0.01 + 1000.0).astype(np.float32)
    mean, var = K.batch_statistics(x.reshape(shape[0], shape[1], -1))
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(mean, x64.mean(axis=(0, 2, 3)), rtol=1e-6)   # a few float32 ulps
    np.testing.assert_allclose(var, x64.var(axis=(0, 2, 3)), rtol=1e-3)


def test_batch_norm_errors():
    x = ms.randn(2, 3, 4, 4)
    with pytest.raises(ValueError, match=r"more than 1 value per channel.*batch of 2 or more.*eval\(\)"):
        F.batch_norm(ms.randn(1, 3, 1, 1), None, None, training=True)
    with pytest.raises(ValueError, match=r"more than 1 value per channel"):
        F.batch_norm(ms.randn(1, 3), ms.zeros(3), ms.ones(3), training=True)
    with pytest.raises(ValueError, match=r"weight must have shape \(3,\).*got \(4,\)"):
        F.batch_norm(x, None, None, ms.ones(4), training=True)
    with pytest.raises(ValueError, match=r"running_mean must have shape \(3,\).*got \(2,\)"):
        F.batch_norm(x, ms.zeros(2), ms.ones(3))
    with pytest.raises(ValueError, match=r"running_mean and running_var are needed when training=False"):
        F.batch_norm(x, None, None, training=False)
    with pytest.raises(ValueError, match=r"shape \(N, C\) or \(N, C, H, W\).*got shape \(5,\)"):
        F.batch_norm(ms.randn(5), None, None, training=True)
    with pytest.raises(TypeError, match=r"floating point.*int64"):
        F.batch_norm(ms.tensor(np.ones((2, 3), dtype=np.int64)), None, None, training=True)
    with pytest.raises(TypeError, match=r"input must be a Tensor"):
        F.batch_norm(np.ones((2, 3)), None, None, training=True)
    with pytest.raises(TypeError, match=r"bias must be a Tensor or None"):
        F.batch_norm(x, None, None, None, [1, 2, 3], training=True)
    with pytest.raises(TypeError, match=r"running_var must be a Tensor or an array of shape \(3,\), got list"):
        F.batch_norm(x, ms.zeros(3), [1.0, 1.0, 1.0])


# ------------------------------------------------------------------ nn.BatchNorm2d
@requires_torch
@pytest.mark.parametrize("affine,track", [(True, True), (False, True), (True, False)])
def test_batchnorm2d_state_dict_keys_and_shapes_match_torch(affine, track):
    ours = nn.BatchNorm2d(5, affine=affine, track_running_stats=track).state_dict()
    theirs = torch.nn.BatchNorm2d(5, affine=affine, track_running_stats=track).state_dict()
    assert list(ours) == list(theirs)
    for k in ours:
        assert ours[k].shape == tuple(theirs[k].shape), k
    if track:
        assert ours["num_batches_tracked"].dtype == np.int64


@requires_torch
@pytest.mark.parametrize("momentum", [0.1, 0.3, None])
def test_batchnorm2d_several_steps_match_torch(momentum, device):
    rng = np.random.default_rng(4)
    ours = nn.BatchNorm2d(3, momentum=momentum).to(device).double()
    theirs = torch.nn.BatchNorm2d(3, momentum=momentum).double()
    state = {k: rng.standard_normal(v.shape) + (2 if k == "running_var" else 0)
             for k, v in theirs.state_dict().items() if k != "num_batches_tracked"}
    state["num_batches_tracked"] = np.array(0)
    theirs.load_state_dict({k: torch.tensor(v) for k, v in state.items()})
    ours.load_state_dict(state)
    for _ in range(3):
        x = rng.standard_normal((4, 3, 5, 5)) * 2 + 1
        y = ours(ms.tensor(x, device=device))
        ref = theirs(torch.tensor(x))
        np.testing.assert_allclose(y.numpy(), ref.detach().numpy(), rtol=1e-6, atol=1e-9)
    for k, v in theirs.state_dict().items():
        np.testing.assert_allclose(ours.state_dict()[k], v.numpy(), rtol=1e-6, err_msg=k)
    assert ours.num_batches_tracked.item() == 3
    ours.eval(), theirs.eval()
    x = rng.standard_normal((2, 3, 4, 4))
    np.testing.assert_allclose(ours(ms.tensor(x, device=device)).numpy(),
                               theirs(torch.tensor(x)).detach().numpy(), rtol=1e-6, atol=1e-9)


@requires_torch
def test_batchnorm2d_without_running_stats_uses_batch_stats_in_eval():
    x = np.random.default_rng(5).standard_normal((3, 2, 4, 4))
    ours = nn.BatchNorm2d(2, track_running_stats=False).double().eval()
    theirs = torch.nn.BatchNorm2d(2, track_running_stats=False).double().eval()
    np.testing.assert_allclose(ours(ms.tensor(x)).numpy(), theirs(torch.tensor(x)).detach().numpy(),
                               rtol=1e-6, atol=1e-9)


def test_batchnorm2d_parameters_and_reset():
    bn = nn.BatchNorm2d(4)
    assert [n for n, _ in bn.named_parameters()] == ["weight", "bias"]
    bn(ms.randn(2, 4, 3, 3) + 5)
    assert bn.running_mean.numpy().mean() > 0.3
    bn.reset_parameters()
    np.testing.assert_array_equal(bn.running_mean.numpy(), 0)
    np.testing.assert_array_equal(bn.running_var.numpy(), 1)
    assert bn.num_batches_tracked.item() == 0
    assert "BatchNorm2d(4, eps=1e-05, momentum=0.1" in repr(bn)
    assert list(nn.BatchNorm2d(4, affine=False).parameters()) == []


def test_batchnorm1d_accepts_vectors_and_sequences():
    bn = nn.BatchNorm1d(3)
    assert bn(ms.randn(4, 3)).shape == (4, 3)
    assert bn(ms.randn(4, 3, 6)).shape == (4, 3, 6)
    with pytest.raises(ValueError, match=r"BatchNorm1d: expected an input of shape \(N, C\) or \(N, C, L\)"):
        bn(ms.randn(2, 3, 4, 4))


def test_batchnorm2d_errors():
    bn = nn.BatchNorm2d(3)
    with pytest.raises(ValueError, match=r"BatchNorm2d: expected an input of shape \(N, C, H, W\), got shape \(2, 3, 4\)"):
        bn(ms.randn(2, 3, 4))
    with pytest.raises(ValueError, match=r"BatchNorm2d\(3\) got an input with 5 channels \(shape \(2, 5, 4, 4\)\)"):
        bn(ms.randn(2, 5, 4, 4))
    with pytest.raises(ValueError, match=r"more than 1 value per channel"):
        bn(ms.randn(1, 3, 1, 1))
    bn.eval()
    assert bn(ms.randn(1, 3, 1, 1)).shape == (1, 3, 1, 1)         # fine in eval mode
    with pytest.raises(ValueError, match=r"num_features must be a positive int"):
        nn.BatchNorm2d(0)
    with pytest.raises(ValueError, match=r"momentum must be in \[0, 1\] or None"):
        nn.BatchNorm2d(3, momentum=2)
    with pytest.raises(TypeError, match=r"input must be a Tensor"):
        bn(np.zeros((2, 3, 4, 4)))


# ------------------------------------------------------------------ dropout
def test_dropout_statistics_and_exact_scaling(device):
    ms.manual_seed(0)
    x = ms.tensor(np.random.default_rng(6).random(100_000) + 1.0, device=device)   # no zeros
    p = 0.3
    y = F.dropout(x, p).numpy()
    dropped = y == 0
    assert abs(dropped.mean() - p) < 0.01
    np.testing.assert_array_equal(y[~dropped], x.numpy()[~dropped] * np.float64(1 / (1 - p)))


def test_dropout_gradient_is_the_mask(device):
    ms.manual_seed(1)
    x = ms.tensor(np.ones((50, 40)), device=device, requires_grad=True)
    y = F.dropout(x, 0.5)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), y.numpy())       # 0 or 2, exactly where y is


def test_dropout_is_reproducible_from_the_seed(device):
    x = ms.ones(8, 8, device=device)
    ms.manual_seed(123)
    a = F.dropout(x, 0.5).numpy()
    b = F.dropout(x, 0.5).numpy()
    ms.manual_seed(123)
    np.testing.assert_array_equal(F.dropout(x, 0.5).numpy(), a)
    assert not np.array_equal(a, b)


def test_dropout_eval_identity_and_edge_probabilities(device):
    x = ms.randn(4, 5, device=device)
    assert F.dropout(x, 0.5, training=False) is x
    assert F.dropout(x, 0.0) is x
    assert F.dropout2d(ms.randn(2, 3, 4, 4), 0.5, training=False).shape == (2, 3, 4, 4)
    np.testing.assert_array_equal(F.dropout(x, 1.0).numpy(), 0)
    layer = nn.Dropout2d(0.5).eval()
    z = ms.randn(2, 3, 4, 4)
    np.testing.assert_array_equal(layer(z).numpy(), z.numpy())


def test_dropout2d_zeroes_whole_channels(device):
    ms.manual_seed(2)
    x = ms.tensor(np.random.default_rng(7).random((20, 30, 3, 4)) + 1.0, device=device)
    p = 0.4
    y = F.dropout2d(x, p).numpy()
    per_channel = (y == 0).reshape(20, 30, -1)
    assert (per_channel.all(axis=2) | ~per_channel.any(axis=2)).all()   # all or nothing
    assert abs(per_channel.all(axis=2).mean() - p) < 0.08
    kept = ~per_channel.all(axis=2)
    np.testing.assert_array_equal(y[kept], x.numpy()[kept] / np.float64(1 - p))
    assert (nn.Dropout2d(0.4)(x).numpy() == 0).reshape(20, 30, -1).all(axis=2).any()


def test_dropout_errors():
    x = ms.randn(2, 3, 4, 4)
    for bad in (-0.1, 1.5, "half"):
        with pytest.raises(ValueError, match=r"dropout probability p has to be between 0 and 1, but got"):
            F.dropout(x, bad)
        with pytest.raises(ValueError, match=r"dropout probability p has to be between 0 and 1"):
            F.dropout2d(x, bad)
    with pytest.raises(ValueError, match=r"Dropout2d: dropout probability p has to be between 0 and 1"):
        nn.Dropout2d(2.0)
    with pytest.raises(ValueError, match=r"dropout2d: input must have shape \(N, C, H, W\), got shape \(2, 3\)"):
        F.dropout2d(ms.randn(2, 3))
    with pytest.raises(TypeError, match=r"dropout: input must be a floating point tensor, got dtype int64"):
        F.dropout(ms.tensor([1, 2, 3]))
    with pytest.raises(TypeError, match=r"dropout: input must be a Tensor"):
        F.dropout(np.ones(3))


def test_num_threads_reads_the_environment(monkeypatch):
    monkeypatch.setenv("MINISEGNET_NUM_THREADS", "3")
    assert B.num_threads() == 3                      # what the block kernels split over
    monkeypatch.setenv("MINISEGNET_NUM_THREADS", "zero")
    with pytest.raises(ValueError, match=r"MINISEGNET_NUM_THREADS must be a positive integer, got 'zero'"):
        B.num_threads()


@requires_torch
@pytest.mark.parametrize("act", ["relu", "gelu", "identity"])
def test_norm_act_fuses_only_a_plain_relu(act):
    """nn.norm_act(bn, act, x) is act(bn(x)) whatever act is (checked against torch); the
    conv units of the models use it, so swapping their activation really swaps it."""
    from minisegnet.models import ConvModule
    rng = np.random.default_rng(10)
    x = rng.standard_normal((2, 3, 5, 5))
    ours = {"relu": nn.ReLU(), "gelu": nn.GELU(), "identity": nn.Identity()}[act]
    theirs = {"relu": torch.nn.ReLU(), "gelu": torch.nn.GELU(), "identity": torch.nn.Identity()}[act]
    bn, tbn = nn.BatchNorm2d(3).double(), torch.nn.BatchNorm2d(3).double()
    ref = theirs(tbn(torch.tensor(x))).detach().numpy()
    np.testing.assert_allclose(nn.norm_act(bn, ours, ms.tensor(x)).numpy(), ref, rtol=1e-9, atol=1e-12)
    unit = ConvModule(3, 4, 3, padding=1).double()
    unit.activate = ours
    tconv = torch.nn.Conv2d(3, 4, 3, padding=1, bias=False).double()
    tconv.weight.data = torch.tensor(np.asarray(unit.conv.weight.data))
    expected = theirs(torch.nn.BatchNorm2d(4).double()(tconv(torch.tensor(x)))).detach().numpy()
    np.testing.assert_allclose(unit(ms.tensor(x)).numpy(), expected, rtol=1e-9, atol=1e-12)
