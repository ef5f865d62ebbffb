"""A repo's quants as cards: size, what it needs, a fit badge, the recommended one marked. GUI thread.

The what-if context slider re-evaluates every verdict without the network: the listing's first fit
already carries the architecture numbers that matter (layers, KV bytes per token) and the hardware it was
measured against, so :func:`refit` rebuilds an equivalent ``fit.Arch`` and calls ``fit.estimate`` again.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from PySide6.QtCore import (
    QAbstractListModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    Qt,
)

from desktop.engine.hub import fit
from desktop.engine.hub.quants import QuantListing
from desktop.engine.hub.hardware import GPU, Hardware
from desktop.engine.hub.listing import QuantEntry
from desktop.ui.widgets.cards import (
    VISION_BADGE,
    BadgesRole,
    HighlightRole,
    KeyRole,
    SubtitleRole,
    fit_badge,
    human_size,
)

Index = QModelIndex | QPersistentModelIndex
FitRole = Qt.ItemDataRole.UserRole + 120  # the entry's fit dict
# Full-precision files are for converting, not chatting: never the recommendation.
NOT_RECOMMENDED = {"F32", "F16", "BF16", "FP16"}


def hardware_from_dict(d: dict[str, Any]) -> Hardware:
    gpus = tuple(GPU(**{k: g[k] for k in ("index", "name", "vendor", "vram_total", "vram_free")})
                 for g in d.get("gpus") or ())
    return Hardware(int(d["ram_total"]), int(d["ram_available"]), int(d["cpu_count"]), gpus,
                    bool(d.get("apple_silicon")), bool(d.get("unified_memory")), tuple(d.get("notes") or ()))


def arch_from_fit(f: dict[str, Any]) -> fit.Arch | None:
    """An Arch with the same layer count and KV bytes per token as the one behind ``f`` (None if unknown)."""
    layers, per_tok = int(f.get("total_layers") or 0), int(f.get("kv_bytes_per_token") or 0)
    if f.get("kind") == "unknown" or not layers or not per_tok:
        return None
    # kv_bytes_per_token = int(2 x layers x kv_heads x head_dim x bytes_per_element): fold heads x dim into one.
    width = round(per_tok / (2 * layers * fit.KV_BYTES_PER_ELEMENT[f.get("kv_type", "f16")]))
    return fit.Arch(layers, 1, max(width, 1))


def refit(listing: QuantListing, n_ctx: int) -> QuantListing:
    """The same listing with every verdict recomputed for ``n_ctx`` tokens. No network, no disk."""
    first = next((e.fit for e in listing.entries if e.fit), None)
    arch = arch_from_fit(first) if first else None
    hw = hardware_from_dict(listing.hardware)
    entries = [dataclasses.replace(e, fit=fit.estimate(e.size, arch, n_ctx, hw, listing.kv_type).to_dict())
               for e in listing.entries]
    return dataclasses.replace(listing, n_ctx=n_ctx, entries=entries)


def recommend(entries: list[QuantEntry], preferred: str | None = None) -> str | None:
    """The profile's choice if it is listed and runs here; else the biggest quant that runs fully on the GPU
    (or, without one, the biggest that fits in RAM), never a full-precision file."""
    usable = [e for e in entries if e.complete and e.quant.upper() not in NOT_RECOMMENDED]
    if preferred:
        for e in usable:
            if e.quant.upper() == preferred.upper() and (e.fit or {}).get("kind") != "none":
                return e.quant
    for kinds in (("gpu",), ("cpu", "partial")):
        ok = [e for e in usable if (e.fit or {}).get("kind") in kinds]
        if ok:
            return max(ok, key=lambda e: e.size).quant
    return None


class QuantsModel(QAbstractListModel):
    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.entries: list[QuantEntry] = []
        self.recommended: str | None = None
        self.states: dict[str, tuple[str, str]] = {}  # QUANT -> (badge text, tone): installed, downloading…

    def set_states(self, states: dict[str, tuple[str, str]]) -> None:
        """Each quant's download or install state, as a badge (``{"Q8_0": ("Installed", "ok")}``)."""
        if states == self.states:
            return
        self.states = dict(states)
        if self.entries:
            self.dataChanged.emit(self.index(0), self.index(len(self.entries) - 1), [BadgesRole])

    def set_entries(self, entries: list[QuantEntry], recommended: str | None) -> None:
        self.beginResetModel()
        self.entries, self.recommended = list(entries), recommended
        self.endResetModel()

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(self.entries)

    def row_of(self, quant: str | None) -> int:
        return next((i for i, e in enumerate(self.entries) if quant and e.quant.upper() == quant.upper()), -1)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self.entries):
            return None
        e = self.entries[index.row()]
        rec = bool(self.recommended and e.quant.upper() == self.recommended.upper())
        if role == Qt.ItemDataRole.DisplayRole:
            return e.quant
        if role == SubtitleRole:
            parts = [human_size(e.size)]
            if e.fit and e.fit.get("total_bytes"):
                parts.append(f"needs {human_size(e.fit['total_bytes'])} at {e.fit['n_ctx']:,} tokens")
            if e.split:
                parts.append(f"{len(e.files)} {e.split}")
            if not e.complete:
                parts.append("incomplete set")
            if e.vision:  # the listing paired a projector: downloaded with it
                parts.append(f"vision (+{human_size(e.mmproj_size)} projector)" if e.mmproj_size else "vision")
            return "  ·  ".join(parts)
        if role == BadgesRole:
            badges = [("★ Recommended", "star")] if rec else []
            if e.vision:
                badges.append(VISION_BADGE)
            state = self.states.get(e.quant.upper())
            if state:
                badges.append(state)
            text, tone = fit_badge(e.fit)
            if e.fit and e.fit.get("kind") == "partial":
                text = f"Partial offload {e.fit['gpu_layers']}/{e.fit['total_layers']}"
            return badges + [(text, tone)]
        if role == HighlightRole:
            return rec
        if role == KeyRole:
            return e.quant
        if role == FitRole:
            return e.fit
        if role == Qt.ItemDataRole.ToolTipRole:
            lines = [f"{e.quant}: {e.fit['verdict']}" if e.fit else e.quant]
            if e.fit:
                lines.append(e.fit["explanation"])
            return "\n".join(lines + e.files)
        return None
