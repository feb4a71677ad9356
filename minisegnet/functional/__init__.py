"""``minisegnet.functional`` (imported as ``F``): every differentiable op, PyTorch-named.

Each op is a :class:`~minisegnet.autograd.Function` (forward and backward side by side)
plus a small function that checks its arguments and calls ``Function.apply``:

* :mod:`.elementwise` – arithmetic, comparisons, exp/log/sqrt/abs/clamp, activations, matmul
* :mod:`.reduction`   – sum, mean, amax/amin, max/min, argmax
* :mod:`.shape`       – reshape, permute, indexing, gather, cat, stack, pad
* :mod:`.conv`        – conv2d (strided, dilated, grouped) and conv_transpose2d
* :mod:`.pooling`     – max/avg pooling (with indices), max unpooling, adaptive pooling
* :mod:`.resize`      – interpolate (nearest, bilinear, both ``align_corners``)
* :mod:`.normalization` – batch_norm, dropout, dropout2d
* :mod:`.loss`        – softmax, log_softmax, cross_entropy, dice_loss
* :mod:`.transformer` – layer_norm, gelu, scaled_dot_product_attention, drop_path

Importing this package also gives :class:`~minisegnet.tensor.Tensor` its operator and
method forms (``a + b``, ``x.relu()``, ``x.sum(dim=1)``, ...).
"""
from ..tensor import Tensor
from .elementwise import (abs, add, clamp, div, eq, exp, ge, gt, le, log, lt, matmul, mul, ne,
                          neg, pow, relu, sigmoid, sqrt, sub, tanh, to, unbroadcast, where)
from .reduction import amax, amin, argmax, argmin, max, mean, min, sum
from .shape import (cat, expand, flatten, gather, getitem, pad, permute, reshape, squeeze, stack,
                    transpose, unsqueeze, view)
from .conv import conv2d, conv_transpose2d
from .pooling import (adaptive_avg_pool2d, adaptive_max_pool2d, avg_pool2d, max_pool2d,
                      max_unpool2d)
from .resize import interpolate
from .normalization import batch_norm, dropout, dropout2d
from .loss import cross_entropy, dice_loss, log_softmax, softmax
from .transformer import drop_path, gelu, layer_norm, scaled_dot_product_attention


def _reflected(fn):
    return lambda self, other: fn(other, self)


def _attach_tensor_methods():
    """Give Tensor its operators and PyTorch-style methods, all routed to the ops above."""
    ops = {
        "__add__": add, "__radd__": _reflected(add), "__sub__": sub, "__rsub__": _reflected(sub),
        "__mul__": mul, "__rmul__": _reflected(mul), "__truediv__": div,
        "__rtruediv__": _reflected(div), "__pow__": pow, "__rpow__": _reflected(pow),
        "__matmul__": matmul, "__rmatmul__": _reflected(matmul), "__neg__": neg,
        "__eq__": eq, "__ne__": ne, "__lt__": lt, "__le__": le, "__gt__": gt, "__ge__": ge,
        "__getitem__": getitem, "__abs__": abs,
        "add": add, "sub": sub, "mul": mul, "div": div, "pow": pow, "matmul": matmul, "neg": neg,
        "exp": exp, "log": log, "sqrt": sqrt, "abs": abs, "clamp": clamp, "relu": relu,
        "sigmoid": sigmoid, "tanh": tanh,
        "sum": sum, "mean": mean, "amax": amax, "amin": amin, "max": max, "min": min,
        "argmax": argmax, "argmin": argmin,
        "reshape": reshape, "view": view, "flatten": flatten, "permute": permute,
        "transpose": transpose, "unsqueeze": unsqueeze, "squeeze": squeeze, "expand": expand,
        "gather": gather, "softmax": softmax, "log_softmax": log_softmax,
        "eq": eq, "ne": ne, "lt": lt, "le": le, "gt": gt, "ge": ge,
    }
    for name, fn in ops.items():
        setattr(Tensor, name, fn)
    Tensor.__hash__ = object.__hash__      # defining __eq__ would otherwise remove hashing
    Tensor.to = to
    Tensor.cpu = lambda self: to(self, "cpu")
    Tensor.cuda = lambda self: to(self, "cuda")
    Tensor.float = lambda self: to(self, dtype="float32")
    Tensor.double = lambda self: to(self, dtype="float64")
    Tensor.long = lambda self: to(self, dtype="int64")


_attach_tensor_methods()
