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

Targets: time <= 2x PyTorch CPU, peak memory <= 1.5x.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

try:
    import minisegnet  # noqa: F401
except ImportError:        # run from a checkout without installing
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

import minisegnet as ms  # noqa: E402
from minisegnet import models, optim  # noqa: E402

MODELS = ("deeplabv3", "pspnet", "fcn")
NUM_CLASSES = 21
TIME_TARGET, MEMORY_TARGET = 2.0, 1.5


# ---------------------------------------------------------------------------- the PyTorch twin
def torch_twin(model):
    """The same network as the minisegnet ``model`` (resnet_tiny + FCN/PSP/ASPP head) in PyTorch,
    with its weights copied by state-dict key."""
    import torch
    from torch import nn
    import torch.nn.functional as F

    class ConvModule(nn.Sequential):
        def __init__(self, cin, cout, k, padding=0, dilation=1):
            super().__init__()
            self.conv = nn.Conv2d(cin, cout, k, padding=padding, dilation=dilation, bias=False)
            self.bn = nn.BatchNorm2d(cout)
            self.activate = nn.ReLU(inplace=True)

    class BasicBlock(nn.Module):
        def __init__(self, cin, planes, stride, dilation):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, planes, 3, stride, dilation, dilation, bias=False)
            self.bn1 = nn.BatchNorm2d(planes)
            self.relu = nn.ReLU(inplace=True)
            self.conv2 = nn.Conv2d(planes, planes, 3, 1, dilation, dilation, bias=False)
            self.bn2 = nn.BatchNorm2d(planes)
            self.downsample = None
            if stride != 1 or cin != planes:
                self.downsample = nn.Sequential(nn.Conv2d(cin, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

        def forward(self, x):
            identity = x if self.downsample is None else self.downsample(x)
            return self.relu(self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x))))) + identity)

    class ResNet(nn.Module):
        def __init__(self, src):
            super().__init__()
            base = src.conv1.weight.shape[0]
            self.conv1 = nn.Conv2d(3, base, 7, 2, 3, bias=False)
            self.bn1 = nn.BatchNorm2d(base)
            self.relu = nn.ReLU(inplace=True)
            self.maxpool = nn.MaxPool2d(3, 2, 1)
            cin = base
            for i, (n, d) in enumerate(zip(src.layers, src.dilations)):
                planes, stride = base * 2 ** i, (1 if i == 0 or d > 1 else 2)
                blocks = [BasicBlock(cin if j == 0 else planes, planes, stride if j == 0 else 1, d) for j in range(n)]
                setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
                cin = planes

        def forward(self, x):
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            outs = []
            for i in range(4):
                x = getattr(self, f"layer{i + 1}")(x)
                outs.append(x)
            return outs

    class Head(nn.Module):
        def __init__(self, src):
            super().__init__()
            self.kind, self.in_index = type(src).__name__, src.in_index
            cin, ch = src.in_channels, src.channels
            if self.kind == "FCNHead":
                self.convs = nn.Sequential(*[ConvModule(cin if i == 0 else ch, ch, 3, padding=1)
                                             for i in range(src.num_convs)])
                self.conv_cat = ConvModule(cin + ch, ch, 3, padding=1)
            elif self.kind == "PSPHead":
                self.psp_sizes = src.psp_modules.sizes
                self.psp_modules = nn.Module()
                self.psp_modules.avgpools = nn.ModuleList([nn.AdaptiveAvgPool2d(s) for s in self.psp_sizes])
                self.psp_modules.convs = nn.ModuleList([ConvModule(cin, cin // 4, 1) for _ in self.psp_sizes])
                self.bottleneck = ConvModule(cin + len(self.psp_sizes) * (cin // 4), ch, 3, padding=1)
            elif self.kind == "ASPPHead":
                self.image_pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), ConvModule(cin, ch, 1))
                self.aspp_modules = nn.ModuleList([ConvModule(cin, ch, 1) if d == 1 else
                                                   ConvModule(cin, ch, 3, padding=d, dilation=d)
                                                   for d in src.dilations])
                self.bottleneck = ConvModule((len(src.dilations) + 1) * ch, ch, 3, padding=1)
            else:
                raise ValueError(f"no PyTorch twin for {self.kind}")
            self.dropout = nn.Dropout2d(src.dropout_ratio) if src.dropout is not None else None
            self.conv_seg = nn.Conv2d(ch, src.num_classes, 1)

        def forward(self, feats):
            x = feats[self.in_index]
            size = x.shape[2:]
            if self.kind == "FCNHead":
                out = self.conv_cat(torch.cat([x, self.convs(x)], dim=1))
            elif self.kind == "PSPHead":
                outs = [x] + [F.interpolate(conv(pool(x)), size, mode="bilinear", align_corners=False)
                              for pool, conv in zip(self.psp_modules.avgpools, self.psp_modules.convs)]
                out = self.bottleneck(torch.cat(outs, dim=1))
            else:
                outs = [F.interpolate(self.image_pool(x), size, mode="bilinear", align_corners=False)]
                outs += [m(x) for m in self.aspp_modules]
                out = self.bottleneck(torch.cat(outs, dim=1))
            if self.dropout is not None:
                out = self.dropout(out)
            return self.conv_seg(out)

    class Segmentor(nn.Module):
        def __init__(self, src):
            super().__init__()
            self.backbone = ResNet(src.backbone)
            self.decode_head = Head(src.decode_head)

        def forward(self, img):
            logits = self.decode_head(self.backbone(img))
            return F.interpolate(logits, img.shape[2:], mode="bilinear", align_corners=False)

        def loss(self, img, target):
            return F.cross_entropy(self(img), target, ignore_index=255)

    twin = Segmentor(model)
    state = model.state_dict()
    missing = [k for k in twin.state_dict() if k not in state and not k.endswith("num_batches_tracked")]
    extra = [k for k in state if k not in twin.state_dict()]
    if missing or extra:
        raise RuntimeError(f"the PyTorch twin does not match: missing {missing[:5]}, extra {extra[:5]}")
    twin.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in state.items()}, strict=False)
    return twin


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


def torch_setup(model, x, y, device):
    import torch
    twin = torch_twin(model).to(device)
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


_thread_limits = []


def set_threads(n):
    """The same thread budget for both: PyTorch's intra-op threads, minisegnet's conv
    threads, and every BLAS/OpenMP pool in the process (via threadpoolctl when installed),
    so neither framework's idle threads spin against the other's."""
    import torch
    torch.set_num_threads(n)
    os.environ["MINISEGNET_NUM_THREADS"] = str(n)
    try:
        from minisegnet.kernels import conv as conv_kernels
        conv_kernels.set_num_threads(n)
    except (ImportError, AttributeError):
        pass
    try:
        from threadpoolctl import threadpool_limits
        _thread_limits.append(threadpool_limits(limits=n))
    except ImportError:
        pass


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
    twin, torch_step = torch_setup(model, x, y, args.device)
    rel = check_same_network(model, twin, x, args.device)
    ms_step(), torch_step()                      # warm-up: work buffers, lazy initialisation
    ms_times, torch_times = [], []
    for _ in range(args.repeats):                # interleaved, so both see the same machine load
        for step, times in ((ms_step, ms_times), (torch_step, torch_times)):
            synchronize(args.device)
            start = time.perf_counter()
            step()
            synchronize(args.device)
            times.append(time.perf_counter() - start)
    return statistics.median(ms_times), statistics.median(torch_times), rel


# ---------------------------------------------------------------------------- memory probes
def _status_kb(field):
    """A field of /proc/self/status in bytes (Linux), or None."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _rss_bytes():
    """Current resident set size (Linux; elsewhere the peak so far)."""
    current = _status_kb("VmRSS")
    return current if current is not None else _peak_rss_bytes()


def _peak_rss_bytes():
    """Peak resident set size of this process image. On Linux VmHWM (ru_maxrss would
    include the RSS of the parent that forked us, which Linux carries across exec)."""
    peak = _status_kb("VmHWM")
    if peak is not None:
        return peak
    import resource
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def _reset_peak_rss():
    """Start a new high-water mark at the current RSS (Linux >= 4.0); False if unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def memory_probe(framework, name, args):
    """Run in a fresh process: peak RSS over two steps minus RSS before the model is built."""
    set_threads(args.threads)
    x, y = make_batch(args.batch, args.size, "cpu")
    result = {}
    if framework == "torch":
        import torch  # noqa: F401  (imported before the baseline)
        ms.manual_seed(0)
        blueprint = models.create(name, num_classes=NUM_CLASSES)     # the twin copies its weights
        _reset_peak_rss()
        before, peak_before = _rss_bytes(), _peak_rss_bytes()
        _, step = torch_setup(blueprint, x, y, "cpu")
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
        _reset_peak_rss()
        before, peak_before = _rss_bytes(), _peak_rss_bytes()
        _, step = minisegnet_setup(name, x, y, "cpu")
    step()
    step()
    peak = _peak_rss_bytes()
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
    _, tstep = torch_setup(model, x, y, "cuda")
    tstep(), tstep()
    return ours, torch.cuda.max_memory_reserved()


# ---------------------------------------------------------------------------- main
def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", default=",".join(MODELS), help="comma-separated zoo names (default: %(default)s)")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--repeats", type=int, default=5, help="timed steps per framework (median reported)")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="threads for both (default: all cores)")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--quick", action="store_true", help="2 timed steps instead of --repeats")
    p.add_argument("--no-memory", action="store_true", help="skip the memory probes")
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
    set_threads(args.threads)
    print(f"# One training step, {args.batch}x3x{args.size}x{args.size} float32, {NUM_CLASSES} classes, "
          f"resnet_tiny at output stride 8, SGD(momentum 0.9)")
    print(f"# device {args.device}, {args.threads} thread(s) for both, median of {args.repeats} steps "
          f"after one warm-up; torch {torch.__version__}, numpy {np.__version__}")
    if hasattr(os, "getloadavg"):
        load = os.getloadavg()[0]
        busy = (" - the machine is busy: timings are noisy, and idle OpenMP threads spinning against other "
                "processes can slow PyTorch badly; compare with --threads 1 (or OMP_WAIT_POLICY=PASSIVE)"
                if load > (os.cpu_count() or 1) else "")
        print(f"# load average {load:.1f} on {os.cpu_count()} cores at the start{busy}")
    print()
    print("| model | minisegnet s/step | PyTorch s/step | time ratio | memory ratio | "
          "minisegnet peak MB | PyTorch peak MB | NumPy tracemalloc MB | same net (rel. diff) |")
    print("|---|---|---|---|---|---|---|---|---|")
    worst_time = worst_mem = 0.0
    for name in names:
        t_ms, t_torch, rel = time_model(name, args)
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
        print(f"| {name} | {t_ms:.3f} | {t_torch:.3f} | {ratio:.2f} | " + " | ".join(mem_cells) + f" | {rel:.1e} |",
              flush=True)
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
    verdict_time = "meets" if worst_time <= TIME_TARGET else "misses"
    line = f"Worst time ratio {worst_time:.2f} ({verdict_time} the <= {TIME_TARGET}x target)"
    if worst_mem:
        verdict_mem = "meets" if worst_mem <= MEMORY_TARGET else "misses"
        line += f"; worst memory ratio {worst_mem:.2f} ({verdict_mem} the <= {MEMORY_TARGET}x target)"
    print(line + ".")
    return 0


if __name__ == "__main__":
    sys.exit(main())
