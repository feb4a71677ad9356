"""Every raw CUDA kernel of minisegnet, each beside its NumPy twin.

A CUDA kernel runs one *thread* per work item: thread ``idx = blockIdx.x * blockDim.x +
threadIdx.x`` of a launch with ``grid`` blocks of ``block`` threads. Its **twin** is the same
function written for NumPy: it builds all thread indices at once (``np.arange(grid * block)``)
and then follows the kernel line by line, a vector of threads where the kernel has one. The
twin is what runs when there is no GPU (the tests' CuPy stand-in launches it in place of the
kernel), and on a real GPU the tests compare kernel and twin on the same inputs.

``RAW_KERNELS`` lists them all, so the tests can find every source (an NVRTC compile check
for compute capabilities 5.0, 6.0, 8.0 and 9.0 needs no GPU) and every twin.
"""
from dataclasses import dataclass
from typing import Callable, Tuple

import numpy as np

C_TYPES = {np.dtype(np.float32): "float", np.dtype(np.float64): "double"}


@dataclass(frozen=True)
class RawKernelSource:
    """One ``extern "C" __global__`` kernel: its name, its source with the element type ``T``
    left open, the dtypes it is compiled for, and its NumPy twin ``twin(grid, block, args)``
    (``args`` as the kernel receives them: NumPy arrays in place of device pointers, and NumPy
    scalars), and ``example``, a small launch that tests and ``benchmarks/gpu_check.sh`` run
    through both kernel and twin."""
    name: str
    template: str
    dtypes: Tuple[np.dtype, ...]
    twin: Callable
    example: Callable   # example(rng, dtype) -> (grid, block, args): a small launch for tests

    def source(self, dtype):
        """The compilable source for element type ``dtype`` (``#define T float`` + template)."""
        return "#define T " + C_TYPES[np.dtype(dtype)] + "\n" + self.template


def thread_indices(grid, block):
    """``blockIdx.x * blockDim.x + threadIdx.x`` of every thread of a 1-d launch, as int64."""
    return np.arange(int(grid[0]) * int(block[0]), dtype=np.int64)


# atomicAdd on double exists from compute capability 6.0 (Pascal); older GPUs get the
# compare-and-swap loop of the CUDA C Programming Guide (same result, slower).
_ATOMIC_ADD = r"""
__device__ inline void atomic_add(float* address, float value) { atomicAdd(address, value); }
__device__ inline void atomic_add(double* address, double value) {
#if __CUDA_ARCH__ >= 600
    atomicAdd(address, value);
#else
    unsigned long long* bits = (unsigned long long*)address;
    unsigned long long old = *bits, assumed;
    do {
        assumed = old;
        old = atomicCAS(bits, assumed,
                        __double_as_longlong(value + __longlong_as_double(assumed)));
    } while (assumed != old);
#endif
}
"""

# ------------------------------------------------------------- max pooling, backward
_MAX_POOL2D_BACKWARD = _ATOMIC_ADD + r"""
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
    atomic_add(grad_in + (plane * height + ih) * width + iw, grad_out[idx]);
}
"""


def max_pool2d_backward_twin(grid, block, args):
    """NumPy twin of ``max_pool2d_backward``: line for line, a vector of threads."""
    (grad_out, argmax, grad_in, total, height, width, out_h, out_w, kernel_w,
     stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w) = args
    grad_out, argmax, grad_in = grad_out.reshape(-1), argmax.reshape(-1), grad_in.reshape(-1)
    idx = thread_indices(grid, block)
    idx = idx[idx < total]                                   # if (idx >= total) return;
    ow = idx % out_w
    oh = (idx // out_w) % out_h
    plane = idx // (np.int64(out_w) * out_h)
    k = argmax[idx].astype(np.int64)
    ih = oh * stride_h - pad_h + (k // kernel_w) * dilation_h     # k >= 0: C and NumPy divide alike
    iw = ow * stride_w - pad_w + (k % kernel_w) * dilation_w
    inside = (ih >= 0) & (ih < height) & (iw >= 0) & (iw < width)
    idx, plane, ih, iw = idx[inside], plane[inside], ih[inside], iw[inside]
    np.add.at(grad_in, (plane * height + ih) * width + iw, grad_out[idx])   # atomic_add


def max_pool2d_backward_example(rng, dtype):
    """3x3 windows, stride 2, padding 1, over a (2, 3, 7, 6) input: overlapping windows, and
    more threads (3 blocks of 32) than outputs (72)."""
    n, c, h, w, oh, ow = 2, 3, 7, 6, 4, 3
    grad_out = rng.standard_normal((n, c, oh, ow)).astype(dtype)
    argmax = rng.integers(0, 9, (n, c, oh, ow)).astype(np.int32)
    grad_in = np.zeros((n, c, h, w), dtype=dtype)
    i32 = np.int32
    args = (grad_out, argmax, grad_in, np.int64(grad_out.size), i32(h), i32(w), i32(oh), i32(ow),
            i32(3), i32(2), i32(2), i32(1), i32(1), i32(1), i32(1))
    return (3,), (32,), args


MAX_POOL2D_BACKWARD = RawKernelSource("max_pool2d_backward", _MAX_POOL2D_BACKWARD,
                                      (np.dtype(np.float32), np.dtype(np.float64)),
                                      max_pool2d_backward_twin, max_pool2d_backward_example)

RAW_KERNELS = (MAX_POOL2D_BACKWARD,)
