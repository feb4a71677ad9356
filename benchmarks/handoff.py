"""What a second thread costs and gains on this machine, for minisegnet and for PyTorch.

minisegnet splits an op over threads by handing chunks to a pool of Python threads
(``minisegnet/kernels/threads.py``): every split pays a hand-off, waking the pool thread
and waiting for it, and the two threads pass the GIL between NumPy calls. An op is worth
splitting only when its work is well above that cost, so the hand-off decides which ops
a second core can speed up. This script measures

* the hand-off: a round trip between two Python threads through two bare locks (the
  cheapest Python has), and a ``parallel_for`` over 2 threads that does nothing;
* element-wise work (``a * b`` into a preallocated array) of growing size, on 1 and on 2
  threads, in minisegnet's pool and in PyTorch (``torch.mul``; its OpenMP threads spin
  between parallel regions instead of sleeping, so its hand-off is a few microseconds);
* a matrix product of a convolution's shape (64 x 576 @ 576 x 8192), whose work is far
  above either library's hand-off, for comparison;
* how the machine's idle cores wait (Linux ``cpuidle``): a core that halts when idle
  takes longer to wake than one that polls, and on a virtual machine with guest halt
  polling off (``guest_halt_poll_ns = 0``) every wake-up is a trip through the host.

    python benchmarks/handoff.py            # writes benchmarks/results/handoff.json
    python benchmarks/handoff.py --no-save

``benchmarks/report.py`` turns the results file into the ``handoff`` table of
``benchmarks/README.md``.
"""
try:        # before NumPy: OpenBLAS's idle threads then sleep at once (minisegnet/blas_env.py)
    import minisegnet.blas_env  # noqa: F401
except ImportError:
    pass
import _thread
import argparse
import os
import statistics
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

from common import describe, machine_note, set_threads, write_result  # noqa: E402

from minisegnet.kernels.threads import parallel_for  # noqa: E402

IDLE_FILES = {"cpuidle_driver": "/sys/devices/system/cpu/cpuidle/current_driver",
              "cpuidle_governor": "/sys/devices/system/cpu/cpuidle/current_governor_ro",
              "guest_halt_poll_ns": "/sys/module/haltpoll/parameters/guest_halt_poll_ns"}
ELEMENTWISE_SIZES = (1 << 16, 1 << 18, 1 << 20, 1 << 22)
PRODUCT_SHAPE = (64, 576, 8192)


def _median_us(fn, calls):
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e6 * statistics.median(times)


def lock_round_trip_us(calls):
    """Median microseconds for a bare lock ping-pong between this thread and another."""
    ping, pong = _thread.allocate_lock(), _thread.allocate_lock()
    ping.acquire()
    pong.acquire()
    stop = []

    def other():
        while True:
            ping.acquire()
            if stop:
                return
            pong.release()

    thread = threading.Thread(target=other, daemon=True)
    thread.start()

    def round_trip():
        ping.release()
        pong.acquire()
    us = _median_us(round_trip, calls)
    stop.append(True)
    ping.release()
    thread.join()
    return us


def split(fn, n):
    """A call that runs ``fn(lo, hi)`` over ``range(n)`` on the pool, one contiguous part
    per thread (one whole call at 1 thread)."""
    return lambda: parallel_for(fn, n)


def elementwise(size, calls):
    """{library: (1-thread us, 2-thread us)} of ``c = a * b`` on ``size`` float32 values,
    the two thread counts alternating call by call."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(size, dtype=np.float32), rng.standard_normal(size, dtype=np.float32)
    c = np.empty_like(a)
    ours = split(lambda lo, hi: np.multiply(a[lo:hi], b[lo:hi], out=c[lo:hi]), size)
    runners = {"minisegnet": ours}
    try:
        import torch
        ta, tb, tc = torch.from_numpy(a), torch.from_numpy(b), torch.from_numpy(c)
        runners["torch"] = lambda: torch.mul(ta, tb, out=tc)
    except ImportError:
        pass
    return {name: alternate(fn, calls) for name, fn in runners.items()}


def product(calls):
    """(1-thread us, 2-thread us) of one convolution-shaped matrix product, split by columns."""
    m, k, n = PRODUCT_SHAPE
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((m, k), dtype=np.float32), rng.standard_normal((k, n), dtype=np.float32)
    out = np.empty((m, n), dtype=np.float32)
    return alternate(split(lambda lo, hi: np.matmul(a, b[:, lo:hi], out=out[:, lo:hi]), n), calls)


def alternate(fn, calls):
    """Median microseconds of ``fn`` at 1 and at 2 threads (both libraries), interleaved."""
    times = {1: [], 2: []}
    for _ in range(calls):
        for n in (1, 2):
            set_threads(n)
            t0 = time.perf_counter()
            fn()
            times[n].append(time.perf_counter() - t0)
    return tuple(1e6 * statistics.median(times[n]) for n in (1, 2))


def idle_settings():
    """How this machine's idle cores wait, from Linux's cpuidle files (absent: not shown)."""
    out = {}
    for key, path in IDLE_FILES.items():
        try:
            with open(path) as f:
                out[key] = f.read().strip()
        except OSError:
            pass
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--calls", type=int, default=400, help="timed calls per measurement (default: %(default)s)")
    p.add_argument("--no-save", action="store_true")
    args = p.parse_args(argv)
    if (os.cpu_count() or 1) < 2:
        print("handoff.py compares 1 and 2 threads: this machine has one core", file=sys.stderr)
        return 1
    set_threads(2)
    note = machine_note()
    print(describe(note))
    data = dict(machine=note, idle=idle_settings(), lock_round_trip_us=lock_round_trip_us(args.calls * 5),
                parallel_for_us=_median_us(split(lambda lo, hi: None, 2), args.calls * 5),
                elementwise={}, product_shape=list(PRODUCT_SHAPE))
    print(f"lock round trip {data['lock_round_trip_us']:.1f} us, empty parallel_for at 2 threads "
          f"{data['parallel_for_us']:.1f} us; idle: {data['idle']}")
    for size in ELEMENTWISE_SIZES:
        data["elementwise"][str(size)] = row = elementwise(size, args.calls)
        print(f"a * b, {size} values: " + ", ".join(f"{lib} {one:.0f} -> {two:.0f} us ({one / two:.2f}x)"
                                                    for lib, (one, two) in row.items()), flush=True)
    data["product_us"] = product(max(10, args.calls // 10))
    one, two = data["product_us"]
    print(f"product {'x'.join(map(str, PRODUCT_SHAPE))}: {one:.0f} -> {two:.0f} us ({one / two:.2f}x)")
    if not args.no_save:
        print("wrote", write_result("handoff", data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
