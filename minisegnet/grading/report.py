"""Results and how they are shown: the console line, the feedback text, the JSON record."""
import dataclasses
import sys


@dataclasses.dataclass
class CheckResult:
    """One check's outcome; ``message`` says what went wrong (empty when passed)."""
    name: str
    points: int
    max_points: int
    passed: bool
    message: str = ""
    hint: str = ""


@dataclasses.dataclass
class Result:
    """The outcome of grading one question file.

    ``error`` is set when the file could not be graded at all (missing, does not load,
    names missing); ``notes`` are remarks that do not cost points (unless ``--strict``
    made a change outside the region cost the question).
    """
    name: str
    file: str
    points: int
    max_points: int
    checks: list = dataclasses.field(default_factory=list)
    error: object = None
    notes: list = dataclasses.field(default_factory=list)

    @property
    def passed(self):
        return [c.name for c in self.checks if c.passed]

    @property
    def failures(self):
        return [c for c in self.checks if not c.passed]

    @property
    def failed(self):
        """The name of the first failed check, or None."""
        failures = self.failures
        return failures[0].name if failures else None

    @property
    def complete(self):
        return self.points == self.max_points and self.failed is None and self.error is None

    @property
    def message(self):
        """One line: the error, the first failure with its hint, or 'all checks passed'."""
        if self.error:
            return self.error
        failures = self.failures
        if not failures:
            return "all checks passed" if self.points == self.max_points else "; ".join(self.notes)
        first = failures[0]
        if first.message.startswith("not implemented"):
            return first.message
        return f"check '{first.name}': {first.message} Hint: {first.hint}"


def format_result(result, width=20):
    """``'q2_iou               3/5  check 'boolean masks': ... Hint: ...'`` (one line)."""
    score = f"{result.points}/{result.max_points}"
    return f"{result.name:<{width}} {score:>5}  {result.message.replace(chr(10), ' ')}"


def report(results, stream=None):
    """Print one line per question and the total to ``stream`` (default stdout)."""
    stream = stream or sys.stdout
    width = max([len(r.name) for r in results] + [5])
    for r in results:
        print(format_result(r, width), file=stream)
    total, possible = sum(r.points for r in results), sum(r.max_points for r in results)
    print("-" * (width + 8), file=stream)
    done = "  all questions complete" if results and total == possible else ""
    print(f"{'total':<{width}} {f'{total}/{possible}':>5}{done}", file=stream)


def feedback_text(results, title=None):
    """The feedback for one student: per question the points, every failed check with its
    message and hint, and the notes."""
    lines = [title, "=" * len(title), ""] if title else []
    for r in results:
        lines.append(f"{r.name}: {r.points}/{r.max_points}")
        if r.error:
            lines.append(f"  {r.error}")
        for c in r.failures:
            if c.message == r.error:
                continue
            lines.append(f"  FAILED '{c.name}': {c.message}")
            if c.hint and not c.message.startswith("not implemented"):
                lines.append(f"    Hint: {c.hint}")
        for note in r.notes:
            lines.append(f"  Note: {note}")
        if r.complete:
            lines.append("  all checks passed")
        lines.append("")
    total, possible = sum(r.points for r in results), sum(r.max_points for r in results)
    lines.append(f"total: {total}/{possible}")
    return "\n".join(lines) + "\n"


def result_record(r):
    """One question's JSON record (every check, passed or not)."""
    return {"name": r.name, "file": r.file, "points": r.points, "max_points": r.max_points,
            "passed": r.passed, "failed": r.failed, "message": r.message, "error": r.error,
            "notes": list(r.notes),
            "checks": [dataclasses.asdict(c) for c in r.checks]}


def to_json(results):
    """The gradebook record: the total and, per question, points, checks and messages."""
    return {"total": sum(r.points for r in results),
            "max_total": sum(r.max_points for r in results),
            "questions": [result_record(r) for r in results]}
