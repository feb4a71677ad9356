"""The model zoo side by side: FCN, PSPNet and DeepLabV3 with the same training budget.

Each model trains for the same number of optimizer steps (same batch size, optimizer,
schedule, seed) on

* ``shapes``          – circles / squares / triangles: local shape suffices, all heads should
                        do well;
* ``context``         – tall strips where a blob is a *boat* or a *car* only because of the
                        water or road band far below it: a head needs global context
                        (pyramid pooling, ASPP's image pool) to tell them apart;
* ``context_control`` – the same strips with boats and cars shaped differently, so local
                        appearance suffices and the three heads should tie.

and the table reports validation mIoU and wall time per model, as markdown::

    python benchmarks/bench_zoo.py                 # full budget (tens of minutes on 2 CPU cores)
    python benchmarks/bench_zoo.py --quick         # a few minutes: fewer steps, smaller sets
    python benchmarks/bench_zoo.py --steps 400 --datasets context,context_control
    python benchmarks/bench_zoo.py --steps 600 --datasets context --seeds 0,1,2   # the seed spread
    minisegnet bench zoo --quick                   # the same through the CLI

The reading-list models train with the same recipe and budget (``--models
fast_scnn,bisenetv2,segformer_b0``), at the widths in ``WIDTHS`` (``--width NAME=W,...`` to change):
BiSeNetV2 and SegFormer-B0 at half width, whose step on a 256x32 strip costs about what FCN's does.

Targets: on Shapes each model >= 0.90 mIoU within 5 minutes on 2 CPU cores; on the context
strips PSPNet and DeepLabV3 >= FCN + 0.15, on the control all three within a few points.
The measured table (mean and spread over the seeds run) is in the README's ``bench:zoo`` block,
which ``python benchmarks/report.py`` writes from the results files.

Every run is also written to ``benchmarks/results/bench_zoo_<dataset>.json`` (``--results DIR``
elsewhere, ``--results ''`` not at all), rewritten after each model so an interrupted sweep keeps
what it finished: the command line, the commit, the thread settings, the per-dataset settings and
one record per (model, seed) with mIoU, per-class IoU, wall time, parameters and MACs of one
forward pass. The lectures read their tables from these files.
"""
import argparse
import json
import math
import os
import platform
import subprocess
import sys
import time

try:
    import minisegnet  # noqa: F401
except ImportError:        # run from a checkout without installing
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from minisegnet import train  # noqa: E402
from minisegnet.models.summary import profile  # noqa: E402

MODELS = ("fcn", "pspnet", "deeplabv3")
READING_LIST = ("fast_scnn", "bisenetv2", "segformer_b0")
# channel multipliers of the models that take one (the others ignore this)
WIDTHS = {"fast_scnn": 1.0, "bisenetv2": 0.5, "segformer_b0": 0.5}
HERE = os.path.dirname(os.path.abspath(__file__))
DATASETS = ("shapes", "context", "context_control")

# Per dataset: image size, optimizer steps, batch size, Adam learning rate, epochs the steps are
# spread over (validation after each), validation images. Every model trains with the recipe of
# `minisegnet train`: an auxiliary FCN head on c3 (weight 0.4), cross-entropy + Dice, the poly
# schedule, output stride 8, resnet_tiny.
SETTINGS = {
    "shapes": {"image_size": 64, "steps": 4400, "batch_size": 8, "lr": 5e-3, "epochs": 8, "val_size": 96},
    "context": {"image_size": [256, 32], "steps": 1000, "batch_size": 16, "lr": 3e-3, "epochs": 4,
                "val_size": 96},
    "context_control": {"image_size": [256, 32], "steps": 1000, "batch_size": 16, "lr": 3e-3, "epochs": 4,
                        "val_size": 96},
}
QUICK_FACTOR = 0.25


def run_one(model, dataset, steps, batch_size, lr, image_size, val_size, seed, epochs=4, optimizer="adam",
            aux=True, dice_weight=None, width=None):
    """Train ``model`` on ``dataset`` for ``steps`` steps; returns a dict of scores and seconds."""
    epochs = max(1, min(epochs, steps))
    steps_per_epoch = math.ceil(steps / epochs)
    extra = {} if dice_weight is None else {"dice_weight": dice_weight}
    if width is not None:
        extra["width"] = width
    start = time.perf_counter()
    trainer = train.Trainer(model=model, dataset=dataset, image_size=image_size, epochs=epochs,
                            batch_size=batch_size, train_size=steps_per_epoch * batch_size,
                            val_size=val_size, lr=lr, optimizer=optimizer, seed=seed, aux=aux,
                            out=None, progress=False, log=None, **extra)
    trainer.fit()
    seconds = time.perf_counter() - start
    scores = trainer.confusion.compute()
    params = sum(p.data.size for p in trainer.model.parameters())
    size = list(image_size) if isinstance(image_size, (list, tuple)) else [image_size, image_size]
    macs = sum(r["macs"] for r in profile(trainer.model, (1, 3, *size)))
    return {"model": model, "width": width, "dataset": dataset, "seed": seed, "mIoU": float(scores["mIoU"]),
            "mDice": float(scores["mDice"]), "aAcc": float(scores["aAcc"]), "seconds": seconds,
            "steps": trainer.step, "params": int(params), "macs": int(macs),
            "IoU": [float(v) for v in scores["IoU"]], "classes": list(trainer.class_names)}


def _commit():
    """``git describe``-like id of the checkout (``<sha>`` plus ``-dirty`` when files differ), or None."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=HERE, capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=HERE,
                               capture_output=True, text=True, check=True).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return None


def write_results(folder, dataset, header, rows, append=False):
    """Write ``bench_zoo_<dataset>.json`` in ``folder`` atomically (temp file, then rename).

    Each run carries the command and commit that made it. With ``append`` the runs already in
    the file are kept, except those this sweep redoes (same model and seed), and the file's
    ``commands`` lists every command that contributed.
    """
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"bench_zoo_{dataset}.json")
    new = [dict(r, command=header["command"], commit=header["commit"]) for r in rows if r["dataset"] == dataset]
    old, commands = [], []
    if append and os.path.isfile(path):
        with open(path, encoding="utf-8") as f:
            previous = json.load(f)
        redone = {(r["model"], r["seed"]) for r in new}
        old = [dict(r, command=r.get("command", previous["command"]), commit=r.get("commit", previous["commit"]))
               for r in previous["runs"] if (r["model"], r["seed"]) not in redone]
        commands = previous.get("commands", [previous["command"]])
    if header["command"] not in commands:
        commands = commands + [header["command"]]
    record = dict(header, dataset=dataset, settings=SETTINGS[dataset], commands=commands, runs=old + new)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(record, f, indent=1)
        f.write("\n")
    os.replace(tmp, path)
    return path


def markdown_table(rows):
    lines = ["| dataset | model | seed | steps | val mIoU | mDice | aAcc | wall time (s) | parameters |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['dataset']} | {r['model']} | {r.get('seed', 0)} | {r['steps']} | {r['mIoU']:.3f} | "
                     f"{r['mDice']:.3f} | {r['aAcc']:.3f} | {r['seconds']:.0f} | {r['params']:,} |")
    return "\n".join(lines)


def verdicts(rows):
    """One line per target: met or not."""
    by = {(r["dataset"], r["model"]): r for r in rows}
    out = []
    for model in MODELS:
        r = by.get(("shapes", model))
        if r:
            ok = r["mIoU"] >= 0.90 and r["seconds"] <= 300
            out.append(f"- shapes/{model}: mIoU {r['mIoU']:.3f} in {r['seconds']:.0f} s "
                       f"({'meets' if ok else 'misses'} >= 0.90 within 5 min)")
    fcn = by.get(("context", "fcn"))
    for model in ("pspnet", "deeplabv3"):
        r = by.get(("context", model))
        if fcn and r:
            gap = r["mIoU"] - fcn["mIoU"]
            out.append(f"- context: {model} - fcn = {gap:+.3f} ({'meets' if gap >= 0.15 else 'misses'} >= +0.15)")
    control = [by[("context_control", m)]["mIoU"] for m in MODELS if ("context_control", m) in by]
    if len(control) > 1:
        spread = max(control) - min(control)
        out.append(f"- context_control: spread {spread:.3f} across models "
                   f"({'tie' if spread <= 0.05 else 'no tie'} at 0.05)")
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_FACTOR:g}x the steps")
    parser.add_argument("--steps", type=int, help="optimizer steps per run (overrides the per-dataset default)")
    parser.add_argument("--models", default=",".join(MODELS),
                        help=f"comma-separated (default: %(default)s; the reading list: {','.join(READING_LIST)})")
    parser.add_argument("--width", default="", metavar="NAME=W,...",
                        help="channel multipliers, e.g. segformer_b0=1.0 (default: WIDTHS)")
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--lr", type=float)
    parser.add_argument("--optimizer", default="adam", choices=("sgd", "adam", "adamw"))
    parser.add_argument("--seed", type=int, default=0, help="one seed (see --seeds)")
    parser.add_argument("--seeds", help="comma-separated seeds, e.g. 0,1,2 (overrides --seed)")
    parser.add_argument("--results", default=os.path.join(HERE, "results"),
                        help="folder for bench_zoo_<dataset>.json ('' to write nothing)")
    parser.add_argument("--append", action="store_true",
                        help="keep the runs already in the results file (other models or seeds)")
    parser.add_argument("--no-aux", dest="aux", action="store_false", help="train without the auxiliary head")
    parser.add_argument("--dice-weight", type=float, help="weight of the Dice term (default: the train default)")
    args = parser.parse_args(argv)
    models = [m for m in args.models.split(",") if m]
    datasets = [d for d in args.datasets.split(",") if d]
    widths = dict(WIDTHS)
    try:
        widths.update({k: float(v) for k, v in (item.split("=") for item in args.width.split(",") if item)})
    except ValueError:
        parser.error(f"--width must look like segformer_b0=0.5,bisenetv2=1.0, got {args.width!r}")
    others = sorted(set(widths) - set(READING_LIST))
    if others:
        parser.error(f"--width applies only to {', '.join(READING_LIST)}, got {', '.join(others)}")
    for d in datasets:
        if d not in SETTINGS:
            parser.error(f"unknown dataset {d!r}; choose from {', '.join(SETTINGS)}")

    try:
        seeds = [int(v) for v in args.seeds.split(",") if v] if args.seeds else [args.seed]
    except ValueError:
        parser.error(f"--seeds must be comma-separated integers, got {args.seeds!r}")
    header = {"command": "python benchmarks/bench_zoo.py " + " ".join(sys.argv[1:] if argv is None else argv),
              "commit": _commit(), "seeds": seeds, "steps": args.steps, "quick": args.quick,
              "optimizer": args.optimizer, "aux": args.aux, "dice_weight": args.dice_weight,
              "threads": {k: os.environ.get(k) for k in ("MINISEGNET_NUM_THREADS", "OMP_NUM_THREADS",
                                                         "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")},
              "cpus": os.cpu_count(), "machine": platform.machine(), "python": platform.python_version(),
              "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}

    rows = []
    for seed in seeds:            # seeds outermost: an interrupted sweep still has whole seeds
        for dataset in datasets:
            s = SETTINGS[dataset]
            steps = args.steps or max(8, round(s["steps"] * (QUICK_FACTOR if args.quick else 1)))
            for model in models:
                r = run_one(model, dataset, steps, args.batch_size or s["batch_size"], args.lr or s["lr"],
                            s["image_size"], s["val_size"] if not args.quick else s["val_size"] // 2, seed,
                            epochs=s["epochs"], optimizer=args.optimizer, aux=args.aux,
                            dice_weight=args.dice_weight, width=widths.get(model))
                per_class = ", ".join(f"{c} {v:.2f}" for c, v in zip(r["classes"], r["IoU"]))
                print(f"{dataset:>15} {model:>13} seed {seed}: mIoU {r['mIoU']:.3f}  {r['seconds']:6.1f} s  "
                      f"({per_class})", flush=True)
                rows.append(r)
                if args.results:
                    write_results(args.results, dataset, header, rows, append=args.append)
    print()
    print(f"(seeds {','.join(map(str, seeds))}, {args.optimizer}, aux head {'on' if args.aux else 'off'}; "
          f"wall times on this machine, {os.cpu_count()} CPUs visible)")
    print(markdown_table(rows))
    print()
    print("\n".join(verdicts(rows)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
