"""The newer ops and models on the ``cuda`` device: against PyTorch, and against the CPU.

``test_gpu_ops.py`` runs the core tensor ops on the GPU path; this file does the same for
what came later: pooling with indices and dilation, unpooling, the pad modules, the
transformer ops (layer norm, GELU, attention, drop path, multi-head attention), and one
training step of each newer model (SegNet, Fast-SCNN, BiSeNetV2, SegFormer-B0), which must
match the same step on the CPU. Without a GPU this runs on the strict CuPy stand-in (see
``conftest.py``), so a NumPy-only call or a host/device mix in any of them fails here.

Already device-parametrised elsewhere (so not repeated here): ``F.pad`` in every mode with
negative pads (``test_conformance_padding.py``), ``max_unpool2d`` and unbatched pooling
(``test_conformance_pooling.py``), cross-entropy with probability targets and label
smoothing (``test_conformance_loss.py``), the new interpolation modes and antialias
(``test_conformance_resize.py``).
"""
import collections
import contextlib

import numpy as np
import pytest

import minisegnet as ms
import minisegnet.functional as F
from minisegnet import models, nn
from conftest import CUPY_KIND, check_parity, torch
from test_gpu_ops import host_syncs

pytestmark = [pytest.mark.gpu, pytest.mark.torch]

if torch is not None:
    import torch.nn.functional as TF


@pytest.fixture(scope="module", autouse=True)
def _cuda():
    if not ms.cuda.is_available():
        pytest.skip("no usable CUDA device")


def randn(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def ties(*shape, seed=0):
    """Few distinct values, so that windows hold ties (the first maximum must win)."""
    return np.random.default_rng(seed).integers(0, 3, shape).astype(np.float64)


# ------------------------------------------------------------------ pooling with indices
@pytest.mark.parametrize("k,s,p,d,ceil", [(2, 2, 0, 1, False), (3, 2, 1, 2, True), (3, 1, 1, 1, False),
                                          (2, 3, 1, 3, True)])
def test_max_pool2d_indices_and_dilation_on_cuda(k, s, p, d, ceil):
    x = ties(2, 3, 9, 8, seed=k + d)
    out = check_parity(lambda t: F.max_pool2d(t, k, s, p, dilation=d, ceil_mode=ceil),
                       lambda t: TF.max_pool2d(t, k, s, p, dilation=d, ceil_mode=ceil), [x], device="cuda")
    assert out.device == "cuda"
    _, index = F.max_pool2d(ms.tensor(x, device="cuda"), k, s, p, dilation=d, ceil_mode=ceil,
                            return_indices=True)
    _, ref = TF.max_pool2d(torch.tensor(x), k, s, p, dilation=d, ceil_mode=ceil, return_indices=True)
    assert index.device == "cuda" and index.dtype == np.int64
    np.testing.assert_array_equal(index.numpy(), ref.numpy())


@pytest.mark.parametrize("size", [(3, 2), (4, 5), (1, 1)])
def test_adaptive_max_pool2d_indices_on_cuda(size):
    x = ties(2, 2, 7, 9, seed=3)
    check_parity(lambda t: F.adaptive_max_pool2d(t, size), lambda t: TF.adaptive_max_pool2d(t, size), [x],
                 device="cuda")
    _, index = F.adaptive_max_pool2d(ms.tensor(x, device="cuda"), size, return_indices=True)
    _, ref = TF.adaptive_max_pool2d(torch.tensor(x), size, return_indices=True)
    np.testing.assert_array_equal(index.numpy(), ref.numpy())


def test_pool_and_unpool_modules_on_cuda():
    def ours(t):
        out, index = nn.MaxPool2d(2, 2, return_indices=True)(t)
        return nn.MaxUnpool2d(2, 2)(out, index, output_size=t.shape)

    def ref(t):
        out, index = torch.nn.MaxPool2d(2, 2, return_indices=True)(t)
        return torch.nn.MaxUnpool2d(2, 2)(out, index, output_size=t.shape)
    check_parity(ours, ref, [randn(2, 3, 7, 9, seed=4)], device="cuda")


# ------------------------------------------------------------------ pad modules
@pytest.mark.parametrize("make", [
    lambda m: m.ReflectionPad2d(2), lambda m: m.ReplicationPad2d((1, 2, 3, 0)),
    lambda m: m.CircularPad2d((1, 0, 2, 1)), lambda m: m.ZeroPad2d((1, -1, 2, 0)),
    lambda m: m.ConstantPad2d(1, 3.5)], ids=["reflect", "replicate", "circular", "zero", "constant"])
def test_pad_modules_on_cuda(make):
    check_parity(make(nn), make(torch.nn), [randn(2, 3, 5, 4, seed=5)], device="cuda")


# ------------------------------------------------------------------ transformer ops
@pytest.mark.parametrize("shape,normalized", [((2, 5, 6), (6,)), ((3, 4, 5), (4, 5))])
def test_layer_norm_on_cuda(shape, normalized):
    rng = np.random.default_rng(6)
    arrays = [rng.standard_normal(shape), rng.uniform(0.5, 1.5, normalized), rng.standard_normal(normalized)]
    check_parity(lambda x, w, b: F.layer_norm(x, normalized, w, b),
                 lambda x, w, b: TF.layer_norm(x, normalized, w, b), arrays, device="cuda")


def test_erf_on_cuda_matches_math_erf_to_the_last_bits():
    """The device computes every interval's formula everywhere and selects (no sync)."""
    import math
    from minisegnet.backend import to_device, to_numpy
    from minisegnet.functional.transformer import erf
    x = np.concatenate([np.linspace(-7, 7, 2001), [0.0, 1e-300, -1e-12, 0.84375, 1.25, 1 / 0.35, 6.0, 30.0]])
    on_device = to_numpy(erf(to_device(x, "cuda")))
    np.testing.assert_allclose(on_device, [math.erf(v) for v in x], rtol=1e-15, atol=1e-300)
    np.testing.assert_array_equal(on_device, erf(x))
    assert erf(to_device(np.float32([0.5]), "cuda")).dtype == np.float32


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_on_cuda(approximate):
    x = randn(3, 40, seed=7) * 3
    check_parity(lambda t: F.gelu(t, approximate), lambda t: TF.gelu(t, approximate=approximate), [x],
                 device="cuda", rtol=1e-12, atol=1e-14)
    check_parity(nn.GELU(approximate), torch.nn.GELU(approximate), [x], device="cuda", rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("mask", ["none", "float", "bool", "causal"])
def test_scaled_dot_product_attention_on_cuda(mask):
    rng = np.random.default_rng(8)
    L, S = 4, 5
    arrays = [rng.standard_normal((2, L, 3)), rng.standard_normal((2, S, 3)), rng.standard_normal((2, S, 2))]
    kw, tkw = {}, {}
    if mask == "float":
        m = rng.standard_normal((L, S))
        kw["attn_mask"], tkw["attn_mask"] = ms.tensor(m, device="cuda"), torch.tensor(m)
    elif mask == "bool":
        m = rng.random((L, S)) < 0.6
        m[:, 0] = True
        kw["attn_mask"], tkw["attn_mask"] = ms.tensor(m, device="cuda"), torch.tensor(m)
    elif mask == "causal":
        kw["is_causal"] = tkw["is_causal"] = True
    check_parity(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, **kw),
                 lambda q, k, v: TF.scaled_dot_product_attention(q, k, v, **tkw), arrays, device="cuda")


def _on_both_devices(fn, arrays, seed):
    """``fn`` on the CPU and on cuda from the same seed: outputs and input gradients."""
    results = []
    for device in ("cpu", "cuda"):
        xs = [ms.tensor(a, device=device, requires_grad=True) for a in arrays]
        ms.manual_seed(seed)
        out = fn(*xs)
        out.backward(ms.tensor(np.linspace(-1, 1, out.numel()).reshape(out.shape), device=device))
        results.append([out.numpy()] + [x.grad.numpy() for x in xs])
    for a, b in zip(*results):
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-14)
    return results[1][0]


def test_attention_dropout_and_drop_path_on_cuda_match_the_cpu():
    """Masks are drawn on the host from the global generator: a seed gives the same on both."""
    rng = np.random.default_rng(9)
    _on_both_devices(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, dropout_p=0.3),
                     [rng.standard_normal((2, 4, 3)), rng.standard_normal((2, 5, 3)),
                      rng.standard_normal((2, 5, 2))], seed=1)
    out = _on_both_devices(lambda x: F.drop_path(x, 0.5, training=True), [np.ones((16, 2, 3))], seed=2)
    kept = out.reshape(16, -1)[:, 0] != 0
    assert 0 < kept.sum() < 16          # both kinds of sample occur, whole samples at a time
    _on_both_devices(nn.DropPath(0.5), [np.ones((16, 2, 3))], seed=2)


@pytest.mark.parametrize("batch_first,mask", [(False, None), (True, "bool"), (True, "float")])
def test_multihead_attention_on_cuda(batch_first, mask):
    E, h, N, L, S = 6, 3, 2, 4, 5
    ref = torch.nn.MultiheadAttention(E, h, batch_first=batch_first, dtype=torch.float64)
    m = nn.MultiheadAttention(E, h, batch_first=batch_first).double()
    m.load_state_dict({k: v.detach().numpy() for k, v in ref.state_dict().items()})
    m.to("cuda")
    rng = np.random.default_rng(10)
    shapes = [(N, L, E), (N, S, E), (N, S, E)] if batch_first else [(L, N, E), (S, N, E), (S, N, E)]
    arrays = [rng.standard_normal(s) for s in shapes]
    mask_arr = {None: None, "float": rng.standard_normal((L, S)), "bool": rng.random((L, S)) < 0.6}[mask]
    if mask == "bool":
        mask_arr[:, 0] = False                 # torch's bool mask in MHA: True = NOT allowed
    ms_mask = None if mask is None else ms.tensor(~mask_arr if mask == "bool" else mask_arr, device="cuda")
    t_mask = None if mask is None else torch.tensor(mask_arr)
    check_parity(lambda q, k, v: m(q, k, v, attn_mask=ms_mask)[0], lambda q, k, v: ref(q, k, v, attn_mask=t_mask)[0],
                 arrays, device="cuda", rtol=1e-8, atol=1e-11)
    tp = dict(ref.named_parameters())
    for name, p in m.named_parameters():
        assert p.device == "cuda"
        np.testing.assert_allclose(p.grad.numpy(), tp[name].grad.numpy(), rtol=1e-8, atol=1e-11, err_msg=name)


# ------------------------------------------------------------------ one training step per model
SMALL = {"segnet": {}, "fast_scnn": dict(width=0.25, aux=True), "bisenetv2": dict(width=0.25, aux=True),
         "segformer_b0": dict(width=0.25, channels=8)}
# Device-to-host synchronisations in one step (forward, backward, optimizer step; the loss
# read comes after): cross-entropy's check that the labels are in range, once per batch (the
# auxiliary heads' loss terms reuse it), and max unpooling's check that the indices fit, once
# per unpool.
SYNCS = {"segnet": 1 + 3, "fast_scnn": 1, "bisenetv2": 1, "segformer_b0": 1}
KNOWN_SYNC_PLACES = {"functional/loss.py", "functional/pooling.py"}


def training_step(name, device, count_syncs=False):
    """One SGD step of a small float64 model from a fixed init; returns the losses, the new
    state dict, the host synchronisations it made (on the stand-in, when asked) and then the
    logits in evaluation mode."""
    ms.manual_seed(0)
    model = models.create(name, 4, **SMALL[name]).double().to(device)
    # SGD: the new weights are linear in the gradients, so the CPU and a real GPU (other sums'
    # order) agree to float64 rounding; Adam's first step, g / (|g| + eps), would magnify it
    opt = ms.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    rng = np.random.default_rng(1)
    x = ms.tensor(rng.standard_normal((2, 3, 35, 37)), device=device)
    y = rng.integers(0, 4, (2, 35, 37))
    y[0, :3] = 255                                       # some ignored pixels
    y = ms.tensor(y, device=device)
    initial = model.state_dict()
    ms.manual_seed(2)                                    # dropout / drop-path masks
    with host_syncs() if count_syncs else contextlib.nullcontext(collections.Counter()) as places:
        losses = model.loss(x, y)
        opt.zero_grad()
        losses["loss"].backward()
        opt.step()
    missing = [k for k, p in model.named_parameters() if p.grad is None]
    assert not missing, f"{name} on {device}: no gradient reached {missing[:5]}"
    unchanged = [k for k, p in model.named_parameters() if np.array_equal(p.numpy(), initial[k])]
    assert not unchanged, f"{name} on {device}: the step left {unchanged[:5]} as they were"
    model.eval()
    with ms.no_grad():                                   # the inference paths (running statistics)
        logits = model(x).numpy()
    return {k: v.item() for k, v in losses.items()}, model.state_dict(), places, logits


@pytest.mark.parametrize("name", list(SMALL))
def test_model_training_step_on_cuda_matches_cpu(name):
    cpu_losses, cpu_state, _, cpu_logits = training_step(name, "cpu")
    losses, state, places, logits = training_step(name, "cuda", count_syncs=CUPY_KIND == "standin")
    assert losses.keys() == cpu_losses.keys()
    for key in losses:
        assert losses[key] == pytest.approx(cpu_losses[key], rel=1e-10), key
    assert state.keys() == cpu_state.keys()
    for key in state:                                    # parameters after the step, BN statistics
        np.testing.assert_allclose(state[key], cpu_state[key], rtol=1e-9, atol=1e-12, err_msg=key)
    np.testing.assert_allclose(logits, cpu_logits, rtol=1e-9, atol=1e-12, err_msg="eval-mode logits")
    if CUPY_KIND == "standin":
        files = {where.split(":", 1)[0] for where in places}
        assert files <= KNOWN_SYNC_PLACES, dict(places)
        assert sum(places.values()) == SYNCS[name], dict(places)


@pytest.mark.skipif(CUPY_KIND != "standin", reason="a property of the stand-in")
def test_labels_are_checked_once_per_batch_but_every_batch_is_checked():
    logits = ms.tensor(np.zeros((1, 3, 2, 2)), device="cuda")
    good = ms.tensor(np.array([[[0, 1], [2, 255]]]), device="cuda")
    with host_syncs() as places:
        F.cross_entropy(logits, good, ignore_index=255)
        F.cross_entropy(logits, good, ignore_index=255)      # the same labels: no second check
    assert sum(places.values()) == (1 if CUPY_KIND == "standin" else 0)
    with pytest.raises(ValueError, match="class index 3 outside"):          # fewer classes: checked again
        F.cross_entropy(ms.tensor(np.zeros((1, 3, 2, 2)), device="cuda"),
                        ms.tensor(np.array([[[0, 3], [2, 255]]]), device="cuda"), ignore_index=255)
    with pytest.raises(ValueError, match="class index 255 outside"):        # another ignore_index
        F.cross_entropy(logits, good, ignore_index=-100)


def test_standin_counts_boolean_mask_indexing_as_a_sync():
    """CuPy reads the number of True values back before a boolean-mask read or write, and
    before nonzero/argwhere (cupy/_core/_routines_indexing.pyx); the stand-in counts each."""
    import cupy_standin as cs
    x = cs.arange(6.0)
    mask = x > 2
    for step in (lambda: x[mask], lambda: x.__setitem__(mask, 0.0), lambda: cs.nonzero(x),
                 lambda: cs.argwhere(x), lambda: x.nonzero(), lambda: cs.where(mask), lambda: cs.unique(x)):
        before = cs.syncs()
        step()
        assert cs.syncs() == before + 1
    before = cs.syncs()
    x[1:3] = 5.0                                 # slices, integer arrays, where: no sync
    x[cs.arange(2)] + cs.where(mask, x, 0.0)[:2]
    assert cs.syncs() == before
