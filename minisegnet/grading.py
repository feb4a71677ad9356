"""The autograder behind ``minisegnet grade``: checks the exercises against the library.

Every exercise in ``exercises/`` is a small Python file with one marked region to fill
in::

    # ---- YOUR CODE BEGINS ----
    raise NotImplementedError("q2_iou: ...")
    # ---- YOUR CODE ENDS ----

A question is a list of named *checks*. Each check builds random inputs (float64, a
few shapes, odd sizes among them), runs the student's code and the library's own
implementation of the same thing (``metrics.iou``, ``F.conv2d``, ``F.interpolate``,
``models.heads.ASPPHead``, ...) on them, and compares. Modules are compared with the
*same weights*: the reference's state dict, randomised, is loaded into the student's
module. A check is worth one point. A failed check reports what went wrong and a hint
that points at the idea without giving the code; when the wrong values match a common
mistake (branches in the wrong order, ``align_corners`` flipped, ...) it says so.

Student code runs in its own Python process (``python -c ...`` running
:func:`_worker_main`), so code that loops forever is stopped after ``timeout`` seconds,
code that prints cannot garble the report, and code that crashes the interpreter
costs only its own question. The in-process mode (``isolate=False``) is faster and is
what the tests and notebooks use where no infinite loop is expected; there a time limit
is still enforced with ``SIGALRM`` where the platform has it.

Use from the command line (exit code 0 only at full marks)::

    minisegnet grade                          # every question in exercises/
    minisegnet grade exercises/q2_iou.py --json grades.json

or from a notebook: ``from minisegnet.grading import check; check("q2")``.
"""
import argparse
import contextlib
import dataclasses
import importlib.util
import io
import json
import math
import os
import pathlib
import signal
import subprocess
import sys
import tempfile
import threading
import traceback
import warnings

import numpy as np

from . import functional as F
from . import metrics
from . import random as ms_random
from .kernels import pooling as pooling_kernels
from .models import heads
from .tensor import Tensor, float64, no_grad, tensor

__all__ = ["BEGIN_MARK", "END_MARK", "DEFAULT_TIMEOUT", "QUESTIONS", "Question", "Check", "Result",
           "CheckFailed", "find_question", "find_exercises", "grade_file", "grade", "format_result",
           "report", "to_json", "check", "add_arguments", "cli", "main"]

BEGIN_MARK = "# ---- YOUR CODE BEGINS ----"
END_MARK = "# ---- YOUR CODE ENDS ----"
DEFAULT_TIMEOUT = 20.0
RTOL, ATOL = 1e-6, 1e-9


# ====================================================================== questions and results
class CheckFailed(AssertionError):
    """A check found a wrong answer; the message says what differed."""


class _TimeLimit(BaseException):
    """Raised inside student code by the in-process alarm (a BaseException, so that a
    student's ``except Exception`` cannot swallow it)."""


@dataclasses.dataclass
class Check:
    """One named check of a question: ``run(student_module, rng)`` raises
    :class:`CheckFailed` (or anything else) on a wrong answer. ``hint`` is shown on failure."""
    name: str
    run: object
    hint: str
    points: int = 1


@dataclasses.dataclass
class Question:
    """An exercise: its file is ``exercises/<name>.py`` and must define every name in ``entries``."""
    name: str
    title: str
    entries: tuple
    checks: list = dataclasses.field(default_factory=list)

    @property
    def key(self):
        """The short name, ``'q1'`` for ``'q1_aspp_forward'``."""
        return self.name.split("_")[0]

    @property
    def max_points(self):
        return sum(c.points for c in self.checks)

    def check(self, name, hint):
        """Decorator that appends a check ``fn(student, rng)`` to this question."""
        def register(fn):
            self.checks.append(Check(name, fn, hint))
            return fn
        return register


@dataclasses.dataclass
class Result:
    """The outcome of grading one question file."""
    name: str
    file: str
    points: int
    max_points: int
    passed: list
    failed: object          # name of the first failed check, or None
    message: str

    @property
    def complete(self):
        return self.points == self.max_points and self.failed is None


# ====================================================================== comparing answers
def _as_array(value, what):
    """The student's result as a float64 NumPy array (Tensors and lists accepted)."""
    if isinstance(value, Tensor):
        value = value.numpy()
    if value is None:
        raise CheckFailed(f"{what}: your code returned None (is the result assigned to the "
                          f"name used after the END marker, or returned?)")
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise CheckFailed(f"{what}: expected an array of numbers, got {type(value).__name__}") from None


def _close(got, expected):
    return got.shape == expected.shape and np.allclose(got, expected, rtol=RTOL, atol=ATOL)


def _compare(got, expected, what, mistakes=()):
    """Fail unless ``got`` equals ``expected`` (float64, rtol 1e-6).

    ``mistakes`` is a list of ``(description, compute)``: when the wrong values equal
    ``compute()``, the message names that mistake.
    """
    got, expected = _as_array(got, what), np.asarray(expected, dtype=np.float64)
    if got.shape != expected.shape:
        raise CheckFailed(f"{what}: expected shape {expected.shape}, got {got.shape}")
    if not np.all(np.isfinite(got)) and np.all(np.isfinite(expected)):
        raise CheckFailed(f"{what}: your result contains nan or inf where the reference is finite")
    if _close(got, expected):
        return
    for description, compute in mistakes:
        try:
            alternative = np.asarray(compute(), dtype=np.float64)
        except Exception:        # a diagnosis that does not apply to these inputs
            continue
        if _close(got, alternative):
            raise CheckFailed(f"{what}: wrong values; they are exactly what you get {description}")
    error = np.abs(got - expected)
    where = np.unravel_index(int(np.argmax(error)), error.shape) if error.ndim else ()
    index = f" at index {tuple(int(i) for i in where)}" if where else ""
    raise CheckFailed(f"{what}: wrong values (largest difference {float(error.max()):.3g}{index}: "
                      f"got {float(got[where]):.6g}, expected {float(expected[where]):.6g})")


def _number(value, what):
    """The student's result as a Python float (a 0-d array or one-element Tensor is fine)."""
    if isinstance(value, Tensor):
        value = value.numpy()
    try:
        return float(np.asarray(value).reshape(()))
    except (TypeError, ValueError):
        shape = f" of shape {value.shape}" if hasattr(value, "shape") else ""
        raise CheckFailed(f"{what}: expected a single number, got {type(value).__name__}{shape}") from None


def _t(array, requires_grad=False):
    """A float64 minisegnet tensor (a fresh copy) of ``array``, on the CPU (the grader
    compares on the host, whatever ``$MINISEGNET_DEVICE`` says)."""
    return tensor(np.array(array, dtype=np.float64), dtype=float64, device="cpu",
                  requires_grad=requires_grad)


# ====================================================================== comparing modules
def _randomize(module, rng):
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


def _same_weights(student_cls, reference_cls, kwargs, rng):
    """``(student, reference)`` modules built with ``kwargs``, in float64, with the same
    random weights (the reference's state dict copied into the student's module)."""
    reference = reference_cls(**kwargs).to("cpu", dtype=float64)
    _randomize(reference, rng)
    student = student_cls(**kwargs)
    if not hasattr(student, "load_state_dict"):
        raise CheckFailed(f"{student_cls.__name__} must be a minisegnet nn.Module")
    student.to("cpu", dtype=float64)
    try:
        student.load_state_dict(reference.state_dict())
    except ValueError as error:
        raise CheckFailed(f"{student_cls.__name__}'s layers differ from the reference's ({error}); "
                          f"keep __init__ as it was given") from None
    return student, reference


def _compare_modules(student, reference, inputs, train=False, grads=False, mistakes=(), rng=None):
    """Run both modules on copies of ``inputs`` (a list of arrays, or one array) and compare
    the outputs; with ``grads`` also the gradients of a random projection of the output
    with respect to every input and every parameter.

    ``mistakes``: ``(description, fn)`` with ``fn(reference, reference_input)`` computing
    what a common wrong forward would give.
    """
    student.train(train)
    reference.train(train)
    as_list = isinstance(inputs, (list, tuple))
    arrays = list(inputs) if as_list else [inputs]
    ref_in = [_t(a, grads) for a in arrays]
    stu_in = [_t(a, grads) for a in arrays]
    pack = (lambda ts: list(ts)) if as_list else (lambda ts: ts[0])
    with (contextlib.nullcontext() if grads else no_grad()):
        expected = reference(pack(ref_in))
        got = student(pack(stu_in))
    if not isinstance(got, Tensor):
        raise CheckFailed(f"forward must return a minisegnet Tensor, got {type(got).__name__}")

    def diagnose(fn):
        def compute():
            with no_grad():
                return fn(reference, pack([t.detach() for t in ref_in])).numpy()
        return compute
    _compare(got, expected.numpy(), "output", [(d, diagnose(fn)) for d, fn in mistakes])
    if not grads:
        return
    upstream = rng.normal(size=expected.shape)
    expected.backward(_t(upstream))
    if not got.requires_grad:
        raise CheckFailed("the output is not connected to the input in the autograd graph: compute "
                          "with minisegnet ops on Tensors (not on .data or NumPy arrays)")
    got.backward(_t(upstream))
    for i, (s, r) in enumerate(zip(stu_in, ref_in)):
        where = "the input" if len(arrays) == 1 else f"input {i}"
        if r.grad is not None:
            if s.grad is None:
                raise CheckFailed(f"no gradient reached {where}: the output is not connected to it in "
                                  f"the autograd graph (was something computed on .data, .numpy() or "
                                  f"NumPy arrays?)")
            _compare(s.grad, r.grad.numpy(), f"gradient with respect to {where}")
    params = dict(student.named_parameters())
    for name, p in reference.named_parameters():
        if p.grad is None:
            continue
        q = params.get(name)
        if q is None or q.grad is None:
            raise CheckFailed(f"no gradient reached parameter {name!r}: is that layer used in forward?")
        _compare(q.grad, p.grad.numpy(), f"gradient of {name!r}")


# ====================================================================== Q1: ASPP head
Q1 = Question("q1_aspp_forward", "ASPPHead.forward (DeepLabV3, syllabus quiz Q1)", ("ASPPHead",))
_ASPP_HINT = ("The bottleneck expects the image-pool branch (resized back to the feature map's "
              "size) followed by the ASPP branches, concatenated along channels; see the class "
              "docstring.")


def _aspp_branches_swapped(head, x):
    """The head's output with the ASPP branches first and the image-pool branch last."""
    x = head._transform_inputs(x)
    outs = list(head.aspp_modules(x))
    outs.append(heads.resize(head.image_pool(x), x.shape[2:], align_corners=head.align_corners))
    return head.cls_seg(head.bottleneck(F.cat(outs, dim=1)))


def _aspp_case(student, rng, kwargs, inputs, train=False, grads=False):
    """Compare the student's ASPPHead with ``heads.ASPPHead`` (same random weights).

    Small heads (6 -> 4 channels, 3 classes, dilations 1, 2, 3 unless ``kwargs`` says
    otherwise) keep the check fast; ``inputs`` is one feature map or the backbone's list.
    A wrong output is tested against the most common slip, the branches in the wrong
    order (the bottleneck's weights then meet the wrong channels).
    """
    kwargs = dict(dict(in_channels=6, channels=4, num_classes=3, dilations=(1, 2, 3)), **kwargs)
    stu, ref = _same_weights(student.ASPPHead, heads.ASPPHead, kwargs, rng)
    _compare_modules(stu, ref, inputs, train=train, grads=grads, rng=rng, mistakes=[
        ("with the ASPP branches first and the image-pool branch last", _aspp_branches_swapped)])


@Q1.check("eval mode, one 8x8 feature map", hint=_ASPP_HINT)
def _q1_eval(student, rng):
    _aspp_case(student, rng, {}, rng.normal(size=(2, 6, 8, 8)))


@Q1.check("odd, non-square feature map (5x7), align_corners=True", hint=_ASPP_HINT)
def _q1_odd(student, rng):
    _aspp_case(student, rng, dict(align_corners=True), rng.normal(size=(2, 6, 5, 7)))


@Q1.check("the backbone's list of feature maps as input",
          hint="Work on the map that self._transform_inputs(inputs) picked, not on inputs.")
def _q1_list(student, rng):
    _aspp_case(student, rng, {}, [rng.normal(size=(2, 3, 12, 12)), rng.normal(size=(2, 6, 6, 6))])


@Q1.check("default dilations (1, 6, 12, 18)",
          hint="Use every module in self.aspp_modules; their number follows `dilations`.")
def _q1_default(student, rng):
    _aspp_case(student, rng, dict(dilations=(1, 6, 12, 18)), rng.normal(size=(2, 6, 9, 11)))


@Q1.check("training mode (BatchNorm batch statistics)", hint=_ASPP_HINT)
def _q1_train(student, rng):
    _aspp_case(student, rng, dict(dropout_ratio=0.0), rng.normal(size=(3, 6, 6, 5)), train=True)


@Q1.check("gradients reach the input and every branch",
          hint="Build the output from minisegnet ops (resize, cat, the modules) on Tensors so "
               "that backward() can flow through every branch.")
def _q1_grads(student, rng):
    _aspp_case(student, rng, dict(dropout_ratio=0.0), rng.normal(size=(2, 6, 5, 6)), train=True,
               grads=True)


# ====================================================================== Q2, Q3: IoU and Dice
Q2 = Question("q2_iou", "IoU of two binary masks (syllabus quiz Q2)", ("iou",))
Q3 = Question("q3_dice", "Dice coefficient of two binary masks", ("dice",))

_OVERLAP_MISTAKES = {
    "iou": [("by dividing by |A| + |B| instead of the union's area",
             lambda a, b: (a & b).sum() / (a.sum() + b.sum())),
            ("with the Dice formula", lambda a, b: 2 * (a & b).sum() / (a.sum() + b.sum())),
            ("by dividing by the number of pixels", lambda a, b: (a & b).sum() / a.size)],
    "dice": [("with the IoU formula", lambda a, b: (a & b).sum() / (a | b).sum()),
             ("without the factor 2", lambda a, b: (a & b).sum() / (a.sum() + b.sum())),
             ("by dividing by the union's area", lambda a, b: 2 * (a & b).sum() / (a | b).sum())],
}


def _overlap_case(student, fn_name, a, b):
    """Compare ``student.<fn_name>(a, b)`` with ``metrics.<fn_name>`` on one pair of masks,
    naming the formula slip (wrong denominator, missing factor) the result matches."""
    reference = getattr(metrics, fn_name)(a, b)
    got = _number(getattr(student, fn_name)(a.copy(), b.copy()), f"{fn_name} of {a.shape} masks")
    ab = (a.astype(bool), b.astype(bool))
    mistakes = [(d, lambda f=f: f(*ab)) for d, f in _OVERLAP_MISTAKES[fn_name]]
    _compare(got, reference, f"{fn_name}(a, b) of {a.shape} masks", mistakes)


def _random_masks(rng, shape, dtype=np.int64):
    """Two random 0/1 masks of ``shape`` whose union is not empty."""
    while True:
        a, b = rng.integers(0, 2, size=shape), rng.integers(0, 2, size=shape)
        if (a | b).any():
            return a.astype(dtype), b.astype(dtype)


def _overlap_checks(q, fn_name, formula):
    """Register the four checks shared by IoU (Q2) and Dice (Q3) on question ``q``."""
    @q.check("random 10x10 masks, as in the quiz", hint=f"{fn_name} = {formula}; sum the masks "
             f"(or logical combinations of them) to count pixels.")
    def random_masks(student, rng):
        for _ in range(5):
            _overlap_case(student, fn_name, *_random_masks(rng, (10, 10)))

    @q.check("identical, disjoint and one-empty masks",
             hint=f"{fn_name} is 1 for identical masks and 0 when they do not overlap.")
    def extremes(student, rng):
        a, b = _random_masks(rng, (6, 6))
        a[0, 0] = 1
        _overlap_case(student, fn_name, a, a.copy())
        _overlap_case(student, fn_name, a, 1 - a)
        _overlap_case(student, fn_name, a, np.zeros_like(a))

    @q.check("boolean masks", hint="Your code should work for bool arrays as well as 0/1 integers.")
    def boolean(student, rng):
        for _ in range(3):
            _overlap_case(student, fn_name, *_random_masks(rng, (7, 9), dtype=bool))

    @q.check("masks of other shapes (1-D, 3-D, odd sizes)",
             hint="Count over all pixels, whatever the masks' shape.")
    def shapes(student, rng):
        for shape in ((13,), (3, 5, 7), (1, 11)):
            _overlap_case(student, fn_name, *_random_masks(rng, shape))


_overlap_checks(Q2, "iou", "|A ∩ B| / |A ∪ B|")
_overlap_checks(Q3, "dice", "2 |A ∩ B| / (|A| + |B|)")


# ====================================================================== Q4: conv arithmetic
Q4 = Question("q4_conv_output_size", "Output size and receptive field of stacked convolutions",
              ("conv_stack_geometry",))


def _conv_stack(x, layers, padded=True):
    """Run ``layers`` as 1-D convolutions (k x 1 kernels of ones) down axis 2 of ``x``."""
    for k, s, p, d in layers:
        w = _t(np.ones((1, 1, k, 1)))
        x = F.conv2d(x, w, stride=(s, 1), padding=(p if padded else 0, 0), dilation=(d, 1))
    return x


def _conv_stack_reference(in_size, layers):
    """Measured with the library: the output length of the stack on an input of
    ``in_size``, and the span of input positions that reach output 0 in backward()."""
    with no_grad():
        out_size = _conv_stack(_t(np.zeros((1, 1, in_size, 1))), layers).shape[2]
    stride_product = int(np.prod([s for _, s, _, _ in layers]))
    length = 1 + stride_product * sum((k - 1) * d for k, _, _, d in layers)
    x = _t(np.ones((1, 1, length, 1)), requires_grad=True)
    y = _conv_stack(x, layers, padded=False)
    y[0, 0, 0, 0].backward()
    reached = np.nonzero(x.grad.numpy()[0, 0, :, 0])[0]
    return out_size, int(reached[-1] - reached[0] + 1)


def _jumps(layers):
    """How far apart in the input two neighbouring positions of each layer's input are."""
    jumps, j = [], 1
    for _, s, _, _ in layers:
        jumps.append(j)
        j *= s
    return jumps


_GEOMETRY_MISTAKES = {
    "output size": [
        ("without the dilation (a dilated kernel spans d(k - 1) + 1 inputs)",
         lambda n, layers: _fold(n, layers, lambda n, k, s, p, d: (n + 2 * p - k) // s + 1)),
        ("rounding up instead of down",
         lambda n, layers: _fold(n, layers, lambda n, k, s, p, d: -(-(n + 2 * p - d * (k - 1) - 1) // s) + 1)),
    ],
    "receptive field": [
        ("without the dilation", lambda n, layers: 1 + sum((k - 1) * j for (k, _, _, _), j in
                                                           zip(layers, _jumps(layers)))),
        ("ignoring the strides of earlier layers", lambda n, layers: 1 + sum((k - 1) * d for k, _, _, d in layers)),
        ("multiplying by this layer's own stride too",
         lambda n, layers: 1 + sum((k - 1) * d * j * s for (k, s, _, d), j in zip(layers, _jumps(layers)))),
    ],
}


def _fold(n, layers, step):
    """Apply the per-layer size formula ``step(n, k, s, p, d)`` through the stack."""
    for k, s, p, d in layers:
        n = step(n, k, s, p, d)
    return n


def _geometry_case(student, in_size, layers):
    """Compare ``conv_stack_geometry`` with sizes measured by running the library's conv2d.

    Each wrong number is matched against formulas with a known slip (dilation left out,
    rounding up, strides of earlier layers forgotten) to say which one it was.
    """
    expected = _conv_stack_reference(in_size, layers)
    got = student.conv_stack_geometry(in_size, [tuple(layer) for layer in layers])
    call = f"conv_stack_geometry({in_size}, {layers})"
    if not isinstance(got, (tuple, list)) or len(got) != 2:
        raise CheckFailed(f"{call}: expected a pair (out_size, receptive_field), got {got!r}")
    for what, g, e in zip(("output size", "receptive field"), got, expected):
        g = _number(g, f"{call}: {what}")
        if g == e:
            continue
        for description, compute in _GEOMETRY_MISTAKES[what]:
            if compute(in_size, layers) == g:
                raise CheckFailed(f"{call}: {what} {g:g} is what you get {description}; expected {e}")
        raise CheckFailed(f"{call}: {what} should be {e}, got {g:g}")


@Q4.check("a single 3x3 convolution", hint="Without padding a 3x3 kernel fits n - 2 times; "
          "padding adds p cells on each side.")
def _q4_single(student, rng):
    _geometry_case(student, 32, [(3, 1, 0, 1)])
    _geometry_case(student, 32, [(3, 1, 1, 1)])


@Q4.check("strided convolutions on odd and even sizes",
          hint="Count the window positions whose whole kernel fits: the last one may not.")
def _q4_strided(student, rng):
    _geometry_case(student, 32, [(3, 2, 1, 1)])
    _geometry_case(student, 33, [(3, 2, 1, 1)])
    _geometry_case(student, 225, [(7, 2, 3, 1)])
    _geometry_case(student, 10, [(2, 3, 0, 1)])


@Q4.check("an atrous (dilated) convolution", hint="Dilation d spreads a k-tap kernel over "
          "d(k - 1) + 1 input cells, which changes both the size and the receptive field.")
def _q4_dilated(student, rng):
    _geometry_case(student, 33, [(3, 1, 6, 6)])
    _geometry_case(student, 10, [(3, 1, 0, 2)])
    _geometry_case(student, 21, [(3, 2, 0, 3)])


@Q4.check("a stack of dilated convolutions", hint="Each layer widens the receptive field by "
          "the extra span of its kernel.")
def _q4_stack(student, rng):
    _geometry_case(student, 40, [(3, 1, 1, 1), (3, 1, 2, 2), (3, 1, 4, 4)])
    _geometry_case(student, 17, [(3, 1, 0, 1), (1, 1, 0, 1), (5, 1, 0, 2)])


@Q4.check("a stack with strides (a ResNet-like stem)",
          hint="After a stride-s layer, one step of the next layer moves s input pixels (the "
               "'jump' grows with every stride).")
def _q4_strides(student, rng):
    _geometry_case(student, 65, [(7, 2, 3, 1), (3, 2, 1, 1), (3, 1, 1, 1), (3, 2, 1, 2)])
    _geometry_case(student, 31, [(2, 2, 0, 1), (3, 3, 1, 1), (3, 1, 2, 2)])


# ====================================================================== Q5: conv2d via im2col
Q5 = Question("q5_conv2d_im2col", "conv2d forward via im2col", ("conv2d",))
_FLIPPED = "with the kernel flipped (that is convolution in the signal-processing sense; " \
           "deep-learning 'convolution' is cross-correlation)"


def _conv_case(student, rng, x_shape, w_shape, bias=False, **kwargs):
    """Compare the student's NumPy conv2d with ``F.conv2d`` on random float64 inputs;
    ``kwargs`` are stride / padding / dilation. Detects a flipped kernel and a lost bias."""
    x, w = rng.normal(size=x_shape), rng.normal(size=w_shape)
    b = rng.normal(size=w_shape[0]) if bias else None

    def reference(weight=w, bias_=b):
        with no_grad():
            return F.conv2d(_t(x), _t(weight), None if bias_ is None else _t(bias_), **kwargs).numpy()
    got = student.conv2d(x.copy(), w.copy(), None if b is None else b.copy(), **kwargs)
    mistakes = [(_FLIPPED, lambda: reference(w[:, :, ::-1, ::-1]))]
    if bias:
        mistakes.append(("without the bias", lambda: reference(bias_=None)))
    args = ", ".join(f"{k}={v}" for k, v in kwargs.items())
    _compare(got, reference(), f"conv2d of x {x_shape} with weight {w_shape}{', bias' if bias else ''}"
             f"{', ' + args if args else ''}", mistakes)


@Q5.check("3x3 kernel, no padding", hint="Output (N, C_out, H - 2, W - 2): every output pixel "
          "is the dot product of the weight with the window under it, summed over channels.")
def _q5_basic(student, rng):
    _conv_case(student, rng, (2, 3, 6, 6), (4, 3, 3, 3))


@Q5.check("with a bias", hint="The bias adds one number per output channel.")
def _q5_bias(student, rng):
    _conv_case(student, rng, (2, 3, 5, 6), (4, 3, 3, 3), bias=True)


@Q5.check("zero padding", hint="Pad the input with p zeros on every side before taking windows.")
def _q5_padding(student, rng):
    _conv_case(student, rng, (1, 2, 5, 5), (3, 2, 3, 3), padding=1)
    _conv_case(student, rng, (1, 2, 6, 4), (3, 2, 5, 5), padding=2)


@Q5.check("strides on odd sizes", hint="With stride s the windows start every s pixels; "
          "H_out = floor((H + 2p - d(k - 1) - 1) / s) + 1.")
def _q5_stride(student, rng):
    _conv_case(student, rng, (1, 2, 7, 9), (3, 2, 3, 3), stride=2, padding=1)
    _conv_case(student, rng, (2, 1, 8, 7), (2, 1, 3, 3), stride=3)


@Q5.check("dilation", hint="A dilated window reads every d-th pixel: taps at offsets "
          "0, d, 2d, ... of the window's start.")
def _q5_dilation(student, rng):
    _conv_case(student, rng, (1, 2, 8, 7), (3, 2, 3, 3), padding=2, dilation=2)
    _conv_case(student, rng, (1, 1, 9, 9), (2, 1, 3, 3), stride=2, dilation=3, padding=1)


@Q5.check("non-square kernels", hint="Treat the kernel's height and width separately.")
def _q5_nonsquare(student, rng):
    _conv_case(student, rng, (2, 3, 5, 6), (2, 3, 1, 3))
    _conv_case(student, rng, (1, 2, 6, 5), (3, 2, 3, 1), padding=1, bias=True)


# ====================================================================== Q6: bilinear upsampling
Q6 = Question("q6_bilinear", "Bilinear resizing with both align_corners", ("bilinear_resize",))


def _bilinear_case(student, rng, x_shape, size, align_corners):
    """Compare ``bilinear_resize`` with ``F.interpolate(mode='bilinear')``; a wrong result
    is also compared with the *other* align_corners, the classic mix-up."""
    x = rng.normal(size=x_shape)

    def reference(ac):
        with no_grad():
            return F.interpolate(_t(x), size=size, mode="bilinear", align_corners=ac).numpy()
    got = student.bilinear_resize(x.copy(), size, align_corners=align_corners)
    _compare(got, reference(align_corners),
             f"bilinear_resize of {x_shape} to {size}, align_corners={align_corners}",
             [(f"with align_corners={not align_corners}", lambda: reference(not align_corners))])


_ALIGN_HINT = ("align_corners=True maps the centres of the corner pixels onto each other; False "
               "maps the images' outer edges onto each other (pixel centres at i + 0.5).")


@Q6.check("upsampling x2, align_corners=False", hint=_ALIGN_HINT)
def _q6_false(student, rng):
    _bilinear_case(student, rng, (2, 3, 4, 5), (8, 10), False)


@Q6.check("upsampling x2, align_corners=True", hint=_ALIGN_HINT)
def _q6_true(student, rng):
    _bilinear_case(student, rng, (2, 3, 4, 5), (8, 10), True)


@Q6.check("downsampling", hint="Source coordinates can fall between any two input pixels; "
          "for align_corners=False clamp negative ones at 0.")
def _q6_down(student, rng):
    for ac in (False, True):
        _bilinear_case(student, rng, (1, 2, 9, 8), (4, 3), ac)


@Q6.check("odd sizes, one axis up and one down, and the same size",
          hint="Rows and columns are interpolated independently, each with its own scale.")
def _q6_odd(student, rng):
    for ac in (False, True):
        _bilinear_case(student, rng, (1, 1, 5, 7), (11, 3), ac)
        _bilinear_case(student, rng, (1, 2, 5, 7), (5, 7), ac)


@Q6.check("to and from a single pixel", hint="A 1-pixel axis has no neighbour to interpolate "
          "with; with align_corners=True and one output pixel, it reads input pixel 0.")
def _q6_single(student, rng):
    for ac in (False, True):
        _bilinear_case(student, rng, (1, 2, 1, 1), (3, 4), ac)
        _bilinear_case(student, rng, (1, 2, 4, 5), (1, 1), ac)
        _bilinear_case(student, rng, (1, 1, 1, 6), (3, 2), ac)


# ====================================================================== Q7: adaptive pooling bins
Q7 = Question("q7_adaptive_bins", "Adaptive pooling bins", ("adaptive_bins", "adaptive_avg_pool2d"))

_BINS_MISTAKES = [
    ("with the end rounded down (off by one: the bins then miss input cells)",
     lambda n, m: [(i * n // m, (i + 1) * n // m) for i in range(m)]),
    ("with the start rounded up", lambda n, m: [(-(-i * n // m), -(-(i + 1) * n // m)) for i in range(m)]),
    ("with an inclusive end (Python ranges exclude their end)",
     lambda n, m: [(i * n // m, -(-(i + 1) * n // m) - 1) for i in range(m)]),
]


def _bins_case(student, in_size, out_size):
    """Compare ``adaptive_bins`` with ``kernels.pooling.adaptive_bins``, the bins behind
    ``F.adaptive_avg_pool2d``; name the rounding slip the wrong bins match, if any."""
    expected = [tuple(int(v) for v in b) for b in pooling_kernels.adaptive_bins(in_size, out_size)]
    call = f"adaptive_bins({in_size}, {out_size})"
    got = student.adaptive_bins(in_size, out_size)
    try:
        got = [tuple(int(v) for v in b) for b in got]
    except (TypeError, ValueError):
        raise CheckFailed(f"{call}: expected a list of (start, end) pairs, got {got!r}") from None
    if got == expected:
        return
    if len(got) != len(expected):
        raise CheckFailed(f"{call}: expected {len(expected)} bins, got {len(got)}")
    for description, compute in _BINS_MISTAKES:
        if compute(in_size, out_size) == got:
            raise CheckFailed(f"{call} gives {got}: that is {description}")
    i = next(i for i, (g, e) in enumerate(zip(got, expected)) if g != e)
    raise CheckFailed(f"{call}: bin {i} should be {expected[i]}, got {got[i]}")


_BINS_HINT = ("Bin i holds every cell that the stretch [i * in / out, (i + 1) * in / out) "
              "touches, even partly; round each end the way that keeps those cells, in integer "
              "arithmetic.")


@Q7.check("output size divides the input size", hint=_BINS_HINT)
def _q7_divides(student, rng):
    for n, m in ((6, 3), (8, 4), (6, 1), (12, 6)):
        _bins_case(student, n, m)


@Q7.check("bins that overlap (7 -> 3, 10 -> 4, 5 -> 2)", hint=_BINS_HINT)
def _q7_overlap(student, rng):
    for n, m in ((7, 3), (10, 4), (5, 2), (13, 6)):
        _bins_case(student, n, m)


@Q7.check("more outputs than inputs (2 -> 3, 3 -> 5)", hint=_BINS_HINT)
def _q7_upsizing(student, rng):
    for n, m in ((2, 3), (3, 5), (1, 4)):
        _bins_case(student, n, m)


@Q7.check("one bin per input cell", hint="in == out gives one cell per bin.")
def _q7_identity(student, rng):
    for n in (1, 5, 6):
        _bins_case(student, n, n)


@Q7.check("your bins pool like F.adaptive_avg_pool2d",
          hint="adaptive_avg_pool2d averages x over the bins of both axes; fix adaptive_bins first.")
def _q7_pool(student, rng):
    for x_shape, size in (((2, 3, 7, 10), (3, 4)), ((1, 2, 6, 6), (6, 1)), ((1, 1, 5, 9), (2, 6))):
        x = rng.normal(size=x_shape)
        with no_grad():
            expected = F.adaptive_avg_pool2d(_t(x), size).numpy()
        got = student.adaptive_avg_pool2d(x.copy(), size)
        _compare(got, expected, f"adaptive_avg_pool2d of {x_shape} to {size}")


# ====================================================================== Q8: pyramid pooling
Q8 = Question("q8_pyramid_pooling", "PyramidPooling.forward (PSPNet)", ("PyramidPooling",))


def _ppm_input_last(module, x):
    """Pyramid pooling with the input concatenated after the branches instead of before."""
    size = x.shape[2:]
    outs = [heads.resize(conv(pool(x)), size, align_corners=module.align_corners)
            for pool, conv in zip(module.avgpools, module.convs)]
    return F.cat(outs + [x], dim=1)


def _ppm_flipped(module, x):
    """Pyramid pooling computed with the opposite ``align_corners``."""
    flipped = heads.PyramidPooling(module.in_channels, module.sizes, not module.align_corners)
    flipped.to("cpu", dtype=float64).load_state_dict(module.state_dict())
    return flipped.train(module.training)(x)


def _ppm_case(student, rng, in_channels, x_shape, train=False, grads=False, **kwargs):
    """Compare the student's PyramidPooling with ``heads.PyramidPooling`` (same random
    weights); wrong outputs are tested against "input last" and "align_corners flipped"."""
    kwargs = dict(in_channels=in_channels, **kwargs)
    stu, ref = _same_weights(student.PyramidPooling, heads.PyramidPooling, kwargs, rng)
    _compare_modules(stu, ref, rng.normal(size=x_shape), train=train, grads=grads, rng=rng, mistakes=[
        ("with the input last instead of first", _ppm_input_last),
        ("with align_corners flipped (use the module's setting)", _ppm_flipped)])


_PPM_HINT = ("Each branch pools x to s x s bins, reduces the channels with its 1x1 ConvModule "
             "and resizes back to x's size; the output is x followed by the branches, along channels.")


@Q8.check("default bins (1, 2, 3, 6), eval mode", hint=_PPM_HINT)
def _q8_default(student, rng):
    _ppm_case(student, rng, 8, (2, 8, 6, 6))


@Q8.check("odd, non-square map (bins overlap)", hint=_PPM_HINT)
def _q8_odd(student, rng):
    _ppm_case(student, rng, 8, (2, 8, 7, 5))


@Q8.check("align_corners=True", hint="Resize with the module's own align_corners setting.")
def _q8_align(student, rng):
    _ppm_case(student, rng, 8, (2, 8, 7, 9), align_corners=True)


@Q8.check("other bin sizes (1, 3) and 4 channels",
          hint="Loop over the module's own pools and convs; do not assume four branches.")
def _q8_sizes(student, rng):
    _ppm_case(student, rng, 4, (2, 4, 5, 6), sizes=(1, 3))


@Q8.check("training mode and gradients", hint="Build the output from minisegnet ops on Tensors "
          "so that backward() reaches x and every branch.")
def _q8_grads(student, rng):
    _ppm_case(student, rng, 8, (2, 8, 6, 7), train=True, grads=True)


# ====================================================================== Q9: cross-entropy
Q9 = Question("q9_cross_entropy", "Pixel-wise cross-entropy with an ignore index", ("cross_entropy",))


def _ce_case(student, rng, shape, ignore_index=255, ignored=0.0, scale=1.0):
    """Compare the student's cross-entropy with ``F.cross_entropy(ignore_index=...)``.

    ``ignored`` is the fraction of pixels labelled ``ignore_index``; ``scale`` multiplies the
    logits (1000 makes a naive ``exp`` overflow). Averaging over all pixels, ignored ones
    included, and summing instead of averaging are recognised.
    """
    n, c, h, w = shape
    logits = rng.normal(size=shape) * scale
    target = rng.integers(0, c, size=(n, h, w))
    target[rng.random(size=(n, h, w)) < ignored] = ignore_index
    target[0, 0, 0] = 0                  # at least one pixel counts

    def reference(reduction="mean"):
        with no_grad():
            return F.cross_entropy(_t(logits), tensor(target, dtype=np.int64, device="cpu"),
                                   ignore_index=ignore_index, reduction=reduction).numpy()
    got = _number(student.cross_entropy(logits.copy(), target.copy(), ignore_index=ignore_index),
                  "cross_entropy")
    mistakes = [("by averaging over all pixels, ignored ones included",
                 lambda: reference("sum") / target.size),
                ("by summing instead of averaging", lambda: reference("sum"))]
    _compare(got, reference(), f"cross_entropy of logits {shape}, ignore_index={ignore_index}",
             mistakes)


_CE_HINT = ("loss = mean over the counted pixels of -log softmax(logits)[target], where softmax "
            "runs over the class axis (axis 1).")


@Q9.check("every pixel labelled", hint=_CE_HINT)
def _q9_plain(student, rng):
    _ce_case(student, rng, (2, 4, 3, 5))


@Q9.check("pixels labelled 255 are ignored", hint="Ignored pixels add nothing to the sum and do "
          "not count in the mean's denominator; do not index the logits with their label.")
def _q9_ignored(student, rng):
    _ce_case(student, rng, (2, 4, 5, 3), ignored=0.3)


@Q9.check("another ignore_index (-1)", hint="Use the ignore_index argument, not a fixed 255.")
def _q9_other_index(student, rng):
    _ce_case(student, rng, (2, 3, 4, 4), ignore_index=-1, ignored=0.3)


@Q9.check("large logits (numerical stability)", hint="exp(1000) overflows; rewrite log(sum(exp(z))) "
          "so that the largest exponent is 0 (the log-sum-exp trick).")
def _q9_stable(student, rng):
    _ce_case(student, rng, (2, 5, 3, 3), ignored=0.2, scale=1000.0)


@Q9.check("one pixel, many classes", hint=_CE_HINT)
def _q9_classes(student, rng):
    _ce_case(student, rng, (3, 10, 1, 1))


# ====================================================================== Q10: transposed convolution
Q10 = Question("q10_transposed_conv", "Transposed convolution, the adjoint of conv2d",
               ("conv_transpose2d",))


def _tconv_case(student, rng, x_shape, w_shape, stride=1, padding=0):
    """Compare the student's transposed convolution with ``F.conv_transpose2d``; a flipped
    kernel and a weight read with in/out channels swapped are recognised. Returns
    ``(x, weight, student_output)`` for the adjoint check."""
    x, w = rng.normal(size=x_shape), rng.normal(size=w_shape)

    def reference(weight=w):
        with no_grad():
            return F.conv_transpose2d(_t(x), _t(weight), stride=stride, padding=padding).numpy()
    got = student.conv_transpose2d(x.copy(), w.copy(), stride=stride, padding=padding)
    mistakes = [("with the kernel flipped", lambda: reference(w[:, :, ::-1, ::-1])),
                ("with the weight read as (C_out, C_in, kH, kW); its layout is (C_in, C_out, kH, kW)",
                 lambda: reference(w.transpose(1, 0, 2, 3)))]
    _compare(got, reference(), f"conv_transpose2d of x {x_shape} with weight {w_shape}, "
             f"stride={stride}, padding={padding}", mistakes)
    return x, w, np.asarray(got, dtype=np.float64)


_TCONV_HINT = ("Every input pixel adds weight * value into an output window starting at "
               "(i * stride, j * stride); the output is then cropped by `padding` on every side.")


@Q10.check("stride 1, no padding", hint=_TCONV_HINT)
def _q10_basic(student, rng):
    _tconv_case(student, rng, (2, 3, 4, 5), (3, 2, 3, 3))


@Q10.check("stride 2, kernel 4, padding 1 (FCN's x2 upsampling)",
           hint="H_out = (H - 1) * stride - 2 * padding + kH: windows of neighbouring inputs overlap.")
def _q10_fcn(student, rng):
    _tconv_case(student, rng, (1, 3, 5, 6), (3, 3, 4, 4), stride=2, padding=1)


@Q10.check("other kernels, strides and paddings", hint=_TCONV_HINT)
def _q10_other(student, rng):
    _tconv_case(student, rng, (1, 2, 3, 4), (2, 3, 3, 3), stride=3)
    _tconv_case(student, rng, (2, 4, 4, 3), (4, 1, 5, 5), stride=2, padding=2)
    _tconv_case(student, rng, (1, 3, 4, 5), (3, 2, 3, 1), stride=2, padding=1)


@Q10.check("the adjoint of conv2d: <conv2d(y), x> == <y, conv_transpose2d(x)>",
           hint="conv_transpose2d(x) is the gradient of conv2d with respect to its input: every "
                "product w * x that conv2d sums into one output, send it back to where it came from.")
def _q10_adjoint(student, rng):
    x, w, got = _tconv_case(student, rng, (2, 3, 5, 4), (3, 2, 3, 3), stride=2, padding=1)
    y = rng.normal(size=got.shape)
    with no_grad():
        conv_y = F.conv2d(_t(y), _t(w), stride=2, padding=1).numpy()
    lhs, rhs = float((conv_y * x).sum()), float((y * got).sum())
    if not math.isclose(lhs, rhs, rel_tol=RTOL, abs_tol=ATOL):
        raise CheckFailed(f"<conv2d(y), x> = {lhs:.6g} but <y, conv_transpose2d(x)> = {rhs:.6g}")


QUESTIONS = {q.name: q for q in (Q1, Q2, Q3, Q4, Q5, Q6, Q7, Q8, Q9, Q10)}


def find_question(name):
    """The :class:`Question` called ``name``: its full name (``'q2_iou'``), its key
    (``'q2'``) or a file name (``'q2_iou.py'``)."""
    stem = pathlib.Path(str(name)).stem
    for q in QUESTIONS.values():
        if stem in (q.name, q.key):
            return q
    known = ", ".join(QUESTIONS)
    raise ValueError(f"unknown question {name!r}; known questions: {known}")


# ====================================================================== running one question
def _student_location(tb, path):
    """``' (at q2_iou.py line 31)'`` for the deepest traceback frame in the student's file."""
    frames = [f for f in traceback.extract_tb(tb) if pathlib.Path(f.filename).resolve() == path]
    return f" (at {path.name} line {frames[-1].lineno})" if frames else ""


def _raised_in_student_file(tb, path):
    frames = traceback.extract_tb(tb)
    return bool(frames) and pathlib.Path(frames[-1].filename).resolve() == path


def _describe_error(error, path):
    """One line describing an exception from the student's code."""
    text = str(error).strip().replace("\n", " ")
    if len(text) > 300:
        text = text[:300] + "..."
    if isinstance(error, NotImplementedError) and _raised_in_student_file(error.__traceback__, path):
        return (f"not implemented yet: fill in the region between the YOUR CODE markers in "
                f"{path.name}")
    if isinstance(error, SystemExit):
        return f"your code called exit() ({text or 0}); return a value instead"
    where = _student_location(error.__traceback__, path)
    if not where:       # e.g. a result the check could not use, or a broken reference
        return f"the check stopped with {type(error).__name__}: {text} (raised outside {path.name})"
    return f"your code raised {type(error).__name__}: {text}{where}"


def _load_student(path):
    """Import the exercise file as a fresh module (never cached in ``sys.modules``)."""
    name = f"_minisegnet_exercise_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    previous = sys.dont_write_bytecode
    sys.dont_write_bytecode = True      # keep __pycache__ out of the student's folder
    sys.modules[name] = module          # dataclasses and pickling look modules up here
    try:
        spec.loader.exec_module(module)
    finally:
        sys.modules.pop(name, None)
        sys.dont_write_bytecode = previous
    return module


def _run_checks(question, path, seed, emit):
    """Load the file and run every check, calling ``emit(record)`` after each one.

    Records are dicts: ``{'check', 'passed', 'message'}``, or a single ``{'error'}`` when
    the file cannot be loaded. A :class:`_TimeLimit` propagates to the caller.
    """
    try:
        student = _load_student(path)
    except _TimeLimit:
        raise
    except SyntaxError as error:
        emit({"error": f"could not load {path.name}: SyntaxError: {error.msg} (line {error.lineno})"})
        return
    except BaseException as error:          # noqa: B036 -- student code may raise anything
        emit({"error": f"could not load {path.name}: " + _describe_error(error, path)})
        return
    missing = [e for e in question.entries if not hasattr(student, e)]
    if missing:
        emit({"error": f"{path.name} defines no {', '.join(missing)}; keep the names of the stub"})
        return
    for i, chk in enumerate(question.checks):
        rng = np.random.default_rng([seed, i])
        try:
            chk.run(student, rng)
        except _TimeLimit:
            raise
        except CheckFailed as failure:
            emit({"check": chk.name, "passed": False, "message": str(failure)})
        except BaseException as error:      # noqa: B036
            emit({"check": chk.name, "passed": False, "message": _describe_error(error, path)})
        else:
            emit({"check": chk.name, "passed": True, "message": ""})


def _result_from_records(question, path, records, stopped=None):
    """Assemble a :class:`Result` from the worker's records; ``stopped`` describes why the
    run ended early (time limit, crash) and applies to the first check without a record."""
    if records and "error" in records[0]:
        return Result(question.name, str(path), 0, question.max_points, [], question.checks[0].name,
                      records[0]["error"])
    by_name = {r["check"]: r for r in records if "check" in r}
    passed = [c.name for c in question.checks if by_name.get(c.name, {}).get("passed")]
    points = sum(c.points for c in question.checks if c.name in passed)
    failed, message = None, "all checks passed"
    for chk in question.checks:
        record = by_name.get(chk.name)
        if record is not None and record["passed"]:
            continue
        failed = chk.name
        if record is None:
            message = f"check '{chk.name}': {stopped or 'did not run'}"
        elif record["message"].startswith("not implemented"):
            message = record["message"]
        else:
            message = f"check '{chk.name}': {record['message']} Hint: {chk.hint}"
        break
    return Result(question.name, str(path), points, question.max_points, passed, failed, message)


@contextlib.contextmanager
def _time_limit(seconds):
    """Raise :class:`_TimeLimit` in this thread after ``seconds`` (SIGALRM; a no-op where
    that is unavailable, e.g. on Windows or outside the main thread)."""
    usable = (seconds and hasattr(signal, "setitimer")
              and threading.current_thread() is threading.main_thread())
    if not usable:
        yield
        return

    def on_alarm(signum, frame):
        raise _TimeLimit()
    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _grade_in_process(question, path, seed, timeout):
    records = []
    rng_state = ms_random.get_rng_state()
    stopped = None
    sink = io.StringIO()
    try:
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink), \
                warnings.catch_warnings(), _time_limit(timeout):
            warnings.simplefilter("ignore")       # the student's overflow warnings are theirs
            _run_checks(question, path, seed, records.append)
    except _TimeLimit:
        stopped = f"time limit exceeded ({timeout:g} s): is there an endless loop?"
    finally:
        ms_random.set_rng_state(rng_state)
    return _result_from_records(question, path, records, stopped)


_WORKER = ("import sys; from minisegnet.grading import _worker_main; "
           "sys.exit(_worker_main(sys.argv[1:]))")


def _worker_main(argv):
    """Entry point of the grading subprocess: ``QUESTION PATH RESULTS_FILE SEED``.

    Appends one JSON record per line to RESULTS_FILE as each check finishes, so that the
    parent knows how far it got if the process is killed.
    """
    name, path, results, seed = argv
    question, path = find_question(name), pathlib.Path(path).resolve()
    with open(results, "a", encoding="utf-8") as out:
        def emit(record):
            out.write(json.dumps(record) + "\n")
            out.flush()
        try:
            _run_checks(question, path, int(seed), emit)
        except BaseException as error:      # noqa: B036 -- report, never crash silently
            emit({"check": "<grader>", "passed": False, "message": repr(error)})
    return 0


def _grade_isolated(question, path, seed, timeout):
    """Run the checks in a fresh Python process, killed after ``timeout`` seconds."""
    package_root = str(pathlib.Path(__file__).resolve().parents[1])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["MINISEGNET_DEVICE"] = "cpu"
    with tempfile.TemporaryDirectory(prefix="minisegnet-grade-") as tmp:
        results, log = pathlib.Path(tmp, "records.jsonl"), pathlib.Path(tmp, "output.txt")
        results.touch()
        command = [sys.executable, "-c", _WORKER, question.name, str(path), str(results), str(seed)]
        stopped = None
        with open(log, "wb") as output:
            proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=output,
                                    stderr=subprocess.STDOUT, env=env,
                                    start_new_session=(os.name == "posix"))
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                _kill(proc)
                stopped = f"time limit exceeded ({timeout:g} s): is there an endless loop?"
        records = [json.loads(line) for line in results.read_text(encoding="utf-8").splitlines()
                   if line.strip()]
        if stopped is None and proc.returncode != 0:
            tail = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-1:]
            stopped = (f"the grading process stopped (exit code {proc.returncode})"
                       + (f": {tail[0][:200]}" if tail else ""))
        grader_errors = [r for r in records if r.get("check") == "<grader>"]
        if grader_errors and stopped is None:
            stopped = f"the grader failed: {grader_errors[0]['message']}"
    return _result_from_records(question, path, records, stopped)


def _kill(proc):
    """Kill the worker and anything it started (its own process group on POSIX)."""
    try:
        if os.name == "posix":
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            proc.kill()
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


def grade_file(path, question=None, timeout=DEFAULT_TIMEOUT, seed=0, isolate=True):
    """Grade one exercise file and return its :class:`Result`.

    Args:
        path: the student's file, e.g. ``exercises/q2_iou.py``.
        question: a :class:`Question` or its name; by default found from the file name.
        timeout: seconds allowed for all checks of the question together.
        seed: seeds the random inputs (the same seed gives the same inputs).
        isolate: run in a subprocess (safe against endless loops and crashes); False runs
            in this process (faster; the time limit then uses SIGALRM where available).
    """
    path = pathlib.Path(path).resolve()
    if not isinstance(question, Question):
        question = find_question(question if question is not None else path.stem)
    if not path.is_file():
        return Result(question.name, str(path), 0, question.max_points, [], question.checks[0].name,
                      f"file not found: {path}")
    try:
        if isolate:
            return _grade_isolated(question, path, seed, timeout)
        return _grade_in_process(question, path, seed, timeout)
    except Exception as error:          # the grader must not crash on a student's file
        return Result(question.name, str(path), 0, question.max_points, [], question.checks[0].name,
                      f"the grader could not grade this file: {type(error).__name__}: {error}")


def find_exercises(paths):
    """Map ``paths`` (files or folders) to ``[(Question, file)]`` plus a list of problems.

    A folder contributes every question's file ``<name>.py`` (missing files are listed and
    graded as 0); a file is matched to its question by name (``q2_iou.py`` or ``q2_*.py``).
    """
    found, problems, seen = [], [], set()
    for raw in paths:
        p = pathlib.Path(raw)
        if p.is_dir():
            files = [(q, p / f"{q.name}.py") for q in QUESTIONS.values()]
            if not any(f.is_file() for _, f in files):
                problems.append(f"no exercise files (q1_aspp_forward.py, ...) in folder {p}")
                continue
        elif p.is_file():
            try:
                files = [(find_question(p.stem), p)]
            except ValueError:
                problems.append(f"{p}: not an exercise file (known: {', '.join(QUESTIONS)})")
                continue
        else:
            problems.append(f"no such file or folder: {p}")
            continue
        for q, f in files:
            key = f.resolve()
            if key not in seen:
                seen.add(key)
                found.append((q, f))
    return found, problems


def grade(paths=("exercises",), timeout=DEFAULT_TIMEOUT, seed=0, isolate=True):
    """Grade every exercise found in ``paths``; returns ``(results, problems)``."""
    found, problems = find_exercises(paths)
    return [grade_file(f, q, timeout=timeout, seed=seed, isolate=isolate) for q, f in found], problems


# ====================================================================== reporting
def format_result(result, width=20):
    """``'q2_iou               3/4  check 'boolean masks': ... Hint: ...'`` (one line)."""
    score = f"{result.points}/{result.max_points}"
    message = result.message.replace("\n", " ")
    return f"{result.name:<{width}} {score:>5}  {message}"


def report(results, stream=None):
    """Print one line per question and the total to ``stream`` (default stdout)."""
    stream = stream or sys.stdout
    width = max([len(r.name) for r in results] + [5])
    for r in results:
        print(format_result(r, width), file=stream)
    total, possible = sum(r.points for r in results), sum(r.max_points for r in results)
    print("-" * (width + 8), file=stream)
    done = "  all questions complete" if results and total == possible else ""
    print(f"{'total':<{width}} {f'{total}/{possible}':>5}{done}", file=stream)


def to_json(results):
    """The gradebook record: the total and, per question, points, checks and message."""
    return {"total": sum(r.points for r in results),
            "max_total": sum(r.max_points for r in results),
            "questions": [{"name": r.name, "file": r.file, "points": r.points,
                           "max_points": r.max_points, "passed": list(r.passed),
                           "failed": r.failed, "message": r.message} for r in results]}


# ====================================================================== entry points
def add_arguments(parser):
    """Add ``grade``'s arguments to an ``argparse`` parser (used by ``minisegnet grade``)."""
    parser.add_argument("paths", nargs="*", default=[], metavar="PATH",
                        help="exercise files or folders to grade (default: the exercises/ folder "
                             "in the working directory or the nearest one above it)")
    parser.add_argument("--json", metavar="FILE", default=None,
                        help="also write the results as JSON to FILE (for a gradebook)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="SECONDS",
                        help=f"time limit per question (default {DEFAULT_TIMEOUT:g})")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random test inputs")
    return parser


def cli(args):
    """Run ``minisegnet grade`` with parsed ``args`` (``.paths``, ``.json``, optional
    ``.timeout``, ``.seed``). Returns the exit code: 0 at full marks, 1 otherwise, 2 when
    nothing could be graded or the JSON file could not be written."""
    paths = list(getattr(args, "paths", None) or [_find_exercises_dir(fallback=False) or "exercises"])
    timeout = getattr(args, "timeout", None) or DEFAULT_TIMEOUT
    seed = getattr(args, "seed", None) or 0
    results, problems = grade(paths, timeout=timeout, seed=seed, isolate=True)
    for problem in problems:
        print(f"minisegnet grade: {problem}", file=sys.stderr)
    if results:
        report(results)
    json_path = getattr(args, "json", None)
    if json_path:
        try:
            pathlib.Path(json_path).write_text(json.dumps(to_json(results), indent=2) + "\n",
                                               encoding="utf-8")
        except OSError as error:
            print(f"minisegnet grade: could not write --json file {json_path}: {error}", file=sys.stderr)
            return 2
    if not results or problems:
        return 2 if not results else 1
    return 0 if all(r.complete for r in results) else 1


def main(argv=None):
    """``python -m minisegnet.grading [PATH ...] [--json FILE]``; returns the exit code."""
    parser = argparse.ArgumentParser(prog="minisegnet grade",
                                     description="Grade the exercises against the library.")
    return cli(add_arguments(parser).parse_args(argv))


def _find_exercises_dir(fallback=True):
    """``exercises/`` in the working directory or the nearest folder above it (notebooks
    run in ``lectures/``); else, with ``fallback``, the one next to the package (None without)."""
    here = pathlib.Path.cwd()
    for folder in (here, *here.parents):
        if (folder / "exercises").is_dir():
            return folder / "exercises"
    return pathlib.Path(__file__).resolve().parents[1] / "exercises" if fallback else None


def check(name, path=None, timeout=DEFAULT_TIMEOUT, isolate=True):
    """Grade one question in place and print its result line; True at full marks.

    For lecture notebooks: after completing ``exercises/q2_iou.py``, run ``check("q2")``.
    ``path`` is the file to grade (or a folder holding it); by default the ``exercises``
    folder is found from the working directory.
    """
    question = find_question(name)
    path = pathlib.Path(path) if path is not None else _find_exercises_dir()
    if path.is_dir():
        path = path / f"{question.name}.py"
    result = grade_file(path, question, timeout=timeout, isolate=isolate)
    print(format_result(result, width=len(question.name)))
    return result.complete


if __name__ == "__main__":
    sys.exit(main())
