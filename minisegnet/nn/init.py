"""Weight initialisation, as PyTorch does it (``minisegnet.nn.init``).

Every function fills ``tensor.data`` in place (no graph is recorded) and returns the
tensor. Random draws come from the global generator, so ``minisegnet.manual_seed``
makes initialisation reproducible.

Fans: for a weight of shape (out, in, kh, kw), ``fan_in = in*kh*kw`` and
``fan_out = out*kh*kw``. Kaiming (He) initialisation keeps the variance of activations
constant through ReLU layers: std = gain / sqrt(fan), gain = sqrt(2 / (1 + a^2)).
"""
import math

import numpy as np

from .. import backend
from ..random import generator


def calculate_fan_in_and_fan_out(tensor):
    """``(fan_in, fan_out)`` of a weight of shape (out, in, *kernel)."""
    if tensor.ndim < 2:
        raise ValueError(f"fan in and fan out need a tensor with at least 2 dims, got shape {tensor.shape}")
    receptive = int(np.prod(tensor.shape[2:])) if tensor.ndim > 2 else 1
    return tensor.shape[1] * receptive, tensor.shape[0] * receptive


def calculate_gain(nonlinearity, param=None):
    """The gain PyTorch uses for each nonlinearity (sqrt(2) for ReLU)."""
    if nonlinearity in ("linear", "conv2d", "conv_transpose2d", "sigmoid"):
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else param
        return math.sqrt(2.0 / (1 + slope ** 2))
    raise ValueError(f"unknown nonlinearity {nonlinearity!r}")


def _fill(tensor, values):
    tensor.data = backend.to_device(np.asarray(values, dtype=tensor.dtype).reshape(tensor.shape),
                                    tensor.device)
    return tensor


def uniform_(tensor, a=0.0, b=1.0):
    return _fill(tensor, generator().uniform(a, b, size=tensor.shape))


def normal_(tensor, mean=0.0, std=1.0):
    return _fill(tensor, generator().normal(mean, std, size=tensor.shape))


def constant_(tensor, val):
    return _fill(tensor, np.full(tensor.shape, val))


def zeros_(tensor):
    return constant_(tensor, 0.0)


def ones_(tensor):
    return constant_(tensor, 1.0)


def _kaiming_std(tensor, a, mode, nonlinearity):
    fan_in, fan_out = calculate_fan_in_and_fan_out(tensor)
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan = fan_in if mode == "fan_in" else fan_out
    return calculate_gain(nonlinearity, a) / math.sqrt(fan) if fan > 0 else 0.0


def kaiming_uniform_(tensor, a=0.0, mode="fan_in", nonlinearity="leaky_relu"):
    """U(-bound, bound) with bound = sqrt(3) * gain / sqrt(fan): PyTorch's default for conv and
    linear weights is ``kaiming_uniform_(w, a=sqrt(5))``, i.e. bound = 1 / sqrt(fan_in)."""
    bound = math.sqrt(3.0) * _kaiming_std(tensor, a, mode, nonlinearity)
    return uniform_(tensor, -bound, bound)


def kaiming_normal_(tensor, a=0.0, mode="fan_in", nonlinearity="leaky_relu"):
    """N(0, std^2) with std = gain / sqrt(fan); ``mode='fan_out', nonlinearity='relu'`` is the
    usual choice for ResNet convolutions."""
    return normal_(tensor, 0.0, _kaiming_std(tensor, a, mode, nonlinearity))


def bilinear_kernel(kernel_size):
    """The 2-d kernel (k, k) of bilinear upsampling by ``factor = ceil(k / 2)``.

    A transposed convolution with stride ``s`` and this kernel (k = 2s, padding s/2)
    spreads every input pixel over its neighbours with weights falling off linearly with
    distance — exactly bilinear interpolation. 1-d weights: ``1 - |i - c| / f`` with
    ``f = ceil(k/2)`` and ``c = (k - 1) / 2`` when k is even (``f - 1`` when odd); the 2-d
    kernel is their outer product.
    """
    factor = (kernel_size + 1) // 2
    center = factor - 1 if kernel_size % 2 == 1 else factor - 0.5
    taps = 1 - np.abs(np.arange(kernel_size) - center) / factor
    return np.outer(taps, taps)


def bilinear_(tensor):
    """Fill a ConvTranspose2d weight (C_in, C_out/groups, k, k) so it starts as bilinear upsampling.

    This is FCN's trick: the learnable upsampling layers begin as plain bilinear
    interpolation, channel by channel, and training refines them. Channel ``c`` maps
    only to output channel ``c`` (the weight is zero between different channels); with
    ``groups=C`` (shape (C, 1, k, k)) every group gets the same kernel.
    """
    if tensor.ndim != 4 or tensor.shape[2] != tensor.shape[3]:
        raise ValueError(f"bilinear_: expected a square transposed-conv weight (C_in, C_out, k, k), "
                         f"got shape {tensor.shape}")
    c_in, c_out, k, _ = tensor.shape
    if c_out != 1 and c_out != c_in:
        raise ValueError(f"bilinear_: needs C_out == C_in (channel c -> channel c) or a depthwise "
                         f"weight with C_out/groups == 1, got shape {tensor.shape}")
    weights = np.zeros(tensor.shape)
    kernel = bilinear_kernel(k)
    for c in range(c_in):
        weights[c, 0 if c_out == 1 else c] = kernel
    return _fill(tensor, weights)
