"""Class-mode grading speed: a generated class of students x questions, graded end to end.

Each student's folder gets a mix of files, the way a real class looks: most answers right
(the answers of tests/grading_answers.py), some stubs left untouched, some wrong (a slip
from the same file), some files missing. The whole class is graded with
``minisegnet grade --class`` semantics (one sandboxed process per file, ``--jobs`` at a
time) and the wall time is written to ``benchmarks/results/bench_grade.json``::

    python benchmarks/bench_grade.py                    # 30 students x 10 questions
    python benchmarks/bench_grade.py --students 6 --quick
    minisegnet bench grade --quick                      # the same through the CLI

Target: 30 students x 10 questions in at most 2 minutes on 2 CPU cores.
"""
import argparse
import json
import os
import pathlib
import platform
import sys
import tempfile
import time

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from grading_answers import ANSWERS, EXERCISES, fill  # noqa: E402
from minisegnet import grading  # noqa: E402


def make_class(root, n_students, rng):
    """``n_students`` folders, each with one file per question: right (70%), untouched
    stub (10%), wrong (10%: the answer with its last line dropped) or missing (10%)."""
    kinds = {"right": 0, "stub": 0, "wrong": 0, "missing": 0}
    for s in range(n_students):
        folder = root / f"student{s:03d}"
        folder.mkdir()
        for name in grading.QUESTIONS:
            kind = rng.choice(list(kinds), p=[0.7, 0.1, 0.1, 0.1])
            kinds[kind] += 1
            if kind == "right":
                text = fill(name, ANSWERS[name])
            elif kind == "wrong":
                text = fill(name, "\n".join(ANSWERS[name].strip("\n").splitlines()[:-1]) or "pass")
            elif kind == "stub":
                text = (EXERCISES / f"{name}.py").read_text()
            else:
                continue
            (folder / f"{name}.py").write_text(text)
    return kinds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--students", type=int, default=30)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--quick", action="store_true", help="6 students")
    parser.add_argument("--out", default=str(HERE / "results" / "bench_grade.json"))
    args = parser.parse_args(argv)
    n = 6 if args.quick else args.students
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        root = pathlib.Path(tmp)
        (root / "subs").mkdir()
        kinds = make_class(root / "subs", n, rng)
        start = time.perf_counter()
        with open(os.devnull, "w") as quiet:
            results = grading.grade_class(root / "subs", root / "out", dict(grading.QUESTIONS),
                                          jobs=args.jobs, seed=1, stream=quiet, progress_stream=quiet)
        seconds = time.perf_counter() - start
    files = sum(k for kind, k in kinds.items() if kind != "missing")
    record = {"students": n, "questions": len(grading.QUESTIONS), "files_graded": files,
              "files": kinds, "jobs": args.jobs, "cpu_count": os.cpu_count(),
              "wall_s": round(seconds, 2), "per_file_s": round(seconds / max(1, files), 3),
              "mean_total": float(np.mean([sum(r.points for r in rs) for rs in results.values()])),
              "python": platform.python_version(), "machine": platform.machine()}
    if hasattr(os, "getloadavg"):        # the load during the run: an upper bound when others shared the cores
        record["load_average"] = round(os.getloadavg()[0], 2)
    record["date"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = out.with_name(out.name + ".tmp")
    tmp_out.write_text(json.dumps(record, indent=2) + "\n")
    os.replace(tmp_out, out)
    print(f"graded {n} students x {len(grading.QUESTIONS)} questions ({files} files) with "
          f"--jobs {args.jobs} in {seconds:.1f} s ({seconds / max(1, files):.2f} s per file); "
          f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
