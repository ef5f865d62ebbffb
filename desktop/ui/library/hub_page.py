"""Search the Hugging Face Hub for GGUF models, or open a repo by id or URL.

Typing searches after a short pause (debounced); Enter searches at once, or, when the text is a repo id
(``owner/name``) or a Hub URL, opens that repo's page (``repo_opened``). The search runs on the thread
pool (``workers``); results and errors come back to the GUI thread. Every error, offline included, shows
as a panel inside the view with the sentence, a Retry button and the way out that needs no network:
importing a GGUF from disk. Widgets are touched on the GUI thread only.
"""
from __future__ import annotations

from typing import Callable

from PySide6.QtCore import QEvent, QModelIndex, QObject, Qt, QTimer, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QLabel,
    QLineEdit,
    QListView,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from desktop.engine.errors import AppError
from desktop.engine.hub import search as hub_search
from desktop.ui.library.hub_results import HubResultsModel
from desktop.ui.widgets.cards import CardDelegate, KeyRole, apply_style, icon
from desktop.ui.widgets.error_panel import ErrorPanel
from desktop.ui.workers import JobKeeper

DEBOUNCE_MS = 350


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
        self.box.installEventFilter(self)
        self.setFocusProxy(self.box)
        self._show_empty("Type to search, or press Enter for the most downloaded GGUF models.")

    def eventFilter(self, obj: QObject, ev: QEvent) -> bool:  # noqa: N802
        # Down in the search box moves into the results (the first one, or the one already current).
        if obj is self.box and ev.type() == QEvent.Type.KeyPress and isinstance(ev, QKeyEvent) \
                and ev.key() == Qt.Key.Key_Down and self.stack.currentIndex() == 0 and self.results.rowCount():
            if not self.list.currentIndex().isValid():
                self.list.setCurrentIndex(self.results.index(0))
            self.list.setFocus(Qt.FocusReason.TabFocusReason)
            return True
        return super().eventFilter(obj, ev)

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
            self.status.setText(f"{len(rows)} GGUF {'repository' if len(rows) == 1 else 'repositories'}"
                                + (f" matching “{query}”" if query else "")
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


__all__ = ["HubView"]
