"""``gradcheck``: compare an op's analytical gradients with central finite differences.

For an op ``y = fn(x1, x2, ...)`` and a fixed random upstream gradient ``g`` (same
shape as y), the scalar ``L = sum(g * y)`` has gradient ``dL/dx = J^T g``: exactly what
``backward`` computes. Finite differences estimate each entry independently:

    dL/dx[i]  ~=  ( L(x + eps e_i) - L(x - eps e_i) ) / (2 eps)

(error O(eps^2)). Everything runs in float64: in float32 the rounding error of
``L(x + eps e_i) - L(x - eps e_i)`` would swamp the difference itself.
"""
import numpy as np

from . import backend
from .tensor import Tensor, no_grad


class GradcheckError(AssertionError):
    """The analytical and numerical gradients disagree (the message says where)."""


def _as_f64_leaf(t):
    if t.dtype.kind != "f":
        return t
    return Tensor(t.data.astype(np.float64), requires_grad=t.requires_grad)


def gradcheck(fn, *inputs, eps=1e-6, atol=1e-5, rtol=1e-4, seed=0):
    """Check ``fn``'s backward against central differences for every input with requires_grad.

    Args:
        fn: a function of Tensors returning one Tensor.
        inputs: its arguments; floating Tensors with ``requires_grad=True`` are checked
            (they are converted to float64 first), anything else is passed through.
        eps, atol, rtol: step size and tolerances (``|num - ana| <= atol + rtol * |num|``).

    Returns True, or raises :class:`GradcheckError` naming the input, the element and
    both values of the first mismatch.
    """
    args = [(_as_f64_leaf(a) if isinstance(a, Tensor) else a) for a in inputs]
    checked = [i for i, a in enumerate(args) if isinstance(a, Tensor) and a.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input has requires_grad=True, nothing to check")
    out = fn(*args)
    if not isinstance(out, Tensor):
        raise TypeError(f"gradcheck: fn must return a Tensor, got {type(out).__name__}")
    xp = backend.array_module(out.data)
    rng = np.random.default_rng(seed)
    upstream = xp.asarray(rng.standard_normal(out.shape)).astype(np.float64)
    out.backward(Tensor(upstream))

    def objective():
        with no_grad():
            y = fn(*args)
        return float((y.data.astype(np.float64) * upstream).sum())

    for i in checked:
        x = args[i]
        analytical = backend.to_numpy(x.grad.data) if x.grad is not None else np.zeros(x.shape)
        flat = x.data.reshape(-1)          # a view: writing it perturbs x in place
        for j in range(flat.size):
            old = float(flat[j])
            flat[j] = old + eps
            plus = objective()
            flat[j] = old - eps
            minus = objective()
            flat[j] = old
            numerical = (plus - minus) / (2 * eps)
            ana = float(analytical.reshape(-1)[j])
            if abs(numerical - ana) > atol + rtol * abs(numerical):
                where = np.unravel_index(j, x.shape) if x.ndim else ()
                raise GradcheckError(
                    f"gradcheck failed for input {i} (shape {x.shape}) at element {tuple(int(k) for k in where)}: "
                    f"numerical gradient {numerical:.8g} vs analytical (backward) {ana:.8g} "
                    f"(difference {abs(numerical - ana):.3g}, allowed {atol + rtol * abs(numerical):.3g}). "
                    "Check the backward formula for this input.")
    return True
