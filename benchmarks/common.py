"""What every benchmark script shares: one thread setting for both libraries, interleaved
timing, memory probes, a note on how loaded the machine was, and the results files.

    from common import set_threads, time_interleaved, machine_note, write_result

Results go to ``benchmarks/results/<name>.json`` (one file per script and thread count);
``benchmarks/report.py`` turns them into the README tables.
"""
import datetime
import json
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")
if os.path.dirname(HERE) not in sys.path:          # run from a checkout without installing
    sys.path.insert(0, os.path.dirname(HERE))

import numpy as np  # noqa: E402

import minisegnet as ms  # noqa: E402


# ---------------------------------------------------------------------------- threads
def set_threads(n):
    """The same thread budget for both libraries: PyTorch's intra-op threads, minisegnet's
    kernel threads and BLAS (one knob each: ``torch.set_num_threads``, ``ms.set_num_threads``)."""
    ms.set_num_threads(n)
    os.environ["MINISEGNET_NUM_THREADS"] = str(n)      # for child processes (memory probes)
    try:
        import torch
        torch.set_num_threads(n)
    except ImportError:
        pass


def step_arguments(parser, models, threads):
    """The options every training-step script takes: ``--models`` (comma-separated zoo
    names), ``--threads`` and the batch's ``--batch`` x 3 x ``--size`` x ``--size``."""
    parser.add_argument("--models", default=models, help="comma-separated zoo names (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=threads, help="threads for both (default: %(default)s)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=128)


# ---------------------------------------------------------------------------- timing
def time_interleaved(runners, repeats, block=1, pause=0.02, sync=None, stat=statistics.median):
    """Seconds per call of each runner in ``runners`` ({name: fn()}), interleaved.

    Each runner is called twice to warm up, then ``repeats`` rounds run every runner
    ``block`` times in turn, with a short pause between runners (another library's spinning
    threads go idle), so a noisy machine slows them alike. Returns {name: stat(wall times)}
    and {name: stat(CPU times)}: the CPU time of the whole process (all its threads) per
    call, which other processes' load inflates much less than the wall time.
    """
    for fn in runners.values():
        fn(), fn()
    wall = {name: [] for name in runners}
    cpu = {name: [] for name in runners}
    for _ in range(repeats):
        for name, fn in runners.items():
            time.sleep(pause)
            for _ in range(block):
                if sync:
                    sync()
                t0, c0 = time.perf_counter(), time.process_time()
                fn()
                if sync:
                    sync()
                wall[name].append(time.perf_counter() - t0)
                cpu[name].append(time.process_time() - c0)
    return {name: stat(t) for name, t in wall.items()}, {name: stat(t) for name, t in cpu.items()}


def machine_note():
    """Cores, load average and library versions: to be printed and stored with the numbers."""
    import platform
    note = {"cores": os.cpu_count(), "numpy": np.__version__, "python": platform.python_version(),
            "minisegnet_threads": ms.get_num_threads(),
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
    try:
        import torch
        note["torch"] = torch.__version__
    except ImportError:
        pass
    if hasattr(os, "getloadavg"):
        note["load_average"] = round(os.getloadavg()[0], 2)
        note["loaded"] = note["load_average"] > 0.5 * (os.cpu_count() or 1)
    return note


def describe(note):
    """One comment line for a printed table."""
    load = note.get("load_average")
    busy = " (loaded: other processes shared the cores; ratios are noisy)" if note.get("loaded") else ""
    return (f"# {note['date']}; {note['cores']} cores, load average {load}{busy}; "
            f"torch {note.get('torch', '-')}, numpy {note['numpy']}")


# ---------------------------------------------------------------------------- results
def write_result(name, data):
    """Write ``data`` (with the machine note) to ``benchmarks/results/<name>.json`` atomically."""
    os.makedirs(RESULTS, exist_ok=True)
    path = os.path.join(RESULTS, name + ".json")
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=1, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)
    return path


def read_results():
    """{name: data} of every results file."""
    out = {}
    if os.path.isdir(RESULTS):
        for fname in sorted(os.listdir(RESULTS)):
            if fname.endswith(".json"):
                with open(os.path.join(RESULTS, fname)) as f:
                    out[fname[:-5]] = json.load(f)
    return out


# ---------------------------------------------------------------------------- memory probes
def status_bytes(field):
    """A field of /proc/self/status in bytes (Linux), or None."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def peak_rss_bytes():
    """Peak resident set size of this process image. On Linux VmHWM (ru_maxrss would
    include the RSS of the parent that forked us, which Linux carries across exec)."""
    peak = status_bytes("VmHWM")
    if peak is not None:
        return peak
    import resource
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def rss_bytes():
    """Current resident set size (Linux; elsewhere the peak so far)."""
    current = status_bytes("VmRSS")
    return current if current is not None else peak_rss_bytes()


def reset_peak_rss():
    """Start a new high-water mark at the current RSS (Linux >= 4.0); False if unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False
