"""The one error presenter: a sentence for the user, details on demand, never a traceback."""
from __future__ import annotations

from typing import Any

from PySide6.QtWidgets import QMessageBox, QWidget


def error_text(error: dict[str, Any] | BaseException) -> tuple[str, str | None]:
    if isinstance(error, BaseException):
        msg = getattr(error, "message", None) or str(error)
        return msg[:1].upper() + msg[1:], getattr(error, "details", None)
    msg = str(error.get("message") or "Something went wrong.")
    return msg[:1].upper() + msg[1:], error.get("details")


class ErrorPresenter:
    """Shows errors in the status bar; ``modal=True`` also opens a dialog with the details folded away."""

    def __init__(self, parent: QWidget, show_status) -> None:
        self.parent = parent
        self.show_status = show_status
        self.last: str | None = None

    def present(self, error: dict[str, Any] | BaseException, *, modal: bool = False) -> None:
        text, details = error_text(error)
        self.last = text
        self.show_status(text)
        if modal:
            box = QMessageBox(QMessageBox.Icon.Warning, "Desktop Chat", text, parent=self.parent)
            if details:
                box.setDetailedText(details)
            box.open()
