"""The installed-models registry: one JSON file in the models dir, written atomically under a lock.

Model ids are unique per file: ``profile@QUANT`` for the first file of a profile and quant, with a short
hash of the file's real path appended when another file already holds that id, so a second import or
download never replaces the first one's registration. Registering the same file again updates its entry.

Runs in the caller's process (the CLI, the app's GUI process on its worker threads, the server's handler
threads through the model pool); the lock makes concurrent writers of one process safe.
"""
from __future__ import annotations

import hashlib
import json
import os
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from desktop.engine import paths

_REGISTRY_LOCK = threading.RLock()
# Registries written before the library kept these origin names.
_ORIGINS = {"download": "downloaded", "import": "imported"}


def registry_path() -> Path:
    return paths.models_dir() / "registry.json"


def _entries(raw: Any) -> dict[str, dict[str, Any]]:
    if not isinstance(raw, dict):
        return {}
    if isinstance(raw.get("models"), dict):
        out = raw["models"]
    else:  # version 1 kept one entry per profile id
        out = {k: {"id": k, "profile": k, **v} for k, v in raw.items() if isinstance(v, dict) and "path" in v}
    for e in out.values():
        e["origin"] = _ORIGINS.get(e.get("origin", "downloaded"), e.get("origin", "downloaded"))
    return out


def read_registry() -> dict[str, dict[str, Any]]:
    """Installed models by model id."""
    try:
        return _entries(json.loads(registry_path().read_text()))
    except (OSError, ValueError):
        return {}


def _write_registry(entries: dict[str, dict[str, Any]]) -> None:
    registry_path().parent.mkdir(parents=True, exist_ok=True)
    # A name of its own per writer: two threads (or processes) must never share a temp file.
    tmp = registry_path().with_name(f"registry.json.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_text(json.dumps({"version": 2, "models": entries}, indent=2))
    tmp.replace(registry_path())


def path_tag(path: str | Path) -> str:
    """A short, stable tag of a file's real path (what makes two same-named files' ids differ)."""
    return hashlib.sha1(os.path.realpath(path).encode()).hexdigest()[:6]


def find_by_path(path: str | Path) -> dict[str, Any] | None:
    real = os.path.realpath(path)
    return next((e for e in read_registry().values() if os.path.realpath(e.get("path", "")) == real), None)


def register_model(profile_id: str, path: str | Path, **info: Any) -> str:
    """Record ``path`` as an installed model of ``profile_id``; returns its model id (see the module doc).

    Several quants (and several files of one quant) of a profile can be installed side by side; the newest
    is the one a profile loads unless it names a recommended quant.
    """
    with _REGISTRY_LOCK:
        reg = read_registry()
        real = os.path.realpath(path)
        same = next((e for e in reg.values() if os.path.realpath(e.get("path", "")) == real), None)
        if same is not None:
            model_id = same["id"]
            keep = {"name": same["name"]} if same.get("name") else {}  # a rename outlives re-registration
        else:
            quant = info.get("quant")
            base = f"{profile_id}@{quant}" if quant else profile_id
            model_id = base if base not in reg else f"{base}~{path_tag(real)}"
            n = 2
            while model_id in reg:
                model_id, n = f"{base}~{path_tag(real)}-{n}", n + 1
            keep = {}
        reg[model_id] = {"id": model_id, "profile": profile_id, "path": str(Path(path).absolute()),
                         "added": time.time(), **info, **keep}
        _write_registry(reg)
    return model_id


def update_entry(model_id: str, **changes: Any) -> dict[str, Any]:
    """Change fields of one entry (KeyError if it is not registered); returns the new entry."""
    with _REGISTRY_LOCK:
        reg = read_registry()
        entry = reg[model_id]
        entry.update(changes)
        _write_registry(reg)
        return dict(entry)


def put_entry(entry: dict[str, Any]) -> None:
    """Write ``entry`` under its own ``id``, as given (replacing an entry of that id): for a model that already
    has an id, such as a file in the HF cache being renamed, where ``register_model`` would pick one."""
    with _REGISTRY_LOCK:
        reg = read_registry()
        reg[entry["id"]] = dict(entry)
        _write_registry(reg)


def unregister_model(model_id: str) -> None:
    with _REGISTRY_LOCK:
        reg = read_registry()
        reg.pop(model_id, None)
        _write_registry(reg)
