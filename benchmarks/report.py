"""Write the speed tables of README.md and benchmarks/README.md from benchmarks/results/*.json.

    python benchmarks/report.py            # rewrite every marked block
    python benchmarks/report.py --check    # exit 1 if a block is out of date (nothing written)

A block is the text between ``<!-- bench:NAME -->`` and ``<!-- /bench:NAME -->``; NAME is
``train`` (bench_train, every thread count), ``ops`` (bench_ops, every thread count) or
``profile`` (profile_step, the top ops of each model), ``gil`` (gil_share: the share of a
step with the GIL held), ``layers`` (bench_layers: the
convolutions where minisegnet loses most), ``goals`` (issue 11's goals, from
bench_train and time_train), ``trainrun`` (time_train), ``handoff`` (handoff: what a thread hand-off costs and a second
thread gains), ``grade`` (bench_grade), ``zoo`` (bench_zoo:
mIoU over seeds per dataset and model) or ``sizes`` (zoo_sizes: parameters and MACs at 512x512). Numbers are only ever copied from
the results files, with the machine's load when they were measured.
"""
import argparse
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import HERE, read_results  # noqa: E402

DOCS = [os.path.join(os.path.dirname(HERE), "README.md"), os.path.join(HERE, "README.md")]


def _when(machine):
    load = machine.get("load_average")
    state = "loaded" if machine.get("loaded") else "idle"
    return f"{machine.get('date', '?')}, {machine.get('cores', '?')} cores, load average {load} ({state})"


def _threads(name):
    return int(name.rsplit("_t", 1)[1]) if "_t" in name and name.rsplit("_t", 1)[1].isdigit() else 0


def _by_threads(results, prefix):
    """The results files ``<prefix><N>`` (e.g. ``bench_ops_t2``), fewest threads first."""
    return [results[k] for k in sorted((k for k in results if k.startswith(prefix)), key=_threads)]


def _thread_table(runs, header, rows_of, setup_of):
    """A table with a block of rows per results file (``rows_of(data, threads)``), then one
    note per file: its thread count, ``setup_of(config)`` and when it was measured."""
    lines, notes = list(header), []
    for data in runs:
        t = data["config"]["threads"]
        lines += rows_of(data, t)
        notes.append(f"{t} thread(s): {setup_of(data['config'])}; {_when(data['machine'])}")
    return "\n".join(lines + [""] + [f"- {n}" for n in notes])


def train_table(results, prefix="bench_train_t", how="--threads N"):
    """bench_train: one row per thread count and model (``prefix`` picks the plain runs or
    the ``--keep-memory`` ones)."""
    runs = _by_threads(results, prefix)
    if not runs:
        return f"(no such bench_train results yet: run `python benchmarks/bench_train.py {how}`)"

    def rows_of(data, t):
        lines = []
        for r in data["rows"]:
            mem = (f"{r['memory_ratio']:.2f} ({r['minisegnet_peak_bytes'] / 2**20:.0f} / "
                   f"{r['torch_peak_bytes'] / 2**20:.0f})" if "memory_ratio" in r else "-")
            lines.append(f"| {t} | {r['model']} | {r['minisegnet_s']:.3f} | {r['torch_s']:.3f} | "
                         f"{r['ratio']:.2f} | {r.get('cpu_ratio', float('nan')):.2f} | {mem} |")
        return lines
    return _thread_table(runs, ["| threads | model | minisegnet s/step | PyTorch s/step | time ratio | "
                                "CPU-time ratio | peak memory ratio (MB ms / torch) |", "|---|---|---|---|---|---|---|"],
                         rows_of, lambda c: f"{c['batch']}x3x{c['size']}x{c['size']}, median of {c['repeats']} "
                                            f"interleaved steps")


#: Issue 11's training-step goals: these models' step time at most 1.0x PyTorch's at every
#: thread count (floor 1.25x), a speedup from the second thread at least PyTorch's, and
#: peak memory at most PyTorch's. The default training run: val mIoU >= 0.85 in 120 s.
GOAL_MODELS = ("deeplabv3", "pspnet", "fcn")
STEP_GOAL, STEP_FLOOR, RUN_SECONDS, RUN_MIOU = 1.0, 1.25, 120, 0.85


def train_goals(results):
    """Issue 11's goals, each read off the results files: which models meet the step-time
    goal and floor per thread count, the second thread's speedup of each library, the
    worst peak-memory ratio and the default training runs."""
    runs = {data["config"]["threads"]: {r["model"]: r for r in data["rows"]}
            for data in _by_threads(results, "bench_train_t")}
    lines = []
    for t in sorted(runs):
        rows = [runs[t][m] for m in GOAL_MODELS if m in runs[t]]
        groups = (("at most 1.0x (the goal)", lambda r: r <= STEP_GOAL),
                  ("within the 1.25x floor only", lambda r: STEP_GOAL < r <= STEP_FLOOR),
                  ("above the floor", lambda r: r > STEP_FLOOR))
        parts = [f"{label}: " + ", ".join(f"{r['model']} {r['ratio']:.2f}" for r in rows if test(r["ratio"]))
                 for label, test in groups if any(test(r["ratio"]) for r in rows)]
        lines.append(f"- step time at {t} thread(s), minisegnet / PyTorch: " + "; ".join(parts))
    if 1 in runs and 2 in runs:
        both = [m for m in GOAL_MODELS if m in runs[1] and m in runs[2]]
        speed = {m: (runs[1][m]["minisegnet_s"] / runs[2][m]["minisegnet_s"],
                     runs[1][m]["torch_s"] / runs[2][m]["torch_s"]) for m in both}
        met = [m for m in both if speed[m][0] >= speed[m][1]]
        lines.append("- speedup from the second thread, minisegnet / PyTorch: "
                     + ", ".join(f"{m} {a:.2f} / {b:.2f}" for m, (a, b) in speed.items())
                     + f" (goal: at least PyTorch's; met for {', '.join(met) or 'none'})")
    memory = [r["memory_ratio"] for rows in runs.values() for m, r in rows.items()
              if m in GOAL_MODELS and "memory_ratio" in r]
    if memory:
        lines.append(f"- peak memory at most {max(memory):.2f}x PyTorch's (goal: at most 1.0x; "
                     f"{'met' if max(memory) <= 1.0 else 'not met'})")
    run = results.get("time_train")
    if run:
        ok = [r for r in run["rows"] if r["wall_s"] <= RUN_SECONDS and r["val_mIoU"] >= RUN_MIOU]
        lines.append(f"- `minisegnet train` with its defaults: {len(ok)} of {len(run['rows'])} seeds reached "
                     f"val mIoU >= {RUN_MIOU} within {RUN_SECONDS} s ("
                     + ", ".join(f"seed {r['seed']}: {r['wall_s']:.0f} s, {r['val_mIoU']:.3f}" for r in run["rows"])
                     + ")")
    return "\n".join(lines) if lines else "(no bench_train results yet: run `python benchmarks/bench_train.py --threads N`)"


def ops_table(results):
    runs = _by_threads(results, "bench_ops_t")
    if not runs:
        return "(no bench_ops results yet: run `python benchmarks/bench_ops.py --threads N`)"
    out = []
    for data in runs:
        c = data["config"]
        out.append(f"{c['threads']} thread(s), {c['stat']} of {c['rounds']}x{c['block']} interleaved calls"
                   f"{' (--quick: batch 2)' if c.get('quick') else ''}; {_when(data['machine'])}:")
        out.append("")
        out += ["| op | shape | pass | minisegnet ms | PyTorch ms | ratio |", "|---|---|---|---|---|---|"]
        for r in data["rows"]:
            out.append(f"| {r['op']} | {r['shape']} | {r['phase']} | {1e3 * r['minisegnet_s']:.2f} | "
                       f"{1e3 * r['torch_s']:.2f} | {r['ratio']:.2f} |")
        out.append("")
    return "\n".join(out).rstrip()


def profile_table(results, top=8):
    runs = _by_threads(results, "profile_t")
    if not runs:
        return "(no profile yet: run `python benchmarks/profile_step.py --threads N --json`)"
    out = []
    for data in runs:
        out.append(f"{data['threads']} thread(s); {_when(data['machine'])}:")
        out.append("")
        out += ["| model | op | pass | ms per step | share of step | cores busy |", "|---|---|---|---|---|---|"]
        for model, both in data["models"].items():
            ours = both["minisegnet"]
            op_wall = sum(r["wall"] for r in ours["ops"])
            for r in ours["ops"][:top]:
                out.append(f"| {model} | {r['op']} | {r['phase']} | {1e3 * r['wall']:.1f} | "
                           f"{100 * r['wall'] / ours['step_wall']:.0f}% | {r['cpu'] / max(r['wall'], 1e-9):.2f} |")
            out.append(f"| {model} | *whole step* | | {1e3 * ours['step_wall']:.0f} | 100% | "
                       f"{ours['step_cpu'] / ours['step_wall']:.2f} |")
            out.append(f"| {model} | *outside ops (Python, graph, optimizer)* | | "
                       f"{1e3 * (ours['step_wall'] - op_wall):.0f} | "
                       f"{100 * (ours['step_wall'] - op_wall) / ours['step_wall']:.0f}% | |")
        out.append("")
    return "\n".join(out).rstrip()


def trainrun_table(results):
    names = sorted(k for k in results if k == "time_train" or k.startswith("time_train_"))
    if not names:
        return "(no `minisegnet train` timings yet: run `python benchmarks/time_train.py --seeds 0,1,2`)"
    lines = ["| `minisegnet train` arguments | seed | wall time s | val mIoU |", "|---|---|---|---|"]
    notes = []
    for name in names:
        data = results[name]
        args = data.get("config", {}).get("args", "defaults")
        label = "(defaults)" if args == "defaults" else f"`{args}`"
        lines += [f"| {label} | {r['seed']} | {r['wall_s']:.0f} | {r['val_mIoU']:.3f} |" for r in data["rows"]]
        notes.append(f"{label}: {_when(data['machine'])}")
    return "\n".join(lines + [""] + [f"- {n}" for n in notes])


def _mean_std(values):
    mean = sum(values) / len(values)
    std = (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5 if len(values) > 1 else 0.0
    return mean, std


DATASET_LABELS = {"shapes": "shapes (64x64)", "context": "context strips (256x32)",
                  "context_control": "context control (256x32)"}


def zoo_table(results):
    """One row per dataset and model: validation mIoU as mean +- sample std over the seeds run,
    the mean wall time; then, per dataset, each model's gap to FCN."""
    names = [k for k in ("bench_zoo_shapes", "bench_zoo_context", "bench_zoo_context_control") if k in results]
    if not names:
        return "(no bench_zoo results yet: run `python benchmarks/bench_zoo.py --seeds 0,1,2`)"
    lines = ["| dataset | model | steps | seeds | val mIoU (mean ± std) | wall time s (mean) | parameters |",
             "|---|---|---:|---:|---:|---:|---:|"]
    notes = []
    for name in names:
        data = results[name]
        dataset = name[len("bench_zoo_"):]
        by_model = {}
        for r in data["runs"]:
            label = r["model"] + (f" (width {r['width']:g})" if r.get("width") is not None else "")
            by_model.setdefault((label, r["steps"]), []).append(r)
        means = {}
        for (model, steps), runs in by_model.items():
            mean, std = _mean_std([r["mIoU"] for r in runs])
            means[model] = mean
            seeds = ",".join(str(r["seed"]) for r in sorted(runs, key=lambda r: r["seed"]))
            wall = sum(r["seconds"] for r in runs) / len(runs)
            lines.append(f"| {DATASET_LABELS.get(dataset, dataset)} | {model} | {steps} | {seeds} | "
                         f"{mean:.3f} ± {std:.3f} | {wall:.0f} | {runs[0]['params']:,} |")
        if "fcn" in means and len(means) > 1:
            gaps = ", ".join(f"{m} {v - means['fcn']:+.3f}" for m, v in means.items() if m != "fcn")
            notes.append(f"{DATASET_LABELS.get(dataset, dataset)}, mIoU minus FCN's: {gaps}")
        env = data.get("threads") or {}
        threads = env.get("MINISEGNET_NUM_THREADS") or env.get("OMP_NUM_THREADS")
        notes.append(f"{DATASET_LABELS.get(dataset, dataset)}: {data.get('optimizer', '?')}, aux head "
                     f"{'on' if data.get('aux') else 'off'}, {threads or 'all'} thread(s) per run, "
                     f"{data.get('cpus', '?')} CPUs, started {data.get('started', '?')}")
    return "\n".join(lines + [""] + [f"- {n}" for n in notes])


def sizes_table(results):
    data = results.get("zoo_sizes")
    if not data:
        return "(no model sizes yet: run `python benchmarks/zoo_sizes.py`)"
    lines = ["| model | parameters | paper | MACs at 512x512 | paper |", "|---|---:|---:|---:|---:|"]
    for model, d in data.items():
        at = d["at_512"]
        boost = f" (aux heads +{at['aux_params'] / 1e6:.2f} M)" if at.get("aux_params") else ""
        att = f" (attention {at['attention_macs'] / 1e9:.2f} G)" if at.get("attention_macs") else ""
        paper = d.get("paper", {})
        p_params = f"{paper['params'] / 1e6:.2f} M" if "params" in paper else "–"
        p_macs = f"{paper['macs_512'] / 1e9:.1f} G" if "macs_512" in paper else "–"
        lines.append(f"| `{model}` ({d['num_classes']} classes) | {at['params'] / 1e6:.2f} M{boost} | {p_params} | "
                     f"{at['macs'] / 1e9:.2f} G{att} | {p_macs} |")
    return "\n".join(lines)


def layers_table(results, top=6):
    """bench_layers: per thread count and model, the ``top`` convolutions by milliseconds lost
    to PyTorch (forward + backward), with each library's GFLOP/s, and all of them summed."""
    runs = _by_threads(results, "bench_layers_t")
    if not runs:
        return "(no per-layer timings yet: run `python benchmarks/bench_layers.py`)"

    def rows_of(data, t):
        lines = []
        for model in dict.fromkeys(r["model"] for r in data["rows"]):
            rows = [r for r in data["rows"] if r["model"] == model]
            for r in sorted(rows, key=lambda r: r["torch_s"] - r["minisegnet_s"])[:top]:
                geo = (f"{'x'.join(map(str, r['x']))}, {'x'.join(map(str, r['w']))}, s{r['stride'][0]}, "
                       f"d{r['dilation'][0]}" + (f", g{r['groups']}" if r["groups"] != 1 else ""))
                blas = f"{gflops(r, 'blas_s')}" if r.get("blas_s") else "-"
                lines.append(f"| {t} | {model} | {geo} | {1e3 * r['minisegnet_s']:.2f} | {1e3 * r['torch_s']:.2f} | "
                             f"{r['minisegnet_s'] / r['torch_s']:.2f} | {gflops(r, 'minisegnet_s')} / {blas} / "
                             f"{gflops(r, 'torch_s')} |")
            a, b = sum(r["minisegnet_s"] for r in rows), sum(r["torch_s"] for r in rows)
            lines.append(f"| {t} | {model} | *all {len(rows)} convolutions* | {1e3 * a:.1f} | {1e3 * b:.1f} | "
                         f"{a / b:.2f} | |")
        return lines

    def gflops(row, key):
        return f"{2 * row['macs'] / row[key] / 1e9:.0f}"
    return _thread_table(runs, ["| threads | model | convolution (input, weight, stride, dilation) | minisegnet ms | "
                                "PyTorch ms | ratio | GFLOP/s minisegnet / one BLAS call / PyTorch |",
                                "|---|---|---|---|---|---|---|"],
                         rows_of, lambda c: f"batch {c['batch']}, {c['size']}x{c['size']} input, median of "
                                            f"{c['repeats']}" + (f"x{c['block']}" if c.get("block", 1) > 1 else "")
                                            + " interleaved calls")


def gil_table(results):
    """gil_share: the share of a step with the GIL held, per thread count and model."""
    runs = _by_threads(results, "gil_share_t")
    if not runs:
        return "(no GIL shares yet: run `python benchmarks/gil_share.py --threads N --json`)"

    def largest(shares, n):
        return ", ".join(f"{k} {100 * v:.1f}%" for k, v in sorted(shares.items(), key=lambda kv: -kv[1])[:n])

    def rows_of(data, t):
        return [f"| {t} | {model} | {1e3 * r['step_s']:.0f} | {100 * r['total']:.0f}% ({100 * r['total_upper']:.0f}%) | "
                f"{100 * r['main']:.0f}% | {100 * r['workers']:.0f}% | {largest(r['where'], 4)} | "
                f"{largest(r['functions'], 2)} |" for model, r in data["models"].items()]
    return _thread_table(runs, ["| threads | model | ms per step | GIL held (upper bound) | main thread | pool threads | "
                                "main thread, by module | main thread, busiest functions |",
                                "|---|---|---|---|---|---|---|---|"],
                         rows_of, lambda c: f"{c['seconds']:g} s of steps per run, py-spy at {c['rate']} Hz")


def handoff_table(results):
    """handoff: the thread hand-off's cost, and what a second thread gains on element-wise
    work of growing size (minisegnet's pool against PyTorch's) and on a matrix product."""
    d = results.get("handoff")
    if not d:
        return "(no hand-off timings yet: run `python benchmarks/handoff.py`)"
    lines = ["| work | minisegnet 1 -> 2 threads, us | speedup | PyTorch 1 -> 2 threads, us | speedup |",
             "|---|---|---|---|---|"]
    for size, row in sorted(d["elementwise"].items(), key=lambda kv: int(kv[0])):
        cells = []
        for lib in ("minisegnet", "torch"):
            one, two = row[lib] if lib in row else (None, None)
            cells.append(f"{one:.0f} -> {two:.0f} | {one / two:.2f}x" if one else "- | -")
        lines.append(f"| a * b, {int(size):,} float32 values | " + " | ".join(cells) + " |")
    one, two = d["product_us"]
    lines.append(f"| matrix product {' x '.join(map(str, d['product_shape']))} | {one:.0f} -> {two:.0f} | "
                 f"{one / two:.2f}x | | |")
    idle = d.get("idle", {})
    waits = ", ".join(f"{k} = {v}" for k, v in idle.items()) or "not readable"
    return ("\n".join(lines) + f"\n\n- hand-off: a round trip between two Python threads through two locks "
            f"{d['lock_round_trip_us']:.0f} us; an empty `parallel_for` over 2 threads {d['parallel_for_us']:.0f} us"
            f"\n- idle cores: {waits}\n- {_when(d['machine'])}")


def grade_line(results):
    d = results.get("bench_grade")
    if not d:
        return "(no grading timing yet: run `python benchmarks/bench_grade.py`)"
    load = (f", load average {d['load_average']}" if "load_average" in d else "")
    when = f" on {d['date']}" if "date" in d else ""
    return (f"A generated class of {d['students']} students x {d['questions']} questions ({d['files_graded']} "
            f"files graded, {d['files'].get('missing', 0)} missing) took {d['wall_s']:.0f} s with `--jobs "
            f"{d['jobs']}` on {d['cpu_count']} cores{load}{when}: {d['per_file_s']:.2f} s per file.")


BLOCKS = {"goals": train_goals, "grade": grade_line, "zoo": zoo_table, "sizes": sizes_table, "train": train_table,
          "trainkept": lambda results: train_table(results, "bench_train_kept_t", "--keep-memory --threads N"),
          "ops": ops_table, "profile": profile_table, "trainrun": trainrun_table,
          "layers": layers_table, "gil": gil_table, "handoff": handoff_table}


def render(text, results):
    def fill(match):
        name = match.group(1)
        return f"<!-- bench:{name} -->\n{BLOCKS[name](results)}\n<!-- /bench:{name} -->"
    return re.sub(r"<!-- bench:(\w+) -->.*?<!-- /bench:\1 -->", fill, text, flags=re.S)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--check", action="store_true", help="only check that the blocks are up to date")
    args = p.parse_args(argv)
    results = read_results()
    stale = []
    for path in DOCS:
        with open(path) as f:
            text = f.read()
        new = render(text, results)
        if new != text:
            stale.append(path)
            if not args.check:
                with open(path + ".tmp", "w") as f:
                    f.write(new)
                os.replace(path + ".tmp", path)
    verb = "out of date" if args.check else "rewritten"
    print(f"{verb}: {', '.join(os.path.relpath(s) for s in stale) or 'none'}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
