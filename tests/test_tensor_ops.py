"""Element-wise, reduction and shape ops against PyTorch (float64) and finite differences."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import minisegnet as ms
import minisegnet.functional as F
from conftest import torch, to_ms

SETTINGS = settings(max_examples=20, deadline=None)


def _arr(rng, shape, positive=False):
    a = rng.standard_normal(shape)
    return np.abs(a) + 0.5 if positive else a


# ------------------------------------------------------------------ binary ops with broadcasting
BINARY = {
    "add": (lambda a, b: a + b, lambda a, b: a + b),
    "sub": (lambda a, b: a - b, lambda a, b: a - b),
    "mul": (lambda a, b: a * b, lambda a, b: a * b),
    "div": (lambda a, b: a / b, lambda a, b: a / b),
    "pow": (lambda a, b: a ** b, lambda a, b: a ** b),
}


@pytest.mark.parametrize("name", list(BINARY))
@SETTINGS
@given(shapes=hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=3),
       seed=st.integers(0, 2 ** 16))
def test_binary_ops_broadcast_like_torch(name, shapes, seed, parity):
    rng = np.random.default_rng(seed)
    sa, sb = shapes.input_shapes
    positive = name in ("div", "pow")
    a, b = _arr(rng, sa, positive), _arr(rng, sb, positive)
    ms_fn, torch_fn = BINARY[name]
    parity(ms_fn, torch_fn, [a, b])


@pytest.mark.parametrize("op", ["radd", "rsub", "rmul", "rdiv", "rpow", "neg"])
def test_reflected_and_scalar_ops(op, parity):
    fns = {
        "radd": lambda x: 2.5 + x, "rsub": lambda x: 2.5 - x, "rmul": lambda x: 2.5 * x,
        "rdiv": lambda x: 2.5 / x, "rpow": lambda x: 2.5 ** x, "neg": lambda x: -x,
    }
    a = np.abs(np.random.default_rng(1).standard_normal((3, 4))) + 0.5
    parity(fns[op], fns[op], [a])


def test_scalar_keeps_float32():
    x = ms.ones(2, 2)
    assert (x * 2.0).dtype == np.float32
    assert (2 / x).dtype == np.float32
    assert ms.tensor(np.ones(3)).dtype == np.float64          # numpy keeps float64


UNARY = {
    "exp": (lambda x: x.exp(), torch.exp if torch else None, False),
    "log": (lambda x: x.log(), torch.log if torch else None, True),
    "sqrt": (lambda x: x.sqrt(), torch.sqrt if torch else None, True),
    "abs": (lambda x: x.abs(), torch.abs if torch else None, False),
    "relu": (lambda x: x.relu(), torch.relu if torch else None, False),
    "sigmoid": (lambda x: x.sigmoid(), torch.sigmoid if torch else None, False),
    "tanh": (lambda x: x.tanh(), torch.tanh if torch else None, False),
    "clamp": (lambda x: x.clamp(-0.5, 0.7), (lambda t: t.clamp(-0.5, 0.7)), False),
    "clamp_min": (lambda x: F.clamp(x, min=0.1), (lambda t: t.clamp(min=0.1)), False),
}


@pytest.mark.parametrize("name", list(UNARY))
@SETTINGS
@given(shape=hnp.array_shapes(min_dims=0, max_dims=3, max_side=4), seed=st.integers(0, 2 ** 16))
def test_unary_ops_like_torch(name, shape, seed, parity):
    ms_fn, torch_fn, positive = UNARY[name]
    a = _arr(np.random.default_rng(seed), shape, positive)
    parity(ms_fn, torch_fn, [a])


def test_sigmoid_is_stable_for_large_inputs():
    x = ms.tensor(np.array([-1000.0, 0.0, 1000.0]))
    np.testing.assert_allclose(x.sigmoid().numpy(), [0.0, 0.5, 1.0])


def test_where_like_torch(parity):
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((3, 4)), rng.standard_normal((1, 4))
    cond = rng.random((3, 4)) > 0.5
    parity(lambda x, y: F.where(ms.tensor(cond), x, y),
           lambda x, y: torch.where(torch.tensor(cond), x, y), [a, b])


@pytest.mark.parametrize("sa,sb", [((3, 4), (4, 5)), ((4,), (4, 2)), ((2, 3, 4), (4,)),
                                   ((2, 3, 4), (1, 4, 2)), ((5,), (5,))])
def test_matmul_like_torch(sa, sb, parity):
    rng = np.random.default_rng(3)
    parity(lambda a, b: a @ b, lambda a, b: a @ b, [rng.standard_normal(sa), rng.standard_normal(sb)])


def test_matmul_shape_error_names_shapes():
    with pytest.raises(ValueError, match=r"\(3, 4\) and \(5, 2\)"):
        ms.ones(3, 4) @ ms.ones(5, 2)


def test_comparisons_have_no_grad():
    x = ms.tensor([1.0, 2.0, 3.0], requires_grad=True)
    m = x > 1.5
    assert m.dtype == np.bool_ and not m.requires_grad
    assert m.tolist() == [False, True, True]
    assert (x == 2.0).tolist() == [False, True, False]


# ------------------------------------------------------------------ reductions
@pytest.mark.parametrize("name", ["sum", "mean", "amax", "amin"])
@pytest.mark.parametrize("dim,keepdim", [(None, False), (1, False), (1, True), ((0, 2), False),
                                          (-1, True)])
def test_reductions_like_torch(name, dim, keepdim, parity):
    a = np.random.default_rng(4).standard_normal((3, 4, 5))
    if dim is None:
        parity(lambda x: getattr(x, name)(), lambda t: getattr(t, name)(), [a])
    else:
        parity(lambda x: getattr(x, name)(dim=dim, keepdim=keepdim),
               lambda t: getattr(t, name)(dim=dim, keepdim=keepdim), [a])


def test_amax_ties_split_gradient_like_torch(parity):
    a = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 0.0]])
    parity(lambda x: x.amax(dim=1), lambda t: t.amax(dim=1), [a])


@pytest.mark.parametrize("keepdim", [False, True])
def test_max_along_dim_returns_values_and_indices(keepdim, parity):
    a = np.random.default_rng(5).standard_normal((3, 4))
    out = parity(lambda x: x.max(dim=1, keepdim=keepdim).values,
                 lambda t: t.max(dim=1, keepdim=keepdim).values, [a])
    idx = to_ms(a).max(dim=1, keepdim=keepdim).indices
    np.testing.assert_array_equal(idx.numpy(), torch.tensor(a).max(dim=1, keepdim=keepdim).indices.numpy())
    assert out.shape == ((3, 1) if keepdim else (3,))


def test_argmax_like_numpy():
    a = np.random.default_rng(6).standard_normal((2, 3, 4))
    np.testing.assert_array_equal(ms.tensor(a).argmax(dim=1).numpy(), a.argmax(axis=1))
    assert ms.tensor(a).argmax().item() == a.argmax()


def test_reduction_dim_out_of_range():
    with pytest.raises(IndexError, match="dim 3 is out of range"):
        ms.ones(2, 3).sum(dim=3)


# ------------------------------------------------------------------ shape ops
SHAPE_OPS = {
    "reshape": (lambda x: x.reshape(4, -1), lambda t: t.reshape(4, -1)),
    "view": (lambda x: x.view(2, 12), lambda t: t.reshape(2, 12)),
    "permute": (lambda x: x.permute(2, 0, 1), lambda t: t.permute(2, 0, 1)),
    "transpose": (lambda x: x.transpose(0, 2), lambda t: t.transpose(0, 2)),
    "flatten": (lambda x: x.flatten(1), lambda t: t.flatten(1)),
    "unsqueeze": (lambda x: x.unsqueeze(-1), lambda t: t.unsqueeze(-1)),
    "squeeze": (lambda x: x[:, :1].squeeze(1), lambda t: t[:, :1].squeeze(1)),
    "expand": (lambda x: x[:, :1].expand(2, 5, 4), lambda t: t[:, :1].expand(2, 5, 4)),
    "slice": (lambda x: x[1:, ::2, -1], lambda t: t[1:, ::2, -1]),
    "int_index": (lambda x: x[1], lambda t: t[1]),
    "int_array": (lambda x: x[:, [0, 2, 2, 1]], lambda t: t[:, [0, 2, 2, 1]]),
    "bool_mask": (lambda x: x[ms.tensor(np.array([True, False]))],
                  lambda t: t[torch.tensor([True, False])]),
    "elementwise_mask": (lambda x: x[x > 0], lambda t: t[t > 0]),
    "pad": (lambda x: F.pad(x, (1, 2, 0, 1), value=0.5), lambda t: torch.nn.functional.pad(t, (1, 2, 0, 1), value=0.5)),
    "gather": (lambda x: x.gather(2, ms.tensor(np.array([[[0, 3]] * 3] * 2))),
               lambda t: t.gather(2, torch.tensor(np.array([[[0, 3]] * 3] * 2)))),
}


@pytest.mark.parametrize("name", list(SHAPE_OPS))
def test_shape_ops_like_torch(name, parity):
    a = np.random.default_rng(7).standard_normal((2, 3, 4))
    ms_fn, torch_fn = SHAPE_OPS[name]
    parity(ms_fn, torch_fn, [a])


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_cat_and_stack_like_torch(dim, parity):
    rng = np.random.default_rng(8)
    a, b, c = rng.standard_normal((2, 3)), rng.standard_normal((2, 3)), rng.standard_normal((2, 3))
    parity(lambda x, y, z: ms.cat([x, y, z], dim=dim), lambda x, y, z: torch.cat([x, y, z], dim=dim), [a, b, c])
    parity(lambda x, y, z: ms.stack([x, y, z], dim=dim), lambda x, y, z: torch.stack([x, y, z], dim=dim), [a, b, c])


def test_cat_shape_error_names_shapes():
    with pytest.raises(ValueError, match=r"tensor 1 has shape \(2, 4\).*\(2, 3\)"):
        ms.cat([ms.ones(2, 3), ms.ones(2, 4)], dim=0)


def test_reshape_error_names_shapes():
    with pytest.raises(ValueError, match=r"shape \(2, 3\).*\(4, 2\)"):
        ms.ones(2, 3).reshape(4, 2)


def test_gradcheck_on_composite_graph():
    rng = np.random.default_rng(9)
    a = to_ms(rng.standard_normal((3, 4)))
    b = to_ms(rng.standard_normal((4,)))
    assert ms.gradcheck(lambda x, y: ((x * y).tanh() @ y).exp() + x.sum(dim=1) ** 2, a, b)


def test_gradcheck_reports_input_element_and_values():
    class WrongSquare(ms.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x * x

        @staticmethod
        def backward(ctx, grad_out):
            (x,) = ctx.saved_tensors
            return grad_out * x          # wrong: should be 2 x

    x = to_ms(np.array([1.0, 2.0]))
    with pytest.raises(ms.gradcheck.__globals__["GradcheckError"],
                       match=r"input 0 .* element \(0,\): numerical gradient .* analytical"):
        ms.gradcheck(WrongSquare.apply, x)


def test_float32_ops_work():
    x = ms.randn(3, 4, requires_grad=True)
    y = (x.relu() * 2 + 1).log().mean()
    y.backward()
    assert y.dtype == np.float32 and x.grad.dtype == np.float32
