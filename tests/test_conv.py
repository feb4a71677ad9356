"""conv2d and conv_transpose2d: against PyTorch (float64, forward and every gradient),
by gradcheck, by hypothesis over shapes, and every argument error by its message.
Also nn.Conv2d / nn.ConvTranspose2d (state dicts, init) and the kernel's threads."""
import math
import types

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import minisegnet as ms
import minisegnet.functional as F
import minisegnet.nn as nn
from minisegnet.gradcheck import gradcheck
from minisegnet.kernels import conv as K
from minisegnet.kernels import conv_reference
from minisegnet.kernels.conv_plan import pairs
from conftest import check_parity, requires_torch, torch

if torch is not None:
    import torch.nn.functional as TF

# torch warns that it copies the input for 'same' padding with an even kernel; harmless here
pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same'")

SETTINGS = settings(max_examples=20, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


def randn(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


# ------------------------------------------------------------------ conv2d against PyTorch
CONV_CASES = [  # input shape, weight shape, kwargs, with bias
    ((2, 3, 7, 6), (4, 3, 3, 3), dict(padding=1), True),
    ((2, 4, 9, 8), (6, 4, 3, 3), dict(stride=2, padding=1), True),
    ((1, 3, 8, 11), (2, 3, 3, 2), dict(stride=(2, 3), padding=(1, 0)), False),
    ((2, 2, 10, 9), (3, 2, 3, 3), dict(dilation=2, padding=2), True),
    ((1, 2, 9, 12), (3, 2, 2, 3), dict(dilation=(3, 1), padding=(2, 1)), True),
    ((2, 4, 7, 7), (6, 2, 3, 3), dict(groups=2, padding=1), True),
    ((2, 4, 7, 5), (4, 1, 3, 3), dict(groups=4, padding=1), True),             # depthwise
    ((1, 3, 6, 6), (6, 1, 3, 3), dict(groups=3, padding=1), True),             # multiplier 2
    ((2, 3, 7, 6), (4, 3, 3, 3), dict(padding="same"), True),
    ((2, 3, 7, 6), (4, 3, 4, 2), dict(padding="same", dilation=(1, 3)), False),  # uneven pad
    ((2, 3, 7, 6), (4, 3, 3, 3), dict(padding="valid"), True),
    ((2, 5, 6, 7), (3, 5, 1, 1), {}, True),                                     # one product
    ((2, 5, 7, 7), (3, 5, 1, 1), dict(stride=2), True),
    ((2, 5, 3, 4), (3, 5, 1, 1), dict(padding=2, stride=2), True),   # outputs in padding only
    ((2, 3, 8, 8), (4, 3, 3, 3), dict(padding=12, dilation=12), True),  # only the centre tap
    ((2, 3, 16, 16), (4, 3, 3, 3), dict(padding=12, dilation=12), True),  # partial taps
    ((1, 2, 5, 5), (3, 2, 5, 5), dict(padding=2), True),
    ((1, 2, 5, 5), (3, 2, 5, 5), {}, True),                                     # 1x1 output
    ((3, 3, 13, 11), (5, 3, 3, 5), dict(stride=(3, 2), padding=(2, 1), dilation=(2, 1)), True),
    ((2, 6, 9, 9), (4, 3, 3, 3), dict(stride=2, padding=1, dilation=2, groups=2), True),
    ((1, 1, 1, 1), (1, 1, 1, 1), {}, True),
    ((5, 2, 4, 3), (2, 2, 2, 2), dict(padding=1), True),      # several images per thread step
    ((2, 3, 4, 5), (4, 3, 3, 3), dict(stride=2, padding=2), True),  # kernel columns 0 and 2 stacked
]


@requires_torch
@pytest.mark.parametrize("xs,ws,kw,bias", CONV_CASES)
def test_conv2d_matches_torch(parity, device, xs, ws, kw, bias):
    arrays = [randn(*xs), randn(*ws, seed=1)] + ([randn(ws[0], seed=2)] if bias else [])
    parity(lambda *t: F.conv2d(*t, **kw), lambda *t: TF.conv2d(*t, **kw), arrays, device=device)


@requires_torch
def test_conv2d_unbatched_input(parity, device):
    parity(lambda x, w: F.conv2d(x, w, padding=1), lambda x, w: TF.conv2d(x, w, padding=1),
           [randn(3, 7, 6), randn(4, 3, 3, 3, seed=1)], device=device)


# ------------------------------------------------------------------ conv_transpose2d
TRANSPOSED_CASES = [  # input shape, weight shape (in, out/groups, kh, kw), kwargs, with bias
    ((2, 3, 5, 4), (3, 4, 3, 3), {}, True),
    ((2, 4, 5, 5), (4, 3, 4, 4), dict(stride=2, padding=1), True),             # FCN x2 upsampling
    ((1, 3, 4, 5), (3, 2, 3, 3), dict(stride=2, padding=1, output_padding=1), True),
    ((2, 4, 4, 4), (4, 2, 3, 3), dict(stride=(2, 3), output_padding=(1, 2), groups=2), False),
    ((1, 2, 5, 5), (2, 3, 3, 2), dict(dilation=(2, 3), padding=(1, 2)), True),
    ((1, 2, 4, 4), (2, 2, 3, 3), dict(dilation=2, output_padding=1), True),    # op < dilation
    ((2, 4, 5, 5), (4, 1, 3, 3), dict(groups=4, stride=2), True),              # depthwise
    ((1, 2, 3, 3), (2, 2, 16, 16), dict(stride=8, padding=4), False),          # FCN-8s x8
    ((1, 2, 4, 3), (2, 3, 1, 1), dict(stride=3), True),                        # gaps stay zero
    ((1, 3, 6, 6), (3, 2, 3, 3), dict(padding=3), True),                       # heavy cropping
    ((6, 2, 3, 2), (2, 2, 2, 3), dict(stride=2, padding=(0, 1)), True),
]


@requires_torch
@pytest.mark.parametrize("xs,ws,kw,bias", TRANSPOSED_CASES)
def test_conv_transpose2d_matches_torch(parity, device, xs, ws, kw, bias):
    groups = kw.get("groups", 1)
    arrays = [randn(*xs), randn(*ws, seed=1)] + ([randn(ws[1] * groups, seed=2)] if bias else [])
    parity(lambda *t: F.conv_transpose2d(*t, **kw), lambda *t: TF.conv_transpose2d(*t, **kw),
           arrays, device=device)


@requires_torch
def test_conv_transpose2d_unbatched_input(parity, device):
    kw = dict(stride=2, padding=1)
    parity(lambda x, w: F.conv_transpose2d(x, w, **kw), lambda x, w: TF.conv_transpose2d(x, w, **kw),
           [randn(3, 4, 5), randn(3, 2, 4, 4, seed=1)], device=device)


# ------------------------------------------------------------------ non-contiguous inputs
NONCONTIGUOUS = [  # (input array, weight array, op on (x, w))
    ("NHWC input permuted", (2, 6, 7, 3), (4, 3, 3, 3),
     lambda f, x, w: f.conv2d(x.permute(0, 3, 1, 2), w, padding=1, stride=(1, 2))),
    ("H and W swapped", (2, 3, 6, 8), (4, 3, 1, 1), lambda f, x, w: f.conv2d(x.transpose(2, 3), w)),
    ("weight permuted, grad_out transposed", (2, 3, 6, 5), (3, 2, 3, 4),
     lambda f, x, w: f.conv2d(x, w.permute(3, 2, 0, 1), padding=1).transpose(2, 3)),
    ("strided slice", (2, 3, 12, 7), (4, 3, 3, 3),
     lambda f, x, w: f.conv2d(x[:, :, ::2], w, padding=(1, 2), dilation=2)),
    ("transposed conv of a permuted input", (2, 5, 4, 3), (3, 2, 4, 4),
     lambda f, x, w: f.conv_transpose2d(x.permute(0, 3, 1, 2), w, stride=2, padding=1).transpose(2, 3)),
]


@requires_torch
@pytest.mark.parametrize("name,xs,ws,op", NONCONTIGUOUS, ids=[c[0] for c in NONCONTIGUOUS])
def test_non_contiguous_inputs(parity, device, name, xs, ws, op):
    parity(lambda x, w: op(F, x, w), lambda x, w: op(TF, x, w), [randn(*xs), randn(*ws, seed=1)],
           device=device)


# ------------------------------------------------------------------ gradcheck, hypothesis, dtypes
def test_gradcheck_conv2d():
    x = ms.tensor(randn(2, 2, 5, 4), requires_grad=True)
    w = ms.tensor(randn(3, 2, 3, 2, seed=1), requires_grad=True)
    b = ms.tensor(randn(3, seed=2), requires_grad=True)
    assert gradcheck(lambda x, w, b: F.conv2d(x, w, b, stride=2, padding=1, dilation=(1, 2)), x, w, b)


def test_gradcheck_grouped_conv_transpose2d():
    x = ms.tensor(randn(1, 4, 3, 3), requires_grad=True)
    w = ms.tensor(randn(4, 1, 3, 3, seed=1), requires_grad=True)
    b = ms.tensor(randn(2, seed=2), requires_grad=True)
    assert gradcheck(lambda x, w, b: F.conv_transpose2d(x, w, b, stride=2, padding=1,
                                                        output_padding=1, groups=2), x, w, b)


@requires_torch
@SETTINGS
@given(st.data())
def test_conv2d_hypothesis(data):
    d = data.draw
    groups, cg, og = d(st.integers(1, 3)), d(st.integers(1, 3)), d(st.integers(1, 3))
    n, h, w_ = d(st.integers(1, 3)), d(st.integers(1, 9)), d(st.integers(1, 9))
    k = (d(st.integers(1, 4)), d(st.integers(1, 4)))
    s, dil, p = (d(st.integers(1, 3)) for _ in range(3))
    assume(dil * (k[0] - 1) < h + 2 * p and dil * (k[1] - 1) < w_ + 2 * p)
    kw = dict(stride=s, padding=p, dilation=dil, groups=groups)
    arrays = [randn(n, cg * groups, h, w_), randn(og * groups, cg, *k, seed=1), randn(og * groups, seed=2)]
    check_parity(lambda *t: F.conv2d(*t, **kw), lambda *t: TF.conv2d(*t, **kw), arrays)


@requires_torch
@SETTINGS
@given(st.data())
def test_conv_transpose2d_hypothesis(data):
    d = data.draw
    groups, cg, og = d(st.integers(1, 3)), d(st.integers(1, 3)), d(st.integers(1, 3))
    n, h, w_ = d(st.integers(1, 3)), d(st.integers(1, 6)), d(st.integers(1, 6))
    k = (d(st.integers(1, 4)), d(st.integers(1, 4)))
    s, dil, p = d(st.integers(1, 3)), d(st.integers(1, 3)), d(st.integers(0, 2))
    op = d(st.integers(0, max(s, dil) - 1))
    assume(min((n_ - 1) * s - 2 * p + dil * (k_ - 1) + op + 1 for n_, k_ in zip((h, w_), k)) >= 1)
    kw = dict(stride=s, padding=p, output_padding=op, groups=groups, dilation=dil)
    arrays = [randn(n, cg * groups, h, w_), randn(cg * groups, og, *k, seed=1), randn(og * groups, seed=2)]
    check_parity(lambda *t: F.conv_transpose2d(*t, **kw), lambda *t: TF.conv_transpose2d(*t, **kw),
                 arrays)


# ------------------------------------------------------------------ the textbook reference conv2d
def _reference_args(xs, ws, kw):
    """conv_reference's (stride, (top, left) padding, dilation, groups, out_hw) for F.conv2d's kwargs."""
    kh, kw_ = ws[2:]
    st_, dil = (pairs(kw.get("stride", 1), 0, kw.get("dilation", 1))[i] for i in (0, 2))
    pad = kw.get("padding", 0)
    if pad == "same":
        pad = (dil[0] * (kh - 1) // 2, dil[1] * (kw_ - 1) // 2)
        out_hw = xs[2:]
    else:
        pad = (0, 0) if pad == "valid" else pairs(1, pad, 1)[1]
        out_hw = None
    return dict(stride=st_, padding=pad, dilation=dil, groups=kw.get("groups", 1), out_hw=out_hw)


@requires_torch
@pytest.mark.parametrize("xs,ws,kw,bias", CONV_CASES)
def test_reference_conv2d_matches_torch(xs, ws, kw, bias):
    x, w, b = randn(*xs), randn(*ws, seed=1), (randn(ws[0], seed=2) if bias else None)
    ref = TF.conv2d(torch.tensor(x), torch.tensor(w), None if b is None else torch.tensor(b), **kw).numpy()
    np.testing.assert_allclose(conv_reference.conv2d(x, w, b, **_reference_args(xs, ws, kw)), ref,
                               rtol=1e-10, atol=1e-12)


@SETTINGS
@given(st.data())
def test_fast_kernels_match_the_reference_conv2d(data):
    """Forward equals the reference; the two backward products are its adjoints:
    <conv(x, w), g> = <x, grad_input(g)> = <w, grad_weight(g, x)> (conv is linear in each)."""
    d = data.draw
    groups, cg, og = d(st.integers(1, 3)), d(st.integers(1, 3)), d(st.integers(1, 3))
    n, h, w_ = d(st.integers(1, 3)), d(st.integers(1, 12)), d(st.integers(1, 12))
    k = (d(st.integers(1, 4)), d(st.integers(1, 4)))
    s = (d(st.integers(1, 3)), d(st.integers(1, 3)))
    dil = (d(st.integers(1, 3)), d(st.integers(1, 3)))
    p = (d(st.integers(0, 3)), d(st.integers(0, 3)))
    assume(all(dil[a] * (k[a] - 1) < (h, w_)[a] + 2 * p[a] for a in range(2)))
    fold = d(st.booleans())                   # grad weight's two layouts (FOLD_MAX_PIXELS)
    x, w, b = randn(n, cg * groups, h, w_), randn(og * groups, cg, *k, seed=1), randn(og * groups, seed=2)
    kw = dict(stride=s, padding=p, dilation=dil, groups=groups)
    ref = conv_reference.conv2d(x, w, b, **kw)
    np.testing.assert_allclose(K.conv2d_forward(x, w, b, **kw), ref, rtol=1e-10, atol=1e-10)
    g = randn(*ref.shape, seed=3)
    linear = float(np.sum(conv_reference.conv2d(x, w, None, **kw) * g))
    gx = K.conv2d_grad_input(g, w, (h, w_), **kw)
    saved = K.FOLD_MAX_PIXELS
    K.FOLD_MAX_PIXELS = 10 ** 9 if fold else 0
    try:
        gw, gb = K.conv2d_grad_weight(g, x, w.shape, **kw, need_bias=True)
    finally:
        K.FOLD_MAX_PIXELS = saved
    np.testing.assert_allclose([np.sum(x * gx), np.sum(w * gw)], [linear, linear], rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(gb, g.sum(axis=(0, 2, 3)), rtol=1e-12)


@requires_torch
@pytest.mark.parametrize("op", ["conv2d", "conv_transpose2d"])
def test_float32_forward_close_to_torch(device, op):
    x = randn(2, 16, 20, 20).astype(np.float32)
    w = (randn(16, 16, 3, 3, seed=1) * 0.1).astype(np.float32)
    kw = dict(stride=2, padding=1)
    out = getattr(F, op)(ms.tensor(x, device=device), ms.tensor(w, device=device), **kw)
    ref = getattr(TF, op)(torch.tensor(x), torch.tensor(w), **kw)
    assert out.dtype == ms.float32
    np.testing.assert_allclose(out.numpy(), ref.numpy(), rtol=1e-4, atol=1e-5)


def test_float64_stays_float64():
    x = ms.tensor(randn(1, 2, 5, 5), requires_grad=True)
    w = ms.tensor(randn(3, 2, 3, 3), requires_grad=True)
    y = F.conv2d(x, w)
    y.sum().backward()
    assert y.dtype == x.grad.dtype == w.grad.dtype == ms.float64


def test_conv2d_by_hand():
    # a 1x1 "image" of ones and a 2x2 box filter with padding 1: each output pixel sees the
    # single input pixel through exactly one tap (the output is the flipped kernel).
    x = ms.ones(1, 1, 1, 1, dtype=ms.float64)
    w = ms.tensor(np.array([[[[1.0, 2.0], [3.0, 4.0]]]]))
    np.testing.assert_array_equal(F.conv2d(x, w, padding=1).numpy()[0, 0], [[4, 3], [2, 1]])
    # transposed conv with stride 2 places a copy of the kernel per input pixel, 2 apart
    x = ms.tensor(np.array([[[[1.0, 10.0]]]]))
    y = F.conv_transpose2d(x, ms.tensor(np.array([[[[1.0, 2.0]]]])), stride=2)
    np.testing.assert_array_equal(y.numpy()[0, 0], [[1, 2, 10, 20]])


# ------------------------------------------------------------------ argument errors
def _t(*shape, dtype=ms.float64):
    return ms.zeros(*shape, dtype=dtype)


CONV_ERRORS = [
    (lambda: F.conv2d(_t(2, 3, 5), _t(4, 3, 3, 3)[0]), ValueError, r"weight must be 4-D .* got shape \(3, 3, 3\)"),
    (lambda: F.conv2d(_t(1, 2, 3, 5, 5), _t(4, 3, 3, 3)), ValueError, r"input must be 4-D .* got shape \(1, 2, 3, 5, 5\)"),
    (lambda: F.conv2d(_t(2, 3, 5, 5), _t(4, 2, 3, 3)), ValueError,
     r"input has 3 channels but weight \(4, 2, 3, 3\) with groups=1 expects 2 \(input \(2, 3, 5, 5\)\)"),
    (lambda: F.conv2d(_t(2, 4, 5, 5), _t(3, 2, 3, 3), groups=2), ValueError,
     r"groups=2 must divide the number of output channels, got 3"),
    (lambda: F.conv2d(_t(2, 3, 5, 5), _t(4, 1, 3, 3), groups=2), ValueError,
     r"groups=2 must divide the number of input channels, got 3"),
    (lambda: F.conv2d(_t(2, 3, 5, 5), _t(4, 3, 3, 3), groups=0), ValueError, r"groups must be a positive int"),
    (lambda: F.conv2d(_t(2, 3, 5, 5), _t(4, 3, 3, 3), _t(3)), ValueError, r"bias must have shape \(4,\).* got \(3,\)"),
    (lambda: F.conv2d(_t(2, 3, 5, 5), _t(4, 3, 3, 3), stride=0), ValueError, r"stride must be >= 1 .* got 0"),
    (lambda: F.conv2d(_t(2, 3, 5, 5), _t(4, 3, 3, 3), dilation=(1, 0)), ValueError, r"dilation must be >= 1"),
    (lambda: F.conv2d(_t(2, 3, 5, 5), _t(4, 3, 3, 3), padding=-1), ValueError, r"padding must be >= 0"),
    (lambda: F.conv2d(_t(2, 3, 5, 5), _t(4, 3, 3, 3), padding=(1, 2, 3)), TypeError,
     r"padding must be an int or a pair of ints, got \(1, 2, 3\)"),
    (lambda: F.conv2d(_t(2, 3, 5, 5), _t(4, 3, 3, 3), padding="full"), ValueError, r"'same' or 'valid', got 'full'"),
    (lambda: F.conv2d(_t(2, 3, 5, 5), _t(4, 3, 3, 3), padding="same", stride=2), ValueError,
     r"padding='same' is not supported for strided convolutions"),
    (lambda: F.conv2d(_t(2, 3, 5, 5), _t(4, 3, 7, 7)), ValueError,
     r"kernel \(7, 7\) with dilation \(1, 1\) spans 7x7 pixels, larger than the padded input 5x5 "
     r"\(input \(2, 3, 5, 5\)"),
    (lambda: F.conv2d(_t(2, 3, 16, 16), _t(4, 3, 3, 3), dilation=12, padding=1), ValueError,
     r"spans 25x25 pixels, larger than the padded input 18x18"),
    (lambda: F.conv2d(_t(2, 3, 5, 5), _t(4, 3, 3, 3, dtype=ms.float32)), TypeError,
     r"weight dtype float32 differs from input dtype float64"),
    (lambda: F.conv2d(_t(2, 3, 5, 5, dtype=ms.int64), _t(4, 3, 3, 3)), TypeError, r"floating point"),
    (lambda: F.conv2d(np.zeros((2, 3, 5, 5)), _t(4, 3, 3, 3)), TypeError, r"input must be a Tensor, got ndarray"),
    (lambda: F.conv_transpose2d(_t(2, 3, 5, 5), _t(4, 2, 3, 3)), ValueError,
     r"input has 3 channels but weight \(4, 2, 3, 3\) expects 4 .*in_channels, out_channels/groups"),
    (lambda: F.conv_transpose2d(_t(2, 3, 5, 5), _t(3, 2, 3, 3), groups=2), ValueError,
     r"groups=2 must divide the number of input channels, got 3"),
    (lambda: F.conv_transpose2d(_t(2, 4, 5, 5), _t(4, 2, 3, 3), _t(2), groups=2), ValueError,
     r"bias must have shape \(4,\)"),
    (lambda: F.conv_transpose2d(_t(2, 3, 5, 5), _t(3, 2, 3, 3), stride=2, output_padding=2), ValueError,
     r"output_padding \(2, 2\) must be smaller than either stride \(2, 2\) or dilation \(1, 1\)"),
    (lambda: F.conv_transpose2d(_t(2, 3, 5, 5), _t(3, 2, 3, 3), output_padding=1), ValueError,
     r"output_padding \(1, 1\) must be smaller than either stride"),
    (lambda: F.conv_transpose2d(_t(2, 3, 1, 1), _t(3, 2, 1, 1), padding=1), ValueError,
     r"the output would be -1x-1 .*input \(2, 3, 1, 1\)"),
    (lambda: F.conv_transpose2d(_t(2, 3, 5, 5), _t(3, 2, 3, 3), padding="same"), ValueError,
     r"no 'same'/'valid' for transposed"),
    (lambda: F.conv_transpose2d(_t(3, 5, 5), _t(3, 2, 3)), ValueError, r"weight must be 4-D"),
]


@pytest.mark.parametrize("call,exc,message", CONV_ERRORS)
def test_argument_errors(call, exc, message):
    with pytest.raises(exc, match=message):
        call()


# ------------------------------------------------------------------ the kernel: plan and threads
def test_plan_skips_taps_that_see_only_padding():
    # dilation 12 on an 8x8 map: the 8 outer taps read only padding; one 1x1 product is left
    plan = K.ConvPlan((8, 8), (8, 8), (3, 3), (1, 1), (12, 12), (12, 12))
    assert len(plan.bands) == 1 and plan.bands[0].taps == [(1, 0, 0, 8)]
    assert plan.bands[0].js == [1] and plan.is_identity(plan.bands[0])
    # on a 16x16 map the outer taps work on their 4 real rows/columns only: the outer
    # kernel columns get narrow bands of their own
    plan = K.ConvPlan((16, 16), (16, 16), (3, 3), (1, 1), (12, 12), (12, 12))
    assert sorted((b.js, b.x0, b.x1) for b in plan.bands) == [([0], 12, 16), ([1], 0, 16), ([2], 0, 4)]
    assert all(sorted(b.taps) == [(0, -12, 12, 16), (1, 0, 0, 16), (2, 12, 0, 4)] for b in plan.bands)
    assert plan.flops(1, 1, 1, 1) == 2 * (16 * 16 + 4 * 16 * 4 + 4 * 4 * 4)


def test_plan_of_a_padded_3x3_stacks_the_kernel_columns():
    plan = K.ConvPlan((6, 6), (6, 6), (3, 3), (1, 1), (1, 1), (1, 1))
    (band,) = plan.bands                 # one band, all three kernel columns, full width
    assert band.js == [0, 1, 2] and (band.x0, band.x1) == (0, 6)
    # column j reads input column v + j - 1; the first (last) band column is padding for j=0 (2)
    assert band.columns == [(0, 1, 6, 0), (1, 0, 6, 0), (2, 0, 5, 1)]
    assert sorted(band.taps) == [(0, -1, 1, 6), (1, 0, 0, 6), (2, 1, 0, 5)]
    # the stacked kernel columns need not be neighbours (here the middle one is mostly padding)
    plan = K.ConvPlan((4, 5), (3, 4), (3, 3), (2, 2), (2, 2), (1, 1))
    assert sorted(b.js for b in plan.bands if b.ra == 0) == [[0, 2], [1]]
    # stride 2: the rows split into two phases
    plan = K.ConvPlan((8, 8), (4, 4), (3, 3), (2, 2), (1, 1), (1, 1))
    assert sorted(b.ra for b in plan.bands) == [0, 1]


def _all_products(x, w, b, g, kw):
    return ([K.conv2d_forward(x, w, b, **kw), K.conv2d_grad_input(g, w, x.shape[2:], **kw)]
            + list(K.conv2d_grad_weight(g, x, w.shape, **kw, need_bias=True)))


@pytest.mark.parametrize("threads", [1, 3])
@pytest.mark.parametrize("shapes", [((5, 4, 9, 8), (6, 2, 3, 3)),     # threads split the images
                                    ((3, 8, 3, 4), (48, 4, 3, 3))])   # big weight: split channels
def test_thread_counts_agree(threads, shapes):
    x, w, b = randn(*shapes[0]), randn(*shapes[1], seed=1), randn(shapes[1][0], seed=2)
    kw = dict(stride=(2, 1), padding=1, dilation=1, groups=2)
    g = randn(*K.conv2d_forward(x, w, b, **kw).shape, seed=3)
    try:
        K.set_num_threads(1)
        ref = _all_products(x, w, b, g, kw)
        K.set_num_threads(threads)
        got = _all_products(x, w, b, g, kw)
    finally:
        K.set_num_threads(None)
    for a, r in zip(got, ref):
        np.testing.assert_allclose(a, r, rtol=1e-12, atol=1e-12)


@requires_torch
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("xs,ws,kw", [((5, 4, 9, 8), (6, 4, 3, 3), dict(padding=1)),
                                      ((3, 4, 9, 9), (6, 2, 3, 3), dict(stride=2, padding=2, dilation=2,
                                                                        groups=2)),
                                      ((4, 3, 8, 8), (4, 3, 3, 3), dict(padding=12, dilation=12))])
def test_one_image_per_block_matches_torch(parity, monkeypatch, threads, xs, ws, kw):
    """Large maps go one image per NumPy call (IMAGE_BLOCK_ELEMENTS); here every map does,
    so each thread loops over several blocks: forward, both gradients and the transpose."""
    monkeypatch.setattr(K, "IMAGE_BLOCK_ELEMENTS", 1)
    monkeypatch.setattr(K, "PARALLEL_MIN_MACS", 0)
    assert K._images_per_step(np, xs[0], 1) == 1
    arrays = [randn(*xs), randn(*ws, seed=1), randn(ws[0], seed=2)]
    groups = kw.get("groups", 1)          # transposed weight: (in, out / groups, kh, kw)
    arrays_t = [randn(*xs), randn(xs[1], 2, *ws[2:], seed=1), randn(2 * groups, seed=2)]
    try:
        K.set_num_threads(threads)
        parity(lambda *t: F.conv2d(*t, **kw), lambda *t: TF.conv2d(*t, **kw), arrays)
        parity(lambda *t: F.conv_transpose2d(*t, **kw), lambda *t: TF.conv_transpose2d(*t, **kw), arrays_t)
    finally:
        K.set_num_threads(None)


def test_num_threads_setting_and_environment(monkeypatch):
    monkeypatch.setenv("MINISEGNET_NUM_THREADS", "3")
    assert K.num_threads() == 3
    K.set_num_threads(2)
    try:
        assert K.num_threads() == 2
    finally:
        K.set_num_threads(None)


def test_generic_array_code_path_matches(monkeypatch):
    """The GPU path (one step over the whole batch, products not written through ``out=``),
    run on NumPy through a stand-in array module, gives the CPU path's answers."""
    x, w, b = randn(3, 4, 7, 6), randn(6, 2, 3, 2, seed=1), randn(6, seed=2)
    kw = dict(stride=(1, 2), padding=(1, 2), dilation=(2, 1), groups=2)
    y = K.conv2d_forward(x, w, b, **kw)
    g = randn(*y.shape, seed=3)
    ref = _all_products(x, w, b, g, kw)
    standin = types.SimpleNamespace(**{name: getattr(np, name) for name in dir(np) if not name.startswith("__")})
    monkeypatch.setattr(K.backend, "array_module", lambda *arrays: standin)
    got = _all_products(x, w, b, g, kw)
    for a, r in zip(got, ref):
        np.testing.assert_allclose(a, r, rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------ nn layers
@requires_torch
@pytest.mark.parametrize("make", [
    lambda m: m.Conv2d(4, 6, 3, stride=2, padding=1, groups=2),
    lambda m: m.Conv2d(3, 5, (1, 3), padding="same", bias=False, dilation=2),
    lambda m: m.ConvTranspose2d(4, 6, 4, stride=2, padding=1, groups=2),
    lambda m: m.ConvTranspose2d(3, 2, 3, stride=2, padding=1, output_padding=1, bias=False),
])
def test_layers_share_state_dicts_with_torch(device, make):
    theirs = make(torch.nn).double()
    ours = make(nn).to(device).to(dtype=ms.float64)
    ref_sd, sd = theirs.state_dict(), ours.state_dict()
    assert list(sd) == list(ref_sd)
    assert [v.shape for v in sd.values()] == [tuple(v.shape) for v in ref_sd.values()]
    ours.load_state_dict({k: v.numpy() for k, v in ref_sd.items()})
    x = randn(2, theirs.in_channels, 7, 6)
    np.testing.assert_allclose(ours(ms.tensor(x, device=device)).numpy(),
                               theirs(torch.tensor(x)).detach().numpy(), rtol=1e-10, atol=1e-12)


def test_default_init_is_kaiming_uniform_with_a_sqrt5():
    ms.manual_seed(0)
    conv = nn.Conv2d(16, 32, 3)
    convt = nn.ConvTranspose2d(16, 32, 4, groups=2)         # weight (16, 16, 4, 4)
    for layer, fan_in in ((conv, 16 * 9), (convt, 16 * 16)):
        bound = 1 / math.sqrt(fan_in)                       # sqrt(3) * sqrt(2/(1+5)) / sqrt(fan_in)
        w, b = layer.weight.numpy(), layer.bias.numpy()
        assert w.dtype == np.float32 and np.abs(w).max() <= bound and np.abs(b).max() <= bound
        assert abs(w.std() - bound / math.sqrt(3)) < 0.05 * bound   # std of U(-a, a) is a/sqrt(3)
    assert convt.weight.shape == (16, 16, 4, 4) and convt.bias.shape == (32,)


def test_layer_repr_and_errors():
    assert repr(nn.Conv2d(3, 8, 3, padding=1, bias=False)) == \
        "Conv2d(3, 8, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), bias=False)"
    assert "output_padding=(1, 1)" in repr(nn.ConvTranspose2d(3, 8, 3, 2, output_padding=1))
    with pytest.raises(ValueError, match=r"in_channels=3 must be divisible by groups=2"):
        nn.Conv2d(3, 4, 3, groups=2)
    with pytest.raises(ValueError, match=r"only padding_mode='zeros'"):
        nn.Conv2d(3, 4, 3, padding_mode="reflect")
    with pytest.raises(ValueError, match=r"ConvTranspose2d: padding must be an int or a pair, got 'same'"):
        nn.ConvTranspose2d(3, 4, 3, padding="same")
    with pytest.raises(TypeError, match=r"kernel_size must be an int or a pair of ints, got 'big'"):
        nn.Conv2d(3, 4, "big")
    assert "padding='same'" in repr(nn.Conv2d(3, 4, 3, padding="same"))
    with pytest.raises(ValueError, match=r"output_size \(9, 9\) is not reachable"):
        nn.ConvTranspose2d(2, 2, 3, stride=2)(ms.zeros(1, 2, 3, 3), output_size=(9, 9))


@requires_torch
def test_conv_transpose_output_size_picks_output_padding():
    ms.manual_seed(0)
    ours = nn.ConvTranspose2d(2, 3, 3, stride=3, padding=1).to(dtype=ms.float64)
    theirs = torch.nn.ConvTranspose2d(2, 3, 3, stride=3, padding=1).double()
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    x = randn(1, 2, 4, 5)
    y = ours(ms.tensor(x), output_size=(11, 14))
    assert y.shape == (1, 3, 11, 14)
    np.testing.assert_allclose(y.numpy(), theirs(torch.tensor(x), output_size=[11, 14]).detach().numpy(),
                               rtol=1e-10, atol=1e-12)


@requires_torch
@pytest.mark.skipif(not hasattr(nn.init, "bilinear_"), reason="nn.init.bilinear_ is not written yet")
@pytest.mark.parametrize("grouped", [True, False])
def test_bilinear_init_upsamples_like_interpolate(grouped):
    C = 3
    up = nn.ConvTranspose2d(C, C, 4, stride=2, padding=1, groups=C if grouped else 1, bias=False)
    up.to(dtype=ms.float64)
    nn.init.bilinear_(up.weight)
    x = randn(2, C, 6, 5)
    y = up(ms.tensor(x)).numpy()
    ref = TF.interpolate(torch.tensor(x), scale_factor=2, mode="bilinear", align_corners=False).numpy()
    assert y.shape == ref.shape == (2, C, 12, 10)
    # the borders differ: interpolate repeats the edge pixel, the transposed conv sees zeros
    np.testing.assert_allclose(y[:, :, 1:-1, 1:-1], ref[:, :, 1:-1, 1:-1], rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------ thin products in pieces
@pytest.mark.parametrize("a_shape,b_shape,pieces", [
    ((1, 16, 21), (4, 1, 21, 4096), 2),          # a stem's forward: pieces of columns
    ((4, 1, 21, 4096), (4, 1, 4096, 16), 2),     # its grad weight: pieces of the contraction
    ((16, 9), (9, 10000), 2),                    # plain 2-d
    ((32, 96), (96, 1024), 4),                   # 32 x 96 = 3072: still thin, pieces of 325 columns
    ((64, 96), (96, 256), 1),                    # small enough: one product
    ((128, 384), (384, 2048), 1),                # not thin: one product
])
def test_thin_products_run_in_pieces_and_give_the_same_numbers(monkeypatch, a_shape, b_shape, pieces):
    rng = np.random.default_rng(0)
    a = rng.standard_normal(a_shape).astype(np.float32)
    b = rng.standard_normal(b_shape).astype(np.float32)
    expected = np.matmul(a.astype(np.float64), b.astype(np.float64))       # the oracle, in float64
    calls = []
    matmul = np.matmul
    monkeypatch.setattr(np, "matmul", lambda *args, **kw: calls.append(1) or matmul(*args, **kw))
    got = K._product(np, a, b)
    assert len(calls) == pieces
    assert got.dtype == np.float32 and got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
    out = np.full(expected.shape, np.nan, dtype=np.float32)                 # into a given array too
    assert K._product(np, a, b, out=out) is out
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


@requires_torch
def test_a_stem_convolution_through_the_pieces_matches_torch():
    """The 7x7 stride-2 stem with 3 input channels at 128x128, whose products are split."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 128, 128))
    w = rng.standard_normal((16, 3, 7, 7)) / 12
    gy = rng.standard_normal((2, 16, 64, 64))
    xt, wt = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    yt = torch.nn.functional.conv2d(xt, wt, stride=2, padding=3)
    yt.backward(torch.tensor(gy))
    x32, w32, gy32 = (v.astype(np.float32) for v in (x, w, gy))
    y = K.conv2d_forward(x32, w32, None, 2, 3, 1, 1)
    gx, gw, _ = K.conv2d_backward(gy32, x32, w32, 2, 3, 1, 1)
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(gw, wt.grad.numpy(), rtol=1e-4, atol=1e-2)
    np.testing.assert_allclose(gx, xt.grad.numpy(), rtol=1e-4, atol=1e-4)
