"""The ``minisegnet`` command line (``python -m minisegnet`` is the same).

::

    minisegnet train                          DeepLabV3 on Shapes: checkpoints, curves, mIoU table
    minisegnet train --model pspnet --dataset context --epochs 8 --out runs/psp
    minisegnet train --out runs/psp --resume  continue an interrupted run (in its own folder)
    minisegnet train --dataset pets --download   real photos: fetched, checked, unpacked into ./data
    minisegnet evaluate --checkpoint runs/psp/best.npz [--json]
    minisegnet predict --checkpoint runs/psp/best.npz photo.jpg --out masks/
    minisegnet models | datasets              what can be trained, on what
    minisegnet grade [PATH ...]               check the exercises
    minisegnet bench ops|train|zoo [--quick]  run a benchmark script of the repository

The handlers here only parse, call the library (:mod:`minisegnet.train`,
:mod:`minisegnet.predict`, :mod:`minisegnet.data`) and print. A bad argument (unknown model,
missing file, a checkpoint of another model, ``--device cuda`` without a GPU, an image size
below the model's smallest, an ``--out`` that holds another run) prints one line
``minisegnet: error: ...`` on stderr and exits with status 2, never a traceback. A failure of
the OS (full disk, file-size limit, permission, a folder that vanished) or of a download is
one line naming the path and the reason, exit status 1, with the last good checkpoint kept.
A closed pipe (``| head``) ends quietly. Ctrl-C during training saves ``last.npz`` and exits
with 130.
"""
import argparse
import contextlib
import errno
import json
import os
import runpy
import sys

import numpy as np

from . import __version__
from .fileio import describe_os_error

EXIT_FAILURE = 1                # the OS failed us (full disk, permission, ...) or training diverged
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

class UsageError(Exception):
    """A bad command line: printed as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad argument is one line on stderr (no usage block), exit status 2."""

    def error(self, message):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def _fail(message, status=EXIT_USAGE):
    text = " ".join(str(message).split())         # one line, whatever the message held
    print(f"minisegnet: error: {text}", file=sys.stderr)
    return status


# what a bad argument raises before any work (ConfigError and CheckpointError are ValueErrors)
_USAGE_ERRORS = (OSError, ValueError, TypeError, RuntimeError)


def _usage_or_os_error(error, action):
    """A bad argument exits 2 with its message; an OS failure (errno set) exits 1 with
    ``cannot <action> PATH: reason``."""
    if isinstance(error, OSError) and error.errno is not None:
        if error.errno in (errno.ENOSPC, errno.EFBIG, errno.EROFS):
            action = "write"
        return _fail(describe_os_error(error, action), EXIT_FAILURE)
    return _fail(error)


def _image_size(text):
    """``64`` or ``256x32`` (H x W)."""
    try:
        parts = [int(p) for p in text.lower().replace(",", "x").split("x")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected N or HxW (e.g. 64 or 256x32), got {text!r}") from None
    if len(parts) not in (1, 2) or min(parts) < 8:
        raise argparse.ArgumentTypeError(f"expected N or HxW with sides >= 8, got {text!r}")
    return parts * 2 if len(parts) == 1 else parts


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _nonnegative_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def _positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0 or not np.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _nonnegative_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}") from None
    if not value >= 0 or not np.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return value


# ----------------------------------------------------------------------------- the parser
def build_parser():
    from .predict import DEFAULT_ALPHA as PREDICT_ALPHA
    from .train import _GENERATED_SIZES as G, DEFAULTS as D
    parser = _Parser(prog="minisegnet",
                     description="Learn semantic segmentation by building it: train, evaluate and run "
                                 "FCN / PSPNet / DeepLab on NumPy (CPU) or CuPy (GPU).")
    parser.add_argument("--version", action="version", version=f"minisegnet {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    t = sub.add_parser("train", help="train a model (defaults: DeepLabV3 on Shapes, a few minutes on a CPU)",
                       description="Train a segmentation model; writes last.npz, best.npz, history.csv, "
                                   "curves.png, predictions.png and confusion.png to --out.")
    t.add_argument("--model", help="model name (see `minisegnet models`; default deeplabv3)")
    t.add_argument("--dataset", help="dataset name (see `minisegnet datasets`; default shapes)")
    t.add_argument("--data-root", dest="data_root", metavar="DIR",
                   help="folder of a 'voc', 'pets' or 'folder' dataset (with --download: where it goes, "
                        "default $MINISEGNET_DATA or ./data)")
    t.add_argument("--download", action="store_true", default=None,
                   help="fetch a real dataset ('voc', 'pets') first: official archives, MD5-checked; mirrors "
                        "from $MINISEGNET_DATASET_MIRROR first")
    t.add_argument("--pets-border", dest="pets_border", choices=("ignore", "class"),
                   help="the pets trimaps' border: ignored in loss and metrics (default) or a third class")
    t.add_argument("--epochs", type=_positive_int, help=f"passes over the training set (default {D['epochs']})")
    t.add_argument("--batch-size", dest="batch_size", type=_positive_int,
                   help=f"images per step (default {D['batch_size']})")
    t.add_argument("--lr", type=_positive_float, help=f"base learning rate, poly schedule with power 0.9 (default {D['lr']:g})")
    t.add_argument("--optimizer", choices=("sgd", "adam", "adamw"), help=f"(default {D['optimizer']})")
    t.add_argument("--momentum", type=_nonnegative_float, help="SGD momentum (default 0.9)")
    t.add_argument("--weight-decay", dest="weight_decay", type=_nonnegative_float,
                   help=f"(default {D['weight_decay']:g})")
    t.add_argument("--dice-weight", dest="dice_weight", type=_nonnegative_float,
                   help=f"add this times the Dice loss to the cross-entropy (default {D['dice_weight']:g})")
    t.add_argument("--label-smoothing", dest="label_smoothing", type=_nonnegative_float,
                   help="cross-entropy label smoothing in [0, 1] (default 0)")
    t.add_argument("--image-size", dest="image_size", type=_image_size, metavar="N|HxW",
                   help="image size (default: the dataset's, 64 for shapes, 256x32 for context)")
    t.add_argument("--train-size", dest="train_size", type=_positive_int, help=f"training images of a generated dataset (default {G['train_size']})")
    t.add_argument("--val-size", dest="val_size", type=_positive_int, help=f"validation images of a generated dataset (default {G['val_size']})")
    t.add_argument("--device", choices=("cpu", "cuda"), help="(default cpu)")
    t.add_argument("--out", metavar="DIR", help="output folder (default runs/MODEL_DATASET)")
    t.add_argument("--resume", nargs="?", const=True, default=None, metavar="CHECKPOINT",
                   help="continue from CHECKPOINT (default OUT/last.npz), writing into its folder")
    t.add_argument("--force", action="store_true",
                   help="replace the run that --out already holds (default: refuse)")
    t.add_argument("--seed", type=_nonnegative_int,
                   help=f"seed of the initialisation, dropout and data order (default {D['seed']})")
    t.add_argument("--backbone", help="resnet_tiny (default), resnet18, resnet34, vgg_tiny")
    t.add_argument("--output-stride", dest="output_stride", type=int, choices=(8, 16, 32))
    t.add_argument("--width", type=_positive_float,
                   help="channel multiplier of fast_scnn, bisenetv2, segformer_b0 (default 1.0, the paper's)")
    t.add_argument("--aux", action=argparse.BooleanOptionalAction, default=None,
                   help="auxiliary FCN head on c3, loss weight 0.4 (default on)")
    t.add_argument("--workers", type=_nonnegative_int, help="data-loading threads (default 0)")
    t.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    t.add_argument("--no-plots", dest="plots", action="store_false", help="skip the PNG figures")

    e = sub.add_parser("evaluate", help="score a checkpoint on a dataset's validation split")
    e.add_argument("--checkpoint", required=True, metavar="PATH")
    e.add_argument("--dataset", help="dataset (default: the one it was trained on)")
    e.add_argument("--data-root", dest="data_root", metavar="DIR")
    e.add_argument("--download", action="store_true", default=None, help="fetch a real dataset first")
    e.add_argument("--split", default="val", choices=("train", "val", "test"))
    e.add_argument("--val-size", dest="val_size", type=_positive_int, help="number of images to score")
    e.add_argument("--image-size", dest="image_size", type=_image_size, metavar="N|HxW")
    e.add_argument("--batch-size", dest="batch_size", type=_positive_int)
    e.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    e.add_argument("--json", action="store_true", help="print the scores as JSON")

    p = sub.add_parser("predict", help="segment image files: coloured masks and overlays as PNG")
    p.add_argument("--checkpoint", required=True, metavar="PATH")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--native", action="store_true",
                   help="run at the image's own size (default: resize to the training size)")
    p.add_argument("--alpha", type=float, default=PREDICT_ALPHA,
                   help="opacity of the colours in *_overlay.png, 0 to 1 (default %(default)s)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")

    sub.add_parser("models", help="list the models")
    sub.add_parser("datasets", help="list the datasets")

    g = sub.add_parser("grade", help="grade the exercises (one student's files, or a class with --class)")
    from .grading.cli import add_arguments as add_grade_arguments
    add_grade_arguments(g)

    b = sub.add_parser("bench", help="run a benchmark script of the repository (benchmarks/bench_NAME.py)")
    b.add_argument("name", metavar="NAME", help="e.g. ops, train, zoo")
    b.add_argument("--quick", action="store_true", help="a short version")
    b.add_argument("rest", nargs=argparse.REMAINDER, help="further arguments for the script")
    return parser


# ----------------------------------------------------------------------------- train
_TRAIN_KEYS = ("model", "dataset", "data_root", "download", "pets_border", "epochs", "batch_size", "lr",
               "optimizer", "momentum", "weight_decay", "dice_weight", "label_smoothing", "image_size",
               "train_size", "val_size", "device", "seed", "backbone", "output_stride", "aux", "width",
               "workers")


def cmd_train(args):
    from . import data, train
    given = {k: getattr(args, k) for k in _TRAIN_KEYS if getattr(args, k) is not None}
    created = None
    try:
        if args.resume is not None:
            if args.resume is True:
                out = args.out or _default_out(given)
                resume_path = os.path.join(out, "last.npz")
            else:
                resume_path, out = args.resume, args.out
            if not os.path.isfile(resume_path):
                raise FileNotFoundError(f"--resume: checkpoint not found: {resume_path}")
            trainer = train.Trainer.from_checkpoint(resume_path, out=out, progress=args.progress, log=print,
                                                    force=args.force, **given)
            out = trainer.out
            print(f"resuming {resume_path} at epoch {trainer.epoch + 1}, step {trainer.step}")
        else:
            out = args.out or _default_out(given)
            config = train.make_config(given)             # bad settings fail before any work
            train.check_run_folder(out, force=args.force)
            created = None if os.path.isdir(out) else out
            train.create_run_folder(out)                  # an unwritable --out fails before any work
            trainer = train.Trainer(config, out=out, progress=args.progress, log=print, force=args.force)
    except (train.RunWriteError, data.DownloadError) as e:
        return _fail(e, EXIT_FAILURE)
    except _USAGE_ERRORS as e:
        if created is not None:                           # leave no empty folder behind a bad argument
            with contextlib.suppress(OSError):
                os.rmdir(created)
        return _usage_or_os_error(e, "read")

    cfg = trainer.config
    print(f"training {cfg['model']} ({trainer.model.__class__.__name__}, "
          f"{sum(int(np.prod(p.shape)) for p in trainer.model.parameters()):,} parameters) on "
          f"{cfg['dataset']} {cfg['image_size'][0]}x{cfg['image_size'][1]}: {len(trainer.train_set)} train / "
          f"{len(trainer.val_set)} val images, {cfg['epochs']} epochs of {trainer.steps_per_epoch} steps, "
          f"{cfg['optimizer']} lr {cfg['lr']:g}, device {cfg['device']} -> {out}")
    try:
        trainer.fit()
    except train.TrainingInterrupted as e:
        print(f"\n{e}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (train.TrainingDiverged, train.RunWriteError) as e:
        return _fail(e, status=EXIT_FAILURE)
    except train.RunFolderError as e:
        return _fail(e)

    if args.plots:
        try:
            print(f"wrote {', '.join(trainer.save_figures())}")
        except OSError as e:
            return _fail(f"{describe_os_error(e)}; the checkpoints in {out} are complete", EXIT_FAILURE)
    print()
    print(trainer.confusion.table(trainer.class_names))
    scores = trainer.confusion.compute()
    print(f"val mIoU = {scores['mIoU']:.4f}  (mDice {scores['mDice']:.4f}, aAcc {scores['aAcc']:.4f}; "
          f"best {trainer.best_score:.4f} at epoch {trainer.best_epoch}; {trainer.elapsed:.0f} s) -> {out}")
    return 0


def _default_out(given):
    return os.path.join("runs", f"{given.get('model', 'deeplabv3')}_{given.get('dataset', 'shapes')}")


# ----------------------------------------------------------------------------- evaluate
def cmd_evaluate(args):
    from . import data, train
    try:
        _require_file(args.checkpoint, "--checkpoint")
        changes = {k: getattr(args, k) for k in ("dataset", "data_root", "val_size", "image_size", "download")
                   if getattr(args, k) is not None}
        model, config, cfg, dataset, loader = train.evaluation_setup(
            args.checkpoint, split=args.split, batch_size=args.batch_size, device=args.device, **changes)
    except data.DownloadError as e:
        return _fail(e, EXIT_FAILURE)
    except _USAGE_ERRORS as e:
        return _usage_or_os_error(e, "read")
    cm = train.evaluate(model, loader, config["num_classes"], cfg["ignore_index"], progress=not args.json)
    scores = cm.compute()
    names = list(config.get("class_names") or range(config["num_classes"]))
    if args.json:
        def clean(v):
            return None if v is None or (isinstance(v, float) and not np.isfinite(v)) else v
        result = {"checkpoint": args.checkpoint, "model": config["model"], "dataset": cfg["dataset"],
                  "split": args.split, "images": len(dataset),
                  "mIoU": clean(scores["mIoU"]), "mDice": clean(scores["mDice"]),
                  "mAcc": clean(scores["mAcc"]), "aAcc": clean(scores["aAcc"]),
                  "classes": {str(n): {"IoU": clean(float(scores["IoU"][k])),
                                       "Dice": clean(float(scores["Dice"][k])),
                                       "Acc": clean(float(scores["Acc"][k]))} for k, n in enumerate(names)},
                  "confusion_matrix": cm.matrix.tolist()}
        print(json.dumps(result, indent=2))
    else:
        print(f"{config['model']} on {cfg['dataset']} ({args.split}, {len(dataset)} images)")
        print(cm.table([str(n) for n in names]))
        print(f"{args.split} mIoU = {scores['mIoU']:.4f}")
    return 0


def _require_file(path, what):
    if not os.path.exists(path):
        raise FileNotFoundError(f"{what}: file not found: {path}")
    if os.path.isdir(path):
        raise FileNotFoundError(f"{what}: {path} is a folder, expected a file")


# ----------------------------------------------------------------------------- predict
def cmd_predict(args):
    from . import predict, train
    try:
        _require_file(args.checkpoint, "--checkpoint")
        for path in args.images:
            _require_file(path, "IMAGE")
        if not 0 <= args.alpha <= 1:
            raise ValueError(f"--alpha must be in [0, 1], got {args.alpha}")
        if os.path.exists(args.out) and not os.path.isdir(args.out):
            raise NotADirectoryError(f"--out: {args.out} exists and is not a folder")
        model, config, _ = train.load_checkpoint(args.checkpoint, device=args.device)
    except _USAGE_ERRORS as e:
        return _usage_or_os_error(e, "read")
    try:
        _, skipped = predict.predict_files(model, config, args.images, args.out, alpha=args.alpha,
                                           native=args.native, device=args.device, log=print,
                                           warn=lambda line: print(f"minisegnet: warning: {line}", file=sys.stderr))
    except OSError as e:
        return _fail(describe_os_error(e), EXIT_FAILURE)
    if skipped:
        return _fail(f"{len(skipped)} of {len(args.images)} images were skipped (see above)", EXIT_FAILURE)
    return 0


# ----------------------------------------------------------------------------- listings
def cmd_models(args):
    from . import models
    described = models.list_models()
    if not isinstance(described, dict):
        described = {name: "" for name in described}
    width = max(len(n) for n in described)
    for name, text in described.items():
        print(f"{name:<{width}}  {text}")
    return 0


def cmd_datasets(args):
    from . import data
    names = data.list_datasets()
    width = max(len(n) for n in names)
    for name in names:
        print(f"{name:<{width}}  {data.dataset_info(name).description}")
    return 0


# ----------------------------------------------------------------------------- grade, bench
def cmd_grade(args):
    import importlib
    import importlib.util
    if importlib.util.find_spec(f"{__package__}.grading") is None:
        return _fail("the grader (minisegnet.grading) is not part of this installation yet; "
                     "update minisegnet to grade the exercises")
    grading = importlib.import_module(f"{__package__}.grading")
    return grading.cli(args)


def benchmark_dirs():
    """Folders that may hold the repository's ``benchmarks/``: next to the package, then the CWD."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    dirs = [os.path.join(here, "benchmarks"), os.path.join(os.getcwd(), "benchmarks")]
    return dirs[:1] if os.path.samefile(here, os.getcwd()) else dirs


def find_benchmark(name):
    for folder in benchmark_dirs():
        path = os.path.join(folder, f"bench_{name}.py")
        if os.path.isfile(path):
            return path
    return None


def available_benchmarks():
    found = set()
    for folder in benchmark_dirs():
        if os.path.isdir(folder):
            found |= {f[len("bench_"):-3] for f in os.listdir(folder) if f.startswith("bench_") and f.endswith(".py")}
    return sorted(found)


def cmd_bench(args):
    path = find_benchmark(args.name)
    if path is None:
        known = available_benchmarks()
        if not known:
            return _fail(f"no benchmarks/ folder found (looked in {', '.join(benchmark_dirs())}); the benchmark "
                         f"scripts come with the repository, not with an installed package")
        return _fail(f"unknown benchmark {args.name!r}; available: {', '.join(known)}")
    argv = [path] + (["--quick"] if args.quick else []) + list(args.rest)
    saved = sys.argv
    sys.argv = argv
    try:
        runpy.run_path(path, run_name="__main__")
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else _fail(e.code, 1))
    finally:
        sys.argv = saved
    return 0


COMMANDS = {"train": cmd_train, "evaluate": cmd_evaluate, "predict": cmd_predict, "models": cmd_models,
            "datasets": cmd_datasets, "grade": cmd_grade, "bench": cmd_bench}


def main(argv=None):
    """Entry point of the ``minisegnet`` console script; returns the exit status.

    Whatever the command, a closed pipe on stdout (``minisegnet ... | head -1``) ends quietly
    and any other OS failure is one line on stderr with exit status 1, never a traceback.
    """
    try:
        status = _run(argv)
        sys.stdout.flush()          # a full disk or closed pipe behind stdout shows up here, not at exit
        return status
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:         # the reader left: nothing more to say
        _silence_stdout()
        return EXIT_FAILURE
    except OSError as e:
        _silence_stdout()
        return _fail(describe_os_error(e, path=e.filename if e.filename is not None else "standard output"),
                     EXIT_FAILURE)


def _run(argv):
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:          # --help, --version, or a bad argument (already printed)
        return e.code if isinstance(e.code, int) else EXIT_USAGE
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    return COMMANDS[args.command](args)


def _silence_stdout():
    """Point stdout at /dev/null so that Python's own flush at exit cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):     # stdout without a file descriptor (tests)
        pass


if __name__ == "__main__":
    sys.exit(main())
