"""The ``minisegnet`` command line (``python -m minisegnet`` is the same).

::

    minisegnet train                          DeepLabV3 on Shapes: checkpoints, curves, mIoU table
    minisegnet train --model pspnet --dataset context --epochs 8 --out runs/psp
    minisegnet train --out runs/psp --resume  continue an interrupted run
    minisegnet evaluate --checkpoint runs/psp/best.npz [--json]
    minisegnet predict --checkpoint runs/psp/best.npz photo.jpg --out masks/
    minisegnet models | datasets              what can be trained, on what
    minisegnet grade [PATH ...]               check the exercises
    minisegnet bench ops|train|zoo [--quick]  run a benchmark script of the repository

A bad argument (unknown model, missing file, a checkpoint of another model, ``--device
cuda`` without a GPU) prints one line ``minisegnet: error: ...`` on stderr and exits with
status 2, never a traceback. Ctrl-C during training saves ``last.npz`` and exits with 130.
"""
import argparse
import json
import os
import runpy
import sys

import numpy as np

from . import __version__

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

DATASET_DESCRIPTIONS = {
    "shapes": "generated circles, squares and triangles on textured backgrounds (4 classes)",
    "context": "generated tall strips: a blob is a boat or a car only by the water/road band far below (5 classes)",
    "context_control": "the context strips with boats and cars shaped differently: local appearance suffices",
    "voc": "Pascal VOC 2012 from a folder you have (--data-root VOC2012), 21 classes",
    "folder": "any images + masks folders (--data-root DIR with DIR/{train,val}/{images,masks})",
}


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
    t.add_argument("--data-root", dest="data_root", metavar="DIR", help="folder of a 'voc' or 'folder' dataset")
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
    t.add_argument("--image-size", dest="image_size", type=_image_size, metavar="N|HxW",
                   help="image size (default: the dataset's, 64 for shapes, 256x32 for context)")
    t.add_argument("--train-size", dest="train_size", type=_positive_int, help=f"training images of a generated dataset (default {G['train_size']})")
    t.add_argument("--val-size", dest="val_size", type=_positive_int, help=f"validation images of a generated dataset (default {G['val_size']})")
    t.add_argument("--device", choices=("cpu", "cuda"), help="(default cpu)")
    t.add_argument("--out", metavar="DIR", help="output folder (default runs/MODEL_DATASET)")
    t.add_argument("--resume", nargs="?", const=True, default=None, metavar="CHECKPOINT",
                   help="continue from CHECKPOINT (default OUT/last.npz)")
    t.add_argument("--seed", type=_nonnegative_int,
                   help=f"seed of the initialisation, dropout and data order (default {D['seed']})")
    t.add_argument("--backbone", help="resnet_tiny (default), resnet18, resnet34, vgg_tiny")
    t.add_argument("--output-stride", dest="output_stride", type=int, choices=(8, 16, 32))
    t.add_argument("--aux", action=argparse.BooleanOptionalAction, default=None,
                   help="auxiliary FCN head on c3, loss weight 0.4 (default on)")
    t.add_argument("--workers", type=_nonnegative_int, help="data-loading threads (default 0)")
    t.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    t.add_argument("--no-plots", dest="plots", action="store_false", help="skip the PNG figures")

    e = sub.add_parser("evaluate", help="score a checkpoint on a dataset's validation split")
    e.add_argument("--checkpoint", required=True, metavar="PATH")
    e.add_argument("--dataset", help="dataset (default: the one it was trained on)")
    e.add_argument("--data-root", dest="data_root", metavar="DIR")
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
    p.add_argument("--alpha", type=float, default=0.5, help="overlay opacity (default 1)")
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
_TRAIN_KEYS = ("model", "dataset", "data_root", "epochs", "batch_size", "lr", "optimizer", "momentum",
               "weight_decay", "dice_weight", "image_size", "train_size", "val_size", "device", "seed",
               "backbone", "output_stride", "aux", "workers")
# settings a resumed run may change; the others must match the checkpoint
_RESUME_MAY_CHANGE = ("epochs", "device", "workers")


def cmd_train(args):
    from . import checkpoint, train
    given = {k: getattr(args, k) for k in _TRAIN_KEYS if getattr(args, k) is not None}
    try:
        state, resume_path = None, None
        if args.resume is not None:
            if args.resume is True:
                out = args.out or _default_out(given)
                resume_path = os.path.join(out, "last.npz")
            else:
                resume_path = args.resume
                out = args.out or os.path.dirname(os.path.abspath(resume_path))
            if not os.path.isfile(resume_path):
                raise FileNotFoundError(f"--resume: checkpoint not found: {resume_path}")
            state = checkpoint.load(resume_path)
            if not isinstance(state, dict) or state.get("format") != train.CHECKPOINT_FORMAT:
                raise checkpoint.CheckpointError(f"--resume: {resume_path} is not a training checkpoint")
            config = {k: v for k, v in state["config"].items()}
            for key, value in given.items():
                if key in _RESUME_MAY_CHANGE:
                    config[key] = value
                elif _normalised(key, value) != _normalised(key, config.get(key)):
                    raise train.ConfigError(f"--resume: {resume_path} was trained with "
                                            f"{key}={config.get(key)!r}; cannot continue it with {key}={value!r}")
        else:
            config = given
            out = args.out or _default_out(given)
        trainer = train.Trainer(config, out=out, progress=args.progress, log=print)
        if state is not None:
            trainer.load_state_dict(state, path=resume_path)
            print(f"resuming {resume_path} at epoch {trainer.epoch + 1}, step {trainer.step}")
    except (train.ConfigError, checkpoint.CheckpointError, FileNotFoundError, NotADirectoryError,
            ValueError, TypeError, RuntimeError) as e:
        return _fail(e)

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
    except train.TrainingDiverged as e:
        return _fail(e, status=1)

    if args.plots:
        _training_figures(trainer, out)
    print()
    print(trainer.confusion.table(trainer.class_names))
    scores = trainer.confusion.compute()
    print(f"val mIoU = {scores['mIoU']:.4f}  (mDice {scores['mDice']:.4f}, aAcc {scores['aAcc']:.4f}; "
          f"best {trainer.best_score:.4f} at epoch {trainer.best_epoch}; {trainer.elapsed:.0f} s) -> {out}")
    return 0


def _normalised(key, value):
    if key == "image_size" and isinstance(value, (int, np.integer)):
        return [int(value), int(value)]
    return list(value) if isinstance(value, tuple) else value


def _default_out(given):
    return os.path.join("runs", f"{given.get('model', 'deeplabv3')}_{given.get('dataset', 'shapes')}")


def _training_figures(trainer, out):
    """curves.png, predictions.png (val samples) and confusion.png in ``out``."""
    from . import viz
    from .tensor import no_grad
    cfg = trainer.config
    viz.plot_curves(trainer.path("history.csv"), os.path.join(out, "curves.png"))
    images, masks = next(iter(trainer.val_loader))
    images, masks = images[:6] if images.shape[0] > 6 else images, masks[:6] if masks.shape[0] > 6 else masks
    trainer.model.eval()
    with no_grad():
        preds = trainer.model(images)
    viz.plot_predictions(images, masks, preds, trainer.class_names, os.path.join(out, "predictions.png"),
                         palette=cfg.get("palette"), max_images=6,
                         title=f"{cfg['model']} on {cfg['dataset']} (val)")
    viz.plot_confusion(trainer.confusion, trainer.class_names, os.path.join(out, "confusion.png"))
    print(f"wrote {', '.join(os.path.join(out, n) for n in ('curves.png', 'predictions.png', 'confusion.png'))}")


# ----------------------------------------------------------------------------- evaluate
def cmd_evaluate(args):
    from . import checkpoint, data, train
    try:
        _require_file(args.checkpoint, "--checkpoint")
        model, config, _ = train.load_checkpoint(args.checkpoint, device=args.device)
        config = dict(config)
        if args.dataset is not None:
            if args.dataset not in data.list_datasets():
                raise train.ConfigError(f"unknown dataset {args.dataset!r}; available: "
                                        f"{', '.join(data.list_datasets())}")
            if args.dataset != config["dataset"]:
                config["train_size"] = config["val_size"] = None
                if args.image_size is None:
                    config["image_size"] = None
            config["dataset"] = args.dataset
        for key in ("data_root", "val_size", "image_size"):
            if getattr(args, key) is not None:
                config[key] = getattr(args, key)
        known = {k: v for k, v in config.items() if k in train.DEFAULTS}
        cfg = train.make_config(known)
        dataset = train.build_dataset(cfg, args.split, classes=config.get("class_names"))
        num_classes = getattr(dataset, "num_classes", None) or len(dataset.classes)
        if num_classes != config["num_classes"]:
            raise train.ConfigError(f"checkpoint {args.checkpoint} predicts {config['num_classes']} classes "
                                    f"but dataset {cfg['dataset']!r} has {num_classes}")
        loader = data.DataLoader(dataset, batch_size=args.batch_size or cfg["batch_size"], shuffle=False,
                                 device=args.device)
    except (train.ConfigError, checkpoint.CheckpointError, FileNotFoundError, NotADirectoryError,
            ValueError, TypeError, RuntimeError) as e:
        return _fail(e)
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
    from . import checkpoint, train
    try:
        _require_file(args.checkpoint, "--checkpoint")
        for path in args.images:
            _require_file(path, "IMAGE")
        if not 0 <= args.alpha <= 1:
            raise ValueError(f"--alpha must be in [0, 1], got {args.alpha}")
        model, config, _ = train.load_checkpoint(args.checkpoint, device=args.device)
        images = [_read_image(path) for path in args.images]
        if os.path.exists(args.out) and not os.path.isdir(args.out):
            raise NotADirectoryError(f"--out: {args.out} exists and is not a folder")
        os.makedirs(args.out, exist_ok=True)
    except (train.ConfigError, checkpoint.CheckpointError, FileNotFoundError, NotADirectoryError,
            ValueError, TypeError, RuntimeError) as e:
        return _fail(e)
    from PIL import Image
    from . import viz
    palette = config.get("palette")
    if palette is None:
        palette = viz.make_palette(config["num_classes"])
    palette = np.asarray(palette, dtype=np.uint8)
    for path, image in zip(args.images, images):
        labels = predict_image(model, image, None if args.native else tuple(config["image_size"]), args.device)
        stem = os.path.splitext(os.path.basename(path))[0]
        Image.fromarray(labels.astype(np.uint8)).save(os.path.join(args.out, f"{stem}_labels.png"))
        Image.fromarray(viz.colorize(labels, palette)).save(os.path.join(args.out, f"{stem}_mask.png"))
        Image.fromarray(viz.overlay(image, labels, alpha=args.alpha, palette=palette)).save(
            os.path.join(args.out, f"{stem}_overlay.png"))
        present = ", ".join(f"{config['class_names'][k]} {100 * np.mean(labels == k):.0f}%"
                            for k in np.unique(labels) if k < len(config["class_names"]))
        print(f"{path}: {stem}_mask.png, {stem}_overlay.png ({present})")
    return 0


def _read_image(path):
    """An image file as float32 (3, H, W) in [0, 1] (RGB; alpha and palettes converted)."""
    from PIL import Image, UnidentifiedImageError
    try:
        with Image.open(path) as im:
            rgb = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
    except (UnidentifiedImageError, OSError) as e:
        raise ValueError(f"cannot read image {path}: {e}") from None
    return np.ascontiguousarray(rgb.transpose(2, 0, 1))


def predict_image(model, image, size, device="cpu"):
    """Labels (H, W) for one image (3, H, W) in [0, 1]; run at ``size`` (H', W') if given, with
    the class scores resized back to the image before the argmax."""
    from . import functional as F
    from .data.transforms import resize_bilinear
    from .tensor import no_grad, tensor
    H, W = image.shape[1:]
    x = image if size is None or tuple(size) == (H, W) else resize_bilinear(image, tuple(size))
    model.eval()
    with no_grad():
        logits = model(tensor(x[None], device=device))
        if tuple(logits.shape[2:]) != (H, W):
            logits = F.interpolate(logits, size=(H, W), mode="bilinear", align_corners=False)
        return np.asarray(F.argmax(logits, dim=1).numpy()[0])


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
        print(f"{name:<{width}}  {DATASET_DESCRIPTIONS.get(name, '')}")
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
    """Entry point of the ``minisegnet`` console script; returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:          # --help, --version, or a bad argument (already printed)
        return e.code if isinstance(e.code, int) else EXIT_USAGE
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
