"""The failure panel shown in place of a view's content: icon, the sentence, Retry and Import from disk. GUI thread."""
from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from desktop.engine.hub import search as hub_search
from desktop.ui.errors import error_text
from desktop.ui.widgets.cards import apply_style, icon


class ErrorPanel(QFrame):
    """A failure shown in place: icon, the sentence, Retry (with visible feedback) and Import from disk."""

    retry_clicked = Signal()
    import_clicked = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("errorPanel")
        apply_style(self)  # the card style of the pages it shows on (the Hub, the repo page)
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
