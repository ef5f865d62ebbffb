"""The dependency bounds in pyproject.toml hold for what is installed (the code relies on hub 2.x's httpx2 and on
llama-cpp-python 0.3.x private members)."""
from __future__ import annotations

import tomllib
from importlib.metadata import version
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]


def _requirements() -> dict[str, Requirement]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    reqs = [Requirement(r) for r in data["project"]["dependencies"]]
    return {r.name.lower().replace("_", "-"): r for r in reqs}


def test_every_dependency_has_an_upper_bound_where_the_code_uses_private_or_new_api() -> None:
    reqs = _requirements()
    assert str(reqs["huggingface-hub"].specifier) in (">=2.0,<3", "<3,>=2.0")  # httpx2 ships with hub 2.0
    assert reqs["llama-cpp-python"].specifier.contains("0.3.36") and not reqs["llama-cpp-python"].specifier.contains(
        "0.4.0") and not reqs["llama-cpp-python"].specifier.contains("0.3.35")


def test_installed_versions_satisfy_the_bounds() -> None:
    for name, req in _requirements().items():
        if req.marker is not None and not req.marker.evaluate():
            continue
        installed = version(name)
        assert req.specifier.contains(installed, prereleases=True), f"{name} {installed} does not satisfy {req}"
