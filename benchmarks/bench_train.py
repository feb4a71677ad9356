"""One training step of minisegnet's models against the same network in PyTorch.

For DeepLabV3, PSPNet and FCN (resnet_tiny at output stride 8, the zoo's defaults) a
training step is: forward, cross-entropy at the input's size, backward, SGD step
(momentum 0.9, weight decay 1e-4), on a batch of 8 x 3 x 128 x 128 float32 images.
The PyTorch twin is built here layer by layer with the same structure, and gets
minisegnet's weights copied by state-dict key (the eval-mode logits are compared first,
so the two really are the same network). Both run in this process with the same number
of threads; the table reports median step times and their ratio.

Peak memory is measured the same way for both: each framework runs two training steps
in a fresh subprocess, and the number is the process's peak resident set size (Linux:
``VmHWM``, reset just before the model is built) minus its resident size at that moment,
i.e. weights, gradients, optimizer state, activations and allocator/work buffers. For minisegnet the
peak of NumPy's own allocations during a step (``tracemalloc``, which NumPy reports to)
is shown as well.

    python benchmarks/bench_train.py                    # all three models, 5 timed steps each
    python benchmarks/bench_train.py --quick            # 2 timed steps, same sizes
    python benchmarks/bench_train.py --models fcn --batch 4 --size 96 --threads 2
    python benchmarks/bench_train.py --device cuda      # on the GPU (skips cleanly without one)
    minisegnet bench train --quick                      # the same through the CLI

Both libraries get the same thread count (``common.set_threads``: ``ms.set_num_threads``
and ``torch.set_num_threads``); steps are interleaved with a short pause between them
(``common.time_interleaved``), so a loaded machine slows both alike. Results also go to
``benchmarks/results/bench_train_t<threads>.json`` (``--no-save`` to skip), which
``benchmarks/report.py`` turns into the README tables.

``--keep-memory`` runs both libraries with freed memory kept in the process
(:func:`minisegnet.allocator.keep_freed_memory`, what ``minisegnet train`` sets) instead of
glibc's defaults, without the memory probes; results go to
``bench_train_kept_t<threads>.json``. The setting is process-wide, so PyTorch gains from it
too: the pair of tables shows what each library's step costs in its own users' setting
(glibc's defaults for PyTorch, kept memory for ``minisegnet train``) and in the other's.

Targets (issue 11): time <= 1.0x PyTorch CPU at 1 and 2 threads, peak memory <= 1.0x; (issue 13)
Fast-SCNN and BiSeNetV2 <= 1.2x, SegFormer-B0 <= 1.5x (``--models fast_scnn,bisenetv2,segformer_b0``).
"""
try:        # before NumPy: OpenBLAS's idle threads then sleep at once (minisegnet/blas_env.py)
    import minisegnet.blas_env  # noqa: F401
except ImportError:
    pass
import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.join(os.path.dirname(HERE), "tests")]   # common.py, torch_twins.py

import numpy as np  # noqa: E402

from common import (describe, machine_note, peak_rss_bytes, reset_peak_rss, rss_bytes, set_threads,  # noqa: E402
                    step_arguments, time_interleaved, write_result)

import minisegnet as ms  # noqa: E402
from minisegnet import models, optim  # noqa: E402

MODELS = ("deeplabv3", "pspnet", "fcn")
NUM_CLASSES = 21
TIME_TARGET, MEMORY_TARGET = 1.0, 1.0
# issue 13: the reading-list models may be slower than PyTorch by these factors
TIME_TARGETS = {"fast_scnn": 1.2, "bisenetv2": 1.2, "segformer_b0": 1.5}


# ---------------------------------------------------------------------------- the PyTorch twin
def torch_twin(model, name):
    """The same network as the minisegnet ``model`` in PyTorch, with its weights copied by
    state-dict key: ``tests/torch_twins.py`` for the ResNet models, ``tests/twins_realtime.py``
    for Fast-SCNN, BiSeNetV2 and SegFormer-B0 (both shared with the model tests)."""
    import twins_realtime
    from torch_twins import copy_to_torch, segmentor_twin
    if name not in twins_realtime.TWINS:
        return segmentor_twin(model)
    return copy_to_torch(model, twins_realtime.build_twin(name, NUM_CLASSES))


# ---------------------------------------------------------------------------- one step each
def make_batch(batch, size, device, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, 3, size, size)).astype(np.float32)
    y = rng.integers(0, NUM_CLASSES, (batch, size, size)).astype(np.int64)
    return x, y


def minisegnet_setup(name, x, y, device):
    ms.manual_seed(0)
    model = models.create(name, num_classes=NUM_CLASSES).to(device)
    opt = optim.SGD(list(model.parameters()), lr=0.01, momentum=0.9, weight_decay=1e-4)
    xt, yt = ms.tensor(x, device=device), ms.tensor(y, device=device)

    def step():
        opt.zero_grad()
        loss = model.loss(xt, yt)["loss"]
        loss.backward()
        opt.step()
        return loss.item()
    return model, step


def torch_setup(model, x, y, device, name):
    import torch
    twin = torch_twin(model, name).to(device)
    opt = torch.optim.SGD(twin.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    xt, yt = torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = twin.loss(xt, yt)
        loss.backward()
        opt.step()
        return loss.item()
    return twin, step


def synchronize(device):
    if device == "cuda":
        import cupy
        import torch
        cupy.cuda.Device().synchronize()
        torch.cuda.synchronize()


def check_same_network(model, twin, x, device):
    """Largest relative difference of the eval-mode logits (before any training)."""
    import torch
    model.eval()
    twin.eval()
    with ms.no_grad():
        ours = ms.backend.to_numpy(model(ms.tensor(x[:2], device=device)).data)
    with torch.no_grad():
        ref = twin(torch.from_numpy(x[:2]).to(device)).cpu().numpy()
    model.train()
    twin.train()
    return float(np.abs(ours - ref).max() / (np.abs(ref).max() + 1e-12))


def time_model(name, args):
    x, y = make_batch(args.batch, args.size, args.device)
    model, ms_step = minisegnet_setup(name, x, y, args.device)
    twin, torch_step = torch_setup(model, x, y, args.device, name)
    rel = check_same_network(model, twin, x, args.device)
    sync = (lambda: synchronize(args.device)) if args.device == "cuda" else None
    # interleaved, with a pause between the libraries, so both see the same machine load
    wall, cpu = time_interleaved({"minisegnet": ms_step, "torch": torch_step}, args.repeats, sync=sync)
    return wall["minisegnet"], wall["torch"], rel, cpu


# ---------------------------------------------------------------------------- memory probes
def memory_probe(framework, name, args):
    """Run in a fresh process: peak RSS over two steps minus RSS before the model is built."""
    set_threads(args.threads)
    x, y = make_batch(args.batch, args.size, "cpu")
    result = {}
    if framework == "torch":
        import torch  # noqa: F401  (imported before the baseline)
        ms.manual_seed(0)
        blueprint = models.create(name, num_classes=NUM_CLASSES)     # the twin copies its weights
        reset_peak_rss()
        before, peak_before = rss_bytes(), peak_rss_bytes()
        _, step = torch_setup(blueprint, x, y, "cpu", name)
    elif framework == "minisegnet-tracemalloc":
        import tracemalloc
        _, step = minisegnet_setup(name, x, y, "cpu")
        step()
        tracemalloc.start()
        start = tracemalloc.get_traced_memory()[0]
        step()
        result["tracemalloc_peak"] = tracemalloc.get_traced_memory()[1] - start
        tracemalloc.stop()
        print(json.dumps(result))
        return
    else:
        reset_peak_rss()
        before, peak_before = rss_bytes(), peak_rss_bytes()
        _, step = minisegnet_setup(name, x, y, "cpu")
    step()
    step()
    peak = peak_rss_bytes()
    result.update(peak_delta=peak - before, peak_unchanged=peak <= peak_before)
    print(json.dumps(result))


def run_probe(framework, name, args):
    cmd = [sys.executable, os.path.abspath(__file__), "--_probe", framework, "--models", name,
           "--batch", str(args.batch), "--size", str(args.size), "--threads", str(args.threads)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"memory probe {framework}/{name} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def cuda_memory(name, args):
    """Bytes held by each framework's GPU caching allocator after two steps (pool vs reserved)."""
    import cupy
    import torch
    x, y = make_batch(args.batch, args.size, "cuda")
    pool = cupy.get_default_memory_pool()
    pool.free_all_blocks()
    _, step = minisegnet_setup(name, x, y, "cuda")
    step(), step()
    ours = pool.total_bytes()
    torch.cuda.reset_peak_memory_stats()
    model = models.create(name, num_classes=NUM_CLASSES)
    _, tstep = torch_setup(model, x, y, "cuda", name)
    tstep(), tstep()
    return ours, torch.cuda.max_memory_reserved()


# ---------------------------------------------------------------------------- main
def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    step_arguments(p, ",".join(MODELS), os.cpu_count() or 1)
    p.add_argument("--repeats", type=int, default=5, help="timed steps per framework (median reported)")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--quick", action="store_true", help="2 timed steps instead of --repeats")
    p.add_argument("--no-memory", action="store_true", help="skip the memory probes")
    p.add_argument("--no-save", action="store_true", help="do not write benchmarks/results/bench_train_t<threads>.json")
    p.add_argument("--keep-memory", action="store_true",
                   help="keep freed memory in the process, as `minisegnet train` does (both libraries; "
                        "no memory probes; results in bench_train_kept_t<threads>.json)")
    p.add_argument("--_probe", default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    names = [n for n in args.models.split(",") if n]
    if args._probe:
        return memory_probe(args._probe, names[0], args)
    try:
        import torch
    except ImportError:
        print("bench_train: skipped, PyTorch (the reference) is not installed")
        return 0
    if args.device == "cuda" and not (ms.cuda.is_available() and torch.cuda.is_available()):
        print("bench_train: skipped, no usable CUDA device for both minisegnet (CuPy) and PyTorch")
        return 0
    if args.quick:
        args.repeats = 2
    if args.keep_memory:
        from minisegnet import allocator
        if not allocator.keep_freed_memory():
            print("bench_train: --keep-memory could not be set here (not glibc, or malloc tuned by the "
                  "environment); running with the allocator as it is")
        args.no_memory = True                # peaks no longer follow live memory
    set_threads(args.threads)
    print(f"# One training step, {args.batch}x3x{args.size}x{args.size} float32, {NUM_CLASSES} classes, "
          f"zoo defaults (resnet_tiny at output stride 8; width 1.0), SGD(momentum 0.9)")
    print(f"# device {args.device}, {args.threads} thread(s) for both, median of {args.repeats} interleaved "
          f"steps after two warm-ups" + ("; freed memory kept in the process (--keep-memory)" if args.keep_memory else ""))
    note = machine_note()
    print(describe(note))
    print()
    rows = []
    print("| model | minisegnet s/step | PyTorch s/step | time ratio | CPU-time ratio | memory ratio | "
          "minisegnet peak MB | PyTorch peak MB | NumPy tracemalloc MB | same net (rel. diff) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    worst_time = worst_mem = 0.0
    for name in names:
        t_ms, t_torch, rel, cpu = time_model(name, args)
        ratio = t_ms / t_torch
        worst_time = max(worst_time, ratio)
        mem_cells = ["-", "-", "-", "-"]
        if args.device == "cuda":
            ours, theirs = cuda_memory(name, args)
            mem_ratio = ours / theirs
            worst_mem = max(worst_mem, mem_ratio)
            mem_cells = [f"{mem_ratio:.2f}", f"{ours / 2**20:.0f}", f"{theirs / 2**20:.0f}", "-"]
        elif not args.no_memory:
            ours, theirs = run_probe("minisegnet", name, args), run_probe("torch", name, args)
            traced = run_probe("minisegnet-tracemalloc", name, args)
            mem_ratio = ours["peak_delta"] / theirs["peak_delta"]
            worst_mem = max(worst_mem, mem_ratio)
            flag = " (?)" if ours["peak_unchanged"] or theirs["peak_unchanged"] else ""
            mem_cells = [f"{mem_ratio:.2f}{flag}", f"{ours['peak_delta'] / 2**20:.0f}",
                         f"{theirs['peak_delta'] / 2**20:.0f}", f"{traced['tracemalloc_peak'] / 2**20:.0f}"]
        print(f"| {name} | {t_ms:.3f} | {t_torch:.3f} | {ratio:.2f} | {cpu['minisegnet'] / cpu['torch']:.2f} | "
              + " | ".join(mem_cells) + f" | {rel:.1e} |",
              flush=True)
        row = dict(model=name, minisegnet_s=t_ms, torch_s=t_torch, ratio=ratio, same_net_rel_diff=rel,
                   minisegnet_cpu_s=cpu["minisegnet"], torch_cpu_s=cpu["torch"],
                   cpu_ratio=cpu["minisegnet"] / cpu["torch"])
        if args.device == "cpu" and not args.no_memory:
            row.update(minisegnet_peak_bytes=ours["peak_delta"], torch_peak_bytes=theirs["peak_delta"],
                       memory_ratio=mem_ratio, tracemalloc_peak_bytes=traced["tracemalloc_peak"])
        rows.append(row)
    print()
    if args.device == "cuda":
        print("Memory on the GPU: bytes held by CuPy's memory pool vs torch.cuda.max_memory_reserved() "
              "after two steps (both caching allocators).")
    elif not args.no_memory:
        print("Memory: each framework runs two steps in a fresh process; peak = peak resident set size "
              "(VmHWM, reset just before the model is built) minus the resident size at that moment (weights, gradients, "
              "momentum, activations, work buffers). '(?)' marks a probe whose peak was set before the "
              "baseline (not measurable). NumPy tracemalloc = peak of NumPy's own allocations during "
              "one step (informative; not comparable with RSS).")
    misses = [f"{r['model']} {r['ratio']:.2f} > {TIME_TARGETS.get(r['model'], TIME_TARGET)}"
              for r in rows if r["ratio"] > TIME_TARGETS.get(r["model"], TIME_TARGET)]
    line = (f"Worst time ratio {worst_time:.2f}; every model meets its time target (<= {TIME_TARGET}x, "
            f"{', '.join(f'{m} <= {t}x' for m, t in TIME_TARGETS.items())})" if not misses else
            f"Worst time ratio {worst_time:.2f}; time targets missed: {', '.join(misses)}")
    if worst_mem:
        verdict_mem = "meets" if worst_mem <= MEMORY_TARGET else "misses"
        line += f"; worst memory ratio {worst_mem:.2f} ({verdict_mem} the <= {MEMORY_TARGET}x target)"
    print(line + ".")
    if not args.no_save and args.device == "cpu":
        config = dict(batch=args.batch, size=args.size, repeats=args.repeats, threads=args.threads,
                      keep_memory=args.keep_memory)
        name = f"bench_train_{'kept_' if args.keep_memory else ''}t{args.threads}"
        print("wrote", write_result(name, dict(machine=note, config=config, rows=rows)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
