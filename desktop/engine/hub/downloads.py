"""GGUF downloads from the Hugging Face Hub: resume, retry, stall detection, sha256, repair on arrival.

Files land in the standard HF cache layout (``models--owner--name/blobs/<sha256>`` with a snapshot
symlink), so files other tools fetched are reused and files we fetch are reused by them. We do the
transfer ourselves, over huggingface_hub's HTTP session, auth and metadata calls, because
``hf_hub_download`` deletes its partial file on any interruption and buffers 10 MiB chunks: here the
partial ``<blob>.incomplete`` is written as bytes arrive (hashed on the way; writing and hashing run on
threads of their own, overlapped with the network reads) and a restart resumes from its last byte.

A file is only linked into the cache after its sha256 matches the Hub's LFS hash, and only registered
as a model after the GGUF doctor has checked (and if needed repaired) it.

``run_download`` runs on the caller's thread (the CLI's main thread, or the manager's worker thread);
``DownloadManager`` owns one worker thread and a persisted queue. No Qt, no llama_cpp.
"""
from __future__ import annotations

import dataclasses
import errno
import json
import os
import queue
import shutil
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from desktop.engine import paths
from desktop.engine.gguf import doctor as gguf_doctor
from desktop.engine.hub import listing as hub
from desktop.engine.library import registry as models
from desktop.engine.errors import (AppError, DiskSpaceError, DownloadCancelled, DownloadError, UnknownProfileError,
                     VerificationError)
from desktop.engine.profiles import Profile, ProfileStore

# Free space kept beyond what the download needs, so the disk is not filled to the last byte.
DISK_MARGIN_BYTES = 256 << 20
WRITE_BYTES = 1 << 20
WRITE_DEPTH = 4  # blocks queued for the writer thread
EVENT_INTERVAL_S = 0.1
ACTIVE_STATES = {"queued", "starting", "downloading", "stalled", "retrying", "verifying", "joining", "repairing"}
FINAL_STATES = {"done", "failed", "cancelled", "paused"}
# The message of a job the app's quit (or a crash) stopped, as opposed to one the user paused.
INTERRUPTED = "interrupted; resume to continue"


@dataclass
class DownloadEvent:
    """Progress of one job. ``file_*`` is the current file, ``done``/``total`` the whole job (bytes)."""

    job_id: str
    state: str
    file: str | None = None
    file_index: int = 0
    n_files: int = 0
    file_done: int = 0
    file_total: int = 0
    done: int = 0
    total: int = 0
    speed: float = 0.0  # bytes per second, smoothed
    eta: float | None = None  # seconds
    message: str = ""
    error: dict[str, Any] | None = None
    result: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


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

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class Job:
    """A persisted download request and where it stands."""

    id: str
    repo: str
    quant: str | None = None
    filename: str | None = None
    profile_id: str | None = None
    target_dir: str | None = None
    state: str = "queued"
    message: str = ""
    error: dict[str, Any] | None = None
    result: dict[str, Any] | None = None
    done: int = 0
    total: int = 0
    files: list[str] = field(default_factory=list)
    created: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def free_disk_bytes(path: Path) -> int:
    """Free bytes on the volume holding ``path`` (its nearest existing ancestor)."""
    p = path
    while not p.exists() and p != p.parent:
        p = p.parent
    return shutil.disk_usage(p).free


def resolve_spec(spec: str, store: ProfileStore) -> tuple[str, Profile | None]:
    """``spec`` is a profile id or a repo id; returns (repo, profile or None)."""
    try:
        prof = store.get(spec)
    except UnknownProfileError:
        if "/" not in spec:
            raise
        linked = [p for p in store.all() if p.source.repo and p.source.repo.lower() == spec.lower()]
        return spec, (linked[0] if linked else None)
    if not prof.source.repo:
        raise DownloadError(f"profile {prof.id!r} has no Hub repo to download from", code="no_repo")
    return prof.source.repo, prof


# ------------------------------------------------------------------------------------------ one file


@dataclass
class _FileTarget:
    name: str
    size: int
    sha256: str | None
    etag: str
    url: str
    final: Path  # what the model path points at (snapshot link or a file in the user's models dir)
    blob: Path  # where the verified bytes live
    incomplete: Path

    def have(self) -> bool:
        return self.final.is_file() or self.blob.is_file()


def _expected_hash(t: _FileTarget) -> tuple[str, str] | None:
    if t.sha256:
        return "sha256", t.sha256.lower()
    if len(t.etag) == 64:
        return "sha256", t.etag.lower()
    if len(t.etag) == 40:
        # Small files outside LFS: the etag is git's blob id, sha1("blob <size>\0" + content).
        return "gitsha1", t.etag.lower()
    return None


class _Progress:
    """Throttled progress events with a smoothed speed (runs on the downloading thread)."""

    def __init__(self, job_id: str, total: int, n_files: int, on_event: Callable[[DownloadEvent], None] | None):
        self.job_id, self.total, self.n_files, self.on_event = job_id, total, n_files, on_event
        self.done = 0
        self.speed = 0.0
        self._last_t = time.monotonic()
        self._last_done = 0
        self._last_emit = 0.0

    def emit(self, state: str, t: _FileTarget | None = None, index: int = 0, file_done: int = 0,
             message: str = "", force: bool = True, **extra: Any) -> None:
        now = time.monotonic()
        dt = now - self._last_t
        if dt >= 0.5:
            inst = (self.done - self._last_done) / dt
            self.speed = inst if self.speed == 0 else 0.6 * inst + 0.4 * self.speed
            self._last_t, self._last_done = now, self.done
        if not force and now - self._last_emit < EVENT_INTERVAL_S:
            return
        self._last_emit = now
        if self.on_event is None:
            return
        eta = (self.total - self.done) / self.speed if self.speed > 0 and state == "downloading" else None
        self.on_event(DownloadEvent(self.job_id, state, t.name if t else None, index, self.n_files, file_done,
                                    t.size if t else 0, self.done, self.total, self.speed, eta, message, **extra))


def _wait(cancel: threading.Event, seconds: float) -> None:
    if cancel.wait(seconds):
        raise DownloadCancelled("download paused or cancelled; run it again to resume")


class _RunningHash:
    """The hash of the partial file, updated as bytes are appended, so a finished download is verified
    without reading it again (bench/NOTES.md: the re-read cost a third of the loopback time)."""

    def __init__(self, algo: str, size: int) -> None:
        self.algo, self.size = algo, size
        self.reset()

    def reset(self) -> None:
        self.h = models.new_hasher(self.algo, self.size)
        self.n = 0

    def update(self, data: bytes) -> None:
        self.h.update(data)
        self.n += len(data)

    def catch_up(self, path: Path, have: int, cancel: threading.Event) -> None:
        """Hash what an earlier run left on disk (once per resume)."""
        self.reset()
        with path.open("rb") as f:
            while self.n < have and (chunk := f.read(min(8 << 20, have - self.n))):
                self.update(chunk)
                if cancel.is_set():
                    raise DownloadCancelled("download paused or cancelled; run it again to resume")


class _DiskWriter:
    """Writes received blocks on one thread and hashes them on another, so the network reads, the page-cache
    copy and the SHA-256 (0.6-1 CPU-s per GB, and one core at most) each get a core of their own: file writes and
    hashlib release the GIL. One thread doing both capped a verified download at about half of curl's loopback
    speed on a 16-core machine; a hasher of its own lifts it to 0.8-0.95 of the SHA-256's own speed there
    (bench/NOTES.md, change 9).

    A block is hashed only after it is written, so the running hash never covers bytes the file lacks. At most
    ``WRITE_DEPTH`` blocks wait in each queue; a hard kill loses those not yet written (and the block being
    gathered), and the resume fetches them again. Created and closed on the download's thread.
    """

    def __init__(self, out: Any, running: _RunningHash, name: str = "", start: int = 0, size: int = 0) -> None:
        self.out, self.running = out, running
        self.name, self.start, self.size = name, start, size  # for the error messages
        self.queued = 0  # bytes handed over by put()
        self.written = 0
        self.error: BaseException | None = None
        self.q: queue.Queue[list[bytes] | None] = queue.Queue(maxsize=WRITE_DEPTH)
        self.hq: queue.Queue[bytes | None] = queue.Queue(maxsize=WRITE_DEPTH)
        self.thread = threading.Thread(target=self._run, name="download-writer", daemon=True)
        self.hasher = threading.Thread(target=self._hash, name="download-hasher", daemon=True)
        self.hasher.start()
        self.thread.start()

    def _run(self) -> None:
        """The writer thread."""
        try:
            while (block := self.q.get()) is not None:
                if self.error is not None:
                    continue  # keep draining, so the reader never blocks on a full queue
                try:
                    # One join here, off the reader thread; one write per block (per-read calls were slower:
                    # bench/NOTES.md, change 8).
                    data = b"".join(block)
                    view = memoryview(data)
                    while view:  # an unbuffered file: a short write is rare, but possible
                        view = view[self.out.write(view):]
                    self.written += len(data)
                    self.hq.put(data)
                except BaseException as exc:  # noqa: BLE001 - handed to the reader thread, which raises it
                    self.error = exc
        finally:
            self.hq.put(None)

    def _hash(self) -> None:
        """The hasher thread: the running hash, in write order."""
        failed = False
        while (data := self.hq.get()) is not None:
            if failed:
                continue  # keep draining, so the writer never blocks on a full queue
            try:
                self.running.update(data)  # also after a write error: every block queued here is on disk
            except BaseException as exc:  # noqa: BLE001 - raised on the reader thread; a resume re-hashes the file
                failed = True
                self.error = self.error or exc

    def put(self, block: list[bytes]) -> None:
        """Queue one block: the network reads as they came (joined on the writer thread)."""
        if self.error is not None:
            self._raise()
        self.q.put(block)
        self.queued += sum(len(b) for b in block)

    def close(self) -> int:
        """Write and hash what is queued, flush; returns the bytes written (raises a write error)."""
        self.q.put(None)
        self.thread.join()
        self.hasher.join()
        if self.error is None:
            try:
                self.out.flush()
            except OSError as exc:
                self.error = exc
        if self.error is not None:
            self._raise()
        return self.written

    def _raise(self) -> None:
        """A local write failed: no re-fetch fixes that, so it ends the download (the partial file stays)."""
        exc = self.error
        if not isinstance(exc, OSError):
            raise exc  # type: ignore[misc]
        at = f"at byte {self.start + self.written:,} of {self.size:,}"
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DiskSpaceError(f"{self.name}: the disk filled up {at} (free some space and run the download "
                                 "again to resume)", details=str(exc)) from exc
        if exc.errno == errno.EFBIG:
            raise DownloadError(f"{self.name}: this file system cannot hold a file that big ({at}; FAT32 stops at "
                                "4 GiB): set DESKTOP_CHAT_MODELS_DIR to a folder on another disk",
                                code="disk_write", details=str(exc)) from exc
        raise DownloadError(f"{self.name}: writing the file failed {at}: {exc.strerror or exc}; the partial file "
                            "is kept", code="disk_write", details=str(exc)) from exc


def _fetch(t: _FileTarget, index: int, prog: _Progress, cancel: threading.Event, *, repo: str,
           stall_after: float, max_retries: int, backoff_base: float, backoff_max: float) -> tuple[int, str]:
    """Bring ``t.incomplete`` up to ``t.size`` bytes, resuming from what is on disk.

    Returns the bytes fetched and the hash (``_expected_hash``'s algorithm) of the whole file.
    """
    import httpx2  # huggingface_hub's HTTP stack (an httpx fork); its session carries auth and proxies
    from huggingface_hub.utils import get_session

    exp = _expected_hash(t)
    if exp is None:
        raise VerificationError(f"{t.name}: the Hub gave no hash to verify it against; refusing to download it")
    running = _RunningHash(exp[0], t.size)
    t.incomplete.parent.mkdir(parents=True, exist_ok=True)
    fetched = 0
    failures = 0
    while True:
        have = t.incomplete.stat().st_size if t.incomplete.exists() else 0
        if have > t.size:
            t.incomplete.unlink()
            have = 0
            running.reset()
        if running.n != have:
            running.catch_up(t.incomplete, have, cancel)
        if have == t.size:
            return fetched, running.h.hexdigest()
        headers = hub.hf_headers()
        if have:
            headers["Range"] = f"bytes={have}-"
        progress_made = False
        try:
            timeout = httpx2.Timeout(connect=min(30.0, stall_after), read=stall_after, write=30.0, pool=30.0)
            with get_session().stream("GET", t.url, headers=headers, timeout=timeout,
                                      follow_redirects=True) as r:
                if r.status_code in (401, 403, 404):
                    r.read()
                    r.raise_for_status()
                if r.status_code == 416:  # range beyond the end: our partial is stale
                    t.incomplete.unlink(missing_ok=True)
                    running.reset()
                    continue
                if r.status_code >= 400:
                    r.read()
                    r.raise_for_status()
                mode = "ab"
                if have and r.status_code != 206:
                    mode, have = "wb", 0  # the server ignored the range: start over
                    prog.done -= t.incomplete.stat().st_size
                    running.reset()
                start = have
                with t.incomplete.open(mode, buffering=0) as out:
                    prog.emit("downloading", t, index, have,
                              "resuming at byte {:,}".format(have) if have else "")
                    # Network reads (~64 KiB) are handed over in blocks of WRITE_BYTES: per-read Python work
                    # halved loopback throughput. The blocks are written, then hashed, on threads of their own.
                    # Whatever was received is written on any way out (a dropped connection, a cancel), so a
                    # resume starts at the exact byte; only a hard kill loses the blocks still in flight.
                    writer = _DiskWriter(out, running, t.name, start, t.size)
                    block: list[bytes] = []
                    n_block = 0
                    try:
                        for chunk in r.iter_bytes():
                            block.append(chunk)
                            n_block += len(chunk)
                            if cancel.is_set():
                                raise DownloadCancelled("download paused or cancelled; run it again to resume")
                            if n_block >= WRITE_BYTES:
                                writer.put(block)
                                prog.done += n_block
                                block, n_block = [], 0
                                prog.emit("downloading", t, index, start + writer.queued, force=False)
                                if start + writer.queued > t.size:
                                    break
                    finally:
                        try:
                            if block:
                                writer.put(block)
                                prog.done += n_block
                        finally:
                            try:
                                writer.close()
                            finally:  # progress counts what reached the disk, also after a write error
                                prog.done -= writer.queued - writer.written
                                have, fetched = start + writer.written, fetched + writer.written
                                progress_made = progress_made or writer.written > 0
            if have > t.size:
                # More bytes than the Hub listed: the file changed upstream since the listing.
                t.incomplete.unlink(missing_ok=True)
                running.reset()
                raise DownloadError(f"{t.name}: the server sent more than the {t.size:,} bytes the Hub listed (the "
                                    "file changed on the Hub); run the download again", code="size_mismatch")
            if have < t.size:
                raise httpx2.RemoteProtocolError("connection closed before the end of the file")
        except AppError:
            raise
        except Exception as exc:  # noqa: BLE001 - sorted below: give up on client errors, retry the rest
            status = getattr(getattr(exc, "response", None), "status_code", None)
            if status is not None and status < 500 and status not in (408, 429):
                raise hub.translate(exc, repo, t.name) from exc
            failures = 0 if progress_made else failures + 1
            if failures > max_retries:
                raise DownloadError(f"{t.name}: the download keeps failing ({type(exc).__name__}); the partial "
                                    f"file is kept, try again later to resume", code="network",
                                    details=str(exc)) from exc
            if isinstance(exc, httpx2.ReadTimeout):
                prog.emit("stalled", t, index, have, f"no data for {stall_after:.0f} s; reconnecting")
            delay = min(backoff_max, backoff_base * 2 ** max(failures - 1, 0))
            prog.emit("retrying", t, index, have, f"{type(exc).__name__}; retrying in {delay:.0f} s")
            _wait(cancel, delay)


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
    data[str(path.resolve())] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "source": source, "now": now}
    _verified_path().parent.mkdir(parents=True, exist_ok=True)
    tmp = _verified_path().with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(_verified_path())


def _known_good(path: Path, expected: str) -> bool:
    rec = _verified().get(str(path.resolve()))
    if not rec or rec.get("source") != expected:
        return False
    st = path.stat()
    return rec["size"] == st.st_size and rec["mtime_ns"] == st.st_mtime_ns


def _link(t: _FileTarget) -> None:
    if t.final == t.blob or t.final.is_file():
        return
    t.final.parent.mkdir(parents=True, exist_ok=True)
    try:
        from huggingface_hub.file_download import _create_symlink

        _create_symlink(str(t.blob), str(t.final), new_blob=False)
    except Exception:  # noqa: BLE001 - no symlinks here (Windows without developer mode): a relative link fails
        os.symlink(os.path.relpath(t.blob, t.final.parent), t.final)


# ------------------------------------------------------------------------------------------ a whole job


def _targets(repo: str, commit: str, entry: hub.QuantEntry, target_dir: Path | None) -> list[_FileTarget]:
    from huggingface_hub import get_hf_file_metadata
    from huggingface_hub.file_download import repo_folder_name

    storage = paths.hf_hub_cache() / repo_folder_name(repo_id=repo, repo_type="model")
    out = []
    for name, sha in zip(entry.files, entry.sha256):
        if hub.safe_relpath(name) is None:
            raise DownloadError(f"refusing the file name {name!r}: it would escape the download directory",
                                code="hostile_name")
        url = hub.resolve_url(repo, name, commit)
        try:
            meta = get_hf_file_metadata(url, token=hub.token(), timeout=30, endpoint=paths.hf_endpoint(),
                                        library_name="desktop-chat")
        except Exception as exc:  # noqa: BLE001
            raise hub.translate(exc, repo, name) from exc
        etag = (meta.etag or sha or "").strip('"')
        if not etag or "/" in etag or etag.startswith("."):
            raise DownloadError(f"the Hub sent no usable ETag for {name}", code="hub_error")
        size = int(meta.size or 0) or entry.sizes[entry.files.index(name)]
        if size <= 0:
            raise DownloadError(f"the Hub sent no size for {name}", code="hub_error")
        blob = storage / "blobs" / etag
        if target_dir is not None and not blob.is_file():
            final = target_dir / repo.replace("/", "--") / name
            out.append(_FileTarget(name, size, sha, etag, meta.location or url, final, final,
                                   final.with_name(final.name + ".incomplete")))
        else:
            final = storage / "snapshots" / (meta.commit_hash or commit) / name
            out.append(_FileTarget(name, size, sha, etag, meta.location or url, final, blob,
                                   blob.with_name(etag + ".incomplete")))
    if target_dir is None:
        ref = storage / "refs" / "main"
        ref.parent.mkdir(parents=True, exist_ok=True)
        ref.write_text(commit)
    return out


def run_download(repo_or_profile: str, *, quant: str | None = None, filename: str | None = None,
                 profile_id: str | None = None, target_dir: str | Path | None = None, job_id: str | None = None,
                 on_event: Callable[[DownloadEvent], None] | None = None, cancel: threading.Event | None = None,
                 store: ProfileStore | None = None, stall_after: float = 30.0, max_retries: int = 5,
                 backoff_base: float = 1.0, backoff_max: float = 30.0) -> DownloadResult:
    """Download, verify, repair and register one quant. Runs on the calling thread; blocking."""
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
    entry = hub.pick(hub.group_quants(listing.files), quant, filename)
    if not entry.complete:
        raise DownloadError(f"{entry.quant} in {repo} is missing some of its {entry.split}; the repo is incomplete",
                            code="incomplete_split")
    commit = listing.commit or "main"
    tdir = Path(target_dir).expanduser() if target_dir else paths.user_models_dir()
    targets = _targets(repo, commit, entry, tdir)

    reused = sum(t.size for t in targets if t.have())
    partial = sum(t.incomplete.stat().st_size for t in targets if not t.have() and t.incomplete.exists())
    need = sum(t.size for t in targets) - reused - partial
    if entry.split == "parts":
        need += entry.size  # the joined copy
    free = free_disk_bytes(targets[0].incomplete.parent)
    if need + DISK_MARGIN_BYTES > free:
        raise DiskSpaceError(
            f"not enough disk space for {entry.quant} of {repo}: it needs {need / 2**30:.1f} GiB more and "
            f"{free / 2**30:.1f} GiB is free on {targets[0].incomplete.parent.anchor or '/'} (free some space, "
            f"or set DESKTOP_CHAT_MODELS_DIR to a bigger disk)")

    total = sum(t.size for t in targets)
    prog = _Progress(job_id, total, len(targets), on_event)
    prog.done = reused + partial
    fetched = 0
    for i, t in enumerate(targets, 1):
        if t.have():
            if t.blob.is_file():
                _link(t)
            _verify_reused(t, i, prog, cancel)
            continue
        got, digest = _fetch(t, i, prog, cancel, repo=repo, stall_after=stall_after, max_retries=max_retries,
                             backoff_base=backoff_base, backoff_max=backoff_max)
        fetched += got
        want = _verify_new(t, i, prog, digest)
        t.blob.parent.mkdir(parents=True, exist_ok=True)
        os.replace(t.incomplete, t.blob)
        _link(t)
        _remember(t.blob, want, want)

    model_path = targets[0].final
    if entry.split == "parts":
        model_path = _join(targets, entry, repo, tdir, prog, cancel)

    prog.emit("repairing", message="checking the GGUF")
    try:
        # fix() reads the file once, patches only if needed and re-reads to confirm; the report after
        # it comes from the doctor's cache.
        fixes = gguf_doctor.fix(model_path).summary()
        report = gguf_doctor.inspect(model_path)
    except AppError as exc:
        raise DownloadError(f"{entry.files[0]} arrived intact but is not a usable GGUF: {exc.message}",
                            code="bad_gguf", details=exc.details) from exc
    source_sha = [t.sha256 or t.etag for t in targets]
    if fixes:
        prog.emit("verifying", message="hashing the repaired file")
        final_sha = models.hash_file(model_path, cancel=cancel)
        _remember(model_path, source_sha[0], final_sha)
    else:
        final_sha = source_sha[0] if entry.split != "parts" else models.hash_file(model_path, cancel=cancel)

    pid = profile.id if profile else models.profile_from_report(report, repo=repo, quant=entry.quant).id
    model_id = models.register_model(
        pid, model_path, quant=entry.quant, repo=repo, revision=commit, files=entry.files, size=entry.size,
        sha256=final_sha, source_sha256=source_sha, fixes=fixes, origin="download")
    result = DownloadResult(str(model_path), final_sha, source_sha, fixes, pid, model_id, repo, entry.quant,
                            entry.files, entry.size, fetched, reused)
    prog.emit("done", message="; ".join(fixes) or "verified", result=result.to_dict())
    return result


def _verify_new(t: _FileTarget, index: int, prog: _Progress, got: str) -> str:
    """Compare the hash taken while downloading with the Hub's; a mismatch deletes the file."""
    algo, want = _expected_hash(t)  # type: ignore[misc] - _fetch refused a file without one
    prog.emit("verifying", t, index, t.size)
    if got != want:
        t.incomplete.unlink(missing_ok=True)
        raise VerificationError(
            f"{t.name} is corrupt: its {algo} is {got[:12]}… but the Hub says {want[:12]}…; the file was "
            f"deleted and not registered; download it again", details=f"got {got}, expected {want}")
    return want


def _verify_reused(t: _FileTarget, index: int, prog: _Progress, cancel: threading.Event) -> None:
    exp = _expected_hash(t)
    if exp is None:
        raise VerificationError(f"{t.name}: the Hub gave no hash to verify it against; refusing to use it")
    algo, want = exp
    path = t.final if t.final.exists() else t.blob
    if _known_good(path, want):
        return
    got = models.hash_file(path, algo, lambda d, _n: prog.emit("verifying", t, index, d, force=False), cancel)
    rec = _verified().get(str(path.resolve()), {})
    if got == want or (rec.get("source") == want and rec.get("now") == got):
        _remember(path, want, got)
        return
    # A corrupt copy in the shared cache would be "found" forever; remove it so the next run refetches.
    real = path.resolve()
    for p in {path, real}:
        p.unlink(missing_ok=True)
    raise VerificationError(
        f"the cached copy of {t.name} is corrupt (its {algo} does not match the Hub's); it was deleted, so "
        f"downloading again fetches a fresh copy", details=f"got {got}, expected {want}")


def _join(targets: list[_FileTarget], entry: hub.QuantEntry, repo: str, tdir: Path | None, prog: _Progress,
          cancel: threading.Event) -> Path:
    base = hub.PART_RE.match(Path(entry.files[0]).name)
    name = base.group("base") if base else Path(entry.files[0]).name
    out = (tdir or paths.models_dir()) / repo.replace("/", "--") / name
    tmp = out.with_name(out.name + ".joining")
    out.parent.mkdir(parents=True, exist_ok=True)
    done = 0
    with tmp.open("wb") as w:
        for i, t in enumerate(targets, 1):
            with t.final.open("rb") as r:
                while chunk := r.read(8 << 20):
                    w.write(chunk)
                    done += len(chunk)
                    prog.emit("joining", t, i, done, force=False)
                    if cancel.is_set():
                        raise DownloadCancelled("download paused or cancelled while joining parts")
    os.replace(tmp, out)
    # The byte-split parts are useless once joined (llama.cpp cannot read them): give the space back.
    for t in targets:
        real = t.final.resolve()
        t.final.unlink(missing_ok=True)
        real.unlink(missing_ok=True)
    return out


def discard_partials(repo_or_profile: str, store: ProfileStore | None = None) -> int:
    """Delete the ``.incomplete`` files of a repo (a cancelled job); returns bytes freed. Offline."""
    from huggingface_hub.file_download import repo_folder_name

    repo, _ = resolve_spec(repo_or_profile, store or ProfileStore())
    freed = 0
    dirs = [paths.hf_hub_cache() / repo_folder_name(repo_id=repo, repo_type="model") / "blobs"]
    if paths.user_models_dir():
        dirs.append(paths.user_models_dir() / repo.replace("/", "--"))  # type: ignore[operator]
    for d in dirs:
        for f in d.rglob("*.incomplete") if d.exists() else []:
            freed += f.stat().st_size
            f.unlink(missing_ok=True)
    return freed


# ------------------------------------------------------------------------------------------ the queue


class DownloadManager:
    """Download jobs run one at a time on a worker thread; the queue is persisted as JSON.

    ``on_event`` is called on the worker thread: a GUI must hand events to its own thread (the Qt
    adapter does that with a queued signal). Public methods may be called from any thread.
    """

    def __init__(self, on_event: Callable[[DownloadEvent], None] | None = None, *,
                 state_path: Path | None = None, store: ProfileStore | None = None, **run_kwargs: Any) -> None:
        self.on_event = on_event
        self.state_path = state_path or paths.data_dir() / "downloads.json"
        self.store = store or ProfileStore()
        self.run_kwargs = run_kwargs
        self._lock = threading.RLock()
        self._jobs: dict[str, Job] = {}
        self._cancel: dict[str, threading.Event] = {}
        self._discard: set[str] = set()
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._idle = threading.Condition(self._lock)
        self._closing = False
        self._load()
        self._thread = threading.Thread(target=self._worker, name="downloads", daemon=True)
        self._thread.start()

    # persistence -----------------------------------------------------------------------------
    def _load(self) -> None:
        try:
            raw = json.loads(self.state_path.read_text())
        except (OSError, ValueError):
            raw = []
        for d in raw if isinstance(raw, list) else []:
            try:
                job = Job(**{k: v for k, v in d.items() if k in Job.__dataclass_fields__})
            except TypeError:
                continue
            if job.state in ACTIVE_STATES:
                # The app stopped mid-download; the partial file on disk is where it resumes from.
                job.state, job.message = "paused", INTERRUPTED
            self._jobs[job.id] = job

    def _save(self) -> None:
        with self._lock:
            data = [j.to_dict() for j in self._jobs.values()]
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(data, indent=1))
        tmp.replace(self.state_path)

    # API -------------------------------------------------------------------------------------
    def jobs(self) -> list[Job]:
        with self._lock:
            return [dataclasses.replace(j) for j in self._jobs.values()]

    def job(self, job_id: str) -> Job:
        with self._lock:
            return dataclasses.replace(self._jobs[job_id])

    def submit(self, repo_or_profile: str, *, quant: str | None = None, filename: str | None = None,
               target_dir: str | None = None) -> Job:
        repo, prof = resolve_spec(repo_or_profile, self.store)
        job = Job(uuid.uuid4().hex[:12], repo, quant, filename, prof.id if prof else None, target_dir)
        with self._lock:
            self._jobs[job.id] = job
        self._save()
        self._queue.put(job.id)
        return dataclasses.replace(job)

    def resume(self, job_id: str) -> None:
        with self._lock:
            job = self._jobs[job_id]
            if job.state not in {"paused", "failed", "cancelled"}:
                return
            job.state, job.message, job.error = "queued", "", None
        self._save()
        self._event(DownloadEvent(job_id, "queued", done=job.done, total=job.total))
        self._queue.put(job_id)

    def resume_interrupted(self) -> int:
        """Resume the jobs a quit or crash interrupted (not those the user paused); returns how many."""
        n = 0
        for j in self.jobs():
            if j.state == "paused" and j.message == INTERRUPTED:
                self.resume(j.id)
                n += 1
        return n

    def pause(self, job_id: str) -> None:
        self._stop(job_id, discard=False)

    def cancel(self, job_id: str) -> None:
        self._stop(job_id, discard=True)

    def remove(self, job_id: str) -> None:
        self.cancel(job_id)
        with self._lock:
            self._jobs.pop(job_id, None)
        self._save()

    def wait(self, job_id: str, timeout: float = 60.0) -> Job:
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._jobs[job_id].state not in FINAL_STATES:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._idle.wait(left)
            return dataclasses.replace(self._jobs[job_id])

    def close(self) -> None:
        """Stop the worker; a running job is left resumable and marked interrupted (app quit)."""
        self._closing = True
        for ev in list(self._cancel.values()):
            ev.set()
        self._queue.put(None)
        self._thread.join(timeout=10)

    # worker ------------------------------------------------------------------------------------
    def _stop(self, job_id: str, *, discard: bool) -> None:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                return
            ev = self._cancel.get(job_id)
            if discard:
                self._discard.add(job_id)
            if ev is not None:
                ev.set()  # the worker notices between chunks and settles the state
                return
            if job.state in {"queued", "paused", "failed"}:
                job.state = "cancelled" if discard else "paused"
                self._idle.notify_all()
        if discard:
            self._discard_files(job)
        self._save()
        self._event(DownloadEvent(job_id, job.state, done=job.done, total=job.total))

    def _discard_files(self, job: Job) -> None:
        try:
            discard_partials(job.profile_id or job.repo, self.store)
        except AppError:
            pass

    def _event(self, ev: DownloadEvent) -> None:
        with self._lock:
            job = self._jobs.get(ev.job_id)
            if job is not None:
                job.state = ev.state
                job.done, job.total = ev.done or job.done, ev.total or job.total
                if ev.message:
                    job.message = ev.message
        if self.on_event:
            try:
                self.on_event(ev)
            except Exception:  # noqa: BLE001 - a broken listener must not kill the download thread
                pass

    def _worker(self) -> None:
        while True:
            job_id = self._queue.get()
            if job_id is None:
                return
            with self._lock:
                job = self._jobs.get(job_id)
                if job is None or job.state != "queued":
                    continue
                cancel = self._cancel[job_id] = threading.Event()
            self._run(job, cancel)

    def _run(self, job: Job, cancel: threading.Event) -> None:
        final: DownloadEvent
        try:
            res = run_download(job.profile_id or job.repo, quant=job.quant, filename=job.filename,
                               target_dir=job.target_dir, job_id=job.id, on_event=self._event, cancel=cancel,
                               store=self.store, **self.run_kwargs)
            with self._lock:
                job.result, job.files = res.to_dict(), res.files
            final = DownloadEvent(job.id, "done", done=res.size, total=res.size, message="; ".join(res.fixes),
                                  result=res.to_dict())
        except DownloadCancelled:
            discard = job.id in self._discard
            if discard:
                self._discard_files(job)
            msg = ("cancelled" if discard else
                   INTERRUPTED if self._closing else "paused; resume to continue")
            final = DownloadEvent(job.id, "cancelled" if discard else "paused", done=job.done, total=job.total,
                                  message=msg)
        except AppError as exc:
            with self._lock:
                job.error = exc.to_dict()
            final = DownloadEvent(job.id, "failed", done=job.done, total=job.total, message=exc.message,
                                  error=exc.to_dict())
        except Exception as exc:  # noqa: BLE001 - never let the worker die; report it as a failed job
            err = DownloadError(f"download failed unexpectedly: {exc}", details=repr(exc))
            with self._lock:
                job.error = err.to_dict()
            final = DownloadEvent(job.id, "failed", message=err.message, error=err.to_dict())
        with self._lock:
            self._cancel.pop(job.id, None)
            self._discard.discard(job.id)
        self._event(final)
        self._save()
        with self._idle:
            self._idle.notify_all()


# ------------------------------------------------------------------------------------------ quants + fit


@dataclass
class QuantListing:
    repo: str
    profile_id: str | None
    n_ctx: int
    kv_type: str
    arch_source: str  # "profile" | "gguf header" | "unknown"
    entries: list[hub.QuantEntry]
    rejected: list[str]
    hardware: dict[str, Any]
    advice: list[str] = dataclasses.field(default_factory=list)  # fit.advise for the recommended quant

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["entries"] = [e.to_dict() for e in self.entries]
        return d


def list_quants(repo_or_profile: str, *, n_ctx: int | None = None, kv_type: str | None = None,
                store: ProfileStore | None = None, hw: Any = None) -> QuantListing:
    """A repo's quants with a fit verdict each, against this machine (or ``hw``). Network; any thread."""
    from desktop.engine.hub import fit
    from desktop.engine.hub import hardware

    store = store or ProfileStore()
    repo, profile = resolve_spec(repo_or_profile, store)
    listing = hub.list_files(repo)
    entries = hub.group_quants(listing.files)
    hw = hw or hardware.detect()
    kv_type = kv_type or (profile.load.kv_cache_type if profile else "f16")
    arch: fit.Arch | None = None
    source = "unknown"
    numbers: dict[str, Any] = {}
    local = _local_header(repo, entries)
    if local:
        numbers = local
        arch = fit.Arch.from_numbers(numbers)
        source = "downloaded gguf header"
    if arch is None and profile and profile.architecture.layers:
        arch = fit.Arch.from_profile(profile)
        source = "profile"
    elif arch is None and entries:
        try:
            numbers = hub.read_remote_header(repo, entries[0].files[0], listing.commit or "main")
            arch = fit.Arch.from_numbers(numbers)
            source = "gguf header" if arch else "unknown"
        except AppError:
            arch = None
    if n_ctx is None:
        n_ctx = profile.context.default if profile else min(int(numbers.get("context_native") or 4096), 4096)
    fa = profile.load.flash_attn if profile else "auto"
    swa_full = profile.load.swa_full if profile else True
    for e in entries:
        e.fit = fit.estimate(e.size, arch, n_ctx, hw, kv_type, flash_attn=fa, swa_full=swa_full).to_dict()
    rec = (profile.source.recommended_quant or "").upper() if profile else ""
    pick = next((e for e in entries if e.quant.upper() == rec), entries[0] if entries else None)
    advice = [f"{pick.quant}: {line}" for line in fit.advise(pick.size, arch, n_ctx, hw, kv_type, flash_attn=fa)] \
        if pick else []
    return QuantListing(repo, profile.id if profile else None, n_ctx, kv_type, source, entries, listing.rejected,
                        hw.to_dict(), advice)


def _local_header(repo: str, entries: list[hub.QuantEntry]) -> dict[str, Any] | None:
    """Architecture numbers from a copy already on disk (complete or partial), if any: no network."""
    from huggingface_hub.file_download import repo_folder_name

    from desktop.engine.gguf import header as gguf_header

    blobs = paths.hf_hub_cache() / repo_folder_name(repo_id=repo, repo_type="model") / "blobs"
    for e in entries:
        for sha in e.sha256[:1]:
            for cand in (blobs / str(sha), blobs / f"{sha}.incomplete"):
                if sha and cand.is_file() and cand.stat().st_size >= 64 * 1024:
                    with cand.open("rb") as f:
                        head = f.read(hub.HEADER_PREFIX_BYTES)
                    try:
                        numbers = gguf_header.arch_numbers(gguf_header.parse_prefix(head))
                    except AppError:
                        continue
                    if numbers.get("layers") and numbers.get("head_dim"):
                        return numbers
    return None
