"""The profile list as a QAbstractListModel, with its sort proxy (installed first). GUI thread.

Installed-or-not comes from the app's one scan (``installed.InstalledModels``), never from a lookup of its own.
"""
from __future__ import annotations

from typing import Any

from PySide6.QtCore import (
    QAbstractListModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
    Signal,
)

from desktop.engine.profiles import Profile, ProfileStore
from desktop.ui.library.installed import InstalledModels

Index = QModelIndex | QPersistentModelIndex
ProfileIdRole = Qt.ItemDataRole.UserRole + 11
InstalledRole = Qt.ItemDataRole.UserRole + 12
QuantRole = Qt.ItemDataRole.UserRole + 13
ProfileRole = Qt.ItemDataRole.UserRole + 14


class ProfileListModel(QAbstractListModel):
    """Every profile, with whether its model is installed and its one name.

    The flags are the shared scan's (``source``): :meth:`refresh` re-reads the profiles at once with the flags
    known so far and asks the source for a fresh scan; ``scanned`` fires when its answer is in. Opening a menu
    never touches the disk.
    """

    scanned = Signal()

    def __init__(self, store: ProfileStore, parent: QObject | None = None,
                 source: InstalledModels | None = None) -> None:
        super().__init__(parent)
        self.store = store
        self.source = source or InstalledModels(store, parent=self)
        self.rows: list[tuple[Profile, bool, str]] = []
        self.source.changed.connect(self._on_scanned)
        self.source.failed.connect(lambda _e: self.scanned.emit())
        self._set_rows()
        self.source.refresh()

    def refresh(self) -> None:
        self._set_rows()
        self.source.refresh()

    def _set_rows(self) -> None:
        src = self.source
        rows = []
        for p in self.store.all():
            e = src.entry(p.id)
            rows.append((p, bool(e.installed) if e else False, e.name if e else p.name))
        self.beginResetModel()
        self.rows = rows
        self.endResetModel()

    def _on_scanned(self) -> None:
        self._set_rows()
        self.scanned.emit()

    def installed(self, profile_id: str) -> bool | None:
        """The scanned flag (None: not known yet)."""
        return self.source.installed(profile_id)

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.rows)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self.rows):
            return None
        p, installed, name = self.rows[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return name if installed else f"{name}  (not downloaded)"
        if role == Qt.ItemDataRole.ToolTipRole:
            return p.description or p.name
        if role == ProfileIdRole:
            return p.id
        if role == InstalledRole:
            return installed
        if role == QuantRole:
            return p.source.recommended_quant
        if role == ProfileRole:
            return p
        return None

    def roleNames(self) -> dict[int, bytes]:
        return {Qt.ItemDataRole.DisplayRole: b"name", ProfileIdRole: b"profileId", InstalledRole: b"installed",
                QuantRole: b"quant"}


class ProfileSortProxy(QSortFilterProxyModel):
    """Installed profiles first, then by name; optionally only installed ones."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.installed_only = False
        self.sort(0)

    def lessThan(self, a: Index, b: Index) -> bool:  # noqa: N802
        src = self.sourceModel()
        ka = (not src.data(a, InstalledRole), str(src.data(a, Qt.ItemDataRole.DisplayRole)).lower())
        kb = (not src.data(b, InstalledRole), str(src.data(b, Qt.ItemDataRole.DisplayRole)).lower())
        return ka < kb

    def filterAcceptsRow(self, row: int, parent: Index) -> bool:  # noqa: N802
        if not self.installed_only:
            return True
        return bool(self.sourceModel().data(self.sourceModel().index(row, 0, parent), InstalledRole))
