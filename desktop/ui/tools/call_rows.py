"""Tool calls shown collapsed under an answer: one header line each, arguments and result on demand.

GUI thread. An assistant message whose ``provenance["tool_calls"]`` is set (a list of ``ToolCallRecord.to_dict()``)
shows ``ToolCallList(records)`` above its text; while a tool loop runs, the rows follow the calls as they start
and end.
"""
from __future__ import annotations

import json
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QFrame,
    QLabel,
    QPlainTextEdit,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

_STATUS = {"ok": "done", "error": "failed", "denied": "denied", "timeout": "timed out",
           "unknown_tool": "unknown tool", "round_limit": "not run (round limit)", "pending": "running…"}


def _as_dict(record: Any) -> dict[str, Any]:
    return record.to_dict() if hasattr(record, "to_dict") else dict(record)


class ToolCallView(QFrame):
    """One call: a toggle header (``server.tool — status``); the body (arguments, result) starts collapsed."""

    toggled = Signal(bool)

    def __init__(self, record: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setFrameShape(QFrame.Shape.StyledPanel)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 2, 6, 2)
        self.header = QToolButton()
        self.header.setCheckable(True)
        self.header.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.header.setArrowType(Qt.ArrowType.RightArrow)
        self.header.setAutoRaise(True)
        self.header.toggled.connect(self.set_expanded)
        lay.addWidget(self.header)
        self.body = QPlainTextEdit()
        self.body.setReadOnly(True)
        self.body.setVisible(False)
        self.body.setMaximumHeight(220)
        self.body.setMinimumHeight(120)  # else the answer's layout squeezes the opened call to a line
        lay.addWidget(self.body)
        self.set_record(record)

    def set_record(self, record: Any) -> None:
        self.record = _as_dict(record)
        r = self.record
        status = _STATUS.get(r.get("status", ""), r.get("status", ""))
        d = r.get("duration_s") or 0
        took = f", {d:.1f} s" if d >= 0.1 else f", {d * 1000:.0f} ms" if d else ""  # a quick local tool: ms
        self.header.setText(f"Tool {r.get('server') or '?'}.{r.get('name')} — {status}{took}")
        self.body.setPlainText("Arguments:\n" + json.dumps(r.get("arguments", {}), indent=2, ensure_ascii=False)
                               + "\n\nResult:\n" + str(r.get("result", "")))

    def expanded(self) -> bool:
        return self.body.isVisibleTo(self)

    def set_expanded(self, on: bool) -> None:
        self.body.setVisible(on)
        self.header.setArrowType(Qt.ArrowType.DownArrow if on else Qt.ArrowType.RightArrow)
        if self.header.isChecked() != on:
            self.header.setChecked(on)
        self.toggled.emit(on)


class ToolCallList(QWidget):
    """The calls of one answer, in order."""

    def __init__(self, records: list[Any] | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._lay = QVBoxLayout(self)
        self._lay.setContentsMargins(0, 0, 0, 0)
        self.views: list[ToolCallView] = []
        for r in records or []:
            self.add_record(r)

    def add_record(self, record: Any) -> ToolCallView:
        d = _as_dict(record)
        for v in self.views:  # an update of a call already shown (running -> done)
            if d.get("id") and v.record.get("id") == d.get("id"):
                v.set_record(d)
                return v
        view = ToolCallView(d, self)
        self.views.append(view)
        self._lay.addWidget(view)
        return view


class CitationsLabel(QLabel):
    """``Sources: a.pdf, p. 2; notes.md, lines 1-40`` under an answer (from ``provenance["citations"]``)."""

    def __init__(self, citations: list[dict[str, Any]] | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWordWrap(True)
        self.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.set_citations(citations or [])

    def set_citations(self, citations: list[dict[str, Any]]) -> None:
        labels = list(dict.fromkeys(c.get("label") or c.get("file", "") for c in citations))
        self.setText("Sources: " + "; ".join(labels) if labels else "")
        self.setVisible(bool(labels))
