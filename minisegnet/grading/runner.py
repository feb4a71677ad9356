"""The student's side of the grader: a small program that runs one exercise file.

The grader starts this file's source in a fresh interpreter (``python -s -c <source>
IN_FD OUT_FD``) inside an empty temporary folder. It holds none of the checks, none of the
reference answers and none of the comparison code: it only

1. reads the *start* frame from the pipe ``IN_FD`` (the question's name, the exercise file,
   the limits, the answer key to switch off and a random nonce),
2. applies the limits (address space, file size, no core files), switches off the
   library's answer to this question, refuses imports of ``minisegnet.grading``,
3. loads the student's file and then serves requests: *call* ``entry(*args)`` or run a
   *module* (build it, load the given weights, forward, backward), sending back the raw
   results (arrays, numbers, gradients) on the pipe ``OUT_FD``, every frame tagged with
   the nonce; the last frame is *done*.

The grader (the parent process) computes the references and decides pass or fail. What
this process prints, and its exit code, prove nothing.

Frames are a 4-byte big-endian length and a JSON body; arrays travel as
``{"__nd__": [dtype, shape, base64 bytes]}`` (no pickle in either direction).
This file imports only the standard library, NumPy and the minisegnet library itself;
``encode`` and ``decode`` are also used by the parent.
"""
import base64
import builtins
import fnmatch
import importlib
import json
import os
import pkgutil
import struct
import sys
import traceback

import numpy as np

MAX_FRAME = 64 << 20
ARRAY_DTYPES = ("bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
                "float16", "float32", "float64")
MAX_DEPTH = 8


class Unusable:
    """Stands for a value the child could not send (an object that is not data)."""

    def __init__(self, what):
        self.what = what

    def __repr__(self):
        return f"<{self.what}>"


# ---------------------------------------------------------------------- frames and values
def encode(value, depth=0):
    """``value`` as JSON-ready data: arrays (and Tensors) as ``__nd__``, sequences, dicts,
    numbers, strings and None as themselves; anything else as ``__obj__`` (its type name)."""
    if depth > MAX_DEPTH:
        return {"__obj__": "a value nested too deeply"}
    if value is None or isinstance(value, (bool, int, float, str)):
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 2 ** 63:
            return float(value)
        return value
    if hasattr(value, "detach") and hasattr(value, "numpy") and hasattr(value, "requires_grad"):
        value = value.detach().numpy()              # a minisegnet Tensor
    if isinstance(value, np.generic):
        value = np.asarray(value)
    if isinstance(value, np.ndarray):
        if value.dtype.name not in ARRAY_DTYPES:
            try:
                value = value.astype(np.float64)
            except (TypeError, ValueError):
                return {"__obj__": f"array of dtype {value.dtype}"}
        data = value.copy(order="C")     # (ascontiguousarray would make 0-d arrays 1-d)
        return {"__nd__": [data.dtype.name, list(data.shape), base64.b64encode(data.tobytes()).decode()]}
    if isinstance(value, (list, tuple)):
        return {"__seq__": type(value).__name__ == "tuple",
                "items": [encode(v, depth + 1) for v in value]}
    if isinstance(value, dict):
        return {"__map__": [[str(k), encode(v, depth + 1)] for k, v in value.items()]}
    return {"__obj__": type(value).__name__}


def decode(data):
    """The inverse of :func:`encode` (arrays come back as writable NumPy arrays; a value
    that could not be sent comes back as :class:`Unusable`)."""
    if isinstance(data, list):
        return [decode(v) for v in data]
    if not isinstance(data, dict):
        return data
    if "__nd__" in data:
        dtype, shape, raw = data["__nd__"]
        if dtype not in ARRAY_DTYPES:
            raise ValueError(f"refused array dtype {dtype!r}")
        array = np.frombuffer(base64.b64decode(raw), dtype=dtype)
        return array.reshape([int(s) for s in shape]).copy()
    if "__seq__" in data:
        items = [decode(v) for v in data["items"]]
        return tuple(items) if data["__seq__"] else items
    if "__map__" in data:
        return {str(k): decode(v) for k, v in data["__map__"]}
    if "__obj__" in data:
        return Unusable(str(data["__obj__"]))
    raise ValueError("unknown value in a frame")


def pack(message):
    """One frame: a 4-byte length and the JSON body."""
    body = json.dumps(message).encode("utf-8")
    return struct.pack(">I", len(body)) + body


def _read_exact(fd, n):
    chunks = []
    while n:
        chunk = os.read(fd, min(n, 1 << 20))
        if not chunk:
            raise EOFError("the grader closed the pipe")
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def read_frame(fd):
    (n,) = struct.unpack(">I", _read_exact(fd, 4))
    if n > MAX_FRAME:
        raise ValueError("frame too large")
    return json.loads(_read_exact(fd, n).decode("utf-8"))


# ---------------------------------------------------------------------- the answer key, off
class AnswerKeyOff(Exception):
    """Raised by a library function that is this question's answer key."""


def _raise_off(name, question):
    raise AnswerKeyOff(f"the library's `{name}` is the answer key for {question} and is off "
                       f"while grading")


def _switch_off(function, name, question):
    """Make ``function`` raise :class:`AnswerKeyOff` wherever it is referenced from: its
    code object is replaced, so imported aliases and the library's own callers see it too."""
    source = (f"def {function.__code__.co_name}(*args, **kwargs):\n"
              f"    __minisegnet_answer_key_off__({name!r}, {question!r})\n")
    scope = {}
    exec(compile(source, f"<answer key {name} off>", "exec"), scope)
    replacement = next(v for v in scope.values() if callable(v)).__code__
    if function.__code__.co_freevars:
        replacement = replacement.replace(co_freevars=function.__code__.co_freevars)
    function.__code__ = replacement


def _functions_of(obj):
    """The plain functions of a class (methods, static and class methods) or the function itself."""
    if isinstance(obj, type):
        found = []
        for value in vars(obj).values():
            value = getattr(value, "__func__", value)
            if callable(value) and hasattr(value, "__code__"):
                found.append(value)
        return found
    obj = getattr(obj, "__func__", obj)
    return [obj] if hasattr(obj, "__code__") else []


def _modules_matching(pattern):
    """Import the modules named by ``pattern`` (``fnmatch`` style, e.g. ``minisegnet.kernels.conv*``)."""
    if not any(c in pattern for c in "*?["):
        return [importlib.import_module(pattern)]
    package, _, _ = pattern.rpartition(".")
    parent = importlib.import_module(package)
    names = [f"{package}.{m.name}" for m in pkgutil.iter_modules(parent.__path__)]
    return [importlib.import_module(n) for n in names if fnmatch.fnmatch(n, pattern)]


def switch_off_answer_key(targets, question):
    """Switch off every ``'module:attribute.path'`` of ``targets``; an attribute with
    wildcards (``'module:*'``, ``'module:adaptive_*'``) means every matching function and
    class defined in that module. Returns the names switched off."""
    builtins.__minisegnet_answer_key_off__ = _raise_off
    done = []
    for target in targets:
        module_pattern, _, attribute = target.partition(":")
        for module in _modules_matching(module_pattern):
            if any(c in attribute for c in "*?["):
                objects = [(n, v) for n, v in vars(module).items()
                           if fnmatch.fnmatch(n, attribute)
                           and getattr(v, "__module__", None) == module.__name__
                           and (isinstance(v, type) or hasattr(v, "__code__"))]
            else:
                obj = module
                try:
                    for part in attribute.split("."):
                        obj = vars(obj)[part] if isinstance(obj, type) else getattr(obj, part)
                except (AttributeError, KeyError):
                    continue                      # not in this version of the library
                objects = [(attribute, obj)]
            for name, obj in objects:
                for function in _functions_of(obj):
                    _switch_off(function, name, question)
                done.append(f"{module.__name__}.{name}")
    return done


class _RefuseGraderImports:
    """A meta-path finder: the grader's own package (and re-imports of the answer key's
    modules) cannot be imported by the student's code."""

    def __init__(self, modules):
        self.modules = set(modules)

    def find_spec(self, name, path=None, target=None):
        if name == "minisegnet.grading" or name.startswith("minisegnet.grading."):
            raise ImportError("the grader's own modules are not available while grading")
        if name in self.modules and name in sys.modules:
            raise ImportError(f"{name} cannot be reloaded while grading")
        return None


# ---------------------------------------------------------------------- running student code
def describe_error(error, path):
    """``{'kind', 'type', 'message', 'line'}`` for an exception from the student's code."""
    text = str(error).strip().replace("\n", " ")
    if len(text) > 300:
        text = text[:300] + "..."
    frames = traceback.extract_tb(error.__traceback__)
    mine = [f for f in frames if os.path.abspath(f.filename) == path]
    kind = "raised"
    if isinstance(error, AnswerKeyOff):
        kind = "answer_key"
    elif isinstance(error, MemoryError):
        kind = "memory"
    elif isinstance(error, NotImplementedError) and frames and os.path.abspath(frames[-1].filename) == path:
        kind = "not_implemented"
    elif isinstance(error, SystemExit):
        kind = "exit"
    return {"kind": kind, "type": type(error).__name__, "message": text,
            "line": mine[-1].lineno if mine else None}


def _load(path):
    import importlib.util
    spec = importlib.util.spec_from_file_location("_minisegnet_exercise", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["_minisegnet_exercise"] = module       # dataclasses look modules up here
    spec.loader.exec_module(module)
    return module


def _tensors(arrays, requires_grad):
    from minisegnet.tensor import float64, tensor
    return [tensor(np.array(a, dtype=np.float64), dtype=float64, device="cpu",
                   requires_grad=requires_grad) for a in arrays]


def run_module(student, request):
    """Build ``entry(**kwargs)`` in float64, load ``state``, run it on ``inputs`` (one
    array, or a list when ``as_list``) followed by the plain values ``extra_args`` (e.g. a
    token grid's ``(H, W)``) and, with ``grads``, backpropagate ``upstream``.

    Returns ``{'output', 'input_grads', 'param_grads', 'connected'}`` or ``{'problem'}``.
    """
    from minisegnet.tensor import Tensor, float64, no_grad
    cls = getattr(student, request["entry"])
    module = cls(**request["kwargs"])
    if not hasattr(module, "load_state_dict"):
        return {"problem": f"{request['entry']} must be a minisegnet nn.Module"}
    module.to("cpu", dtype=float64)
    try:
        module.load_state_dict(request["state"])
    except ValueError as error:
        return {"problem": f"{request['entry']}'s layers differ from the reference's ({error}); "
                           f"keep __init__ as it was given"}
    module.train(bool(request["train"]))
    grads = bool(request["grads"])
    inputs = _tensors(request["inputs"], grads)
    argument = list(inputs) if request["as_list"] else inputs[0]
    extra = list(request.get("extra_args") or ())
    if grads:
        output = module(argument, *extra)
    else:
        with no_grad():
            output = module(argument, *extra)
    if not isinstance(output, Tensor):
        return {"problem": f"forward must return a minisegnet Tensor, got {type(output).__name__}"}
    result = {"output": output.detach().numpy(), "connected": bool(output.requires_grad)}
    if grads and output.requires_grad:
        (upstream,) = _tensors([request["upstream"]], False)
        output.backward(upstream)
        result["input_grads"] = [None if t.grad is None else t.grad.numpy() for t in inputs]
        result["param_grads"] = {name: (None if p.grad is None else p.grad.numpy())
                                 for name, p in module.named_parameters()}
    return result


def serve(in_fd, out_fd):
    """The request loop (see the module docstring). Returns the exit code."""
    start = read_frame(in_fd)
    nonce = start["nonce"]

    def send(message):
        message["nonce"] = nonce
        _write_all(out_fd, pack(message))

    # the library is imported (and its answer key switched off) before the limits apply
    switched = switch_off_answer_key(start.get("answer_key", ()), start["question"])
    import minisegnet.tensor  # noqa: F401
    limits = start.get("limits", {})
    try:
        import resource
        for name, value in (("RLIMIT_AS", limits.get("memory")), ("RLIMIT_FSIZE", limits.get("fsize")),
                            ("RLIMIT_CORE", 0)):
            if value is not None and hasattr(resource, name):
                resource.setrlimit(getattr(resource, name), (int(value), int(value)))
    except (ImportError, ValueError, OSError):
        pass
    _become_subreaper()
    path = os.path.abspath(start["path"])
    sys.meta_path.insert(0, _RefuseGraderImports([t.split(":")[0] for t in start.get("answer_key", ())
                                                  if "*" not in t.split(":")[0]]))
    sys.argv = [path]
    try:
        student = _load(path)
    except SyntaxError as error:
        send({"op": "load_error", "error": {"kind": "syntax", "type": "SyntaxError",
                                            "message": str(error.msg), "line": error.lineno}})
        return 0
    except BaseException as error:      # noqa: B036 -- the student's module may raise anything
        send({"op": "load_error", "error": describe_error(error, path)})
        return 0
    missing = [e for e in start.get("entries", ()) if not hasattr(student, e)]
    send({"op": "loaded", "missing": missing, "switched_off": switched})
    while True:
        try:
            request = read_frame(in_fd)
        except EOFError:
            return 0
        if request.get("op") == "done":
            send({"op": "done"})
            return 0
        request_id = request.get("id")
        try:
            args = decode(request.get("args", []))
            if request["op"] == "call":
                value = getattr(student, request["entry"])(*args, **decode(request.get("kwargs", {})))
            else:
                value = run_module(student, decode(request["module"]))
            reply = {"op": "result", "id": request_id, "value": encode(value)}
        except BaseException as error:  # noqa: B036
            reply = {"op": "raised", "id": request_id, "error": describe_error(error, path)}
        try:
            send(reply)
        except MemoryError:
            send({"op": "raised", "id": request_id,
                  "error": {"kind": "memory", "type": "MemoryError", "message": "", "line": None}})


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _become_subreaper():
    """Linux: orphaned processes started by the student's code are re-parented to this
    process (so the grader finds and stops them), not to init."""
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(36, 1, 0, 0, 0)       # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        pass


if __name__ == "__main__":
    sys.exit(serve(int(sys.argv[1]), int(sys.argv[2])))
