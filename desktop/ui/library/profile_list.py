"""The profile list as a QAbstractListModel, with its sort proxy (installed first). GUI thread.

Installed-or-not is decided by ``models.resolve_model`` (a file lookup, never a hash) on a worker thread, and
cached.
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

from desktop.engine.errors import AppError
from desktop.engine.library import registry as models
from desktop.engine.profiles import Profile, ProfileStore

Index = QModelIndex | QPersistentModelIndex
ProfileIdRole = Qt.ItemDataRole.UserRole + 11
InstalledRole = Qt.ItemDataRole.UserRole + 12
QuantRole = Qt.ItemDataRole.UserRole + 13
ProfileRole = Qt.ItemDataRole.UserRole + 14


class ProfileListModel(QAbstractListModel):
    """Every profile, with whether its model is installed.

    Whether a model is installed is a look into the registry and the Hugging Face cache (disk I/O), so
    :meth:`refresh` lists the profiles at once with the installed flags it knew, and re-checks them on a
    worker thread; ``scanned`` fires when the fresh flags are in. Opening a menu never touches the disk.
    """

    scanned = Signal()

    def __init__(self, store: ProfileStore, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.store = store
        self.rows: list[tuple[Profile, bool]] = []
        self._job: Any = None
        self._again = False
        self.refresh()

    def refresh(self) -> None:
        known = {p.id: inst for p, inst in self.rows}
        profiles = self.store.all()
        self._set_rows([(p, known.get(p.id, False)) for p in profiles])
        if self._job is not None:
            self._again = True  # a scan is running: one more after it, for what changed meanwhile
            return
        from desktop.ui import workers

        self._job = workers.start(lambda: [(p, self._installed(p)) for p in profiles], self._scanned,
                                  self._scan_failed, self)

    def _set_rows(self, rows: list[tuple[Profile, bool]]) -> None:
        self.beginResetModel()
        self.rows = rows
        self.endResetModel()

    def _scanned(self, rows: list[tuple[Profile, bool]]) -> None:
        self._job = None
        self._set_rows(rows)
        if self._again:
            self._again = False
            self.refresh()
            return
        self.scanned.emit()

    def _scan_failed(self, _exc: BaseException) -> None:
        self._job = None
        self.scanned.emit()

    def installed(self, profile_id: str) -> bool | None:
        """The cached flag (None: not known yet)."""
        return next((inst for p, inst in self.rows if p.id == profile_id), None)

    @staticmethod
    def _installed(p: Profile) -> bool:
        if models.is_remote(p):
            return True
        try:
            models.resolve_model(p)
            return True
        except AppError:
            return False

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.rows)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self.rows):
            return None
        p, installed = self.rows[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return p.name if installed else f"{p.name}  (not downloaded)"
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
