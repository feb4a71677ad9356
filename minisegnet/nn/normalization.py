"""Normalization and channel dropout layers: BatchNorm2d (and BatchNorm1d), Dropout2d.

``BatchNorm2d(C)`` holds, with PyTorch's ``state_dict`` keys:

* ``weight`` (C,), ``bias`` (C,)  – learned scale and shift (Parameters, if ``affine``);
* ``running_mean`` (C,), ``running_var`` (C,) – the statistics used in ``eval()`` mode;
* ``num_batches_tracked`` () int64 – how many training batches updated them.

In ``train()`` mode each batch is normalised with its own statistics and the running
ones move towards them (``momentum``); in ``eval()`` mode the running ones are used,
so a prediction does not depend on what else is in the batch.
"""
import numbers

import numpy as np

from .. import functional as F
from ..tensor import Tensor, ones, zeros
from .layers import ReLU
from .module import Module, Parameter

__all__ = ["BatchNorm1d", "BatchNorm2d", "Dropout2d", "norm_act"]


class _BatchNorm(Module):
    """Shared body of BatchNorm1d/2d (they differ only in the input shapes they accept)."""

    expected = ""

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True,
                 device=None, dtype=None):
        super().__init__()
        name = type(self).__name__
        if isinstance(num_features, bool) or not isinstance(num_features, numbers.Integral) or num_features < 1:
            raise ValueError(f"{name}: num_features must be a positive int (the number of channels C), "
                             f"got {num_features!r}")
        if momentum is not None and not (isinstance(momentum, numbers.Real) and 0 <= momentum <= 1):
            raise ValueError(f"{name}: momentum must be in [0, 1] or None (cumulative average), got {momentum!r}")
        self.num_features = int(num_features)
        self.eps, self.momentum = eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        c = self.num_features
        if affine:
            self.weight = Parameter(ones(c, dtype=dtype, device=device))
            self.bias = Parameter(zeros(c, dtype=dtype, device=device))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", zeros(c, dtype=dtype, device=device))
            self.register_buffer("running_var", ones(c, dtype=dtype, device=device))
            self.register_buffer("num_batches_tracked", zeros((), dtype=np.int64, device=device))
        else:
            for buffer in ("running_mean", "running_var", "num_batches_tracked"):
                self.register_buffer(buffer, None)

    def reset_running_stats(self):
        """Running mean 0, running variance 1, no batches seen."""
        if self.track_running_stats:
            self.running_mean.data[...] = 0
            self.running_var.data[...] = 1
            self.num_batches_tracked.data[...] = 0

    def reset_parameters(self):
        """Forget everything learned: weight 1, bias 0 and fresh running statistics."""
        self.reset_running_stats()
        if self.affine:
            self.weight.data[...] = 1
            self.bias.data[...] = 0

    def _check_input(self, x):
        raise NotImplementedError

    def forward(self, x, relu=False):
        """Normalise ``x``; ``relu=True`` returns ``relu(self(x))`` made in one fused pass
        (what conv -> BN -> ReLU units call; see ``F.batch_norm``)."""
        if not isinstance(x, Tensor):
            raise TypeError(f"{type(self).__name__}: input must be a Tensor, got {type(x).__name__}")
        self._check_input(x)
        if x.shape[1] != self.num_features:
            raise ValueError(f"{type(self).__name__}({self.num_features}) got an input with {x.shape[1]} "
                             f"channels (shape {x.shape}); the channel axis is 1")
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked.data += 1
            if self.momentum is None:        # cumulative average over all batches so far
                factor = 1.0 / float(self.num_batches_tracked.item())
        # Without running statistics the batch's own are used even in eval mode (as PyTorch).
        use_batch_stats = self.training or not self.track_running_stats
        track = not self.training or self.track_running_stats
        return F.batch_norm(x, self.running_mean if track else None,
                            self.running_var if track else None, self.weight, self.bias,
                            use_batch_stats, factor, self.eps, relu=relu)

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"track_running_stats={self.track_running_stats}")


class BatchNorm2d(_BatchNorm):
    """Batch normalization of (N, C, H, W) feature maps, per channel (``torch.nn.BatchNorm2d``).

    Args:
        num_features: C, the number of channels.
        eps: added to the variance for numerical stability.
        momentum: weight of each new batch in the running statistics (None: a plain
            average over all batches seen).
        affine: learn a per-channel ``weight`` and ``bias``.
        track_running_stats: keep running statistics for eval mode (if False, eval mode
            also normalises with the batch's statistics).
    """

    def _check_input(self, x):
        if x.ndim != 4:
            raise ValueError(f"BatchNorm2d: expected an input of shape (N, C, H, W), got shape {x.shape} "
                             f"(use BatchNorm1d for (N, C) or (N, C, L))")


class BatchNorm1d(_BatchNorm):
    """Batch normalization of (N, C) vectors or (N, C, L) sequences, per channel."""

    def _check_input(self, x):
        if x.ndim not in (2, 3):
            raise ValueError(f"BatchNorm1d: expected an input of shape (N, C) or (N, C, L), got shape "
                             f"{x.shape} (use BatchNorm2d for (N, C, H, W))")


class Dropout2d(Module):
    """Zero whole channels of (N, C, H, W) inputs with probability p in training (scaling the
    rest by 1/(1-p)); identity in eval mode. ``inplace`` is accepted and ignored."""

    def __init__(self, p=0.5, inplace=False):
        super().__init__()
        if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0 <= p <= 1:
            raise ValueError(f"Dropout2d: dropout probability p has to be between 0 and 1, but got {p!r}")
        self.p, self.inplace = p, inplace

    def forward(self, x):
        return F.dropout2d(x, self.p, self.training)

    def extra_repr(self):
        return f"p={self.p}"


def norm_act(norm, act, x):
    """``act(norm(x))``: the BN -> ReLU of a conv unit, in one pass when it can be.

    When ``norm`` is a batch norm and ``act`` exactly an ``nn.ReLU``, batch norm applies
    the ReLU inside its own blocks (``norm(x, relu=True)``, one pass over memory less each
    way); any other pair (a swapped-in activation, a different norm) runs as written.
    """
    if isinstance(norm, _BatchNorm) and type(act) is ReLU:
        return norm(x, relu=True)
    return act(norm(x))

