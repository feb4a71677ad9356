"""CuPy RawKernel for the one pooling step that array code does slowly on a GPU.

The backward pass of max pooling scatters each output's gradient to the input element
that won its window. The array-generic version in :mod:`.pooling` loops over the
``kh * kw`` kernel offsets (three kernel launches each); here one CUDA thread per
output element adds its gradient in place with ``atomicAdd`` (windows overlap when
stride < kernel, so two threads may hit the same input). The generic loop stays the
reference the tests compare this kernel against.

The kernel's source and its NumPy twin live in :mod:`.cuda_sources`. It is compiled on
first use, once per dtype. Raw kernels index memory directly, so every array handed to
one is made C-contiguous first, and every scalar is given the exact C type the kernel reads.
"""
import functools

import numpy as np

from .. import backend
from .cuda_sources import C_TYPES, MAX_POOL2D_BACKWARD


@functools.lru_cache(maxsize=None)
def _max_pool_backward_kernel(cp, dtype):
    return cp.RawKernel(MAX_POOL2D_BACKWARD.source(dtype), MAX_POOL2D_BACKWARD.name)


def max_pool2d_backward_cuda(grad_out, argmax, geometry):
    """Same result as :func:`.pooling.max_pool2d_backward` (CuPy arrays, float32/float64)."""
    cp = backend.array_module(grad_out)
    if np.dtype(grad_out.dtype) not in C_TYPES:
        raise TypeError(f"max_pool2d backward on CUDA supports float32 and float64, got {grad_out.dtype}")
    (h, w), (oh, ow) = geometry.in_size, geometry.out_size
    grad_out = cp.ascontiguousarray(grad_out)
    argmax = cp.ascontiguousarray(argmax, dtype=cp.int32)
    grad_in = cp.zeros(grad_out.shape[:2] + (h, w), dtype=grad_out.dtype)
    total = grad_out.size
    threads = 256
    blocks = (total + threads - 1) // threads
    if total:
        _max_pool_backward_kernel(cp, np.dtype(grad_out.dtype))(
            (blocks,), (threads,),
            (grad_out, argmax, grad_in, np.int64(total), np.int32(h), np.int32(w),
             np.int32(oh), np.int32(ow), np.int32(geometry.kernel[1]),
             np.int32(geometry.stride[0]), np.int32(geometry.stride[1]),
             np.int32(geometry.padding[0]), np.int32(geometry.padding[1]),
             np.int32(geometry.dilation[0]), np.int32(geometry.dilation[1])))
    return grad_in
