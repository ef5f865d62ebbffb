"""The download queue as a page: every job with its progress, Pause / Resume / Cancel, and Retry for a failed one.

A view over the app's one download queue (``download_queue.DownloadsController``, owned by the app state), which
re-emits the manager's events (worker thread) as a Qt signal, queued to the GUI thread. The page opens nothing on its own: the repo page (repo_page.py) is where a quant is chosen.
Its rows are the queue's own state: read from the manager when the page is made (so a job that failed in an
earlier run says Failed after a restart) and re-read from it on every event (so an event that arrived
before the page subscribed cannot leave a row behind, e.g. at "Queued").
"""
from __future__ import annotations

from typing import Any, Callable

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from desktop.engine.hub.events import DownloadEvent
from desktop.engine.hub.queue import ACTIVE_STATES, Job
from desktop.ui.library.download_models import JobIdRole, JobsModel, ProgressDelegate, job_state_text
from desktop.ui.library.download_queue import DownloadsController
from desktop.ui.widgets.cards import apply_style, icon


class DownloadsPanel(QWidget):
    """Every download job: progress, speed, ETA, and Pause / Resume / Cancel / Retry on the selected one."""

    def __init__(self, controller: DownloadsController, parent: QWidget | None = None,
                 name_of: Callable[[Job], str] | None = None) -> None:
        super().__init__(parent)
        apply_style(self)
        self.controller = controller
        self.manager = self.controller.manager
        title = QLabel("Downloads")
        title.setObjectName("title")
        note = QLabel("Downloads continue while you chat; interrupted ones resume where they stopped. "
                      "Choose what to download on a model's page in the Hub.")
        note.setObjectName("muted")
        note.setWordWrap(True)
        self.jobs = JobsModel(self, name_of=name_of)
        self.view = QTableView()
        self.view.setModel(self.jobs)
        self.view.setItemDelegateForColumn(2, ProgressDelegate(self.view))
        self.view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.view.verticalHeader().hide()
        self.view.setWordWrap(False)
        self.view.setTextElideMode(Qt.TextElideMode.ElideRight)
        hh = self.view.horizontalHeader()
        # The columns share the page's width (no sideways scrolling, at 2x too): the model's name and the details
        # take what is left after the state, the bar, the speed and the ETA; long text ends in "…".
        hh.setStretchLastSection(False)
        hh.setMinimumSectionSize(40)
        R = QHeaderView.ResizeMode
        for col, mode in enumerate((R.Stretch, R.ResizeToContents, R.Fixed, R.ResizeToContents,
                                    R.ResizeToContents, R.Stretch)):
            hh.setSectionResizeMode(col, mode)
        self.view.setColumnWidth(2, self.fontMetrics().horizontalAdvance("0") * 16)  # the progress bar
        self.view.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.empty = QLabel("Nothing downloaded yet. Open a model in the Hub to choose a quant.")
        self.empty.setObjectName("muted")
        self.pause_btn = QPushButton("Pause")
        self.resume_btn = QPushButton("Resume")
        self.retry_btn = QPushButton("Retry")
        self.cancel_btn = QPushButton("Cancel")
        for b, ic in ((self.pause_btn, "mdi6.pause"), (self.resume_btn, "mdi6.play"),
                      (self.retry_btn, "mdi6.refresh"), (self.cancel_btn, "mdi6.close")):
            b.setObjectName("secondary")
            b.setIcon(icon(ic))
        self.detail = QLabel()
        self.detail.setWordWrap(True)
        self.detail.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        row = QHBoxLayout()
        row.addWidget(self.detail, 1)
        for b in (self.pause_btn, self.resume_btn, self.retry_btn, self.cancel_btn):
            row.addWidget(b)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(24, 20, 24, 16)
        lay.setSpacing(10)
        lay.addWidget(title)
        lay.addWidget(note)
        lay.addWidget(self.empty)
        lay.addWidget(self.view, 1)
        lay.addLayout(row)

        # Subscribe first, then read the queue: an event between the two is applied to a row already there.
        self.controller.event_received.connect(self._on_event)
        self.jobs.set_jobs(self.manager.jobs())
        self.pause_btn.clicked.connect(lambda: self._act("pause"))
        self.resume_btn.clicked.connect(lambda: self._act("resume"))
        self.retry_btn.clicked.connect(lambda: self._act("resume"))
        self.cancel_btn.clicked.connect(lambda: self._act("cancel"))
        self.view.selectionModel().selectionChanged.connect(lambda *_a: self._update())
        self.jobs.rowsInserted.connect(lambda *_a: self._update())
        self.jobs.modelReset.connect(self._update)
        if self.jobs.rowCount():
            self.view.selectRow(self.jobs.rowCount() - 1)
        self._update()

    def sync(self) -> None:
        """Every row again from the manager (in memory)."""
        for j in self.manager.jobs():
            self.jobs.update_job(j)
        self._update()

    def show_job(self, job_id: str) -> None:
        """Add (if new) and select ``job_id``."""
        try:
            self.jobs.update_job(self.manager.job(job_id))
        except KeyError:
            return
        self.view.selectRow(self.jobs.row_of(job_id))
        self._update()

    def selected_job(self) -> str | None:
        rows = self.view.selectionModel().selectedRows()
        return rows[0].data(JobIdRole) if rows else None

    def job_row(self, job_id: str) -> dict[str, Any]:
        """The row shown for ``job_id``."""
        return dict(self.jobs.rows[self.jobs.row_of(job_id)])

    def _act(self, what: str) -> None:
        job_id = self.selected_job()
        if job_id:
            getattr(self.manager, what)(job_id)
            self.show_job(job_id)

    def _on_event(self, ev: DownloadEvent) -> None:
        try:
            job = self.manager.job(ev.job_id)
        except KeyError:
            return
        self.jobs.update_job(job, ev)
        if self.jobs.rowCount() == 1 and not self.selected_job():
            self.view.selectRow(0)
        self._update()

    def _update(self) -> None:
        self.empty.setVisible(self.jobs.rowCount() == 0)
        job_id = self.selected_job()
        r = self.jobs.row_of(job_id) if job_id else -1
        row = self.jobs.rows[r] if r >= 0 else None
        state = row["state"] if row else None
        active = state in ACTIVE_STATES
        self.pause_btn.setEnabled(active)
        self.cancel_btn.setEnabled(active or state == "paused")
        self.resume_btn.setEnabled(state in {"paused", "cancelled"})
        self.retry_btn.setEnabled(state == "failed")
        self.retry_btn.setVisible(state == "failed")
        self.resume_btn.setVisible(state != "failed")
        self.detail.setText(f"{row['name']}: {row['state_text']}" if row else "")


__all__ = ["DownloadsPanel", "job_state_text"]
