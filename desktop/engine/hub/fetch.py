"""Fetching one file over one connection: resume from the partial's last byte, retry, stall detection.

The partial ``<file>.incomplete`` is written as bytes arrive and hashed on the way (writing and hashing run
on threads of their own, overlapped with the network reads), so a finished file is verified without being
read again. A server that answers a resume with the whole file restarts it from byte 0, and the user is
told (``CANNOT_RESUME``). parallel.py fetches big files over several ranged connections instead.
Runs in the caller's process (the CLI, or the app's GUI process) on the download's thread (the CLI's main
thread, or the download queue's worker thread); no Qt, no llama_cpp.
"""
from __future__ import annotations

import errno
import queue
import threading
from pathlib import Path
from typing import Any

from desktop.engine.errors import AppError, DiskSpaceError, DownloadCancelled, DownloadError, VerificationError
from desktop.engine.hub import listing as hub
from desktop.engine.hub.events import CANNOT_RESUME, Progress
from desktop.engine.hub.targets import FileTarget, check_partial, drop_partial, expected_hash, write_sidecar
from desktop.engine.library.hashing import new_hasher

WRITE_BYTES = 1 << 20
WRITE_DEPTH = 4  # blocks queued for the writer thread


def wait(cancel: threading.Event, seconds: float) -> None:
    if cancel.wait(seconds):
        raise DownloadCancelled("download paused or cancelled; run it again to resume")


class _RunningHash:
    """The hash of the partial file, updated as bytes are appended, so a finished download is verified
    without reading it again (bench/NOTES.md: the re-read cost a third of the loopback time)."""

    def __init__(self, algo: str, size: int) -> None:
        self.algo, self.size = algo, size
        self.reset()

    def reset(self) -> None:
        self.h = new_hasher(self.algo, self.size)
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
        exc = self.error
        if not isinstance(exc, OSError):
            raise exc  # type: ignore[misc]
        raise_write_error(exc, self.name, self.start + self.written, self.size)


def retry_after(exc: Exception, t: FileTarget, index: int, prog: Progress, cancel: threading.Event, *, repo: str,
                have: int, failures: int, progress_made: bool, stall_after: float, max_retries: int,
                backoff_base: float, backoff_max: float) -> int:
    """The retry policy of one connection (single or one of the parallel ones), after ``exc``: a client error or
    too many failures in a row raises; otherwise say why, back off, and return the new failure count."""
    import httpx2

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
    wait(cancel, delay)
    return failures


def raise_write_error(exc: OSError, name: str, at_byte: int, size: int) -> None:
    """A local write failed: no re-fetch fixes that, so it ends the download (the partial file stays)."""
    at = f"at byte {at_byte:,} of {size:,}"
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        raise DiskSpaceError(f"{name}: the disk filled up {at} (free some space and run the download "
                             "again to resume)", details=str(exc)) from exc
    if exc.errno == errno.EFBIG:
        raise DownloadError(f"{name}: this file system cannot hold a file that big ({at}; FAT32 stops at "
                            "4 GiB): choose a download folder on another disk (DESKTOP_CHAT_MODELS_DIR)",
                            code="disk_write", details=str(exc)) from exc
    raise DownloadError(f"{name}: writing the file failed {at}: {exc.strerror or exc}; the partial file "
                        "is kept", code="disk_write", details=str(exc)) from exc


def fetch_single(t: FileTarget, index: int, prog: Progress, cancel: threading.Event, *, repo: str,
                 stall_after: float, max_retries: int, backoff_base: float, backoff_max: float) -> tuple[int, str]:
    """Bring ``t.incomplete`` up to ``t.size`` bytes over one connection, resuming from what is on disk.

    Returns the bytes fetched and the hash (``expected_hash``'s algorithm) of the whole file.
    """
    import httpx2  # huggingface_hub's HTTP stack (an httpx fork); its session carries auth and proxies
    from huggingface_hub.utils import get_session

    exp = expected_hash(t)
    if exp is None:
        raise VerificationError(f"{t.name}: the Hub gave no hash to verify it against; refusing to download it")
    running = _RunningHash(exp[0], t.size)
    t.incomplete.parent.mkdir(parents=True, exist_ok=True)
    side = check_partial(t)
    if side is not None and side.get("mode") == "parallel":
        drop_partial(t)  # a preallocated parallel partial is not a prefix: it cannot be continued here
    write_sidecar(t, mode="single")
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
                    mode, have = "wb", 0  # the server ignored the range: start over, and say so
                    prog.add(-t.incomplete.stat().st_size)
                    running.reset()
                    prog.emit("downloading", t, index, 0, CANNOT_RESUME)
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
                                prog.add(n_block)
                                block, n_block = [], 0
                                prog.emit("downloading", t, index, start + writer.queued, force=False)
                                if start + writer.queued > t.size:
                                    break
                    finally:
                        try:
                            if block:
                                writer.put(block)
                                prog.add(n_block)
                        finally:
                            try:
                                writer.close()
                            finally:  # progress counts what reached the disk, also after a write error
                                prog.add(-(writer.queued - writer.written))
                                have, fetched = start + writer.written, fetched + writer.written
                                progress_made = progress_made or writer.written > 0
            if have > t.size:
                # More bytes than the Hub listed: the file changed upstream since the listing.
                drop_partial(t)
                running.reset()
                raise DownloadError(f"{t.name}: the server sent more than the {t.size:,} bytes the Hub listed (the "
                                    "file changed on the Hub); run the download again", code="size_mismatch")
            if have < t.size:
                raise httpx2.RemoteProtocolError("connection closed before the end of the file")
        except AppError:
            raise
        except Exception as exc:  # noqa: BLE001 - sorted by retry_after: give up on client errors, retry the rest
            failures = retry_after(exc, t, index, prog, cancel, repo=repo, have=have, failures=failures,
                                   progress_made=progress_made, stall_after=stall_after, max_retries=max_retries,
                                   backoff_base=backoff_base, backoff_max=backoff_max)
