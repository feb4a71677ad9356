"""The questions the grader knows: the built-in ones (``questions/``) and an instructor's
own question modules (``--questions-from DIR``)."""
import importlib
import importlib.util
import pathlib
import sys

from .question import Question
from .questions import MODULES

QUESTIONS = {}
for _name in MODULES:
    _q = importlib.import_module(f"{__package__}.questions.{_name}").QUESTION
    QUESTIONS[_q.name] = _q


def load_questions_from(folder):
    """Import every ``*.py`` in ``folder`` that defines ``QUESTION`` and return those
    questions (a dict by name). The folder's own stubs (``<name>.py`` beside a question
    module) are not questions; a module whose ``QUESTION`` has no ``stub`` gets the file
    ``<folder>/stubs/<name>.py`` when there is one."""
    folder = pathlib.Path(folder)
    if not folder.is_dir():
        raise ValueError(f"--questions-from: no such folder: {folder}")
    found = {}
    for path in sorted(folder.glob("*.py")):
        name = f"_minisegnet_instructor_{path.stem}"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as error:
            raise ValueError(f"--questions-from: could not load {path}: "
                             f"{type(error).__name__}: {error}") from None
        question = getattr(module, "QUESTION", None)
        if not isinstance(question, Question):
            continue
        if question.stub is None and (folder / "stubs" / f"{question.name}.py").is_file():
            question.stub = folder / "stubs" / f"{question.name}.py"
        found[question.name] = question
    if not found:
        raise ValueError(f"--questions-from: no module in {folder} defines QUESTION")
    return found


def find_question(name, questions=None):
    """The :class:`Question` called ``name``: its full name (``'q2_iou'``), its key
    (``'q2'``) or a file name (``'q2_iou.py'``, ``'q2_anything.py'``)."""
    questions = QUESTIONS if questions is None else questions
    stem = pathlib.Path(str(name)).stem
    for q in questions.values():
        if stem in (q.name, q.key):
            return q
    for q in questions.values():
        if stem.startswith(q.key + "_"):
            return q
    raise ValueError(f"unknown question {name!r}; known questions: {', '.join(questions)}")
