"""Element-wise ops with NumPy broadcasting: arithmetic, comparisons, exp/log, activations.

Broadcasting in the forward pass means an input was (virtually) repeated along some
axes. Its gradient must then be *summed* over exactly those axes to get back to the
input's own shape; :func:`unbroadcast` does that for every binary op here.

Python numbers mixed with tensors take the tensor's dtype (``x * 2.0`` stays float32),
as in PyTorch.
"""
import numbers

import numpy as np

from .. import backend
from ..autograd import Function
from ..kernels.relu import relu as relu_kernel
from ..tensor import Tensor


def unbroadcast(grad, shape):
    """Sum ``grad`` down to ``shape``: undo the broadcasting of a forward pass.

    Example: x of shape (3, 1) + y of shape (4,) gives (3, 4); the gradient of x is
    ``grad.sum(axis=1, keepdims=True)`` and that of y is ``grad.sum(axis=0)``.
    """
    shape = tuple(shape)
    if tuple(grad.shape) == shape:
        return grad
    extra = grad.ndim - len(shape)
    if extra > 0:
        grad = grad.sum(axis=tuple(range(extra)))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    return grad


def _operand(value, like):
    """A Tensor for ``value``; Python numbers take the dtype and device of ``like``."""
    if isinstance(value, Tensor):
        return value
    xp = backend.array_module(like.data)
    if isinstance(value, (numbers.Number, np.generic)):
        dtype = like.dtype
        if like.dtype.kind in "iub" and isinstance(value, float):
            dtype = np.float32
        return Tensor(xp.asarray(value, dtype=dtype))
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        return Tensor(backend.to_device(value, like.device))
    return Tensor(xp.asarray(np.asarray(value, dtype=like.dtype)))


def _binary(fn, a, b):
    if not isinstance(a, Tensor):
        a = _operand(a, b)
    if not isinstance(b, Tensor):
        b = _operand(b, a)
    return fn.apply(a, b)


# ---------------------------------------------------------------------- arithmetic
class Add(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.shapes = (a.shape, b.shape)
        return a + b

    @staticmethod
    def backward(ctx, grad_out):
        sa, sb = ctx.shapes
        return unbroadcast(grad_out, sa), unbroadcast(grad_out, sb)


class Sub(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.shapes = (a.shape, b.shape)
        return a - b

    @staticmethod
    def backward(ctx, grad_out):
        sa, sb = ctx.shapes
        return unbroadcast(grad_out, sa), unbroadcast(-grad_out, sb)


class Mul(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a * b

    @staticmethod
    def backward(ctx, grad_out):
        a, b = ctx.saved_tensors
        ga = unbroadcast(grad_out * b, a.shape) if ctx.needs_input_grad[0] else None
        gb = unbroadcast(grad_out * a, b.shape) if ctx.needs_input_grad[1] else None
        return ga, gb


class Div(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a / b

    @staticmethod
    def backward(ctx, grad_out):
        a, b = ctx.saved_tensors
        ga = unbroadcast(grad_out / b, a.shape) if ctx.needs_input_grad[0] else None
        gb = unbroadcast(-grad_out * a / (b * b), b.shape) if ctx.needs_input_grad[1] else None
        return ga, gb


class Pow(Function):
    """``a ** b``; d/da = b a^(b-1), d/db = a^b log a (only needed when b is a tensor)."""

    @staticmethod
    def forward(ctx, a, b):
        out = a ** b
        ctx.save_for_backward(a, b, out)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        a, b, out = ctx.saved_tensors
        xp = backend.array_module(a)
        ga = gb = None
        if ctx.needs_input_grad[0]:
            ga = unbroadcast(grad_out * b * a ** (b - 1), a.shape)
        if ctx.needs_input_grad[1]:
            safe_log = xp.log(xp.where(a > 0, a, 1))
            gb = unbroadcast(grad_out * out * safe_log, b.shape)
        return ga, gb


class Neg(Function):
    @staticmethod
    def forward(ctx, a):
        return -a

    @staticmethod
    def backward(ctx, grad_out):
        return -grad_out


def add(a, b):
    return _binary(Add, a, b)


def sub(a, b):
    return _binary(Sub, a, b)


def mul(a, b):
    return _binary(Mul, a, b)


def div(a, b):
    return _binary(Div, a, b)


def pow(a, b):  # noqa: A001  (the PyTorch name)
    return _binary(Pow, a, b)


def neg(a):
    return Neg.apply(a)


# ---------------------------------------------------------------------- comparisons (no gradient)
def _compare(a, b, op):
    if not isinstance(a, Tensor):
        a = _operand(a, b)
    if not isinstance(b, Tensor):
        b = _operand(b, a)
    if a.device != b.device:
        raise RuntimeError(f"comparison: tensors on both '{a.device}' and '{b.device}'")
    return Tensor(op(a.data, b.data))


def eq(a, b):
    return _compare(a, b, lambda x, y: x == y)


def ne(a, b):
    return _compare(a, b, lambda x, y: x != y)


def lt(a, b):
    return _compare(a, b, lambda x, y: x < y)


def le(a, b):
    return _compare(a, b, lambda x, y: x <= y)


def gt(a, b):
    return _compare(a, b, lambda x, y: x > y)


def ge(a, b):
    return _compare(a, b, lambda x, y: x >= y)


# ---------------------------------------------------------------------- unary math
class Exp(Function):
    @staticmethod
    def forward(ctx, x):
        y = backend.array_module(x).exp(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad_out):
        (y,) = ctx.saved_tensors
        return grad_out * y


class Log(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return backend.array_module(x).log(x)

    @staticmethod
    def backward(ctx, grad_out):
        (x,) = ctx.saved_tensors
        return grad_out / x


class Sqrt(Function):
    @staticmethod
    def forward(ctx, x):
        y = backend.array_module(x).sqrt(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad_out):
        (y,) = ctx.saved_tensors
        return grad_out / (2 * y)


class Abs(Function):
    """|x|; the gradient at 0 is 0, as in PyTorch (sign(0) = 0)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return backend.array_module(x).abs(x)

    @staticmethod
    def backward(ctx, grad_out):
        (x,) = ctx.saved_tensors
        return grad_out * backend.array_module(x).sign(x)


class Clamp(Function):
    """``min(max(x, lo), hi)``; the gradient passes where lo <= x <= hi (PyTorch's rule)."""

    @staticmethod
    def forward(ctx, x, lo, hi):
        xp = backend.array_module(x)
        mask = xp.ones(x.shape, dtype=bool)
        out = x
        if lo is not None:
            mask &= x >= lo
            out = xp.maximum(out, xp.asarray(lo, dtype=x.dtype))
        if hi is not None:
            mask &= x <= hi
            out = xp.minimum(out, xp.asarray(hi, dtype=x.dtype))
        ctx.save_for_backward(mask)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        (mask,) = ctx.saved_tensors
        return grad_out * mask, None, None


class ReLU(Function):
    """max(x, 0); the gradient is 1 where x > 0 and 0 elsewhere (0 at x = 0, as PyTorch)."""

    @staticmethod
    def forward(ctx, x):
        out = relu_kernel(x)                    # max(x, 0), NumPy's fast layout
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        (out,) = ctx.saved_tensors
        return grad_out * (out > 0)


class Sigmoid(Function):
    """1 / (1 + e^-x), computed without overflow; d/dx = s (1 - s)."""

    @staticmethod
    def forward(ctx, x):
        xp = backend.array_module(x)
        e = xp.exp(-xp.abs(x))
        out = xp.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        (s,) = ctx.saved_tensors
        return grad_out * s * (1 - s)


class Tanh(Function):
    @staticmethod
    def forward(ctx, x):
        out = backend.array_module(x).tanh(x)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        (t,) = ctx.saved_tensors
        return grad_out * (1 - t * t)


class Where(Function):
    """``where(cond, a, b)``: a where cond is true, b elsewhere (cond gets no gradient)."""

    @staticmethod
    def forward(ctx, cond, a, b):
        xp = backend.array_module(a, b)
        ctx.save_for_backward(cond)
        ctx.shapes = (a.shape, b.shape)
        return xp.where(cond, a, b)

    @staticmethod
    def backward(ctx, grad_out):
        (cond,) = ctx.saved_tensors
        sa, sb = ctx.shapes
        zero = grad_out.dtype.type(0)
        xp = backend.array_module(grad_out)
        ga = unbroadcast(xp.where(cond, grad_out, zero), sa) if ctx.needs_input_grad[1] else None
        gb = unbroadcast(xp.where(cond, zero, grad_out), sb) if ctx.needs_input_grad[2] else None
        return None, ga, gb


def exp(x):
    return Exp.apply(x)


def log(x):
    return Log.apply(x)


def sqrt(x):
    return Sqrt.apply(x)


def abs(x):  # noqa: A001
    return Abs.apply(x)


def clamp(x, min=None, max=None):  # noqa: A002  (PyTorch's argument names)
    """Limit x to [min, max] (either may be None)."""
    if min is None and max is None:
        raise ValueError("clamp: at least one of min and max must be given")
    return Clamp.apply(x, min, max)


def relu(x):
    return ReLU.apply(x)


def sigmoid(x):
    return Sigmoid.apply(x)


def tanh(x):
    return Tanh.apply(x)


def where(condition, a, b):
    """Pick from ``a`` where ``condition`` holds, else from ``b`` (all broadcast together)."""
    if not isinstance(a, Tensor) and not isinstance(b, Tensor):
        raise TypeError("where: at least one of a and b must be a Tensor")
    if not isinstance(a, Tensor):
        a = _operand(a, b)
    if not isinstance(b, Tensor):
        b = _operand(b, a)
    cond = condition if isinstance(condition, Tensor) else _operand(condition, a)
    cond = Tensor(cond.data.astype(bool, copy=False))
    return Where.apply(cond, a, b)


# ---------------------------------------------------------------------- matmul
class MatMul(Function):
    """``a @ b`` with NumPy's rules (batched, broadcast); 1-d operands are promoted."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a @ b

    @staticmethod
    def backward(ctx, grad_out):
        a, b = ctx.saved_tensors
        xp = backend.array_module(a, b)
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        batch = np.broadcast_shapes(a2.shape[:-2], b2.shape[:-2])
        g = grad_out.reshape(batch + (a2.shape[-2], b2.shape[-1]))   # undo the 1-d promotion
        ga = gb = None
        if ctx.needs_input_grad[0]:
            ga = g @ xp.swapaxes(b2, -1, -2)
            ga = unbroadcast(ga, a2.shape).reshape(a.shape)
        if ctx.needs_input_grad[1]:
            gb = xp.swapaxes(a2, -1, -2) @ g
            gb = unbroadcast(gb, b2.shape).reshape(b.shape)
        return ga, gb


def matmul(a, b):
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: both arguments need at least 1 dimension, got shapes {a.shape} and {b.shape}")
    ka = a.shape[-1]
    kb = b.shape[0] if b.ndim == 1 else b.shape[-2]
    if ka != kb:
        raise ValueError(f"matmul: shapes {a.shape} and {b.shape} do not align "
                         f"({ka} columns of the first vs {kb} rows of the second)")
    return _binary(MatMul, a, b)


# ---------------------------------------------------------------------- dtype and device moves
class Cast(Function):
    """Change the dtype; the gradient is cast back to the input's dtype."""

    @staticmethod
    def forward(ctx, x, dtype):
        ctx.in_dtype = x.dtype
        return x.astype(dtype)

    @staticmethod
    def backward(ctx, grad_out):
        return grad_out.astype(ctx.in_dtype), None


class ToDevice(Function):
    """Copy to another device; the gradient is copied back."""

    @staticmethod
    def forward(ctx, x, device):
        ctx.in_device = backend.device_of(x)
        return backend.to_device(x, device)

    @staticmethod
    def backward(ctx, grad_out):
        return backend.to_device(grad_out, ctx.in_device), None


def to(x, device=None, dtype=None):
    """``x.to('cuda')``, ``x.to(dtype=minisegnet.float64)`` or ``x.to('cpu', 'float32')``.

    Returns ``x`` itself when nothing changes (as PyTorch does); otherwise a copy that
    stays in the graph, so gradients flow back across devices and dtypes.
    """
    if device is not None and not isinstance(device, str) and dtype is None:
        device, dtype = None, device          # x.to(float64)
    if isinstance(device, str) and device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        try:
            dtype, device = np.dtype(device), None   # x.to('float64')
        except TypeError:
            pass
    out = x
    if device is not None:
        device = backend.normalize_device(device)
        if device != x.device:
            out = ToDevice.apply(out, device)
    if dtype is not None and np.dtype(dtype) != out.dtype:
        out = Cast.apply(out, np.dtype(dtype))
    return out
