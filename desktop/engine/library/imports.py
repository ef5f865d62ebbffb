"""Import a GGUF from disk: check it with the doctor and register it where it is.

The file is the user's: by default it is left byte-for-byte unchanged and its 128009 problem is repaired at
load time (the engine applies the doctor's kv_overrides to every load). ``repair=True`` repairs it in place
instead, with the undo journal (``revert_repair`` puts the original bytes back). Runs in the caller's
process on the caller's thread (the CLI's main thread, or a worker thread of the app's GUI process): it hashes
the whole file.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from desktop.engine.errors import GGUFError, ModelNotFoundError
from desktop.engine.library import entries as reg_entries
from desktop.engine.library.hashing import hash_file
from desktop.engine.library.installed import InstalledModel, installed_model


def import_model(path: str | Path, profile_id: str | None = None, *, repair: bool = False,
                 store: Any = None, prompt_format: str | None = None,
                 mmproj: str | Path | None = None) -> InstalledModel:
    """Register a local GGUF (see the module doc). With ``profile_id`` the file becomes that profile's model;
    without, a profile is made from the file's metadata (FormatUnknownError, with the choices, when the file has
    no template and its family is unknown: the caller asks the user and calls again with ``prompt_format``). A
    second file with the same metadata name gets an id of its own; importing the same file again updates its
    entry.

    A vision model's projector is ``mmproj``, else an ``mmproj`` file beside the model that fits it; it is
    recorded (``mmproj``, ``vision``) and left where it is. One made for another model is refused
    (ProjectorMismatchError with both embedding sizes) before anything is registered."""
    from desktop.engine.gguf import doctor
    from desktop.engine.gguf import repair as gguf_repair
    from desktop.engine.library.generated import profile_from_report
    from desktop.engine.profiles import ProfileStore

    p = Path(path).expanduser()
    if not p.is_file():
        raise ModelNotFoundError(f"{p}: no such file")
    gguf_repair.recover_journal(p)
    report = doctor.inspect(p)  # GGUFError for anything that is not a sound GGUF
    from desktop.engine.gguf import projector

    if report.architecture == "clip":
        raise GGUFError(f"{p.name} is a multimodal projector, not a model: import the model with --mmproj {p}")
    if mmproj is not None:
        projector.check_pair(p, Path(mmproj).expanduser())
        mm: Path | None = Path(mmproj).expanduser().absolute()
    else:
        mm = projector.find_beside(p)
    store = store or ProfileStore()
    if profile_id:
        store.get(profile_id)  # raises UnknownProfileError with the known ids
        pid = profile_id
    else:
        pid = profile_from_report(report, prompt_format=prompt_format).id
        store.reload()
    source_sha = hash_file(p)
    if repair:
        fixes = gguf_repair.fix(p).summary()
        in_place = bool(fixes) or gguf_repair.has_undo(p)
        digest = hash_file(p) if fixes else source_sha
        if in_place and not fixes:
            prev = reg_entries.find_by_path(p)  # imported with --repair before: keep what it said
            fixes = list(prev.get("fixes") or []) if prev else []
            source_sha = (prev or {}).get("source_sha256") or source_sha
        report = doctor.inspect(p)
    else:
        fixes, in_place, digest = gguf_repair.load_time_fixes(report), False, source_sha
    model_id = reg_entries.register_model(
        pid, p, quant=report.file_type, size=p.stat().st_size, sha256=digest, source_sha256=source_sha,
        fixes=fixes, origin="imported", repaired_in_place=in_place, name=report.name or p.stem,
        mmproj=str(mm) if mm else None, vision=mm is not None)
    return installed_model(reg_entries.read_registry()[model_id])
