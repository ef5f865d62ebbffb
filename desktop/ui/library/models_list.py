"""Installed models (``registry.list_installed()``) as cards: name, quant, size, origin, repairs. GUI thread.

:func:`items_of` turns the registry's ``InstalledModel`` rows into the view's ``LibraryItem`` (on the scan's
worker, scan.py: it reads each file's GGUF header for its own quant type).
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

from desktop.ui.widgets.cards import REASONING_BADGE, VISION_BADGE, BadgesRole, KeyRole, SubtitleRole, human_size

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
    file_type: str | None = None  # the GGUF header's own type (``quant`` is the name the repo gave the file)
    vision: bool = False  # a multimodal projector is recorded with it: it takes images
    reasoning: bool = False  # its profile thinks before it answers

    @property
    def quant_label(self) -> str | None:
        from desktop.ui.library.labels import quant_label

        return quant_label(self.file_type, self.quant)

    @property
    def removable(self) -> bool:
        return self.origin != "Bundled demo"

    @property
    def deletes_file(self) -> bool:
        """Whether Remove deletes the file: only what the app itself downloaded (as ``models remove``)."""
        return self.origin == "Downloaded"


def view_of(m: Any, names: dict[str, str] | None = None, reasoning: bool = False) -> LibraryItem:
    """Worker thread (reads the file's header)."""
    from desktop.ui.library.labels import file_type_of

    # The registry falls back to the file's stem for an entry it has no name for: the profile's name reads
    # better there; a name given at download or by Rename wins.
    stem = Path(m.path).stem
    name = (m.name if m.name and m.name != stem else None) or (names or {}).get(m.profile or "") or stem
    return LibraryItem(
        str(m.id), str(name), m.profile, str(m.path), int(m.size or 0), m.quant,
        ORIGIN_TEXT.get(m.origin, m.origin), list(m.fixes or []), bool(m.repaired_in_place), bool(m.can_revert),
        m.sha256, m.source_repo, str(m.status), file_type_of(m.path), bool(getattr(m, "vision", False)), reasoning)


def items_of(installed: list[Any], store: Any) -> list[LibraryItem]:
    """Worker thread: the installed models, named after their profiles where the registry has no name."""
    profiles = {p.id: p for p in store.all()}
    names = {pid: p.name for pid, p in profiles.items()}
    items = [view_of(m, names, bool(m.profile in profiles and profiles[m.profile].is_reasoning)) for m in installed]
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
        parts = [m.quant_label or "?", human_size(m.size)]
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
            if m.reasoning:
                badges.insert(0, REASONING_BADGE)
            if m.vision:
                badges.insert(0, VISION_BADGE)
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
