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


def test_zoo_block_averages_the_seeds_and_compares_with_fcn():
    def run(model, seed, miou, width=None):
        return {"model": model, "width": width, "seed": seed, "steps": 600, "mIoU": miou, "seconds": 100.0 + seed,
                "params": 1000}
    results = {"bench_zoo_context": {"optimizer": "adam", "aux": True, "cpus": 2, "started": "t0",
                                     "threads": {"MINISEGNET_NUM_THREADS": "1"},
                                     "runs": [run("fcn", 0, 0.70), run("fcn", 1, 0.72), run("fcn", 2, 0.74),
                                              run("segformer_b0", 0, 0.90, 0.5)]}}
    out = report.render("<!-- bench:zoo -->\n<!-- /bench:zoo -->", results)
    # hand-computed: mean 0.72, sample std sqrt((0.02^2 + 0 + 0.02^2) / 2) = 0.02; mean wall 101 s
    assert "| context strips (256x32) | fcn | 600 | 0,1,2 | 0.720 ± 0.020 | 101 | 1,000 |" in out
    assert "| context strips (256x32) | segformer_b0 (width 0.5) | 600 | 0 | 0.900 ± 0.000 | 100 | 1,000 |" in out
    assert "mIoU minus FCN's: segformer_b0 (width 0.5) +0.180" in out


def test_trainrun_block_lists_defaults_and_named_runs():
    row = {"seed": 0, "wall_s": 99.6, "val_mIoU": 0.8765}
    results = {"time_train": {"machine": MACHINE, "config": {"args": "defaults"}, "rows": [row]},
               "time_train_segformer_b0": {"machine": MACHINE, "config": {"args": "--model segformer_b0"},
                                           "rows": [row]}}
    out = report.render("<!-- bench:trainrun -->\n<!-- /bench:trainrun -->", results)
    assert "| (defaults) | 0 | 100 | 0.876 |" in out and "| `--model segformer_b0` | 0 | 100 | 0.876 |" in out


def test_goals_block_reads_each_goal_off_the_results():
    def row(model, ms_s, torch_s, memory=0.5):
        return {"model": model, "minisegnet_s": ms_s, "torch_s": torch_s, "ratio": ms_s / torch_s,
                "memory_ratio": memory}
    config = {"batch": 8, "size": 128, "repeats": 5}
    results = {
        "bench_train_t1": {"machine": MACHINE, "config": dict(config, threads=1),
                           "rows": [row("deeplabv3", 0.9, 1.0), row("fcn", 1.2, 1.0), row("fast_scnn", 9.0, 1.0, 2.0)]},
        "bench_train_t2": {"machine": MACHINE, "config": dict(config, threads=2),
                           "rows": [row("deeplabv3", 0.5, 0.6, 0.7), row("fcn", 0.8, 0.5)]},
        "time_train": {"machine": MACHINE, "config": {"args": "defaults"},
                       "rows": [{"seed": 0, "wall_s": 119.6, "val_mIoU": 0.86},
                                {"seed": 1, "wall_s": 121.0, "val_mIoU": 0.90}]},
    }
    out = report.render("<!-- bench:goals -->\n<!-- /bench:goals -->", results)
    # hand-computed: 1 thread 0.9 / 1.2; 2 threads 0.5/0.6 = 0.83 and 0.8/0.5 = 1.60
    assert ("step time at 1 thread(s), minisegnet / PyTorch: at most 1.0x (the goal): deeplabv3 0.90; "
            "within the 1.25x floor only: fcn 1.20") in out
    assert "at 2 thread(s), minisegnet / PyTorch: at most 1.0x (the goal): deeplabv3 0.83; above the floor: fcn 1.60" in out
    # speedups: deeplabv3 0.9/0.5 = 1.80 vs 1.0/0.6 = 1.67 (met); fcn 1.2/0.8 = 1.50 vs 1.0/0.5 = 2.00
    assert "deeplabv3 1.80 / 1.67, fcn 1.50 / 2.00 (goal: at least PyTorch's; met for deeplabv3)" in out
    assert "peak memory at most 0.70x PyTorch's (goal: at most 1.0x; met)" in out   # fast_scnn is not a goal model
    assert "1 of 2 seeds reached val mIoU >= 0.85 within 120 s (seed 0: 120 s, 0.860, seed 1: 121 s, 0.900)" in out


def test_layers_block_lists_the_biggest_losses_first_with_hand_computed_rates():
    row = dict(model="fcn", w=(16, 3, 7, 7), stride=(2, 2), dilation=(1, 1), groups=1, bias=False)
    results = {"bench_layers_t1": {"machine": MACHINE, "config": {"threads": 1, "batch": 8, "size": 128, "repeats": 7},
                                   "rows": [dict(row, x=(8, 3, 128, 128), minisegnet_s=0.004, torch_s=0.002,
                                                 blas_s=0.0025, macs=10**7),
                                            dict(row, x=(8, 3, 64, 64), minisegnet_s=0.001, torch_s=0.002, macs=10**6)]}}
    out = report.render("<!-- bench:layers -->\n<!-- /bench:layers -->", results)
    lines = [ln for ln in out.splitlines() if ln.startswith("| 1 |")]
    # lost 2 ms first, won 1 ms second; 2 * 1e7 / 0.004 s = 5 GFLOP/s, / 0.0025 s = 8, / 0.002 s = 10
    assert lines[0] == "| 1 | fcn | 8x3x128x128, 16x3x7x7, s2, d1 | 4.00 | 2.00 | 2.00 | 5 / 8 / 10 |"
    # a row without a BLAS call (a grouped convolution, or an older results file) shows "-"
    assert lines[1] == "| 1 | fcn | 8x3x64x64, 16x3x7x7, s2, d1 | 1.00 | 2.00 | 0.50 | 2 / - / 1 |"
    assert lines[2] == "| 1 | fcn | *all 2 convolutions* | 5.0 | 4.0 | 1.25 | |"


def test_kept_memory_runs_have_their_own_table_and_do_not_feed_the_goals():
    kept = {"machine": MACHINE, "config": {"threads": 2, "batch": 8, "size": 128, "repeats": 9, "keep_memory": True},
            "rows": [{"model": "fcn", "minisegnet_s": 0.077, "torch_s": 0.061, "ratio": 0.077 / 0.061,
                      "cpu_ratio": 1.03}]}
    results = dict(RESULTS, bench_train_kept_t2=kept)
    out = report.render("<!-- bench:trainkept -->\n<!-- /bench:trainkept -->\n"
                        "<!-- bench:train -->\n<!-- /bench:train -->\n<!-- bench:goals -->\n<!-- /bench:goals -->",
                        results)
    kept_block, rest = out.split("<!-- /bench:trainkept -->")
    assert "| 2 | fcn | 0.077 | 0.061 | 1.26 | 1.03 | - |" in kept_block        # 0.077 / 0.061 = 1.262
    assert "0.123" not in kept_block
    assert "1.26" not in rest and "| 2 | fcn | 0.123 | 0.200 | 0.62 |" in rest
    assert "fcn 0.62" in rest                                                  # the goals read the plain run
    assert "--keep-memory" in report.render("<!-- bench:trainkept -->\n<!-- /bench:trainkept -->", {})


def test_gil_block_lists_each_run_largest_module_first():
    row = {"step_s": 0.0921, "total": 0.234, "total_upper": 0.331, "main": 0.18, "workers": 0.054,
           "where": {"optim": 0.01, "kernels": 0.11, "functional": 0.02},
           "functions": {"a (minisegnet/x.py)": 0.004, "b (minisegnet/y.py)": 0.015}}
    results = {"gil_share_t2": {"machine": MACHINE, "threads": 2, "config": {"threads": 2, "seconds": 6.0, "rate": 250},
                                "models": {"fcn": row}}}
    out = report.render("<!-- bench:gil -->\n<!-- /bench:gil -->", results)
    assert ("| 2 | fcn | 92 | 23% (33%) | 18% | 5% | kernels 11.0%, functional 2.0%, optim 1.0% | "
            "b (minisegnet/y.py) 1.5%, a (minisegnet/x.py) 0.4% |") in out
    assert "6 s of steps per run, py-spy at 250 Hz" in out and "load average 3.5" in out
    assert "gil_share.py" in report.render("<!-- bench:gil -->\n<!-- /bench:gil -->", {})


def test_handoff_block_shows_both_libraries_speedups_computed_by_hand():
    results = {"handoff": {"machine": MACHINE, "idle": {"cpuidle_driver": "haltpoll", "guest_halt_poll_ns": "0"},
                           "lock_round_trip_us": 44.6, "parallel_for_us": 61.2, "product_shape": [64, 576, 8192],
                           "elementwise": {"262144": {"minisegnet": [45.0, 90.0], "torch": [40.0, 25.0]},
                                           "4194304": {"minisegnet": [1600.0, 1280.0]}},
                           "product_us": [8000.0, 4200.0]}}
    out = report.render("<!-- bench:handoff -->\n<!-- /bench:handoff -->", results)
    # 45 / 90 = 0.50x, 40 / 25 = 1.60x; 1600 / 1280 = 1.25x (no PyTorch: dashes); 8000 / 4200 = 1.90x
    assert "| a * b, 262,144 float32 values | 45 -> 90 | 0.50x | 40 -> 25 | 1.60x |" in out
    assert "| a * b, 4,194,304 float32 values | 1600 -> 1280 | 1.25x | - | - |" in out
    assert "| matrix product 64 x 576 x 8192 | 8000 -> 4200 | 1.90x | | |" in out
    assert "two locks 45 us; an empty `parallel_for` over 2 threads 61 us" in out
    assert "idle cores: cpuidle_driver = haltpoll, guest_halt_poll_ns = 0" in out
    assert "(no hand-off timings yet" in report.render("<!-- bench:handoff -->\n<!-- /bench:handoff -->", {})
