"""Repairs of a GGUF's metadata: same-size in-place edits with an undo journal, or overrides at load time.

An in-place repair first writes a journal of the original bytes (``state: applying``) in the data dir,
then patches, re-reads to confirm and marks the journal ``applied``. The journal stays: it is how
``revert`` puts the original bytes back exactly (the file hashes to the Hub's sha256 again). A crash
while applying leaves an ``applying`` journal, which the next ``fix`` (or ``recover_journal``) rolls back.
Files the app must not change (the shared HF cache, a user's file imported without ``--repair``) are
repaired at load time instead: ``doctor.load_overrides`` hands llama.cpp the right values.
Runs on any thread, in any process; no llama_cpp.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from desktop.engine import paths
from desktop.engine.errors import FixError
from desktop.engine.gguf import doctor

_EOT_CODES = {"eot_128009_not_eos", "eot_128009_not_control"}
_LEGACY_SUFFIX = ".fixjournal"  # the crash journal earlier versions kept next to the file


@dataclass(frozen=True)
class Change:
    key: str
    old: Any
    new: Any
    description: str


@dataclass
class FixResult:
    path: str
    changes: list[Change]
    dry_run: bool
    problems_before: list[doctor.Problem]
    problems_after: list[doctor.Problem]
    reverted: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> list[str]:
        return [c.description for c in self.changes]


# ----------------------------------------------------------------------------------------- the journal


def journal_path(path: str | Path) -> Path:
    """The undo journal of ``path``: in the data dir (never beside a user's file), keyed by its real path."""
    real = os.path.realpath(path)
    return paths.data_dir() / "repairs" / (hashlib.sha1(real.encode()).hexdigest()[:24] + ".json")


def undo_record(path: str | Path) -> dict[str, Any] | None:
    """The journal of an applied repair of ``path`` (None if there is nothing to undo)."""
    try:
        rec = json.loads(journal_path(path).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(rec, dict) or rec.get("path") != os.path.realpath(path) or rec.get("state") != "applied":
        return None
    return rec


def has_undo(path: str | Path) -> bool:
    return undo_record(path) is not None


def _patches(rec: dict[str, Any], p: Path) -> list[tuple[int, bytes, bytes]]:
    try:
        return [(int(e["offset"]), bytes.fromhex(e["old"]), bytes.fromhex(e["new"])) for e in rec["patches"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise FixError(f"{p}: the repair journal {journal_path(p)} is unreadable; restore the file from its "
                       "download") from exc


def _write_journal(p: Path, state: str, patches: list[tuple[int, bytes, bytes]], changes: list[str]) -> None:
    j = journal_path(p)
    j.parent.mkdir(parents=True, exist_ok=True)
    tmp = j.with_name(f"{j.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps({"version": 1, "path": os.path.realpath(p), "state": state, "time": time.time(),
                               "size": p.stat().st_size, "changes": changes,
                               "patches": [{"offset": o, "old": a.hex(), "new": b.hex()} for o, a, b in patches]}))
    with tmp.open("rb") as fh:  # the journal must be on disk before the file is touched
        os.fsync(fh.fileno())
    tmp.replace(j)


# ----------------------------------------------------------------------------------------- patching


def _plan(p: Path) -> tuple[list[tuple[int, bytes, bytes]], list[Change], doctor.Report]:
    """Work out the byte patches (offset, old, new) that repair ``p``; reads only.

    The report may come from the cache: it is keyed by size and mtime, which any change to the file moves.
    """
    rep = doctor.inspect(p)
    codes = {pr.code for pr in rep.problems}
    patches: list[tuple[int, bytes, bytes]] = []
    changes: list[Change] = []
    if not codes & _EOT_CODES:
        return patches, changes, rep
    import numpy as np

    if "eot_128009_not_eos" in codes:
        if "eos" not in rep.patch_slots:
            raise FixError(f"{p}: tokenizer.ggml.eos_token_id is missing; adding a key needs a rewrite, so the "
                           "app overrides it at load time instead")
        off, old, dtype = rep.patch_slots["eos"]
        was = int(np.frombuffer(old, dtype=dtype)[0])
        patches.append((off, old, np.array([doctor.LLAMA3_EOT_ID], dtype=dtype).tobytes()))
        changes.append(Change("tokenizer.ggml.eos_token_id", was, doctor.LLAMA3_EOT_ID,
                              f"fixed: end-of-turn token 128009 was not the EOS token (EOS was {was})"))
    if "eot_128009_not_control" in codes:
        off, old, dtype = rep.patch_slots["tt128009"]
        code = int(np.frombuffer(old, dtype=dtype)[0])
        was = doctor.TOKEN_TYPE_NAMES.get(code, str(code))
        patches.append((off, old, np.array([doctor.CONTROL], dtype=dtype).tobytes()))
        changes.append(Change("tokenizer.ggml.token_type[128009]", was, "CONTROL",
                              f"fixed: token 128009 <|eot_id|> was typed {was}, now CONTROL"))
    return patches, changes, rep


def _write(p: Path, edits: list[tuple[int, bytes]]) -> None:
    with p.open("r+b") as fh:
        for off, data in edits:
            fh.seek(off)
            fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _apply(p: Path, patches: list[tuple[int, bytes, bytes]]) -> None:
    # Same-size edits at offsets gguf-py gave us; check the old bytes first so a file that changed
    # since it was read is never half-patched.
    with p.open("rb") as fh:
        for off, old, _new in patches:
            fh.seek(off)
            if fh.read(len(old)) != old:
                raise FixError(f"{p}: the file changed while it was being repaired")
    _write(p, [(off, new) for off, _old, new in patches])


def _restore(p: Path, patches: list[tuple[int, bytes, bytes]]) -> None:
    _write(p, [(off, old) for off, old, _new in patches])


def recover_journal(path: str | Path) -> bool:
    """If a previous repair was interrupted, put the original bytes back. Returns True if it did."""
    p = Path(path)
    legacy = p.with_name(p.name + _LEGACY_SUFFIX)
    if legacy.exists():
        try:
            entries = json.loads(legacy.read_text())
        except ValueError as exc:
            raise FixError(f"{p}: the repair journal {legacy} is unreadable; restore the file from its "
                           "download") from exc
        _restore(p, _patches({"patches": entries}, p))
        legacy.unlink()
        return True
    j = journal_path(p)
    try:
        rec = json.loads(j.read_text())
    except (OSError, ValueError):
        return False
    if not isinstance(rec, dict) or rec.get("state") != "applying":
        return False
    _restore(p, _patches(rec, p))
    j.unlink(missing_ok=True)
    return True


def fix(path: str | Path, *, dry_run: bool = False) -> FixResult:
    """Repair the 128009 problem in place, journaled for ``revert``. A healthy file is left byte-for-byte alone."""
    p = Path(path)
    recover_journal(p)
    patches, changes, before = _plan(p)
    if dry_run or not patches:
        return FixResult(str(p), changes, dry_run, before.problems, before.problems)
    if not os.access(p, os.W_OK):
        raise FixError(f"{p}: the file is read-only; copy it somewhere writable or import it into the app")
    # A second repair of a file repaired before (rare) keeps the first journal's original bytes.
    earlier = undo_record(p)
    originals = {o: a for o, a, _b in _patches(earlier, p)} if earlier else {}
    journal = [(o, originals.get(o, a), b) for o, a, b in patches]
    journal += [(o, a, b) for o, a, b in (_patches(earlier, p) if earlier else []) if o not in {x[0] for x in patches}]
    descriptions = [*(earlier.get("changes", []) if earlier else []), *(c.description for c in changes)]
    _write_journal(p, "applying", journal, descriptions)
    try:
        _apply(p, patches)
        after = doctor.inspect(p, use_cache=False)
        left = {pr.code for pr in after.problems} & _EOT_CODES
        if left:
            raise FixError(f"{p}: the repair did not take ({', '.join(sorted(left))})")
    except BaseException as exc:
        _restore(p, patches)
        if earlier:
            _write_journal(p, "applied", _patches(earlier, p), list(earlier.get("changes", [])))
        else:
            journal_path(p).unlink(missing_ok=True)
        if isinstance(exc, FixError):
            raise
        if isinstance(exc, Exception):
            raise FixError(f"{p}: the repair failed and the original bytes were restored ({exc})") from exc
        raise
    _write_journal(p, "applied", journal, descriptions)
    return FixResult(str(p), changes, False, before.problems, after.problems)


def revert(path: str | Path) -> FixResult:
    """Undo an in-place repair: put the journaled original bytes back, exactly. Raises FixError if there is
    no journal, or if the file changed since the repair (then nothing is written)."""
    p = Path(path)
    rec = undo_record(p)
    if rec is None:
        raise FixError(f"{p}: there is no repair to undo (the app keeps an undo journal only for repairs it made)")
    patches = _patches(rec, p)
    if not os.access(p, os.W_OK):
        raise FixError(f"{p}: the file is read-only; the repair cannot be undone")
    with p.open("rb") as fh:
        for off, old, new in patches:
            fh.seek(off)
            now = fh.read(len(new))
            if now not in (new, old):  # `old` too: a revert the app's quit interrupted is finished here
                raise FixError(f"{p}: the file changed since it was repaired (at byte {off:,}); the repair "
                               "cannot be undone, download the file again instead")
    before = doctor.inspect(p).problems  # cached: keyed by size + mtime, which the restore moves
    _restore(p, patches)
    journal_path(p).unlink(missing_ok=True)
    after = doctor.inspect(p, use_cache=False).problems  # same size; the mtime may not have moved
    changes = [Change("undo", None, None, f"undone: {d}") for d in rec.get("changes", [])]
    return FixResult(str(p), changes, False, before, after, reverted=True)


def load_time_fixes(rep: doctor.Report) -> list[str]:
    """What ``doctor.load_overrides`` repairs when the file itself stays as it is, in words."""
    out = []
    codes = {pr.code for pr in rep.problems}
    if "eot_128009_not_eos" in codes:
        was = rep.eos.id if rep.eos else "missing"
        out.append(f"end-of-turn token 128009 is not the EOS token (EOS is {was}): repaired at load time; "
                   "the file is unchanged")
    if "eot_128009_not_control" in codes:
        out.append("token 128009 <|eot_id|> is not typed CONTROL (128009 still ends the turn): repaired at load "
                   "time; the file is unchanged")
    return out
