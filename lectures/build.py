"""Pair, check, execute and publish the lectures.

Each lecture has one source, ``lectures/0N_name.py`` in jupytext's percent format, paired
with an output-free ``lectures/0N_name.ipynb`` (the notebook's metadata names the pairing,
so ``jupytext --sync lectures/0N_name.ipynb`` works from either side)::

    python lectures/build.py                    # write every .ipynb from its .py (outputs stripped)
    python lectures/build.py --check            # exit 1 if a notebook and its source differ
    python lectures/build.py --html site/       # execute every lecture, write site/0N_name.html + index.html
    python lectures/build.py --html site/ 03    # only lectures whose file starts with 03
    python lectures/build.py --html site/ --jobs 2

Executing runs each notebook in ``lectures/`` with nbclient, the repository on
``PYTHONPATH``, ``MPLBACKEND=Agg`` and ``MINISEGNET_STATIC=1`` (sliders draw static figures,
so the pages show them).
"""
import argparse
import concurrent.futures
import html
import os
import pathlib
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
CELL_TIMEOUT = 600      # seconds per cell: a safety net against a hung kernel, not a budget


def sources(only=()):
    """The lecture sources ``lectures/0N_*.py``, optionally only those starting with one of ``only``."""
    found = sorted(HERE.glob("[0-9][0-9]_*.py"))
    return [p for p in found if not only or any(p.name.startswith(o) for o in only)]


def cells(nb):
    """What pairing compares: ``(cell_type, source)`` of every cell."""
    return [(c.cell_type, c.source.strip("\n")) for c in nb.cells]


def notebook(source):
    """The output-free notebook (an ``nbformat`` node) of one percent-format source, with
    cell ids derived from the file name and position so that rewriting an unchanged
    lecture leaves the ``.ipynb`` byte for byte the same."""
    import jupytext
    import nbformat
    nb = jupytext.read(source)
    stem = source.name[:2]
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"l{stem}-{i:03d}"
        cell.metadata = {}
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nb.metadata = {"jupytext": {"formats": "ipynb,py:percent"}, "kernelspec": dict(KERNELSPEC),
                   "language_info": {"name": "python"}}
    nb.nbformat, nb.nbformat_minor = 4, 5
    nbformat.validate(nb)
    return nb


def render(source):
    """The text of the ``.ipynb`` paired with ``source``."""
    import nbformat
    return nbformat.writes(notebook(source)) + "\n"


def stale(only=()):
    """Names of the notebooks that differ (in any cell's type or source) from their sources,
    or are missing."""
    import nbformat
    out = []
    for source in sources(only):
        path = source.with_suffix(".ipynb")
        if not path.is_file() or cells(nbformat.read(path, as_version=4)) != cells(notebook(source)):
            out.append(path.name)
    return out


def execute(path, timeout=CELL_TIMEOUT):
    """Run the notebook at ``path`` top to bottom; returns ``(executed notebook, seconds)``.
    A cell that raises raises ``nbclient.exceptions.CellExecutionError`` with its traceback."""
    import nbclient
    import nbformat
    nb = nbformat.read(path, as_version=4)
    env = {"MPLBACKEND": "Agg", "MINISEGNET_STATIC": "1",
           "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)              # the kernel inherits the environment of this process
    try:
        start = time.perf_counter()
        nbclient.NotebookClient(nb, timeout=timeout, kernel_name="python3",
                                resources={"metadata": {"path": str(HERE)}}).execute()
        return nb, time.perf_counter() - start
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def title(nb):
    """The first heading of a notebook (its first markdown cell's first line, without ``#``)."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            return cell.source.splitlines()[0].lstrip("# ").strip()
    return ""


def build_page(source, folder):
    """Execute one lecture and write ``folder/<name>.html``; returns ``(name, title, seconds)``."""
    import nbconvert
    nb, seconds = execute(source.with_suffix(".ipynb"))
    body, _ = nbconvert.HTMLExporter().from_notebook_node(nb)
    out = pathlib.Path(folder) / source.with_suffix(".html").name
    tmp = out.with_suffix(".html.tmp")
    tmp.write_text(body, encoding="utf-8")
    os.replace(tmp, out)
    return out.name, title(nb), seconds


def write_index(folder, pages):
    """``folder/index.html``: one link per lecture with the time it took to execute."""
    items = "\n".join(f'<li><a href="{html.escape(name)}">{html.escape(t)}</a> '
                      f'<small>(executed in {s:.0f} s)</small></li>' for name, t, s in pages)
    text = (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>minisegnet lectures</title></head>\n"
            f"<body><h1>minisegnet lectures</h1>\n<p>Executed on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
            f" with <code>python lectures/build.py --html</code>.</p>\n<ol>\n{items}\n</ol></body></html>\n")
    (pathlib.Path(folder) / "index.html").write_text(text, encoding="utf-8")


def main(argv=None):
    parser = argparse.ArgumentParser(description="Pair, check, execute and publish the lectures.")
    parser.add_argument("only", nargs="*", help="lecture numbers (file-name prefixes), e.g. 03 05; default all")
    parser.add_argument("--check", action="store_true", help="exit 1 if a notebook differs from its source")
    parser.add_argument("--html", metavar="DIR", help="execute the lectures and write HTML pages and an index to DIR")
    parser.add_argument("--jobs", type=int, default=1, help="lectures executed at once with --html (default 1)")
    args = parser.parse_args(argv)
    chosen = sources(args.only)
    if not chosen:
        print(f"build.py: no lecture matches {' '.join(args.only)!r}", file=sys.stderr)
        return 2
    if args.check:
        bad = stale(args.only)
        for name in bad:
            print(f"{name} differs from its source {name[:-6]}.py: run python lectures/build.py "
                  f"(or jupytext --sync lectures/{name})")
        return 1 if bad else 0
    if args.html:
        try:
            os.makedirs(args.html, exist_ok=True)
        except OSError as e:
            print(f"build.py: cannot create {args.html}: {e.strerror}", file=sys.stderr)
            return 1
        with concurrent.futures.ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            pages = list(pool.map(build_page, chosen, [args.html] * len(chosen)))
        for name, _, seconds in pages:
            print(f"{name}: executed in {seconds:.0f} s")
        write_index(args.html, pages)
        print(f"wrote {len(pages)} page(s) and index.html to {args.html}")
        return 0
    for source in chosen:
        path = source.with_suffix(".ipynb")
        text = render(source)
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
