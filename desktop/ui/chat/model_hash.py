"""The sha256 of a loaded model for answers' provenance: once per file, off the GUI thread.

The registry already holds the hash of what the app downloaded or imported; anything else is hashed on a worker
and remembered in the chat store (by size and mtime), so a file is hashed once. GUI thread for the bookkeeping.
"""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject

from desktop.engine.chats import store as chat_store
from desktop.engine.chats.store import ChatStore
from desktop.engine.library import registry
from desktop.ui.workers import JobKeeper


class ModelHasher(QObject):
    def __init__(self, chats: ChatStore, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.chats = chats
        self._hashing: set[str] = set()
        self._jobs = JobKeeper(self)  # each worker job held until its answer


    def hash_later(self, path: str) -> None:
        """sha256 of the model for provenance: once per file (cached by size+mtime), off the GUI thread."""
        resolved = str(Path(path).resolve())
        if resolved in self._hashing:
            return
        self._hashing.add(resolved)

        def lookup() -> tuple[str, str | None]:
            # Runs on a worker: the registry read and the stat are disk I/O.
            for entry in registry.read_registry().values():  # downloads and imports were hashed when registered
                if entry.get("sha256") and str(Path(entry.get("path", "")).resolve()) == resolved:
                    if Path(resolved).stat().st_size == entry.get("size", -1):
                        return "registry", entry["sha256"]
            return "hash", None

        def known(res: tuple[str, str | None]) -> None:
            if res[1] is not None:
                done(res[1])
            elif self.chats.cached_sha256(resolved):
                self._hashing.discard(resolved)
            else:
                self._jobs.start(lambda: chat_store.hash_file(resolved), done, failed)

        def done(digest: str) -> None:
            self._hashing.discard(resolved)
            try:
                self.chats.remember_sha256(resolved, digest)
            except OSError:
                pass  # the file went away meanwhile: provenance keeps the name only

        def failed(_exc: BaseException) -> None:
            self._hashing.discard(resolved)

        self._jobs.start(lookup, known, failed)
