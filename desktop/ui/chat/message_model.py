"""The conversation shown (one branch of one chat) as a QAbstractListModel, owned by the GUI thread.

Streamed text (the answer, and a reasoning model's thinking, kept apart) is buffered and flushed on a short timer
(``FLUSH_MS``, 50 ms), and each flush touches only the last row, with only the roles that grew, so a long answer costs the same per update at token 4,000 as at token 1. The model holds
no database handle: the main window fills it from the chat store and journals the stream itself.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import (
    QAbstractListModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    Qt,
    QTimer,
    Signal,
)

RoleRole = Qt.ItemDataRole.UserRole + 1
TextRole = Qt.ItemDataRole.UserRole + 2
StateRole = Qt.ItemDataRole.UserRole + 3
IdRole = Qt.ItemDataRole.UserRole + 4
BranchRole = Qt.ItemDataRole.UserRole + 5  # (index, count) among the parent's children, 0-based index
DimmedRole = Qt.ItemDataRole.UserRole + 6  # fell out of the context window in the last generation
ProvenanceRole = Qt.ItemDataRole.UserRole + 7
StatsRole = Qt.ItemDataRole.UserRole + 8
ReasoningRole = Qt.ItemDataRole.UserRole + 9  # the thinking of a reasoning model, apart from the answer
ThinkingTimeRole = Qt.ItemDataRole.UserRole + 10  # seconds spent thinking before the answer began (None: not yet)

Index = QModelIndex | QPersistentModelIndex

_WHO = {"user": "You", "assistant": "Assistant", "system": "System"}
_SUFFIX = {"cancelled": "  [stopped]", "error": "  [interrupted]"}


@dataclass
class ChatMessage:
    role: str
    text: str
    state: str = "done"  # "streaming", "done", "cancelled", "error"
    id: int | None = None
    branch: tuple[int, int] = (0, 1)
    dimmed: bool = False
    provenance: dict[str, Any] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)
    reasoning: str = ""
    thinking_s: float | None = None


class ChatModel(QAbstractListModel):
    # The upper end of "about every 30-50 ms": each flush repaints the streaming message, and on a 2-core
    # machine that repaint competes with llama.cpp's threads (bench/NOTES.md).
    FLUSH_MS = 50
    flushed = Signal(str)  # the streaming message's full text after a flush

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.messages: list[ChatMessage] = []
        self._pending: list[str] = []
        self._pending_reasoning: list[str] = []
        self._timer = QTimer(self)
        self._timer.setInterval(self.FLUSH_MS)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self.flush)
        self.flushes = 0
        self._last_flush = 0.0

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        return 0 if parent.isValid() else len(self.messages)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self.messages):
            return None
        m = self.messages[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return f"{_WHO.get(m.role, m.role)}: {m.text}{_SUFFIX.get(m.state, '')}"
        return {RoleRole: m.role, TextRole: m.text, StateRole: m.state, IdRole: m.id, BranchRole: m.branch,
                DimmedRole: m.dimmed, ProvenanceRole: m.provenance, StatsRole: m.stats, ReasoningRole: m.reasoning,
                ThinkingTimeRole: m.thinking_s}.get(role)

    def roleNames(self) -> dict[int, bytes]:
        return {Qt.ItemDataRole.DisplayRole: b"display", RoleRole: b"role", TextRole: b"text", StateRole: b"state",
                IdRole: b"messageId", BranchRole: b"branch", DimmedRole: b"dimmed", ProvenanceRole: b"provenance",
                StatsRole: b"stats", ReasoningRole: b"reasoning", ThinkingTimeRole: b"thinkingSeconds"}

    # ------------------------------------------------------------------ changes

    def set_messages(self, messages: list[ChatMessage]) -> None:
        self._timer.stop()
        self._pending.clear()
        self._pending_reasoning.clear()
        self.beginResetModel()
        self.messages = list(messages)
        self.endResetModel()

    def append(self, role: str, text: str, state: str = "done", **kw: Any) -> int:
        row = len(self.messages)
        self.beginInsertRows(QModelIndex(), row, row)
        self.messages.append(ChatMessage(role, text, state, **kw))
        self.endInsertRows()
        return row

    def append_token(self, text: str) -> None:
        self._pending.append(text)
        self._schedule()

    def append_reasoning(self, text: str) -> None:
        """Thinking of the streaming message: coalesced with the answer's text into the same flushes."""
        self._pending_reasoning.append(text)
        self._schedule()

    def set_thinking_time(self, seconds: float) -> None:
        """How long the streaming message thought before its answer began (shown when its thinking folds)."""
        if self.messages:
            self.messages[-1].thinking_s = seconds

    def _schedule(self) -> None:
        if self._timer.isActive():
            return
        # Leading edge: the first token after a quiet spell shows at once; later ones wait for the
        # rest of the interval, so repaints stay at most one per FLUSH_MS.
        wait_ms = self.FLUSH_MS - (time.monotonic() - self._last_flush) * 1000
        if wait_ms <= 0:
            self.flush()
        else:
            self._timer.start(max(1, int(wait_ms)))

    def flush(self) -> None:
        self._timer.stop()
        if not (self._pending or self._pending_reasoning) or not self.messages:
            return
        m = self.messages[-1]
        roles: list[int] = []
        if self._pending_reasoning:
            m.reasoning += "".join(self._pending_reasoning)
            self._pending_reasoning.clear()
            roles.append(ReasoningRole)
        if self._pending:
            m.text += "".join(self._pending)
            self._pending.clear()
            roles += [Qt.ItemDataRole.DisplayRole, TextRole]
        self.flushes += 1
        self._last_flush = time.monotonic()
        idx = self.index(len(self.messages) - 1)
        self.dataChanged.emit(idx, idx, roles)
        if TextRole in roles:
            self.flushed.emit(m.text)

    def finish_last(self, state: str, text: str | None = None, *, stats: dict[str, Any] | None = None,
                    provenance: dict[str, Any] | None = None, reasoning: str | None = None) -> None:
        self.flush()
        if not self.messages:
            return
        m = self.messages[-1]
        m.state = state
        if text is not None and state in ("done", "cancelled"):
            m.text = text
        if reasoning is not None and state in ("done", "cancelled"):
            m.reasoning = reasoning
        if stats is not None:
            m.stats = stats
            if stats.get("thinking_s") is not None:
                m.thinking_s = stats["thinking_s"]
        if provenance is not None:
            m.provenance = provenance
        idx = self.index(len(self.messages) - 1)
        self.dataChanged.emit(idx, idx, [Qt.ItemDataRole.DisplayRole, TextRole, StateRole, StatsRole,
                                         ProvenanceRole, ReasoningRole, ThinkingTimeRole])

    def set_dimmed(self, ids: set[int]) -> None:
        """Mark the messages that fell out of the context window (and un-mark the others)."""
        for row, m in enumerate(self.messages):
            dim = m.id in ids
            if dim != m.dimmed:
                m.dimmed = dim
                idx = self.index(row)
                self.dataChanged.emit(idx, idx, [DimmedRole])

    def row_of(self, message_id: int | None) -> int:
        for row, m in enumerate(self.messages):
            if m.id == message_id:
                return row
        return -1
