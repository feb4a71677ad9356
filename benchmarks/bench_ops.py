"""Side-by-side timings of minisegnet's ops against PyTorch, in one run, one table.

    python benchmarks/bench_ops.py                    # all ops, CPU, all cores
    python benchmarks/bench_ops.py --quick            # a fast smoke run (small batch, few repeats)
    python benchmarks/bench_ops.py --ops conv         # only some op groups (comma separated)
    python benchmarks/bench_ops.py --device cuda      # against torch CUDA (skips if no GPU)
    python benchmarks/bench_ops.py --threads 2        # thread count for both libraries

Every case is timed for the forward pass alone (under no_grad) and for forward +
backward (all gradients), minisegnet and PyTorch interleaved in blocks with a short
pause between blocks, so that a noisy machine slows both alike and one library's
spinning worker threads do not steal the other's cores. The table shows medians (or,
with ``--stat min``, the fastest call: closer to an idle machine's figure when other
processes share the cores), their
ratio (minisegnet / torch: below 1 means minisegnet is faster), minisegnet's GFLOP/s
and its share of this machine's float32 GEMM peak (a large NumPy matmul at the same
thread count), and the peak memory of one forward + backward of each library.

Peak memory is measured the same way for both libraries, in a child process started
with ``MALLOC_MMAP_THRESHOLD_=65536`` (large blocks come from mmap and go back to the
OS when freed, so the resident set follows live memory): after a warm-up run the
high-water mark of the resident set is reset (``/proc/self/clear_refs``) and the
reported figure is how far one more forward + backward raises it. Caches a library
keeps between calls are thus not counted. Linux only; elsewhere the column shows '-'.

To add an op: write a function returning a list of :class:`Case` and register it in
``OP_GROUPS``. A case's ``ms_fn`` / ``torch_fn`` build the inputs on a device and
return ``run(backward)``, which does one forward (and backward) pass.
"""
try:        # before NumPy: OpenBLAS's idle threads then sleep at once (minisegnet/blas_env.py)
    import minisegnet.blas_env  # noqa: F401
except ImportError:
    pass
import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from collections import namedtuple

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import describe, machine_note, set_threads, write_result  # noqa: E402

import minisegnet as ms                      # noqa: E402
import minisegnet.functional as F            # noqa: E402

try:
    import torch
except ImportError:                          # the benchmark needs its reference
    torch = None

Case = namedtuple("Case", "name shape ms_fn torch_fn flops")
Case.__doc__ = """One benchmark row pair.

name: op label ('conv3x3 d2'); shape: a short text of the input/weight shapes;
ms_fn(device) / torch_fn(device): build inputs, return ``run(backward: bool)``;
flops: floating point operations of one forward pass (None: not shown).
"""


# --------------------------------------------------------------------------- helpers

def _ms_runner(fn, arrays, device):
    """``run(backward)`` for a minisegnet op ``fn(*tensors)`` on float32 ``arrays``."""
    ts = [ms.tensor(a, device=device, requires_grad=True) for a in arrays]
    with ms.no_grad():
        grad = ms.ones_like(fn(*ts))

    def run(backward):
        if not backward:
            with ms.no_grad():
                return fn(*ts)
        for t in ts:
            t.grad = None
        out = fn(*ts)
        out.backward(grad)
        return out
    return run


def _torch_runner(fn, arrays, device):
    """``run(backward)`` for a torch op ``fn(*tensors)`` on float32 ``arrays``."""
    ts = [torch.tensor(a, device=device, requires_grad=True) for a in arrays]
    with torch.no_grad():
        grad = torch.ones_like(fn(*ts))

    def run(backward):
        if not backward:
            with torch.no_grad():
                return fn(*ts)
        for t in ts:
            t.grad = None
        out = fn(*ts)
        out.backward(grad)
        return out
    return run


def _case(name, shape, ms_op, torch_op, arrays_fn, flops):
    return Case(name, shape,
                lambda device: _ms_runner(ms_op, arrays_fn(), device),
                lambda device: _torch_runner(torch_op, arrays_fn(), device), flops)


def _randn(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape, dtype=np.float32)


# --------------------------------------------------------------------------- op groups

def conv_cases(quick=False):
    """conv2d at the shapes of a segmentation network (FCN/DeepLab), and its transpose."""
    n = 2 if quick else 8
    tF = torch.nn.functional
    cases = []

    def conv(name, shape, k, stride=1, padding=0, dilation=1, groups=1):
        N, C, H, W = shape
        O = C
        ws = (O, C // groups, k, k)
        Ho = (H + 2 * padding - dilation * (k - 1) - 1) // stride + 1
        kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
        cases.append(_case(
            name, f"{N}x{C}x{H}x{W} k{k}" + (f" s{stride}" if stride > 1 else "")
            + (f" d{dilation}" if dilation > 1 else "") + (f" g{groups}" if groups > 1 else ""),
            lambda x, w, b: F.conv2d(x, w, b, **kw), lambda x, w, b: tF.conv2d(x, w, b, **kw),
            lambda: [_randn(*shape), _randn(*ws, seed=1) * 0.05, _randn(O, seed=2)],
            2 * N * O * Ho * Ho * (C // groups) * k * k))

    big, small = (n, 64, 64, 64), (n, 256, 16, 16)
    for d in (1, 2, 6, 12):
        conv(f"conv3x3 d{d}", big, 3, padding=d, dilation=d)
    conv("conv1x1", big, 1)
    conv("conv3x3 s2", big, 3, stride=2, padding=1)
    conv("conv3x3 dw", big, 3, padding=1, groups=64)
    for d in (1, 12):
        conv(f"conv3x3 d{d}", small, 3, padding=d, dilation=d)

    N, C, H = n, 64, 32
    kw = dict(stride=2, padding=1)
    cases.append(_case(
        "conv_transpose", f"{N}x{C}x{H}x{H} k4 s2",
        lambda x, w, b: F.conv_transpose2d(x, w, b, **kw),
        lambda x, w, b: tF.conv_transpose2d(x, w, b, **kw),
        lambda: [_randn(N, C, H, H), _randn(C, C, 4, 4, seed=1) * 0.05, _randn(C, seed=2)],
        2 * N * C * H * H * C * 16))
    return cases


def pool_cases(quick=False):
    """max_pool2d as in a ResNet stem, and PSPNet's adaptive average pooling to 1, 2, 3, 6 bins."""
    n = 2 if quick else 8
    tF = torch.nn.functional
    cases = [_case("max_pool2d 3 s2", f"{n}x64x64x64 p1",
                   lambda x: F.max_pool2d(x, 3, 2, 1), lambda x: tF.max_pool2d(x, 3, 2, 1),
                   lambda: [_randn(n, 64, 64, 64)], None)]
    for bins in (1, 2, 3, 6):
        cases.append(_case("adaptive_avg", f"{n}x256x16x16 -> {bins}",
                           lambda x, b=bins: F.adaptive_avg_pool2d(x, b),
                           lambda x, b=bins: tF.adaptive_avg_pool2d(x, b),
                           lambda: [_randn(n, 256, 16, 16)], None))
    return cases


def resize_cases(quick=False):
    """Bilinear x8 upsampling of logits (21 classes) and of features, both align_corners."""
    n = 2 if quick else 8
    tF = torch.nn.functional
    cases = []
    for c, size in ((21, 16), (64, 64)):
        for corners in (False, True):
            kw = dict(scale_factor=8, mode="bilinear", align_corners=corners)
            cases.append(_case("bilinear x8", f"{n}x{c}x{size}x{size} ac={corners}",
                               lambda x, kw=kw: F.interpolate(x, **kw),
                               lambda x, kw=kw: tF.interpolate(x, **kw),
                               lambda c=c, size=size: [_randn(n, c, size, size)], None))
    return cases


def norm_cases(quick=False):
    """Training-mode batch norm (running statistics updated), softmax over classes, and
    cross-entropy of 21-class logits with about 10% ignored (255) pixels."""
    n = 2 if quick else 8
    tF = torch.nn.functional
    cases = []

    def bn_fn(lib, device):
        zeros, ones = (ms.zeros, ms.ones) if lib is ms else (torch.zeros, torch.ones)
        mean, var = zeros(64, device=device), ones(64, device=device)
        fn = F.batch_norm if lib is ms else tF.batch_norm
        return lambda x, w, b: fn(x, mean, var, w, b, training=True)

    bn_arrays = lambda: [_randn(n, 64, 64, 64), _randn(64, seed=1), _randn(64, seed=2)]
    cases.append(Case("batch_norm", f"{n}x64x64x64",
                      lambda device: _ms_runner(bn_fn(ms, device), bn_arrays(), device),
                      lambda device: _torch_runner(bn_fn(torch, device), bn_arrays(), device), None))
    cases.append(_case("softmax dim=1", f"{n}x21x128x128", lambda x: F.softmax(x, 1),
                       lambda x: torch.softmax(x, 1), lambda: [_randn(n, 21, 128, 128)], None))

    labels = np.random.default_rng(3).integers(0, 21, (n, 128, 128))
    labels[np.random.default_rng(4).random(labels.shape) < 0.1] = 255

    def ce_ms(device):
        target = ms.tensor(labels, device=device)
        return _ms_runner(lambda x: F.cross_entropy(x, target, ignore_index=255),
                          [_randn(n, 21, 128, 128)], device)

    def ce_torch(device):
        target = torch.tensor(labels, device=device)
        return _torch_runner(lambda x: tF.cross_entropy(x, target, ignore_index=255),
                             [_randn(n, 21, 128, 128)], device)

    cases.append(Case("cross_entropy", f"{n}x21x128x128 10% ign", ce_ms, ce_torch, None))
    return cases


def conformance_cases(quick=False):
    """Reflect / replicate padding (as before a 3x3 conv) and the resize modes added for
    PyTorch conformance: bicubic x4, nearest-exact x2, area and antialiased bilinear /2."""
    n = 2 if quick else 8
    tF = torch.nn.functional
    cases = []
    for mode in ("reflect", "replicate"):
        cases.append(_case(f"pad {mode}", f"{n}x64x64x64 p1",
                           lambda x, m=mode: F.pad(x, (1, 1, 1, 1), mode=m),
                           lambda x, m=mode: tF.pad(x, (1, 1, 1, 1), mode=m),
                           lambda: [_randn(n, 64, 64, 64)], None))
    for label, (c, size), kw in (
            ("bicubic x4", (21, 32), dict(scale_factor=4, mode="bicubic", align_corners=False)),
            ("nearest-exact x2", (21, 32), dict(scale_factor=2, mode="nearest-exact")),
            ("area /2", (64, 64), dict(scale_factor=0.5, mode="area")),
            ("bilinear aa /2", (64, 64), dict(scale_factor=0.5, mode="bilinear", antialias=True))):
        cases.append(_case(label, f"{n}x{c}x{size}x{size}",
                           lambda x, kw=kw: F.interpolate(x, **kw),
                           lambda x, kw=kw: tF.interpolate(x, **kw),
                           lambda c=c, size=size: [_randn(n, c, size, size)], None))
    return cases


OP_GROUPS = {"conv": conv_cases, "pool": pool_cases, "resize": resize_cases,
             "norm": norm_cases, "conformance": conformance_cases}


# --------------------------------------------------------------------------- measuring

def _sync(device):
    if device == "cuda":
        ms.backend.module_for("cuda").cuda.Device().synchronize()
        torch.cuda.synchronize()


def time_pair(ms_run, torch_run, backward, device, rounds, block, stat=statistics.median):
    """Seconds per call of each runner (``stat`` of the calls: median, or min on a busy
    machine), interleaved in blocks of ``block`` calls."""
    times = {"ms": [], "torch": []}
    for run in (ms_run, torch_run):                  # warm-up (allocations, library caches)
        run(backward)
        run(backward)
    _sync(device)
    for _ in range(rounds):
        for key, run in (("ms", ms_run), ("torch", torch_run)):
            time.sleep(0.02)                         # let the other library's threads go idle
            for _ in range(block):
                t0 = time.perf_counter()
                run(backward)
                _sync(device)
                times[key].append(time.perf_counter() - t0)
    return stat(times["ms"]), stat(times["torch"])


def gemm_peak(device, threads):
    """float32 GFLOP/s of a large square matrix product (the machine's practical peak)."""
    if device == "cuda":
        xp = ms.backend.module_for("cuda")
        n = 8192
    else:
        xp, n = np, 2048
    a = xp.ones((n, n), dtype=np.float32)
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        a @ a
        if device == "cuda":
            xp.cuda.Device().synchronize()
        best = min(best, time.perf_counter() - t0)
    return 2 * n ** 3 / best / 1e9


def _rss_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1])
    raise OSError(field)


def _peak_rss_delta(run):
    """KiB by which one ``run(True)`` raises the resident set's high-water mark."""
    run(True)
    gc.collect()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")                                 # reset VmHWM to the current VmRSS
    before = _rss_kib("VmRSS")
    run(True)
    return _rss_kib("VmHWM") - before


def memory_child(groups, quick):
    """(Child process) print {case name: [minisegnet MiB, torch MiB]} as JSON."""
    result = {}
    for group in groups:
        for case in OP_GROUPS[group](quick):
            result[case.name + " " + case.shape] = [
                _peak_rss_delta(case.ms_fn("cpu")) / 1024, _peak_rss_delta(case.torch_fn("cpu")) / 1024]
            gc.collect()
    print(json.dumps(result))


def measure_memory(groups, quick, threads):
    """Run :func:`memory_child` in a fresh process with mmap'd large blocks; {} if unsupported."""
    if not os.path.exists("/proc/self/clear_refs"):
        return {}
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", MALLOC_TRIM_THRESHOLD_="0")
    cmd = [sys.executable, os.path.abspath(__file__), "--memory-child", "--ops", ",".join(groups),
           "--threads", str(threads)] + (["--quick"] if quick else [])
    try:
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True, timeout=900)
        return json.loads(out.stdout.strip().splitlines()[-1])
    except (subprocess.SubprocessError, ValueError, IndexError, OSError) as e:
        print(f"(peak memory not measured: {e})", file=sys.stderr)
        return {}


# --------------------------------------------------------------------------- main

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--quick", action="store_true", help="small batch, few repeats (smoke test)")
    p.add_argument("--ops", default=",".join(OP_GROUPS),
                   help=f"comma-separated op groups, from: {', '.join(OP_GROUPS)}")
    p.add_argument("--threads", type=int, default=os.cpu_count(),
                   help="threads for both libraries (default: all cores)")
    p.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 5; quick 2)")
    p.add_argument("--stat", default="median", choices=["median", "min"],
                   help="statistic of the timed calls; 'min' approximates an idle machine when "
                        "other processes share the cores")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory column")
    p.add_argument("--no-save", action="store_true", help="do not write benchmarks/results/bench_ops_t<threads>.json")
    p.add_argument("--memory-child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if torch is None:
        print("bench_ops: PyTorch (the reference) is not installed; nothing to compare with")
        return 0
    groups = [g.strip() for g in args.ops.split(",") if g.strip()]
    unknown = [g for g in groups if g not in OP_GROUPS]
    if unknown:
        p.error(f"unknown op group(s) {unknown}; known: {list(OP_GROUPS)}")
    set_threads(args.threads)
    if args.memory_child:
        memory_child(groups, args.quick)
        return 0
    if args.device == "cuda" and not (ms.cuda.is_available() and torch.cuda.is_available()):
        print("bench_ops: --device cuda needs CuPy and torch with a usable GPU; skipping")
        return 0

    rounds = args.rounds or (2 if args.quick else 5)
    block = 2 if args.quick else 3
    peak = gemm_peak(args.device, args.threads)
    memory = {}
    if args.device == "cpu" and not args.no_memory:
        memory = measure_memory(groups, args.quick, args.threads)

    note = machine_note()
    print(describe(note))
    print(f"device {args.device}, {args.threads} threads, float32; GEMM peak {peak:.0f} GFLOP/s; "
          f"{args.stat} of {rounds}x{block} interleaved calls")
    rows = []
    head = (f"{'op':<16}{'shape':<24}{'pass':<9}{'ms ms':>9}{'torch ms':>10}{'ratio':>7}"
            f"{'GFLOP/s':>9}{'%peak':>7}{'ms MiB':>8}{'torch MiB':>10}")
    print(head)
    print("-" * len(head))
    for group in groups:
        for case in OP_GROUPS[group](args.quick):
            ms_run, torch_run = case.ms_fn(args.device), case.torch_fn(args.device)
            for backward in (False, True):
                t_ms, t_torch = time_pair(ms_run, torch_run, backward, args.device, rounds, block,
                                          {"median": statistics.median, "min": min}[args.stat])
                flops = None if case.flops is None else case.flops * (3 if backward else 1)
                gflops = f"{flops / t_ms / 1e9:9.0f}{100 * flops / t_ms / 1e9 / peak:6.0f}%" \
                    if flops else f"{'-':>9}{'-':>7}"
                mem = memory.get(case.name + " " + case.shape) if backward else None
                mem = f"{mem[0]:8.0f}{mem[1]:10.0f}" if mem else f"{'':>8}{'':>10}"
                print(f"{case.name:<16}{case.shape:<24}{'fwd+bwd' if backward else 'fwd':<9}"
                      f"{1e3 * t_ms:9.2f}{1e3 * t_torch:10.2f}{t_ms / t_torch:7.2f}{gflops}{mem}",
                      flush=True)
                rows.append(dict(op=case.name, shape=case.shape, group=group, phase="fwd+bwd" if backward else "fwd",
                                 minisegnet_s=t_ms, torch_s=t_torch, ratio=t_ms / t_torch,
                                 gflops=None if not flops else flops / t_ms / 1e9,
                                 peak_mib=memory.get(case.name + " " + case.shape) if backward else None))
            del ms_run, torch_run
            gc.collect()
    if not args.no_save and args.device == "cpu":
        config = dict(threads=args.threads, quick=args.quick, stat=args.stat, rounds=rounds, block=block,
                      groups=groups, gemm_peak_gflops=peak)
        print("wrote", write_result(f"bench_ops_t{args.threads}", dict(machine=note, config=config, rows=rows)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
