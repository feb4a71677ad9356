"""minisegnet: learn semantic segmentation by building it.

A small autograd engine on NumPy (CPU) and CuPy (GPU), hand-written spatial kernels,
and FCN / PSPNet / DeepLab on top. The public names mirror PyTorch's::

    import minisegnet as ms
    import minisegnet.functional as F

    x = ms.randn(2, 3, 8, 8, requires_grad=True)
    y = F.conv2d(x, ms.randn(4, 3, 3, 3), padding=1).relu().mean()
    y.backward()          # x.grad now holds dy/dx
"""
__version__ = "0.1.0"

from . import blas_env  # noqa: F401  (first: before NumPy loads OpenBLAS)
from . import backend, cuda, random
from .autograd import Function
from .random import manual_seed
from .tensor import (Tensor, arange, bool_, enable_grad, float16, float32, float64, from_numpy,
                     full, int32, int64, is_grad_enabled, no_grad, ones, ones_like, rand, randint,
                     randn, tensor, uint8, zeros, zeros_like)
from . import functional
from .functional import cat, stack, where
from .gradcheck import gradcheck
from . import nn, optim
from .checkpoint import CheckpointError, load, save
from .kernels.threads import num_threads as get_num_threads, set_num_threads
