"""The command line: ``minisegnet grade`` (one student's files, or ``--class``) and
``check()`` for the lecture notebooks."""
import argparse
import contextlib
import json
import os
import pathlib
import sys

from ..fileio import atomic_write, describe_os_error
from . import classmode, engine, sandbox
from .catalog import QUESTIONS, find_question, load_questions_from
from .report import format_result, report, to_json


def parse_memory(text):
    """``'2G'``, ``'512M'``, ``'1.5GiB'`` or a number of bytes -> bytes."""
    value = str(text).strip().upper().removesuffix("IB").removesuffix("B")
    scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(value[-1:], 1)
    try:
        n = float(value[:-1] if scale > 1 else value) * scale
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a size like 2G or 512M, got {text!r}") from None
    if n < 64 << 20:
        raise argparse.ArgumentTypeError(f"a memory limit under 64M leaves no room for Python, got {text!r}")
    return int(n)


def _positive(text):
    try:
        value = float(text)
    except ValueError:
        value = -1
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _jobs(text):
    if not str(text).isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return int(text)


def add_arguments(parser):
    """Add ``grade``'s arguments to an ``argparse`` parser (used by ``minisegnet grade``)."""
    parser.add_argument("paths", nargs="*", default=[], metavar="PATH",
                        help="exercise files or folders to grade (default: the exercises/ folder "
                             "in the working directory or the nearest one above it)")
    parser.add_argument("--json", metavar="FILE", default=None,
                        help="also write the results as JSON to FILE")
    parser.add_argument("--timeout", type=_positive, default=None, metavar="SECONDS",
                        help=f"time limit per question (default {engine.DEFAULT_TIMEOUT:g})")
    parser.add_argument("--seed", default=None, metavar="SEED",
                        help=f"seed of the random test inputs, a number or any text (default: "
                             f"${engine.SEED_ENV}, else 0)")
    parser.add_argument("--memory", type=parse_memory, default=None, metavar="SIZE",
                        help="memory limit per question, e.g. 2G (default) or 512M")
    parser.add_argument("--strict", action="store_true",
                        help="a change outside the YOUR CODE region costs the question")
    parser.add_argument("--class", dest="class_dir", metavar="SUBMISSIONS", default=None,
                        help="grade a class: one folder per student inside SUBMISSIONS")
    parser.add_argument("--out", metavar="DIR", default=None,
                        help="with --class: where gradebook.csv, feedback/ and results.json go")
    parser.add_argument("--questions", metavar="NAMES", default=None,
                        help="comma-separated questions to grade (e.g. q1_aspp_forward,q2)")
    parser.add_argument("--jobs", type=_jobs, default=None, metavar="N",
                        help="with --class: files graded at once (default: the CPU count)")
    parser.add_argument("--questions-from", metavar="DIR", default=None,
                        help="also load an instructor's question modules from DIR")
    return parser


def _err(message):
    print(f"minisegnet grade: {message}", file=sys.stderr)


def _catalogue(args):
    """The questions to grade: built-in plus ``--questions-from``, cut to ``--questions``."""
    questions = dict(QUESTIONS)
    if getattr(args, "questions_from", None):
        questions.update(load_questions_from(args.questions_from))
    wanted = getattr(args, "questions", None)
    if wanted:
        chosen = [find_question(n.strip(), questions) for n in wanted.split(",") if n.strip()]
        questions = {q.name: q for q in chosen}
    return questions


def cli(args):
    """Run ``minisegnet grade`` with parsed ``args``. Returns the exit code: 0 at full marks
    (or a class graded), 1 otherwise, 2 when nothing could be graded or written."""
    try:
        return _cli(args)
    except BrokenPipeError:                 # e.g. `minisegnet grade | head -1`
        with contextlib.suppress(OSError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        return 1


def _cli(args):
    timeout = getattr(args, "timeout", None) or engine.DEFAULT_TIMEOUT
    seed = getattr(args, "seed", None)
    seed = engine.default_seed() if seed is None else engine.parse_seed(seed)
    memory = getattr(args, "memory", None) or sandbox.DEFAULT_MEMORY
    strict = bool(getattr(args, "strict", False))
    try:
        questions = _catalogue(args)
    except ValueError as error:
        _err(str(error))
        return 2
    class_dir = getattr(args, "class_dir", None)
    if class_dir is not None:
        if not getattr(args, "out", None):
            _err("--class needs --out DIR (where the gradebook goes)")
            return 2
        try:
            classmode.grade_class(class_dir, args.out, questions, jobs=getattr(args, "jobs", None),
                                  timeout=timeout, seed=seed, memory=memory, strict=strict)
        except ValueError as error:
            _err(str(error))
            return 2
        except OSError as error:
            _err(describe_os_error(error))
            return 2
        sys.stdout.flush()
        return 0
    paths = list(getattr(args, "paths", None) or [_find_exercises_dir(fallback=False) or "exercises"])
    found, problems = engine.find_exercises(paths, questions)
    results = [engine.grade_file(f, q, timeout=timeout, seed=seed, memory=memory, strict=strict)
               for q, f in found]
    for problem in problems:
        _err(problem)
    if results:
        report(results)
        sys.stdout.flush()
    json_path = getattr(args, "json", None)
    if json_path:
        try:
            with atomic_write(json_path, "w", encoding="utf-8") as f:
                f.write(json.dumps(to_json(results), indent=2) + "\n")
        except OSError as error:
            _err(describe_os_error(error, path=json_path))
            return 2
    if not results or problems:
        return 2 if not results else 1
    return 0 if all(r.complete for r in results) else 1


def main(argv=None):
    """``python -m minisegnet.grading [PATH ...] [options]``; returns the exit code."""
    parser = argparse.ArgumentParser(prog="minisegnet grade",
                                     description="Grade the exercises against the library.")
    return cli(add_arguments(parser).parse_args(argv))


def _find_exercises_dir(fallback=True):
    """``exercises/`` in the working directory or the nearest folder above it (notebooks
    run in ``lectures/``); else, with ``fallback``, the one next to the package (None without)."""
    here = pathlib.Path.cwd()
    for folder in (here, *here.parents):
        if (folder / "exercises").is_dir():
            return folder / "exercises"
    return pathlib.Path(__file__).resolve().parents[2] / "exercises" if fallback else None


def check(name, path=None, timeout=engine.DEFAULT_TIMEOUT):
    """Grade one question and print its result line; True at full marks.

    For lecture notebooks: after completing ``exercises/q2_iou.py``, run ``check("q2")``.
    ``path`` is the file to grade (or a folder holding it); by default the ``exercises``
    folder is found from the working directory.
    """
    question = find_question(name)
    path = pathlib.Path(path) if path is not None else _find_exercises_dir()
    if path.is_dir():
        path = path / f"{question.name}.py"
    result = engine.grade_file(path, question, timeout=timeout)
    print(format_result(result, width=len(question.name)))
    return result.complete
