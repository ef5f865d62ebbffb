"""The chat list as a QAbstractListModel, with its filter proxy. GUI thread; refreshed from the chat store."""
from __future__ import annotations

import time
from typing import Any

from PySide6.QtCore import (
    QAbstractListModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
)

from desktop.engine.chats.store import Chat, ChatStore

Index = QModelIndex | QPersistentModelIndex
ChatIdRole = Qt.ItemDataRole.UserRole + 1
UpdatedRole = Qt.ItemDataRole.UserRole + 2


def _age(ts: float) -> str:
    d = time.time() - ts
    if d < 60:
        return "just now"
    if d < 3600:
        return f"{int(d // 60)} min ago"
    if d < 86400:
        return f"{int(d // 3600)} h ago"
    return time.strftime("%d %b %Y", time.localtime(ts))


class ChatListModel(QAbstractListModel):
    """Every chat, newest activity first."""

    def __init__(self, store: ChatStore, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.store = store
        self.chats: list[Chat] = []
        self.refresh()

    def refresh(self) -> None:
        self.beginResetModel()
        self.chats = self.store.chats()
        self.endResetModel()

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.chats)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self.chats):
            return None
        c = self.chats[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return c.title
        if role == Qt.ItemDataRole.ToolTipRole:
            return f"{c.title}\nlast active {_age(c.updated)}"
        if role == ChatIdRole:
            return c.id
        if role == UpdatedRole:
            return c.updated
        return None

    def roleNames(self) -> dict[int, bytes]:
        return {Qt.ItemDataRole.DisplayRole: b"title", ChatIdRole: b"chatId", UpdatedRole: b"updated"}

    def row_of(self, chat_id: int | None) -> int:
        return next((i for i, c in enumerate(self.chats) if c.id == chat_id), -1)


class ChatFilterProxy(QSortFilterProxyModel):
    """Filters the chat list by a search: chat titles and full-text matches in any message of any branch."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.query = ""
        self.matches: set[int] | None = None  # chat ids; None: no search, show all

    def set_search(self, query: str, store: ChatStore) -> None:
        matches = {h.chat_id for h in store.search(query.strip())} if query.strip() else None
        if hasattr(self, "endFilterChange"):  # Qt >= 6.10; invalidateFilter is deprecated there
            self.beginFilterChange()
            self.query, self.matches = query.strip(), matches
            self.endFilterChange()
        else:  # pragma: no cover - older Qt
            self.query, self.matches = query.strip(), matches
            self.invalidateFilter()

    def filterAcceptsRow(self, row: int, parent: Index) -> bool:  # noqa: N802
        if self.matches is None:
            return True
        idx = self.sourceModel().index(row, 0, parent)
        return self.sourceModel().data(idx, ChatIdRole) in self.matches
