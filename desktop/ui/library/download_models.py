"""The download window's tables: a repo's quants with their fit, and the download queue with live progress.

Qt models fed on the GUI thread (the window hands them listings and ``DownloadEvent``s); no I/O here.
"""
from __future__ import annotations

from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    Qt,
)
from PySide6.QtWidgets import (
    QApplication,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionProgressBar,
)

from desktop.engine.hub import downloads
from desktop.engine.hub.hardware import GiB

FractionRole = Qt.ItemDataRole.UserRole + 1
JobIdRole = Qt.ItemDataRole.UserRole + 2

STATE_TEXT = {
    "queued": "Queued", "starting": "Starting", "downloading": "Downloading", "stalled": "Stalled",
    "retrying": "Retrying", "verifying": "Verifying", "joining": "Joining parts", "repairing": "Checking GGUF",
    "done": "Done", "failed": "Failed", "cancelled": "Cancelled", "paused": "Paused",
}


def human_size(n: float) -> str:
    if n >= GiB:
        return f"{n / GiB:.1f} GiB"
    if n >= 1 << 20:
        return f"{n / (1 << 20):.1f} MiB"
    return f"{n / 1024:.0f} KiB"


def human_eta(s: float | None) -> str:
    if s is None:
        return ""
    s = int(s)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


class _Table(QAbstractTableModel):
    """A flat table over ``self.rows`` with fixed column ``HEADERS``."""

    HEADERS: tuple[str, ...] = ()
    rows: list[Any]

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: N802
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: N802
        return 0 if parent.isValid() else len(self.HEADERS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:  # noqa: N802
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return self.HEADERS[section]
        return None


class QuantTableModel(_Table):
    """The quants of one repo (``hub.QuantEntry`` rows with their fit verdict)."""

    @property
    def entries(self) -> list[Any]:
        return self.rows

    HEADERS = ("Quant", "Size", "Files", "Needs (weights + KV + overhead)", "Fit on this machine")

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.rows: list[Any] = []
        self.recommended: str | None = None

    def set_entries(self, entries: list[Any], recommended: str | None) -> None:
        self.beginResetModel()
        self.rows, self.recommended = list(entries), recommended
        self.endResetModel()

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self.rows):
            return None
        e = self.rows[index.row()]
        col = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            if col == 0:
                star = "  ★ recommended" if self.recommended and e.quant.upper() == self.recommended.upper() else ""
                return e.quant + star
            if col == 1:
                return human_size(e.size)
            if col == 2:
                return str(len(e.files)) + (f" {e.split}" if e.split else "")
            if col == 3:
                return human_size(e.fit["total_bytes"]) if e.fit else ""
            if col == 4:
                return e.fit["verdict"] if e.fit else "unknown"
        if role == Qt.ItemDataRole.ToolTipRole:
            if col in (3, 4) and e.fit:
                return e.fit["explanation"]
            return "\n".join(e.files)
        if role == Qt.ItemDataRole.UserRole:
            return e.quant
        return None


class JobsModel(_Table):
    """Download jobs and their live progress, fed by DownloadEvents on the GUI thread."""

    HEADERS = ("Model", "State", "Progress", "Speed", "ETA", "Details")

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.rows: list[dict[str, Any]] = []

    def _row(self, job_id: str) -> int:
        for i, r in enumerate(self.rows):
            if r["id"] == job_id:
                return i
        return -1

    def set_jobs(self, jobs: list[downloads.Job]) -> None:
        self.beginResetModel()
        self.rows = [self._from_job(j) for j in jobs]
        self.endResetModel()

    @staticmethod
    def _from_job(j: downloads.Job) -> dict[str, Any]:
        fixes = (j.result or {}).get("fixes") or []
        return {"id": j.id, "name": f"{j.repo} {j.quant or j.filename or ''}".strip(), "state": j.state,
                "done": j.done, "total": j.total, "speed": 0.0, "eta": None,
                "message": "; ".join(fixes) if fixes else (j.message or ""), "fixes": fixes,
                "result": j.result, "error": j.error}

    def add_job(self, j: downloads.Job) -> None:
        if self._row(j.id) >= 0:
            return
        self.beginInsertRows(QModelIndex(), len(self.rows), len(self.rows))
        self.rows.append(self._from_job(j))
        self.endInsertRows()

    def apply(self, ev: downloads.DownloadEvent) -> None:
        i = self._row(ev.job_id)
        if i < 0:
            return
        r = self.rows[i]
        r["state"] = ev.state
        if ev.total:
            r["done"], r["total"] = ev.done, ev.total
        r["speed"], r["eta"] = ev.speed, ev.eta
        if ev.result:
            r["result"] = ev.result
            r["fixes"] = list(ev.result.get("fixes") or [])
        if ev.error:
            r["error"] = ev.error
        if ev.state == "done":
            r["message"] = "; ".join(r["fixes"]) if r["fixes"] else "verified (sha256 matches the Hub)"
        elif ev.message:
            r["message"] = ev.message
        elif ev.state == "downloading" and ev.file:
            r["message"] = f"file {ev.file_index} of {ev.n_files}: {ev.file}" if ev.n_files > 1 else ev.file
        # Only this row changes: the rest of the table is not repainted.
        self.dataChanged.emit(self.index(i, 0), self.index(i, len(self.HEADERS) - 1))

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self.rows):
            return None
        r = self.rows[index.row()]
        col = index.column()
        frac = r["done"] / r["total"] if r["total"] else 0.0
        if role == Qt.ItemDataRole.DisplayRole:
            active = r["state"] in {"downloading", "stalled", "retrying"}
            return [r["name"], STATE_TEXT.get(r["state"], r["state"]),
                    f"{frac:.0%}  {human_size(r['done'])} / {human_size(r['total'])}" if r["total"] else "",
                    f"{human_size(r['speed'])}/s" if active and r["speed"] else "",
                    human_eta(r["eta"]) if active else "", r["message"]][col]
        if role == FractionRole:
            return frac
        if role == JobIdRole:
            return r["id"]
        if role == Qt.ItemDataRole.ToolTipRole:
            res = r.get("result") or {}
            lines = [r["name"], r["message"]]
            if res:
                lines += [f"path: {res.get('path')}", f"sha256: {res.get('sha256')}"]
            if r.get("error") and r["error"].get("details"):
                lines.append(str(r["error"]["details"]))
            return "\n".join(x for x in lines if x)
        return None


class ProgressDelegate(QStyledItemDelegate):
    """Paints the Progress column as the platform's progress bar (follows the palette, light or dark)."""

    def paint(self, painter, option, index) -> None:  # GUI thread
        opt = QStyleOptionProgressBar()
        opt.rect = option.rect.adjusted(2, 3, -2, -3)
        opt.minimum, opt.maximum = 0, 1000
        opt.progress = int(1000 * float(index.data(FractionRole) or 0.0))
        opt.text = index.data(Qt.ItemDataRole.DisplayRole) or ""
        opt.textVisible = True
        # Qt 6 reads the orientation from State_Horizontal; without it a style may draw a vertical bar.
        opt.state = option.state | QStyle.StateFlag.State_Horizontal | QStyle.StateFlag.State_Enabled
        style = option.widget.style() if option.widget else QApplication.style()
        style.drawControl(QStyle.ControlElement.CE_ProgressBar, opt, painter, option.widget)


__all__ = ["STATE_TEXT", "FractionRole", "JobIdRole", "JobsModel", "ProgressDelegate", "QuantTableModel", "human_eta",
           "human_size"]
