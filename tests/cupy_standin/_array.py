"""The stand-in ``cupy.ndarray``: a NumPy array held inside a wrapper that behaves like device memory.

It is *not* an ``ndarray`` subclass, so NumPy cannot see through it: ``np.asarray(x)`` raises
the ``TypeError`` CuPy raises, arithmetic with a NumPy array raises, and only the methods and
properties CuPy's ``_ndarray_base`` has exist (see ``_cupy_api.py``). Scalars out of reductions
and integer indexing stay 0-d arrays, as on a GPU. Every implicit device-to-host transfer CuPy
allows (``float(x)``, ``int(x)``, ``bool(x)``, ``x.item()``, ``x.get()``) is counted in
``STATE.syncs`` so that tests can see where host synchronisation happens.
"""
import inspect
import numbers

import numpy as np

from . import _cupy_api as api

IMPLICIT_CONVERSION = ("Implicit conversion to a NumPy array is not allowed. "
                       "Please use `.get()` to construct a NumPy array explicitly.")


class _State:
    """Knobs and counters of the simulated device (tests change them through ``simulate``)."""

    def __init__(self):
        self.syncs = 0
        self.device_count = 1
        self.compute_capability = "90"
        self.nvrtc_available = True
        self.kernel_launches = {}
        self.sync_hook = None          # called with a short description at each sync (tests)


STATE = _State()


def count_sync(what):
    """One device-to-host transfer: CuPy makes the host wait for the device here."""
    STATE.syncs += 1
    if STATE.sync_hook is not None:
        STATE.sync_hook(what)


def parse_signature(text):
    """``'a, axis=, *, keepdims='`` -> an ``inspect.Signature`` (defaults are placeholders)."""
    P = inspect.Parameter
    params, kind = [], P.POSITIONAL_OR_KEYWORD
    for p in (t.strip() for t in text.split(",")):
        if not p:
            continue
        if p == "/":
            params = [q.replace(kind=P.POSITIONAL_ONLY) for q in params]
        elif p == "*":
            kind = P.KEYWORD_ONLY
        elif p.startswith("**"):
            params.append(P(p[2:], P.VAR_KEYWORD))
        elif p.startswith("*"):
            params.append(P(p[1:], P.VAR_POSITIONAL))
            kind = P.KEYWORD_ONLY
        else:
            params.append(P(p.rstrip("="), kind, default=None if p.endswith("=") else P.empty))
    return inspect.Signature(params)


_SIGNATURES = {}


def check_call(qualname, signatures, args, kwargs):
    """Raise ``TypeError`` unless ``args, kwargs`` bind to every CuPy version's signature."""
    for text in signatures:
        sig = _SIGNATURES.get(text)
        if sig is None:
            sig = _SIGNATURES[text] = parse_signature(text)
        try:
            sig.bind(*args, **kwargs)
        except TypeError as e:
            raise TypeError(f"{qualname}() {e} (CuPy's signature: {qualname}({text}))") from None


def unsupported(x):
    return TypeError(f"Unsupported type {type(x)}")


def unwrap(x, host_ok=False):
    """Stand-in arrays -> their NumPy data (recursively in lists and tuples).

    A NumPy array is refused (``TypeError``, as CuPy raises) unless ``host_ok``: only the
    functions that copy host data to the device accept one, and then they get a copy.
    """
    if isinstance(x, ndarray):
        return x._a
    if isinstance(x, np.ndarray):
        if host_ok:
            return np.array(x, copy=True)
        raise unsupported(x)
    if isinstance(x, (list, tuple)):
        return type(x)(unwrap(v, host_ok) for v in x)
    return x


def wrap(x):
    """NumPy results -> stand-in arrays; NumPy scalars become 0-d arrays (they live on the device)."""
    if isinstance(x, np.ndarray):
        return ndarray._from_numpy(x)
    if isinstance(x, np.generic):
        return ndarray._from_numpy(np.asarray(x))
    if isinstance(x, tuple):
        return tuple(wrap(v) for v in x)
    if isinstance(x, list):
        return [wrap(v) for v in x]
    return x


def is_scalar_operand(x):
    """Python and NumPy scalars (what CuPy's kernels accept besides device arrays)."""
    return isinstance(x, (numbers.Number, np.generic)) and not isinstance(x, np.ndarray)


class Flags:
    """CuPy's ``ndarray.flags``: only ``c_contiguous``, ``f_contiguous`` and ``owndata``."""
    __slots__ = ("c_contiguous", "f_contiguous", "owndata")

    def __init__(self, c_contiguous, f_contiguous, owndata):
        self.c_contiguous = c_contiguous
        self.f_contiguous = f_contiguous
        self.owndata = owndata

    def __getitem__(self, name):
        key = {"C_CONTIGUOUS": "c_contiguous", "F_CONTIGUOUS": "f_contiguous", "OWNDATA": "owndata"}
        if name not in key:
            raise KeyError(f"{name} is not defined for cupy.ndarray.flags")
        return getattr(self, key[name])

    def __repr__(self):
        return "\n".join(f"  {k.upper()} : {getattr(self, k)}" for k in self.__slots__)


class MemoryPointer:
    """``x.data``: only its ``ptr`` (an address) is offered."""

    def __init__(self, a):
        self.ptr = a.__array_interface__["data"][0]


_METHOD_OVERRIDES = {}


class ndarray:
    """A device array of the stand-in (``cupy.ndarray``)."""
    __slots__ = ("_a",)
    __hash__ = None

    def __init__(self, shape, dtype=float, memptr=None, strides=None, order="C"):
        if memptr is not None or strides is not None:
            raise NotImplementedError("the stand-in does not build arrays on raw memory")
        self._a = np.empty(shape, dtype=dtype, order=order)

    @classmethod
    def _from_numpy(cls, a):
        obj = cls.__new__(cls)
        obj._a = a
        return obj

    # --- what CuPy refuses -------------------------------------------------------------
    def __array__(self, dtype=None, copy=None):
        raise TypeError(IMPLICIT_CONVERSION)

    def __getattr__(self, name):
        if name in api.NDARRAY_METHODS and not name.startswith("__"):
            impl = _METHOD_OVERRIDES.get(name)
            signatures = api.NDARRAY_METHODS[name]

            def method(*args, **kwargs):
                check_call(f"cupy.ndarray.{name}", signatures, args, kwargs)
                if impl is not None:
                    return impl(self, *args, **kwargs)
                if not hasattr(self._a, name):
                    raise NotImplementedError(f"the stand-in has no NumPy twin for cupy.ndarray.{name}")
                if name == "nonzero":
                    count_sync(name)              # the count of nonzeros is read back, as in cupy.nonzero
                a = [unwrap(v) for v in args]
                k = {key: unwrap(v) for key, v in kwargs.items()}
                out = k.get("out")
                result = getattr(self._a, name)(*a, **k)
                return kwargs["out"] if out is not None else wrap(result)
            method.__name__ = name
            return method
        raise AttributeError(f"'cupy.ndarray' object has no attribute '{name}'"
                             " (not in CuPy's ndarray: see tests/cupy_standin/_cupy_api.py)")

    # --- NumPy protocols: dispatch to the stand-in's cupy functions (which refuse host arrays)
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        from . import _module
        f = _module.lookup_ufunc(ufunc.__name__)
        if f is None:
            return NotImplemented
        if "out" in kwargs:
            out = kwargs["out"]
            if len(out) != 1:
                raise ValueError("The 'out' parameter must have exactly one array value")
            kwargs["out"] = out[0]
        if method != "__call__":
            f = getattr(f, method)
        return f(*inputs, **kwargs)

    def __array_function__(self, func, types, args, kwargs):
        from . import _module
        f = _module.lookup_function(func.__name__) if func.__module__ == "numpy" else None
        if f is None:
            return NotImplemented
        return f(*args, **kwargs)

    # --- properties --------------------------------------------------------------------
    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    itemsize = property(lambda self: self._a.itemsize)
    nbytes = property(lambda self: self._a.nbytes)
    strides = property(lambda self: self._a.strides)
    T = property(lambda self: wrap(self._a.T))
    real = property(lambda self: wrap(self._a.real))
    imag = property(lambda self: wrap(self._a.imag))
    data = property(lambda self: MemoryPointer(self._a))

    @shape.setter
    def shape(self, value):
        self._a.shape = value

    @property
    def flags(self):
        f = self._a.flags
        return Flags(bool(f.c_contiguous), bool(f.f_contiguous), bool(f.owndata))

    @property
    def base(self):
        b = self._a.base
        return ndarray._from_numpy(b) if isinstance(b, np.ndarray) else None

    @property
    def device(self):
        from .cuda import Device
        return Device(0)

    # --- explicit transfers -------------------------------------------------------------
    def get(self, stream=None, order="C", out=None, blocking=True):
        count_sync("get")
        if out is not None:
            if not isinstance(out, np.ndarray):
                raise TypeError("Only numpy.ndarray can be obtained from cupy.ndarray")
            out[...] = self._a
            return out
        return np.array(self._a, order=order, copy=True)

    def set(self, arr, stream=None):
        if not isinstance(arr, np.ndarray):
            raise TypeError(f"Only numpy.ndarray can be set to cupy.ndarray, got {type(arr)}")
        if arr.shape != self.shape or arr.dtype != self.dtype:
            raise ValueError("Shape or dtype mismatch in cupy.ndarray.set")
        self._a[...] = arr

    def item(self):
        count_sync("item")
        return self._a.item()

    def tolist(self):
        count_sync("tolist")
        return self._a.tolist()

    # --- conversions CuPy allows (each a device-to-host synchronisation) -----------------
    def __int__(self):
        count_sync("__int__")
        return int(self._a)

    def __float__(self):
        count_sync("__float__")
        return float(self._a)

    def __complex__(self):
        count_sync("__complex__")
        return complex(self._a)

    def __bool__(self):
        if self.size == 0:
            return False
        if self.size != 1:
            raise ValueError("The truth value of an array with more than one element is "
                             "ambiguous. Use a.any() or a.all()")
        count_sync("__bool__")
        return bool(self._a)

    def __format__(self, spec):
        count_sync("__format__")
        return format(self._a, spec) if self.ndim else format(self._a.item(), spec)

    def __repr__(self):
        return repr(self._a)

    def __str__(self):
        return str(self._a)

    # --- containers ---------------------------------------------------------------------
    def __len__(self):
        if self.ndim == 0:
            raise TypeError("len() of unsized object")
        return self.shape[0]

    def __iter__(self):
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d array")
        return (self[i] for i in range(self.shape[0]))

    def __getitem__(self, key):
        key = _index_key(key)
        if _has_mask(key):
            count_sync("boolean mask indexing")     # CuPy reads the number of True values back
        return wrap(self._a[key])

    def __setitem__(self, key, value):
        if isinstance(value, np.ndarray) and value.ndim:
            raise ValueError("non-scalar numpy.ndarray cannot be used for fill")
        if not isinstance(value, ndarray) and not is_scalar_operand(value) \
                and not isinstance(value, np.ndarray):
            raise unsupported(value)
        key = _index_key(key)
        if _has_mask(key):
            count_sync("boolean mask assignment")   # as for reading (CuPy's _scatter_op_mask_single)
        self._a[key] = unwrap(value, host_ok=True)

    def __copy__(self):
        return wrap(self._a.copy())

    def __deepcopy__(self, memo):
        return wrap(self._a.copy())

    def __reduce__(self):
        raise TypeError("the stand-in does not pickle device arrays; use .get()")


def _index_key(key):
    """Indices may be ints, slices, None, Ellipsis, device arrays, lists or NumPy arrays (CuPy
    copies those to the device)."""
    items = key if isinstance(key, tuple) else (key,)
    out = []
    for k in items:
        if isinstance(k, ndarray):
            k = k._a
        out.append(k)
    return tuple(out) if isinstance(key, tuple) else out[0]


def _has_mask(key):
    """Does an (unwrapped) index hold a boolean array? CuPy's boolean-mask indexing, reading or
    assigning, first counts the True values on the device and reads that count back
    (``_prepare_mask_indexing_single`` in cupy/_core/_routines_indexing.pyx): a sync."""
    items = key if isinstance(key, tuple) else (key,)
    for k in items:
        if isinstance(k, list):
            k = np.asarray(k)
        if isinstance(k, np.ndarray) and k.dtype == np.bool_ and k.ndim > 0:
            return True
    return False


def _binary(np_name, reflected=False):
    def op(self, other):
        from . import _module
        if not (isinstance(other, ndarray) or is_scalar_operand(other)):
            if isinstance(other, np.ndarray):
                raise unsupported(other)
            return NotImplemented
        f = _module.lookup_ufunc(np_name)
        return f(other, self) if reflected else f(self, other)
    return op


def _inplace(np_name):
    def op(self, other):
        from . import _module
        if not (isinstance(other, ndarray) or is_scalar_operand(other)):
            raise unsupported(other)
        _module.lookup_ufunc(np_name)(self, other, out=self)
        return self
    return op


for _dunder, _ufunc in [("add", "add"), ("sub", "subtract"), ("mul", "multiply"),
                        ("truediv", "true_divide"), ("floordiv", "floor_divide"),
                        ("mod", "remainder"), ("pow", "power"), ("matmul", "matmul"),
                        ("and", "bitwise_and"), ("or", "bitwise_or"), ("xor", "bitwise_xor"),
                        ("lshift", "left_shift"), ("rshift", "right_shift"),
                        ("divmod", "divmod")]:
    setattr(ndarray, f"__{_dunder}__", _binary(_ufunc))
    setattr(ndarray, f"__r{_dunder}__", _binary(_ufunc, reflected=True))
    if _dunder != "divmod":
        setattr(ndarray, f"__i{_dunder}__", _inplace(_ufunc))
for _dunder, _ufunc in [("lt", "less"), ("le", "less_equal"), ("gt", "greater"),
                        ("ge", "greater_equal")]:
    setattr(ndarray, f"__{_dunder}__", _binary(_ufunc))


def _eq(name, fill):
    compare = _binary(name)

    def op(self, other):
        if other is None or type(other).__eq__ is object.__eq__ and not isinstance(other, ndarray):
            return wrap(np.full(self.shape, fill))
        return compare(self, other)
    return op


ndarray.__eq__ = _eq("equal", False)
ndarray.__ne__ = _eq("not_equal", True)


def _unary(name):
    def op(self):
        from . import _module
        return _module.lookup_ufunc(name)(self)
    return op


ndarray.__neg__ = _unary("negative")
ndarray.__pos__ = _unary("positive")
ndarray.__abs__ = _unary("absolute")
ndarray.__invert__ = _unary("invert")


def _astype(self, dtype, order="K", casting=None, subok=None, copy=True):
    return wrap(self._a.astype(dtype, order=order, copy=copy))


def _reshape(self, *shape, order="C", copy=None):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    for s in shape:
        if isinstance(s, ndarray):
            raise TypeError("a cupy.ndarray is not a shape: use a tuple of Python ints")
    return wrap(self._a.reshape(shape, order=order))


def _copy(self, order="C"):
    return wrap(self._a.copy(order=order))


def _view(self, dtype=None, array_class=None):
    if array_class is not None:
        raise NotImplementedError("the stand-in has no array_class views")
    return wrap(self._a.view() if dtype is None else self._a.view(dtype))


def _transpose(self, *axes):
    if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
        axes = tuple(axes[0])
    return wrap(self._a.transpose(*axes) if axes else self._a.transpose())


def _fill(self, value):
    if isinstance(value, np.ndarray) and value.ndim:
        raise ValueError("non-scalar numpy.ndarray cannot be used for fill")
    self._a.fill(unwrap(value, host_ok=True) if not isinstance(value, ndarray) else value._a)


_METHOD_OVERRIDES.update(astype=_astype, reshape=_reshape, copy=_copy, view=_view,
                         transpose=_transpose, fill=_fill)
