"""Regenerate ``_cupy_api.py``: CuPy's public names and call signatures, read from CuPy's source.

Usage (``CUPY_REPO`` is a git clone of https://github.com/cupy/cupy with its tags)::

    python tests/cupy_standin/make_api_table.py CUPY_REPO v13.6.0 v14.2.0 > tests/cupy_standin/_cupy_api.py

For each tag it reads ``cupy/__init__.py`` (every ``from cupy.x import name`` and top-level
``def``), follows each import to the module that defines the name (``.py`` parsed with
``ast``; ``.pyx`` by a regular expression over ``def``/``cpdef`` lines) and writes the
parameter list; names that are ufunc objects get the ufunc calling convention; names CuPy
borrows from NumPy (dtypes, constants) are listed as such. It also reads the methods and
properties of ``cupy._core.core._ndarray_base``. The stand-in allows a name only if *every*
given tag has it and a call only if it binds to *every* tag's signature, so code that runs
on the stand-in runs on all those CuPy versions (CuPy 13 lacks ``put_along_axis``, for one).
"""
import ast
import re
import subprocess
import sys


def show(repo, tag, path):
    try:
        return subprocess.run(["git", "-C", repo, "show", f"{tag}:{path}"], check=True,
                              capture_output=True, text=True).stdout
    except subprocess.CalledProcessError:
        return None


def module_source(repo, tag, module):
    base = module.replace(".", "/")
    for path in (base + ".py", base + ".pyx", base + "/__init__.py"):
        text = show(repo, tag, path)
        if text is not None:
            return path, text
    return None, None


def split_params(text):
    """Split a parameter list at top-level commas."""
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return [p.strip() for p in parts if p.strip()]


def compact_pyx_params(text):
    """``int axis=-1, *, bint keepdims=False`` -> ``axis=, *, keepdims=`` (types dropped)."""
    out = []
    for p in split_params(re.sub(r"#[^\n]*", "", text)):
        if p in ("*", "/"):
            out.append(p)
            continue
        star = "**" if p.startswith("**") else "*" if p.startswith("*") else ""
        p = p.lstrip("*")
        name_part, eq, _ = p.partition("=")
        name = re.findall(r"\w+", name_part.split(":")[0])[-1]
        out.append(star + name + ("=" if eq else ""))
    return ", ".join(out)


def compact_ast_args(args):
    out = []
    posonly = list(getattr(args, "posonlyargs", []))
    positional = posonly + list(args.args)
    first_default = len(positional) - len(args.defaults)
    for i, a in enumerate(positional):
        out.append(a.arg + ("=" if i >= first_default else ""))
        if posonly and i == len(posonly) - 1:
            out.append("/")
    if args.vararg:
        out.append("*" + args.vararg.arg)
    elif args.kwonlyargs:
        out.append("*")
    for a, d in zip(args.kwonlyargs, args.kw_defaults):
        out.append(a.arg + ("=" if d is not None else ""))
    if args.kwarg:
        out.append("**" + args.kwarg.arg)
    if out and out[0] in ("self", "cls"):
        out = out[1:]
    return ", ".join(out)


PYX_DEF = re.compile(r"^(?P<indent>[ \t]*)(?:cpdef|def)\s+(?:[\w.\[\]]+\s+)*?(?P<name>\w+)\s*\((?P<params>.*?)\)\s*(?:except[^:]*)?:",
                     re.S | re.M)


def find_definition(repo, tag, module, name, depth=0):
    """Return ('function', params) / ('ufunc', None) / ('object', None) / None for module.name."""
    if depth > 4:
        return None
    path, text = module_source(repo, tag, module)
    if text is None:
        return None
    if path.endswith(".py"):
        tree = ast.parse(text)
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name == name:
                return ("function", compact_ast_args(node.args))
            if isinstance(node, ast.ClassDef) and node.name == name:
                return ("object", None)
            if isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                if any(isinstance(t, ast.Name) and t.id == name for t in targets):
                    src = ast.get_source_segment(text, node.value) or ""
                    if "ufunc" in src or "_core." in src or "create_" in src:
                        return ("maybe_ufunc", None)
                    return ("object", None)
            if isinstance(node, ast.ImportFrom):
                for alias in node.names:
                    if (alias.asname or alias.name) == name:
                        target = node.module if node.level == 0 else _resolve_relative(module, node)
                        found = find_definition(repo, tag, target, alias.name, depth + 1)
                        return found or ("object", None)
        return None
    for m in PYX_DEF.finditer(text):
        if m.group("name") == name and m.group("indent") == "":
            return ("function", compact_pyx_params(m.group("params")))
    if re.search(rf"^(?:cdef\s+class|class)\s+{name}\b", text, re.M):
        return ("object", None)
    if re.search(rf"^(?:cdef\s+\w+\s+)?{name}\s*=", text, re.M):
        return ("maybe_ufunc", None)
    return None


def _resolve_relative(module, node):
    parts = module.split(".")
    base = parts[: len(parts) - node.level + (1 if module.endswith("__init__") else 0)]
    return ".".join(base + ([node.module] if node.module else []))


def ndarray_members(repo, tag):
    text = show(repo, tag, "cupy/_core/core.pyx")
    start = text.index("cdef class _ndarray_base")
    end = text.index("\ncdef ", start + 10) if "\ncdef " in text[start + 10:] else len(text)
    body = text[start:end]
    methods, props = {}, set()
    for m in PYX_DEF.finditer(body):
        if m.group("indent") != "    ":
            continue
        name = m.group("name")
        before = body[:m.start()].rstrip().splitlines()[-1].strip()
        if before.startswith("@property") or before.startswith("@") and "setter" in before:
            props.add(name)
            continue
        if name.startswith("_") and not (name.startswith("__") and name.endswith("__")):
            continue
        params = m.group("params")
        params = re.sub(r"^\s*self\s*,?", "", params)
        methods[name] = compact_pyx_params(params)
    for m in re.finditer(r"^    (?:property|cdef\s+readonly\s+\w+|cdef\s+public\s+\w+)\s+(\w+)", body, re.M):
        props.add(m.group(1))
    pxd = show(repo, tag, "cupy/_core/core.pxd") or ""
    props.update(re.findall(r"^\s+readonly\s+[\w.]+\s+(\w+)\s*$", pxd, re.M))
    return methods, sorted(p for p in props if not p.startswith("_"))


def top_level(repo, tag):
    import numpy
    text = show(repo, tag, "cupy/__init__.py")
    tree = ast.parse(text)
    names = {}

    def visit(body):
        for node in body:
            if isinstance(node, (ast.If, ast.Try)):
                visit(node.body)
                continue
            if isinstance(node, ast.ImportFrom) and node.level == 0:
                for alias in node.names:
                    public = alias.asname or alias.name
                    if public.startswith("_") or alias.name == "*":
                        continue
                    if node.module == "numpy":
                        names[public] = ("numpy", None)
                        continue
                    found = find_definition(repo, tag, node.module, alias.name)
                    if found is None:
                        mod_path, _ = module_source(repo, tag, node.module + "." + alias.name)
                        found = ("module", None) if mod_path else ("object", None)
                    kind, params = found
                    if kind == "maybe_ufunc":
                        kind = "ufunc" if isinstance(getattr(numpy, public, None), numpy.ufunc) else "object"
                    names[public] = (kind, params)
            elif isinstance(node, ast.ImportFrom) is False and isinstance(node, ast.Import):
                continue
            elif isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
                names[node.name] = ("function", compact_ast_args(node.args))
            elif isinstance(node, ast.Assign):
                for t in node.targets:
                    if isinstance(t, ast.Name) and not t.id.startswith("_"):
                        names.setdefault(t.id, ("object", None))
    visit(tree.body)
    # `from cupy import fft` style sub-modules
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module == "cupy":
            for alias in node.names:
                if not alias.name.startswith("_"):
                    names[alias.asname or alias.name] = ("module", None)
    return names


def ufunc_methods(repo, tag):
    """The ufunc methods and which ufuncs support ``.at`` (those created with a scatter_op)."""
    text = show(repo, tag, "cupy/_core/_kernel.pyx")
    start = text.index("cdef class ufunc")
    body = text[start:text.index("\ncdef ", start + 10)] if "\ncdef " in text[start + 10:] else text[start:]
    methods = {}
    for m in PYX_DEF.finditer(body):
        if m.group("indent") == "    " and m.group("name") in ("at", "reduce", "accumulate", "reduceat", "outer"):
            methods[m.group("name")] = compact_pyx_params(re.sub(r"^\s*self\s*,?", "", m.group("params")))
    scatter = set()
    for path in ("cupy/_core/_routines_math.pyx", "cupy/_core/_routines_binary.pyx"):
        src = show(repo, tag, path) or ""
        # one top-level statement per chunk: `_add = create_arithmetic('add', ..., scatter_op='add')`
        for chunk in re.split(r"\n(?=\S)", src):
            m = re.match(r"_?\w+\s*=\s*_?create_\w+\(\s*'(?:cupy_)?(\w+)'", chunk)
            if m and "scatter_op='" in chunk:
                scatter.add(m.group(1))
    return methods, sorted(scatter)


def main(repo, tags):
    commits = {t: subprocess.run(["git", "-C", repo, "rev-list", "-n1", t], capture_output=True,
                                 text=True, check=True).stdout.strip() for t in tags}
    per_tag = {t: top_level(repo, t) for t in tags}
    members = {t: ndarray_members(repo, t) for t in tags}
    umeth = {t: ufunc_methods(repo, t) for t in tags}

    common = sorted(set.intersection(*(set(n) for n in per_tag.values())))
    print('"""CuPy\'s public API as the strict stand-in allows it. GENERATED by make_api_table.py; do not edit.')
    print()
    print("Read from CuPy's own source, github.com/cupy/cupy at")
    for t in tags:
        print(f"    {t} ({commits[t]})")
    print("A name appears only if every tag above has it; each signature string is one tag's")
    print("parameter list (a call must bind to all of them). ``x=`` marks a parameter with a default.")
    print('"""')
    print(f"TAGS = {dict(commits)!r}")
    print()
    missing = {t: sorted(set(per_tag[t]) - set(common)) for t in tags}
    print(f"ONLY_IN_SOME_TAGS = {missing!r}")
    print()
    print("FUNCTIONS = {")
    kinds = {}
    for name in common:
        kset = {per_tag[t][name][0] for t in tags}
        sigs = sorted({per_tag[t][name][1] for t in tags if per_tag[t][name][0] == "function"})
        if kset == {"function"}:
            print(f"    {name!r}: {sigs!r},")
        else:
            kinds[name] = "ufunc" if "ufunc" in kset else sorted(kset)[0]
    print("}")
    print()
    print("OTHER_NAMES = {")
    for name, kind in sorted(kinds.items()):
        print(f"    {name!r}: {kind!r},")
    print("}")
    print()
    mcommon = sorted(set.intersection(*(set(members[t][0]) for t in tags)))
    print("NDARRAY_METHODS = {")
    for name in mcommon:
        print(f"    {name!r}: {sorted({members[t][0][name] for t in tags})!r},")
    print("}")
    print()
    pcommon = sorted(set.intersection(*(set(members[t][1]) for t in tags)))
    print(f"NDARRAY_PROPERTIES = {pcommon!r}")
    print()
    ucommon = sorted(set.intersection(*(set(umeth[t][0]) for t in tags)))
    print("UFUNC_METHODS = {")
    for name in ucommon:
        print(f"    {name!r}: {sorted({umeth[t][0][name] for t in tags})!r},")
    print("}")
    print(f"UFUNC_AT_SUPPORTED = {sorted(set.intersection(*(set(umeth[t][1]) for t in tags)))!r}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
