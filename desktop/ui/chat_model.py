"""The conversation as a QAbstractListModel, owned by the GUI thread.

Streamed text is buffered and flushed on a short timer (~40 ms), and each flush touches only the
last row, so a long answer costs the same per update at token 4,000 as at token 1.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import QAbstractListModel, QModelIndex, QObject, QPersistentModelIndex, Qt, QTimer

RoleRole = Qt.ItemDataRole.UserRole + 1
TextRole = Qt.ItemDataRole.UserRole + 2
StateRole = Qt.ItemDataRole.UserRole + 3

Index = QModelIndex | QPersistentModelIndex


@dataclass
class ChatMessage:
    role: str
    text: str
    state: str = "done"  # "streaming", "done", "cancelled", "error"
    meta: dict[str, Any] = field(default_factory=dict)


class ChatModel(QAbstractListModel):
    FLUSH_MS = 40

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.messages: list[ChatMessage] = []
        self._pending: list[str] = []
        self._timer = QTimer(self)
        self._timer.setInterval(self.FLUSH_MS)
        self._timer.timeout.connect(self.flush)
        self.flushes = 0

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        return 0 if parent.isValid() else len(self.messages)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self.messages):
            return None
        m = self.messages[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            who = {"user": "You", "assistant": "Assistant", "system": "System"}.get(m.role, m.role)
            suffix = {"cancelled": "  [stopped]", "error": "  [interrupted]"}.get(m.state, "")
            return f"{who}: {m.text}{suffix}"
        if role == RoleRole:
            return m.role
        if role == TextRole:
            return m.text
        if role == StateRole:
            return m.state
        return None

    def roleNames(self) -> dict[int, bytes]:
        return {Qt.ItemDataRole.DisplayRole: b"display", RoleRole: b"role", TextRole: b"text", StateRole: b"state"}

    def append(self, role: str, text: str, state: str = "done") -> int:
        row = len(self.messages)
        self.beginInsertRows(QModelIndex(), row, row)
        self.messages.append(ChatMessage(role, text, state))
        self.endInsertRows()
        return row

    def append_token(self, text: str) -> None:
        self._pending.append(text)
        if not self._timer.isActive():
            self._timer.start()

    def flush(self) -> None:
        self._timer.stop()
        if not self._pending or not self.messages:
            return
        self.messages[-1].text += "".join(self._pending)
        self._pending.clear()
        self.flushes += 1
        idx = self.index(len(self.messages) - 1)
        self.dataChanged.emit(idx, idx, [Qt.ItemDataRole.DisplayRole, TextRole])

    def finish_last(self, state: str, text: str | None = None) -> None:
        self.flush()
        if not self.messages:
            return
        m = self.messages[-1]
        m.state = state
        if text is not None and state == "done":
            m.text = text
        idx = self.index(len(self.messages) - 1)
        self.dataChanged.emit(idx, idx, [Qt.ItemDataRole.DisplayRole, TextRole, StateRole])

    def history(self) -> list[dict[str, str]]:
        return [{"role": m.role, "content": m.text} for m in self.messages if m.role in ("user", "assistant")
                and not (m.role == "assistant" and m.state == "streaming")]
