"""The graph: backward order, accumulation, no_grad, freeing, devices, tensor creation."""
import numpy as np
import pytest

import minisegnet as ms


def test_chain_of_10000_ops_does_not_recurse():
    x = ms.tensor(1.0, dtype=ms.float64, requires_grad=True)
    y = x
    for _ in range(10_000):
        y = y * 1.0001
    y.backward()
    np.testing.assert_allclose(x.grad.item(), 1.0001 ** 10_000, rtol=1e-9)


def test_diamond_graph_sums_both_paths():
    # y = a*x + b*x with shared x: dy/dx = a + b (hand-computed)
    x = ms.tensor(3.0, dtype=ms.float64, requires_grad=True)
    u = x * 2.0
    y = u * u + u * 5.0        # y = 4x^2 + 10x -> dy/dx = 8x + 10 = 34
    y.backward()
    assert x.grad.item() == pytest.approx(34.0)


def test_gradients_accumulate_over_two_backward_passes():
    x = ms.tensor([1.0, 2.0], dtype=ms.float64, requires_grad=True)
    (x * x).sum().backward()
    (x * 3.0).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [2 * 1 + 3, 2 * 2 + 3])


def test_graph_is_freed_after_backward():
    x = ms.tensor([1.0], requires_grad=True)
    y = (x * 2.0).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="already freed"):
        y.backward()


def test_retain_graph_allows_second_backward():
    x = ms.tensor([1.0], dtype=ms.float64, requires_grad=True)
    y = (x * 2.0).sum()
    y.backward(retain_graph=True)
    y.backward()
    assert x.grad.item() == 4.0


def test_no_grad_records_nothing():
    x = ms.tensor([1.0], requires_grad=True)
    with ms.no_grad():
        y = x * 2.0
    assert not y.requires_grad and y.is_leaf
    with pytest.raises(RuntimeError, match="does not require grad"):
        y.sum().backward()


def test_backward_of_non_scalar_needs_gradient():
    x = ms.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="gradient must be given"):
        (x * 2.0).backward()
    with pytest.raises(ValueError, match=r"gradient has shape \(3,\) but the output has shape \(2,\)"):
        (x * 2.0).backward(np.ones(3, dtype=np.float32))


def test_detach_cuts_the_graph():
    x = ms.tensor([2.0], dtype=ms.float64, requires_grad=True)
    y = x * x.detach()           # d/dx = x (the detached factor is a constant)
    y.sum().backward()
    assert x.grad.item() == 2.0


def test_only_float_tensors_require_grad():
    with pytest.raises(TypeError, match="floating point"):
        ms.tensor([1, 2], requires_grad=True)


@pytest.mark.parametrize("data,dtype", [(1.5, np.float32), ([1, 2], np.int64), ([True], np.bool_),
                                        (np.zeros(2), np.float64), (np.zeros(2, np.int32), np.int32),
                                        (np.zeros(2, np.float16), np.float16)])
def test_tensor_infers_dtype_like_torch(data, dtype):
    assert ms.tensor(data).dtype == dtype


def test_tensor_copies_its_input():
    a = np.zeros(3)
    t = ms.tensor(a)
    a[0] = 1
    assert t.numpy()[0] == 0


def test_tensor_basic_properties():
    t = ms.zeros(2, 3, 4)
    assert t.shape == (2, 3, 4) and t.size() == (2, 3, 4) and t.size(1) == 3 and t.ndim == 3
    assert t.device == "cpu" and t.numel() == 24
    assert ms.tensor(5.0).item() == 5.0
    with pytest.raises(ValueError, match="one-element"):
        t.item()


def test_to_dtype_is_differentiable():
    x = ms.tensor([1.0, 2.0], requires_grad=True)
    y = x.to(dtype=ms.float64) * 3.0
    assert y.dtype == np.float64
    y.sum().backward()
    assert x.grad.dtype == np.float32
    np.testing.assert_allclose(x.grad.numpy(), [3.0, 3.0])


def test_cuda_request_without_gpu_is_clear(monkeypatch):
    # a machine whose driver sees no GPU, whatever this one has (the probe's cached answer)
    monkeypatch.setattr(ms.backend, "_cuda_problem", "no NVIDIA GPU: the CUDA driver sees 0 devices")
    assert not ms.cuda.is_available()
    with pytest.raises(RuntimeError, match="no usable CUDA device was found: no NVIDIA GPU"):
        ms.zeros(2, device="cuda")
    with pytest.raises(RuntimeError, match="no usable CUDA device"):
        ms.ones(2).to("cuda")


def test_unknown_device_is_clear():
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        ms.zeros(2, device="tpu")


def test_default_device_from_environment(monkeypatch):
    monkeypatch.setenv("MINISEGNET_DEVICE", "cpu")
    assert ms.zeros(1).device == "cpu"
    monkeypatch.setenv("MINISEGNET_DEVICE", "quantum")
    with pytest.raises(ValueError, match="MINISEGNET_DEVICE='quantum'"):
        ms.zeros(1)


@pytest.mark.gpu
def test_mixing_devices_names_both():
    if not ms.cuda.is_available():
        pytest.skip("no usable CUDA device")
    with pytest.raises(RuntimeError, match="'cpu' and 'cuda'"):
        ms.ones(2) + ms.ones(2, device="cuda")


def test_mixing_devices_error_without_gpu(monkeypatch):
    """The device check itself, exercised with a fake second device."""
    from minisegnet import autograd, backend
    a, b = ms.ones(2), ms.ones(2)
    monkeypatch.setattr(backend, "device_of", lambda arr: "cuda" if arr is b.data else "cpu")
    with pytest.raises(RuntimeError, match="both 'cpu' and 'cuda'.*\\.to\\(device\\)"):
        autograd.check_same_device("Add", [a, b])


def test_ops_on_device(device):
    x = ms.tensor(np.arange(6.0).reshape(2, 3), device=device, requires_grad=True)
    (x * x).sum().backward()
    assert x.grad.device == device
    np.testing.assert_allclose(x.grad.numpy(), 2 * np.arange(6.0).reshape(2, 3))


def test_manual_seed_reproduces_random_tensors():
    ms.manual_seed(3)
    a = ms.randn(4).numpy()
    ms.manual_seed(3)
    np.testing.assert_array_equal(a, ms.randn(4).numpy())


def test_function_example_in_docstring_works():
    """The custom-op recipe in autograd.py's docstring, checked by finite differences."""
    from minisegnet import backend

    class Exp(ms.Function):
        @staticmethod
        def forward(ctx, x):
            y = backend.array_module(x).exp(x)
            ctx.save_for_backward(y)
            return y

        @staticmethod
        def backward(ctx, grad_out):
            (y,) = ctx.saved_tensors
            return grad_out * y

    x = ms.tensor(np.array([0.1, -0.3]), requires_grad=True)
    assert ms.gradcheck(Exp.apply, x)


def test_leaf_gradients_never_share_memory():
    a = ms.tensor([1.0, 2.0], requires_grad=True)
    b = ms.tensor([3.0, 4.0], requires_grad=True)
    c = ms.tensor(5.0, requires_grad=True)
    (a + b + c).sum().backward()         # Add hands the same array to both inputs
    a.grad.data[0] = 100.0
    assert b.grad.numpy().tolist() == [1.0, 1.0]
    assert c.grad.item() == 2.0 and c.grad.data.flags.writeable


class _ReshapeOfFresh(ms.Function):
    """Identity whose backward returns a reshaped view of an array it has just made."""
    made = []

    @staticmethod
    def forward(ctx, x):
        ctx.shape = x.shape
        return x.copy()

    @staticmethod
    def backward(ctx, grad_out):
        import weakref
        fresh = np.empty(grad_out.size)                  # owns its memory
        fresh[:] = grad_out.reshape(-1)
        _ReshapeOfFresh.made.append(weakref.ref(fresh))
        return fresh.reshape(ctx.shape)                  # a view of it


def test_a_reshape_of_a_fresh_gradient_becomes_the_leaf_grad_without_a_copy():
    x = ms.tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    _ReshapeOfFresh.made.clear()
    _ReshapeOfFresh.apply(x).backward(ms.tensor(np.full((2, 3), 2.0)))
    assert x.grad.numpy().tolist() == [[2.0] * 3] * 2
    assert x.grad.data.base is _ReshapeOfFresh.made[0]()        # kept, not copied


def test_leaf_gradients_that_are_views_of_shared_arrays_are_copied():
    """The caller's seed, an array a node saved, or one upstream gradient handed to two
    leaves (one of them through a reshape) must never become a leaf's .grad memory."""
    seed = np.ones((2, 3))
    a = ms.tensor(np.zeros(6), requires_grad=True)
    a.reshape(2, 3).backward(seed)        # Reshape's backward: seed.reshape(6)
    assert not np.shares_memory(a.grad.data, seed)

    x = ms.tensor(np.zeros(6), requires_grad=True)
    y = ms.tensor(np.zeros((2, 3)), requires_grad=True)
    (x.reshape(2, 3) + y).sum().backward()                     # Add hands one array to both
    assert not np.shares_memory(x.grad.data, y.grad.data)
    x.grad.data[0] = 7.0
    assert y.grad.numpy().tolist() == [[1.0] * 3] * 2

    class ReshapeSaved(ms.Function):
        @staticmethod
        def forward(ctx, v):
            ctx.saved = np.full(v.shape[0], 3.0)
            return v.copy()

        @staticmethod
        def backward(ctx, grad_out):
            return ctx.saved.reshape(grad_out.shape)       # a view of a saved array
    v = ms.tensor(np.zeros(4), requires_grad=True)
    out = ReshapeSaved.apply(v)
    node_saved = out._node.ctx.saved
    out.backward(np.ones(4), retain_graph=True)
    assert not np.shares_memory(v.grad.data, node_saved)
