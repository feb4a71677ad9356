"""The one thread pool every CPU kernel shares, and the one thread count.

NumPy runs its array loops, and BLAS its matrix products, with the GIL released: a few
Python threads, each handed its own slice of a batch (or its own blocks of an array),
keep several cores busy the way PyTorch's intra-op threads do. This module owns

* the thread count: :func:`set_num_threads` (also ``minisegnet.set_num_threads``), else
  ``$MINISEGNET_NUM_THREADS``, else the number of usable cores -- see :func:`num_threads`;
* the BLAS limit (via ``threadpoolctl``): BLAS gets the same count for a product called
  outside a parallel section, and one thread per worker inside one, so that
  ``threads x BLAS threads`` never oversubscribes the cores. That needs OpenBLAS's idle
  threads to sleep at once (:mod:`minisegnet.blas_env`); where they spin instead
  (NumPy was imported before minisegnet), BLAS stays at one thread whenever minisegnet
  uses several, or the spinning threads would take the cores the workers need;
* one pool of ``num_threads() - 1`` worker threads (the calling thread does a share
  too): :func:`parallel_for` splits ``range(n)`` into contiguous chunks, one per thread,
  and :func:`side_by_side` runs a few independent tasks at once, one per thread.

A parallel section never nests: a kernel called from inside a chunk (or from another
Python thread while the pool is busy) runs its work serially in the calling thread.
On the GPU (CuPy) everything runs once, serially: CuPy kernels are parallel already.
"""
import _thread
import os
import threading

import numpy as np

from .. import blas_env

__all__ = ["num_threads", "set_num_threads", "parallel_for", "side_by_side", "chunk_bounds", "blas_libraries"]

_override = None                        # set_num_threads(n); None: environment / cores
_blas = {"libs": None, "default": None}  # threadpoolctl controllers of the BLAS libraries
_pool = {"workers": [], "pid": None}
_busy = threading.Lock()                # held while a parallel section runs
_local = threading.local()              # .inside: this thread is running a chunk


def _cores():
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:              # not on Linux
        return max(1, os.cpu_count() or 1)


def num_threads():
    """Threads the CPU kernels use: :func:`set_num_threads`, else the environment
    variable ``MINISEGNET_NUM_THREADS``, else the number of cores this process may use."""
    if _override is not None:
        return _override
    env = os.environ.get("MINISEGNET_NUM_THREADS", "").strip()
    if env:
        if not env.isdigit() or int(env) < 1:
            raise ValueError(f"MINISEGNET_NUM_THREADS must be a positive integer, got {env!r}")
        return int(env)
    return _cores()


def set_num_threads(n):
    """Use ``n`` threads in the CPU kernels and in BLAS (``None``: back to the default).

    Like ``torch.set_num_threads``: one knob for the whole library.
    """
    global _override
    if n is not None and (isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1):
        raise ValueError(f"set_num_threads: n must be a positive int or None, got {n!r}")
    _override = None if n is None else int(n)
    _set_blas_threads(num_threads() if n is not None else None)


def blas_libraries():
    """threadpoolctl's controllers of the BLAS libraries NumPy uses ([] without threadpoolctl)."""
    if _blas["libs"] is None:
        try:
            from threadpoolctl import ThreadpoolController
            _blas["libs"] = [lib for lib in ThreadpoolController().lib_controllers
                             if lib.user_api == "blas"]
        except Exception:               # threadpoolctl missing or failing: BLAS left alone
            _blas["libs"] = []
        _blas["default"] = [lib.num_threads for lib in _blas["libs"]]
    return _blas["libs"]


def _blas_outside(n):
    """BLAS threads for products outside parallel sections when minisegnet uses ``n``."""
    return n if blas_env.SHORT_SPIN or n < 2 else 1


def _set_blas_threads(n):
    """BLAS at ``n`` threads each (None: the count it had when first seen), or at one
    where OpenBLAS's idle threads would spin (see :func:`_blas_outside`)."""
    libs = blas_libraries()
    for lib, default in zip(libs, _blas["default"]):
        lib.set_num_threads(_blas_outside(default if n is None else n))


class _Worker:
    """One pool thread, handed one chunk at a time through two bare locks.

    ``go`` is released to start a chunk and ``done`` when it has run. Bare locks are the
    cheapest hand-off Python has (a futex each way): on the 2-core test machine a round
    trip took ~40 us, against ~75 us for a ``concurrent.futures`` pool, and a training
    step makes a hundred of them.
    """

    def __init__(self, index):
        self.go, self.done = _thread.allocate_lock(), _thread.allocate_lock()
        self.go.acquire()
        self.done.acquire()
        self.task = self.outcome = None
        threading.Thread(target=self._loop, name=f"minisegnet-{index}", daemon=True).start()

    def _loop(self):
        while True:
            self.go.acquire()
            fn, start, stop = self.task
            try:
                self.outcome = (True, _run_chunk(fn, start, stop))
            except BaseException as error:      # re-raised in the calling thread
                self.outcome = (False, error)
            # drop the chunk's function now, not at the next task: it may hold arrays
            # (a kernel's output through its closure) that should be freed or handed on
            self.task = fn = None
            self.done.release()

    def start(self, fn, start, stop):
        self.task = (fn, start, stop)
        self.go.release()

    def result(self):
        """Wait for the chunk; ``(ok, value or exception)``."""
        self.done.acquire()
        outcome, self.outcome = self.outcome, None
        return outcome


def _workers(n):
    """``n`` pool threads (made again after a fork: a child has no threads)."""
    if _pool["pid"] != os.getpid():
        _pool.update(workers=[], pid=os.getpid())
    workers = _pool["workers"]
    while len(workers) < n:
        workers.append(_Worker(len(workers)))
    return workers[:n]


def chunk_bounds(n_items, parts):
    """``parts + 1`` boundaries splitting ``range(n_items)`` into near-equal contiguous chunks."""
    return [n_items * t // parts for t in range(parts + 1)]


def _run_chunk(fn, start, stop):
    _local.inside = True
    try:
        return fn(start, stop)
    finally:
        _local.inside = False


def _wait_all(workers):
    """The outcomes of the workers' chunks, waiting for every one of them, even when a
    Ctrl-C arrives meanwhile (it is re-raised once they are all done)."""
    outcomes, interrupted = [], None
    for worker in workers:
        while True:
            try:
                outcomes.append(worker.result())
                break
            except KeyboardInterrupt as error:   # the chunk still runs: wait for it
                interrupted = error
    if interrupted is not None:
        raise interrupted
    return outcomes


def parallel_for(fn, n_items, xp=np, threads=None):
    """Run ``fn(start, stop)`` over contiguous chunks of ``range(n_items)``, one per thread.

    Returns the chunks' results in order. The calling thread takes the first chunk, the
    pool's workers the others; ``fn`` must write only its own part of any output. Runs a
    single ``fn(0, n_items)`` on the GPU, with one thread or item, or when called from
    inside a parallel section. While the chunks run, BLAS is held at one thread.

    Args:
        fn: ``fn(start, stop) -> result``.
        n_items: the length of the range (a batch, a list of blocks ...).
        xp: the array module (``cupy``: always serial).
        threads: at most this many chunks (default :func:`num_threads`).
    """
    threads = min(num_threads() if threads is None else threads, n_items)
    if xp is not np or threads < 2 or getattr(_local, "inside", False):
        return [fn(0, n_items)]
    if not _busy.acquire(blocking=False):   # another Python thread holds the pool
        return [fn(0, n_items)]
    try:
        libs = blas_libraries()
        before = [_blas_outside(lib.num_threads) for lib in libs]
        for lib in libs:
            lib.set_num_threads(1)
        try:
            bounds = chunk_bounds(n_items, threads)
            workers = _workers(threads - 1)
            for worker, a, b in zip(workers, bounds[1:-1], bounds[2:]):
                worker.start(fn, a, b)
            try:
                first = _run_chunk(fn, bounds[0], bounds[1])
            finally:
                outcomes = _wait_all(workers)       # every chunk has ended before we leave
            for ok, value in outcomes:
                if not ok:
                    raise value
            return [first] + [value for _, value in outcomes]
        finally:
            for lib, n in zip(libs, before):
                lib.set_num_threads(n)
    finally:
        _busy.release()


def side_by_side(tasks, xp=np):
    """Run independent zero-argument ``tasks`` at the same time, one per thread, and return
    their results in order.

    Each task runs its own kernels serially (a parallel section does not nest), so this
    pays when the tasks are many NumPy calls each too small to split well -- e.g. the
    two backward products of a small convolution: one hand-off for both, instead of one
    per product with every image block cut in two. Serial on the GPU or on one thread.
    """
    chunks = parallel_for(lambda a, b: [task() for task in tasks[a:b]], len(tasks), xp)
    return [result for chunk in chunks for result in chunk]
