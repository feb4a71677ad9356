"""Write the speed tables of README.md and benchmarks/README.md from benchmarks/results/*.json.

    python benchmarks/report.py            # rewrite every marked block
    python benchmarks/report.py --check    # exit 1 if a block is out of date (nothing written)

A block is the text between ``<!-- bench:NAME -->`` and ``<!-- /bench:NAME -->``; NAME is
``train`` (bench_train, every thread count), ``ops`` (bench_ops, every thread count) or
``profile`` (profile_step, the top ops of each model) or ``trainrun`` (time_train). Numbers are only ever copied from
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


def train_table(results):
    runs = sorted((k for k in results if k.startswith("bench_train_t")), key=_threads)
    if not runs:
        return "(no bench_train results yet: run `python benchmarks/bench_train.py --threads N`)"
    lines = ["| threads | model | minisegnet s/step | PyTorch s/step | time ratio | CPU-time ratio | "
             "peak memory ratio (MB ms / torch) |", "|---|---|---|---|---|---|---|"]
    notes = []
    for name in runs:
        data = results[name]
        t = data["config"]["threads"]
        for r in data["rows"]:
            mem = (f"{r['memory_ratio']:.2f} ({r['minisegnet_peak_bytes'] / 2**20:.0f} / "
                   f"{r['torch_peak_bytes'] / 2**20:.0f})" if "memory_ratio" in r else "-")
            lines.append(f"| {t} | {r['model']} | {r['minisegnet_s']:.3f} | {r['torch_s']:.3f} | "
                         f"{r['ratio']:.2f} | {r.get('cpu_ratio', float('nan')):.2f} | {mem} |")
        c = data["config"]
        notes.append(f"{t} thread(s): {c['batch']}x3x{c['size']}x{c['size']}, median of {c['repeats']} "
                     f"interleaved steps; {_when(data['machine'])}")
    return "\n".join(lines + [""] + [f"- {n}" for n in notes])


def ops_table(results):
    runs = sorted((k for k in results if k.startswith("bench_ops_t")), key=_threads)
    if not runs:
        return "(no bench_ops results yet: run `python benchmarks/bench_ops.py --threads N`)"
    out = []
    for name in runs:
        data = results[name]
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
    runs = sorted((k for k in results if k.startswith("profile_t")), key=_threads)
    if not runs:
        return "(no profile yet: run `python benchmarks/profile_step.py --threads N --json`)"
    out = []
    for name in runs:
        data = results[name]
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
    data = results.get("time_train")
    if not data:
        return "(no `minisegnet train` timings yet: run `python benchmarks/time_train.py --seeds 0,1,2`)"
    lines = ["| seed | wall time s | val mIoU |", "|---|---|---|"]
    lines += [f"| {r['seed']} | {r['wall_s']:.0f} | {r['val_mIoU']:.3f} |" for r in data["rows"]]
    return "\n".join(lines + ["", f"- `minisegnet train` with its defaults; {_when(data['machine'])}"])


BLOCKS = {"train": train_table, "ops": ops_table, "profile": profile_table, "trainrun": trainrun_table}


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
