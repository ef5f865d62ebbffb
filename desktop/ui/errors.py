"""The one error presenter: a sentence for the user, details on demand, never a traceback. GUI thread.

Also the GUI's process-wide hooks: unhandled exceptions of any thread reach the presenter through a queued
signal (and the log), and Qt's own warnings go to the same log file (desktop/engine/logs.py).
"""
from __future__ import annotations

import logging
from typing import Any, Callable

from PySide6.QtCore import (
    QMessageLogContext,
    QObject,
    Qt,
    QtMsgType,
    Signal,
    qInstallMessageHandler,
)
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QPushButton,
    QWidget,
)

from desktop.engine import logs


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
        self.setObjectName("Banner")
        lay = QHBoxLayout(self)
        lay.setContentsMargins(12, 6, 6, 6)
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.label.setTextFormat(Qt.TextFormat.PlainText)  # messages may quote file names or model output
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


# ---------------------------------------------------------------------------------------------- process-wide hooks


class ExceptionBridge(QObject):
    """Carries an unhandled exception from any thread to the GUI thread's presenter (a queued signal)."""

    raised = Signal(object)

    def __init__(self, presenter: ErrorPresenter) -> None:
        super().__init__()
        self.presenter = presenter
        self.raised.connect(self._present, Qt.ConnectionType.QueuedConnection)

    def sink(self, exc: BaseException) -> None:  # any thread: only emits
        try:
            self.raised.emit(exc)
        except RuntimeError:
            pass  # the window is gone: the log has it

    def _present(self, exc: BaseException) -> None:
        # One sentence; the traceback is in the log only.
        self.presenter.present({"message": f"Something went wrong ({type(exc).__name__}: {exc}). "
                                           "The details are in the log (Help ▸ Show log)."})


_QT_LEVELS = {QtMsgType.QtDebugMsg: logging.DEBUG, QtMsgType.QtInfoMsg: logging.INFO,
              QtMsgType.QtWarningMsg: logging.WARNING, QtMsgType.QtCriticalMsg: logging.ERROR,
              QtMsgType.QtFatalMsg: logging.CRITICAL}


def qt_message_handler(mode: QtMsgType, context: QMessageLogContext, message: str) -> None:
    """Qt's own warnings go to the app's log file, with where they came from when Qt says."""
    where = f" ({context.file}:{context.line})" if context.file else ""
    logs.get_logger("qt").log(_QT_LEVELS.get(mode, logging.WARNING), "%s%s", message, where)


def install_error_hooks(presenter: ErrorPresenter) -> ExceptionBridge:
    """The GUI's logging: the log file, excepthooks that show one sentence, and Qt's messages in the log."""
    logs.setup_logging("gui")
    bridge = ExceptionBridge(presenter)
    logs.install_excepthooks(bridge.sink)
    qInstallMessageHandler(qt_message_handler)
    return bridge
