"""Changes outside the YOUR CODE region: the student's file compared with the stub.

Only the region between the markers is the student's; the lines before and after it
are compared with the handed-out stub (trailing spaces and blank lines at the end
ignored) and every changed stretch is named by its lines in the student's file.
"""
import difflib

from .question import BEGIN_MARK, END_MARK


def _split(lines):
    """``(before, after, first_after_index)``, or None when the markers are not there once each."""
    marks = [i for i, line in enumerate(lines) if line.strip() in (BEGIN_MARK, END_MARK)]
    begins = [i for i in marks if lines[i].strip() == BEGIN_MARK]
    ends = [i for i in marks if lines[i].strip() == END_MARK]
    if len(begins) != 1 or len(ends) != 1 or ends[0] < begins[0]:
        return None
    return lines[:begins[0] + 1], lines[ends[0]:], ends[0]


def _ranges(numbers):
    numbers = sorted(set(numbers))
    out, start = [], None
    for i, n in enumerate(numbers):
        if start is None:
            start = n
        if i + 1 == len(numbers) or numbers[i + 1] != n + 1:
            out.append(f"line {start}" if start == n else f"lines {start}-{n}")
            start = None
    return out


def changes_outside_region(student_text, stub_text):
    """Descriptions of the changes outside the region (empty when there are none), e.g.
    ``['lines 40-44 changed outside the YOUR CODE region']``."""
    clean = lambda text: [line.rstrip() for line in text.rstrip().splitlines()]   # noqa: E731
    mine, theirs = _split(clean(student_text)), _split(clean(stub_text))
    if theirs is None:
        return []
    if mine is None:
        return ["the YOUR CODE markers were removed or duplicated"]
    changed, removed = [], 0
    for part, (m, s) in enumerate(zip(mine[:2], theirs[:2])):
        offset = 0 if part == 0 else mine[2]
        matcher = difflib.SequenceMatcher(a=s, b=m, autojunk=False)
        for tag, i1, i2, j1, j2 in matcher.get_opcodes():
            if tag == "equal":
                continue
            if j2 > j1:
                changed.extend(range(offset + j1 + 1, offset + j2 + 1))
            else:
                removed += i2 - i1
    notes = [f"{r} changed outside the YOUR CODE region" for r in _ranges(changed)]
    if removed:
        notes.append(f"{removed} line{'s' if removed > 1 else ''} of the stub removed outside the "
                     f"YOUR CODE region")
    return notes
