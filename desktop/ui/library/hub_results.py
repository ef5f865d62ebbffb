"""Hub search results as a card list model (``RepoSummary`` rows, most downloaded first). GUI thread."""
from __future__ import annotations

from typing import Any

from PySide6.QtCore import (
    QAbstractListModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    Qt,
)

from desktop.engine.hub.search import RepoSummary
from desktop.ui.widgets.cards import (
    BadgesRole,
    KeyRole,
    SubtitleRole,
    age_text,
    human_count,
    params_text,
)

Index = QModelIndex | QPersistentModelIndex


class HubResultsModel(QAbstractListModel):
    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.rows: list[RepoSummary] = []

    def set_rows(self, rows: list[RepoSummary]) -> None:
        self.beginResetModel()
        self.rows = sorted(rows, key=lambda r: r.downloads, reverse=True)
        self.endResetModel()

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(self.rows)

    @staticmethod
    def subtitle(r: RepoSummary) -> str:
        parts = [f"↓ {human_count(r.downloads)} downloads", f"♥ {human_count(r.likes)}"]
        age = age_text(r.last_modified)
        if age:
            parts.append(age)
        return "  ·  ".join(parts)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self.rows):
            return None
        r = self.rows[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return r.repo_id
        if role == SubtitleRole:
            return self.subtitle(r)
        if role == BadgesRole:
            badges = []
            p = params_text(r.params)
            if p:
                badges.append((p, "accent"))
            if r.gated:
                badges.append(("Gated", "warn"))
            return badges
        if role == KeyRole:
            return r.repo_id
        if role == Qt.ItemDataRole.ToolTipRole:
            return f"{r.repo_id}\n{self.subtitle(r)}\nPress Enter or double-click to see its quants."
        return None
