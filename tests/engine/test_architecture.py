"""The engine is plain Python: no Qt, and llama_cpp only inside functions of one module; `desktop` has no import
cycles."""
from __future__ import annotations

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path


import desktop.engine

ENGINE_DIR = Path(desktop.engine.__file__).parent


def _engine_modules() -> list[str]:
    return [m.name for m in pkgutil.walk_packages([str(ENGINE_DIR)], prefix="desktop.engine.")]


def test_engine_imports_no_qt_and_no_llama_cpp_at_import_time() -> None:
    mods = _engine_modules()
    assert "desktop.engine.inference.llama_backend" in mods and "desktop.engine.inference.host" in mods
    code = (
        "import importlib, sys\n"
        f"for m in {mods!r}: importlib.import_module(m)\n"
        "bad = sorted(k for k in sys.modules if k.split('.')[0] in ('PySide6', 'shiboken6', 'llama_cpp'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"engine modules pulled in: {out.stdout}"


def test_only_llama_backend_imports_llama_cpp_and_only_inside_functions() -> None:
    pkg_root = ENGINE_DIR.parent
    offenders = []
    for path in pkg_root.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            if not any(n.split(".")[0] == "llama_cpp" for n in names):
                continue
            rel = path.relative_to(pkg_root).as_posix()
            if rel != "engine/inference/llama_backend.py":
                offenders.append(f"{rel}:{node.lineno} imports llama_cpp")
            elif node.col_offset == 0:
                offenders.append(f"{rel}:{node.lineno} imports llama_cpp at module level")
    assert offenders == []


def test_engine_is_split_into_documented_subpackages() -> None:
    """Each subpackage says what it is for and which process it runs in; no flat module grows back."""
    import importlib

    subpackages = sorted(m.name for m in pkgutil.iter_modules([str(ENGINE_DIR)]) if m.ispkg)
    assert {"inference", "gguf", "library", "hub", "chats", "profiles"} <= set(subpackages)
    for name in subpackages:
        doc = importlib.import_module(f"desktop.engine.{name}").__doc__ or ""
        assert "process" in doc, f"desktop.engine.{name} does not say which process it runs in"
    flat = sorted(m.name for m in pkgutil.iter_modules([str(ENGINE_DIR)]) if not m.ispkg)
    assert flat == ["errors", "logs", "paths"], flat


# ------------------------------------------------------------------------------------------ import cycles


def _import_graph(root: Path, package: str) -> dict[str, set[str]]:
    """``module -> modules of the package it imports``, counting every import statement: at module level, inside
    functions and under ``if TYPE_CHECKING:`` alike (each one is a dependency a reader has to follow). Importing
    ``pkg.sub`` counts as a dependency on ``pkg.sub`` only, not on ``pkg/__init__.py``: a package that imports its
    own children is not a cycle."""
    files: dict[str, Path] = {}
    for path in (root / package).rglob("*.py"):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        files[".".join(parts)] = path

    def known(name: str) -> str | None:  # the module itself, or the nearest package of the package above it
        while name and name not in files:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for mod, path in files.items():
        pkg = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                deps.update(filter(None, (known(a.name) for a in node.names)))
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = pkg.split(".")[: len(pkg.split(".")) - (node.level - 1)]
                    base = ".".join(up + ([node.module] if node.module else []))
                for a in node.names:  # `from pkg import sub` names the module pkg.sub
                    target = f"{base}.{a.name}" if f"{base}.{a.name}" in files else known(base)
                    if target:
                        deps.add(target)
        deps.discard(mod)
        graph[mod] = deps
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def _desktop_cycles() -> list[list[str]]:
    return _cycles(_import_graph(ENGINE_DIR.parent.parent, "desktop"))


def test_the_cycle_finder_counts_imports_in_functions_and_type_checking_blocks(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("from pkg import a\n")  # a package importing its child: no cycle
    (pkg / "a.py").write_text("def f():\n    from pkg.sub import b\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "b.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..c import C\n")
    (pkg / "c.py").write_text("from pkg import a\n")
    (pkg / "d.py").write_text("from pkg import c\n")  # depends on the cycle, is not part of it
    assert _cycles(_import_graph(tmp_path, "pkg")) == [["pkg.a", "pkg.c", "pkg.sub.b"]]


def test_no_import_cycle_in_desktop() -> None:
    """One-way dependencies everywhere, the GUI included: a lower module is handed what it needs (a callable, a
    Protocol) rather than importing back up."""
    assert _desktop_cycles() == []
