"""Profiles as pickable cards: name, quant, file size, installed or not, and a fit badge for this machine.

:func:`entries_of` does the slow part (profile files, registry and HF-cache lookups, hardware detection, the
fit estimate) on the one scan's worker (scan.py); the list model only holds its answer (GUI thread). The
model picker, the welcome view and the Model menu all read it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import (
    QAbstractListModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
)

from desktop.engine.errors import AppError
from desktop.engine.hub import fit
from desktop.engine.library import registry
from desktop.ui.widgets.cards import (
    REASONING_BADGE,
    VISION_BADGE,
    BadgesRole,
    HighlightRole,
    KeyRole,
    SubtitleRole,
    estimate_size,
    fit_badge,
    human_size,
)

Index = QModelIndex | QPersistentModelIndex
InstalledRole = Qt.ItemDataRole.UserRole + 130
EntryRole = Qt.ItemDataRole.UserRole + 131


@dataclass(frozen=True)
class PickerEntry:
    profile_id: str
    name: str
    quant: str | None
    size: int | None
    size_estimated: bool  # True: from the parameter count (not downloaded yet), not a file's size
    installed: bool
    remote: bool
    fit: dict[str, Any] | None
    params_b: float = 0.0
    starter: bool = False
    repo: str | None = None
    bundled: bool = False
    quant_label: str | None = None  # the file's own type, with the repo's name beside it when they differ
    model_id: str | None = None  # the installed file it runs on (registry id)
    vision: bool = False  # takes images: its installed file has a projector, or its profile names one
    reasoning: bool = False  # thinks before it answers (its profile's reasoning format)

    @property
    def search_text(self) -> str:
        return f"{self.name} {self.profile_id} {self.quant_label or self.quant or ''} {self.repo or ''}".lower()


def _arch(p: Any, path: Any = None) -> fit.Arch | None:
    """The profile's architecture numbers; else, for an installed file, its own GGUF header's."""
    a = p.architecture
    if a.layers:
        return fit.Arch(a.layers, a.kv_heads or a.heads, a.head_dim or (a.embd // a.heads if a.heads else 0),
                        p.context.native, a.experts or None)
    if path is None:
        return None
    from desktop.engine.gguf import header
    from desktop.engine.hub.listing import HEADER_PREFIX_BYTES

    try:
        with open(path, "rb") as f:
            return fit.Arch.from_numbers(header.arch_numbers(header.parse_prefix(f.read(HEADER_PREFIX_BYTES))))
    except (OSError, AppError):
        return None


def entries_of(store: Any, hw: Any, installed_models: list[Any], items: list[Any]) -> list[PickerEntry]:
    """Every profile as a PickerEntry, installed first, then by name. Disk lookups: call on a worker.

    ``installed_models`` is ``registry.list_installed()``'s answer and ``items`` its LibraryItems (scan.py):
    a profile whose file is installed is named, and its quant labelled, as that file's item."""
    import os

    from desktop.engine.hub import hardware

    hw = hw or hardware.detect()
    installed = {m.profile_id: m for m in installed_models}
    by_path = {os.path.realpath(i.path): i for i in items}
    out: list[PickerEntry] = []
    for p in store.all():
        remote = registry.is_remote(p)
        path = None
        if not remote:
            try:
                path = registry.resolve_model(p)
            except AppError:
                path = None
        m = installed.get(p.id)
        item = by_path.get(os.path.realpath(path)) if path is not None else None
        quant = (item.quant if item and item.quant else None) or (m.quant if m and m.quant else None) \
            or p.source.recommended_quant
        label = item.quant_label if item else quant
        size: int | None = None
        estimated = False
        if path is not None:
            size = m.size if m and m.size else path.stat().st_size
        elif not remote:
            size = estimate_size(p.architecture.params_b, quant)
            estimated = size is not None
        fit_d = None
        if size and not remote:
            fit_d = fit.estimate(size, _arch(p, path), p.context.default, hw, p.load.kv_cache_type).to_dict()
        params_b = float(p.architecture.params_b or 0.0)
        starter = bool(p.starter)  # the bundled starter profiles (`starter: true`)
        out.append(PickerEntry(p.id, item.name if item else p.name, quant, size, estimated,
                               remote or path is not None, remote, fit_d, params_b, starter, p.source.repo,
                               bool(p.source.bundled), label, item.id if item else None,
                               bool(item.vision if item else (m and getattr(m, "vision", False))
                                    or (not remote and p.source.mmproj)), p.is_reasoning))
    out.sort(key=lambda e: (not e.installed, e.name.lower()))
    return out


class PickerModel(QAbstractListModel):
    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.entries: list[PickerEntry] = []
        self.current: str | None = None

    def set_entries(self, entries: list[PickerEntry]) -> None:
        self.beginResetModel()
        self.entries = list(entries)
        self.endResetModel()

    def set_current(self, profile_id: str | None) -> None:
        self.current = profile_id
        if self.entries:
            self.dataChanged.emit(self.index(0), self.index(len(self.entries) - 1), [HighlightRole])

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(self.entries)

    @staticmethod
    def subtitle(e: PickerEntry) -> str:
        if e.remote:
            return "runs on a server"
        parts = [e.quant_label or e.quant or "?"]
        if e.size:
            parts.append(("~" if e.size_estimated else "") + human_size(e.size))
        parts.append("installed" if e.installed else "not downloaded")
        return "  ·  ".join(parts)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self.entries):
            return None
        e = self.entries[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return e.name
        if role == SubtitleRole:
            return self.subtitle(e)
        if role == BadgesRole:
            badges = ([VISION_BADGE] if e.vision else []) + ([REASONING_BADGE] if e.reasoning else [])
            if e.remote:
                badges.append(("Remote", "ok"))
            elif e.fit:
                badges.append(fit_badge(e.fit))
            if not e.installed:
                badges.append(("Download", "muted"))
            return badges
        if role == HighlightRole:
            return e.profile_id == self.current
        if role in (KeyRole, Qt.ItemDataRole.UserRole):
            return e.profile_id
        if role == InstalledRole:
            return e.installed
        if role == EntryRole:
            return e
        if role == Qt.ItemDataRole.ToolTipRole:
            lines = [e.name, self.subtitle(e)]
            if e.fit:
                lines.append(f"{e.fit['verdict']}: {e.fit['explanation']}")
            return "\n".join(lines)
        return None


class PickerFilter(QSortFilterProxyModel):
    """Rows whose name, id, quant or repo contain every word typed."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.words: list[str] = []

    def set_text(self, text: str) -> None:
        words = text.lower().split()
        if hasattr(self, "beginFilterChange"):  # Qt >= 6.10
            self.beginFilterChange()
            self.words = words
            self.endFilterChange()
        else:  # pragma: no cover - older Qt
            self.words = words
            self.invalidateFilter()

    def filterAcceptsRow(self, row: int, parent: Index) -> bool:  # noqa: N802
        e = self.sourceModel().data(self.sourceModel().index(row, 0, parent), EntryRole)
        return e is not None and all(w in e.search_text for w in self.words)
