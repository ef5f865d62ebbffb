"""Asking the user before a tool runs: the dialog, and the broker that lets a worker thread ask.

GUI thread for the widgets. :class:`PermissionBroker.ask` is the ``ask`` callback of the tool loop
(``desktop.engine.tools.loop.ToolLoop``), which runs on a worker thread: it hands the question to the GUI
thread with a queued signal and blocks the worker until the user answers (the chat keeps painting meanwhile).

The app has one ``PermissionBroker`` (the tool stage's, chat/tool_send.py), whose ``ask`` is the ToolLoop's;
Stop calls ``broker.cancel_all()``, which answers pending questions "deny".
"""
from __future__ import annotations

import threading
from typing import Any, Callable

from PySide6.QtCore import QObject, Qt, QThread, Signal
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from desktop.engine.tools.permissions import (
    ALLOW_ALWAYS,
    ALLOW_ONCE,
    DENY,
    PermissionRequest,
)


class ToolPermissionDialog(QDialog):
    """Allow once / Always allow this tool / Deny, with the call's arguments. Closing it denies."""

    def __init__(self, req: PermissionRequest, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.req = req
        self._decision = DENY
        self.setWindowTitle("Allow tool call?")
        lay = QVBoxLayout(self)
        head = QLabel(f"The model wants to run <b>{req.tool}</b> from the MCP server <b>{req.server}</b> "
                      "with these arguments:")
        head.setTextFormat(Qt.TextFormat.RichText)
        head.setWordWrap(True)
        lay.addWidget(head)
        self.arguments = QPlainTextEdit(req.arguments_text())
        self.arguments.setReadOnly(True)
        self.arguments.setObjectName("toolArguments")
        lay.addWidget(self.arguments)
        box = QDialogButtonBox()
        self.allow_once = QPushButton("Allow once")
        self.allow_always = QPushButton(f"Always allow {req.tool}")
        self.deny = QPushButton("Deny")
        for btn, decision, role in ((self.allow_once, ALLOW_ONCE, QDialogButtonBox.ButtonRole.AcceptRole),
                                    (self.allow_always, ALLOW_ALWAYS, QDialogButtonBox.ButtonRole.AcceptRole),
                                    (self.deny, DENY, QDialogButtonBox.ButtonRole.RejectRole)):
            box.addButton(btn, role)
            btn.clicked.connect(lambda _=False, d=decision: self._choose(d))
        lay.addWidget(box)

    def showEvent(self, event: Any) -> None:  # noqa: N802
        super().showEvent(event)
        # Enter (or Esc, or closing the window) must never run a tool by accident: Deny is the default. Set on
        # show, because the button box makes its first accept button the default when it is shown.
        for btn in (self.allow_once, self.allow_always):
            btn.setAutoDefault(False)
            btn.setDefault(False)
        self.deny.setDefault(True)
        self.deny.setFocus()

    def _choose(self, decision: str) -> None:
        self._decision = decision
        self.done(QDialog.DialogCode.Rejected if decision == DENY else QDialog.DialogCode.Accepted)

    def decision(self) -> str:
        return self._decision


class _Pending:
    def __init__(self, req: PermissionRequest) -> None:
        self.req = req
        self.decision = DENY
        self.event = threading.Event()


class PermissionBroker(QObject):
    """Bridges a worker thread's blocking question to a dialog on the GUI thread.

    Signals: ``asked(PermissionRequest)`` when a dialog opens, ``answered(PermissionRequest, str)`` when the
    user chose. ``dialog_factory`` makes the dialog (tests replace it).
    """

    asked = Signal(object)
    answered = Signal(object, str)
    _request = Signal(object)

    def __init__(self, parent: QWidget | None = None,
                 dialog_factory: Callable[[PermissionRequest, QWidget | None], ToolPermissionDialog] | None = None
                 ) -> None:
        super().__init__(parent)
        self._parent_widget = parent
        self._factory = dialog_factory or (lambda req, p: ToolPermissionDialog(req, p))
        self._pending: list[_Pending] = []
        self._dialogs: dict[int, ToolPermissionDialog] = {}
        self._request.connect(self._show, Qt.ConnectionType.QueuedConnection)

    def ask(self, req: PermissionRequest, timeout_s: float | None = None) -> str:
        """Block the calling (worker) thread until the user answers; "deny" on timeout or cancel."""
        if QThread.currentThread() is self.thread():
            raise RuntimeError("PermissionBroker.ask must be called from a worker thread, not the GUI thread")
        pending = _Pending(req)
        self._pending.append(pending)
        self._request.emit(pending)
        pending.event.wait(timeout_s)
        if pending in self._pending:
            self._pending.remove(pending)
        return pending.decision

    def _show(self, pending: _Pending) -> None:  # GUI thread
        if pending.event.is_set():
            return
        dlg = self._factory(pending.req, self._parent_widget)
        dlg.setWindowModality(Qt.WindowModality.WindowModal)
        self._dialogs[id(pending)] = dlg

        def finished(_code: int) -> None:
            self._dialogs.pop(id(pending), None)
            pending.decision = dlg.decision()
            pending.event.set()
            self.answered.emit(pending.req, pending.decision)
            dlg.deleteLater()

        dlg.finished.connect(finished)
        dlg.open()
        self.asked.emit(pending.req)

    def open_dialogs(self) -> list[ToolPermissionDialog]:
        return list(self._dialogs.values())

    def cancel_all(self) -> None:
        """Answer every open question with "deny" (the user stopped the answer)."""
        for p in list(self._pending):
            p.decision = DENY
            p.event.set()
        for dlg in list(self._dialogs.values()):
            dlg.reject()


__all__ = ["ToolPermissionDialog", "PermissionBroker"]
