"""GGUF downloads from the Hugging Face Hub into the app's own model library.

A quant is fetched into ``<download dir>/owner/repo/<file>`` (paths.download_dir(); the library folders are
the app's to write), through a resumable ``<file>.incomplete`` with a sidecar naming the expected sha256,
size and etag (targets.py). Big files come over several ranged connections (parallel.py), small ones or
those of a server that ignores Range over one (fetch.py). A file is final only after its sha256 matches the
Hub's LFS hash; then the GGUF doctor repairs it in place, journaled so that ``revert_repair`` can undo it.

A quant another tool already put in the shared Hugging Face cache is used where it is, read-only: it is
hashed (once) against the Hub's sha256, registered with origin ``hf-cache`` and repaired at load time by
kv_overrides; the cache is never written, not even to delete a corrupt copy (that one is downloaded into
the library instead).

Runs in the caller's process (the CLI, or the app's GUI process): ``run_download`` on the caller's thread (the
CLI's main thread, or the queue's worker thread, queue.py).
No Qt, no llama_cpp.
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from desktop.engine import paths
from desktop.engine.errors import AppError, DiskSpaceError, DownloadCancelled, DownloadError, VerificationError
from desktop.engine.gguf import doctor as gguf_doctor
from desktop.engine.gguf import repair as gguf_repair
from desktop.engine.hub import listing as hub
from desktop.engine.hub.events import CANNOT_RESUME, DownloadEvent, Progress
from desktop.engine.hub.fetch import fetch_single
from desktop.engine.hub import parallel
from desktop.engine.hub.parallel import RangesIgnored, fetch_parallel
from desktop.engine.hub.queue import DownloadQueue
from desktop.engine.hub.targets import (FileTarget, build_targets, drop_partial, expected_hash, library_file,
                                        partial_bytes, repo_dir, resolve_spec)
from desktop.engine.library import generated
from desktop.engine.library import registry
from desktop.engine.profiles import ProfileStore

# Free space kept beyond what the download needs, so the disk is not filled to the last byte.
DISK_MARGIN_BYTES = 256 << 20


@dataclass
class DownloadResult:
    path: str
    sha256: str
    source_sha256: list[str | None]
    fixes: list[str]
    profile_id: str
    model_id: str
    repo: str
    quant: str
    files: list[str]
    size: int
    fetched_bytes: int
    reused_bytes: int
    origin: str = "downloaded"  # or "hf-cache": used where another tool put it, never written
    mmproj: str | None = None  # a vision model's projector, downloaded and verified with it

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def free_disk_bytes(path: Path) -> int:
    """Free bytes on the volume holding ``path`` (its nearest existing ancestor)."""
    p = path
    while not p.exists() and p != p.parent:
        p = p.parent
    return shutil.disk_usage(p).free


# ------------------------------------------------------------------------------------------ verification
# Files we verified (and maybe repaired) before: realpath -> {size, mtime_ns, source, now}. A repaired
# file no longer hashes to the Hub's value, so later runs must know its repaired hash.


def _verified_path() -> Path:
    return paths.models_dir() / "verified.json"


def _verified() -> dict[str, Any]:
    try:
        return json.loads(_verified_path().read_text())
    except (OSError, ValueError):
        return {}


def _remember(path: Path, source: str, now: str) -> None:
    data = _verified()
    st = path.stat()
    data[os.path.realpath(path)] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "source": source, "now": now}
    _verified_path().parent.mkdir(parents=True, exist_ok=True)
    tmp = _verified_path().with_name(f"verified.json.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(_verified_path())


def _known_good(path: Path, expected: str) -> bool:
    rec = _verified().get(os.path.realpath(path))
    if not rec or rec.get("source") != expected:
        return False
    st = path.stat()
    return rec["size"] == st.st_size and rec["mtime_ns"] == st.st_mtime_ns


def _verify_new(t: FileTarget, index: int, prog: Progress, got: str) -> str:
    """Compare the hash of the fetched bytes with the Hub's; a mismatch deletes the partial."""
    algo, want = expected_hash(t)  # type: ignore[misc] - the fetch refused a file without one
    prog.emit("verifying", t, index, t.size)
    if got != want:
        drop_partial(t)
        raise VerificationError(
            f"{t.name} is corrupt: its {algo} is {got[:12]}… but the Hub says {want[:12]}…; the file was "
            f"deleted and not registered; download it again", details=f"got {got}, expected {want}")
    return want


def _verify_existing(t: FileTarget, path: Path, index: int, prog: Progress, cancel: threading.Event, *,
                     ours: bool) -> bool:
    """Whether ``path`` (a library file, or the HF cache's copy) holds the Hub's bytes (or our repair of them).

    A corrupt library file is deleted (it is ours) and raises; a corrupt cache copy is left alone (it is
    not) and returns False, so the file is downloaded into the library instead."""
    exp = expected_hash(t)
    if exp is None:
        raise VerificationError(f"{t.name}: the Hub gave no hash to verify it against; refusing to use it")
    algo, want = exp
    if _known_good(path, want):
        return True
    got = registry.hash_file(path, algo, lambda d, _n: prog.emit("verifying", t, index, d, force=False), cancel)
    rec = _verified().get(os.path.realpath(path), {})
    if got == want or (rec.get("source") == want and rec.get("now") == got):
        _remember(path, want, got)
        return True
    if not ours:
        prog.emit("verifying", t, index, 0, f"the Hugging Face cache's copy of {t.name} is corrupt; it is left "
                                            "as it is and the file is downloaded into the library")
        return False
    path.unlink(missing_ok=True)
    raise VerificationError(
        f"the downloaded copy of {t.name} is corrupt (its {algo} does not match the Hub's); it was deleted, so "
        f"downloading again fetches a fresh copy", details=f"got {got}, expected {want}")


# ------------------------------------------------------------------------------------------ a whole job


def _fetch_one(t: FileTarget, index: int, prog: Progress, cancel: threading.Event, *, repo: str,
               connections: int, **kw: Any) -> int:
    """Fetch ``t`` into the library (parallel when it pays), verify it, move it into place."""
    exp = expected_hash(t)
    if exp is None:
        raise VerificationError(f"{t.name}: the Hub gave no hash to verify it against; refusing to download it")
    if connections > 1 and t.size >= parallel.PARALLEL_MIN_BYTES:
        resuming = partial_bytes(t) > 0
        try:
            got = fetch_parallel(t, index, prog, cancel, repo=repo, connections=connections, **kw)
            digest = registry.hash_file(t.incomplete, exp[0],
                                      lambda d, _n: prog.emit("verifying", t, index, d, force=False), cancel)
        except RangesIgnored:
            prog.emit("downloading", t, index, 0, CANNOT_RESUME if resuming else
                      "the server does not serve byte ranges; using one connection")
            got, digest = fetch_single(t, index, prog, cancel, repo=repo, **kw)
    else:
        got, digest = fetch_single(t, index, prog, cancel, repo=repo, **kw)
    want = _verify_new(t, index, prog, digest)
    os.replace(t.incomplete, t.final)
    t.sidecar.unlink(missing_ok=True)
    _remember(t.final, want, want)
    return got


def _join(sources: list[Path], entry: hub.QuantEntry, repo: str, base: Path, prog: Progress,
          cancel: threading.Event, targets: list[FileTarget]) -> Path:
    b = hub.PART_RE.match(Path(entry.files[0]).name)
    name = b.group("base") if b else Path(entry.files[0]).name
    out = library_file(base, repo, str(Path(entry.files[0]).parent / name).removeprefix("./"))
    tmp = out.with_name(out.name + ".joining")
    out.parent.mkdir(parents=True, exist_ok=True)
    done = 0
    with tmp.open("wb") as w:
        for i, (src, t) in enumerate(zip(sources, targets), 1):
            with src.open("rb") as r:
                while chunk := r.read(8 << 20):
                    w.write(chunk)
                    done += len(chunk)
                    prog.emit("joining", t, i, done, force=False)
                    if cancel.is_set():
                        raise DownloadCancelled("download paused or cancelled while joining parts")
    os.replace(tmp, out)
    # The byte-split parts are useless once joined (llama.cpp cannot read them): give the space back, in the
    # library only (parts in the HF cache are not ours).
    for t in targets:
        t.final.unlink(missing_ok=True)
    return out


def discard_partials(repo_or_profile: str, store: ProfileStore | None = None, *, quant: str | None = None,
                     filename: str | None = None, keep: Any = ()) -> int:
    """Delete the ``.incomplete`` files (and sidecars) of a repo's download in the library; with ``quant`` or
    ``filename`` only that quant's. Returns bytes freed. Offline; never touches the HF cache."""
    repo, _ = resolve_spec(repo_or_profile, store or ProfileStore())
    freed = 0
    for base in paths.library_dirs():
        d = repo_dir(base, repo)
        for f in sorted(d.rglob("*.incomplete")) if d.is_dir() else []:
            name = f.name.removesuffix(".incomplete")
            if str(f) in keep or (filename and name != Path(filename).name) or \
                    (quant and hub.quant_of(name).upper() != quant.upper()):
                continue
            freed += f.stat().st_size
            f.unlink(missing_ok=True)
            f.with_name(f.name + ".json").unlink(missing_ok=True)
    return freed


def run_download(repo_or_profile: str, *, quant: str | None = None, filename: str | None = None,
                 profile_id: str | None = None, target_dir: str | Path | None = None, job_id: str | None = None,
                 on_event: Callable[[DownloadEvent], None] | None = None, cancel: threading.Event | None = None,
                 store: ProfileStore | None = None, connections: int | None = None, stall_after: float = 30.0,
                 max_retries: int = 5, backoff_base: float = 1.0, backoff_max: float = 30.0) -> DownloadResult:
    """Download, verify, repair and register one quant. Runs on the calling thread; blocking.

    ``target_dir`` is a library folder to download into instead of paths.download_dir(); ``connections``
    the parallel ranged connections per big file (default paths.download_connections()).
    """
    store = store or ProfileStore()
    cancel = cancel or threading.Event()
    job_id = job_id or uuid.uuid4().hex[:12]
    repo, profile = resolve_spec(repo_or_profile, store)
    if profile_id:
        profile = store.get(profile_id)
    if not quant and not filename:
        quant = profile.source.recommended_quant if profile else None
    if on_event:
        on_event(DownloadEvent(job_id, "starting", message=f"listing {repo}"))
    listing = hub.list_files(repo)
    entries = hub.group_quants(listing.files)
    hub.prefer_projector(entries, listing.files, profile.source.mmproj if profile else None)
    entry = hub.pick(entries, quant, filename)
    if not entry.complete:
        raise DownloadError(f"{entry.quant} in {repo} is missing some of its {entry.split}; the repo is incomplete",
                            code="incomplete_split")
    commit = listing.commit or "main"
    base = Path(target_dir).expanduser() if target_dir else paths.download_dir()
    targets = build_targets(repo, commit, entry, base)
    # A vision model's projector comes along, through the same verified, resumable path (into the library).
    mm_targets = build_targets(repo, commit, hub.QuantEntry(
        "mmproj", [entry.mmproj], entry.mmproj_size, [entry.mmproj_sha256], [entry.mmproj_size]), base) \
        if entry.mmproj else []
    kw = dict(stall_after=stall_after, max_retries=max_retries, backoff_base=backoff_base, backoff_max=backoff_max)

    total = sum(t.size for t in targets + mm_targets)
    prog = Progress(job_id, total, len(targets) + len(mm_targets), on_event)
    # Shards must sit side by side: the HF cache's copies are used only when it holds every file.
    from_cache = not any(t.have() for t in targets) and all(t.cached for t in targets)
    if from_cache and entry.split != "parts":
        for i, t in enumerate(targets, 1):
            if not _verify_existing(t, t.cached, i, prog, cancel, ours=False):  # type: ignore[arg-type]
                from_cache = False
                break
    elif entry.split != "parts":
        from_cache = False
    todo = [t for t in targets if not t.have() and not (from_cache or (entry.split == "parts" and t.cached))]
    todo += [t for t in mm_targets if not t.have()]
    if on_event:
        on_event(DownloadEvent(job_id, "starting", total=total, message=f"{entry.quant} of {repo}",
                               partials=[str(t.incomplete) for t in todo]))
    partial = sum(partial_bytes(t) for t in todo)
    reused = total - sum(t.size for t in todo)
    need = sum(t.size for t in todo) - partial + (entry.size if entry.split == "parts" else 0)
    free = free_disk_bytes(targets[0].final.parent)
    if todo and need + DISK_MARGIN_BYTES > free:
        raise DiskSpaceError(
            f"not enough disk space for {entry.quant} of {repo}: it needs {need / 2**30:.1f} GiB more and "
            f"{free / 2**30:.1f} GiB is free on {targets[0].final.anchor or '/'} (free some space, or choose "
            f"another download folder: DESKTOP_CHAT_MODELS_DIR or {paths.library_settings_path()})")

    prog.done = reused + partial
    conns = connections or paths.download_connections()
    fetched = 0
    sources: list[Path] = []
    for i, t in enumerate(targets, 1):
        if t.have():
            _verify_existing(t, t.final, i, prog, cancel, ours=True)
            sources.append(t.final)
        elif t in todo:
            fetched += _fetch_one(t, i, prog, cancel, repo=repo, connections=conns, **kw)
            sources.append(t.final)
        else:  # a part in the HF cache: read for joining, never written
            if not _verify_existing(t, t.cached, i, prog, cancel, ours=False):  # type: ignore[arg-type]
                fetched += _fetch_one(t, i, prog, cancel, repo=repo, connections=conns, **kw)
                sources.append(t.final)
            else:
                sources.append(t.cached)  # type: ignore[arg-type]

    mmproj: Path | None = None
    for i, t in enumerate(mm_targets, len(targets) + 1):
        if t.have():
            _verify_existing(t, t.final, i, prog, cancel, ours=True)
        else:
            fetched += _fetch_one(t, i, prog, cancel, repo=repo, connections=conns, **kw)
        mmproj = t.final

    from_cache = from_cache and entry.split != "parts"  # joined parts are a new file, in the library
    origin = "hf-cache" if from_cache else "downloaded"
    model_path = targets[0].cached if from_cache else targets[0].final
    if entry.split == "parts":
        model_path = _join(sources, entry, repo, base, prog, cancel, targets)
    assert model_path is not None
    return _install(model_path, origin, entry, targets, repo, commit, profile, prog, cancel, fetched, reused,
                    mmproj)


def _install(model_path: Path, origin: str, entry: hub.QuantEntry, targets: list[FileTarget], repo: str,
             commit: str, profile: Any, prog: Progress, cancel: threading.Event, fetched: int,
             reused: int, mmproj: Path | None = None) -> DownloadResult:
    """Check (and in the library, repair in place) the GGUF and its projector, then register them."""
    prog.emit("repairing", message="checking the GGUF")
    source_sha = [t.sha256 or t.etag for t in targets]
    earlier = registry.find_by_path(model_path) or {}
    try:
        # A user who undid the repair keeps the original bytes: from then on it is repaired at load time.
        repairs_in_place = origin == "downloaded" and not earlier.get("reverted")
        if repairs_in_place:
            # fix() reads the file once, patches only if needed (journaled, undoable) and re-reads to confirm.
            fixes = gguf_repair.fix(model_path).summary()
        else:
            fixes = []
        report = gguf_doctor.inspect(model_path)
    except AppError as exc:
        raise DownloadError(f"{entry.files[0]} arrived intact but is not a usable GGUF: {exc.message}",
                            code="bad_gguf", details=exc.details) from exc
    if mmproj is not None:
        from desktop.engine.gguf import projector

        try:
            projector.check_pair(model_path, mmproj)
        except AppError as exc:
            raise DownloadError(f"{entry.mmproj} arrived intact but does not fit {entry.files[0]}: {exc.message}",
                                code="bad_projector", details=exc.details) from exc
    in_place = origin == "downloaded" and (bool(fixes) or gguf_repair.has_undo(model_path))
    if fixes:
        prog.emit("verifying", message="hashing the repaired file")
        final_sha = registry.hash_file(model_path, cancel=cancel)
        _remember(model_path, source_sha[0] or "", final_sha)
    elif in_place:  # repaired by an earlier run: the verified record knows the repaired hash
        final_sha = _verified().get(os.path.realpath(model_path), {}).get("now") or registry.hash_file(model_path)
    else:
        final_sha = source_sha[0] if entry.split != "parts" else registry.hash_file(model_path, cancel=cancel)
    if not repairs_in_place:
        recorded = gguf_repair.load_time_fixes(report)
    elif fixes:
        recorded = fixes
    else:
        recorded = list(earlier.get("fixes") or []) if in_place else []
    pid = profile.id if profile else generated.profile_from_report(report, repo=repo, quant=entry.quant).id
    model_id = registry.register_model(
        pid, model_path, quant=entry.quant, repo=repo, revision=commit, files=entry.files, size=entry.size,
        sha256=final_sha, source_sha256=source_sha, fixes=recorded, origin=origin, repaired_in_place=in_place,
        name=earlier.get("name") or (profile.name if profile else None) or report.name or model_path.stem,
        mmproj=str(mmproj) if mmproj else None, vision=mmproj is not None)
    result = DownloadResult(str(model_path), final_sha, source_sha, fixes if repairs_in_place else recorded,
                            pid, model_id, repo, entry.quant, entry.files, entry.size, fetched, reused, origin,
                            str(mmproj) if mmproj else None)
    prog.emit("done", message="; ".join(result.fixes) or "verified", result=result.to_dict())
    return result


class DownloadManager(DownloadQueue):
    """The download queue (queue.py) running this module's downloads: what the front ends start."""

    def __init__(self, on_event: Callable[[DownloadEvent], None] | None = None, **kwargs: Any) -> None:
        super().__init__(on_event, run=run_download, discard=discard_partials, **kwargs)
