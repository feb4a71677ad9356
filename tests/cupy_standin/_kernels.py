"""``cupy.RawKernel`` and ``cupy.ElementwiseKernel`` on the stand-in: launches checked, twins run.

A launch is checked the way a GPU would fail on it (or, worse, silently read garbage): grid
and block are tuples of 1-3 positive ints within CUDA's limits, the argument count matches
the kernel's parameter list, every pointer argument is a C-contiguous device array of the
pointee's dtype, every scalar argument has exactly the C type's width. Then the kernel's
NumPy twin, registered under the kernel's name with :func:`register_twin`, does the work on
the arrays' data in place.
"""
import re

import numpy as np

from ._array import STATE, ndarray, unsupported

# CuPy signatures (cupy/_core/raw.pyx RawKernel.__init__/__call__, cupy/_core/_kernel.pyx
# ElementwiseKernel.__init__, cupy/cuda/function.pyx Function.__call__), v13.6.0 and v14.2.0.
C_TYPES = {
    "float": np.float32, "double": np.float64, "int": np.int32, "unsigned int": np.uint32,
    "long long": np.int64, "unsigned long long": np.uint64, "bool": np.bool_,
    "short": np.int16, "signed char": np.int8, "unsigned char": np.uint8,
    "int32_t": np.int32, "int64_t": np.int64, "float32": np.float32, "float64": np.float64,
    "int32": np.int32, "int64": np.int64, "uint8": np.uint8, "bool_": np.bool_,
}

_TWINS = {}


def register_twin(kernel_name, twin):
    """``twin(grid, block, args)`` does on NumPy what kernel ``kernel_name`` does on the GPU
    (for an ElementwiseKernel: ``twin(*arrays)`` returning the outputs)."""
    _TWINS[kernel_name] = twin


def _twin(name):
    if name not in _TWINS:
        raise RuntimeError(f"no NumPy twin registered for CUDA kernel {name!r}: the stand-in "
                           "cannot run it (register one with cupy_standin.register_twin)")
    return _TWINS[name]


def _strip_comments(code):
    return re.sub(r"//[^\n]*|/\*.*?\*/", "", code, flags=re.S)


class RawKernel:
    def __init__(self, code, name, options=(), backend="nvrtc", *, translate_cucomplex=False,
                 enable_cooperative_groups=False, jitify=False):
        if not isinstance(code, str) or not isinstance(name, str):
            raise TypeError("code and name must be str")
        if not isinstance(options, tuple):
            raise TypeError(f"Argument 'options' has incorrect type (expected tuple, got {type(options).__name__})")
        self.code, self.name, self.options = code, name, options
        self.params = self._parse()

    def _parse(self):
        code = _strip_comments(self.code)
        macros = dict(re.findall(r"^\s*#define\s+(\w+)\s+([^\n]+?)\s*$", code, re.M))
        m = re.search(r'extern\s+"C"\s+__global__\s+void\s+' + re.escape(self.name) + r"\s*\((.*?)\)",
                      code, re.S)
        if m is None:
            raise RuntimeError(f"CUDA kernel {self.name!r} not found in the source "
                               "(need extern \"C\" __global__ void NAME(...))")
        params = []
        for p in (t.strip() for t in m.group(1).split(",")):
            pointer = "*" in p
            words = [w for w in re.findall(r"[A-Za-z_]\w*", p.replace("*", " "))
                     if w not in ("const", "__restrict__", "restrict")][:-1]   # drop the name
            words = [macros.get(w, w) for w in words]
            ctype = " ".join(words)
            if ctype not in C_TYPES:
                raise RuntimeError(f"kernel {self.name!r}: the stand-in does not know C type {ctype!r}")
            params.append((np.dtype(C_TYPES[ctype]), pointer, p))
        return params

    def __call__(self, grid, block, args, *, shared_mem=0, stream=None,
                 enable_cooperative_groups=False):
        for what, dims in (("grid", grid), ("block", block)):
            if not isinstance(dims, tuple):
                raise TypeError(f"Argument '{what}' has incorrect type (expected tuple, got {type(dims).__name__})")
            if not 1 <= len(dims) <= 3 or not all(isinstance(d, (int, np.integer)) and d > 0 for d in dims):
                raise ValueError(f"{what} must be 1 to 3 positive ints, got {dims!r}")
        if np.prod(block) > 1024 or any(b > lim for b, lim in zip(block, (1024, 1024, 64))):
            raise ValueError(f"block {block} exceeds CUDA's limits (1024 threads, 1024x1024x64)")
        if any(g > lim for g, lim in zip(grid, (2 ** 31 - 1, 65535, 65535))):
            raise ValueError(f"grid {grid} exceeds CUDA's limits")
        if not isinstance(args, (tuple, list)):
            raise TypeError("args must be a tuple")
        if len(args) != len(self.params):
            raise TypeError(f"kernel {self.name!r} takes {len(self.params)} arguments, got {len(args)}")
        host = []
        for i, (arg, (dtype, pointer, decl)) in enumerate(zip(args, self.params)):
            where = f"kernel {self.name!r} argument {i} ({decl})"
            if pointer:
                if isinstance(arg, np.ndarray):
                    raise unsupported(arg)
                if not isinstance(arg, ndarray):
                    raise TypeError(f"{where}: expected a cupy.ndarray, got {type(arg).__name__}")
                if arg.dtype != dtype:
                    raise TypeError(f"{where}: expected dtype {dtype}, got {arg.dtype}")
                if not arg.flags.c_contiguous:
                    raise ValueError(f"{where}: the array is not C-contiguous")
                host.append(arg._a)
            else:
                if isinstance(arg, (ndarray, np.ndarray)):
                    raise TypeError(f"{where}: expected a scalar, got an array")
                if isinstance(arg, np.generic):
                    got = arg.dtype
                elif isinstance(arg, bool):
                    got = np.dtype(np.bool_)
                elif isinstance(arg, int):
                    got = np.dtype(np.int64)     # CuPy passes Python ints as 64-bit
                elif isinstance(arg, float):
                    got = np.dtype(np.float64)
                else:
                    raise unsupported(arg)
                if got != dtype:
                    raise TypeError(f"{where}: passed as {got}, the kernel reads {dtype} "
                                    "(wrap it: np.int32(...), np.float32(...))")
                host.append(dtype.type(arg))
        STATE.kernel_launches[self.name] = STATE.kernel_launches.get(self.name, 0) + 1
        _twin(self.name)(tuple(int(g) for g in grid), tuple(int(b) for b in block), tuple(host))


def _parse_elementwise_params(text):
    out = []
    for p in (t.strip() for t in text.split(",") if t.strip()):
        words = p.split()
        raw = words[0] == "raw"
        ctype, name = " ".join(words[raw:-1]), words[-1]
        out.append((ctype, name, raw))
    return out


class ElementwiseKernel:
    def __init__(self, in_params, out_params, operation, name="kernel", reduce_dims=True,
                 preamble="", no_return=False, return_tuple=False, **kwargs):
        allowed = {"options", "loop_prep", "after_loop"}
        unknown = set(kwargs) - allowed
        if unknown:
            raise TypeError(f"Wrong arguments {sorted(unknown)}")
        self.name = name
        self.in_params = _parse_elementwise_params(in_params)
        self.out_params = _parse_elementwise_params(out_params)
        self.no_return, self.return_tuple = no_return, return_tuple

    def __call__(self, *args, **kwargs):
        size = kwargs.pop("size", None)
        kwargs.pop("stream", None)
        if kwargs:
            raise TypeError(f"Wrong arguments {kwargs}")
        n_in, n_all = len(self.in_params), len(self.in_params) + len(self.out_params)
        if len(args) not in (n_in, n_all):
            raise TypeError(f"Wrong number of arguments for {self.name!r}. It must be either "
                            f"{n_in} or {n_all} (with outputs), but given {len(args)}.")
        types = {}
        for arg, (ctype, pname, raw) in zip(args, self.in_params + self.out_params):
            if isinstance(arg, np.ndarray):
                raise unsupported(arg)
            dtype = arg.dtype if isinstance(arg, (ndarray, np.generic)) else None
            if ctype in C_TYPES:
                if dtype is not None and dtype != np.dtype(C_TYPES[ctype]):
                    raise TypeError(f"{self.name}: {pname} is {ctype}, got {dtype}")
            elif dtype is not None:
                if types.setdefault(ctype, dtype) != dtype:
                    raise TypeError(f"{self.name}: type {ctype} is both {types[ctype]} and {dtype}")
        host = [a._a if isinstance(a, ndarray) else a for a in args]
        STATE.kernel_launches[self.name] = STATE.kernel_launches.get(self.name, 0) + 1
        outs = _twin(self.name)(*host, size=size)
        if len(args) == n_all:
            outs = args[n_in:]
            return None if self.no_return else (outs if self.return_tuple or len(outs) > 1 else outs[0])
        from ._array import wrap
        return wrap(outs)
