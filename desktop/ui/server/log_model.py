"""The Server page's live request log as a table model: newest first, at most ``limit`` rows. GUI thread."""
from __future__ import annotations

import time
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt

from desktop.engine.server.config import RequestLog

COLUMNS = ("Time", "API", "Model", "Tokens", "tok/s", "Status")
API_NAMES = {"openai": "OpenAI", "ollama": "Ollama"}

Index = QModelIndex | QPersistentModelIndex


class RequestLogModel(QAbstractTableModel):
    """One row per answered request (``LocalServer.on_request``), the newest on top."""

    def __init__(self, parent: Any = None, limit: int = 500) -> None:
        super().__init__(parent)
        self.limit = limit
        self.rows: list[RequestLog] = []

    def add(self, entry: RequestLog) -> None:
        self.beginInsertRows(QModelIndex(), 0, 0)
        self.rows.insert(0, entry)
        self.endInsertRows()
        if len(self.rows) > self.limit:
            self.beginRemoveRows(QModelIndex(), self.limit, len(self.rows) - 1)
            del self.rows[self.limit:]
            self.endRemoveRows()

    def clear(self) -> None:
        self.beginResetModel()
        self.rows.clear()
        self.endResetModel()

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: N802, B008 - Qt's name and default
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: N802, B008
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation,  # noqa: N802
                   role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section]
        return None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        e = self.rows[index.row()]
        col = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return cell(e, col)
        if role == Qt.ItemDataRole.ToolTipRole:
            where = f"{e.method} {e.path}" + (f" from {e.client}" if e.client else "")
            return f"{where}\n{e.error}" if e.error else where
        if role == Qt.ItemDataRole.TextAlignmentRole and col in (3, 4):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None


def cell(e: RequestLog, col: int) -> str:
    """The text of column ``col`` for one request."""
    if col == 0:
        return time.strftime("%H:%M:%S", time.localtime(e.time))
    if col == 1:
        return f"{API_NAMES.get(e.api, e.api)} {e.path}"
    if col == 2:
        return e.model or "—"
    if col == 3:
        total = e.prompt_tokens + e.completion_tokens
        return f"{e.prompt_tokens} + {e.completion_tokens}" if total else "—"
    if col == 4:
        return f"{e.tokens_per_s:.1f}" if e.tokens_per_s else "—"
    return f"{e.status} {'OK' if e.status < 400 else 'error'}"


__all__ = ["COLUMNS", "RequestLogModel", "cell"]
