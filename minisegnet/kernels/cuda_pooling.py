"""CuPy RawKernel for the one pooling step that array code does slowly on a GPU.

The backward pass of max pooling scatters each output's gradient to the input element
that won its window. The array-generic version in :mod:`.pooling` loops over the
``kh * kw`` kernel offsets (three kernel launches each); here one CUDA thread per
output element adds its gradient in place with ``atomicAdd`` (windows overlap when
stride < kernel, so two threads may hit the same input). The generic loop stays the
reference the tests compare this kernel against.

The kernel is compiled on first use, once per dtype. Raw kernels index memory
directly, so every array handed to one is made C-contiguous first.
"""
import functools

import numpy as np

from .. import backend

_MAX_POOL_BACKWARD = r"""
extern "C" __global__ void max_pool2d_backward(
        const T* grad_out, const int* argmax, T* grad_in, const long long total,
        const int height, const int width, const int out_h, const int out_w, const int kernel_w,
        const int stride_h, const int stride_w, const int pad_h, const int pad_w,
        const int dilation_h, const int dilation_w) {
    long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= total) return;
    const int ow = idx % out_w;
    const int oh = (idx / out_w) % out_h;
    const long long plane = idx / ((long long)out_w * out_h);      // n * C + c
    const int k = argmax[idx];
    const int ih = oh * stride_h - pad_h + (k / kernel_w) * dilation_h;
    const int iw = ow * stride_w - pad_w + (k % kernel_w) * dilation_w;
    if (ih < 0 || ih >= height || iw < 0 || iw >= width) return;   // a window of only padding
    atomicAdd(grad_in + (plane * height + ih) * width + iw, grad_out[idx]);
}
"""

_C_TYPES = {np.dtype(np.float32): "float", np.dtype(np.float64): "double"}


@functools.lru_cache(maxsize=None)
def _max_pool_backward_kernel(cp, dtype):
    source = "#define T " + _C_TYPES[np.dtype(dtype)] + "\n" + _MAX_POOL_BACKWARD
    return cp.RawKernel(source, "max_pool2d_backward")


def max_pool2d_backward_cuda(grad_out, argmax, geometry):
    """Same result as :func:`.pooling.max_pool2d_backward` (CuPy arrays, float32/float64)."""
    cp = backend.array_module(grad_out)
    if np.dtype(grad_out.dtype) not in _C_TYPES:
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
