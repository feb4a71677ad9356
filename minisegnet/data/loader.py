"""DataLoader: turn an indexable dataset into batches of Tensors, like ``torch.utils.data``.

One epoch = one pass over the dataset in (optionally shuffled) order, cut into batches::

    loader = DataLoader(Shapes(1000), batch_size=16, shuffle=True, seed=0)
    for images, masks in loader:      # Tensor (16, 3, H, W) float32, Tensor (16, H, W) int64
        ...

Reproducibility: the order of epoch ``e`` is a permutation drawn from
``np.random.default_rng((seed, e))`` -- the same for every run with that seed. The epoch
counter advances by itself at each new pass, and :meth:`DataLoader.set_epoch` sets it, as
with PyTorch's ``DistributedSampler``. Without a seed the permutation (and the per-epoch
seed) is drawn from ``minisegnet.random.generator()``, so ``manual_seed`` still controls it.

Every item is loaded inside :func:`~minisegnet.data.transforms.use_generator` with its own
generator, derived from the epoch's seed and the item's position. Random augmentation is
therefore the same whether items are loaded one after another or by ``num_workers``
threads in any order. (A transform built with its own ``rng=`` draws from that one
generator in loading order instead, which threads make unpredictable: leave ``rng`` out
of transforms used in a DataLoader.)

Where the items are loaded -- four ways, all giving bit-identical batches:

* inline (the default): the loop that asks for a batch loads and stacks its items;
* ``num_workers > 0``: a pool of threads loads the items of each batch (image decoding in
  Pillow and large NumPy operations release the GIL while they work);
* ``prefetch="thread"`` (or ``True``): a background thread prepares the next batch while
  the model works on the current one;
* ``prefetch="process"``: a child process prepares the batches, up to two ahead, and
  sends them back as NumPy arrays through a pipe; the parent only wraps them in Tensors.

Why a process, when a thread already runs in the background? Python runs one thread's
bytecode at a time (the GIL). Generating a synthetic image is many small NumPy calls, each
holding the GIL for most of its time, and a training step is many small kernel calls too:
a loader thread and the training thread keep taking the GIL from each other, and on a
small CPU the step gets *slower* than without the thread. A child process has its own
interpreter and its own GIL, so the data work leaves the training thread entirely; what
is left in the parent is receiving the arrays (0.4 MB per batch at 64 x 64, batch 8: about
half a millisecond instead of ~10 ms of drawing). The epoch plan (the order and the seed
of the per-item generators) is still drawn in the parent, so ``set_epoch`` and the epoch
counter behave exactly as inline.
"""
import gc
import multiprocessing
import os
import pickle
import queue
import signal
import sys
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .. import backend
from .. import random as ms_random
from ..tensor import tensor
from .transforms import use_generator

__all__ = ["DataLoader", "collate"]

_PREFETCH_MODES = {False: False, None: False, True: "thread", "thread": "thread", "process": "process"}
_AHEAD = 2              # batches the prefetch process may have ready before the parent takes one
#: The prefetch process runs this much nicer than the training (``os.nice``): it only has
#: to stay ahead, so on a busy machine the training's own threads get the cores first.
#: Measured with ``minisegnet train --train-size 1600 --epochs 1`` on 2 cores, six pairs of
#: runs: median epoch 10.35 s at the same priority, 9.5 s nicer by 10.
CHILD_NICENESS = 10
_POLL_SECONDS = 0.2     # how often a waiting parent checks that the prefetch process is alive


def _stack_items(items):
    """The NumPy half of :func:`collate`: ``[(image, mask), ...]`` -> ``(images (N, 3, H, W)
    float32, masks (N, H, W) int64)``. All items must have the same size."""
    shapes = {(np.shape(image), np.shape(mask)) for image, mask in items}
    if len(shapes) > 1:
        raise ValueError(f"collate: items of one batch must have the same shapes, got "
                         f"{sorted(shapes)[:4]} (resize or crop them to one size)")
    images = np.stack([np.asarray(image, dtype=np.float32) for image, _ in items])
    masks = np.stack([np.asarray(mask, dtype=np.int64) for _, mask in items])
    return images, masks


def _to_tensors(images, masks, device):
    """The Tensor half of :func:`collate`: stacked arrays -> Tensors on ``device``."""
    return tensor(images, device=device), tensor(masks, device=device)


def collate(items, device=None):
    """Stack ``[(image (3, H, W), mask (H, W)), ...]`` into ``(Tensor (N, 3, H, W) float32,
    Tensor (N, H, W) int64)`` on ``device``. All items must have the same size."""
    return _to_tensors(*_stack_items(items), device)


def _array_batches(dataset, order, item_seed, batch_size, n_batches, num_workers):
    """Load and stack the ``n_batches`` batches of one epoch plan; yields NumPy pairs.

    This is the whole of the loading work, run in whichever thread or process prepares
    the batches; item ``order[p]`` is loaded with the generator ``(item_seed, p)``.
    """
    def load(position):
        with use_generator(np.random.default_rng((item_seed, position))):
            return dataset[int(order[position])]

    pool = ThreadPoolExecutor(num_workers) if num_workers else None
    try:
        for b in range(n_batches):
            positions = range(b * batch_size, min((b + 1) * batch_size, len(order)))
            items = list(pool.map(load, positions)) if pool else [load(p) for p in positions]
            yield _stack_items(items)
    finally:
        if pool:
            pool.shutdown(wait=True, cancel_futures=True)


def _start_method():
    """How the prefetch process is started: ``'fork'`` on Linux, ``'spawn'`` elsewhere.

    A forked child starts at once with the parent's memory (the dataset needs no pickling).
    macOS has fork too, but its system libraries are not safe to use after a fork, and
    Windows has none; there a spawned child imports minisegnet afresh and receives the
    dataset pickled.
    """
    if sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods():
        return "fork"
    return "spawn"


class DataLoader:
    """Batches of ``(images, masks)`` Tensors from a dataset.

    Args:
        dataset: anything with ``len(dataset)`` and ``dataset[i] -> (image, mask)``.
        batch_size: items per batch.
        shuffle: a new random order every epoch.
        drop_last: drop the last batch if it is smaller than ``batch_size``.
        seed: seed of the shuffle order and of per-item augmentation (None: from
            ``minisegnet.random.generator()``).
        num_workers: threads that load items (0: load in the calling thread; with
            ``prefetch="process"``, threads inside the child process).
        device: where the batches go (``'cpu'`` / ``'cuda'``; None: the default device).
        prefetch: ``False`` (load when asked), ``"thread"`` or ``True`` (prepare the next
            batch in a background thread) or ``"process"`` (prepare up to two batches ahead
            in a child process, which takes the data work off this process's GIL; see the
            module docstring). The batches are bit-identical in every mode.

    ``prefetch="process"`` starts one child per epoch (per ``iter(loader)``): forked on
    Linux, spawned elsewhere -- then the dataset must pickle, and if it cannot the loader
    warns once and prefetches in a thread instead. The child ignores Ctrl-C (the parent
    handles it), runs the CPU kernels on one thread, and is stopped and reaped when the
    loop ends, breaks or is interrupted. An error while loading an item is raised in the
    parent at the batch where it happened, with the original type where it can be rebuilt
    (else a RuntimeError) and the original message; a child that dies (killed, crashed)
    is a RuntimeError, never a hang.
    """

    def __init__(self, dataset, batch_size=1, shuffle=False, drop_last=False, seed=None,
                 num_workers=0, device=None, prefetch=False):
        if not (hasattr(dataset, "__len__") and hasattr(dataset, "__getitem__")):
            raise TypeError(f"dataset must support len() and indexing, got {type(dataset).__name__}")
        for name, value, low in (("batch_size", batch_size, 1), ("num_workers", num_workers, 0)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))
                                 or seed < 0):
            raise ValueError(f"seed must be a non-negative int or None, got {seed!r}")
        if not isinstance(prefetch, (bool, str, type(None))) or prefetch not in _PREFETCH_MODES:
            raise ValueError(f"prefetch must be False, True, 'thread' or 'process', got {prefetch!r}")
        self.dataset, self.batch_size = dataset, int(batch_size)
        self.shuffle, self.drop_last, self.seed = bool(shuffle), bool(drop_last), seed
        self.num_workers, self.prefetch = int(num_workers), _PREFETCH_MODES[prefetch]
        self.device = backend.normalize_device(device)
        self.epoch = 0
        self._pickle_error = None       # why the dataset cannot go to a spawned child (checked once)

    def set_epoch(self, epoch):
        """Make the next pass epoch ``epoch`` (its order depends only on ``(seed, epoch)``)."""
        self.epoch = int(epoch)

    def __len__(self):
        n, b = len(self.dataset), self.batch_size
        return n // b if self.drop_last else -(-n // b)

    def _epoch_plan(self):
        """This epoch's item order and the seed its per-item generators derive from."""
        n = len(self.dataset)
        if self.seed is not None:
            rng = np.random.default_rng((self.seed, self.epoch))
        else:
            rng = np.random.default_rng(ms_random.generator().integers(2 ** 63))
        order = rng.permutation(n) if self.shuffle else np.arange(n)
        return order, int(rng.integers(2 ** 63))

    def _batches(self):
        """One epoch, loaded in this thread (or by the ``num_workers`` pool)."""
        order, item_seed = self._epoch_plan()
        self.epoch += 1
        for images, masks in _array_batches(self.dataset, order, item_seed, self.batch_size,
                                            len(self), self.num_workers):
            yield _to_tensors(images, masks, self.device)

    def _process_batches(self, method):
        """One epoch, loaded in a child process; the plan is drawn here, as in :meth:`_batches`."""
        order, item_seed = self._epoch_plan()
        self.epoch += 1
        n_batches = len(self)
        if n_batches == 0:
            return
        job = (self.dataset, order, item_seed, self.batch_size, n_batches, self.num_workers)
        for images, masks in _from_child_process(job, method):
            yield _to_tensors(images, masks, self.device)

    def _spawn_refusal(self):
        """None if the dataset pickles (a spawned child needs it), else the reason it does not."""
        if self._pickle_error is None:
            try:
                pickle.dumps(self.dataset)
                self._pickle_error = ""
            except Exception as error:          # PicklingError, TypeError, AttributeError, ...
                self._pickle_error = f"{type(error).__name__}: {error}"
        return self._pickle_error or None

    def __iter__(self):
        if self.prefetch == "process":
            method = _start_method()
            refusal = self._spawn_refusal() if method == "spawn" else None
            if refusal is None:
                return self._process_batches(method)
            warnings.warn(f"DataLoader(prefetch='process'): the dataset cannot be pickled for a "
                          f"spawned child process ({refusal}); prefetching in a thread instead",
                          RuntimeWarning, stacklevel=2)
        if self.prefetch:
            return _prefetched(self._batches())
        return self._batches()

    def __repr__(self):
        return (f"DataLoader(dataset={type(self.dataset).__name__}(len={len(self.dataset)}), "
                f"batch_size={self.batch_size}, shuffle={self.shuffle}, drop_last={self.drop_last}, "
                f"seed={self.seed}, num_workers={self.num_workers}, device={self.device!r}, "
                f"prefetch={self.prefetch!r})")


_DONE = object()


def _prefetched(batches):
    """Run the ``batches`` generator one batch ahead in a background thread.

    Errors raised while loading reach the consumer at the batch where they happened; if the
    consumer stops early (``break``), the producer thread is told to stop and exits.
    """
    ready, stop = queue.Queue(maxsize=1), threading.Event()

    def produce():
        try:
            for batch in batches:
                while not stop.is_set():
                    try:
                        ready.put(("batch", batch), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    break
            item = ("done", _DONE)
        except BaseException as error:       # handed to the consumer, re-raised there
            item = ("error", error)
        finally:
            batches.close()
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    worker = threading.Thread(target=produce, name="minisegnet-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            kind, value = ready.get()
            if kind == "batch":
                yield value
            elif kind == "error":
                raise value
            else:
                return
    finally:
        stop.set()
        worker.join(timeout=5)


# ----------------------------------------------------------------------------- process prefetch
def _from_child_process(job, method):
    """Yield the NumPy batches of ``job`` as a child process started with ``method`` makes them.

    The parent keeps the read end of a one-way pipe and nothing else: if the child dies,
    the pipe reports end-of-file instead of waiting forever, and while no message is
    there the parent checks every ``_POLL_SECONDS`` that the child is still alive.
    Whatever ends the loop (the last batch, an error, ``break``, Ctrl-C, garbage
    collection) ends in the ``finally``, which stops and reaps the child.
    """
    n_batches = job[4]
    context = multiprocessing.get_context(method)
    reader, writer = context.Pipe(duplex=False)
    _widen_pipe(writer)
    child = context.Process(target=_child_main, name="minisegnet-prefetch", daemon=True,
                            args=(writer, reader if method == "fork" else None) + job)
    finished = False
    try:
        with _sigint_blocked(), warnings.catch_warnings():
            # Python >= 3.12 warns about fork() in a process with threads (the kernel pool):
            # the child never uses them -- it resets the pool to one thread and takes no
            # lock another thread could have held at the fork.
            warnings.filterwarnings("ignore", message=".*fork", category=DeprecationWarning)
            child.start()
        writer.close()                          # the child holds the only write end now
        for b in range(n_batches):
            message = _receive(reader, child, b, n_batches)
            if message[0] == "error":
                _raise_child_error(message, n_batches)
            yield message[1], message[2].astype(np.int64, copy=False)
        message = _receive(reader, child, n_batches, n_batches)
        if message[0] == "error":
            _raise_child_error(message, n_batches)
        finished = True
    finally:
        writer.close()
        _stop(child, finished)
        reader.close()


def _widen_pipe(conn, size=1 << 20):
    """Ask Linux for a 1 MiB pipe buffer instead of 64 KiB, where it is allowed.

    A batch (0.4 MB at 64 x 64, batch 8) then waits in the pipe whole, and receiving it is
    one read; through 64 KiB the parent and the child would take turns for every 64 KiB
    (twice the time). Elsewhere, or when refused, the pipe stays as it is.
    """
    try:
        import fcntl
        fcntl.fcntl(conn.fileno(), fcntl.F_SETPIPE_SZ, size)
    except (ImportError, AttributeError, OSError):
        pass


class _sigint_blocked:
    """Block SIGINT in this thread while the child is started, so that the child inherits
    the mask and cannot be interrupted before it has set SIGINT to "ignore". A Ctrl-C that
    arrives meanwhile is held and delivered to the parent when the block ends."""

    def __enter__(self):
        self.old = None
        if hasattr(signal, "pthread_sigmask"):
            self.old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})

    def __exit__(self, *exc):
        if self.old is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, self.old)
        return False


def _receive(reader, child, b, n_batches):
    """The child's next message; a clear RuntimeError if the child dies instead."""
    while not reader.poll(_POLL_SECONDS):
        if not child.is_alive() and not reader.poll(0):
            raise _died(child, b, n_batches)
    try:
        return reader.recv()
    except (EOFError, OSError):                # the pipe closed, perhaps half-way through a batch
        raise _died(child, b, n_batches) from None


def _died(child, b, n_batches):
    child.join(timeout=1)
    code = child.exitcode
    if code is None:
        how = "it closed its pipe"
    elif code < 0:
        try:
            how = f"killed by {signal.Signals(-code).name}"
        except ValueError:
            how = f"killed by signal {-code}"
    else:
        how = f"exit code {code}"
    what = f"batch {b + 1} of {n_batches}" if b < n_batches else "its end-of-epoch message"
    return RuntimeError(f"DataLoader: the prefetch process (pid {child.pid}) died ({how}) "
                        f"before sending {what}")


class _ChildTraceback(Exception):
    """The traceback of an error in the prefetch process, shown as the cause of the
    error the parent raises (the same device ``concurrent.futures`` uses)."""

    def __str__(self):
        return f'\n"""\n{self.args[0]}"""'


def _raise_child_error(message, n_batches):
    """Re-raise in the parent the error the child met while loading batch ``b``."""
    _, b, name, text, trace, blob = message
    where = f"loading batch {b + 1} of {n_batches}" if b < n_batches else "after the last batch"
    text = f"{text} (in the DataLoader's prefetch process, {where})"
    error = None
    try:
        kind = type(pickle.loads(blob)) if blob is not None else None
        candidate = kind(text) if kind is not None else None
        if candidate is not None and str(candidate) == text:
            error = candidate
    except Exception:                         # the type cannot be rebuilt with one message
        pass
    if error is None:
        error = RuntimeError(f"{name}: {text}")
    raise error from _ChildTraceback(trace)


def _describe_error(b, error):
    """A message the parent can always unpickle: the error's type name and text, the
    traceback as text, and the exception itself only if it survives a pickle round trip."""
    import traceback
    try:
        blob = pickle.dumps(error)
        pickle.loads(blob)
    except Exception:
        blob = None
    text = str(error) if str(error) else repr(error)
    trace = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    return ("error", b, type(error).__name__, text, trace, blob)


def _child_main(conn, parent_reader, dataset, order, item_seed, batch_size, n_batches, num_workers):
    """The prefetch process: load the epoch's batches and send them through ``conn``.

    A sender thread does the sending, so that loading the next batch overlaps a send that
    waits for the parent to read; a semaphore with ``_AHEAD`` slots keeps the producer at
    most that many batches ahead of the parent.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)        # Ctrl-C is the parent's business
    signal.signal(signal.SIGTERM, signal.SIG_DFL)       # the parent stops us with SIGTERM
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    if CHILD_NICENESS and hasattr(os, "nice"):
        try:
            os.nice(CHILD_NICENESS)
        except OSError:
            pass
    if parent_reader is not None:                       # forked: our copy of the parent's end
        parent_reader.close()
        # Objects inherited from the parent are never collected here: their destructors (a
        # GPU array's, say) are the parent's business. New objects are collected as usual.
        gc.freeze()
    slots, outbox = threading.Semaphore(_AHEAD), queue.SimpleQueue()

    def send():
        while True:
            message = outbox.get()
            try:
                conn.send(message)
            except (OSError, ValueError):               # the parent stopped reading
                return
            if message[0] != "batch":
                return
            slots.release()

    sender = threading.Thread(target=send, name="minisegnet-prefetch-send", daemon=True)
    sender.start()

    def wait_for_slot():
        while not slots.acquire(timeout=1.0):
            if not sender.is_alive():
                raise _ParentGone

    loading = 0                                         # the batch being loaded
    try:
        from ..kernels.threads import set_num_threads   # lazily: only the child needs this
        set_num_threads(1)
        wait_for_slot()
        for images, masks in _array_batches(dataset, order, item_seed, batch_size, n_batches,
                                            num_workers):
            outbox.put(("batch", images, _narrow(masks)))
            loading += 1
            wait_for_slot()
        message = ("done",)
    except _ParentGone:
        return
    except BaseException as error:                      # sent to the parent, raised there
        message = _describe_error(loading, error)
    outbox.put(message)
    sender.join()
    conn.close()


def _narrow(masks):
    """Labels 0..255 travel as uint8, an eighth of int64's bytes (the parent widens them
    back to int64: the same values); other labels travel as they are."""
    if masks.size and masks.min() >= 0 and masks.max() <= 255:
        return masks.astype(np.uint8)
    return masks


class _ParentGone(Exception):
    """Raised in the prefetch process when the parent no longer reads: time to stop."""


def _stop(child, finished):
    """Stop the child (unless it ended by itself), reap it and free what it held."""
    if child.pid is None:                               # never started
        return
    if not finished:
        child.terminate()
    child.join(timeout=5)
    if child.exitcode is None:
        child.kill()
        child.join()
    child.close()
