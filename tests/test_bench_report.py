"""benchmarks/report.py: the README's speed tables are copied from the results files, and
only the marked blocks change."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))

import report  # noqa: E402

MACHINE = {"date": "2026-12-05 09:00 UTC", "cores": 2, "load_average": 3.5, "loaded": True}
RESULTS = {
    "bench_train_t2": {"machine": MACHINE, "config": {"threads": 2, "batch": 8, "size": 128, "repeats": 5},
                       "rows": [{"model": "fcn", "minisegnet_s": 0.1234, "torch_s": 0.2, "ratio": 0.617,
                                 "cpu_ratio": 0.9, "memory_ratio": 0.5, "minisegnet_peak_bytes": 50 * 2**20,
                                 "torch_peak_bytes": 100 * 2**20}]},
    "bench_ops_t2": {"machine": MACHINE, "config": {"threads": 2, "stat": "median", "rounds": 3, "block": 3},
                     "rows": [{"op": "conv1x1", "shape": "8x64x64x64 k1", "phase": "fwd+bwd",
                               "minisegnet_s": 0.0081, "torch_s": 0.009, "ratio": 0.9}]},
}


def test_blocks_are_filled_from_the_results_and_nothing_else_changes():
    text = ("# Title\nkept <!-- x -->\n<!-- bench:train -->\nold table\n<!-- /bench:train -->\nmiddle\n"
            "<!-- bench:ops -->\n<!-- /bench:ops -->\nend\n")
    out = report.render(text, RESULTS)
    assert out.startswith("# Title\nkept <!-- x -->\n<!-- bench:train -->\n") and out.endswith("end\n")
    assert "old table" not in out and "\nmiddle\n" in out
    assert "| 2 | fcn | 0.123 | 0.200 | 0.62 | 0.90 | 0.50 (50 / 100) |" in out
    assert "load average 3.5 (loaded)" in out
    assert "| conv1x1 | 8x64x64x64 k1 | fwd+bwd | 8.10 | 9.00 | 0.90 |" in out
    assert report.render(out, RESULTS) == out                      # idempotent


def test_a_block_without_results_says_how_to_make_them():
    out = report.render("<!-- bench:profile -->\n<!-- /bench:profile -->", {})
    assert "python benchmarks/profile_step.py" in out
