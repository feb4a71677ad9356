"""Where a training step's time goes: per op, forward and backward, and how busy the threads were.

Every autograd Function's forward and backward is wrapped with a timer that records the
wall time and the process's CPU time (all threads) of each call; ``cpu / wall`` is how
many cores the op kept busy (2.0 at 2 threads is perfect; 1.0 means one thread idled).
Whatever is left of the step's wall time is Python: building the graph, the optimizer,
the engine's gradient accumulation. PyTorch's own profiler gives the twin's per-op
self time for comparison.

    python benchmarks/profile_step.py --threads 1 --models deeplabv3
    python benchmarks/profile_step.py --threads 2 --steps 3 --json   # also writes results/profile_t2.json
"""
try:        # before NumPy: OpenBLAS's idle threads then sleep at once (minisegnet/blas_env.py)
    import minisegnet.blas_env  # noqa: F401
except ImportError:
    pass
import argparse
import collections
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import describe, machine_note, set_threads, step_arguments, write_result  # noqa: E402

import minisegnet as ms  # noqa: E402
from minisegnet.autograd import Function  # noqa: E402

import bench_train  # noqa: E402


def _label(cls, args):
    name = cls.__name__
    if name in ("Conv2d", "ConvTranspose2d"):
        w, stride, dilation, groups = args[1], args[3], args[5], args[6]
        k = "x".join(map(str, w.shape[2:]))
        extra = ("" if tuple(stride) == (1, 1) else f" s{stride[0]}") + \
                ("" if tuple(dilation) == (1, 1) else " dil") + \
                ("" if groups == 1 else (" dw" if groups == w.shape[0] else f" g{groups}"))
        return f"{name} {k}{extra}"
    return name


class OpTimer:
    """Wraps every Function subclass; ``table`` maps (label, 'fwd'|'bwd') -> [calls, wall, cpu]."""

    def __init__(self):
        self.table = collections.defaultdict(lambda: [0, 0.0, 0.0])
        self.saved = []

    def _subclasses(self):
        seen, todo = [], list(Function.__subclasses__())
        while todo:
            c = todo.pop()
            if c not in seen:
                seen.append(c)
                todo.extend(c.__subclasses__())
        return seen

    def install(self):
        for cls in self._subclasses():
            fwd, bwd = cls.__dict__.get("forward"), cls.__dict__.get("backward")
            if fwd is None or bwd is None:
                continue
            self.saved.append((cls, fwd, bwd))
            setattr(cls, "forward", staticmethod(self._wrap(cls, fwd.__func__, "fwd")))
            setattr(cls, "backward", staticmethod(self._wrap(cls, bwd.__func__, "bwd")))

    def uninstall(self):
        for cls, fwd, bwd in self.saved:
            setattr(cls, "forward", fwd)
            setattr(cls, "backward", bwd)

    def _wrap(self, cls, fn, phase):
        table = self.table

        def timed(ctx, *args, **kwargs):
            if phase == "fwd":
                ctx._profile_label = _label(cls, args)
            label = getattr(ctx, "_profile_label", cls.__name__)
            w0, c0 = time.perf_counter(), time.process_time()
            out = fn(ctx, *args, **kwargs)
            row = table[(label, phase)]
            row[0] += 1
            row[1] += time.perf_counter() - w0
            row[2] += time.process_time() - c0
            return out
        return timed


def profile_minisegnet(name, args):
    x, y = bench_train.make_batch(args.batch, args.size, "cpu")
    _, step = bench_train.minisegnet_setup(name, x, y, "cpu")
    step()
    timer = OpTimer()
    timer.install()
    try:
        w0, c0 = time.perf_counter(), time.process_time()
        for _ in range(args.steps):
            step()
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    finally:
        timer.uninstall()
    rows = [(label, phase, n / args.steps, t / args.steps, c / args.steps)
            for (label, phase), (n, t, c) in timer.table.items()]
    rows.sort(key=lambda r: -r[3])
    return {"step_wall": wall / args.steps, "step_cpu": cpu / args.steps,
            "ops": [dict(op=r[0], phase=r[1], calls=r[2], wall=r[3], cpu=r[4]) for r in rows]}


def profile_torch(name, args):
    import torch
    from torch.profiler import ProfilerActivity, profile
    x, y = bench_train.make_batch(args.batch, args.size, "cpu")
    ms.manual_seed(0)
    model = ms.models.create(name, num_classes=bench_train.NUM_CLASSES)
    _, step = bench_train.torch_setup(model, x, y, "cpu", name)
    step()
    w0 = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(args.steps):
            step()
    wall = (time.perf_counter() - w0) / args.steps
    rows = [(e.key, e.self_cpu_time_total / 1e6 / args.steps) for e in prof.key_averages()]
    rows.sort(key=lambda r: -r[1])
    del torch
    return {"step_wall_profiled": wall, "ops": [dict(op=k, self_wall=t) for k, t in rows[:args.top]]}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    step_arguments(p, "deeplabv3,pspnet,fcn", 1)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--top", type=int, default=14, help="rows per table")
    p.add_argument("--no-torch", action="store_true")
    p.add_argument("--json", action="store_true", help="write benchmarks/results/profile_t<threads>.json")
    args = p.parse_args(argv)
    set_threads(args.threads)
    note = machine_note()
    print(describe(note))
    print(f"# {args.batch}x3x{args.size}x{args.size}, {args.threads} thread(s), mean of {args.steps} steps")
    result = {"machine": note, "threads": args.threads, "models": {}}
    for name in [m for m in args.models.split(",") if m]:
        ours = profile_minisegnet(name, args)
        theirs = None if args.no_torch else profile_torch(name, args)
        result["models"][name] = {"minisegnet": ours, "torch": theirs}
        op_wall = sum(r["wall"] for r in ours["ops"])
        print(f"\n## {name}: minisegnet step {ours['step_wall'] * 1e3:.0f} ms wall, "
              f"{ours['step_cpu'] / ours['step_wall']:.2f} cores busy; ops {op_wall * 1e3:.0f} ms, "
              f"Python/graph/optimizer {(ours['step_wall'] - op_wall) * 1e3:.0f} ms")
        print(f"{'op':<28}{'pass':<5}{'calls':>6}{'ms':>8}{'share':>7}{'cores':>7}")
        for r in ours["ops"][:args.top]:
            print(f"{r['op']:<28}{r['phase']:<5}{r['calls']:6.0f}{r['wall'] * 1e3:8.1f}"
                  f"{100 * r['wall'] / ours['step_wall']:6.0f}%{r['cpu'] / max(r['wall'], 1e-9):7.2f}")
        if theirs:
            print(f"-- PyTorch (profiled step {theirs['step_wall_profiled'] * 1e3:.0f} ms), self CPU time per op:")
            for r in theirs["ops"][:args.top]:
                print(f"   {r['op']:<44}{r['self_wall'] * 1e3:8.1f} ms")
    if args.json:
        print("wrote", write_result(f"profile_t{args.threads}", result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
