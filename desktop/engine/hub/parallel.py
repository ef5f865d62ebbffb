"""Fetching one big file over several ranged connections.

The partial ``<file>.incomplete`` is preallocated to the full size; the file is cut into chunks that the
connections take in turn, each asking for ``Range: bytes=<next byte of its chunk>-<chunk end>`` and
writing at its offset through a handle of its own. Per-chunk progress is persisted in the sidecar (after
the bytes are written, at most every ``PERSIST_S``), so after a kill each connection fetches again at
most the tail of the one chunk it was working on. The finished file is hashed once, in order, before it
counts (``hash_file``). A server that ignores Range raises ``RangesIgnored`` at its first answer: the
caller falls back to one connection. Runs in the caller's process (the CLI, or the app's GUI process) on the
download's thread (the CLI's main thread, or the download queue's worker thread) plus one thread per connection.
"""
from __future__ import annotations

import math
import os
import threading
import time
from collections import deque
from typing import Any

from desktop.engine.errors import AppError, DownloadCancelled, DownloadError
from desktop.engine.hub import listing as hub
from desktop.engine.hub.events import Progress
from desktop.engine.hub.fetch import retry_after
from desktop.engine.hub.targets import FileTarget, check_partial, drop_partial, write_sidecar

MIN_CHUNK = 1 << 20
MAX_CHUNK = 64 << 20
PARALLEL_MIN_BYTES = 8 << 20  # smaller files are not worth more than one connection
PERSIST_S = 0.25
# Each connection writes (and counts) every 256 KiB: a kill loses at most that much per connection, plus
# what arrived since the last sidecar write (PERSIST_S); both stay inside the chunk it was working on.
WRITE_BYTES = 256 << 10


class RangesIgnored(Exception):
    """The server answered a ranged request with the whole file (200): only one connection can work."""


def chunk_size(size: int, connections: int) -> int:
    # About four chunks per connection: a slow connection does not hold the end back for long.
    return max(MIN_CHUNK, min(MAX_CHUNK, math.ceil(size / (connections * 4))))


def _preallocate(t: FileTarget) -> None:
    with t.incomplete.open("wb") as fh:
        try:
            os.posix_fallocate(fh.fileno(), 0, t.size)  # really reserve the space where the OS can
        except (AttributeError, OSError):
            fh.truncate(t.size)


class _State:
    def __init__(self, t: FileTarget, chunks: list[list[int]]) -> None:
        self.t, self.chunks = t, chunks
        self.lock = threading.Lock()
        self.todo = deque(i for i, (s, e, d) in enumerate(chunks) if s + d < e)
        self.error: BaseException | None = None
        self.fetched = 0
        self.last_persist = 0.0

    def persist(self, force: bool = False) -> None:
        with self.lock:
            now = time.monotonic()
            if not force and now - self.last_persist < PERSIST_S:
                return
            self.last_persist = now
            write_sidecar(self.t, mode="parallel", chunks=[list(c) for c in self.chunks])

    def done_bytes(self) -> int:
        with self.lock:
            return sum(c[2] for c in self.chunks)


def fetch_parallel(t: FileTarget, index: int, prog: Progress, cancel: threading.Event, *, repo: str,
                   connections: int, stall_after: float, max_retries: int, backoff_base: float,
                   backoff_max: float) -> int:
    """Bring ``t.incomplete`` to completion over ``connections`` ranged connections; returns bytes fetched.

    Raises RangesIgnored (the partial is discarded) when the server cannot serve ranges.
    """
    t.incomplete.parent.mkdir(parents=True, exist_ok=True)
    side = check_partial(t)
    chunks: list[list[int]] | None = None
    if side is not None and side.get("mode") == "parallel" and t.incomplete.exists():
        chunks = [[int(s), int(e), int(d)] for s, e, d in side.get("chunks") or []]
        if not chunks or chunks[-1][1] != t.size or t.incomplete.stat().st_size != t.size:
            chunks = None
    if chunks is None:
        have = t.incomplete.stat().st_size if t.incomplete.exists() and side is not None else 0
        step = chunk_size(t.size, connections)
        chunks = [[s, min(s + step, t.size), 0] for s in range(0, t.size, step)]
        if 0 < have <= t.size:  # a one-connection partial: its prefix counts
            for c in chunks:
                c[2] = max(0, min(c[1], have) - c[0])
            if have < t.size:
                with t.incomplete.open("r+b") as fh:
                    fh.truncate(t.size)
        else:
            _preallocate(t)
    st = _State(t, chunks)
    st.persist(force=True)
    prog.emit("downloading", t, index, st.done_bytes(),
              f"{connections} connections" + (f"; resuming at {st.done_bytes():,} bytes" if st.done_bytes() else ""))
    workers = [threading.Thread(target=_worker, args=(st, index, prog, cancel, repo, stall_after, max_retries,
                                                      backoff_base, backoff_max), name=f"download-conn-{i}",
                                daemon=True) for i in range(min(connections, len(st.todo)))]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    st.persist(force=True)
    if isinstance(st.error, RangesIgnored):
        prog.add(-st.done_bytes())
        drop_partial(t)
        raise st.error
    if st.error is not None:
        raise st.error
    if cancel.is_set():
        raise DownloadCancelled("download paused or cancelled; run it again to resume")
    if st.done_bytes() != t.size:
        raise DownloadError(f"{t.name}: the parallel download ended {t.size - st.done_bytes():,} bytes short",
                            code="network")
    return st.fetched


def _worker(st: _State, index: int, prog: Progress, cancel: threading.Event, repo: str, stall_after: float,
            max_retries: int, backoff_base: float, backoff_max: float) -> None:
    try:
        with st.t.incomplete.open("r+b", buffering=0) as fh:
            while not cancel.is_set():
                with st.lock:
                    if st.error is not None or not st.todo:
                        return
                    i = st.todo.popleft()
                _chunk(st, i, fh, index, prog, cancel, repo, stall_after, max_retries, backoff_base, backoff_max)
    except BaseException as exc:  # noqa: BLE001 - handed to the download's thread, which raises it
        with st.lock:  # the other connections see it at their next block and stop
            st.error = st.error or exc


def _chunk(st: _State, i: int, fh: Any, index: int, prog: Progress, cancel: threading.Event, repo: str,
           stall_after: float, max_retries: int, backoff_base: float, backoff_max: float) -> None:
    import httpx2
    from huggingface_hub.utils import get_session

    t = st.t
    failures = 0
    while True:
        with st.lock:
            start, end, done = st.chunks[i]
        if start + done >= end or cancel.is_set():
            return
        progress_made = False
        try:
            timeout = httpx2.Timeout(connect=min(30.0, stall_after), read=stall_after, write=30.0, pool=30.0)
            headers = {**hub.hf_headers(), "Range": f"bytes={start + done}-{end - 1}"}
            with get_session().stream("GET", t.url, headers=headers, timeout=timeout, follow_redirects=True) as r:
                if r.status_code == 200:
                    raise RangesIgnored(t.name)
                if r.status_code >= 400 or r.status_code != 206:
                    r.read()
                    r.raise_for_status()
                    raise DownloadError(f"{t.name}: unexpected answer {r.status_code} to a ranged request",
                                        code="hub_http")
                pos = start + done
                block: list[bytes] = []
                n_block = 0
                for piece in r.iter_bytes():
                    if st.error is not None:
                        return
                    block.append(piece)
                    n_block += len(piece)
                    if n_block >= WRITE_BYTES or pos + n_block >= end or cancel.is_set():
                        n = _write(st, i, fh, pos, block, end)
                        pos += n
                        prog.add(n)
                        progress_made = True
                        block, n_block = [], 0
                        prog.emit("downloading", t, index, st.done_bytes(), force=False)
                        st.persist()
                        if cancel.is_set() or pos >= end:
                            break
                if block:
                    n = _write(st, i, fh, pos, block, end)
                    pos += n
                    prog.add(n)
                    st.persist()
            if cancel.is_set() or pos >= end:
                return
            raise httpx2.RemoteProtocolError("connection closed before the end of the chunk")
        except (AppError, RangesIgnored):
            raise
        except Exception as exc:  # noqa: BLE001 - sorted by retry_after: give up on client errors, retry the rest
            failures = retry_after(exc, t, index, prog, cancel, repo=repo, have=st.done_bytes(), failures=failures,
                                   progress_made=progress_made, stall_after=stall_after, max_retries=max_retries,
                                   backoff_base=backoff_base, backoff_max=backoff_max)


def _write(st: _State, i: int, fh: Any, pos: int, block: list[bytes], end: int) -> int:
    """Write a block at ``pos`` (never past the chunk's end), then count it in the chunk's progress."""
    from desktop.engine.hub.fetch import raise_write_error

    data = b"".join(block)[:end - pos]
    try:
        fh.seek(pos)
        view = memoryview(data)
        while view:
            view = view[fh.write(view):]
    except OSError as exc:
        raise_write_error(exc, st.t.name, pos, st.t.size)
    with st.lock:
        st.chunks[i][2] += len(data)
        st.fetched += len(data)
    return len(data)
