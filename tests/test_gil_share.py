"""benchmarks/gil_share.py: py-spy's raw samples are counted per thread and module, and the
GIL shares follow from the two runs' counts (hand-computed cases; py-spy itself is not run)."""
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))

import gil_share  # noqa: E402

MAIN = "thread (101): MainThread;<module> (gil_share.py:160);child (gil_share.py:66)"
WINDOW = MAIN + ";_steps_under_sampling (gil_share.py:51);step (bench_train.py:96)"
WORKER = ("thread (102): minisegnet-0;Thread._bootstrap (threading.py:1002);"
          "_Worker._loop (minisegnet/kernels/threads.py:116)")
RAW = [
    WINDOW + ";backward (minisegnet/tensor.py:275);_product (minisegnet/kernels/conv.py:100) 7\n",
    WINDOW + ";backward (minisegnet/tensor.py:275);_product (minisegnet/kernels/conv.py:86) 5\n",
    WINDOW + ";step (minisegnet/optim.py:77);einsum (numpy/_core/einsumfunc.py:1610) 3\n",
    WINDOW + " 2\n",                                           # the benchmark's own loop
    MAIN + ";make_batch (bench_train.py:83);_randn (minisegnet/random.py:9) 40\n",   # before the window
    WORKER + ";_run_chunk (minisegnet/kernels/threads.py:156) 4\n",
    "thread (103): Thread-9;wait (threading.py:320) 6\n",          # neither main nor pool
    WINDOW + ";half-read frame (minisegnet/kern\n",                # cut off: no count
    "\n",
]


def test_raw_samples_are_counted_per_thread_module_and_function():
    counts = gil_share.parse_raw(RAW)
    assert counts["main"] == 7 + 5 + 3 + 2 and counts["workers"] == 4
    assert counts["main_where"] == {"kernels": 12, "optim": 3, "benchmark": 2}
    assert counts["main_functions"] == {"_product (minisegnet/kernels/conv.py)": 12,
                                        "step (minisegnet/optim.py)": 3, "benchmark": 2}


def test_shares_use_the_rate_the_idle_run_reached():
    # idle run: 400 main-thread ticks in 2 s -> 200 Hz; GIL run: 3 s window -> 600 ticks
    idle = {"main": 400, "window_s": 2.0}
    gil = {"main": 90, "workers": 30, "errors": 60, "window_s": 3.0,
           "main_where": {"kernels": 60, "optim": 30}, "main_functions": {"f": 90}}
    s = gil_share.shares(idle, gil)
    assert s["rate_hz"] == pytest.approx(200.0) and s["ticks"] == pytest.approx(600.0)
    assert s["main"] == pytest.approx(0.15) and s["workers"] == pytest.approx(0.05)
    assert s["total"] == pytest.approx(0.20) and s["total_upper"] == pytest.approx(0.30)
    assert s["where"] == {"kernels": pytest.approx(0.10), "optim": pytest.approx(0.05)}
    many_errors = dict(gil, errors=10_000)
    assert gil_share.shares(idle, many_errors)["total_upper"] == 1.0      # a share, never above 1


def test_missing_py_spy_is_one_clear_line(monkeypatch):
    monkeypatch.setattr(gil_share.shutil, "which", lambda name: None)
    with pytest.raises(SystemExit, match="pip install py-spy"):
        gil_share.main(["--models", "fcn"])
