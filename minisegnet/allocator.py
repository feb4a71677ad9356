"""Keep freed memory in the process: glibc's malloc otherwise hands it back and faults it in again.

A training step allocates and frees the same large arrays every time (activations, their
gradients, the kernels' work buffers: megabytes each). glibc's ``malloc`` serves
allocations above its *mmap threshold* with fresh pages from the kernel and unmaps them
on ``free``; it also trims the top of its heap when more than the *trim threshold* lies
free there. Every fresh page costs a page fault when first written (a few microseconds
each in a virtual machine), and faults from two threads queue on one lock. Measured on
the project's 2-core test machine (one SGD step, 8x3x128x128): 700-7,600 faults and
6-30 ms of kernel time per step at 2 threads, 0-1 ms with the memory kept.

So a training run (:meth:`minisegnet.train.Trainer.fit`, hence ``minisegnet train``)
calls :func:`keep_freed_memory`, which on Linux with glibc raises both thresholds
(``mallopt(M_MMAP_THRESHOLD, 64 MiB)``, ``mallopt(M_TRIM_THRESHOLD, 256 MiB)``): freed
memory stays in the heap and the next step reuses it without a fault. The peak memory of
a step does not change (it is the arrays alive at once); the process simply does not
shrink between steps. It is left alone when ``MINISEGNET_KEEP_MEMORY=0``, or when the user
already tuned malloc (``GLIBC_TUNABLES`` naming malloc, or ``MALLOC_MMAP_THRESHOLD_`` /
``MALLOC_TRIM_THRESHOLD_`` set).

The setting holds for the whole process and every library in it, which is why importing
minisegnet does not make it: a notebook that only imports the package keeps glibc's
defaults, and so do the benchmarks, which time PyTorch in the same process and should
see it as its users run it.
"""
import ctypes
import ctypes.util
import os
import sys

MMAP_THRESHOLD = 64 << 20       # allocations up to this size come from the heap
TRIM_THRESHOLD = 256 << 20      # the heap keeps up to this much free memory at its top
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3     # glibc's mallopt parameter numbers


def _user_tuned():
    return ("malloc" in os.environ.get("GLIBC_TUNABLES", "")
            or "MALLOC_MMAP_THRESHOLD_" in os.environ or "MALLOC_TRIM_THRESHOLD_" in os.environ)


_state = {"kept": False}


def kept():
    """True once this process keeps its freed memory (:func:`keep_freed_memory` succeeded)."""
    return _state["kept"]


def keep_freed_memory():
    """Raise glibc's mmap and trim thresholds (see the module docstring); True if they are
    raised now (also when an earlier call did it), False where it does not apply."""
    if _state["kept"]:
        return True
    if os.environ.get("MINISEGNET_KEEP_MEMORY", "1").strip() == "0" or _user_tuned():
        return False
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):    # not glibc (e.g. musl has no mallopt)
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    _state["kept"] = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD,
                                                                                      TRIM_THRESHOLD))
    return _state["kept"]
