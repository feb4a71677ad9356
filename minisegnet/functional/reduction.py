"""Reductions: sum, mean, max / amax, min / amin, argmax, with ``dim`` and ``keepdim``.

The backward of a reduction has to put the reduced axes back before it can broadcast
the incoming gradient over them: a gradient of shape (N,) for ``x.sum(dim=1)`` of an
(N, C) input becomes (N, 1) and then broadcasts to (N, C).
"""
import collections

from .. import backend
from ..autograd import Function
from ..tensor import Tensor
from .shape import gather, normalize_dims


def _expand_back(grad, axes, keepdim, xp):
    """Re-insert the reduced axes (size 1) so that ``grad`` broadcasts over the input."""
    if not keepdim:
        grad = xp.expand_dims(grad, axes) if axes else grad
    return grad


class Sum(Function):
    @staticmethod
    def forward(ctx, x, axes, keepdim):
        ctx.meta = (x.shape, axes, keepdim)
        return x.sum(axis=axes, keepdims=keepdim)

    @staticmethod
    def backward(ctx, grad_out):
        shape, axes, keepdim = ctx.meta
        xp = backend.array_module(grad_out)
        g = _expand_back(grad_out, axes, keepdim, xp)
        return xp.broadcast_to(g, shape), None, None


class Mean(Function):
    @staticmethod
    def forward(ctx, x, axes, keepdim):
        ctx.meta = (x.shape, axes, keepdim)
        return x.mean(axis=axes, keepdims=keepdim)

    @staticmethod
    def backward(ctx, grad_out):
        shape, axes, keepdim = ctx.meta
        xp = backend.array_module(grad_out)
        count = 1
        for a in axes:
            count *= shape[a]
        g = _expand_back(grad_out, axes, keepdim, xp) / count
        return xp.broadcast_to(g, shape).astype(grad_out.dtype, copy=False), None, None


class Amax(Function):
    """Maximum over axes; ties share the gradient equally (as ``torch.amax``)."""

    @staticmethod
    def forward(ctx, x, axes, keepdim, sign):
        out = (x * sign).max(axis=axes, keepdims=True) * sign
        ctx.save_for_backward(x, out)
        ctx.meta = (axes, keepdim)
        return out if keepdim else out.squeeze(axis=axes)

    @staticmethod
    def backward(ctx, grad_out):
        x, out = ctx.saved_tensors
        axes, keepdim = ctx.meta
        xp = backend.array_module(x)
        mask = (x == out)
        count = mask.sum(axis=axes, keepdims=True)
        g = _expand_back(grad_out, axes, keepdim, xp)
        return (g * mask / count).astype(x.dtype, copy=False), None, None, None


def sum(x, dim=None, keepdim=False):  # noqa: A001
    """Sum over ``dim`` (an int, a tuple, or None for all)."""
    return Sum.apply(x, normalize_dims(dim, x.ndim, "sum"), keepdim)


def mean(x, dim=None, keepdim=False):
    if x.dtype.kind != "f":
        raise TypeError(f"mean: needs a floating point tensor, got dtype {x.dtype}")
    return Mean.apply(x, normalize_dims(dim, x.ndim, "mean"), keepdim)


def amax(x, dim=None, keepdim=False):
    """The maximum over ``dim``; ties split the gradient evenly."""
    return Amax.apply(x, normalize_dims(dim, x.ndim, "amax"), keepdim, 1)


def amin(x, dim=None, keepdim=False):
    return Amax.apply(x, normalize_dims(dim, x.ndim, "amin"), keepdim, -1)


MaxResult = collections.namedtuple("MaxResult", ["values", "indices"])


def argmax(x, dim=None, keepdim=False):
    """Index of the maximum (int64, no gradient); over the flattened tensor when ``dim`` is None."""
    if dim is None:
        return Tensor(x.data.argmax().astype("int64"))
    (axis,) = normalize_dims(dim, x.ndim, "argmax")
    idx = x.data.argmax(axis=axis)
    if keepdim:
        idx = backend.array_module(idx).expand_dims(idx, axis)
    return Tensor(idx.astype("int64"))


def argmin(x, dim=None, keepdim=False):
    if dim is None:
        return Tensor(x.data.argmin().astype("int64"))
    (axis,) = normalize_dims(dim, x.ndim, "argmin")
    idx = x.data.argmin(axis=axis)
    if keepdim:
        idx = backend.array_module(idx).expand_dims(idx, axis)
    return Tensor(idx.astype("int64"))


def _take_one(x, idx, axis, keepdim):
    """Values of x at ``idx`` along ``axis``, differentiable (the gradient goes to that one element)."""
    index = Tensor(backend.array_module(idx.data).expand_dims(idx.data, axis))
    values = gather(x, axis, index)
    return values if keepdim else values.squeeze(axis)


def max(x, dim=None, keepdim=False):  # noqa: A001
    """Like ``torch.max``: the overall maximum, or ``(values, indices)`` along ``dim``.

    Along a dim the gradient goes to the element at ``indices`` (the first maximum).
    """
    if dim is None:
        return amax(x)
    (axis,) = normalize_dims(dim, x.ndim, "max")
    idx = argmax(x, axis)
    return MaxResult(_take_one(x, idx, axis, keepdim), idx if not keepdim else argmax(x, axis, True))


def min(x, dim=None, keepdim=False):  # noqa: A001
    if dim is None:
        return amin(x)
    (axis,) = normalize_dims(dim, x.ndim, "min")
    idx = argmin(x, axis)
    return MaxResult(_take_one(x, idx, axis, keepdim), idx if not keepdim else argmin(x, axis, True))
