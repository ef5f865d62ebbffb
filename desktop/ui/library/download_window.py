"""The download window: a profile's or repo's quants with size and fit, and the download queue.

A view over ``desktop.engine.hub.downloads``. The DownloadManager calls back on its worker thread; the
controller re-emits each event through a Qt signal, which Qt queues to the GUI thread, where the jobs
model (``download_models``) is updated. Listing quants needs the network, so it runs on the thread pool
(``workers``). Everything else here runs on the GUI thread. The window is non-modal: chatting goes on meanwhile.
"""
from __future__ import annotations

from typing import Any

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSpinBox,
    QSplitter,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from desktop.engine.errors import AppError
from desktop.engine.hub import downloads
from desktop.engine.hub.search import repo_id_from_text
from desktop.engine.profiles import ProfileStore
from desktop.ui import workers
from desktop.ui.errors import ErrorPresenter
from desktop.ui.library.download_models import (
    JobIdRole,
    JobsModel,
    ProgressDelegate,
    QuantTableModel,
    human_size,
)


class DownloadsController(QObject):
    """The app's one DownloadManager, with its events as a Qt signal. Lives on the GUI thread."""

    event_received = Signal(object)  # DownloadEvent, delivered queued on the GUI thread
    model_installed = Signal(str)  # profile id, when a job is done

    _instance: "DownloadsController | None" = None

    def __init__(self, parent: QObject | None = None, store: ProfileStore | None = None, **run_kwargs: Any) -> None:
        super().__init__(parent)
        self.store = store or ProfileStore()
        # Called on the manager's worker thread: emitting a signal is thread-safe, and the connection
        # to GUI-thread receivers is queued because this object lives on the GUI thread.
        self.manager = downloads.DownloadManager(self.event_received.emit, store=self.store, **run_kwargs)
        self.event_received.connect(self._on_event)

    @classmethod
    def instance(cls) -> "DownloadsController":
        """The app's controller; on quit its running job is left resumable, marked interrupted."""
        if cls._instance is None:
            app = QApplication.instance()
            cls._instance = cls(app)
            if app is not None:
                app.aboutToQuit.connect(cls._instance.close)
        return cls._instance

    def _on_event(self, ev: downloads.DownloadEvent) -> None:
        if ev.state == "done" and ev.result:
            self.store.reload()
            self.model_installed.emit(ev.result.get("profile_id", ""))

    def resume_interrupted(self) -> int:
        """Jobs the last run left mid-way continue (the user paused ones stay paused)."""
        return self.manager.resume_interrupted()

    def close(self) -> None:
        self.manager.close()



class DownloadWindow(QWidget):
    """Non-modal window: pick a profile or type a repo, see quants with fit, download, watch the queue."""

    listing_finished = Signal()  # a listing arrived (or failed)
    import_requested = Signal()  # "Import a GGUF from disk…" in the error panel (the offline way out)

    def __init__(self, parent: QWidget | None = None, controller: DownloadsController | None = None) -> None:
        super().__init__(parent, Qt.WindowType.Window)
        self.setWindowTitle("Downloads")
        self.resize(900, 560)
        self.controller = controller or DownloadsController.instance()
        self.store = self.controller.store
        self._pending_quant: str | None = None
        self._jobs: list[workers.Job] = []
        self._listing_key: tuple[str, int | None] | None = None  # the listing running now, if any
        self.listing: downloads.QuantListing | None = None

        self.spec = QComboBox()
        self.spec.setEditable(True)
        # A typed repo must stay text: an inserted item would carry no data, and its data (None) was read
        # as a profile id ("Unknown profile 'None'").
        self.spec.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        self.spec.setMinimumContentsLength(24)
        self.spec.lineEdit().setPlaceholderText("a profile, or any Hugging Face repo id (owner/name)")
        for p in self.store.all():
            if p.source.repo:
                self.spec.addItem(f"{p.name}  —  {p.source.repo}", p.id)
        self.ctx = QSpinBox()
        self.ctx.setRange(0, 4 * 1024 * 1024)
        self.ctx.setSingleStep(4096)
        self.ctx.setSpecialValueText("profile default")
        self.ctx.setSuffix(" tokens")
        self.ctx.setToolTip("What-if context length for the fit estimate (KV cache grows with it)")
        self.list_btn = QPushButton("List quants")
        top = QHBoxLayout()
        top.addWidget(QLabel("Model:"))
        top.addWidget(self.spec, 1)
        top.addWidget(QLabel("Context:"))
        top.addWidget(self.ctx)
        top.addWidget(self.list_btn)

        self.quants = QuantTableModel(self)
        self.quant_view = QTableView()
        self.quant_view.setModel(self.quants)
        self.quant_view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.quant_view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.quant_view.verticalHeader().hide()
        self.quant_view.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.quant_view.horizontalHeader().setStretchLastSection(True)
        self.quant_view.doubleClicked.connect(lambda _i: self.download_selected())
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        self.download_btn = QPushButton("Download")
        self.download_btn.setEnabled(False)
        qrow = QHBoxLayout()
        qrow.addWidget(self.summary, 1)
        qrow.addWidget(self.download_btn)

        self.jobs = JobsModel(self)
        self.jobs.set_jobs(self.controller.manager.jobs())
        self.job_view = QTableView()
        self.job_view.setModel(self.jobs)
        self.job_view.setItemDelegateForColumn(2, ProgressDelegate(self.job_view))
        self.job_view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.job_view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.job_view.verticalHeader().hide()
        self.job_view.setWordWrap(False)
        self.job_view.setTextElideMode(Qt.TextElideMode.ElideRight)
        hh = self.job_view.horizontalHeader()
        hh.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        hh.setStretchLastSection(True)
        for col, w in enumerate((280, 100, 220, 90, 70)):
            self.job_view.setColumnWidth(col, w)
        self.pause_btn = QPushButton("Pause")
        self.resume_btn = QPushButton("Resume")
        self.cancel_btn = QPushButton("Cancel")
        jrow = QHBoxLayout()
        queue_note = QLabel("Queue — downloads continue while you chat; interrupted ones resume where they stopped.")
        queue_note.setWordWrap(True)  # a long unwrapped line would set the window's minimum width
        jrow.addWidget(queue_note, 1)
        for b in (self.pause_btn, self.resume_btn, self.cancel_btn):
            jrow.addWidget(b)
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.errors = ErrorPresenter(self, self.status.setText)
        from desktop.ui.widgets.error_panel import ErrorPanel

        self.error_panel = ErrorPanel()
        self.error_panel.retry_clicked.connect(self.list_quants)
        self.error_panel.import_clicked.connect(self.import_requested)

        upper = QWidget()
        ul = QVBoxLayout(upper)
        ul.setContentsMargins(0, 0, 0, 0)
        ul.addLayout(top)
        ul.addWidget(self.error_panel)
        ul.addWidget(self.quant_view, 1)
        ul.addLayout(qrow)
        lower = QWidget()
        ll = QVBoxLayout(lower)
        ll.setContentsMargins(0, 0, 0, 0)
        ll.addLayout(jrow)
        ll.addWidget(self.job_view, 1)
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(upper)
        split.addWidget(lower)
        lay = QVBoxLayout(self)
        lay.addWidget(split, 1)
        lay.addWidget(self.status)

        self.list_btn.clicked.connect(self.list_quants)
        self.spec.lineEdit().returnPressed.connect(self.list_quants)
        self.download_btn.clicked.connect(self.download_selected)
        self.pause_btn.clicked.connect(lambda: self._act("pause"))
        self.resume_btn.clicked.connect(lambda: self._act("resume"))
        self.cancel_btn.clicked.connect(lambda: self._act("cancel"))
        self.quant_view.selectionModel().selectionChanged.connect(self._update_buttons)
        self.job_view.selectionModel().selectionChanged.connect(self._update_buttons)
        self.controller.event_received.connect(self._on_event)
        self._update_buttons()

    # -- quants ---------------------------------------------------------------------------------
    def spec_text(self) -> str:
        i = self.spec.currentIndex()
        text = self.spec.currentText().strip()
        if i >= 0 and self.spec.itemText(i) == text and self.spec.itemData(i):
            return str(self.spec.itemData(i))
        # A pasted Hub URL (…/tree/main, …/blob/…) means its repo.
        return repo_id_from_text(text) or text

    def show_for(self, profile_id: str | None, quant: str | None) -> None:
        if profile_id:
            i = self.spec.findData(profile_id)
            if i >= 0:
                self.spec.setCurrentIndex(i)
            else:
                self.spec.setEditText(profile_id)
            self._pending_quant = quant
            self.list_quants()
        self.show()
        self.fit_on_screen()
        self.raise_()
        self.activateWindow()

    def showEvent(self, ev: Any) -> None:  # noqa: N802 - every way of showing it, not just show_for
        super().showEvent(ev)
        self.fit_on_screen()

    def fit_on_screen(self) -> None:
        """Keep the whole window on the screen it opens on (a parent near an edge must not push it off)."""
        screen = self.screen() or QApplication.primaryScreen()
        if screen is None:
            return
        avail = screen.availableGeometry()
        frame = self.frameGeometry()
        w, h = min(frame.width(), avail.width()), min(frame.height(), avail.height())
        if (w, h) != (frame.width(), frame.height()):
            self.resize(self.width() - (frame.width() - w), self.height() - (frame.height() - h))
            frame = self.frameGeometry()
        x = min(max(frame.left(), avail.left()), avail.right() - frame.width() + 1)
        y = min(max(frame.top(), avail.top()), avail.bottom() - frame.height() + 1)
        self.move(x, y)

    def list_quants(self) -> None:
        spec = self.spec_text()
        if not spec:
            return
        n_ctx = self.ctx.value() or None
        # The same listing again while it runs is dropped: a Return sent to the combo's line edit reaches here twice
        # (the line edit ignores it, the combo hands it back), and the extra request outlived what waited for the
        # first (a test's Hub server, a closed window) on a thread of the shared pool.
        if self._listing_key == (spec, n_ctx):
            return
        self._listing_key = (spec, n_ctx)
        self.list_btn.setEnabled(False)
        self.summary.setText(f"Listing {spec} …")
        if not self.error_panel.isHidden():
            self.error_panel.set_retrying(True)
        store = self.store
        self._jobs.append(workers.start(lambda: downloads.list_quants(spec, n_ctx=n_ctx, store=store),
                                        self._on_listing, self._on_listing_failed, self))

    def _on_listing(self, res: downloads.QuantListing) -> None:
        self._listing_key = None
        self.list_btn.setEnabled(True)
        self.error_panel.hide()
        self.listing = res
        rec = None
        if res.profile_id:
            rec = self.store.get(res.profile_id).source.recommended_quant
        want = self._pending_quant or rec
        self.quants.set_entries(res.entries, rec)
        hw = res.hardware
        self.summary.setText(
            f"{res.repo}: {len(res.entries)} quants · context {res.n_ctx:,} tokens, KV {res.kv_type} · "
            f"RAM available {human_size(hw['ram_available'])}, "
            + (f"VRAM free {human_size(hw['vram_free'])}" if hw.get("gpus") else "no GPU detected") + " · "
            f"architecture from {res.arch_source}. Hover a verdict for the sum behind it.")
        if want:
            for r, e in enumerate(res.entries):
                if e.quant.upper() == want.upper():
                    self.quant_view.selectRow(r)
                    break
        self._pending_quant = None
        self._update_buttons()
        self.listing_finished.emit()

    def _on_listing_failed(self, exc: BaseException) -> None:
        self._listing_key = None
        self.list_btn.setEnabled(True)
        self.summary.setText("")
        exc = exc if isinstance(exc, AppError) else AppError(str(exc), details=repr(exc))
        self.errors.present(exc)
        self.quants.set_entries([], None)
        self.listing = None
        self.error_panel.show_error(exc)
        self.listing_finished.emit()

    def selected_quant(self) -> str | None:
        rows = self.quant_view.selectionModel().selectedRows()
        return self.quants.entries[rows[0].row()].quant if rows else None

    def download_selected(self) -> downloads.Job | None:
        quant = self.selected_quant()
        if not quant or not self.listing:
            return None
        try:
            job = self.controller.manager.submit(self.listing.profile_id or self.listing.repo, quant=quant)
        except AppError as exc:
            self.errors.present(exc)
            return None
        self.jobs.add_job(job)
        self.job_view.selectRow(self.jobs.rowCount() - 1)
        self.status.setText(f"Queued {quant} of {self.listing.repo}.")
        return job

    # -- jobs -----------------------------------------------------------------------------------
    def selected_job(self) -> str | None:
        rows = self.job_view.selectionModel().selectedRows()
        return rows[0].data(JobIdRole) if rows else None

    def _act(self, what: str) -> None:
        job_id = self.selected_job()
        if job_id:
            getattr(self.controller.manager, what)(job_id)
            self._update_buttons()

    def _on_event(self, ev: downloads.DownloadEvent) -> None:
        if self.jobs._row(ev.job_id) < 0:
            try:
                self.jobs.add_job(self.controller.manager.job(ev.job_id))
            except KeyError:
                return
        self.jobs.apply(ev)
        if ev.state == "failed" and ev.error:
            self.errors.present(ev.error)
        elif ev.state == "done" and ev.result:
            fixes = ev.result.get("fixes") or []
            self.status.setText(f"Installed {ev.result.get('model_id')}: "
                                + ("; ".join(fixes) if fixes else "verified, no repair needed") + ".")
        self._update_buttons()

    def _update_buttons(self, *_a: Any) -> None:
        self.download_btn.setEnabled(self.selected_quant() is not None)
        job_id = self.selected_job()
        state = None
        if job_id:
            r = self.jobs._row(job_id)
            state = self.jobs.rows[r]["state"] if r >= 0 else None
        active = state in downloads.ACTIVE_STATES
        self.pause_btn.setEnabled(active)
        self.cancel_btn.setEnabled(active or state == "paused")
        self.resume_btn.setEnabled(state in {"paused", "failed", "cancelled"})

    def job_row(self, job_id: str) -> dict[str, Any]:
        """The row shown for ``job_id`` (for tests and for the main window's status)."""
        return dict(self.jobs.rows[self.jobs._row(job_id)])


__all__ = ["DownloadWindow", "DownloadsController", "JobsModel", "QuantTableModel"]
