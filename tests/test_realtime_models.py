"""Fast-SCNN, BiSeNetV2 and SegFormer-B0 against their PyTorch twins (tests/twins_realtime.py).

Weights are copied by state-dict key (so the keys must agree), then in float64, in train
mode (batch statistics) and eval mode: the logits, the input gradient, every parameter's
gradient (every parameter must get one) and the running statistics must match. Also:
the losses with auxiliary heads, odd input sizes, the zoo, summary/MAC counts, the
efficient self-attention by hand, and parameter counts at full width next to the papers.
"""
import math

import numpy as np
import pytest

import minisegnet as ms
from minisegnet import models, nn
from minisegnet.models.segformer import EfficientSelfAttention
from conftest import requires_torch, torch
from torch_twins import copy_to_torch, randomize

RTOL, ATOL = 1e-6, 1e-8
NAMES = ["fast_scnn", "bisenetv2", "segformer_b0"]
# small widths so that a parity test takes a fraction of a second
SMALL = {"fast_scnn": dict(width=0.25), "bisenetv2": dict(width=0.25), "segformer_b0": dict(width=0.25, channels=8)}

if torch is not None:
    import twins_realtime


def build_pair(name, aux=False, seed=0):
    kwargs = dict(SMALL[name])
    if name != "segformer_b0":
        kwargs["aux"] = aux
    model = models.create(name, 3, dropout_ratio=0, **kwargs).double()
    for m in model.modules():
        if isinstance(m, nn.DropPath):
            m.drop_prob = 0.0          # random per sample: the twin could not draw the same masks
    twin = twins_realtime.build_twin(name, 3, **kwargs).double()
    randomize(model, seed)
    return model, copy_to_torch(model, twin)


def close(a, b, what):
    np.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL, err_msg=what)


def compare_grads_and_stats(model, twin, train):
    t_params = dict(twin.named_parameters())
    for name, p in model.named_parameters():
        assert p.grad is not None, f"no gradient reached {name}"
        close(p.grad.numpy(), t_params[name].grad.numpy(), f"gradient of {name}")
    if train:
        t_sd = twin.state_dict()
        for k, v in model.state_dict().items():
            if k.endswith(("running_mean", "running_var")):
                close(v, t_sd[k].numpy(), k)


# ------------------------------------------------------------------ parity with the twins
@requires_torch
@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("name", NAMES)
def test_model_matches_pytorch_twin(name, train):
    model, twin = build_pair(name)
    model.train(train)
    twin.train(train)
    x = np.random.default_rng(1).standard_normal((2, 3, 37, 45))      # odd sizes on purpose
    xm, xt = ms.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    out, ref = model(xm), twin(xt)
    assert out.shape == (2, 3, 37, 45)
    close(out.numpy(), ref.detach().numpy(), "logits")
    g = np.random.default_rng(2).standard_normal(out.shape)
    out.backward(ms.tensor(g))
    ref.backward(torch.tensor(g))
    close(xm.grad.numpy(), xt.grad.numpy(), "gradient of the image")
    compare_grads_and_stats(model, twin, train)


@requires_torch
@pytest.mark.parametrize("name", ["fast_scnn", "bisenetv2"])
def test_loss_with_auxiliary_heads_matches_pytorch(name):
    model, twin = build_pair(name, aux=True, seed=3)
    assert isinstance(model.auxiliary_head, nn.ModuleList)
    assert len(model.auxiliary_head) == {"fast_scnn": 2, "bisenetv2": 4}[name]
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 3, 33, 35))
    y = rng.integers(0, 3, (2, 33, 35))
    y[0, :3] = 255                                     # ignored pixels
    losses = model.loss(ms.tensor(x), ms.tensor(y))
    ref = twin.loss(torch.tensor(x), torch.tensor(y))
    assert set(losses) == {"loss", "loss_decode", "loss_aux"}
    close(losses["loss"].item(), ref.item(), "total loss")
    losses["loss"].backward()
    ref.backward()
    compare_grads_and_stats(model, twin, True)


# ------------------------------------------------------------------ the efficient self-attention by hand
@pytest.mark.parametrize("sr_ratio", [1, 2])
def test_efficient_self_attention_by_hand(sr_ratio):
    """Rebuild the attention in plain NumPy from the module's own weights: reduce the map,
    project, split heads, softmax(QK^T/sqrt(d)) V, merge, project."""
    ms.manual_seed(0)
    n, (h, w), c, heads = 2, (4, 6), 6, 2
    att = EfficientSelfAttention(c, heads, sr_ratio).double()
    x = np.random.default_rng(0).standard_normal((n, h * w, c))
    out = att(ms.tensor(x), (h, w)).numpy()
    p = {k: v for k, v in att.state_dict().items()}
    q = x @ p["q.weight"].T + p["q.bias"]
    src = x
    if sr_ratio > 1:
        m = x.transpose(0, 2, 1).reshape(n, c, h, w)
        r = sr_ratio
        patches = m.reshape(n, c, h // r, r, w // r, r).transpose(0, 2, 4, 1, 3, 5).reshape(n, -1, c * r * r)
        src = patches @ p["sr.weight"].reshape(c, -1).T + p["sr.bias"]
        mu, var = src.mean(-1, keepdims=True), src.var(-1, keepdims=True)
        src = (src - mu) / np.sqrt(var + 1e-6) * p["norm.weight"] + p["norm.bias"]
    kv = src @ p["kv.weight"].T + p["kv.bias"]
    k, v = kv[..., :c], kv[..., c:]
    d = c // heads
    expected = np.zeros_like(q)
    for i in range(heads):
        sl = slice(i * d, (i + 1) * d)
        s = q[..., sl] @ k[..., sl].transpose(0, 2, 1) / math.sqrt(d)
        wgt = np.exp(s - s.max(-1, keepdims=True))
        wgt /= wgt.sum(-1, keepdims=True)
        expected[..., sl] = wgt @ v[..., sl]
    expected = expected @ p["proj.weight"].T + p["proj.bias"]
    np.testing.assert_allclose(out, expected, rtol=1e-10, atol=1e-12)
    assert att.extra_macs((ms.tensor(x), (h, w)), None) == 2 * n * (h * w) * (h * w // sr_ratio ** 2) * c


def test_efficient_self_attention_errors_are_named():
    with pytest.raises(ValueError, match="divisible by num_heads"):
        EfficientSelfAttention(10, 3)
    with pytest.raises(ValueError, match="smaller than the spatial reduction 8x8"):
        EfficientSelfAttention(4, 1, sr_ratio=8)(ms.randn(1, 12, 4), (3, 4))


# ------------------------------------------------------------------ zoo, sizes, summary
def test_zoo_lists_and_builds_the_models_with_clear_errors():
    names = models.list_models()
    assert set(NAMES) <= set(names)
    with pytest.raises(ValueError, match="fast_scnn has its own backbone.*backbone must be None"):
        models.create("fast_scnn", 3, backbone="resnet18")
    with pytest.raises(ValueError, match="output_stride must be None"):
        models.create("segformer_b0", 3, output_stride=8)
    with pytest.raises(ValueError, match="width must be a positive number"):
        models.create("bisenetv2", 3, width=0)
    with pytest.raises(ValueError, match="channels applies only to segformer_b0"):
        models.create("bisenetv2", 3, channels=32)
    assert models.create("segformer_b0", 3, aux=True).auxiliary_head is None    # the trainer's default aux=True


@pytest.mark.parametrize("name, paper", [("fast_scnn", 1.11e6), ("bisenetv2", 3.4e6), ("segformer_b0", 3.8e6)])
def test_full_width_parameter_counts_are_near_the_papers(name, paper):
    model = models.create(name, 19)
    count = sum(p.numel() for p in model.parameters())
    assert abs(count - paper) / paper < 0.05, f"{name}: {count:,} parameters, the paper has {paper:,.0f}"


@pytest.mark.parametrize("name", NAMES)
def test_small_models_train_a_step_at_odd_sizes_and_summarise(name):
    ms.manual_seed(0)
    model = models.create(name, 4, **SMALL[name])
    x, y = ms.randn(2, 3, 41, 39), ms.randint(0, 4, (2, 41, 39))
    losses = model.loss(x, y)
    losses["loss"].backward()
    missing = [k for k, p in model.named_parameters() if p.grad is None]
    assert not missing, f"no gradient reached {missing[:5]}"
    model.eval()
    assert model.predict(ms.randn(1, 3, 41, 39)).shape == (1, 41, 39)       # batch of one in eval
    rows = models.profile(model, (1, 3, 64, 96))
    assert sum(r["macs"] for r in rows) > 0
    assert "Total MACs" in models.summary(model, (1, 3, 33, 47))


def test_segformer_macs_include_attention_and_match_the_paper_at_512():
    """MiT-B0 + decoder at 512x512: 8.4 GFLOPs in the paper (counted as multiply-adds)."""
    rows = models.profile(models.create("segformer_b0", 150), (1, 3, 512, 512))
    total = sum(r["macs"] for r in rows)
    attention = sum(r["macs"] for r in rows if r["type"] == "EfficientSelfAttention")
    assert attention > 0
    assert abs(total - 8.4e9) / 8.4e9 < 0.03, f"{total:,} MACs"


def test_float32_by_default_and_bisenet_batch_one_in_training_is_a_clear_error():
    model = models.create("bisenetv2", 2, width=0.25)
    out = model(ms.randn(2, 3, 32, 32))
    assert out.dtype == np.float32
    with pytest.raises(ValueError, match="CEBlock: .* batch of 2 or more"):
        model(ms.randn(1, 3, 64, 64))
