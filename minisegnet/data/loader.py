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

Items are loaded by a thread pool when ``num_workers > 0`` (image decoding in Pillow and
most NumPy work release the GIL), and with ``prefetch=True`` a background thread prepares
the next batch while the model works on the current one.
"""
import queue
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .. import backend
from .. import random as ms_random
from ..tensor import tensor
from .transforms import use_generator

__all__ = ["DataLoader", "collate"]


def collate(items, device=None):
    """Stack ``[(image (3, H, W), mask (H, W)), ...]`` into ``(Tensor (N, 3, H, W) float32,
    Tensor (N, H, W) int64)`` on ``device``. All items must have the same size."""
    shapes = {(np.shape(image), np.shape(mask)) for image, mask in items}
    if len(shapes) > 1:
        raise ValueError(f"collate: items of one batch must have the same shapes, got "
                         f"{sorted(shapes)[:4]} (resize or crop them to one size)")
    images = np.stack([np.asarray(image, dtype=np.float32) for image, _ in items])
    masks = np.stack([np.asarray(mask, dtype=np.int64) for _, mask in items])
    return tensor(images, device=device), tensor(masks, device=device)


class DataLoader:
    """Batches of ``(images, masks)`` Tensors from a dataset.

    Args:
        dataset: anything with ``len(dataset)`` and ``dataset[i] -> (image, mask)``.
        batch_size: items per batch.
        shuffle: a new random order every epoch.
        drop_last: drop the last batch if it is smaller than ``batch_size``.
        seed: seed of the shuffle order and of per-item augmentation (None: from
            ``minisegnet.random.generator()``).
        num_workers: threads that load items (0: load in the calling thread).
        device: where the batches go (``'cpu'`` / ``'cuda'``; None: the default device).
        prefetch: prepare the next batch in a background thread.
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
        self.dataset, self.batch_size = dataset, int(batch_size)
        self.shuffle, self.drop_last, self.seed = bool(shuffle), bool(drop_last), seed
        self.num_workers, self.prefetch = int(num_workers), bool(prefetch)
        self.device = backend.normalize_device(device)
        self.epoch = 0

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
        order, item_seed = self._epoch_plan()
        self.epoch += 1

        def load(position):
            with use_generator(np.random.default_rng((item_seed, position))):
                return self.dataset[int(order[position])]

        pool = ThreadPoolExecutor(self.num_workers) if self.num_workers else None
        try:
            for b in range(len(self)):
                positions = range(b * self.batch_size, min((b + 1) * self.batch_size, len(order)))
                items = list(pool.map(load, positions)) if pool else [load(p) for p in positions]
                yield collate(items, self.device)
        finally:
            if pool:
                pool.shutdown(wait=True, cancel_futures=True)

    def __iter__(self):
        return _prefetched(self._batches()) if self.prefetch else self._batches()

    def __repr__(self):
        return (f"DataLoader(dataset={type(self.dataset).__name__}(len={len(self.dataset)}), "
                f"batch_size={self.batch_size}, shuffle={self.shuffle}, drop_last={self.drop_last}, "
                f"seed={self.seed}, num_workers={self.num_workers}, device={self.device!r}, "
                f"prefetch={self.prefetch})")


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
