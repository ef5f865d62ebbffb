"""Search the Hugging Face Hub for GGUF models, or open a repo by id or URL.

Typing searches after a short pause (debounced); Enter searches at once, or, when the text is a repo id
(``owner/name``) or a Hub URL, opens that repo's page (``repo_opened``). The search runs on the thread
pool (``workers``); results and errors come back to the GUI thread. Every error, offline included, shows
as a panel inside the view with the sentence, a Retry button and the way out that needs no network:
importing a GGUF from disk. Widgets are touched on the GUI thread only.
"""
from __future__ import annotations

from typing import Any, Callable

import shiboken6
from PySide6.QtCore import QModelIndex, Qt, QTimer, Signal
from PySide6.QtWidgets import (QAbstractItemView, QFrame, QHBoxLayout, QLabel, QLineEdit, QListView, QPushButton,
                               QStackedWidget, QVBoxLayout, QWidget)

from desktop.engine.errors import AppError
from desktop.engine.hub import search as hub_search
from desktop.ui import workers
from desktop.ui.errors import error_text
from desktop.ui.models.hub_results import HubResultsModel
from desktop.ui.models.hub_style import CardDelegate, KeyRole, apply_style, icon

DEBOUNCE_MS = 350


class JobKeeper:
    """Holds each worker job until its answer arrives, then lets it go.

    A job whose Python wrapper is dropped while it runs would be deleted under the thread pool, so the
    views keep every one in flight (not "the last few": a user can start many) and only those.
    """

    def __init__(self, owner: QWidget) -> None:
        self.owner = owner
        self.jobs: set[workers.Job] = set()

    def start(self, fn: Callable[[], Any], on_done: Callable[[Any], None],
              on_failed: Callable[[Any], None]) -> workers.Job:
        held: list[workers.Job] = []

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

        job = workers.start(fn, done, failed, self.owner)
        held.append(job)
        self.jobs.add(job)
        return job


class ErrorPanel(QFrame):
    """A failure shown in place: icon, the sentence, Retry (with visible feedback) and Import from disk."""

    retry_clicked = Signal()
    import_clicked = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("errorPanel")
        apply_style(self)  # it also lives in windows that are not model views (the download window)
        self.icon = QLabel()
        self.icon.setPixmap(icon("mdi6.wifi-off", color="#c0504d").pixmap(36, 36))
        self.headline = QLabel("The Hub could not be reached")
        self.headline.setObjectName("title")
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.retry_btn = QPushButton("Retry")
        self.retry_btn.setObjectName("primary")
        self.retry_btn.setIcon(icon("mdi6.refresh", color="white"))
        self.import_btn = QPushButton("Import a GGUF from disk…")
        self.import_btn.setObjectName("secondary")
        self.import_btn.setIcon(icon("mdi6.folder-open-outline"))
        self.hint = QLabel("No network needed: a GGUF you already have works offline.")
        self.hint.setObjectName("muted")
        text = QVBoxLayout()
        text.addWidget(self.headline)
        text.addWidget(self.label)
        buttons = QHBoxLayout()
        buttons.addWidget(self.retry_btn)
        buttons.addWidget(self.import_btn)
        buttons.addStretch(1)
        text.addSpacing(6)
        text.addLayout(buttons)
        text.addWidget(self.hint)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(18, 16, 18, 16)
        lay.setSpacing(14)
        lay.addWidget(self.icon, 0, Qt.AlignmentFlag.AlignTop)
        lay.addLayout(text, 1)
        self.retry_btn.clicked.connect(self._retry)
        self.import_btn.clicked.connect(self.import_clicked)
        self.hide()

    def show_error(self, exc: BaseException | dict[str, Any]) -> None:
        text, details = error_text(exc)
        offline = getattr(exc, "code", None) in {"hub_offline", "network"} or isinstance(
            exc, hub_search.HubOfflineError)
        self.headline.setText("You are offline" if offline else "Something went wrong")
        self.icon.setPixmap(icon("mdi6.wifi-off" if offline else "mdi6.alert-circle-outline",
                                 color="#c0504d").pixmap(36, 36))
        self.label.setText(text)
        self.label.setToolTip(details or "")
        self.set_retrying(False)
        self.show()

    def set_retrying(self, on: bool) -> None:
        # Visible feedback that the click did something: the button spins and says so until the answer.
        self.retry_btn.setEnabled(not on)
        self.retry_btn.setText("Retrying…" if on else "Retry")
        spin = getattr(self, "_spin", None)
        if spin is not None:
            # qtawesome's Spin keeps its repaint timer running until stopped, icon replaced or not.
            spin.stop()
            self._spin = None
        if on:
            try:
                import qtawesome

                self._spin = qtawesome.Spin(self.retry_btn, interval=30)  # ~33 repaints/s is smooth enough
                self.retry_btn.setIcon(icon("mdi6.loading", color="white", animation=self._spin))
            except ImportError:  # pragma: no cover - the words alone still say it
                pass
        else:
            self.retry_btn.setIcon(icon("mdi6.refresh", color="white"))

    def _retry(self) -> None:
        self.set_retrying(True)
        self.retry_clicked.emit()


class HubView(QWidget):
    """Search box, result cards, and the error panel. Emits ``repo_opened(repo_id)``."""

    repo_opened = Signal(str)
    import_requested = Signal()
    search_finished = Signal()  # results or an error arrived (for tests and busy indicators)

    def __init__(self, parent: QWidget | None = None, *, limit: int = 30,
                 search_fn: Callable[..., list[hub_search.RepoSummary]] | None = None) -> None:
        super().__init__(parent)
        apply_style(self)
        self.limit = limit
        self._search_fn = search_fn or hub_search.search
        self._seq = 0  # answers to an older query are dropped
        self._jobs = JobKeeper(self)
        self.last_query: str | None = None

        title = QLabel("Discover models")
        title.setObjectName("title")
        sub = QLabel("GGUF models on Hugging Face, most downloaded first. Paste a repo id or URL to open it.")
        sub.setObjectName("muted")
        self.box = QLineEdit()
        self.box.setObjectName("search")
        self.box.setClearButtonEnabled(True)
        self.box.setPlaceholderText("Search models, or paste owner/repo or a huggingface.co link")
        self.box.addAction(icon("mdi6.magnify", color="#888"), QLineEdit.ActionPosition.LeadingPosition)
        self.status = QLabel()
        self.status.setObjectName("muted")

        self.results = HubResultsModel(self)
        self.list = QListView()
        self.list.setObjectName("cards")
        self.list.setModel(self.results)
        self.list.setItemDelegate(CardDelegate(self.list))
        self.list.setMouseTracking(True)
        self.list.setSpacing(2)
        self.list.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.list.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.empty = QLabel()
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty.setObjectName("muted")
        self.error_panel = ErrorPanel()
        self.stack = QStackedWidget()
        for w in (self.list, self.empty, self._centered(self.error_panel)):
            self.stack.addWidget(w)

        lay = QVBoxLayout(self)
        lay.setContentsMargins(24, 20, 24, 16)
        lay.setSpacing(10)
        lay.addWidget(title)
        lay.addWidget(sub)
        lay.addWidget(self.box)
        lay.addWidget(self.status)
        lay.addWidget(self.stack, 1)

        self.timer = QTimer(self)
        self.timer.setSingleShot(True)
        self.timer.setInterval(DEBOUNCE_MS)
        self.timer.timeout.connect(self._search_now)
        self.box.textEdited.connect(lambda _t: self.timer.start())
        self.box.returnPressed.connect(self.on_enter)
        self.list.activated.connect(self._open_index)
        self.list.doubleClicked.connect(self._open_index)
        self.error_panel.retry_clicked.connect(self.retry)
        self.error_panel.import_clicked.connect(self.import_requested)
        self._show_empty("Type to search, or press Enter for the most downloaded GGUF models.")

    @staticmethod
    def _centered(w: QWidget) -> QWidget:
        holder = QWidget()
        lay = QVBoxLayout(holder)
        lay.setContentsMargins(0, 8, 0, 0)
        lay.addWidget(w)
        lay.addStretch(1)
        return holder

    def _show_empty(self, text: str) -> None:
        self.empty.setText(text)
        self.stack.setCurrentIndex(1)

    # -- actions --------------------------------------------------------------------------------
    def on_enter(self) -> None:
        """Enter: a repo id or Hub URL opens the repo; anything else searches now."""
        self.timer.stop()
        repo = hub_search.repo_id_from_text(self.box.text())
        if repo:
            self.status.setText(f"Opening {repo} …")
            self.repo_opened.emit(repo)
            return
        self._search_now()

    def search(self, query: str) -> None:
        """Search for ``query`` now (as if typed and Enter pressed)."""
        self.box.setText(query)
        self._search_now()

    def retry(self) -> None:
        self._run(self.last_query if self.last_query is not None else self.box.text().strip())

    def _search_now(self) -> None:
        self.timer.stop()
        text = self.box.text().strip()
        if hub_search.repo_id_from_text(text) and "://" in text:
            return  # a pasted URL is not a search term: Enter opens it
        self._run(text)

    def _run(self, query: str) -> None:
        self._seq += 1
        seq = self._seq
        self.last_query = query
        self.status.setText(f"Searching for “{query}” …" if query else "Loading the most downloaded GGUF models …")
        fn, limit = self._search_fn, self.limit
        self._jobs.start(lambda: fn(query, limit=limit), lambda rows: self._on_results(seq, query, rows),
                         lambda exc: self._on_failed(seq, exc))

    def _on_results(self, seq: int, query: str, rows: list[hub_search.RepoSummary]) -> None:
        if seq != self._seq:
            return
        self.error_panel.hide()
        self.results.set_rows(rows)
        if rows:
            self.stack.setCurrentIndex(0)
            self.list.setCurrentIndex(self.results.index(0))
            self.status.setText(f"{len(rows)} GGUF repositories" + (f" matching “{query}”" if query else "")
                                + " · most downloaded first")
        else:
            self.status.setText("")
            self._show_empty(f"No GGUF repositories match “{query}”. Try a shorter name, or paste a repo id.")
        self.search_finished.emit()

    def _on_failed(self, seq: int, exc: BaseException) -> None:
        if seq != self._seq:
            return
        if not isinstance(exc, AppError):
            exc = AppError(str(exc) or type(exc).__name__, details=repr(exc))
        self.status.setText("")
        self.error_panel.show_error(exc)
        self.stack.setCurrentIndex(2)
        self.search_finished.emit()

    def _open_index(self, index: QModelIndex) -> None:
        repo = index.data(KeyRole)
        if repo:
            self.repo_opened.emit(str(repo))

    def selected_repo(self) -> str | None:
        idx = self.list.currentIndex()
        return str(idx.data(KeyRole)) if idx.isValid() else None


__all__ = ["ErrorPanel", "HubView", "JobKeeper"]
