"""The autograder behind ``minisegnet grade``: checks the exercises against the library.

Every exercise in ``exercises/`` is a small Python file with one marked region to fill in::

    # ---- YOUR CODE BEGINS ----
    raise NotImplementedError("q2_iou: ...")
    # ---- YOUR CODE ENDS ----

One job per module:

* :mod:`.question`  - what a question is (checks with points and hints, the answer key);
* :mod:`.questions` - the built-in questions, one module each;
* :mod:`.compare`   - comparing raw results with references, naming known mistakes;
* :mod:`.runner`    - the small program that runs the student's file (no checks in it);
* :mod:`.sandbox`   - the confined child process and the channel to it;
* :mod:`.engine`    - grading one file: sandbox + checks -> :class:`Result`;
* :mod:`.report`    - console lines, feedback text, JSON;
* :mod:`.classmode` - a whole class: gradebook, feedback files, summary;
* :mod:`.cli`       - ``minisegnet grade`` and ``check()`` for notebooks.

The student's file runs in a fresh interpreter that receives the inputs and sends back
raw results on a pipe; this process computes the references and decides. Use from the
command line (exit code 0 only at full marks)::

    minisegnet grade                          # every question in exercises/
    minisegnet grade exercises/q2_iou.py --json grades.json
    minisegnet grade --class submissions/ --out grades/

or from a notebook: ``from minisegnet.grading import check; check("q2")``.
"""
from .catalog import QUESTIONS, find_question, load_questions_from
from .classmode import grade_class
from .cli import add_arguments, check, cli, main
from .compare import as_array, compare, compare_modules, number
from .engine import DEFAULT_TIMEOUT, find_exercises, grade, grade_file
from .question import BEGIN_MARK, END_MARK, Check, CheckFailed, Question
from .report import CheckResult, Result, feedback_text, format_result, report, to_json
from .sandbox import DEFAULT_MEMORY

__all__ = ["BEGIN_MARK", "END_MARK", "DEFAULT_TIMEOUT", "DEFAULT_MEMORY", "QUESTIONS", "Question",
           "Check", "CheckFailed", "CheckResult", "Result", "find_question", "load_questions_from",
           "find_exercises", "grade_file", "grade", "grade_class", "format_result", "report",
           "feedback_text", "to_json", "check", "add_arguments", "cli", "main", "compare",
           "compare_modules", "as_array", "number"]
