"""The engine is plain Python: no Qt, and llama_cpp only inside functions of one module."""
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
