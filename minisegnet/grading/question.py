"""What a question is: named checks worth points, with hints, and the library's answer key.

A question lives in one module (``questions/q2_iou.py``, or an instructor's own file
loaded with ``--questions-from``) that defines ``QUESTION``::

    QUESTION = Question("q2_iou", "IoU of two binary masks", entries=("iou",),
                        answer_key=("minisegnet.metrics:iou",))

    @QUESTION.check("random 10x10 masks", hint="IoU = |A ∩ B| / |A ∪ B|")
    def random_masks(student, rng):
        a, b = rng.integers(0, 2, (2, 10, 10))
        compare(student.iou(a, b), metrics.iou(a, b), "iou(a, b)")

A check ``fn(student, rng)`` builds inputs from ``rng``, asks the student's process for
its results (``student.iou(a, b)`` runs there and returns raw arrays/numbers), computes
the reference here, in the grader, and raises :class:`CheckFailed` on a wrong answer.

``answer_key`` lists the library code that *is* the answer (``'module:attribute'``, or
``'module:*'`` for a whole module, module names may use ``*``): it is switched off in the
student's process while grading. ``stub`` is the exercise file handed out, to detect
changes outside the YOUR CODE region.
"""
import dataclasses
import pathlib

BEGIN_MARK = "# ---- YOUR CODE BEGINS ----"
END_MARK = "# ---- YOUR CODE ENDS ----"


class CheckFailed(AssertionError):
    """A check found a wrong answer; the message says what differed."""


@dataclasses.dataclass
class Check:
    """One named check: ``run(student, rng)`` raises :class:`CheckFailed` on a wrong answer;
    ``hint`` is shown with the failure."""
    name: str
    run: object
    hint: str
    points: int = 1


@dataclasses.dataclass
class Question:
    """An exercise: the student's file ``<name>.py`` must define every name in ``entries``."""
    name: str
    title: str
    entries: tuple
    answer_key: tuple = ()
    stub: object = None
    checks: list = dataclasses.field(default_factory=list)

    @property
    def key(self):
        """The short name, ``'q1'`` for ``'q1_aspp_forward'``."""
        return self.name.split("_")[0]

    @property
    def max_points(self):
        return sum(c.points for c in self.checks)

    @property
    def stub_path(self):
        """The handed-out exercise file, when it can be found."""
        if self.stub is None:
            return None
        path = pathlib.Path(self.stub)
        return path if path.is_file() else None

    def check(self, name, hint, points=1):
        """Decorator that appends a check ``fn(student, rng)`` to this question."""
        def register(fn):
            self.checks.append(Check(name, fn, hint, points))
            return fn
        return register
