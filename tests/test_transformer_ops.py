"""layer_norm, gelu, scaled_dot_product_attention, drop_path and their modules
(LayerNorm, GELU, MultiheadAttention, DropPath): against PyTorch in float64 (outputs and
every gradient), against finite differences (gradcheck) over hypothesis-drawn shapes,
and every argument error by its message.
"""
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import minisegnet as ms
import minisegnet.functional as F
import minisegnet.nn as nn
from minisegnet.functional.transformer import erf
from minisegnet.gradcheck import gradcheck
from conftest import check_parity, requires_torch, to_ms, torch

SETTINGS = settings(max_examples=15, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])
shapes = st.lists(st.integers(1, 4), min_size=1, max_size=3).map(tuple)


# ------------------------------------------------------------------ erf (the helper of exact GELU)
def test_erf_matches_math_erf_to_the_last_bits():
    x = np.concatenate([np.linspace(-7, 7, 20001), [0.0, 1e-300, -1e-12, 0.84375, 1.25, 1 / 0.35, 6.0, 30.0]])
    ref = np.array([math.erf(v) for v in x])
    np.testing.assert_allclose(erf(x), ref, rtol=1e-15, atol=1e-300)
    assert erf(np.float32([0.5])).dtype == np.float32


# ------------------------------------------------------------------ layer norm
@requires_torch
@SETTINGS
@given(st.data())
def test_layer_norm_matches_pytorch(data):
    lead = data.draw(st.lists(st.integers(1, 3), min_size=0, max_size=2).map(tuple), "lead")
    norm = data.draw(st.lists(st.integers(1, 5), min_size=1, max_size=2).map(tuple), "normalized_shape")
    affine = data.draw(st.booleans(), "affine")
    rng = np.random.default_rng(len(lead) + sum(norm))
    arrays = [rng.standard_normal(lead + norm) * 3 + 1]
    if affine:
        arrays += [rng.uniform(0.5, 1.5, norm), rng.standard_normal(norm)]
    check_parity(lambda x, *wb: F.layer_norm(x, norm, *wb, eps=1e-5),
                 lambda x, *wb: torch.nn.functional.layer_norm(x, norm, *wb, eps=1e-5), arrays)


@SETTINGS
@given(shape=shapes)
def test_layer_norm_gradcheck(shape):
    rng = np.random.default_rng(sum(shape))
    x, w, b = (to_ms(rng.standard_normal(s)) for s in (shape, shape[-1:], shape[-1:]))
    assert gradcheck(lambda x, w, b: F.layer_norm(x, shape[-1:], w, b), x, w, b)


def test_layer_norm_by_hand_and_float32():
    x = ms.tensor([[1.0, 3.0], [2.0, 2.0]])
    out = F.layer_norm(x, 2, eps=0.0 + 1e-12)
    np.testing.assert_allclose(out.numpy(), [[-1, 1], [0, 0]], atol=1e-5)
    assert out.dtype == np.float32
    m = nn.LayerNorm(2)
    assert set(m.state_dict()) == {"weight", "bias"} and m(x).dtype == np.float32


@requires_torch
@pytest.mark.parametrize("threads", ["1", "2", "3"])
@pytest.mark.parametrize("norm, affine", [((6,), "both"), ((3, 4), "both"), ((5,), "bias only"), ((5,), "none")])
def test_layer_norm_blocks_and_threads_match_pytorch(monkeypatch, threads, norm, affine):
    """Tokens split into many kernel blocks (shared among 1-3 threads) give PyTorch's
    output and every gradient, for one or two normalised dims and any affine parts."""
    from minisegnet.kernels import blocks as B
    monkeypatch.setattr(B, "BLOCK_ELEMENTS", 64)
    monkeypatch.setattr(B, "PARALLEL_MIN_ELEMENTS", 1)
    monkeypatch.setenv("MINISEGNET_NUM_THREADS", threads)
    rng = np.random.default_rng(7)
    x = rng.standard_normal((3, 7) + norm) * 2 + 5
    w = rng.uniform(0.5, 1.5, norm) if affine == "both" else None
    b = rng.standard_normal(norm) if affine != "none" else None
    arrays = [x] + [v for v in (w, b) if v is not None]

    def ours(x, *wb):
        return F.layer_norm(x, norm, *(wb if affine == "both" else (None,) + wb))

    def theirs(x, *wb):
        return torch.nn.functional.layer_norm(x, norm, *(wb if affine == "both" else (None,) + wb))
    check_parity(ours, theirs, arrays)


def test_layer_norm_float32_is_precise_with_a_large_mean():
    """Mean 1000, spread 1: float32 still normalises to within 5e-4 of the float64 result (the
    mean is a pairwise sum, and the variance is taken of the centred values)."""
    rng = np.random.default_rng(8)
    x = 1000 + rng.standard_normal((256, 64))
    ref = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-5)
    out = F.layer_norm(ms.tensor(x.astype(np.float32)), 64).numpy()
    np.testing.assert_allclose(out, ref, atol=5e-4)


# ------------------------------------------------------------------ GELU
@requires_torch
@pytest.mark.parametrize("approximate", ["none", "tanh"])
@SETTINGS
@given(shape=shapes)
def test_gelu_matches_pytorch(approximate, shape):
    x = np.random.default_rng(sum(shape)).standard_normal(shape) * 3
    check_parity(lambda t: F.gelu(t, approximate=approximate),
                 lambda t: torch.nn.functional.gelu(t, approximate=approximate), [x])


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_gradcheck_and_module(approximate):
    x = to_ms(np.linspace(-5, 5, 23))
    assert gradcheck(lambda t: F.gelu(t, approximate), x)
    m = nn.GELU(approximate)
    np.testing.assert_allclose(m(x).numpy(), F.gelu(x, approximate).numpy())
    # by hand: gelu(0) = 0, gelu(x) -> x for large x, -> 0 for very negative x
    np.testing.assert_allclose(F.gelu(ms.tensor([0.0, 10.0, -10.0]), approximate).numpy(), [0, 10, 0], atol=1e-6)


# ------------------------------------------------------------------ attention
def _sdpa_case(data):
    batch = data.draw(st.lists(st.integers(1, 3), min_size=0, max_size=2).map(tuple), "batch")
    L, S, E, Ev = (data.draw(st.integers(1, 5), n) for n in ("L", "S", "E", "Ev"))
    rng = np.random.default_rng(L * 100 + S * 10 + E)
    return rng, batch, L, S, E, Ev


@requires_torch
@SETTINGS
@given(st.data())
def test_sdpa_matches_pytorch(data):
    rng, batch, L, S, E, Ev = _sdpa_case(data)
    mask_kind = data.draw(st.sampled_from(["none", "float", "bool", "causal"]), "mask")
    scale = data.draw(st.sampled_from([None, 0.3]), "scale")
    arrays = [rng.standard_normal(batch + (L, E)), rng.standard_normal(batch + (S, E)),
              rng.standard_normal(batch + (S, Ev))]
    kw, tkw = {"scale": scale}, {"scale": scale}
    if mask_kind == "float":
        m = rng.standard_normal((L, S))
        kw["attn_mask"], tkw["attn_mask"] = ms.tensor(m), torch.tensor(m)
    elif mask_kind == "bool":
        m = rng.random((L, S)) < 0.7
        m[:, 0] = True                         # every query keeps one key (else the row is NaN)
        kw["attn_mask"], tkw["attn_mask"] = ms.tensor(m), torch.tensor(m)
    elif mask_kind == "causal":
        kw["is_causal"] = tkw["is_causal"] = True
    check_parity(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, **kw),
                 lambda q, k, v: torch.nn.functional.scaled_dot_product_attention(q, k, v, **tkw), arrays)


@SETTINGS
@given(st.data())
def test_sdpa_gradcheck(data):
    rng, batch, L, S, E, Ev = _sdpa_case(data)
    q, k, v = (to_ms(rng.standard_normal(batch + s)) for s in ((L, E), (S, E), (S, Ev)))
    assert gradcheck(lambda q, k, v: F.scaled_dot_product_attention(q, k, v), q, k, v)


def test_sdpa_by_hand():
    # one query matching the second of two keys strongly: the output is (almost) the second value
    q = ms.tensor([[10.0, 0.0]], dtype="float64")
    k = ms.tensor([[0.0, 1.0], [1.0, 0.0]], dtype="float64")
    v = ms.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], dtype="float64")
    w1 = 1 / (1 + math.exp(-10 / math.sqrt(2)))
    expected = (1 - w1) * np.array([1, 2, 3]) + w1 * np.array([4, 5, 6])
    np.testing.assert_allclose(F.scaled_dot_product_attention(q, k, v).numpy()[0], expected, rtol=1e-12)


def test_sdpa_dropout_keeps_expectation_and_float32():
    ms.manual_seed(0)
    q, k, v = ms.randn(2, 4, 3), ms.randn(2, 5, 3), ms.ones(2, 5, 2)
    out = F.scaled_dot_product_attention(q, k, v, dropout_p=0.5)
    assert out.dtype == np.float32 and out.shape == (2, 4, 2)
    # weights sum to 1 per row, so with values all 1 the output is 1 without dropout
    np.testing.assert_allclose(F.scaled_dot_product_attention(q, k, v).numpy(), 1, rtol=1e-6)
    assert not np.allclose(out.numpy(), 1)


@pytest.mark.parametrize("call, message", [
    (lambda: F.layer_norm(ms.randn(2, 3), (4,)), "does not end in normalized_shape"),
    (lambda: F.layer_norm(ms.randn(2, 3), 3, weight=ms.randn(2)), "weight must have shape"),
    (lambda: F.layer_norm(ms.tensor([1, 2]), 2), "floating point"),
    (lambda: F.gelu(ms.randn(3), approximate="erf"), "approximate must be 'none' or 'tanh'"),
    (lambda: F.scaled_dot_product_attention(ms.randn(2, 3), ms.randn(4, 5), ms.randn(4, 5)), "the same E"),
    (lambda: F.scaled_dot_product_attention(ms.randn(2, 3), ms.randn(4, 3), ms.randn(5, 3)), "the same S"),
    (lambda: F.scaled_dot_product_attention(ms.randn(2, 3), ms.randn(4, 3), ms.randn(4, 3),
                                            attn_mask=ms.zeros(2, 3)), "attn_mask must have shape"),
    (lambda: F.scaled_dot_product_attention(ms.randn(2, 3), ms.randn(4, 3), ms.randn(4, 3),
                                            attn_mask=ms.zeros(2, 4), is_causal=True), "not both"),
    (lambda: F.scaled_dot_product_attention(ms.randn(2, 3), ms.randn(4, 3), ms.randn(4, 3), dropout_p=1.5),
     "dropout_p must be in"),
    (lambda: nn.MultiheadAttention(10, 3), "divisible by num_heads"),
    (lambda: nn.MultiheadAttention(4, 2)(ms.randn(3, 2, 5), ms.randn(3, 2, 5), ms.randn(3, 2, 5)), "E=4"),
    (lambda: nn.MultiheadAttention(4, 2)(ms.randn(3, 2, 4), ms.randn(3, 2, 4), ms.randn(3, 2, 4),
                                         attn_mask=ms.zeros(2, 2)), "attn_mask must have shape"),
    (lambda: F.drop_path(ms.randn(2, 3), p=1.0), "p must be in"),
])
def test_bad_arguments_are_named(call, message):
    with pytest.raises((ValueError, TypeError), match=message):
        call()


# ------------------------------------------------------------------ MultiheadAttention vs torch
@requires_torch
@pytest.mark.parametrize("batch_first, bias, mask, average", [
    (False, True, None, True), (True, True, "float", False), (True, False, "bool", True),
    (False, True, "per_head", True), (True, True, "unbatched", True)])
def test_multihead_attention_loads_torch_weights_and_matches(batch_first, bias, mask, average):
    E, h, N, L, S = 6, 3, 2, 4, 5
    ref = torch.nn.MultiheadAttention(E, h, bias=bias, batch_first=batch_first, dtype=torch.float64)
    m = nn.MultiheadAttention(E, h, bias=bias, batch_first=batch_first).double()
    m.load_state_dict({k: v.detach().numpy() for k, v in ref.state_dict().items()})
    assert set(m.state_dict()) == set(ref.state_dict())
    rng = np.random.default_rng(3)
    if mask == "unbatched":
        shapes_ = [(L, E), (S, E), (S, E)]
    else:
        shapes_ = [(N, L, E), (N, S, E), (N, S, E)] if batch_first else [(L, N, E), (S, N, E), (S, N, E)]
    arrays = [rng.standard_normal(s) for s in shapes_]
    mask_arr = {None: None, "unbatched": None, "float": rng.standard_normal((L, S)),
                "bool": rng.random((L, S)) < 0.6, "per_head": rng.standard_normal((N * h, L, S))}[mask]
    if mask == "bool":
        mask_arr[:, 0] = False                 # torch's bool mask in MHA: True = NOT allowed
    xs = [ms.tensor(a, requires_grad=True) for a in arrays]
    ts = [torch.tensor(a, requires_grad=True) for a in arrays]
    kw = dict(average_attn_weights=average)
    ms_mask = None if mask_arr is None else ms.tensor(~mask_arr if mask == "bool" else mask_arr)
    out, w = m(*xs, attn_mask=ms_mask, **kw)
    tout, tw = ref(*ts, attn_mask=None if mask_arr is None else torch.tensor(mask_arr), **kw)
    np.testing.assert_allclose(out.numpy(), tout.detach().numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(w.numpy(), tw.detach().numpy(), rtol=1e-9, atol=1e-12)
    g = rng.standard_normal(out.shape)
    gw = rng.standard_normal(w.shape)
    ((out * ms.tensor(g)).sum() + (w * ms.tensor(gw)).sum()).backward()
    ((tout * torch.tensor(g)).sum() + (tw * torch.tensor(gw)).sum()).backward()
    for x, t in zip(xs, ts):
        np.testing.assert_allclose(x.grad.numpy(), t.grad.numpy(), rtol=1e-8, atol=1e-11)
    tp = dict(ref.named_parameters())
    for name, p in m.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), tp[name].grad.numpy(), rtol=1e-8, atol=1e-11,
                                   err_msg=name)


def test_multihead_attention_need_weights_false_and_eval_dropout():
    m = nn.MultiheadAttention(4, 2, dropout=0.5, batch_first=True)
    x = ms.randn(2, 3, 4)
    m.eval()
    out1, w = m(x, x, x, need_weights=False)
    out2, _ = m(x, x, x)
    assert w is None and out1.shape == (2, 3, 4)
    np.testing.assert_allclose(out1.numpy(), out2.numpy())      # no dropout in evaluation


# ------------------------------------------------------------------ drop path
def test_drop_path_drops_whole_samples_and_is_identity_in_eval():
    ms.manual_seed(1)
    x = ms.ones(400, 3, 2, requires_grad=True)
    out = nn.DropPath(0.25)(x)
    per_sample = out.numpy().reshape(400, -1)
    assert set(np.unique(per_sample.std(axis=1))) == {0.0}       # all or nothing per sample
    assert np.all(np.isclose(per_sample, 0) | np.isclose(per_sample, 1 / 0.75))
    assert 0.15 < (per_sample[:, 0] == 0).mean() < 0.35
    out.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), out.numpy())     # the gradient uses the same mask
    m = nn.DropPath(0.25).eval()
    assert m(x) is x
