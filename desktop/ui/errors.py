"""The one error presenter: a sentence for the user, details on demand, never a traceback. GUI thread."""
from __future__ import annotations

from typing import Any, Callable

from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QMessageBox, QPushButton, QWidget


def error_text(error: dict[str, Any] | BaseException) -> tuple[str, str | None]:
    if isinstance(error, BaseException):
        msg = getattr(error, "message", None) or str(error) or type(error).__name__
        return msg[:1].upper() + msg[1:], getattr(error, "details", None)
    msg = str(error.get("message") or "Something went wrong.")
    return msg[:1].upper() + msg[1:], error.get("details")


class Banner(QFrame):
    """A one-line notice above the input: a sentence, an optional action, Details…, and a close button."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setBackgroundRole(QPalette.ColorRole.ToolTipBase)
        self.setAutoFillBackground(True)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(8, 4, 4, 4)
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.label.setForegroundRole(QPalette.ColorRole.ToolTipText)
        self.action_btn = QPushButton()
        self.details_btn = QPushButton("Details…")
        self.close_btn = QPushButton("Dismiss")
        lay.addWidget(self.label, 1)
        for b in (self.action_btn, self.details_btn, self.close_btn):
            lay.addWidget(b)
        self.details: str | None = None
        self._action: Callable[[], None] | None = None
        self.details_btn.clicked.connect(self._show_details)
        self.close_btn.clicked.connect(self.hide)
        self.action_btn.clicked.connect(self._run_action)
        self.hide()

    def show_message(self, text: str, details: str | None = None, action: tuple[str, Callable[[], None]] | None = None
                     ) -> None:
        self.label.setText(text)
        self.details = details
        self.details_btn.setVisible(bool(details))
        self._action = action[1] if action else None
        self.action_btn.setVisible(action is not None)
        if action:
            self.action_btn.setText(action[0])
        self.show()

    def _run_action(self) -> None:
        self.hide()
        if self._action:
            self._action()

    def _show_details(self) -> None:
        box = QMessageBox(QMessageBox.Icon.Information, "Details", self.label.text(), parent=self)
        box.setDetailedText(self.details or "")
        box.open()


class ErrorPresenter:
    """Every error the user sees goes through here: the banner (and status bar) show the sentence, the
    details stay folded away; ``modal=True`` opens a dialog instead, for errors that block what was asked."""

    def __init__(self, parent: QWidget, show_status: Callable[[str], None], banner: Banner | None = None) -> None:
        self.parent = parent
        self.show_status = show_status
        self.banner = banner
        self.last: str | None = None
        self.last_details: str | None = None
        self.box: QMessageBox | None = None

    def present(self, error: dict[str, Any] | BaseException, *, modal: bool = False) -> None:
        text, details = error_text(error)
        self.last, self.last_details = text, details
        self.show_status(text)
        if modal:
            box = QMessageBox(QMessageBox.Icon.Warning, "Desktop Chat", text, parent=self.parent)
            if details:
                box.setDetailedText(details)
            box.open()
            self.box = box
        elif self.banner is not None:
            self.banner.show_message(text, details)
