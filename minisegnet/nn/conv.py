"""Convolution layers: ``Conv2d`` and ``ConvTranspose2d``, as in ``torch.nn``.

Each holds a ``weight`` and an optional ``bias`` Parameter and calls
:func:`minisegnet.functional.conv2d` / :func:`~minisegnet.functional.conv_transpose2d`
(see there for the formulas). Parameter names and shapes are PyTorch's, so a
``state_dict`` moves between the two libraries unchanged:

* ``Conv2d.weight``:          (out_channels, in_channels/groups, kh, kw)
* ``ConvTranspose2d.weight``: (in_channels, out_channels/groups, kh, kw)  -- in-channels first
* ``bias``:                   (out_channels,)

Initialisation is PyTorch's default: ``kaiming_uniform_(weight, a=sqrt(5))``, which is
U(-1/sqrt(fan_in), 1/sqrt(fan_in)), and the bias from the same range, where
``fan_in = weight.shape[1] * kh * kw``.
"""
import math
import numbers

from .. import functional as F
from ..tensor import zeros
from . import init
from .module import Module, Parameter

__all__ = ["Conv2d", "ConvTranspose2d"]


def _pair(value, name, cls):
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return (int(value), int(value))
    if isinstance(value, (tuple, list)) and len(value) == 2:
        return tuple(int(v) for v in value)
    raise TypeError(f"{cls}: {name} must be an int or a pair of ints, got {value!r}")


class _ConvNd(Module):
    """What Conv2d and ConvTranspose2d share: checks, parameters, initialisation, repr."""

    def __init__(self, cls, in_channels, out_channels, kernel_size, stride, padding, dilation,
                 groups, bias, padding_mode, weight_shape, device, dtype):
        super().__init__()
        if not isinstance(groups, numbers.Integral) or groups < 1:
            raise ValueError(f"{cls}: groups must be a positive int, got {groups!r}")
        for name, n in (("in_channels", in_channels), ("out_channels", out_channels)):
            if not isinstance(n, numbers.Integral) or n < 1:
                raise ValueError(f"{cls}: {name} must be a positive int, got {n!r}")
            if n % groups:
                raise ValueError(f"{cls}: {name}={n} must be divisible by groups={groups}")
        if padding_mode != "zeros":
            raise ValueError(f"{cls}: only padding_mode='zeros' is supported, got {padding_mode!r}")
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size = _pair(kernel_size, "kernel_size", cls)
        self.stride = _pair(stride, "stride", cls)
        self.padding = padding if isinstance(padding, str) else _pair(padding, "padding", cls)
        self.dilation = _pair(dilation, "dilation", cls)
        self.padding_mode = padding_mode
        self.weight = Parameter(zeros(*weight_shape, dtype=dtype, device=device))
        self.register_parameter("bias", Parameter(zeros(out_channels, dtype=dtype, device=device))
                                if bias else None)
        self.reset_parameters()

    def reset_parameters(self):
        """PyTorch's default: weight ~ kaiming_uniform(a=sqrt(5)), bias ~ U(+-1/sqrt(fan_in))."""
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in, _ = init.calculate_fan_in_and_fan_out(self.weight)
            bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
            init.uniform_(self.bias, -bound, bound)

    def extra_repr(self):
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0, 0):
            s += f", padding={self.padding!r}" if isinstance(self.padding, str) else f", padding={self.padding}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if getattr(self, "output_padding", (0, 0)) != (0, 0):
            s += f", output_padding={self.output_padding}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        return s


class Conv2d(_ConvNd):
    """2-D convolution layer: (N, in_channels, H, W) -> (N, out_channels, Ho, Wo).

    ``Ho = (H + 2*padding - dilation*(kernel_size - 1) - 1) // stride + 1``;
    ``padding`` may also be ``'same'`` (stride 1) or ``'valid'``.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True, padding_mode="zeros", device=None, dtype=None):
        kh, kw = _pair(kernel_size, "kernel_size", "Conv2d")
        super().__init__("Conv2d", in_channels, out_channels, kernel_size, stride, padding,
                         dilation, groups, bias, padding_mode,
                         (out_channels, in_channels // groups, kh, kw), device, dtype)

    def forward(self, input):
        return F.conv2d(input, self.weight, self.bias, self.stride, self.padding, self.dilation,
                        self.groups)


class ConvTranspose2d(_ConvNd):
    """2-D transposed convolution layer: (N, in_channels, H, W) -> (N, out_channels, Ho, Wo).

    ``Ho = (H - 1)*stride - 2*padding + dilation*(kernel_size - 1) + output_padding + 1``.
    ``forward(input, output_size=None)``: an explicit ``output_size`` (H, W) picks the
    output_padding that produces it, as in PyTorch.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 output_padding=0, groups=1, bias=True, dilation=1, padding_mode="zeros",
                 device=None, dtype=None):
        if isinstance(padding, str):
            raise ValueError(f"ConvTranspose2d: padding must be an int or a pair, got {padding!r}")
        kh, kw = _pair(kernel_size, "kernel_size", "ConvTranspose2d")
        self_output_padding = _pair(output_padding, "output_padding", "ConvTranspose2d")
        super().__init__("ConvTranspose2d", in_channels, out_channels, kernel_size, stride, padding,
                         dilation, groups, bias, padding_mode,
                         (in_channels, out_channels // groups, kh, kw), device, dtype)
        self.output_padding = self_output_padding

    def _output_padding(self, input, output_size):
        """The output_padding that gives ``output_size`` (its last two entries are H, W)."""
        if output_size is None:
            return self.output_padding
        output_size = tuple(int(s) for s in output_size)[-2:]
        pads = []
        for a in range(2):
            smallest = ((input.shape[-2 + a] - 1) * self.stride[a] - 2 * self.padding[a]
                        + self.dilation[a] * (self.kernel_size[a] - 1) + 1)
            largest = smallest + self.stride[a] - 1
            if not smallest <= output_size[a] <= largest:
                raise ValueError(f"ConvTranspose2d: requested output_size {output_size} is not "
                                 f"reachable from input {input.shape}: size {a} must be between "
                                 f"{smallest} and {largest}")
            pads.append(output_size[a] - smallest)
        return tuple(pads)

    def forward(self, input, output_size=None):
        return F.conv_transpose2d(input, self.weight, self.bias, self.stride, self.padding,
                                  self._output_padding(input, output_size), self.groups,
                                  self.dilation)
