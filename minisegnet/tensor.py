"""The Tensor: an array plus the graph that made it, and reverse-mode autodiff.

A :class:`Tensor` wraps one backend array (``.data``: NumPy on the CPU, CuPy on the
GPU). When it is the output of an op and any input required a gradient, it also
remembers the *node* that produced it (``._node``): which :class:`~minisegnet.autograd.Function`
ran, its context (what forward saved for backward) and its input tensors. Those nodes
form a directed acyclic graph from the leaves (parameters, inputs) to the loss.

``loss.backward()`` walks that graph once, from the loss back to the leaves:

1. order the nodes topologically (every node after all nodes that consume its output),
   iteratively, so that a chain of 10,000 ops does not hit Python's recursion limit;
2. seed ``d loss / d loss = 1`` and visit nodes in that order, calling each Function's
   ``backward(ctx, grad_out)`` and adding the returned gradients into its inputs'
   running sums (a tensor used twice gets the sum of both paths: the chain rule);
3. add the totals into ``.grad`` of the leaves that ``requires_grad``, and free the graph.

The op methods (``x + y``, ``x.relu()``, ``x.sum(dim=1)``, ...) are attached to Tensor by
:mod:`minisegnet.functional`, which sits one layer above this file.
"""
import contextlib
import numbers
import threading

import numpy as np

from . import backend
from .random import generator as _generator

float32 = np.dtype("float32")
float64 = np.dtype("float64")
float16 = np.dtype("float16")
int64 = np.dtype("int64")
int32 = np.dtype("int32")
uint8 = np.dtype("uint8")
bool_ = np.dtype("bool")


class _GradMode(threading.local):
    enabled = True


_grad_mode = _GradMode()


def is_grad_enabled():
    """True unless inside ``with no_grad():``."""
    return _grad_mode.enabled


@contextlib.contextmanager
def _set_grad_enabled(mode):
    previous = _grad_mode.enabled
    _grad_mode.enabled = mode
    try:
        yield
    finally:
        _grad_mode.enabled = previous


def no_grad():
    """Context manager (and decorator) in which ops record no graph, like ``torch.no_grad``.

    Use it for evaluation and for in-place parameter updates in optimizers.
    """
    return _set_grad_enabled(False)


def enable_grad():
    """Context manager that turns graph recording back on inside ``no_grad``."""
    return _set_grad_enabled(True)


def _infer_array(data, dtype, device):
    """Turn ``data`` into a backend array following ``torch.tensor``'s dtype rules.

    Python floats (and lists of them) become float32, Python ints int64, bools bool;
    a NumPy/CuPy array keeps its dtype unless ``dtype`` is given.
    """
    if isinstance(data, Tensor):
        data = data.data
    xp = backend.module_for(device)
    if hasattr(data, "dtype") and hasattr(data, "shape"):   # numpy / cupy array or scalar
        arr = backend.to_device(data if backend.is_cupy_array(data) else np.asarray(data), device)
        arr = arr.copy()
    else:
        arr = np.asarray(data)
        if dtype is None:
            if arr.dtype.kind == "f":
                arr = arr.astype(np.float32)
            elif arr.dtype.kind in "iu":
                arr = arr.astype(np.int64)
            elif arr.dtype.kind == "c":
                arr = arr.astype(np.complex64)
            elif arr.dtype.kind not in "b":
                raise TypeError(f"tensor(): cannot make a tensor from {type(data).__name__} "
                                f"(numpy inferred dtype {arr.dtype})")
        arr = xp.asarray(arr)
    if dtype is not None:
        arr = arr.astype(np.dtype(dtype), copy=False)
    return arr


def tensor(data, dtype=None, device=None, requires_grad=False):
    """Make a new leaf tensor holding a copy of ``data``, like ``torch.tensor``.

    Args:
        data: a Python number or (nested) list, a NumPy/CuPy array, or a Tensor.
        dtype: e.g. ``minisegnet.float64``; by default NumPy arrays keep their dtype,
            Python floats become float32 and Python ints int64 (as in PyTorch).
        device: ``'cpu'`` or ``'cuda'``; by default ``$MINISEGNET_DEVICE`` or cpu.
        requires_grad: record operations on it so that ``backward`` fills ``.grad``.
    """
    device = backend.normalize_device(device)
    return Tensor(_infer_array(data, dtype, device), requires_grad=requires_grad)


class Tensor:
    """An n-dimensional array that can record the operations applied to it.

    Attributes:
        data: the backend array (``numpy.ndarray`` or ``cupy.ndarray``).
        grad: a Tensor of the same shape, filled by ``backward()`` (None before).
        requires_grad: whether ops on this tensor are recorded for backward.

    Build tensors with :func:`minisegnet.tensor`; the constructor wraps an existing array
    without copying it.
    """

    __array_priority__ = 1000  # so that ``ndarray + Tensor`` calls Tensor.__radd__

    def __init__(self, data, requires_grad=False):
        if isinstance(data, Tensor):
            data = data.data
        if not (hasattr(data, "dtype") and hasattr(data, "shape")):
            data = np.asarray(data)
        elif isinstance(data, np.generic):
            data = np.asarray(data)
        self.data = data
        self.grad = None
        self._node = None
        self.requires_grad = bool(requires_grad)
        if self.requires_grad and self.data.dtype.kind != "f":
            raise TypeError(f"only floating point tensors can require gradients, got dtype {self.data.dtype}")

    # ------------------------------------------------------------------ properties
    @property
    def shape(self):
        return tuple(self.data.shape)

    def size(self, dim=None):
        """The shape (``x.size()``) or one of its entries (``x.size(1)``), as in PyTorch."""
        return self.shape if dim is None else self.shape[dim]

    @property
    def ndim(self):
        return self.data.ndim

    def dim(self):
        return self.data.ndim

    def numel(self):
        return int(self.data.size)

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def device(self):
        return backend.device_of(self.data)

    @property
    def is_leaf(self):
        return self._node is None

    @property
    def T(self):
        return self.permute(*reversed(range(self.ndim)))

    # ------------------------------------------------------------------ conversion
    def numpy(self):
        """A host (NumPy) copy of the data; never part of the graph."""
        out = backend.to_numpy(self.data)
        return out.copy() if out is self.data else out

    def item(self):
        """The single value of a one-element tensor as a Python number."""
        if self.data.size != 1:
            raise ValueError(f"item(): only one-element tensors can be converted, got shape {self.shape}")
        return self.data.reshape(()).item()

    def tolist(self):
        return backend.to_numpy(self.data).tolist()

    def detach(self):
        """A tensor sharing the data but cut out of the graph (``requires_grad=False``)."""
        return Tensor(self.data)

    def __len__(self):
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    def __bool__(self):
        if self.data.size != 1:
            raise RuntimeError(f"the truth value of a tensor with shape {self.shape} is ambiguous")
        return bool(self.item())

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __index__(self):
        if self.data.dtype.kind not in "iu" or self.data.size != 1:
            raise TypeError("only integer tensors of a single element can be used as an index")
        return int(self.item())

    def __array__(self, dtype=None, copy=None):
        out = backend.to_numpy(self.data)
        return out.astype(dtype) if dtype is not None else out

    def __repr__(self):
        body = np.array2string(backend.to_numpy(self.data), precision=4, separator=", ",
                               prefix="tensor(", threshold=200)
        extras = []
        if self.dtype not in (float32, int64, bool_):
            extras.append(f"dtype={self.dtype}")
        if self.device != "cpu":
            extras.append(f"device='{self.device}'")
        if self._node is not None:
            extras.append(f"grad_fn=<{self._node.fn.__name__}Backward>")
        elif self.requires_grad:
            extras.append("requires_grad=True")
        return "tensor(" + body + "".join(", " + e for e in extras) + ")"

    __hash__ = object.__hash__

    # ------------------------------------------------------------------ autograd
    def requires_grad_(self, requires_grad=True):
        if requires_grad and self.data.dtype.kind != "f":
            raise TypeError(f"only floating point tensors can require gradients, got dtype {self.data.dtype}")
        self.requires_grad = bool(requires_grad)
        return self

    def zero_grad_(self):
        self.grad = None

    def backward(self, gradient=None, retain_graph=False):
        """Compute d(self)/d(leaf) for every leaf that requires grad, adding into ``leaf.grad``.

        Args:
            gradient: d(loss)/d(self), same shape as self; may be omitted only for a
                single-element tensor (it is then 1).
            retain_graph: keep the graph so that backward can run through it again.
        """
        if not self.requires_grad:
            raise RuntimeError("backward(): this tensor does not require grad and has no graph "
                               "(did you compute it under no_grad(), or from tensors without "
                               "requires_grad=True?)")
        xp = backend.array_module(self.data)
        if gradient is None:
            if self.data.size != 1:
                raise RuntimeError(f"backward(): gradient must be given for a non-scalar output "
                                   f"(shape {self.shape}); pass gradient=ones_like(output) to sum")
            seed = xp.ones_like(self.data)
        else:
            seed = gradient.data if isinstance(gradient, Tensor) else xp.asarray(gradient)
            if tuple(seed.shape) != self.shape:
                raise ValueError(f"backward(): gradient has shape {tuple(seed.shape)} but the "
                                 f"output has shape {self.shape}")
            seed = seed.astype(self.dtype, copy=False)
        run_backward(self, seed, retain_graph=retain_graph)


def _topological_order(root):
    """Tensors with a node, each listed before every tensor its node reads (iterative DFS)."""
    order, visited = [], set()
    stack = [(root, False)]
    while stack:
        t, expanded = stack.pop()
        if expanded:
            order.append(t)
            continue
        if id(t) in visited or t._node is None:
            continue
        visited.add(id(t))
        stack.append((t, True))
        for parent in t._node.inputs:
            if parent is not None and parent._node is not None and id(parent) not in visited:
                stack.append((parent, False))
    order.reverse()   # root first: a tensor comes after everything that consumes it
    return order


def run_backward(root, seed, retain_graph=False):
    """The backward pass behind ``Tensor.backward`` (see the module docstring)."""
    grads = {id(root): seed}
    handed_out = set()       # ids of arrays already stored as some leaf's .grad
    order = _topological_order(root)
    for t in order:
        node = t._node
        grad_out = grads.pop(id(t), None)
        if grad_out is None:
            continue
        if node.ctx is None:
            raise RuntimeError("backward(): this graph was already freed by an earlier backward(); "
                               "pass retain_graph=True to the first call to go through it twice")
        in_grads = node.fn.backward(node.ctx, grad_out)
        if not isinstance(in_grads, tuple):
            in_grads = (in_grads,)
        if len(in_grads) < len(node.inputs):
            raise RuntimeError(f"{node.fn.__name__}.backward returned {len(in_grads)} gradients "
                               f"for {len(node.inputs)} inputs")
        for inp, g in zip(node.inputs, in_grads):
            if inp is None or g is None or not inp.requires_grad:
                continue
            if tuple(g.shape) != inp.shape:
                raise RuntimeError(f"{node.fn.__name__}.backward returned a gradient of shape "
                                   f"{tuple(g.shape)} for an input of shape {inp.shape}")
            if inp._node is None:       # a leaf: accumulate into .grad
                g = g.astype(inp.dtype, copy=False)
                if inp.grad is None:
                    # A leaf's .grad must be its own writable array: copy views (broadcasts,
                    # slices) and arrays already given to another leaf; keep fresh ones, and
                    # reshapes of fresh ones that nothing else sees.
                    if id(g) in handed_out or not (backend.owns_writable_memory(g)
                                                   or backend.sole_view_of_fresh_array(g)):
                        g = g.copy()
                    handed_out.add(id(g))
                    inp.grad = Tensor(g)
                else:
                    inp.grad = Tensor(inp.grad.data + g)
            else:
                key = id(inp)
                grads[key] = g if key not in grads else grads[key] + g
        if not retain_graph:
            node.ctx = None
    if not retain_graph:
        for t in order:
            t._node.inputs = ()


# ---------------------------------------------------------------------- factories
def _dtype_or_default(dtype):
    return float32 if dtype is None else np.dtype(dtype)


def _shape_arg(shape):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    for s in shape:
        if not isinstance(s, numbers.Integral) or s < 0:
            raise ValueError(f"shape entries must be non-negative ints, got {shape}")
    return tuple(int(s) for s in shape)


def _make(array, device, requires_grad):
    device = backend.normalize_device(device)
    return Tensor(backend.to_device(array, device), requires_grad=requires_grad)


def zeros(*shape, dtype=None, device=None, requires_grad=False):
    """A tensor of zeros: ``zeros(2, 3)`` or ``zeros((2, 3))``; float32 unless ``dtype``."""
    xp = backend.module_for(device)
    return Tensor(xp.zeros(_shape_arg(shape), dtype=_dtype_or_default(dtype)), requires_grad)


def ones(*shape, dtype=None, device=None, requires_grad=False):
    xp = backend.module_for(device)
    return Tensor(xp.ones(_shape_arg(shape), dtype=_dtype_or_default(dtype)), requires_grad)


def full(shape, fill_value, dtype=None, device=None, requires_grad=False):
    xp = backend.module_for(device)
    return Tensor(xp.full(_shape_arg((shape,)), fill_value, dtype=_dtype_or_default(dtype)), requires_grad)


def zeros_like(t, dtype=None):
    return Tensor(backend.array_module(t.data).zeros(t.shape, dtype=dtype or t.dtype))


def ones_like(t, dtype=None):
    return Tensor(backend.array_module(t.data).ones(t.shape, dtype=dtype or t.dtype))


def arange(start, end=None, step=1, dtype=None, device=None):
    """Like ``torch.arange``: int64 for int arguments, float32 otherwise."""
    if end is None:
        start, end = 0, start
    if dtype is None:
        ints = all(isinstance(v, numbers.Integral) for v in (start, end, step))
        dtype = int64 if ints else float32
    xp = backend.module_for(device)
    return Tensor(xp.arange(start, end, step, dtype=np.dtype(dtype)))


def randn(*shape, dtype=None, device=None, requires_grad=False):
    """Standard normal samples from the global generator (see :mod:`minisegnet.random`)."""
    a = _generator().standard_normal(_shape_arg(shape)).astype(_dtype_or_default(dtype))
    return _make(a, device, requires_grad)


def rand(*shape, dtype=None, device=None, requires_grad=False):
    """Uniform samples in [0, 1) from the global generator."""
    a = _generator().random(_shape_arg(shape)).astype(_dtype_or_default(dtype))
    return _make(a, device, requires_grad)


def randint(low, high, size, dtype=None, device=None):
    """Integers uniform in [low, high), int64 by default."""
    a = _generator().integers(low, high, size=_shape_arg((size,))).astype(dtype or int64)
    return _make(a, device, False)


def from_numpy(array):
    """Wrap a NumPy array without copying (like ``torch.from_numpy``)."""
    return Tensor(np.asarray(array))
