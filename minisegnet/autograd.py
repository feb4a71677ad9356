"""``Function``: how one differentiable op is written, and how it joins the graph.

Every op in :mod:`minisegnet.functional` is a subclass of :class:`Function` with two
static methods side by side, the way ``torch.autograd.Function`` reads::

    class Exp(Function):
        @staticmethod
        def forward(ctx, x):              # x: a raw array (numpy or cupy)
            y = backend.array_module(x).exp(x)
            ctx.save_for_backward(y)      # keep what backward needs
            return y

        @staticmethod
        def backward(ctx, grad_out):      # grad_out: d loss / d y, same shape as y
            (y,) = ctx.saved_tensors
            return grad_out * y           # d loss / d x  (chain rule: dy/dx = exp(x) = y)

    def exp(x):
        return Exp.apply(x)

One difference from PyTorch, on purpose: ``forward`` and ``backward`` see and return
*raw arrays*, not Tensors. An op is then plain array code (what the kernels in
:mod:`minisegnet.kernels` are), and the graph bookkeeping lives only in
:meth:`Function.apply`. (It also means there are no gradients of gradients.)

``backward`` returns one gradient per positional argument of ``forward``, in order;
``None`` for an argument that is not a tensor or needs no gradient.
``ctx.needs_input_grad[i]`` tells whether argument ``i`` needs one, so that an op can
skip work nobody will use.
"""
from . import backend
from .tensor import Tensor, is_grad_enabled


class Context:
    """Scratch space an op's forward fills for its backward (``ctx``)."""

    def __init__(self, needs_input_grad):
        self.needs_input_grad = needs_input_grad
        self.saved_tensors = ()

    def save_for_backward(self, *arrays):
        """Keep arrays that ``backward`` will need; read them back from ``ctx.saved_tensors``."""
        self.saved_tensors = arrays


class Node:
    """One recorded op in the graph: which Function, its context and its input tensors."""

    __slots__ = ("fn", "ctx", "inputs")

    def __init__(self, fn, ctx, inputs):
        self.fn = fn
        self.ctx = ctx
        self.inputs = inputs


class Function:
    """Base class of differentiable ops; see the module docstring for a complete example.

    Subclasses define ``forward(ctx, *args)`` (arrays in, one array out) and
    ``backward(ctx, grad_out)`` (one gradient per positional ``forward`` argument), and
    are called through ``apply``, which unwraps Tensors, checks they share one device,
    runs forward and, when a gradient is needed, records a :class:`Node`.
    """

    @staticmethod
    def forward(ctx, *args, **kwargs):
        raise NotImplementedError

    @staticmethod
    def backward(ctx, grad_out):
        raise NotImplementedError

    @classmethod
    def apply(cls, *args, **kwargs):
        tensors = [a for a in args if isinstance(a, Tensor)]
        check_same_device(cls.__name__, tensors)
        needs = tuple(isinstance(a, Tensor) and a.requires_grad for a in args)
        record = is_grad_enabled() and any(needs)
        ctx = Context(needs if record else tuple(False for _ in args))
        raw = [a.data if isinstance(a, Tensor) else a for a in args]
        out = cls.forward(ctx, *raw, **kwargs)
        result = Tensor(out)
        if record and result.dtype.kind == "f":
            result.requires_grad = True
            result._node = Node(cls, ctx, tuple(a if isinstance(a, Tensor) else None for a in args))
        return result


def check_same_device(op_name, tensors):
    """Raise a clear error when the tensors of one op live on different devices."""
    devices = {backend.device_of(t.data) for t in tensors}
    if len(devices) > 1:
        names = ", ".join(f"{t.shape} on {t.device}" for t in tensors)
        raise RuntimeError(f"{op_name}: expected all tensors on the same device, but found "
                           f"tensors on both 'cpu' and 'cuda' ({names}); move them with .to(device)")
