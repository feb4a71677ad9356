"""The stand-in's ``cupy.<name>`` functions and ufuncs, built on demand from CuPy's API table.

A name exists only if CuPy has it (``_cupy_api.FUNCTIONS`` / ``OTHER_NAMES``); a call must bind
to CuPy's signature; arguments must be device arrays or scalars (a NumPy array raises the
``TypeError`` CuPy raises), except in the few functions that copy host data to the device.
The work itself is done by the NumPy function of the same name on the wrapped data.
"""
import numpy as np

from . import _cupy_api as api
from ._array import STATE, check_call, count_sync, is_scalar_operand, ndarray, unsupported, unwrap, wrap

# the functions that accept host (NumPy) arrays: they copy them to the device
HOST_TO_DEVICE = {"array", "asarray", "asanyarray"}
# output shape depends on the data: CuPy counts on the device and reads the count back, a
# device-to-host sync (``_ndarray_argwhere`` in cupy/_core/_routines_indexing.pyx; unique and
# extract index with a boolean mask, cupy/_manipulation/add_remove.py, _indexing/indexing.py)
DATA_DEPENDENT_SHAPE = {"nonzero", "argwhere", "flatnonzero", "unique", "extract"}

_cache = {}


class ufunc:
    """``cupy.ufunc``: elementwise on device arrays and scalars; keywords ``out``, ``dtype``,
    ``casting`` only; ``.at`` only where CuPy has a scatter kernel (add, subtract)."""

    def __init__(self, name):
        self._np = getattr(np, name)
        self.__name__ = name
        self.name = "cupy_" + name
        self.nin, self.nout, self.nargs = self._np.nin, self._np.nout, self._np.nargs

    def __repr__(self):
        return f"<ufunc '{self.__name__}'>"

    def __call__(self, *args, **kwargs):
        out = kwargs.pop("out", None)
        dtype = kwargs.pop("dtype", None)
        casting = kwargs.pop("casting", "same_kind")
        if kwargs:
            raise TypeError(f"Wrong arguments {kwargs}")
        if not self.nin <= len(args) <= self.nargs:
            raise TypeError(f"Wrong number of arguments for '{self.name}'. It must be either "
                            f"{self.nin} or {self.nargs} (with outputs), but given {len(args)}.")
        ins, outs = args[:self.nin], args[self.nin:]
        if out is not None:
            if outs:
                raise ValueError("cannot specify 'out' as both a positional and keyword argument")
            outs = out if isinstance(out, tuple) else (out,)
        for x in ins:
            if not (isinstance(x, ndarray) or is_scalar_operand(x)):
                raise unsupported(x)
        for o in outs:
            if o is not None and not isinstance(o, ndarray):
                raise TypeError("Output arguments must be cupy.ndarray")
        k = {"casting": casting}
        if dtype is not None:
            k["dtype"] = dtype
        if outs:
            k["out"] = tuple(o._a if o is not None else None for o in outs)
        result = self._np(*(unwrap(x) for x in ins), **k)
        if outs and all(o is not None for o in outs):
            return outs[0] if len(outs) == 1 else tuple(outs)
        return wrap(result)

    def _method(self, method, supported, args, kwargs):
        check_call(f"cupy.{self.__name__}.{method}", api.UFUNC_METHODS[method], args, kwargs)
        if self.__name__ not in supported:
            raise NotImplementedError(f"`{self.name}.{method}` is not supported yet")

    def at(self, a, indices, b=None):
        self._method("at", api.UFUNC_AT_SUPPORTED, (a, indices, b), {})
        if not isinstance(a, ndarray):
            raise TypeError(f"Argument 'a' has incorrect type (expected cupy.ndarray, got {type(a).__name__})")
        allowed = {"add": ("int32", "float16", "float32", "float64", "uint32", "uint64"),
                   "subtract": ("int32", "uint32")}[self.__name__]
        if a.dtype.name not in allowed:        # CuPy casts b to a.dtype, then checks (atomics)
            raise TypeError(f"cupy.{self.__name__}.at only supports {', '.join(allowed)}, as data type")
        idx = unwrap(indices, host_ok=True)
        self._np.at(a._a, idx, unwrap(b, host_ok=True))

    def reduce(self, array, axis=0, dtype=None, out=None, keepdims=False):
        self._method("reduce", ("add", "multiply"), (array, axis, dtype, out, keepdims), {})
        return (array.sum if self.__name__ == "add" else array.prod)(axis, dtype, out, keepdims)

    def accumulate(self, array, axis=0, dtype=None, out=None):
        self._method("accumulate", ("add", "multiply"), (array, axis, dtype, out), {})
        return (array.cumsum if self.__name__ == "add" else array.cumprod)(axis, dtype, out)

    def outer(self, A, B, **kwargs):
        self._method("outer", (self.__name__,), (A, B), kwargs)
        A, B = lookup_function("asarray")(A), lookup_function("asarray")(B)
        return self(A.reshape(A.shape + (1,) * B.ndim), B.reshape((1,) * A.ndim + B.shape), **kwargs)


def lookup_ufunc(name):
    """The stand-in ufunc ``cupy.<name>`` or None (NumPy's ``true_divide`` is ``divide``)."""
    name = {"true_divide": "divide"}.get(name, name)
    if name in _cache:
        return _cache[name]
    kind = api.OTHER_NAMES.get(name)
    if kind in ("ufunc", "object") and isinstance(getattr(np, name, None), np.ufunc):
        _cache[name] = ufunc(name)
        return _cache[name]
    return None


def _host_function(name):
    """``cupy.array`` / ``asarray`` / ``asanyarray``: host data is copied to the device; a device
    array passes through (``array`` copies it unless ``copy=False``)."""
    from ._array import parse_signature

    def fn(*args, **kwargs):
        check_call(f"cupy.{name}", api.FUNCTIONS[name], args, kwargs)
        bound = parse_signature(api.FUNCTIONS[name][-1]).bind(*args, **kwargs).arguments
        obj = bound.get("obj", bound.get("a"))
        dtype, order = bound.get("dtype"), bound.get("order") or "K"
        if isinstance(obj, ndarray):
            if name == "array" and bound.get("copy", True) is not False:
                return wrap(np.array(obj._a, dtype=dtype, order=order, copy=True))
            return obj if dtype is None or np.dtype(dtype) == obj.dtype else obj.astype(dtype)
        if not (isinstance(obj, (np.ndarray, list, tuple)) or is_scalar_operand(obj)):
            raise unsupported(obj)
        return wrap(np.array(unwrap(obj, host_ok=True), dtype=dtype, order=order, copy=True))
    fn.__name__ = name
    return fn


def _asnumpy(a, stream=None, order="C", out=None, *, blocking=True):
    if isinstance(a, ndarray):
        return a.get(stream=stream, order=order, out=out)
    return np.asarray(a, order=order)


def _get_array_module(*args):
    import sys
    return sys.modules["cupy"] if any(isinstance(a, ndarray) for a in args) else np


def _is_available():
    return STATE.device_count > 0


SPECIAL = {"asnumpy": _asnumpy, "get_array_module": _get_array_module, "is_available": _is_available}


def _generic_function(name, np_fn):
    signatures = api.FUNCTIONS[name]

    def fn(*args, **kwargs):
        check_call(f"cupy.{name}", signatures, args, kwargs)
        if np_fn is None:
            raise NotImplementedError(f"the stand-in has no NumPy twin for cupy.{name}")
        out = kwargs.get("out")
        if out is not None and not isinstance(out, ndarray):
            raise TypeError("Output arguments must be cupy.ndarray")
        if name in DATA_DEPENDENT_SHAPE or name == "where" and len(args) + len(kwargs) == 1:
            count_sync(name)                 # where(condition) is nonzero(condition) in CuPy
        result = np_fn(*unwrap(list(args)), **{k: unwrap(v) for k, v in kwargs.items()})
        return out if out is not None else wrap(result)
    fn.__name__ = name
    return fn


def lookup_function(name):
    """The stand-in function ``cupy.<name>`` or None when CuPy has no such function."""
    if name in _cache:
        return _cache[name]
    if name not in api.FUNCTIONS:
        return lookup_ufunc(name)
    if name in SPECIAL:
        impl = SPECIAL[name]

        def fn(*args, **kwargs):
            check_call(f"cupy.{name}", api.FUNCTIONS[name], args, kwargs)
            return impl(*args, **kwargs)
        fn.__name__ = name
    elif name in HOST_TO_DEVICE:
        fn = _host_function(name)
    else:
        fn = _generic_function(name, getattr(np, name, None))
    _cache[name] = fn
    return fn
