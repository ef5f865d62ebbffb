"""Running a tool loop from the GUI: on the thread pool, with only signals coming back.

``ToolLoopRunner(loop)`` runs ``desktop.engine.tools.loop.ToolLoop.run(messages)`` on a QThreadPool thread.
The loop's callbacks arrive on the GUI thread as queued signals: ``text(str)`` for each piece of visible
answer text (raw tool-call text is never among them), ``reasoning(str)`` for a reasoning model's thinking, ``tool_event(object)`` with ``ToolCallStarted`` /
``ToolCallFinished``, then ``finished(ToolLoopResult)`` or ``failed(Exception)``. ``stop()`` cancels the
generation and the loop, paired with ``PermissionBroker.cancel_all()``; the loop's ask callback is
``PermissionBroker.ask``. A plain function or lambda connected to these signals needs ``Qt.QueuedConnection``,
or PySide runs it on the pool thread.

``tool_provenance(result, citations)`` is what the answer's provenance keeps of the calls (and the attachments'
citations), so they show collapsed when the chat is reopened and are part of the JSON export.
"""
from __future__ import annotations

from typing import Any

from PySide6.QtCore import QObject, Signal

from desktop.engine.chats.attachments import Citation
from desktop.engine.tools.loop import ToolLoop, ToolLoopResult
from desktop.ui.workers import JobKeeper


def tool_provenance(result: ToolLoopResult | None, citations: list[Citation] | None = None) -> dict[str, Any]:
    """The additions to an answer's provenance: its tool calls and its citations (JSON-able)."""
    out: dict[str, Any] = {}
    if result is not None and result.tool_calls:
        out["tool_calls"] = [r.to_dict() for r in result.tool_calls]
    if citations:
        out["citations"] = [c.to_dict() for c in citations]
    return out


class _Signals(QObject):
    text = Signal(str)
    reasoning = Signal(str)  # a reasoning model's thinking, apart from the answer text
    tool_event = Signal(object)
    finished = Signal(object)
    failed = Signal(object)


def _emit(signal: Any, value: Any) -> None:
    try:
        signal.emit(value)
    except RuntimeError:
        pass  # the receiver is gone (window closed)


class ToolLoopRunner(QObject):
    """One answer with tools, in the background. Connect to ``signals`` before ``start``."""

    def __init__(self, loop: ToolLoop, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.loop = loop
        self.signals = _Signals(self)
        # The loop's callbacks run on the pool thread: they only emit (queued to this object's thread).
        loop.on_text = lambda t: _emit(self.signals.text, t)
        loop.on_reasoning = lambda t: _emit(self.signals.reasoning, t)
        loop.on_event = lambda e: _emit(self.signals.tool_event, e)
        self._jobs = JobKeeper(self)

    def start(self, messages: list[dict[str, Any]]) -> None:
        sig, loop = self.signals, self.loop
        self._jobs.start(lambda: loop.run(messages), sig.finished.emit, sig.failed.emit)

    def stop(self) -> None:
        self.loop.cancel()
