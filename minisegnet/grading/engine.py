"""Grading one file: a sandboxed run of the student's code, the checks judged here.

:func:`grade_file` starts a :class:`~.sandbox.Sandbox` for the question, loads the
student's file there (with the question's answer key switched off), runs every check
(each asks the sandbox for raw results and compares them with references computed in
this process), and assembles a :class:`~.report.Result` listing every failed check.
"""
import dataclasses
import hashlib
import os
import pathlib

import numpy as np

from . import region, sandbox
from .catalog import QUESTIONS, find_question
from .question import CheckFailed, Question
from .report import CheckResult, Result

DEFAULT_TIMEOUT = 20.0
SEED_ENV = "MINISEGNET_GRADE_SEED"


def default_seed():
    """The secret seed: ``$MINISEGNET_GRADE_SEED`` (any text), else 0."""
    return parse_seed(os.environ.get(SEED_ENV, "0"))


def parse_seed(value):
    """A seed from an int or any text (text is hashed, so a passphrase works)."""
    if isinstance(value, int):
        return value
    text = str(value).strip()
    if text.isdigit():
        return int(text)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def describe_student_error(error, path, memory):
    """One line for the student from the runner's description of an exception."""
    kind, name = error.get("kind"), pathlib.Path(path).name
    text, line = error.get("message", ""), error.get("line")
    if kind == "not_implemented":
        return f"not implemented yet: fill in the region between the YOUR CODE markers in {name}"
    if kind == "answer_key":
        return text
    if kind == "memory":
        return (f"over the memory limit ({sandbox.format_bytes(memory)}): your code tried to "
                f"allocate more memory than allowed{f' (at {name} line {line})' if line else ''}")
    if kind == "exit":
        return f"your code called exit() ({text or 0}); return a value instead"
    if kind == "syntax":
        return f"SyntaxError: {text} (line {line})"
    if line is None:
        return f"the check stopped with {error.get('type')}: {text} (raised outside {name})"
    return f"your code raised {error.get('type')}: {text} (at {name} line {line})"


def _failed_all(question, path, message):
    return Result(question.name, str(path), 0, question.max_points, [
        CheckResult(c.name, 0, c.points, False, message, c.hint) for c in question.checks],
        error=message)


def grade_file(path, question=None, timeout=DEFAULT_TIMEOUT, seed=None, memory=sandbox.DEFAULT_MEMORY,
               strict=False, questions=None):
    """Grade one exercise file and return its :class:`~.report.Result`.

    Args:
        path: the student's file, e.g. ``exercises/q2_iou.py``.
        question: a :class:`Question` or its name; by default found from the file name.
        timeout: seconds allowed for all checks of the question together.
        seed: seeds the random inputs (default: ``$MINISEGNET_GRADE_SEED`` or 0).
        memory: the address-space limit of the student's process, in bytes.
        strict: a change outside the YOUR CODE region costs the whole question.
        questions: the catalogue to look ``question`` up in (default: the built-in ones).
    """
    path = pathlib.Path(path).resolve()
    if not isinstance(question, Question):
        question = find_question(question if question is not None else path.stem, questions)
    seed = default_seed() if seed is None else parse_seed(seed)
    if not path.is_file():
        return _failed_all(question, path, f"file not found: {path}")
    notes = []
    stub = question.stub_path
    if stub is not None:
        try:
            notes = region.changes_outside_region(path.read_text(encoding="utf-8", errors="replace"),
                                                  stub.read_text(encoding="utf-8"))
        except OSError:
            notes = []
    try:
        result = _run(question, path, seed, timeout, memory)
    except OSError as error:       # the grader could not start the sandbox
        return _failed_all(question, path, f"the grader could not run this file: {error}")
    result.notes = notes + result.notes
    if strict and notes:
        result.points = 0
        result.error = f"--strict: {notes[0]}; the question scores 0"
    return result


def _run(question, path, seed, timeout, memory):
    with sandbox.Sandbox(question.name, path, question.entries, question.answer_key,
                         timeout=timeout, memory=memory) as box:
        try:
            loaded = box.start()
        except sandbox.Stopped as stop:
            return _failed_all(question, path, f"could not load {path.name}: {stop}")
        if loaded.get("op") == "load_error":
            return _failed_all(question, path, f"could not load {path.name}: "
                               + describe_student_error(loaded["error"], path, memory))
        if loaded.get("missing"):
            return _failed_all(question, path, f"{path.name} defines no "
                               f"{', '.join(loaded['missing'])}; keep the names of the stub")
        student = sandbox.RemoteStudent(box)
        checks = []
        for i, check in enumerate(question.checks):
            rng = np.random.default_rng([seed, i])
            try:
                check.run(student, rng)
            except CheckFailed as failure:
                message = str(failure)
            except sandbox.StudentError as error:
                message = describe_student_error(error.error, path, memory)
            except sandbox.Stopped as stop:
                message = str(stop)
            except Exception as error:      # a result the check could not use
                message = f"the check stopped with {type(error).__name__}: {error}"
            else:
                checks.append(CheckResult(check.name, check.points, check.points, True, "", check.hint))
                continue
            checks.append(CheckResult(check.name, 0, check.points, False, message, check.hint))
        done = box.finish()
        notes = [f"the result channel had {p}" for p in dict.fromkeys(box.problems)]
        if not done and all(c.passed for c in checks):
            notes.append("the grading process did not send its final frame")
    points = sum(c.points for c in checks)
    if box.problems:
        points = 0          # someone wrote to the result channel who was not the runner
        checks = [_voided(c) for c in checks]
    return Result(question.name, str(path), points, question.max_points, checks, notes=notes)


def _voided(check):
    if not check.passed:
        return check
    return dataclasses.replace(check, points=0, passed=False,
                               message="forged frames on the result channel void this question")


def find_exercises(paths, questions=None):
    """Map ``paths`` (files or folders) to ``[(Question, file)]`` plus a list of problems.

    A folder contributes every question's file (``q2_iou.py``, or ``q2_*.py`` as a course
    site renames it); missing files are graded as 0. A file is matched by its name.
    """
    questions = QUESTIONS if questions is None else questions
    found, problems, seen = [], [], set()
    for raw in paths:
        p = pathlib.Path(raw)
        if p.is_dir():
            files, _ = match_folder(p, questions)
            if not any(f.is_file() for _, f in files):
                hint = ("; it holds folders: to grade one folder per student, use --class "
                        f"{p} --out DIR" if any(c.is_dir() for c in p.iterdir()) else "")
                problems.append(f"no exercise files (q1_aspp_forward.py, ...) in folder {p}{hint}")
                continue
        elif p.is_file():
            try:
                files = [(find_question(p.stem, questions), p)]
            except ValueError:
                problems.append(f"{p}: not an exercise file (known: {', '.join(questions)})")
                continue
        else:
            problems.append(f"no such file or folder: {p}")
            continue
        for q, f in files:
            key = f.resolve()
            if key not in seen:
                seen.add(key)
                found.append((q, f))
    return found, problems


def match_folder(folder, questions=None):
    """``([(Question, file)], unmatched)``: each question's file in ``folder`` (exact name
    first, else the first ``<key>_*.py``; a missing one as ``<name>.py``), and the ``.py``
    files that match no question."""
    questions = QUESTIONS if questions is None else questions
    files = sorted(p for p in folder.glob("*.py") if p.is_file())
    used, pairs = set(), []
    for q in questions.values():
        exact = folder / f"{q.name}.py"
        match = exact if exact.is_file() else next(
            (f for f in files if f.stem.startswith(q.key + "_") and f not in used), exact)
        used.add(match)
        pairs.append((q, match))
    unmatched = [f for f in files if f not in used]
    return pairs, unmatched


def grade(paths=("exercises",), timeout=DEFAULT_TIMEOUT, seed=None, memory=sandbox.DEFAULT_MEMORY,
          strict=False, questions=None):
    """Grade every exercise found in ``paths``; returns ``(results, problems)``."""
    found, problems = find_exercises(paths, questions)
    return [grade_file(f, q, timeout=timeout, seed=seed, memory=memory, strict=strict)
            for q, f in found], problems
