"""Blocks: how the element-wise and normalising kernels cut a large CPU array so that
every pass over a block runs while it is in the cache, and the blocks run on the threads.

Those kernels work on a 3-d view ``(A, C, B)`` of their input (:func:`as_3d`), where ``C``
is the axis an op reduces over (batch norm's channels, softmax's classes, layer norm's
features) and ``A``, ``B`` everything before and after it. A block is a slice over A and
one over B, all of C: an op's per-block work never needs another block's values
(reductions over C stay inside the block; sums over A and B are added up afterwards).

Each op is a handful of passes over its array (subtract, exponentiate, sum, scale ...).
Done on the whole array, every pass streams it through memory again; done *block by
block* (a few images, or part of one image, ~2 MB at a time), all passes over one block
run while it is still in the cache. NumPy releases the GIL inside its array loops, so
the blocks can also run on the shared pool of :mod:`minisegnet.kernels.threads`, like
PyTorch's intra-op threads. On the GPU (CuPy) the whole array is one block: CuPy
kernels are already parallel.
"""
import math

import numpy as np

from .threads import num_threads, parallel_for

__all__ = ["BLOCK_ELEMENTS", "PARALLEL_MIN_ELEMENTS", "as_3d", "blocks", "for_each_block"]

BLOCK_ELEMENTS = 1 << 19        # ~2 MB of float32 per block: it stays in a core's L2 cache
PARALLEL_MIN_ELEMENTS = 1 << 19  # below this the thread hand-off costs more than it saves


def as_3d(x, axis):
    """View ``x`` as ``(A, C, B)`` with ``C = x.shape[axis]`` (a copy only if x is not contiguous)."""
    a, b = math.prod(x.shape[:axis]), math.prod(x.shape[axis + 1:])
    return x.reshape(a, x.shape[axis], b)


def blocks(shape3, xp=np, at_least=1, block_elements=None):
    """Split an ``(A, C, B)`` array into blocks ``(slice over A, slice over B)`` of at most
    ``block_elements`` (default :data:`BLOCK_ELEMENTS`) elements each, and into
    ``at_least`` blocks when it is that big (one block per thread); the whole array is one
    block on the GPU."""
    a, c, b = shape3
    limit = min(block_elements or BLOCK_ELEMENTS, -(-a * c * b // max(1, at_least)))
    if xp is not np or a * c * b <= limit:
        return [(slice(0, a), slice(0, b))]
    per_row = c * b
    if per_row <= limit:                             # whole rows: several items of the batch
        step = limit // per_row
        return [(slice(i, min(i + step, a)), slice(0, b)) for i in range(0, a, step)]
    step = max(1, limit // c)                        # one item is big: split its B axis too
    return [(slice(i, i + 1), slice(j, min(j + step, b))) for i in range(a) for j in range(0, b, step)]


def for_each_block(shape3, work, xp=np, block_elements=None, parallel_min=None):
    """Call ``work(rows, cols)`` for every block of :func:`blocks`; return the results in order.

    Blocks of arrays of at least ``parallel_min`` (default :data:`PARALLEL_MIN_ELEMENTS`)
    elements are shared out among :func:`num_threads` threads (this one included, so no
    thread sits idle waiting); ``work`` must write only its own block. An op with much
    work per element (e.g. the GELU) passes a smaller block size and threshold.
    """
    size = shape3[0] * shape3[1] * shape3[2]
    block_elements = block_elements or BLOCK_ELEMENTS
    parallel_min = parallel_min or PARALLEL_MIN_ELEMENTS
    if xp is not np or (size < parallel_min and size <= block_elements):
        return [work(slice(0, shape3[0]), slice(0, shape3[2]))]          # one block, this thread
    big = size >= parallel_min
    parts = blocks(shape3, xp, at_least=num_threads() if big else 1, block_elements=block_elements)
    chunks = parallel_for(lambda a, b: [work(rows, cols) for rows, cols in parts[a:b]],
                          len(parts), xp, threads=None if big else 1)
    return [result for chunk in chunks for result in chunk]
