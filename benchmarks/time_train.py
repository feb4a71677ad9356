"""Wall time and validation mIoU of `minisegnet train` with its defaults, one run per seed.

    python benchmarks/time_train.py --seeds 0,1,2          # minutes per seed
    python benchmarks/time_train.py --seeds 0 -- --epochs 1  # extra arguments go to `minisegnet train`

Each run is a fresh process (``python -m minisegnet train --seed S --out <temp dir>``);
the figure is its wall time and the last epoch's ``val_mIoU`` from ``history.csv``.
Results: ``benchmarks/results/time_train.json`` for the defaults; with extra arguments only when
``--name NAME`` is given, into ``time_train_NAME.json``:

    python benchmarks/time_train.py --seeds 0 --name segformer_b0 -- --model segformer_b0 --width 0.5

Issue 11's goal: mIoU >= 0.85 within 120 s on 2 idle cores, for seeds 0, 1 and 2. Issue 13's:
``--model segformer_b0`` reaching a useful mIoU on Shapes within 5 minutes on 2 cores.
"""
import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import HERE, describe, machine_note, write_result  # noqa: E402


def run(seed, extra):
    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, "-m", "minisegnet", "train", "--seed", str(seed), "--out", os.path.join(out, "run"),
               "--no-progress", "--no-plots"] + extra
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.dirname(HERE), os.environ.get("PYTHONPATH", "")]))
        t0 = time.perf_counter()
        done = subprocess.run(cmd, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if done.returncode != 0:
            raise RuntimeError(f"seed {seed}: `{' '.join(cmd)}` failed:\n{done.stderr[-2000:]}")
        with open(os.path.join(out, "run", "history.csv")) as f:
            rows = list(csv.DictReader(f))
    return dict(seed=seed, wall_s=wall, val_mIoU=float(rows[-1]["val_mIoU"]), epochs=len(rows))


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--name", help="save runs with extra arguments as results/time_train_NAME.json")
    args = p.parse_args(argv[:argv.index("--")] if "--" in argv else argv)
    note = machine_note()
    print(describe(note))
    rows = []
    for seed in [int(s) for s in args.seeds.split(",") if s]:
        rows.append(run(seed, extra))
        r = rows[-1]
        print(f"seed {seed}: {r['wall_s']:.0f} s, val mIoU {r['val_mIoU']:.3f} ({r['epochs']} epochs)", flush=True)
        if not extra or args.name:      # after every seed: a cut-short run keeps what it measured
            note["load_average_end"] = round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None
            name = f"time_train_{args.name}" if extra else "time_train"
            config = dict(args=" ".join(extra) if extra else "defaults")
            print("wrote", write_result(name, dict(machine=note, config=config, rows=rows)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
