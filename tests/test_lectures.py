"""The lecture notebooks: they match their source and run top to bottom without an error.

* ``test_notebook_runs`` executes one notebook of ``lectures/`` per test (parametrised, so
  ``pytest -n auto`` runs them in parallel) with nbclient on the ``python3`` kernel, which
  jupyter_client starts with the interpreter running the tests. The kernel runs in
  ``lectures/`` (as in Jupyter), with ``MPLBACKEND=Agg`` and the repository on
  ``PYTHONPATH``. Any cell that raises fails the test with that cell's traceback. Marked
  ``slow`` but run by default: the notebooks are part of what CI checks. There is no timed
  assertion; the per-cell timeout is only a safety net against a hung kernel.
* The fast tests check that every committed ``.ipynb`` is exactly what
  ``lectures/build_notebooks.py`` writes (so nobody edits a notebook and the source
  drifts), that notebooks are committed without outputs, that each one seeds the library,
  and that the index in ``lectures/README.md`` lists them all.
"""
import importlib.util
import os
import pathlib

import pytest

nbformat = pytest.importorskip("nbformat", reason="nbformat is needed for the lecture tests (pip install -e '.[test]')")

ROOT = pathlib.Path(__file__).resolve().parents[1]
LECTURES = ROOT / "lectures"
NOTEBOOKS = sorted(LECTURES.glob("[0-9][0-9]_*.ipynb"))
CELL_TIMEOUT = 300          # seconds per cell: only a safety net, notebooks take about a minute in all


def _builder():
    spec = importlib.util.spec_from_file_location("build_notebooks", LECTURES / "build_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_there_are_seven_lectures():
    assert [p.name[:2] for p in NOTEBOOKS] == ["01", "02", "03", "04", "05", "06", "07"]


def test_notebooks_are_what_the_builder_writes():
    builder = _builder()
    assert sorted(builder.LECTURES) == [p.name for p in NOTEBOOKS], \
        "lectures/ and build_notebooks.py disagree on the list of notebooks"
    stale = [p.name for p in NOTEBOOKS if p.read_text(encoding="utf-8") != builder.render(p.name)]
    assert not stale, (f"{stale} differ from lectures/build_notebooks.py: edit the builder, then run "
                       f"python lectures/build_notebooks.py")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_committed_clean_and_seeded(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code), f"{path.name} has outputs"
    assert "ms.manual_seed(0)" in code[0].source, f"{path.name}: the first code cell must seed the library"
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# Lecture")


def test_quiz_cells_are_where_the_syllabus_puts_them():
    sources = {p.name[:2]: "\n".join(c.source for c in nbformat.read(p, as_version=4).cells) for p in NOTEBOOKS}
    assert 'check("q1")' in sources["05"]
    assert 'check("q2")' in sources["06"] and 'check("q3")' in sources["06"]
    every = "\n".join(sources.values())
    missing = [f"q{k}" for k in range(1, 11) if f'check("q{k}")' not in every]
    assert not missing, f"no lecture points to exercises {missing}"


def test_readme_indexes_every_notebook():
    index = (LECTURES / "README.md").read_text(encoding="utf-8")
    missing = [p.name for p in NOTEBOOKS if p.name not in index]
    assert not missing, f"lectures/README.md does not list {missing}"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path, monkeypatch):
    nbclient = pytest.importorskip("nbclient", reason="nbclient is needed to run the notebooks (pip install -e '.[test]')")
    pytest.importorskip("ipykernel", reason="ipykernel is needed to run the notebooks (pip install -e '.[test]')")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, kernel_name="python3", timeout=CELL_TIMEOUT,
                                     resources={"metadata": {"path": str(LECTURES)}})
    client.execute()        # raises CellExecutionError (with the cell and its traceback) on any error
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
