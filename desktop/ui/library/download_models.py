"""The download queue as a table with live progress (the Downloads page's model).

A Qt model fed on the GUI thread with the manager's jobs and ``DownloadEvent``s; no I/O here.
"""
from __future__ import annotations

from typing import Any, Callable

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

from desktop.engine.hub.events import DownloadEvent
from desktop.engine.hub.queue import ACTIVE_STATES, Job
from desktop.ui.widgets.cards import human_size

FractionRole = Qt.ItemDataRole.UserRole + 1
JobIdRole = Qt.ItemDataRole.UserRole + 2

STATE_TEXT = {
    "queued": "Queued", "starting": "Starting", "downloading": "Downloading", "stalled": "Stalled",
    "retrying": "Retrying", "verifying": "Verifying", "joining": "Joining parts", "repairing": "Checking GGUF",
    "done": "Done", "failed": "Failed", "cancelled": "Cancelled", "paused": "Paused",
}


def _bytes(n: float) -> str:
    return human_size(n, mib_digits=1) if n else "0 KiB"  # a download that has not started has 0 bytes, known


def job_button_text(state: str | None, idle: str = "Download") -> str:
    """What a quant's download button says for its job's ``state`` (None: no job that still matters): the words
    of the repo page and the welcome cards."""
    if state == "failed":
        return "Retry"
    if state == "paused":
        return "Resume"
    return "Downloading…" if state in ACTIVE_STATES else idle


def human_eta(s: float | None) -> str:
    if s is None:
        return ""
    s = int(s)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def job_state_text(job: Job) -> str:
    """One line for a job's state, as the Downloads page, the repo page and the welcome cards say it."""
    state = STATE_TEXT.get(job.state, job.state)
    if job.state == "failed":
        reason = (job.error or {}).get("message") or job.message
        return f"Failed: {reason}" if reason else "Failed"
    if job.state in ACTIVE_STATES and job.total:
        return f"{state} {job.done / job.total:.0%}"
    return state


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


class JobsModel(_Table):
    """Download jobs and their live progress, fed by DownloadEvents on the GUI thread."""

    HEADERS = ("Model", "State", "Progress", "Speed", "ETA", "Details")

    def __init__(self, parent: QObject | None = None, name_of: Callable[[Job], str] | None = None) -> None:
        super().__init__(parent)
        self.rows: list[dict[str, Any]] = []
        self.name_of = name_of or (lambda j: f"{j.repo} {j.quant or j.filename or ''}".strip())

    def row_of(self, job_id: str) -> int:
        """The row of ``job_id`` (-1: not listed)."""
        for i, r in enumerate(self.rows):
            if r["id"] == job_id:
                return i
        return -1

    def set_jobs(self, jobs: list[Job]) -> None:
        self.beginResetModel()
        self.rows = [self._from_job(j) for j in jobs]
        self.endResetModel()

    def _from_job(self, j: Job) -> dict[str, Any]:
        fixes = (j.result or {}).get("fixes") or []
        message = ((j.error or {}).get("message") if j.state == "failed"
                   else "verified (sha256 matches the Hub)" if j.state == "done" else None)
        return {"id": j.id, "name": self.name_of(j), "state": j.state, "state_text": job_state_text(j),
                "done": j.done, "total": j.total, "speed": 0.0, "eta": None,
                "message": "; ".join(fixes) if fixes else (message or j.message or ""), "fixes": fixes,
                "result": j.result, "error": j.error}

    def add_job(self, j: Job) -> None:
        if self.row_of(j.id) >= 0:
            return
        self.beginInsertRows(QModelIndex(), len(self.rows), len(self.rows))
        self.rows.append(self._from_job(j))
        self.endInsertRows()

    def update_job(self, j: Job, ev: DownloadEvent | None = None) -> None:
        """The row of ``j`` as the manager has it now (added if new); ``ev`` adds its speed, ETA and file."""
        i = self.row_of(j.id)
        if i < 0:
            self.add_job(j)
            i = self.row_of(j.id)
        old = self.rows[i]
        new = self._from_job(j)
        if ev is not None:
            new["speed"], new["eta"] = ev.speed, ev.eta
            if ev.state == "done":
                new["message"] = "; ".join(new["fixes"]) if new["fixes"] else "verified (sha256 matches the Hub)"
            elif ev.state == "downloading" and ev.file and not ev.message:
                new["message"] = (f"file {ev.file_index} of {ev.n_files}: {ev.file}" if ev.n_files > 1
                                  else ev.file)
        elif old["state"] == new["state"]:
            new["speed"], new["eta"] = old["speed"], old["eta"]
        self.rows[i] = new
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
                    f"{frac:.0%}  {_bytes(r['done'])} / {_bytes(r['total'])}" if r["total"] else "",
                    f"{_bytes(r['speed'])}/s" if active and r["speed"] else "",
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


__all__ = ["STATE_TEXT", "FractionRole", "JobIdRole", "JobsModel", "ProgressDelegate", "human_eta", "job_button_text", "job_state_text"]
