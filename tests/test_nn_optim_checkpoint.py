"""nn.Module bookkeeping, optimizers and schedules against torch.optim, and checkpoints."""
import math
import os

import numpy as np
import pytest

import minisegnet as ms
from minisegnet import nn, optim
from conftest import requires_torch, torch


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 4)
        self.layers = nn.ModuleList([nn.Linear(4, 4), nn.ReLU()])
        self.head = nn.Sequential(nn.Linear(4, 2, bias=False))
        self.register_buffer("running", ms.zeros(4))

    def forward(self, x):
        x = self.fc(x)
        for m in self.layers:
            x = m(x)
        return self.head(x + self.running)


def test_module_finds_parameters_buffers_and_children():
    m = Block()
    names = [n for n, _ in m.named_parameters()]
    assert names == ["fc.weight", "fc.bias", "layers.0.weight", "layers.0.bias", "head.0.weight"]
    assert list(m.state_dict()) == ["running"] + names     # own state first, then children (as torch)
    assert [type(c).__name__ for c in m.children()] == ["Linear", "ModuleList", "Sequential"]
    assert len(list(m.modules())) == 7


def test_train_eval_reach_every_module():
    m = Block().eval()
    assert not any(x.training for x in m.modules())
    m.train()
    assert all(x.training for x in m.modules())


def test_repr_is_readable():
    text = repr(Block())
    assert "(fc): Linear(in_features=3, out_features=4, bias=True)" in text
    assert "(0): Linear(in_features=4, out_features=2, bias=False)" in text


@requires_torch
def test_state_dict_matches_torch_names_and_loads_torch_weights():
    ours = nn.Sequential(nn.Linear(3, 5), nn.ReLU(), nn.Linear(5, 2))
    theirs = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.ReLU(), torch.nn.Linear(5, 2))
    assert list(ours.state_dict()) == list(theirs.state_dict())
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((4, 3))
    np.testing.assert_allclose(ours.double()(ms.tensor(x)).numpy(),
                               theirs(torch.tensor(x)).detach().numpy(), rtol=1e-6)


def test_load_state_dict_errors_name_keys_and_shapes():
    m = nn.Sequential(nn.Linear(3, 5))
    good = m.state_dict()
    bad = dict(good, **{"0.weight": np.zeros((5, 4))})
    before = m[0].weight.numpy()
    with pytest.raises(ValueError, match=r"'0.weight'.*\(5, 4\).*\(5, 3\)"):
        m.load_state_dict(bad)
    np.testing.assert_array_equal(m[0].weight.numpy(), before)      # nothing changed
    with pytest.raises(ValueError, match="missing keys: 0.bias"):
        m.load_state_dict({"0.weight": good["0.weight"]})
    with pytest.raises(ValueError, match="unexpected keys: extra"):
        m.load_state_dict(dict(good, extra=np.zeros(1)))
    missing, unexpected = m.load_state_dict({"0.weight": good["0.weight"], "x": np.zeros(1)}, strict=False)
    assert missing == ["0.bias"] and unexpected == ["x"]


def test_load_state_dict_accepts_tensors():
    m = nn.Linear(2, 2)
    m.load_state_dict({"weight": ms.ones(2, 2), "bias": ms.zeros(2)})
    np.testing.assert_array_equal(m.weight.numpy(), np.ones((2, 2)))


def test_default_init_matches_torch_bounds():
    ms.manual_seed(0)
    w = nn.Linear(100, 50).weight.numpy()
    bound = 1 / math.sqrt(100)      # kaiming_uniform(a=sqrt(5)) == U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    assert w.max() <= bound and w.min() >= -bound and w.max() > 0.9 * bound
    assert abs(w.std() - bound / math.sqrt(3)) < 0.05 * bound


def test_kaiming_normal_std():
    ms.manual_seed(0)
    t = ms.zeros(64, 32, 3, 3)
    nn.init.kaiming_normal_(t, mode="fan_out", nonlinearity="relu")
    assert abs(t.numpy().std() - math.sqrt(2 / (64 * 9))) < 0.01


def test_init_is_seeded():
    ms.manual_seed(5)
    a = nn.Linear(4, 4).weight.numpy()
    ms.manual_seed(5)
    np.testing.assert_array_equal(a, nn.Linear(4, 4).weight.numpy())


def test_bilinear_kernel_hand_computed():
    # k=4 (upsampling x2): taps 1 - |i - 1.5| / 2 = [0.25, 0.75, 0.75, 0.25]
    np.testing.assert_allclose(nn.init.bilinear_kernel(4)[0], 0.25 * np.array([0.25, 0.75, 0.75, 0.25]))
    # k=3 (factor 2, odd): taps 1 - |i - 1| / 2 = [0.5, 1, 0.5]
    np.testing.assert_allclose(nn.init.bilinear_kernel(3)[1], [0.5, 1.0, 0.5])


# ------------------------------------------------------------------ optimizers vs torch.optim
def _run(opt_name, kwargs, steps=5, scheduler=None):
    rng = np.random.default_rng(1)
    w0 = rng.standard_normal((3, 2))
    target = rng.standard_normal((4, 2))
    x = rng.standard_normal((4, 3))
    p = nn.Parameter(ms.tensor(w0))
    tp = torch.nn.Parameter(torch.tensor(w0))
    opt = getattr(optim, opt_name)([p], **kwargs)
    topt = getattr(torch.optim, opt_name)([tp], **kwargs)
    sched = tsched = None
    if scheduler == "poly":
        sched = optim.PolyLR(opt, total_iters=steps, power=0.9)
        tsched = torch.optim.lr_scheduler.PolynomialLR(topt, total_iters=steps, power=0.9)
    for _ in range(steps):
        opt.zero_grad()
        topt.zero_grad()
        ((ms.tensor(x) @ p - ms.tensor(target)) ** 2).mean().backward()
        ((torch.tensor(x) @ tp - torch.tensor(target)) ** 2).mean().backward()
        opt.step()
        topt.step()
        if sched:
            sched.step()
            tsched.step()
            assert opt.param_groups[0]["lr"] == pytest.approx(topt.param_groups[0]["lr"], rel=1e-12)
    np.testing.assert_allclose(p.numpy(), tp.detach().numpy(), rtol=1e-9, atol=1e-12)


@requires_torch
@pytest.mark.parametrize("name,kwargs", [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.9)),
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-2)),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.01, weight_decay=0.1, betas=(0.8, 0.99))),
    ("AdamW", dict(lr=0.01, weight_decay=0.1)),
])
def test_optimizers_match_torch(name, kwargs):
    _run(name, kwargs)


@requires_torch
def test_poly_schedule_matches_torch():
    _run("SGD", dict(lr=0.1, momentum=0.9), steps=6, scheduler="poly")


def test_poly_schedule_hand_computed():
    p = nn.Parameter(ms.zeros(1))
    opt = optim.SGD([p], lr=1.0)
    sched = optim.PolyLR(opt, total_iters=4, power=1.0)
    lrs = [opt.param_groups[0]["lr"]]
    for _ in range(5):
        sched.step()
        lrs.append(opt.param_groups[0]["lr"])
    assert lrs == [1.0, 0.75, 0.5, 0.25, 0.0, 0.0]


def test_optimizer_state_round_trips_through_checkpoint(tmp_path):
    p = nn.Parameter(ms.tensor(np.ones(3)))
    opt = optim.Adam([p], lr=0.1)
    p.grad = ms.tensor(np.array([1.0, -1.0, 0.5]))
    opt.step()
    ms.save({"opt": opt.state_dict()}, tmp_path / "o.npz")
    p2 = nn.Parameter(ms.tensor(p.numpy()))
    opt2 = optim.Adam([p2], lr=0.5)
    opt2.load_state_dict(ms.load(tmp_path / "o.npz")["opt"])
    for o, q in ((opt, p), (opt2, p2)):
        q.grad = ms.tensor(np.array([0.3, 0.2, -0.1]))
        o.step()
    np.testing.assert_allclose(p2.numpy(), p.numpy())
    assert opt2.param_groups[0]["lr"] == 0.1


def test_optimizer_state_dict_is_a_snapshot():
    """Adam updates its moments in place; a state_dict taken earlier must not change with them."""
    p = nn.Parameter(ms.tensor(np.ones(3)))
    opt = optim.Adam([p], lr=0.1)
    p.grad = ms.tensor(np.array([1.0, -1.0, 0.5]))
    opt.step()
    saved = opt.state_dict()["state"]
    # after one step from zero moments: m = (1 - b1) g, v = (1 - b2) g^2 (hand-computed)
    np.testing.assert_allclose(saved["0.exp_avg"], 0.1 * np.array([1.0, -1.0, 0.5]))
    np.testing.assert_allclose(saved["0.exp_avg_sq"], 0.001 * np.array([1.0, 1.0, 0.25]))
    opt.step()
    np.testing.assert_allclose(saved["0.exp_avg"], 0.1 * np.array([1.0, -1.0, 0.5]))


def test_optimizer_errors():
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.SGD([], lr=0.1)
    with pytest.raises(ValueError, match="nesterov"):
        optim.SGD([nn.Parameter(ms.zeros(1))], lr=0.1, nesterov=True)


# ------------------------------------------------------------------ checkpoints
def test_save_load_round_trip(tmp_path):
    m = Block()
    state = {"model": m.state_dict(), "epoch": 3, "best": 0.5, "name": "x", "history": [1, 2]}
    path = ms.save(state, tmp_path / "ck.npz")
    back = ms.load(path)
    assert back["epoch"] == 3 and back["name"] == "x" and back["history"] == [1, 2]
    for k, v in state["model"].items():
        np.testing.assert_array_equal(back["model"][k], v)
    m2 = Block()
    m2.load_state_dict(back["model"])
    np.testing.assert_array_equal(m2.fc.weight.numpy(), m.fc.weight.numpy())


def test_save_is_atomic_under_failure(tmp_path, monkeypatch):
    path = tmp_path / "ck.npz"
    ms.save({"a": np.ones(2)}, path)

    def broken_savez(f, **arrays):
        f.write(b"partial")
        raise OSError("disk full")
    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        ms.save({"a": np.zeros(2)}, path)
    monkeypatch.undo()
    np.testing.assert_array_equal(ms.load(path)["a"], np.ones(2))   # old checkpoint intact
    assert os.listdir(tmp_path) == ["ck.npz"]                       # no temp file left behind


def test_load_errors_name_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        ms.load(tmp_path / "nope.npz")
    good = tmp_path / "good.npz"
    ms.save({"a": np.ones(100)}, good)
    truncated = tmp_path / "trunc.npz"
    truncated.write_bytes(good.read_bytes()[:60])
    with pytest.raises(ms.CheckpointError, match="trunc.npz.*truncated"):
        ms.load(truncated)
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, x=np.ones(2))
    with pytest.raises(ms.CheckpointError, match="not a minisegnet checkpoint"):
        ms.load(foreign)


def test_save_rejects_values_needing_pickle(tmp_path):
    with pytest.raises(TypeError, match="'obj'.*object"):
        ms.save({"obj": object()}, tmp_path / "x.npz")
