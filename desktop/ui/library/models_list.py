"""Installed models (``registry.list_installed()``) as cards: name, quant, size, origin, repairs. GUI thread.

The registry's ``InstalledModel`` is growing new fields (name, profile, source_repo, can_revert, ...) on
another branch; :func:`view_of` reads every field with a fallback so this model works with both shapes.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PySide6.QtCore import (
    QAbstractListModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    Qt,
)

from desktop.ui.widgets.cards import BadgesRole, KeyRole, SubtitleRole, human_size

Index = QModelIndex | QPersistentModelIndex
ItemRole = Qt.ItemDataRole.UserRole + 140

# Both spellings: "download"/"import" (older registry) and "downloaded"/"imported"/"hf-cache" (newer).
ORIGIN_TEXT = {"download": "Downloaded", "downloaded": "Downloaded", "import": "Imported", "imported": "Imported",
               "hf-cache": "Found in HF cache", "bundled": "Bundled demo"}
ORIGIN_TONE = {"Downloaded": "ok", "Imported": "accent", "Found in HF cache": "muted", "Bundled demo": "good"}


@dataclass(frozen=True)
class LibraryItem:
    id: str
    name: str
    profile_id: str | None
    path: str
    size: int
    quant: str | None
    origin: str  # the words: Downloaded | Imported | Found in HF cache | Bundled demo
    fixes: list[str] = field(default_factory=list)
    repaired_in_place: bool = False
    can_revert: bool = False
    sha256: str | None = None
    source_repo: str | None = None
    status: str = "ok"

    @property
    def removable(self) -> bool:
        return self.origin != "Bundled demo"

    @property
    def deletes_file(self) -> bool:
        """Whether Remove deletes the file: only what the app itself downloaded (as ``models remove``)."""
        return self.origin == "Downloaded"


def view_of(m: Any, names: dict[str, str] | None = None) -> LibraryItem:
    profile = getattr(m, "profile", None) or getattr(m, "profile_id", None)
    name = getattr(m, "name", None) or (names or {}).get(profile or "") or Path(m.path).stem
    origin_raw = getattr(m, "origin", "download")
    return LibraryItem(
        str(m.id), str(name), profile, str(m.path), int(getattr(m, "size", 0) or 0), getattr(m, "quant", None),
        ORIGIN_TEXT.get(origin_raw, origin_raw), list(getattr(m, "fixes", None) or []),
        bool(getattr(m, "repaired_in_place", False)), bool(getattr(m, "can_revert", False)),
        getattr(m, "sha256", None), getattr(m, "source_repo", None) or getattr(m, "repo", None),
        str(getattr(m, "status", "ok")))


def gather(store: Any = None) -> list[LibraryItem]:
    """Worker thread: the installed models, named after their profiles where the registry has no name."""
    from desktop.engine.library import registry
    from desktop.engine.profiles import ProfileStore

    store = store or ProfileStore()
    names = {p.id: p.name for p in store.all()}
    items = [view_of(m, names) for m in registry.list_installed(store)]
    return sorted(items, key=lambda i: (i.origin == "Bundled demo", i.name.lower()))


class LibraryModel(QAbstractListModel):
    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.items: list[LibraryItem] = []

    def set_items(self, items: list[LibraryItem]) -> None:
        self.beginResetModel()
        self.items = list(items)
        self.endResetModel()

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(self.items)

    def row_of(self, model_id: str | None) -> int:
        return next((i for i, m in enumerate(self.items) if m.id == model_id), -1)

    @staticmethod
    def subtitle(m: LibraryItem) -> str:
        parts = [m.quant or "?", human_size(m.size)]
        if m.source_repo:
            parts.append(m.source_repo)
        if m.status == "missing":
            parts.append("file missing")
        return "  ·  ".join(parts)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self.items):
            return None
        m = self.items[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return m.name
        if role == SubtitleRole:
            return self.subtitle(m)
        if role == BadgesRole:
            badges = [(m.origin, ORIGIN_TONE.get(m.origin, "muted"))]
            if m.fixes:
                badges.append(("Repaired" if m.repaired_in_place else "Fixed at load", "warn"))
            if m.status == "missing":
                badges.append(("Missing", "bad"))
            return badges
        if role == KeyRole:
            return m.id
        if role == ItemRole:
            return m
        if role == Qt.ItemDataRole.ToolTipRole:
            return "\n".join([m.name, m.path, *m.fixes])
        return None
