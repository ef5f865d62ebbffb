"""The app's one download queue as a Qt object: the engine's DownloadManager, its events re-emitted on the GUI thread.

No widgets: the app state (ui/state.py) owns one, and the Downloads page, the repo page and the welcome cards
subscribe to ``event_received``. The manager calls back on its worker thread; emitting a signal there is
thread-safe, and delivery to this GUI-thread object is queued.
"""
from __future__ import annotations

from typing import Any

from PySide6.QtCore import QObject, Signal

from desktop.engine.hub import downloads
from desktop.engine.hub.events import DownloadEvent
from desktop.engine.hub.queue import ACTIVE_STATES, Job
from desktop.engine.profiles import ProfileStore


class DownloadsController(QObject):
    """The app's one DownloadManager, with its events as a Qt signal. Lives on the GUI thread; its owner (the app
state) closes it on quit, which leaves a running job resumable, marked interrupted."""

    event_received = Signal(object)  # DownloadEvent, delivered queued on the GUI thread
    model_installed = Signal(str)  # profile id, when a job is done

    def __init__(self, parent: QObject | None = None, store: ProfileStore | None = None, **run_kwargs: Any) -> None:
        super().__init__(parent)
        self.store = store or ProfileStore()
        # Called on the manager's worker thread: emitting a signal is thread-safe, and the connection
        # to GUI-thread receivers is queued because this object lives on the GUI thread.
        self.manager = downloads.DownloadManager(self.event_received.emit, store=self.store, **run_kwargs)
        self.event_received.connect(self._on_event)

    def _on_event(self, ev: DownloadEvent) -> None:
        if ev.state == "done" and ev.result:
            self.store.reload()
            self.model_installed.emit(ev.result.get("profile_id", ""))

    def queue(self, spec: str, quant: str | None) -> Job:
        """Download ``quant`` of ``spec`` (a profile id or a repo; no quant: the recommended one). A failed,
        paused or cancelled job of the same quant is resumed rather than queued twice, and a running one is
        returned as it is. Raises AppError when the download cannot be queued."""
        key = {"profile_id": spec} if spec in self.store.ids() else {"repo": spec}
        job = self.latest(**key, quant=quant or None) if quant else None
        if job is not None and job.state in {"failed", "paused", "cancelled"}:
            self.manager.resume(job.id)
            return job
        if job is None or job.state not in ACTIVE_STATES:
            job = self.manager.submit(spec, quant=quant or None)
        return job

    def job(self, job_id: str) -> Job | None:
        """The job ``job_id`` as the queue has it now (None: not in the queue); in memory, no I/O."""
        try:
            return self.manager.job(job_id)
        except KeyError:
            return None

    def resume_interrupted(self) -> int:
        """Jobs the last run left mid-way continue (the user paused ones stay paused)."""
        return self.manager.resume_interrupted()

    def latest(self, *, repo: str | None = None, profile_id: str | None = None,
               quant: str | None = None) -> Job | None:
        """The newest job for this repo or profile (and quant); in memory, no I/O."""
        hits = [j for j in self.manager.jobs()
                if (repo is None or j.repo.lower() == repo.lower())
                and (profile_id is None or j.profile_id == profile_id)
                and (quant is None or (j.quant or "").upper() == quant.upper())]
        return max(hits, key=lambda j: j.created) if hits else None

    def close(self) -> None:
        self.manager.close()
