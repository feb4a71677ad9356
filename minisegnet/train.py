"""Training and evaluation loops: the code that turns a model and a dataset into weights.

One training *step* is the loop every deep-learning framework runs::

    losses = model.loss(images, masks)     # forward: {'loss', 'loss_decode', 'loss_aux'?}
    optimizer.zero_grad()
    losses['loss'].backward()              # gradients of every parameter
    optimizer.step()                       # move the parameters against them
    scheduler.step()                       # poly schedule: lr = base_lr (1 - t / T) ** 0.9

An *epoch* is one pass over the training set, followed by validation: the model in
``eval()`` mode (BatchNorm uses its running statistics, dropout is off), no graph
recorded (``no_grad``), every prediction counted in a
:class:`~minisegnet.metrics.ConfusionMatrix`, from which mIoU, mDice and pixel accuracy
follow.

:class:`Trainer` adds what a real run needs around that loop:

* **checkpoints** – ``last.npz`` after every epoch and ``best.npz`` whenever the validation
  mIoU improves. A checkpoint holds the model, the optimizer's moments, the schedule, the
  epoch and step, the best score, the random state (the global generator; the data order is
  a function of ``(seed, epoch)``) and the *config* from which the model and the data are
  rebuilt. Written atomically (:func:`minisegnet.save`), so a crash never leaves a
  half-written file.
* **resume** – ``Trainer(config, out).fit(resume='runs/x/last.npz')`` (or
  :meth:`Trainer.from_checkpoint`) continues so that an interrupted run ends with *exactly*
  the weights of an uninterrupted one, even when it was stopped in the middle of an epoch.
  Only the settings in :data:`RESUME_MAY_CHANGE` may differ from the checkpoint's; any other
  difference is a :class:`ConfigError`, whether it comes from the command line or from Python.
* **run folders** – a run folder is never overwritten silently: a new run into a folder that
  already holds one (``last.npz``, ``best.npz``, ``history.csv`` or ``config.json``) is
  refused with :class:`RunFolderError` unless ``force=True`` replaces it; a resumed run
  continues in its checkpoint's own folder.
* **failed writes** – a full disk, a file-size limit, a permission error or a vanished
  folder stops training with :class:`RunWriteError`: one line naming the file and the
  reason; the last good checkpoint stays as it was and no half-written file is left.
* **Ctrl-C** – saves ``last.npz`` (the state after the last *completed* step) and raises
  :class:`TrainingInterrupted` with the command that resumes.
* **divergence** – a NaN or infinite loss stops training with :class:`TrainingDiverged`,
  naming the step and epoch; the last good checkpoint is never overwritten.
* **history** – one row per epoch (``epoch, step, train_loss, lr, val_mIoU, val_mDice,
  val_aAcc, time``) in ``history.csv``; progress bars show loss, learning rate and img/s.

The quickest way in is :func:`fit`::

    from minisegnet.train import fit
    trainer = fit(model="deeplabv3", dataset="shapes", epochs=3, out="runs/demo")
    print(trainer.confusion.table(trainer.class_names))
"""
import csv
import json
import math
import os
import signal
import sys
import threading
import time
import warnings

import numpy as np

from . import allocator, backend, checkpoint, data, models
from . import optim
from . import random as ms_random
from .fileio import atomic_write, describe_os_error
from .metrics import ConfusionMatrix
from .tensor import no_grad

__all__ = ["DEFAULTS", "Trainer", "fit", "evaluate", "make_config", "build_model", "build_dataset",
           "load_checkpoint", "read_checkpoint", "check_resume", "check_run_folder", "create_run_folder",
           "TrainingDiverged", "TrainingInterrupted", "ConfigError", "RunFolderError", "RunWriteError",
           "HISTORY_FIELDS", "RESUME_MAY_CHANGE", "RUN_FILES"]

#: What ``minisegnet train`` uses when given no arguments: DeepLabV3 (tiny ResNet, output
#: stride 8, auxiliary FCN head on c3) on 64 x 64 Shapes, Adam with the poly schedule,
#: cross-entropy + Dice: 2400 steps (6 epochs of 3200 generated images, batch 8), about two
#: minutes on 2 CPU cores to a val mIoU near 0.88 for seeds 0, 1 and 2 (the measured
#: figures: ``benchmarks/results/time_train.json``, written by ``benchmarks/time_train.py``).
#: Fewer steps mostly cost accuracy: the network first learns "background everywhere" and
#: needs ~1000 steps to tell the shapes apart; at 64 x 64 and output stride 8 the logits
#: are 8 x 8, which caps mIoU near 0.9. ``image_size``, ``train_size`` and ``val_size`` of None mean the
#: dataset's own defaults (64 x 64 for Shapes, 256 x 32 for the context strips; see
#: :data:`minisegnet.data.DATASETS`). ``download`` fetches a real dataset (``voc``, ``pets``) into
#: ``data_root`` (default ``$MINISEGNET_DATA`` or ``./data``); ``pets_border`` is ``'ignore'`` or ``'class'``.
DEFAULTS = {
    "model": "deeplabv3", "backbone": None, "output_stride": None, "aux": True, "width": None,
    "dataset": "shapes", "data_root": None, "download": False, "pets_border": "ignore",
    "image_size": None, "train_size": None, "val_size": None,
    "epochs": 6, "batch_size": 8, "optimizer": "adam", "lr": 5e-3, "momentum": 0.9,
    "weight_decay": 0.0, "poly_power": 0.9, "dice_weight": 1.0, "ignore_index": 255,
    "label_smoothing": 0.0,
    "seed": 0, "workers": 0, "device": "cpu",
}

HISTORY_FIELDS = ("epoch", "step", "train_loss", "lr", "val_mIoU", "val_mDice", "val_aAcc", "time")

OPTIMIZERS = ("sgd", "adam", "adamw")
CHECKPOINT_FORMAT = "minisegnet-train-1"

#: The settings a resumed run may change; every other key of :data:`DEFAULTS` must match the
#: checkpoint, because it changes the model, the data or the trajectory of the weights.
#: ``epochs`` stretches the poly schedule to the new end; ``data_root`` lets the data move.
RESUME_MAY_CHANGE = ("epochs", "device", "workers", "data_root", "download")

#: The files that make a folder a run folder (figures are rewritten with them).
RUN_FILES = ("last.npz", "best.npz", "history.csv", "config.json")
FIGURES = ("curves.png", "predictions.png", "confusion.png")


class ConfigError(ValueError):
    """A training configuration that cannot work (unknown model, bad number, ...)."""


class RunFolderError(ConfigError):
    """The output folder already holds another run (or is not a folder)."""


class RunWriteError(RuntimeError):
    """Writing the run folder failed (full disk, file-size limit, permission, folder gone).

    The message is one line naming the file and the reason, whether the last good checkpoint
    was kept, and the command that resumes; ``os_error`` is the original error.
    """

    def __init__(self, message, os_error=None):
        super().__init__(message)
        self.os_error = os_error


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the message names the step and epoch."""


class TrainingInterrupted(Exception):
    """Training was stopped with Ctrl-C; ``last.npz`` was saved and the message says how to resume."""

    def __init__(self, message, checkpoint_path=None, step=None):
        super().__init__(message)
        self.checkpoint_path, self.step = checkpoint_path, step


# ----------------------------------------------------------------------------- configuration
def _check_int(config, key, low):
    value = config[key]
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ConfigError(f"{key} must be an integer >= {low}, got {value!r}")
    config[key] = int(value)


def _check_float(config, key, low, high=math.inf, low_open=False):
    value = config[key]
    ok = isinstance(value, (int, float, np.floating)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < low or value > high or (low_open and value == low):
        bound = f"> {low}" if low_open else f">= {low}"
        raise ConfigError(f"{key} must be a finite number {bound}{'' if high == math.inf else f' and <= {high}'}, "
                          f"got {value!r}")
    config[key] = float(value)


def make_config(config=None, **overrides):
    """A complete, checked training config: :data:`DEFAULTS` updated by ``config`` and ``overrides``.

    Unknown keys, unknown models or datasets and out-of-range numbers raise
    :class:`ConfigError` naming the key and the value. ``image_size`` may be an int or an
    ``(H, W)`` pair (stored as a list so the config stays JSON).
    """
    merged = dict(DEFAULTS)
    for source in (config or {}), overrides:
        unknown = sorted(set(source) - set(DEFAULTS) - {"class_names", "palette", "num_classes"})
        if unknown:
            raise ConfigError(f"unknown config key(s) {unknown}; known keys are {sorted(DEFAULTS)}")
        merged.update(source)
    cfg = merged
    if cfg["model"] not in models.list_models():
        raise ConfigError(f"unknown model {cfg['model']!r}; available: {', '.join(models.list_models())}")
    if cfg["dataset"] not in data.list_datasets():
        raise ConfigError(f"unknown dataset {cfg['dataset']!r}; available: {', '.join(data.list_datasets())}")
    info = data.dataset_info(cfg["dataset"])
    cfg["download"] = bool(cfg["download"])
    if cfg["download"] and not info.downloadable:
        raise ConfigError(f"dataset {cfg['dataset']!r} cannot be downloaded"
                          + ("" if info.generated else "; point data_root (--data-root) at your folder"))
    if not info.generated and cfg["data_root"] is None:
        if not cfg["download"]:
            raise ConfigError(f"dataset {cfg['dataset']!r} is read from a folder: give data_root (--data-root DIR)"
                              + (" or download it (--download)" if info.downloadable else ""))
        cfg["data_root"] = data.default_data_root()
    if cfg["pets_border"] not in ("ignore", "class"):
        raise ConfigError(f"pets_border must be 'ignore' or 'class', got {cfg['pets_border']!r}")
    if cfg["optimizer"] not in OPTIMIZERS:
        raise ConfigError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {cfg['optimizer']!r}")
    generated = info.generated
    if cfg["image_size"] is None:
        cfg["image_size"] = list(info.image_size)
    for key, default in _GENERATED_SIZES.items():
        if cfg[key] is None and generated:
            cfg[key] = default
    for key, low in (("train_size", 1), ("val_size", 1), ("epochs", 1), ("batch_size", 1),
                     ("seed", 0), ("workers", 0), ("output_stride", 1)):
        if cfg[key] is not None or key not in tuple(_GENERATED_SIZES) + ("output_stride",):
            _check_int(cfg, key, low)
    if cfg["output_stride"] not in (None, 8, 16, 32):
        raise ConfigError(f"output_stride must be 8, 16 or 32, got {cfg['output_stride']}")
    _check_float(cfg, "lr", 0.0, low_open=True)
    _check_float(cfg, "momentum", 0.0, 1.0)
    _check_float(cfg, "weight_decay", 0.0)
    _check_float(cfg, "poly_power", 0.0)
    _check_float(cfg, "dice_weight", 0.0)
    _check_float(cfg, "label_smoothing", 0.0, 1.0)
    size = cfg["image_size"]
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        size = [int(size), int(size)]
    if (not isinstance(size, (list, tuple)) or len(size) != 2
            or not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s >= 8 for s in size)):
        raise ConfigError(f"image_size must be an int >= 8 or an (H, W) pair of them, got {cfg['image_size']!r}")
    cfg["image_size"] = [int(size[0]), int(size[1])]
    smallest = models.zoo.min_input_size(cfg["model"], cfg["backbone"])
    if min(cfg["image_size"]) < smallest:
        backbone = f" with backbone {cfg['backbone']}" if cfg["backbone"] else ""
        raise ConfigError(f"image_size {cfg['image_size'][0]}x{cfg['image_size'][1]} is too small for "
                          f"{cfg['model']}{backbone}: it needs at least {smallest}x{smallest}")
    cfg["aux"] = bool(cfg["aux"])
    own = models.zoo.OWN_BACKBONE_MODELS
    if cfg["model"] in own:
        for key in ("backbone", "output_stride"):
            if cfg[key] is not None:
                raise ConfigError(f"{cfg['model']} has its own backbone at fixed strides: {key} does not apply, "
                                  f"got {cfg[key]!r}")
    if cfg["width"] is not None:
        if cfg["model"] not in own:
            raise ConfigError(f"width applies only to {', '.join(own)} (a channel multiplier), "
                              f"not to {cfg['model']}")
        _check_float(cfg, "width", 0.0, low_open=True)
    if cfg["device"] not in ("cpu", "cuda"):
        raise ConfigError(f"device must be 'cpu' or 'cuda', got {cfg['device']!r}")
    if cfg["data_root"] is not None:
        cfg["data_root"] = os.fspath(cfg["data_root"])
    return cfg


# generated datasets: how many images each split gets (their image sizes are in the registry)
_GENERATED_SIZES = {"train_size": 3200, "val_size": 96}


def build_dataset(config, split, classes=None, progress=False):
    """The ``split`` ('train' / 'val') dataset of ``config`` (:func:`minisegnet.data.build`).

    Generated datasets (``shapes``, ``context``, ``context_control``) get ``train_size`` /
    ``val_size`` images of ``image_size``. Real datasets (``voc``, ``pets``: ``data_root`` in
    torchvision's layout, fetched with ``download``; ``folder``: ``data_root/<split>/{images,masks}``)
    get the registry's transforms at ``image_size`` and are cut to ``train_size`` / ``val_size``
    images when those are set. A failed download raises :class:`minisegnet.data.DownloadError`.
    """
    name = config["dataset"]
    options = {"border": config.get("pets_border", "ignore")} if name == "pets" else {}
    return data.build(name, split, image_size=config["image_size"],
                      length=config["train_size"] if split == "train" else config["val_size"],
                      root=config["data_root"], download=config.get("download", False), classes=classes,
                      progress=progress, **options)


def build_model(config, num_classes=None):
    """A fresh model from ``config`` (``model``, ``backbone``, ``output_stride``, ``aux``, ``width``).

    Its initial weights draw from the global generator: call ``minisegnet.manual_seed``
    first for a reproducible start.
    """
    num_classes = int(num_classes if num_classes is not None else config["num_classes"])
    width = {"width": config["width"]} if config.get("width") is not None else {}
    return models.create(config["model"], num_classes=num_classes, backbone=config["backbone"],
                         output_stride=config["output_stride"], aux=config["aux"], **width)


def build_optimizer(config, model):
    """SGD (with ``momentum``), Adam or AdamW over all of ``model``'s parameters, at ``lr``."""
    params = list(model.parameters())
    if config["optimizer"] == "sgd":
        return optim.SGD(params, lr=config["lr"], momentum=config["momentum"],
                         weight_decay=config["weight_decay"])
    cls = optim.Adam if config["optimizer"] == "adam" else optim.AdamW
    return cls(params, lr=config["lr"], weight_decay=config["weight_decay"])


def read_checkpoint(path):
    """The dict of a training checkpoint (written by :class:`Trainer`), format checked.

    Raises FileNotFoundError for a missing file, :class:`~minisegnet.checkpoint.CheckpointError`
    for a file that is not a training checkpoint, and the OSError of an unreadable one.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if os.path.isdir(path):
        raise FileNotFoundError(f"checkpoint {path} is a folder, expected a file")
    state = checkpoint.load(path)
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT or "config" not in state:
        raise checkpoint.CheckpointError(f"{path!r} is a minisegnet file but not a training checkpoint "
                                         f"(written by `minisegnet train` / Trainer)")
    return state


def _normalised(key, value):
    if key == "image_size" and isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return [int(value), int(value)]
    return list(value) if isinstance(value, tuple) else value


def check_resume(saved, config, path="checkpoint"):
    """Refuse to continue a run saved with config ``saved`` under config ``config``.

    Every key of :data:`DEFAULTS` (and ``num_classes`` when both have it) must match, except
    those in :data:`RESUME_MAY_CHANGE`. Raises :class:`ConfigError` naming the first
    difference; this is the one resume policy of the command line and of Python.
    """
    keys = [k for k in DEFAULTS if k not in RESUME_MAY_CHANGE]
    if "num_classes" in saved and "num_classes" in config:
        keys.append("num_classes")
    for key in keys:          # a key older checkpoints lack counts as its default
        before, now = saved.get(key, DEFAULTS.get(key)), config.get(key, DEFAULTS.get(key))
        if _normalised(key, before) != _normalised(key, now):
            raise ConfigError(f"cannot resume from {path}: it was trained with {key}={saved.get(key)!r}, "
                              f"this run has {key}={config.get(key)!r} (only "
                              f"{', '.join(RESUME_MAY_CHANGE)} may change when a run is resumed)")


def check_run_folder(out, resume=None, force=False):
    """Refuse to write a run into ``out`` when that would mix it with another run.

    ``out`` may be missing or empty; it may hold the run that ``resume`` (a checkpoint path)
    continues; with ``force`` it may hold anything (the old run's files are replaced).
    Otherwise :class:`RunFolderError` names the folder and the ways out. Returns the run
    files found in ``out``.
    """
    out = os.fspath(out)
    if os.path.exists(out) and not os.path.isdir(out):
        raise RunFolderError(f"the output folder {out} exists and is not a folder")
    held = [n for n in RUN_FILES if os.path.exists(os.path.join(out, n))]
    if not held or force:
        return held
    if resume is not None:
        if _is_home(resume, out):
            return held
        home = os.path.dirname(os.path.abspath(os.fspath(resume)))
        raise RunFolderError(f"{out} already holds another run ({', '.join(held)}); a resumed run continues "
                             f"in its checkpoint's folder {home}: leave out --out, choose a new --out, or "
                             f"replace that run with --force (force=True)")
    raise RunFolderError(f"{out} already holds a run ({', '.join(held)}); continue it with --resume, "
                         f"choose a new --out, or replace it with --force (force=True)")


def create_run_folder(out):
    """Create the folder ``out`` (and its parents); an OS refusal is a one-line
    :class:`RunWriteError` naming the folder (call it before any work to fail early)."""
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as e:
        raise RunWriteError(describe_os_error(e, "create the run folder", out), e) from None
    return out


def _is_home(checkpoint_path, out):
    """Whether ``out`` is the folder of ``checkpoint_path`` (False for None or a missing folder)."""
    if checkpoint_path is None or not os.path.isdir(out):
        return False
    home = os.path.dirname(os.path.abspath(os.fspath(checkpoint_path)))
    return os.path.isdir(home) and os.path.samefile(home, out)


def load_checkpoint(path, device="cpu"):
    """Rebuild the model stored in a training checkpoint.

    Returns ``(model, config, state)``: the model in ``eval()`` mode on ``device`` with the
    checkpoint's weights, its config (model name, num_classes, class names, dataset, image
    size, ...) and the whole checkpoint dict.
    """
    state = read_checkpoint(path)
    config = state["config"]
    if config.get("model") not in models.list_models():
        raise checkpoint.CheckpointError(f"checkpoint {path!r} is of model {config.get('model')!r}, "
                                         f"which this version does not have")
    model = build_model(config)
    try:
        model.load_state_dict(state["model"])
    except (ValueError, KeyError) as e:
        raise checkpoint.CheckpointError(f"checkpoint {path!r} does not fit model {config['model']!r}: {e}") from None
    model.to(device)
    model.eval()
    return model, config, state


# ----------------------------------------------------------------------------- evaluation
def evaluation_setup(path, split="val", batch_size=None, device="cpu", **changes):
    """Everything needed to score the checkpoint ``path`` on a split, checked before any work.

    ``changes`` may set ``dataset`` (another dataset with the same number of classes; its own
    default sizes then apply), ``data_root``, ``download``, ``val_size`` (images to score) and
    ``image_size`` (checked against the model's smallest input). Returns
    ``(model, config, cfg, dataset, loader)``: the model in eval mode, the checkpoint's config,
    the evaluation's checked config, the dataset and an unshuffled DataLoader over it.
    """
    unknown = set(changes) - {"dataset", "data_root", "download", "val_size", "image_size"}
    if unknown:
        raise TypeError(f"evaluation_setup: unexpected setting(s) {sorted(unknown)}")
    model, config, _ = load_checkpoint(path, device=device)
    merged = dict(config)
    if changes.get("dataset") is not None:
        if changes["dataset"] not in data.list_datasets():
            raise ConfigError(f"unknown dataset {changes['dataset']!r}; available: "
                              f"{', '.join(data.list_datasets())}")
        if changes["dataset"] != config["dataset"]:
            merged["train_size"] = merged["val_size"] = None
            if changes.get("image_size") is None:
                merged["image_size"] = None
    merged.update({k: v for k, v in changes.items() if v is not None})
    cfg = make_config({k: v for k, v in merged.items() if k in DEFAULTS})
    dataset = build_dataset(cfg, split, classes=config.get("class_names"))
    num_classes = getattr(dataset, "num_classes", None) or len(dataset.classes)
    if num_classes != config["num_classes"]:
        raise ConfigError(f"checkpoint {os.fspath(path)} predicts {config['num_classes']} classes "
                          f"but dataset {cfg['dataset']!r} has {num_classes}")
    loader = data.DataLoader(dataset, batch_size=batch_size or cfg["batch_size"], shuffle=False, device=device)
    return model, config, cfg, dataset, loader


def evaluate(model, loader, num_classes, ignore_index=255, progress=False, desc="val"):
    """Run ``model`` over ``loader`` in eval mode without a graph; returns the filled
    :class:`~minisegnet.metrics.ConfusionMatrix` (``.compute()`` gives mIoU, mDice, ...).

    The model's train/eval mode is restored afterwards.
    """
    was_training = model.training
    model.eval()
    cm = ConfusionMatrix(num_classes, ignore_index=ignore_index)
    bar = _progress(total=len(loader), desc=desc, enabled=progress, leave=False)
    try:
        with no_grad():
            for images, masks in loader:
                cm.update(model(images), masks)
                bar.update(1)
    finally:
        bar.close()
        model.train(was_training)
    return cm


class _NullBar:
    def update(self, n=1):
        pass

    def set_postfix_str(self, s, refresh=True):
        pass

    def close(self):
        pass


def _progress(total, desc, enabled, leave=True):
    if not enabled:
        return _NullBar()
    from tqdm.auto import tqdm
    return tqdm(total=total, desc=desc, leave=leave, file=sys.stderr, dynamic_ncols=True,
                unit="batch")


# ----------------------------------------------------------------------------- Ctrl-C
class _DeferredInterrupt:
    """Ctrl-C handling with one *critical section*: the parameter update.

    A KeyboardInterrupt raised half-way through ``optimizer.step()`` would leave some
    parameters updated and others not. Inside ``with self.critical():`` a Ctrl-C is only
    noted; it is raised when the block ends, so the state is always that of a whole step.
    Outside the block Ctrl-C interrupts at once (a long forward pass need not finish).
    Only the main thread can install signal handlers; elsewhere this does nothing.
    """

    def __init__(self):
        self.pending = False
        self.inside = False
        self.previous = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
            self.previous = None
        return False

    def _handler(self, signum, frame):
        if self.inside:
            self.pending = True
        else:
            raise KeyboardInterrupt

    def critical(self):
        guard = self

        class _Section:
            def __enter__(self):
                guard.inside = True

            def __exit__(self, *exc):
                guard.inside = False
                if guard.pending and exc[0] is None:
                    guard.pending = False
                    raise KeyboardInterrupt
                return False
        return _Section()


# ----------------------------------------------------------------------------- the trainer
class Trainer:
    """Everything one training run needs: model, data, optimizer, schedule, checkpoints.

    Args:
        config: a dict of training settings (see :data:`DEFAULTS`); checked by
            :func:`make_config`.
        out: folder for ``last.npz``, ``best.npz``, ``history.csv`` and ``config.json``
            (created if needed); None keeps everything in memory.
        progress: show tqdm progress bars (on stderr).
        log: called with one line of text per epoch (default ``print``); None is silent.
        force: replace a run that ``out`` already holds (otherwise :meth:`fit` refuses it
            with :class:`RunFolderError`, see :func:`check_run_folder`).

    After :meth:`fit`: ``history`` (a list of dicts, one per epoch), ``confusion`` (the last
    validation :class:`~minisegnet.metrics.ConfusionMatrix`), ``best_score``, ``step``.
    """

    def __init__(self, config=None, out=None, progress=True, log=print, force=False, **overrides):
        self.config = make_config(config, **overrides)
        cfg = self.config
        self.out, self.progress = (os.fspath(out) if out is not None else None), progress
        self.force, self.resumed_from, self._prepared_out = bool(force), None, None
        self.log = log if log is not None else (lambda line: None)
        self.device = cfg["device"]
        backend.normalize_device(self.device)           # fails early when cuda is not usable

        self.train_set = build_dataset(cfg, "train", progress=progress)
        self.val_set = build_dataset(cfg, "val", classes=getattr(self.train_set, "classes", None))
        classes = list(getattr(self.train_set, "classes", None) or [])
        num_classes = getattr(self.train_set, "num_classes", None) or len(classes)
        if not num_classes:
            raise ConfigError(f"dataset {cfg['dataset']!r} does not say how many classes it has")
        cfg["num_classes"] = int(num_classes)
        cfg["class_names"] = [str(c) for c in classes] or [str(k) for k in range(num_classes)]
        palette = getattr(self.train_set, "palette", None)
        cfg["palette"] = None if palette is None else np.asarray(palette).astype(int).tolist()
        self.class_names = cfg["class_names"]
        if cfg["batch_size"] > len(self.train_set):
            raise ConfigError(f"batch_size {cfg['batch_size']} is larger than the training set "
                              f"({len(self.train_set)} images)")

        ms_random.manual_seed(cfg["seed"])
        self.model = build_model(cfg).to(self.device)
        self.model.train()
        self.optimizer = build_optimizer(cfg, self.model)
        # The batches are prepared ahead in a child process (see minisegnet.data.loader): the
        # same batches as loading them inline, without the data work taking this process's GIL.
        self.train_loader = data.DataLoader(self.train_set, batch_size=cfg["batch_size"], shuffle=True,
                                            drop_last=True, seed=cfg["seed"], num_workers=cfg["workers"],
                                            device=self.device, prefetch="process")
        self.val_loader = data.DataLoader(self.val_set, batch_size=cfg["batch_size"], shuffle=False,
                                          drop_last=False, seed=cfg["seed"], num_workers=cfg["workers"],
                                          device=self.device, prefetch="process")
        self.steps_per_epoch = len(self.train_loader)
        self.total_steps = self.steps_per_epoch * cfg["epochs"]
        self.scheduler = optim.PolyLR(self.optimizer, total_iters=self.total_steps, power=cfg["poly_power"])

        self.epoch = 0                  # epochs completed (or the epoch in progress, mid-epoch)
        self.step = 0                   # optimizer steps completed
        self.best_score = -math.inf
        self.best_epoch = None
        self.history = []
        self.elapsed = 0.0              # training + validation seconds, summed over resumes
        self.confusion = None
        self._epoch_loss = [0.0, 0]     # running (sum, count) of the epoch in progress
        self.last_lr = self.optimizer.param_groups[0]["lr"]     # the rate of the last step taken

    # ------------------------------------------------------------------ paths
    def path(self, name):
        return None if self.out is None else os.path.join(self.out, name)

    # ------------------------------------------------------------------ state
    def state_dict(self, rng_state=None, buffers=None):
        """The checkpoint dict. ``rng_state``/``buffers`` replace the live ones when the
        state of an interrupted step has to be rolled back to its start."""
        model_state = self.model.state_dict()
        if buffers is not None:
            model_state.update(buffers)
        return {
            "format": CHECKPOINT_FORMAT,
            "config": self.config,
            "model": model_state,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "epoch": self.epoch, "step": self.step,
            "best_score": None if self.best_score == -math.inf else self.best_score,
            "best_epoch": self.best_epoch,
            "history": self.history, "elapsed": self.elapsed,
            "epoch_loss": list(self._epoch_loss), "last_lr": self.last_lr,
            "rng": {"global": rng_state if rng_state is not None else ms_random.get_rng_state(),
                    "loader_seed": self.config["seed"], "loader_epoch": self.epoch},
        }

    @classmethod
    def from_checkpoint(cls, path, out=None, progress=True, log=print, force=False, **changes):
        """A trainer that continues the run saved in ``path``: its config with ``changes``
        (only keys of :data:`RESUME_MAY_CHANGE` may differ), writing into ``out`` (default:
        the checkpoint's own folder). Call :meth:`fit` to go on."""
        path = os.fspath(path)
        state = read_checkpoint(path)
        saved = state["config"]
        config = make_config({k: v for k, v in saved.items() if k in DEFAULTS}, **changes)
        check_resume(saved, config, path)
        out = os.path.dirname(os.path.abspath(path)) if out is None else os.fspath(out)
        check_run_folder(out, resume=path, force=force)
        trainer = cls(config, out=out, progress=progress, log=log, force=force)
        trainer.load_state_dict(state, path=path)
        return trainer

    def load_state_dict(self, state, path="checkpoint"):
        """Continue from a checkpoint dict written by :meth:`state_dict` (same model and data).

        The configs must agree but for :data:`RESUME_MAY_CHANGE` (:func:`check_resume`)."""
        if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
            raise checkpoint.CheckpointError(f"{path!r} is not a training checkpoint")
        saved = state["config"]
        check_resume(saved, self.config, path)
        try:
            self.model.load_state_dict(state["model"])
        except (ValueError, KeyError) as e:
            raise checkpoint.CheckpointError(f"{path!r} does not fit the model: {e}") from None
        self.optimizer.load_state_dict(state["optimizer"])
        if saved.get("epochs") == self.config["epochs"]:
            self.scheduler.load_state_dict(state["scheduler"])
        else:       # more (or fewer) epochs than planned: the poly schedule is stretched to the new end
            self.scheduler.last_epoch = int(state["step"])
            self.scheduler._apply()
        self.epoch, self.step = int(state["epoch"]), int(state["step"])
        self.best_score = -math.inf if state["best_score"] is None else float(state["best_score"])
        self.best_epoch = state["best_epoch"]
        self.history = [dict(row) for row in state["history"]]
        self.elapsed = float(state["elapsed"])
        self._epoch_loss = [float(state["epoch_loss"][0]), int(state["epoch_loss"][1])]
        self.last_lr = float(state["last_lr"])
        ms_random.set_rng_state(state["rng"]["global"])
        self.resumed_from = os.fspath(path)

    def resume(self, path):
        """Load ``path`` (a ``last.npz``) so that :meth:`fit` continues where it stopped."""
        self.load_state_dict(read_checkpoint(path), path=os.fspath(path))
        return self

    def save(self, name, **kwargs):
        """Write the checkpoint ``out/name`` atomically (refusing non-finite weights)."""
        if self.out is None:
            return None
        for pname, p in self.model.named_parameters():
            if not bool(np.isfinite(_to_host_sum(p.data))):
                raise TrainingDiverged(f"parameter {pname} is not finite at step {self.step} (epoch "
                                       f"{self.epoch + 1}); training stopped and {name} was not overwritten. "
                                       f"Try a lower learning rate.")
        state = self.state_dict(**kwargs)
        return self._write(lambda: checkpoint.save(state, self.path(name)))

    def _write(self, write):
        """Run ``write()``; turn an OSError into :class:`RunWriteError` with the resume hint."""
        try:
            return write()
        except OSError as e:
            last = self.path("last.npz")
            if last is not None and os.path.isfile(last):
                kept = (f"the last good checkpoint {last} was kept; once the folder can be written "
                        f"again, resume with: minisegnet train --out {self.out} --resume")
            else:
                kept = "no checkpoint was saved"
            raise RunWriteError(f"{describe_os_error(e)}; training stopped at step {self.step} and {kept}",
                                e) from None

    def _prepare_out(self):
        """Check the run folder (:func:`check_run_folder`), create it and write config.json.

        With ``force``, another run's files are removed first, so that none of them (an old
        ``best.npz``, say) survives next to the new run's."""
        if self._prepared_out != self.out:            # a second fit() of this trainer continues its own run
            held = check_run_folder(self.out, resume=self.resumed_from, force=self.force)
            if self.force and held and not _is_home(self.resumed_from, self.out):
                for name in held + [n for n in FIGURES if os.path.exists(self.path(n))]:
                    self._write(lambda: os.remove(self.path(name)))
        create_run_folder(self.out)
        self._prepared_out = self.out

        def write_config():
            with atomic_write(self.path("config.json"), "w") as f:
                json.dump(self.config, f, indent=2)
        self._write(write_config)

    # ------------------------------------------------------------------ the loop
    def train_step(self, images, masks):
        """One forward/backward/update; returns the loss as a float (before the update)."""
        losses = self._losses(images, masks)
        loss = losses["loss"]
        value = float(loss.item())
        if not math.isfinite(value):
            kept = self.path("last.npz")
            kept = (f"the last good checkpoint {kept} was kept" if kept and os.path.exists(kept)
                    else "no checkpoint was written")
            raise TrainingDiverged(f"the loss became {value} at step {self.step + 1} (epoch {self.epoch + 1}, "
                                   f"batch {self.step - self.epoch * self.steps_per_epoch + 1}); training "
                                   f"stopped and {kept}. Try a lower learning rate (--lr).")
        self.optimizer.zero_grad()
        loss.backward()
        return value

    def _losses(self, images, masks):
        """The model's losses: cross-entropy (+ 0.4 x auxiliary) (+ ``dice_weight`` x Dice),
        with ``label_smoothing`` in the cross-entropy."""
        options = {key: self.config[key] for key in ("dice_weight", "label_smoothing") if self.config.get(key)}
        return self.model.loss(images, masks, **options)

    def fit(self, resume=None):
        """Train for ``config['epochs']`` epochs (from a checkpoint when ``resume`` is a path).

        Returns ``self.history``. Raises :class:`TrainingInterrupted` after saving
        ``last.npz`` on Ctrl-C, :class:`TrainingDiverged` on a NaN/inf loss,
        :class:`RunFolderError` when ``out`` holds another run and :class:`RunWriteError`
        when the run folder cannot be written.
        """
        if resume is not None:
            self.resume(resume)
        if self.out is not None:
            self._prepare_out()
        allocator.keep_freed_memory()        # each step reuses the last one's memory, unfaulted
        cfg = self.config
        self.model.train()
        # a diverging run is caught by the loss check with a clear message; NumPy's own
        # overflow warnings from the kernels (any thread) would only bury it
        with _DeferredInterrupt() as guard, warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=RuntimeWarning,
                                    message="(overflow|invalid value|divide by zero)")
            try:
                while self.epoch < cfg["epochs"]:
                    self._run_epoch(guard)
            except KeyboardInterrupt:         # between epochs: everything up to here is saved
                self._interrupted(None)
        if self.confusion is None:           # resumed a finished run: score it once more
            self.confusion = evaluate(self.model, self.val_loader, cfg["num_classes"], cfg["ignore_index"],
                                      progress=self.progress)
        return self.history

    def _run_epoch(self, guard):
        cfg, spe = self.config, self.steps_per_epoch
        epoch = self.epoch
        start = time.perf_counter()
        done = self.step - epoch * spe                 # batches of this epoch already trained (resume)
        bar = _progress(total=spe, desc=f"epoch {epoch + 1}/{cfg['epochs']}", enabled=self.progress)
        bar.update(done)
        seen_images, t0 = 0, time.perf_counter()
        snapshot = None
        try:
            if done < spe:
                self.train_loader.set_epoch(epoch)
                for b, (images, masks) in enumerate(self.train_loader):
                    if b < done:
                        continue                       # replay the data order up to where we stopped
                    snapshot = (ms_random.get_rng_state(),
                                {k: v.copy() for k, v in _buffers(self.model).items()})
                    value = self.train_step(images, masks)
                    lr = self.optimizer.param_groups[0]["lr"]
                    with guard.critical():
                        self.last_lr = lr
                        self.optimizer.step()
                        self.scheduler.step()
                        self.step += 1
                        self._epoch_loss[0] += value
                        self._epoch_loss[1] += 1
                        snapshot = None
                    seen_images += images.shape[0]
                    rate = seen_images / max(time.perf_counter() - t0, 1e-9)
                    bar.update(1)
                    bar.set_postfix_str(f"loss {value:.4f}  lr {lr:.2e}  "
                                        f"{rate:.1f} img/s")
            bar.close()
            cm = evaluate(self.model, self.val_loader, cfg["num_classes"], cfg["ignore_index"],
                          progress=self.progress)
        except KeyboardInterrupt:
            bar.close()
            self.elapsed += time.perf_counter() - start
            self._interrupted(snapshot)
        with guard.critical():         # a Ctrl-C here waits until the epoch is saved
            self._finish_epoch(cm, start)

    def _finish_epoch(self, cm, start):
        """Epoch bookkeeping: the history row, ``last.npz`` / ``best.npz``, ``history.csv``."""
        cfg = self.config
        self.confusion = cm
        scores = cm.compute()
        self.elapsed += time.perf_counter() - start
        self.epoch += 1
        mean_loss = self._epoch_loss[0] / max(self._epoch_loss[1], 1)
        self._epoch_loss = [0.0, 0]
        row = {"epoch": self.epoch, "step": self.step, "train_loss": mean_loss,
               "lr": self.last_lr, "val_mIoU": scores["mIoU"],
               "val_mDice": scores["mDice"], "val_aAcc": scores["aAcc"], "time": self.elapsed}
        self.history.append(row)
        improved = scores["mIoU"] > self.best_score
        if improved:
            self.best_score, self.best_epoch = scores["mIoU"], self.epoch
        self.save("last.npz")
        if improved:
            self.save("best.npz")
        self.write_history()
        self.log(f"epoch {self.epoch}/{cfg['epochs']}  loss {mean_loss:.4f}  val mIoU {scores['mIoU']:.4f}  "
                 f"mDice {scores['mDice']:.4f}  aAcc {scores['aAcc']:.4f}  ({self.elapsed:.1f} s)")

    def _interrupted(self, snapshot):
        """Ctrl-C: save the state after the last completed step, then raise TrainingInterrupted."""
        rng_state, buffers = snapshot if snapshot is not None else (None, None)
        path = self.save("last.npz", rng_state=rng_state, buffers=buffers)
        if path is None:
            raise TrainingInterrupted(f"training interrupted at step {self.step} (epoch {self.epoch + 1}); "
                                      f"nothing was saved (no output folder)", None, self.step)
        raise TrainingInterrupted(
            f"training interrupted at step {self.step} (epoch {self.epoch + 1}); saved {path}. "
            f"Resume with: minisegnet train --out {self.out} --resume", path, self.step)

    def save_figures(self, max_images=6):
        """``curves.png``, ``predictions.png`` (validation samples) and ``confusion.png`` in the
        run folder (after :meth:`fit`); returns their paths."""
        from . import viz
        cfg, paths = self.config, [self.path(n) for n in FIGURES]
        viz.plot_curves(self.path("history.csv"), paths[0])
        images, masks = next(iter(self.val_loader))
        images, masks = images[:max_images], masks[:max_images]
        self.model.eval()
        with no_grad():
            preds = self.model(images)
        viz.plot_predictions(images, masks, preds, self.class_names, paths[1], palette=cfg.get("palette"),
                             max_images=max_images, title=f"{cfg['model']} on {cfg['dataset']} (val)")
        viz.plot_confusion(self.confusion, self.class_names, paths[2])
        return paths

    def write_history(self):
        """Write ``history.csv`` (one row per finished epoch) into the output folder."""
        if self.out is None:
            return None
        path = self.path("history.csv")

        def write():
            with atomic_write(path, "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=HISTORY_FIELDS)
                writer.writeheader()
                for row in self.history:
                    writer.writerow({k: (f"{row[k]:.6g}" if isinstance(row[k], float) else row[k])
                                     for k in HISTORY_FIELDS})
        self._write(write)
        return path


def _buffers(model):
    return {name: b.data for name, b in model.named_buffers()}


def _to_host_sum(array):
    """A float summary of ``array`` that is finite iff every entry is (cheap on any device)."""
    xp = backend.array_module(array)
    return float(backend.to_numpy(xp.abs(array).max() if array.size else xp.zeros(())))


def fit(config=None, out=None, resume=None, progress=True, log=print, force=False, **overrides):
    """Build a :class:`Trainer` from ``config``/``overrides`` and train it; returns the trainer.

    Example::

        trainer = fit(model="pspnet", dataset="shapes", epochs=2, image_size=32, out="runs/psp")
        trainer.history[-1]["val_mIoU"]
    """
    trainer = Trainer(config, out=out, progress=progress, log=log, force=force, **overrides)
    trainer.fit(resume=resume)
    return trainer
