"""How much of a training step runs with the GIL held, and by which thread and code.

Python runs one thread's bytecode at a time: that thread holds the *global interpreter
lock* (GIL). NumPy and BLAS let go of it inside their array loops, which is what lets
minisegnet's kernel threads work side by side. The share of a step during which *some*
thread holds the GIL is an upper bound on the work that cannot overlap; the main
thread's share is Python building the graph, dispatching ops and running the optimizer,
time in which the second core can only help if a kernel thread still has work.

This is measured from outside, with the sampling profiler py-spy (``pip install py-spy``),
so nothing in the step is changed or slowed:

1. A child process builds the model, runs two warm-up steps, then runs steps for
   ``--seconds`` inside :func:`_steps_under_sampling` and writes how long that took.
2. It runs twice, under ``py-spy record --nonblocking``: once with ``--idle`` (every
   thread at every tick: the main thread's samples inside the window count the ticks,
   which calibrates the sampling rate py-spy actually reached), once with ``--gil`` (only
   the thread holding the GIL at each tick).
3. GIL share = GIL samples inside the window / (reached rate x window length). Samples
   py-spy could not read (``Errors``, from reading a stack while it changes) are counted
   as unknown: the upper bound adds all of them to the GIL side.

    python benchmarks/gil_share.py --threads 2 --json     # writes results/gil_share_t2.json

Reading the table: ``main`` is the main thread's share, ``workers`` the pool's. ``where``
splits the main thread's GIL samples by the innermost minisegnet module on the stack
(``autograd``: the engine; ``functional``: the ops' Python; ``kernels``: the array
kernels' Python; ``optim``, ``nn``, ...).
"""
try:        # before NumPy: OpenBLAS's idle threads then sleep at once (minisegnet/blas_env.py)
    import minisegnet.blas_env  # noqa: F401
except ImportError:
    pass
import argparse
import collections
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from common import describe, machine_note, set_threads, step_arguments, write_result  # noqa: E402

WINDOW = "_steps_under_sampling"
MODULE = re.compile(r"\(minisegnet/([a-z_]+)(?:/|\.py)")
FUNCTION = re.compile(r":\d+\)$")           # a frame's line number


# ---------------------------------------------------------------------------- the child
def _steps_under_sampling(step, seconds):
    """Run ``step`` until ``seconds`` have passed; its frame marks the window in the samples."""
    t0, n = time.perf_counter(), 0
    while time.perf_counter() - t0 < seconds:
        step()
        n += 1
    return n, time.perf_counter() - t0


def child(args):
    import bench_train
    set_threads(args.threads)
    x, y = bench_train.make_batch(args.batch, args.size, "cpu")
    _, step = bench_train.minisegnet_setup(args.models, x, y, "cpu")
    step()
    step()
    steps, wall = _steps_under_sampling(step, args.seconds)
    with open(args._child, "w") as f:
        json.dump({"steps": steps, "window_s": wall}, f)


# ---------------------------------------------------------------------------- the samples
def parse_raw(lines):
    """Count py-spy ``--format raw --threads`` samples inside the window:
    ``{"main": n, "workers": n, "main_where": {module: n}, "main_functions": {function: n}}``.

    A main-thread sample is inside when :data:`WINDOW` is on its stack; it is attributed to
    its innermost minisegnet frame (module, and function without its line; the ten busiest
    functions are kept). Every pool-thread sample counts: the pool works only during steps
    (its few warm-up samples are the small bias left).
    """
    counts = {"main": 0, "workers": 0, "main_where": collections.Counter(),
              "main_functions": collections.Counter()}
    for line in lines:
        stack, _, n = line.strip().rpartition(" ")
        if not n.isdigit():             # an empty line, or a frame py-spy read half-way
            continue
        frames = stack.split(";")
        if frames[0].endswith("MainThread"):
            if WINDOW not in stack:
                continue
            ours = [f for f in frames if "(minisegnet/" in f]
            counts["main"] += int(n)
            counts["main_where"][MODULE.search(ours[-1]).group(1) if ours else "benchmark"] += int(n)
            counts["main_functions"][FUNCTION.sub(")", ours[-1]) if ours else "benchmark"] += int(n)
        elif "minisegnet/kernels/threads.py" in stack:
            counts["workers"] += int(n)
    counts["main_where"] = dict(counts["main_where"])
    counts["main_functions"] = dict(counts["main_functions"].most_common(10))
    return counts


def shares(idle, gil):
    """The GIL shares of the window from the two runs' counts (see the module docstring)."""
    rate = idle["main"] / idle["window_s"]
    ticks = rate * gil["window_s"]
    held = gil["main"] + gil["workers"]
    return {"rate_hz": rate, "ticks": ticks,
            "main": gil["main"] / ticks, "workers": gil["workers"] / ticks,
            "total": held / ticks, "total_upper": min(1.0, (held + gil["errors"]) / ticks),
            "where": {k: v / ticks for k, v in gil["main_where"].items()},
            "functions": {k: v / ticks for k, v in gil["main_functions"].items()}}


def _largest(shares_of, n):
    return sorted(shares_of.items(), key=lambda kv: -kv[1])[:n]


def sample(mode, args, tmp):
    """One child run under py-spy in ``mode`` ('--idle' or '--gil'): counts + window + errors."""
    raw, window = os.path.join(tmp, f"raw{mode}.txt"), os.path.join(tmp, f"window{mode}.json")
    cmd = ["py-spy", "record", "--nonblocking", "--threads", mode, "--rate", str(args.rate),
           "--format", "raw", "--output", raw, "--",
           sys.executable, os.path.abspath(__file__), "--_child", window, "--models", args.models,
           "--threads", str(args.threads), "--batch", str(args.batch), "--size", str(args.size),
           "--seconds", str(args.seconds)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode != 0 or not os.path.exists(window):
        tail = (out.stderr or out.stdout).strip().splitlines()[-3:]
        raise SystemExit(f"gil_share: py-spy run failed ({' / '.join(tail)})")
    errors = re.search(r"Errors: (\d+)", out.stdout + out.stderr)
    with open(raw) as f:
        counts = parse_raw(f)
    with open(window) as f:
        counts.update(json.load(f))
    counts["errors"] = int(errors.group(1)) if errors else 0
    return counts


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    step_arguments(p, "deeplabv3,pspnet,fcn", 2)
    p.add_argument("--seconds", type=float, default=6.0, help="length of the sampled window")
    p.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    p.add_argument("--json", action="store_true", help="write benchmarks/results/gil_share_t<threads>.json")
    p.add_argument("--_child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args._child:
        return child(args)
    if shutil.which("py-spy") is None:
        raise SystemExit("gil_share: needs the py-spy profiler on PATH: pip install py-spy")
    set_threads(args.threads)
    note = machine_note()
    print(describe(note))
    print(f"# {args.batch}x3x{args.size}x{args.size}, {args.threads} thread(s), "
          f"{args.seconds:g} s of steps per run, py-spy at {args.rate} Hz")
    result = {"machine": note, "threads": args.threads, "config": vars(args) | {"_child": None}, "models": {}}
    print(f"{'model':<12}{'ms/step':>9}{'GIL held':>10}{'(upper)':>9}{'main':>7}{'workers':>9}  main thread's share by module")
    for name in [m for m in args.models.split(",") if m]:
        with tempfile.TemporaryDirectory() as tmp:
            one = argparse.Namespace(**{**vars(args), "models": name})
            idle, gil = sample("--idle", one, tmp), sample("--gil", one, tmp)
        row = shares(idle, gil) | {"step_s": gil["window_s"] / gil["steps"], "steps": gil["steps"],
                                   "errors": gil["errors"], "gil_samples": gil["main"] + gil["workers"]}
        result["models"][name] = row
        where = ", ".join(f"{k} {100 * v:.0f}%" for k, v in _largest(row["where"], 5))
        print(f"{name:<12}{1e3 * row['step_s']:9.0f}{100 * row['total']:9.0f}%{100 * row['total_upper']:8.0f}%"
              f"{100 * row['main']:6.0f}%{100 * row['workers']:8.0f}%  {where}")
    if args.json:
        print("wrote", write_result(f"gil_share_t{args.threads}", result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
