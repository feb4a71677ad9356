"""Ops that move values around without arithmetic: reshape, permute, index, cat, pad.

Their backward passes are the same moves undone: a reshape's gradient is reshaped
back, a permutation's is permuted by the inverse permutation, an indexing op's
gradient is scattered (added) back into zeros of the input's shape.
"""
import numbers

import numpy as np

from .. import backend
from ..autograd import Function, check_same_device
from ..tensor import Tensor
from .elementwise import unbroadcast


def normalize_dims(dim, ndim, op="reduction"):
    """``dim`` (None, int or tuple, negatives allowed) as a sorted tuple of axes."""
    if dim is None:
        return tuple(range(ndim))
    dims = (dim,) if isinstance(dim, int) else tuple(dim)
    out = []
    for d in dims:
        if not isinstance(d, int) or not -max(ndim, 1) <= d < max(ndim, 1):
            raise IndexError(f"{op}: dim {d} is out of range for a tensor with {ndim} dimensions")
        out.append(d % max(ndim, 1))
    return tuple(sorted(set(out)))


class Reshape(Function):
    @staticmethod
    def forward(ctx, x, shape):
        ctx.in_shape = x.shape
        return x.reshape(shape)

    @staticmethod
    def backward(ctx, grad_out):
        return grad_out.reshape(ctx.in_shape), None


def _resolve_shape(x, shape):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    shape = tuple(int(s) for s in shape)
    known = 1
    for s in shape:
        if s != -1:
            known *= s
    if shape.count(-1) > 1 or (shape.count(-1) == 0 and known != x.numel()) or \
            (shape.count(-1) == 1 and (known == 0 or x.numel() % known)):
        raise ValueError(f"reshape: cannot view a tensor of shape {x.shape} ({x.numel()} elements) "
                         f"as shape {shape}")
    return shape


def reshape(x, *shape):
    """The same values in a new shape (one entry may be -1: inferred)."""
    return Reshape.apply(x, _resolve_shape(x, shape))


view = reshape


def flatten(x, start_dim=0, end_dim=-1):
    """Merge dims ``start_dim..end_dim`` into one: (N, C, H, W) -> (N, C*H*W) with start_dim=1."""
    if x.ndim == 0:
        return reshape(x, 1)
    start, end = (d % x.ndim for d in (start_dim, end_dim))
    shape = x.shape[:start] + (-1,) + x.shape[end + 1:]
    if x.numel() == 0:
        merged = 1
        for s in x.shape[start:end + 1]:
            merged *= s
        shape = x.shape[:start] + (merged,) + x.shape[end + 1:]
    return reshape(x, shape)


class Permute(Function):
    @staticmethod
    def forward(ctx, x, dims):
        ctx.dims = dims
        return x.transpose(dims)

    @staticmethod
    def backward(ctx, grad_out):
        inverse = [0] * len(ctx.dims)
        for i, d in enumerate(ctx.dims):
            inverse[d] = i
        return grad_out.transpose(inverse), None


def permute(x, *dims):
    """Reorder the axes: ``x.permute(0, 2, 3, 1)`` turns NCHW into NHWC."""
    if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
        dims = tuple(dims[0])
    if sorted(d % max(x.ndim, 1) for d in dims) != list(range(x.ndim)):
        raise ValueError(f"permute: {dims} is not a permutation of the {x.ndim} dims of shape {x.shape}")
    return Permute.apply(x, tuple(d % x.ndim for d in dims))


def transpose(x, dim0, dim1):
    """Swap two axes."""
    dims = list(range(x.ndim))
    a, b = normalize_dims(dim0, x.ndim, "transpose")[0], normalize_dims(dim1, x.ndim, "transpose")[0]
    dims[a], dims[b] = dims[b], dims[a]
    return Permute.apply(x, tuple(dims))


def unsqueeze(x, dim):
    """Insert an axis of size 1 at ``dim`` (negative counts from the end of the result)."""
    if not -x.ndim - 1 <= dim <= x.ndim:
        raise IndexError(f"unsqueeze: dim {dim} out of range for a tensor with {x.ndim} dims")
    dim = dim % (x.ndim + 1)
    return reshape(x, x.shape[:dim] + (1,) + x.shape[dim:])


def squeeze(x, dim=None):
    """Remove axes of size 1 (all of them, or only ``dim`` if it has size 1)."""
    if dim is None:
        return reshape(x, tuple(s for s in x.shape if s != 1))
    dims = normalize_dims(dim, x.ndim, "squeeze")
    return reshape(x, tuple(s for i, s in enumerate(x.shape) if not (i in dims and s == 1)))


class Expand(Function):
    @staticmethod
    def forward(ctx, x, shape):
        ctx.in_shape = x.shape
        return backend.array_module(x).broadcast_to(x, shape)

    @staticmethod
    def backward(ctx, grad_out):
        return unbroadcast(grad_out, ctx.in_shape), None


def expand(x, *shape):
    """Broadcast to a larger shape without copying (-1 keeps a dim)."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    lead = len(shape) - x.ndim
    full = tuple(x.shape[i - lead] if s == -1 else s for i, s in enumerate(shape))
    return Expand.apply(x, full)


# ---------------------------------------------------------------------- indexing
def _index_to_raw(index, device):
    """Replace Tensors inside an index by their arrays (on the indexed tensor's device)."""
    if isinstance(index, tuple):
        return tuple(_index_to_raw(i, device) for i in index)
    if isinstance(index, Tensor):
        return backend.to_device(index.data, device)
    if isinstance(index, list):
        return backend.to_device(np.asarray(index), device) if device != "cpu" else index
    if hasattr(index, "shape") and hasattr(index, "dtype"):
        return backend.to_device(index, device)
    return index


class GetItem(Function):
    """``x[index]``; backward adds the gradient into the selected places (repeats add up)."""

    @staticmethod
    def forward(ctx, x, index):
        ctx.in_shape, ctx.index = x.shape, index
        return x[index]

    @staticmethod
    def backward(ctx, grad_out):
        xp = backend.array_module(grad_out)
        grad = xp.zeros(ctx.in_shape, dtype=grad_out.dtype)
        if _is_basic(ctx.index):
            grad[ctx.index] += grad_out     # views never repeat an element
        else:
            xp.add.at(grad, ctx.index, grad_out)   # advanced index: may select an element twice
        return grad, None


def _is_basic(index):
    items = index if isinstance(index, tuple) else (index,)
    return all(i is None or i is Ellipsis or isinstance(i, (slice, numbers.Integral)) for i in items)


def getitem(x, index):
    raw = _index_to_raw(index, x.device)
    items = raw if isinstance(raw, tuple) else (raw,)
    for i in items:
        if hasattr(i, "dtype") and i.dtype.kind == "f":
            raise IndexError(f"index arrays must be integer or boolean, got dtype {i.dtype}")
    return GetItem.apply(x, raw)


class Gather(Function):
    """``out[i][j] = x[i][index[i][j]]`` along ``dim`` (``torch.gather``)."""

    @staticmethod
    def forward(ctx, x, dim, index):
        xp = backend.array_module(x)
        ctx.meta = (x.shape, dim, index)
        return xp.take_along_axis(x, index, axis=dim)

    @staticmethod
    def backward(ctx, grad_out):
        shape, dim, index = ctx.meta
        xp = backend.array_module(grad_out)
        grad = xp.zeros(shape, dtype=grad_out.dtype)
        # where[d] = the position along axis d, shaped to broadcast (an open grid), except
        # along ``dim``, where it is the index: grad[where] is the element each output came from
        where = [xp.arange(n).reshape([-1 if d == k else 1 for k in range(len(shape))])
                 for d, n in enumerate(index.shape)]
        where[dim] = index
        if index.shape[dim] == 1:
            grad[tuple(where)] = grad_out       # one index per row: no repeats
        else:
            xp.add.at(grad, tuple(where), grad_out)   # repeated indices add up
        return grad, None, None


def gather(x, dim, index):
    (axis,) = normalize_dims(dim, x.ndim, "gather")
    raw = index.data if isinstance(index, Tensor) else index
    if raw.ndim != x.ndim:
        raise ValueError(f"gather: index has {raw.ndim} dims but the input has {x.ndim} (shape {x.shape})")
    return Gather.apply(x, axis, backend.to_device(raw.astype("int64", copy=False), x.device))


# ---------------------------------------------------------------------- joining
class Cat(Function):
    @staticmethod
    def forward(ctx, dim, *arrays):
        xp = backend.array_module(*arrays)
        ctx.meta = (dim, [a.shape[dim] for a in arrays])
        return xp.concatenate(arrays, axis=dim)

    @staticmethod
    def backward(ctx, grad_out):
        dim, sizes = ctx.meta
        xp = backend.array_module(grad_out)
        bounds = np.cumsum(sizes)[:-1].tolist()     # sizes are host ints: no device round trip
        return (None,) + tuple(xp.split(grad_out, bounds, axis=dim))


def cat(tensors, dim=0):
    """Join tensors along an existing axis, e.g. ``cat([a, b], dim=1)`` stacks channels."""
    tensors = list(tensors)
    if not tensors:
        raise ValueError("cat: expected a non-empty list of tensors")
    ref = tensors[0]
    (axis,) = normalize_dims(dim, ref.ndim, "cat")
    for i, t in enumerate(tensors):
        if not isinstance(t, Tensor):
            raise TypeError(f"cat: element {i} is a {type(t).__name__}, not a Tensor")
        if t.ndim != ref.ndim or any(a != b for k, (a, b) in enumerate(zip(t.shape, ref.shape)) if k != axis):
            raise ValueError(f"cat: tensor {i} has shape {t.shape}, which does not match tensor 0's "
                             f"shape {ref.shape} outside dim {axis}")
    check_same_device("cat", tensors)
    return Cat.apply(axis, *tensors)


def stack(tensors, dim=0):
    """Join tensors of equal shape along a new axis ``dim``."""
    tensors = list(tensors)
    if not tensors:
        raise ValueError("stack: expected a non-empty list of tensors")
    for i, t in enumerate(tensors):
        if t.shape != tensors[0].shape:
            raise ValueError(f"stack: tensor {i} has shape {t.shape} but tensor 0 has {tensors[0].shape}")
    return cat([unsqueeze(t, dim) for t in tensors], dim=dim)


from .padding import Pad, pad  # noqa: E402,F401  F.pad and its modes live in functional/padding.py
