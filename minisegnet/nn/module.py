"""``Module`` and ``Parameter``: the containers every layer and model is built from.

A Module holds three kinds of state, found automatically from its attributes:

* **parameters** – :class:`Parameter` tensors the optimizer updates (weights, biases);
* **buffers**    – tensors that are state but not learned (BatchNorm's running mean),
  registered with :meth:`Module.register_buffer`;
* **submodules** – other Modules, which makes a model a tree.

``state_dict()`` flattens that tree into ``{"dotted.name": array}`` with the same keys
PyTorch uses (``backbone.layer1.0.conv1.weight``, ``decode_head.bn.running_mean``), so
a state dict converts to and from PyTorch by name.
"""
from collections import OrderedDict

import numpy as np

from .. import backend
from ..tensor import Tensor


class Parameter(Tensor):
    """A Tensor that is a learnable parameter of a Module (``requires_grad=True``)."""

    def __init__(self, data, requires_grad=True):
        if isinstance(data, Tensor):
            data = data.data
        super().__init__(data, requires_grad=requires_grad)

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()


class Module:
    """Base class of layers and models; subclasses set attributes in ``__init__`` and
    define ``forward``. Calling the module (``m(x)``) runs ``forward``.
    """

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

    # ------------------------------------------------------------------ registration
    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"{type(self).__name__}: call super().__init__() before assigning "
                                 f"attribute {name!r}")
        if value is None:
            for table in (self._parameters, self._buffers, self._modules):
                if name in table:          # e.g. ``self.bias = None``: keep the slot, empty
                    table[name] = None
                    return
        for table in (self._parameters, self._buffers, self._modules):
            table.pop(name, None)
        if isinstance(value, Parameter):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        elif name in self.__dict__.get("_buffer_names", ()):
            self._buffers[name] = value
        else:
            object.__setattr__(self, name, value)
            return
        self.__dict__.pop(name, None)

    def __getattr__(self, name):
        d = self.__dict__
        for table in ("_parameters", "_buffers", "_modules"):
            if table in d and name in d[table]:
                return d[table][name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name):
        for table in (self._parameters, self._buffers, self._modules):
            if name in table:
                del table[name]
                return
        object.__delattr__(self, name)

    def register_buffer(self, name, tensor):
        """Keep ``tensor`` (a Tensor or None) as non-learned state that moves with the module
        and appears in ``state_dict`` (e.g. BatchNorm's ``running_mean``)."""
        if tensor is not None and not isinstance(tensor, Tensor):
            tensor = Tensor(np.asarray(tensor))
        self.__dict__.setdefault("_buffer_names", set()).add(name)
        self.__dict__.pop(name, None)
        self._buffers[name] = tensor

    def register_parameter(self, name, param):
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"register_parameter: {name!r} must be a Parameter or None")
        self._parameters[name] = param

    def add_module(self, name, module):
        self._modules[name] = module

    # ------------------------------------------------------------------ calling
    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    # ------------------------------------------------------------------ traversal
    def named_modules(self, prefix=""):
        """Yield ``(dotted_name, module)`` for this module and every descendant, depth first."""
        stack = [(prefix, self)]
        seen = set()
        while stack:
            name, module = stack.pop()
            if id(module) in seen:
                continue
            seen.add(id(module))
            yield name, module
            children = [(f"{name}.{k}" if name else k, m) for k, m in module._modules.items() if m is not None]
            stack.extend(reversed(children))

    def modules(self):
        for _, m in self.named_modules():
            yield m

    def named_children(self):
        for name, m in self._modules.items():
            if m is not None:
                yield name, m

    def children(self):
        for _, m in self.named_children():
            yield m

    def named_parameters(self, prefix="", recurse=True):
        """Yield ``(dotted_name, Parameter)``, e.g. ``('decode_head.conv_seg.weight', p)``."""
        seen = set()
        modules = self.named_modules(prefix) if recurse else [(prefix, self)]
        for mname, module in modules:
            for pname, p in module._parameters.items():
                if p is None or id(p) in seen:
                    continue
                seen.add(id(p))
                yield (f"{mname}.{pname}" if mname else pname), p

    def parameters(self, recurse=True):
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix=""):
        for mname, module in self.named_modules(prefix):
            for bname, b in module._buffers.items():
                if b is not None:
                    yield (f"{mname}.{bname}" if mname else bname), b

    def buffers(self):
        for _, b in self.named_buffers():
            yield b

    # ------------------------------------------------------------------ modes and devices
    def train(self, mode=True):
        """Training mode (dropout active, BatchNorm uses batch statistics); returns self."""
        for m in self.modules():
            object.__setattr__(m, "training", bool(mode))
        return self

    def eval(self):
        """Evaluation mode: ``train(False)``."""
        return self.train(False)

    def zero_grad(self):
        """Forget the gradients of all parameters (set ``.grad`` to None)."""
        for p in self.parameters():
            p.grad = None

    def requires_grad_(self, requires_grad=True):
        for p in self.parameters():
            p.requires_grad = requires_grad
        return self

    def to(self, device=None, dtype=None):
        """Move (and/or cast) every parameter and buffer in place; returns self.

        ``model.to('cuda')``, ``model.to(dtype=minisegnet.float64)``. Integer buffers
        (``num_batches_tracked``) keep their dtype.
        """
        if device is not None and not isinstance(device, str):
            device, dtype = None, device
        if device is not None:
            device = backend.normalize_device(device)
        for m in self.modules():
            for table in (m._parameters, m._buffers):
                for t in table.values():
                    if t is None:
                        continue
                    data = t.data
                    if device is not None:
                        data = backend.to_device(data, device)
                    if dtype is not None and data.dtype.kind == "f":
                        data = data.astype(np.dtype(dtype), copy=False)
                    t.data = data
                    if t.grad is not None:
                        t.grad = None
        return self

    def double(self):
        return self.to(dtype=np.float64)

    def float(self):
        return self.to(dtype=np.float32)

    # ------------------------------------------------------------------ state dict
    def state_dict(self):
        """An ordered ``{name: numpy array}`` of all parameters and buffers (host copies)."""
        out = OrderedDict()
        for mname, module in self.named_modules():
            for table in (module._parameters, module._buffers):
                for name, t in table.items():
                    if t is not None:
                        out[f"{mname}.{name}" if mname else name] = backend.to_numpy(t.data).copy()
        return out

    def load_state_dict(self, state_dict, strict=True):
        """Copy values from ``state_dict`` (arrays or Tensors) into this module, in place.

        A key this module lacks, a key missing from ``state_dict`` (when ``strict``), or a
        value whose shape differs is an error naming the key and both shapes; nothing is
        changed when any check fails. Returns ``(missing_keys, unexpected_keys)``.
        """
        targets = {}
        for mname, module in self.named_modules():
            for table in (module._parameters, module._buffers):
                for name, t in table.items():
                    if t is not None:
                        targets[f"{mname}.{name}" if mname else name] = t
        missing = [k for k in targets if k not in state_dict]
        unexpected = [k for k in state_dict if k not in targets]
        problems = []
        if strict and missing:
            problems.append("missing keys: " + ", ".join(missing[:10]) + (" ..." if len(missing) > 10 else ""))
        if strict and unexpected:
            problems.append("unexpected keys: " + ", ".join(unexpected[:10]) + (" ..." if len(unexpected) > 10 else ""))
        values = {}
        for key, value in state_dict.items():
            if key not in targets:
                continue
            arr = value.data if isinstance(value, Tensor) else value
            if not hasattr(arr, "shape"):
                arr = np.asarray(arr)
            if tuple(arr.shape) != targets[key].shape:
                problems.append(f"shape mismatch for {key!r}: the checkpoint has {tuple(arr.shape)}, "
                                f"the model expects {targets[key].shape}")
            values[key] = arr
        if problems:
            raise ValueError(f"load_state_dict into {type(self).__name__} failed: " + "; ".join(problems))
        for key, arr in values.items():
            t = targets[key]
            t.data = backend.to_device(arr, t.device).astype(t.dtype, copy=True)
        return missing, unexpected

    # ------------------------------------------------------------------ repr
    def extra_repr(self):
        """One line of settings shown in ``repr`` (override in layers)."""
        return ""

    def __repr__(self):
        lines = []
        for name, m in self._modules.items():
            child = repr(m).replace("\n", "\n  ")
            lines.append(f"  ({name}): {child}")
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not lines:
            return head + ")"
        return head + "\n" + "\n".join(lines) + "\n)"
