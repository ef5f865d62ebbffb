"""File hashes the library records and checks (SHA-256, and git's blob id for small non-LFS files).

Reading a whole file is slow, so this runs off the GUI thread: in the caller's process on the thread that
imports or downloads (the CLI's main thread, a worker thread of the app's GUI process, the download queue's
worker thread); ``hub.fetch`` feeds a hasher as bytes arrive.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any


def new_hasher(algo: str, size: int) -> Any:
    """``sha256``, or ``gitsha1``: git's blob id, sha1("blob <size>\\0" + content), what the Hub gives non-LFS files."""
    return hashlib.sha256() if algo == "sha256" else hashlib.sha1(b"blob %d\0" % size)


def hash_file(path: str | Path, algo: str = "sha256", progress: Any = None, cancel: Any = None) -> str:
    """Hex digest of a file, read 8 MiB at a time; ``progress(done, total)`` after each read.

    Slow for big GGUFs (seconds per GB): callers run it off the GUI thread, once per file.
    """
    p = Path(path)
    total = p.stat().st_size
    h = new_hasher(algo, total)
    done = 0
    with p.open("rb") as f:
        while chunk := f.read(8 << 20):
            h.update(chunk)
            done += len(chunk)
            if progress:
                progress(done, total)
            if cancel is not None and cancel.is_set():
                from desktop.engine.errors import DownloadCancelled

                raise DownloadCancelled("download paused or cancelled while verifying")
    return h.hexdigest()
