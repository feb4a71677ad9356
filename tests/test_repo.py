"""Repository promises: the README's commands, CI running exactly the README's test command,
and the layering of DESIGN.md (each layer imports only from layers below it)."""
import ast
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]

# DESIGN.md's layers, lowest first.
RANK = {"backend": 0, "blas_env": 0, "fileio": 0, "kernels": 1, "tensor": 2, "autograd": 2, "random": 0, "functional": 3,
        "nn": 4, "optim": 4, "gradcheck": 4, "checkpoint": 5, "data": 5, "metrics": 5,
        "models": 6, "train": 7, "viz": 7, "predict": 7, "grading": 8, "cli": 9, "__main__": 9}


def readme_commands():
    text = (ROOT / "README.md").read_text()
    block = re.search(r"```bash\n(.*?)```", text, re.S).group(1)
    return [line.split("#")[0].strip() for line in block.strip().splitlines()]


def test_readme_opens_with_train_and_test_commands():
    main, tests = readme_commands()[:2]
    assert "minisegnet train" in main
    assert "pytest" in tests


def test_ci_runs_the_readme_test_command():
    tests = readme_commands()[1]
    assert tests in (ROOT / ".ci" / "run").read_text()


def _layer(parts):
    return next((RANK[p] for p in parts if p in RANK), None)


def test_imports_follow_the_layers():
    bad = []
    for f in (ROOT / "minisegnet").rglob("*.py"):
        rel = f.relative_to(ROOT / "minisegnet").with_suffix("").parts
        mine = _layer(rel)
        if mine is None:
            continue
        for node in ast.walk(ast.parse(f.read_text())):
            targets = []
            if isinstance(node, ast.ImportFrom) and node.level:
                base = list(rel[:-node.level])
                mod = base + (node.module.split(".") if node.module else [])
                targets = [mod] if node.module else [mod + [a.name] for a in node.names]
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("minisegnet."):
                targets = [node.module.split(".")[1:]]
            for t in targets:
                theirs = _layer(t)
                if theirs is not None and theirs > mine:
                    bad.append(f"{f.relative_to(ROOT)}:{node.lineno} imports {'.'.join(t)}")
    assert not bad, "imports that run upward against DESIGN.md's layers:\n" + "\n".join(bad)


def test_package_never_imports_torch_at_module_level():
    offenders = []
    for f in (ROOT / "minisegnet").rglob("*.py"):
        tree = ast.parse(f.read_text())
        for node in tree.body:       # module level only; functions may import it lazily
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            if any(n.split(".")[0] == "torch" for n in names):
                offenders.append(str(f.relative_to(ROOT)))
    assert not offenders, f"torch imported at module level in {offenders}"
