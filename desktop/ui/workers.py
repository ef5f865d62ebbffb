"""Background jobs for the GUI: they run on QThreadPool threads and only emit signals.

Workers never touch widgets, Qt models or the chat store (whose SQLite connection belongs to the GUI
thread): they compute, then hand the result to the GUI thread through a queued signal.
"""
from __future__ import annotations

from typing import Any, Callable

import shiboken6
from PySide6.QtCore import QObject, QRunnable, Qt, QThreadPool, Signal


class _Signals(QObject):
    done = Signal(object)  # the function's result
    failed = Signal(object)  # the exception


class Job(QRunnable):
    """Run ``fn()`` on the global thread pool; ``done``/``failed`` arrive on the receiver's (GUI) thread."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        super().__init__()
        self.fn = fn
        self.signals = _Signals()

    def run(self) -> None:  # worker thread
        try:
            result = self.fn()
        except Exception as exc:  # noqa: BLE001 - every failure is reported to the GUI, which presents it
            self._emit(self.signals.failed, exc)
            return
        self._emit(self.signals.done, result)

    @staticmethod
    def _emit(signal: Any, value: Any) -> None:
        try:
            signal.emit(value)
        except RuntimeError:
            # The owner (a closed window) was deleted while this ran: nobody is left to tell.
            pass


def start(fn: Callable[[], Any], on_done: Callable[[Any], None], on_failed: Callable[[Any], None],
          owner: QObject) -> Job:
    """Start ``fn`` in the background; the callbacks run on ``owner``'s thread (queued)."""
    job = Job(fn)
    job.setAutoDelete(False)  # the caller keeps it until a signal arrives (PySide owns the signals object)
    job.signals.setParent(None)
    job.signals.moveToThread(owner.thread())
    # Queued, to the signals object's (the owner's) thread: a plain callable would otherwise run on the worker.
    job.signals.done.connect(on_done, Qt.ConnectionType.QueuedConnection)
    job.signals.failed.connect(on_failed, Qt.ConnectionType.QueuedConnection)
    QThreadPool.globalInstance().start(job)
    return job


class JobKeeper:
    """Holds each worker job until its answer arrives, then lets it go.

    A job whose Python wrapper is dropped while it runs would be deleted under the thread pool, so the
    views keep every one in flight (not "the last few": a user can start many) and only those.
    """

    def __init__(self, owner: QObject) -> None:
        self.owner = owner
        self.jobs: set[Job] = set()

    def start(self, fn: Callable[[], Any], on_done: Callable[[Any], None],
              on_failed: Callable[[Any], None]) -> Job:
        held: list[Job] = []

        # Queued to the GUI thread, so they run after ``held`` is filled below.
        # An answer that arrives after the view was closed and deleted is dropped, not delivered to dead widgets.
        def done(res: Any) -> None:
            self.jobs.difference_update(held)
            if shiboken6.isValid(self.owner):
                on_done(res)

        def failed(exc: Any) -> None:
            self.jobs.difference_update(held)
            if shiboken6.isValid(self.owner):
                on_failed(exc)

        job = start(fn, done, failed, self.owner)
        held.append(job)
        self.jobs.add(job)
        return job
