"""benchmarks/handoff.py: its split covers every element exactly once (against NumPy's own
unsplit product), its lock round trip leaves no thread behind, and a short run completes."""
import os
import sys
import threading

import numpy as np
import pytest

import minisegnet as ms
from conftest import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))

import handoff  # noqa: E402


def test_split_work_covers_the_whole_array_on_two_threads():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(1001), rng.standard_normal(1001)
    out = np.full_like(a, np.nan)
    seen = []

    def part(lo, hi):
        seen.append((lo, hi))
        np.multiply(a[lo:hi], b[lo:hi], out=out[lo:hi])
    try:
        ms.set_num_threads(2)
        handoff.split(part, a.size)()
    finally:
        ms.set_num_threads(None)
    np.testing.assert_array_equal(out, a * b)
    assert sorted(seen) == [(0, 500), (500, 1001)]


def test_lock_round_trip_ends_its_thread():
    before = threading.active_count()
    assert handoff.lock_round_trip_us(20) > 0
    assert threading.active_count() == before


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="compares 1 and 2 threads")
def test_a_short_run_prints_every_measurement(capsys, monkeypatch):
    monkeypatch.delenv("MINISEGNET_NUM_THREADS", raising=False)     # set_threads sets it: restored after
    torch_threads = torch.get_num_threads() if torch is not None else None
    try:
        assert handoff.main(["--calls", "3", "--no-save"]) == 0
    finally:
        ms.set_num_threads(None)
        if torch is not None:
            torch.set_num_threads(torch_threads)
    out = capsys.readouterr().out
    assert "lock round trip" in out and "product 64x576x8192" in out
    assert out.count("a * b,") == len(handoff.ELEMENTWISE_SIZES)
