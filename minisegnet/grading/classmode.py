"""Class mode: grade a folder of submissions, one folder per student.

``SUBMISSIONS/<student>/q2_iou.py`` (or ``q2_*.py``, as a course site renames it) is
``<student>``'s answer to Q2. Every (student, question) pair is graded in its own
sandbox, ``jobs`` at a time; a missing file scores 0 of the question's full maximum, and
a hostile file costs only its own question. Written into ``OUT``:

* ``gradebook.csv``: one row per student: ``student``, one column per question, ``total``, ``max``;
* ``feedback/<student>.txt``: per question the points and every failed check with its hint;
* ``results.json``: everything, one record per student and question.
"""
import concurrent.futures
import csv
import io
import json
import os
import pathlib
import statistics
import sys
import threading

from ..fileio import atomic_write
from . import engine
from .report import CheckResult, Result, feedback_text, result_record


def _atomic_write(path, text):
    with atomic_write(path, "w", encoding="utf-8") as f:
        f.write(text)


def _missing(question, folder):
    message = f"file not found: no {question.name}.py (or {question.key}_*.py) in {folder.name}/"
    return Result(question.name, str(folder / f"{question.name}.py"), 0, question.max_points,
                  [CheckResult(c.name, 0, c.points, False, message, c.hint) for c in question.checks],
                  error=message)


class Progress:
    """A one-line progress bar on ``stream`` (redrawn in place on a terminal, every tenth
    step otherwise)."""

    def __init__(self, total, stream, width=30):
        self.total, self.stream, self.width, self.done = total, stream, width, 0
        self.tty = hasattr(stream, "isatty") and stream.isatty()
        self.lock = threading.Lock()

    def step(self):
        with self.lock:
            self.done += 1
            if not self.tty and self.done % max(1, self.total // 10) and self.done != self.total:
                return
            filled = self.width * self.done // max(1, self.total)
            line = f"grading [{'#' * filled}{'.' * (self.width - filled)}] {self.done}/{self.total} files"
            print(("\r" if self.tty else "") + line, end="" if self.tty else "\n", file=self.stream,
                  flush=True)
            if self.tty and self.done == self.total:
                print(file=self.stream)


def grade_class(submissions, out, questions, jobs=None, timeout=engine.DEFAULT_TIMEOUT, seed=None,
                memory=None, strict=False, stream=None, progress_stream=None):
    """Grade every student folder in ``submissions`` on ``questions`` (a dict by name) and
    write the gradebook, the feedback files and ``results.json`` into ``out``.

    Returns ``{student: [Result, ...]}``. Raises ``ValueError`` when there is nothing to
    grade and ``OSError`` when ``out`` cannot be written.
    """
    stream = stream or sys.stdout
    progress_stream = progress_stream or sys.stderr
    submissions, out = pathlib.Path(submissions), pathlib.Path(out)
    if not submissions.is_dir():
        raise ValueError(f"--class: no such folder: {submissions}")
    students = sorted(p for p in submissions.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not students:
        raise ValueError(f"--class: no student folders in {submissions}")
    (out / "feedback").mkdir(parents=True, exist_ok=True)
    memory = memory or engine.sandbox.DEFAULT_MEMORY
    jobs = max(1, jobs or os.cpu_count() or 1)

    tasks, unmatched, results = [], {}, {}
    for folder in students:
        pairs, extra = engine.match_folder(folder, questions)
        unmatched[folder.name] = [f.name for f in extra]
        results[folder.name] = [None] * len(pairs)
        for i, (q, f) in enumerate(pairs):
            if f.is_file():
                tasks.append((folder.name, i, q, f))
            else:
                results[folder.name][i] = _missing(q, folder)

    bar = Progress(len(tasks), progress_stream)

    def run(task):
        student, i, q, f = task
        try:
            result = engine.grade_file(f, q, timeout=timeout, seed=seed, memory=memory, strict=strict)
        except Exception as error:          # never let one file stop the class
            message = f"the grader failed on this file: {type(error).__name__}: {error}"
            result = Result(q.name, str(f), 0, q.max_points, [
                CheckResult(c.name, 0, c.points, False, message, c.hint) for c in q.checks], error=message)
        results[student][i] = result
        bar.step()

    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        list(pool.map(run, tasks))

    names = list(questions)
    table = io.StringIO()
    writer = csv.writer(table, lineterminator="\n")
    writer.writerow(["student"] + names + ["total", "max"])
    for student, rs in results.items():
        writer.writerow([student] + [r.points for r in rs] + [sum(r.points for r in rs),
                                                              sum(r.max_points for r in rs)])
    _atomic_write(out / "gradebook.csv", table.getvalue())
    for student, rs in results.items():
        text = feedback_text(rs, title=f"{student}: {sum(r.points for r in rs)}/"
                                       f"{sum(r.max_points for r in rs)}")
        if unmatched[student]:
            text += f"files that match no question: {', '.join(unmatched[student])}\n"
        _atomic_write(out / "feedback" / f"{student}.txt", text)
    record = {"questions": [{"name": q.name, "title": q.title, "max_points": q.max_points}
                            for q in questions.values()],
              "students": [{"student": s, "total": sum(r.points for r in rs),
                            "max": sum(r.max_points for r in rs), "unmatched_files": unmatched[s],
                            "questions": [result_record(r) for r in rs]}
                           for s, rs in results.items()]}
    _atomic_write(out / "results.json", json.dumps(record, indent=1) + "\n")
    summary(results, questions, stream)
    return results


def summary(results, questions, stream):
    """Per question: mean, median and how many students got full marks; then the students
    whose files could not be loaded."""
    width = max(len(n) for n in questions)
    print(f"{'question':<{width}}  {'mean':>6}  {'median':>6}  full marks", file=stream)
    for i, (name, q) in enumerate(questions.items()):
        points = [rs[i].points for rs in results.values()]
        full = sum(p == q.max_points for p in points)
        print(f"{name:<{width}}  {statistics.mean(points):>6.2f}  {statistics.median(points):>6g}  "
              f"{full}/{len(points)} (of {q.max_points})", file=stream)
    broken = sorted({s for s, rs in results.items() for r in rs
                     if r.error and r.error.startswith("could not load")})
    print(f"files that could not be loaded: {', '.join(broken) if broken else 'none'}", file=stream)
    print(f"graded {len(results)} students", file=stream)
