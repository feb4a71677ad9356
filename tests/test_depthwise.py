"""The direct depthwise convolution kernels (minisegnet.kernels.depthwise), both layouts
(flat padded lines for large maps, channels-last for small maps of many channels):
forward, grad input and grad weight against PyTorch (float64) over strides, dilations,
paddings and kernel sizes; against the textbook reference conv over random geometries;
through F.conv2d (which picks them by size); split over 1, 2 and 3 threads."""
import threading

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import minisegnet as ms
import minisegnet.functional as F
from minisegnet.kernels import conv as conv_kernels
from minisegnet.kernels import conv_reference
from minisegnet.kernels import depthwise as D
from minisegnet.kernels import threads as T
from conftest import check_parity, requires_torch, torch

if torch is not None:
    import torch.nn.functional as TF

# input (N, C, H, W), kernel (kh, kw), stride, padding (top, left), dilation, output (Ho, Wo) or None
CASES = [
    ((2, 3, 7, 9), (3, 3), (1, 1), (1, 1), (1, 1), None),
    ((2, 4, 8, 8), (3, 3), (2, 2), (1, 1), (1, 1), None),
    ((1, 5, 9, 7), (3, 3), (2, 2), (0, 0), (1, 1), None),           # no padding, odd sizes
    ((2, 3, 10, 11), (5, 5), (1, 1), (2, 2), (2, 2), None),
    ((3, 2, 6, 5), (3, 3), (3, 3), (1, 1), (2, 2), None),
    ((2, 4, 5, 6), (3, 5), (1, 2), (0, 3), (2, 1), None),           # every pair uneven
    ((2, 3, 13, 9), (7, 7), (2, 2), (3, 3), (1, 1), None),
    ((1, 2, 4, 4), (3, 3), (1, 1), (4, 4), (1, 1), None),           # outputs that see padding only
    ((2, 3, 7, 6), (4, 2), (1, 1), (1, 0), (1, 3), (7, 6)),         # 'same' with an even kernel: extra pad bottom/right
    ((2, 3, 6, 6), (1, 1), (2, 2), (0, 0), (1, 1), None),           # one tap
    ((1, 2, 9, 9), (3, 3), (2, 2), (12, 12), (12, 12), None),       # dilation 12
]


def _out_hw(in_hw, k, stride, pad, dil, out_hw=None):
    """The output size: given, or PyTorch's formula with symmetric padding."""
    return out_hw or tuple((n + 2 * p - d * (kk - 1) - 1) // s + 1
                           for n, kk, s, p, d in zip(in_hw, k, stride, pad, dil))


def _torch_grads(x, w, b, stride, pad, dil, out_hw, g):
    """PyTorch's y, grad x, grad w of the same depthwise conv (explicit zero padding, so
    that the uneven 'same' case is covered too)."""
    (pt, pl), (kh, kw) = pad, w.shape[2:]
    H, W = x.shape[2:]
    out_hw = _out_hw((H, W), (kh, kw), stride, pad, dil, out_hw)
    pb = (out_hw[0] - 1) * stride[0] + dil[0] * (kh - 1) + 1 - H - pt
    pr = (out_hw[1] - 1) * stride[1] + dil[1] * (kw - 1) + 1 - W - pl
    xt = torch.tensor(x, requires_grad=True)
    wt = torch.tensor(w, requires_grad=True)
    xpad = TF.pad(xt, (pl, max(pr, 0), pt, max(pb, 0)))
    y = TF.conv2d(xpad, wt, None if b is None else torch.tensor(b), stride, 0, dil, x.shape[1])
    y = y[:, :, :out_hw[0], :out_hw[1]]
    y.backward(torch.tensor(g))
    return y.detach().numpy(), xt.grad.numpy(), wt.grad.numpy(), out_hw


@pytest.fixture(params=["flat", "channels_last"])
def layout(request, monkeypatch):
    """Run the test with each of the two layouts forced, whatever the sizes."""
    if request.param == "channels_last":
        monkeypatch.setattr(D, "MIN_PIXELS", 10 ** 9)
        monkeypatch.setattr(D, "SMALL_MAP_PIXELS", 10 ** 9)
        monkeypatch.setattr(D, "SMALL_MAP_CHANNELS", 0)
    else:
        monkeypatch.setattr(D, "SMALL_MAP_CHANNELS", 10 ** 9)
    return request.param


@requires_torch
@pytest.mark.parametrize("xs, k, stride, pad, dil, out_hw", CASES)
@pytest.mark.parametrize("bias", [False, True])
def test_kernel_matches_torch(layout, xs, k, stride, pad, dil, out_hw, bias):
    rng = np.random.default_rng(sum(xs) + sum(k))
    x, w = rng.standard_normal(xs), rng.standard_normal((xs[1], 1) + k)
    b = rng.standard_normal(xs[1]) if bias else None
    hw = _out_hw(xs[2:], k, stride, pad, dil, out_hw)
    g = rng.standard_normal(xs[:2] + hw)
    y_ref, gx_ref, gw_ref, _ = _torch_grads(x, w, b, stride, pad, dil, out_hw, g)
    y = D.depthwise_forward(x, w, b, stride, pad, dil, hw)
    gx, gw = D.depthwise_backward(g, x, w, stride, pad, dil)
    np.testing.assert_allclose(y, y_ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(gx, gx_ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(gw, gw_ref, rtol=1e-10, atol=1e-12)
    only_x, no_w = D.depthwise_backward(g, x, w, stride, pad, dil, need_w=False)
    no_x, only_w = D.depthwise_backward(g, x, w, stride, pad, dil, need_x=False)
    assert no_w is None and no_x is None
    np.testing.assert_allclose(only_x, gx_ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(only_w, gw_ref, rtol=1e-10, atol=1e-12)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_kernel_matches_the_reference_conv_over_random_geometries(layout, data):
    """The second oracle: the textbook conv2d (pad, strided view, one product), and its
    adjoint by the dot-product test <conv(x), g> = <x, grad_x(g)> = <w, grad_w(g)>."""
    n, c = data.draw(st.integers(1, 3)), data.draw(st.integers(2, 5))
    kh, kw = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 4))
    sh, sw = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3))
    dh, dw = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3))
    ph, pw = data.draw(st.integers(0, 3)), data.draw(st.integers(0, 3))
    H = data.draw(st.integers(max(1, dh * (kh - 1) + 1 - 2 * ph), 12))
    W = data.draw(st.integers(max(1, dw * (kw - 1) + 1 - 2 * pw), 12))
    rng = np.random.default_rng(data.draw(st.integers(0, 2 ** 16)))
    x, w = rng.standard_normal((n, c, H, W)), rng.standard_normal((c, 1, kh, kw))
    ref = conv_reference.conv2d(x, w, stride=(sh, sw), padding=(ph, pw), dilation=(dh, dw), groups=c)
    y = D.depthwise_forward(x, w, None, (sh, sw), (ph, pw), (dh, dw), ref.shape[2:])
    np.testing.assert_allclose(y, ref, rtol=1e-10, atol=1e-12)
    g = rng.standard_normal(ref.shape)
    gx, gw = D.depthwise_backward(g, x, w, (sh, sw), (ph, pw), (dh, dw))
    lhs = float((ref * g).sum())
    assert np.isclose(lhs, float((x * gx).sum()), rtol=1e-9, atol=1e-9)
    assert np.isclose(lhs, float((w * gw).sum()), rtol=1e-9, atol=1e-9)


@requires_torch
@pytest.mark.parametrize("kw", [dict(padding=1), dict(stride=2, padding=1), dict(padding="same", dilation=2)])
def test_conv2d_picks_the_kernel_on_large_maps_and_matches_torch(parity, monkeypatch, kw):
    calls = []
    for name in ("depthwise_forward", "depthwise_backward"):
        real = getattr(D, name)
        monkeypatch.setattr(D, name, lambda *a, _real=real, _name=name, **k: calls.append(_name) or _real(*a, **k))
    x, w, b = (np.random.default_rng(1).standard_normal(s) for s in ((2, 3, 64, 66), (3, 1, 3, 3), (3,)))
    check_parity(lambda x, w, b: F.conv2d(x, w, b, groups=3, **kw),
                 lambda x, w, b: TF.conv2d(x, w, b, groups=3, **kw), [x, w, b], rtol=1e-10, atol=1e-10)
    assert calls == ["depthwise_forward", "depthwise_backward"]


def test_small_maps_grouped_and_multipliers_keep_the_grouped_products():
    """The predicate: depthwise (one output per channel), CPU, and a large enough output."""
    assert D.worth_it(np, (8, 64, 32, 32), (64, 1, 3, 3), 64, (32, 32))
    assert not D.worth_it(np, (8, 64, 16, 16), (64, 1, 3, 3), 64, (16, 16))     # small map
    assert not D.worth_it(np, (8, 64, 64, 64), (128, 1, 3, 3), 64, (64, 64))    # multiplier 2
    assert not D.worth_it(np, (8, 64, 64, 64), (64, 2, 3, 3), 32, (64, 64))     # grouped, not depthwise
    assert not D.worth_it(np, (8, 1, 64, 64), (1, 1, 3, 3), 1, (64, 64))        # one channel: a plain conv
    assert not D.worth_it(object(), (8, 64, 64, 64), (64, 1, 3, 3), 64, (64, 64))  # not NumPy


@requires_torch
def test_float32_close_to_torch():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 16, 40, 40)).astype(np.float32)
    w = rng.standard_normal((16, 1, 3, 3)).astype(np.float32)
    xt, wt = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    yt = TF.conv2d(xt, wt, None, 1, 1, 1, 16)
    g = rng.standard_normal(yt.shape).astype(np.float32)
    yt.backward(torch.tensor(g))
    y = D.depthwise_forward(x, w, None, (1, 1), (1, 1), (1, 1), (40, 40))
    gx, gw = D.depthwise_backward(g, x, w, (1, 1), (1, 1), (1, 1))
    assert y.dtype == gx.dtype == gw.dtype == np.float32
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(gx, xt.grad.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(gw, wt.grad.numpy(), rtol=1e-4, atol=1e-3)   # sums of 6400 products


@requires_torch
def test_non_contiguous_input_and_gradient():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 6, 20, 18)).transpose(0, 1, 3, 2)[:, ::2]     # (3, 3, 18, 20), strided
    w = rng.standard_normal((3, 1, 3, 3))
    g = rng.standard_normal((3, 3, 10, 9)).transpose(0, 1, 3, 2)                # (3, 3, 9, 10), strided
    y_ref, gx_ref, gw_ref, _ = _torch_grads(np.ascontiguousarray(x), w, None, (2, 2), (1, 1), (1, 1), None, g)
    np.testing.assert_allclose(D.depthwise_forward(x, w, None, (2, 2), (1, 1), (1, 1), (9, 10)), y_ref,
                               rtol=1e-10, atol=1e-12)
    gx, gw = D.depthwise_backward(g, x, w, (2, 2), (1, 1), (1, 1))
    np.testing.assert_allclose(gx, gx_ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(gw, gw_ref, rtol=1e-10, atol=1e-12)


def _check_split_over_threads(monkeypatch, n, shape, bias):
    """Forward and backward of a stride-1 3x3 depthwise conv at ``n`` threads: 2n chunks on
    >= 2 threads (none at 1 thread), and PyTorch's answer whatever the count."""
    seen, run_chunk = [], T._run_chunk

    def recording(fn, start, stop):
        seen.append((threading.get_ident(), start, stop))
        return run_chunk(fn, start, stop)
    monkeypatch.setattr(T, "_run_chunk", recording)
    rng = np.random.default_rng(5)
    c = shape[1]
    x, w, g = rng.standard_normal(shape), rng.standard_normal((c, 1, 3, 3)), rng.standard_normal(shape)
    b = rng.standard_normal(c) if bias else None
    y_ref, gx_ref, gw_ref, _ = _torch_grads(x, w, b, (1, 1), (1, 1), (1, 1), None, g)
    try:
        T.set_num_threads(n)
        y = D.depthwise_forward(x, w, b, (1, 1), (1, 1), (1, 1), shape[2:])
        gx, gw = D.depthwise_backward(g, x, w, (1, 1), (1, 1), (1, 1))
    finally:
        T.set_num_threads(None)
    if n == 1:
        assert seen == []
    else:
        assert len(seen) == 2 * n and len({ident for ident, _, _ in seen}) >= 2
    for got, ref in ((y, y_ref), (gx, gx_ref), (gw, gw_ref)):
        np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-12)


@requires_torch
@pytest.mark.parametrize("n", [1, 2, 3])
def test_blocks_of_channels_split_over_n_threads(monkeypatch, n):
    """The flat layout: each thread takes its own blocks of channels."""
    monkeypatch.setattr(D, "BLOCK_ELEMENTS", 1 << 12)     # several blocks even on this small case
    _check_split_over_threads(monkeypatch, n, (2, 7, 12, 10), bias=False)


@requires_torch
@pytest.mark.parametrize("n", [1, 2, 3])
def test_channels_last_splits_the_images_over_n_threads(monkeypatch, n):
    """The channels-last layout (a small map of many channels): each thread its images."""
    monkeypatch.setattr(D, "PARALLEL_MIN_ELEMENTS", 1)
    _check_split_over_threads(monkeypatch, n, (5, 130, 6, 5), bias=True)


@requires_torch
def test_depthwise_layer_trains_like_torch(parity):
    """nn.Conv2d(groups=C) on a 32x32 map (the direct kernel), gradient of its weight and bias."""
    conv = ms.nn.Conv2d(4, 4, 3, padding=1, groups=4).double()
    ref = torch.nn.Conv2d(4, 4, 3, padding=1, groups=4).double()
    ref.load_state_dict({k: torch.tensor(np.asarray(v)) for k, v in conv.state_dict().items()})
    x = np.random.default_rng(6).standard_normal((2, 4, 32, 32))
    out = conv(ms.tensor(x))
    (out * out).sum().backward()
    r = ref(torch.tensor(x))
    (r * r).sum().backward()
    np.testing.assert_allclose(conv.weight.grad.numpy(), ref.weight.grad.numpy(), rtol=1e-10)
    np.testing.assert_allclose(conv.bias.grad.numpy(), ref.bias.grad.numpy(), rtol=1e-10)


@pytest.mark.parametrize("stride", [1, 2])
def test_gradcheck_through_conv2d(layout, monkeypatch, stride):
    """Central differences through F.conv2d with each direct kernel forced on a small map."""
    from minisegnet.gradcheck import gradcheck
    if layout == "flat":
        monkeypatch.setattr(D, "MIN_PIXELS", 0)
    rng = np.random.default_rng(11)
    x, w, b = (ms.tensor(rng.standard_normal(s), requires_grad=True)
               for s in ((2, 3, 6, 5), (3, 1, 3, 3), (3,)))
    assert gradcheck(lambda x, w, b: F.conv2d(x, w, b, stride=stride, padding=1, groups=3), x, w, b)


@requires_torch
@pytest.mark.parametrize("shape, stride, picked", [
    ((2, 128, 8, 8), 1, "channels_last"), ((2, 256, 4, 4), 1, "channels_last"),
    ((2, 160, 8, 8), 2, "channels_last"), ((2, 128, 16, 16), 2, None), ((2, 64, 8, 8), 1, None),
    ((2, 8, 32, 32), 1, "flat")])
def test_conv2d_picks_a_layout_by_size_and_matches_torch(parity, monkeypatch, shape, stride, picked):
    """Small maps of many channels go channels-last, large maps to the flat lines, the
    rest to the grouped products; F.conv2d matches PyTorch on each."""
    calls = []
    for name in ("_channels_last_forward", "_channels_last_backward", "_Layout"):
        real = getattr(D, name)
        monkeypatch.setattr(D, name, lambda *a, _real=real, _name=name, **k: calls.append(_name) or _real(*a, **k))
    c = shape[1]
    x, w, b = (np.random.default_rng(2).standard_normal(s) for s in (shape, (c, 1, 3, 3), (c,)))
    check_parity(lambda x, w, b: F.conv2d(x, w, b, stride=stride, padding=1, groups=c),
                 lambda x, w, b: TF.conv2d(x, w, b, stride=stride, padding=1, groups=c), [x, w, b],
                 rtol=1e-10, atol=1e-10)
    expected = {"channels_last": ["_channels_last_forward", "_channels_last_backward"],
                "flat": ["_Layout", "_Layout"], None: []}[picked]
    assert calls == expected
