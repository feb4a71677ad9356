"""Comparing the student's raw results with the references, in the grader's process.

Values arrive from the student's process as NumPy arrays, numbers and lists (see
:mod:`.runner`); the references are computed here with the library, in float64. A wrong
answer raises :class:`~.question.CheckFailed` with a message that names what differed and,
when the wrong values equal a known mistake, which mistake it was.
"""
import math

import numpy as np

from ..tensor import Tensor, float64, no_grad, tensor
from .question import CheckFailed
from .runner import Unusable

RTOL, ATOL = 1e-6, 1e-9


def as_array(value, what):
    """The student's result as a float64 NumPy array."""
    if isinstance(value, Tensor):
        value = value.numpy()
    if value is None:
        raise CheckFailed(f"{what}: your code returned None (is the result assigned to the "
                          f"name used after the END marker, or returned?)")
    if isinstance(value, Unusable):
        raise CheckFailed(f"{what}: expected an array of numbers, got {value.what}")
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise CheckFailed(f"{what}: expected an array of numbers, got {type(value).__name__}") from None


def close(got, expected):
    return got.shape == expected.shape and bool(np.allclose(got, expected, rtol=RTOL, atol=ATOL))


def compare(got, expected, what, mistakes=()):
    """Fail unless ``got`` equals ``expected`` (float64, rtol 1e-6).

    ``mistakes`` is a list of ``(description, compute)``: when the wrong values equal
    ``compute()``, the message names that mistake.
    """
    got, expected = as_array(got, what), np.asarray(expected, dtype=np.float64)
    if got.shape != expected.shape:
        raise CheckFailed(f"{what}: expected shape {expected.shape}, got {got.shape}")
    if not np.all(np.isfinite(got)) and np.all(np.isfinite(expected)):
        raise CheckFailed(f"{what}: your result contains nan or inf where the reference is finite")
    if close(got, expected):
        return
    for description, compute in mistakes:
        try:
            alternative = np.asarray(compute(), dtype=np.float64)
        except Exception:        # a diagnosis that does not apply to these inputs
            continue
        if close(got, alternative):
            raise CheckFailed(f"{what}: wrong values; they are exactly what you get {description}")
    error = np.abs(got - expected)
    where = np.unravel_index(int(np.argmax(error)), error.shape) if error.ndim else ()
    index = f" at index {tuple(int(i) for i in where)}" if where else ""
    raise CheckFailed(f"{what}: wrong values (largest difference {float(error.max()):.3g}{index}: "
                      f"got {float(got[where]):.6g}, expected {float(expected[where]):.6g})")


def number(value, what):
    """The student's result as a Python float (a 0-d or one-element array is fine)."""
    if isinstance(value, Unusable):
        raise CheckFailed(f"{what}: expected a single number, got {value.what}")
    if value is None:
        raise CheckFailed(f"{what}: expected a single number, got None (is the result assigned "
                          f"to the name used after the END marker, or returned?)")
    try:
        return float(np.asarray(value, dtype=np.float64).reshape(()))
    except (TypeError, ValueError):
        shape = f" of shape {value.shape}" if hasattr(value, "shape") else ""
        raise CheckFailed(f"{what}: expected a single number, got {type(value).__name__}{shape}") from None


def t(array, requires_grad=False):
    """A float64 minisegnet tensor (a fresh copy) of ``array``, on the CPU."""
    return tensor(np.array(array, dtype=np.float64), dtype=float64, device="cpu",
                  requires_grad=requires_grad)


# ---------------------------------------------------------------------- modules
def randomize(module, rng):
    """Fill every parameter and buffer of ``module`` with random values (in place).

    Convolution weights get variance 1 / fan_in, so activations keep their scale through
    a few layers; BatchNorm's running variance and scale stay positive.
    """
    state = module.state_dict()
    for key, value in state.items():
        if value.dtype.kind != "f":
            continue
        if key.endswith(("running_var", "bn.weight")):
            state[key] = rng.uniform(0.5, 1.5, value.shape)
        elif value.ndim > 1:
            state[key] = rng.normal(0.0, 1.0 / math.sqrt(max(1, value[0].size)), value.shape)
        else:
            state[key] = rng.normal(0.0, 0.5, value.shape)
    module.load_state_dict(state)


def compare_modules(student, entry, reference_cls, kwargs, inputs, rng, train=False, grads=False,
                    mistakes=(), extra_args=()):
    """Run the student's ``entry(**kwargs)`` (in its process) and ``reference_cls(**kwargs)``
    (here) with the same random weights on ``inputs`` (one array, or a list of arrays),
    followed by ``extra_args`` (plain values such as a grid size, passed to both forwards
    as they are), and compare the outputs; with ``grads`` also the gradients of a random
    projection of the output with respect to every input and every parameter.

    ``mistakes``: ``(description, fn)`` with ``fn(reference, reference_input)`` computing
    what a common wrong forward would give.
    """
    reference = reference_cls(**kwargs).to("cpu", dtype=float64)
    randomize(reference, rng)
    reference.train(train)
    as_list = isinstance(inputs, (list, tuple))
    arrays = [np.asarray(a, dtype=np.float64) for a in (inputs if as_list else [inputs])]
    ref_in = [t(a, grads) for a in arrays]
    pack = (lambda ts: list(ts)) if as_list else (lambda ts: ts[0])
    if grads:
        expected = reference(pack(ref_in), *extra_args)
    else:
        with no_grad():
            expected = reference(pack(ref_in), *extra_args)
    upstream = rng.normal(size=expected.shape) if grads else None
    state = {k: np.asarray(v) for k, v in reference.state_dict().items()}
    got = student.module(entry, kwargs, state, arrays, as_list=as_list, train=train, grads=grads,
                         upstream=upstream, extra_args=extra_args)
    if "problem" in got:
        raise CheckFailed(got["problem"])

    def diagnose(fn):
        def compute():
            with no_grad():
                return fn(reference, pack([x.detach() for x in ref_in])).numpy()
        return compute
    compare(got["output"], expected.detach().numpy(), "output",
            [(d, diagnose(fn)) for d, fn in mistakes])
    if not grads:
        return
    expected.backward(t(upstream))
    if not got["connected"]:
        raise CheckFailed("the output is not connected to the input in the autograd graph: compute "
                          "with minisegnet ops on Tensors (not on .data or NumPy arrays)")
    for i, (s, r) in enumerate(zip(got["input_grads"], ref_in)):
        where = "the input" if len(arrays) == 1 else f"input {i}"
        if r.grad is not None:
            if s is None:
                raise CheckFailed(f"no gradient reached {where}: the output is not connected to it in "
                                  f"the autograd graph (was something computed on .data, .numpy() or "
                                  f"NumPy arrays?)")
            compare(s, r.grad.numpy(), f"gradient with respect to {where}")
    params = got["param_grads"]
    for name, p in reference.named_parameters():
        if p.grad is None:
            continue
        if params.get(name) is None:
            raise CheckFailed(f"no gradient reached parameter {name!r}: is that layer used in forward?")
        compare(params[name], p.grad.numpy(), f"gradient of {name!r}")
