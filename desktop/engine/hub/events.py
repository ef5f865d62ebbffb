"""What a download reports while it runs: typed events, and the throttled progress that sends them.

Runs in the caller's process (the CLI, or the app's GUI process): events are created on the downloading
thread(s) (the CLI's main thread, or the download queue's worker thread and its connection threads); the app
hands them to its GUI thread with a queued signal. No Qt.
"""
from __future__ import annotations

import dataclasses
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

EVENT_INTERVAL_S = 0.1
# Told to the user when a server answers a resume (a Range request) with the whole file.
CANNOT_RESUME = "the server cannot resume; starting over"


@dataclass
class DownloadEvent:
    """Progress of one job. ``file_*`` is the current file, ``done``/``total`` the whole job (bytes);
    ``partials`` the job's own ``.incomplete`` files (what a cancel deletes)."""

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
    partials: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class Progress:
    """Throttled progress events with a smoothed speed. Thread-safe: parallel connections add to it."""

    def __init__(self, job_id: str, total: int, n_files: int, on_event: Callable[[DownloadEvent], None] | None):
        self.job_id, self.total, self.n_files, self.on_event = job_id, total, n_files, on_event
        self.done = 0
        self.speed = 0.0
        self._last_t = time.monotonic()
        self._last_done = 0
        self._last_emit = 0.0
        self._lock = threading.RLock()

    def add(self, n: int) -> None:
        with self._lock:
            self.done += n

    def emit(self, state: str, t: Any = None, index: int = 0, file_done: int = 0,
             message: str = "", force: bool = True, **extra: Any) -> None:
        with self._lock:
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
            ev = DownloadEvent(self.job_id, state, t.name if t else None, index, self.n_files, file_done,
                               t.size if t else 0, self.done, self.total, self.speed, eta, message, **extra)
        self.on_event(ev)
