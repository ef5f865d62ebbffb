"""One repo's page: its quants as cards with size, need and a fit badge, a what-if context slider, Download.

``open_repo(spec)`` takes a repo id (``owner/name``) or a profile id; the listing (network) runs on the
thread pool through ``quants.list_quants``. The slider re-evaluates the verdicts on the GUI thread from
the cached listing (``models.quants.refit``: arithmetic only, no network). Download emits
``download_requested(repo, quant)``; the caller queues it. Errors show in the shared ErrorPanel.

This is the app's one quant picker: the Hub's results, the Model menu, the picker, a missing model and the
welcome page all open it. With :meth:`RepoPage.attach` it follows the one DownloadManager's events and the
one installed-model scan: each quant card says Installed, Queued, Downloading 40 % or Failed, and the
button under the list becomes Retry (a failed job), Resume, or is off while the quant downloads.
"""
from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QLabel,
    QListView,
    QPushButton,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from desktop.engine.errors import AppError
from desktop.engine.hub.quants import QuantListing, list_quants
from desktop.engine.hub.queue import ACTIVE_STATES, Job
from desktop.ui.library.download_models import job_button_text, job_state_text
from desktop.ui.library.quants_model import QuantsModel, recommend, refit
from desktop.ui.widgets.cards import CardDelegate, apply_style, human_size, icon
from desktop.ui.widgets.error_panel import ErrorPanel
from desktop.ui.workers import JobKeeper

CONTEXT_STEPS = [1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072, 262144, 524288, 1048576]


def _load(spec: str, store: Any) -> tuple[QuantListing, str | None, int]:
    """Worker thread: the listing, the profile's preferred quant, and the largest sensible context."""
    listing = list_quants(spec, store=store)
    preferred, ctx_max = None, 131072
    if listing.profile_id:
        from desktop.engine.profiles import ProfileStore

        prof = (store or ProfileStore()).get(listing.profile_id)
        preferred = prof.source.recommended_quant
        ctx_max = prof.context.max or prof.context.native or ctx_max
    return listing, preferred, max(ctx_max, listing.n_ctx)


class RepoPage(QWidget):
    download_requested = Signal(str, str)  # repo, quant
    chat_requested = Signal(str)  # the profile id of an installed quant: load it and go to the chat
    back_requested = Signal()
    import_requested = Signal()
    listing_finished = Signal()  # a listing arrived or failed

    def __init__(self, parent: QWidget | None = None, store: Any = None) -> None:
        super().__init__(parent)
        apply_style(self)
        self.store = store
        self.spec: str | None = None
        self.listing: QuantListing | None = None  # as listed (the cache the slider works from)
        self.shown: QuantListing | None = None  # re-evaluated for the slider's context
        self._seq = 0
        self._jobs = JobKeeper(self)
        self._steps: list[int] = list(CONTEXT_STEPS)
        self._want: str | None = None  # a quant asked for by whoever opened the page
        self._preferred: str | None = None  # the profile's recommended quant, when a profile's page is listed
        self.controller: Any = None  # DownloadsController (attach)
        self.source: Any = None  # InstalledModels (attach)

        self.back_btn = QPushButton("Back")
        self.back_btn.setObjectName("secondary")
        self.back_btn.setIcon(icon("mdi6.arrow-left"))
        self.title = QLabel("")
        self.title.setObjectName("title")
        self.title.setWordWrap(True)
        self.title.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        head = QHBoxLayout()
        head.addWidget(self.back_btn)
        head.addSpacing(8)
        head.addWidget(self.title, 1)
        self.summary = QLabel()
        self.summary.setObjectName("muted")
        self.summary.setWordWrap(True)

        self.ctx_label = QLabel()
        self.ctx = QSlider(Qt.Orientation.Horizontal)
        self.ctx.setToolTip("What if the context were this long? The KV cache grows with it.")
        self.ctx.setEnabled(False)
        ctx_row = QHBoxLayout()
        ctx_row.addWidget(QLabel("Context"))
        ctx_row.addWidget(self.ctx, 1)
        ctx_row.addWidget(self.ctx_label)

        self.quants = QuantsModel(self)
        self.list = QListView()
        self.list.setObjectName("cards")
        self.list.setModel(self.quants)
        self.list.setItemDelegate(CardDelegate(self.list))
        self.list.setMouseTracking(True)
        self.list.setSpacing(2)
        self.list.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.error_panel = ErrorPanel()
        self.download_btn = QPushButton("Download")
        self.download_btn.setObjectName("primary")
        self.download_btn.setIcon(icon("mdi6.download", color="white"))
        self.download_btn.setEnabled(False)
        self.pick_label = QLabel()
        self.pick_label.setObjectName("muted")
        self.pick_label.setWordWrap(True)
        foot = QHBoxLayout()
        foot.addWidget(self.pick_label, 1)
        foot.addWidget(self.download_btn)

        lay = QVBoxLayout(self)
        lay.setContentsMargins(24, 20, 24, 16)
        lay.setSpacing(10)
        lay.addLayout(head)
        lay.addWidget(self.summary)
        lay.addLayout(ctx_row)
        lay.addWidget(self.error_panel)
        lay.addWidget(self.list, 1)
        lay.addLayout(foot)

        self.back_btn.clicked.connect(self.back_requested)
        self.ctx.valueChanged.connect(self._on_ctx)
        self.download_btn.clicked.connect(self.download_selected)
        self.list.doubleClicked.connect(lambda _i: self.download_selected())
        self.list.selectionModel().currentChanged.connect(lambda *_a: self._update())
        self.error_panel.retry_clicked.connect(self.reload)
        self.error_panel.import_clicked.connect(self.import_requested)

    def attach(self, controller: Any, source: Any) -> None:
        """Follow the downloads (a DownloadsController) and the installed models (InstalledModels)."""
        self.controller, self.source = controller, source
        controller.event_received.connect(lambda _ev: self._show_states())
        source.changed.connect(self._show_states)

    def _repo(self) -> str | None:
        return self.listing.repo if self.listing else None

    def job_of(self, quant: str | None) -> Job | None:
        """The newest download job of ``quant`` of this page's repo."""
        repo = self._repo()
        if self.controller is None or not repo or not quant:
            return None
        return self.controller.latest(repo=repo, quant=quant)

    def _installed(self) -> dict[str, Any]:
        """This repo's installed files by quant (upper case)."""
        repo = (self._repo() or "").lower()
        if self.source is None or not repo:
            return {}
        return {(i.quant or "").upper(): i for i in self.source.items
                if (i.source_repo or "").lower() == repo and i.status != "missing"}

    def installed_quants(self) -> set[str]:
        return set(self._installed())

    def installed_profile(self, quant: str | None) -> str | None:
        """The profile that runs the installed file of ``quant`` (None: not installed, or no profile)."""
        item = self._installed().get((quant or "").upper()) if quant else None
        return getattr(item, "profile_id", None) or None

    def model_name(self) -> str | None:
        """The one name of this repo's model: its installed file's (which follows a rename), else its profile's."""
        repo = (self._repo() or "").lower()
        if self.source is None or not repo:
            return None
        item = next((i for i in self.source.items if (i.source_repo or "").lower() == repo), None)
        if item is not None:
            return item.name
        pid = self.listing.profile_id if self.listing else None
        return self.source.name_of(pid) or None

    def _show_states(self) -> None:
        name = self.model_name()
        repo = self._repo()
        if repo:
            self.title.setText(f"{name}  ·  {repo}" if name and name != repo else repo)
        states: dict[str, tuple[str, str]] = {}
        installed = self.installed_quants()
        for e in self.quants.entries:
            q = e.quant.upper()
            job, state = self._pending(e.quant)
            if job is not None and state is not None:
                text = "Failed" if job.state == "failed" else job_state_text(job)
                states[q] = (text, "bad" if job.state == "failed" else "accent")
            elif q in installed:
                states[q] = ("Installed", "ok")
        self.quants.set_states(states)
        self._update()

    # -- loading --------------------------------------------------------------------------------
    def open_repo(self, spec: str | None, quant: str | None = None) -> None:
        """List ``spec`` (a repo id or a profile id), with ``quant`` selected once listed. Empty or None does
        nothing."""
        spec = (spec or "").strip()
        if not spec or spec == "None":
            return
        self.spec, self._want = spec, quant
        self.title.setText(spec)
        self.reload()

    def reload(self) -> None:
        if not self.spec:
            return
        self._seq += 1
        seq, spec, store = self._seq, self.spec, self.store
        self.summary.setText(f"Listing the files of {spec} …")
        self.download_btn.setEnabled(False)
        self._jobs.start(lambda: _load(spec, store), lambda res: self._on_listing(seq, res),
                         lambda exc: self._on_failed(seq, exc))

    def _on_listing(self, seq: int, res: tuple[QuantListing, str | None, int]) -> None:
        if seq != self._seq:
            return
        self.show_listing(*res)

    def show_listing(self, listing: QuantListing, preferred: str | None = None,
                     ctx_max: int = 131072) -> None:
        """Show a listing already in hand (a cached one, or one listed elsewhere): no network."""
        self.spec = self.spec or listing.repo
        ctx_max = max(ctx_max, listing.n_ctx)
        self.error_panel.hide()
        self.listing = listing
        self.title.setText(listing.repo)
        self._preferred = preferred
        steps = sorted({s for s in CONTEXT_STEPS if s <= ctx_max} | {listing.n_ctx})
        self._steps = steps
        self.ctx.blockSignals(True)
        self.ctx.setRange(0, len(steps) - 1)
        self.ctx.setValue(steps.index(listing.n_ctx))
        self.ctx.blockSignals(False)
        self.ctx.setEnabled(bool(listing.entries))
        self._show(listing, select_recommended=True)
        if self._want and self.quants.row_of(self._want) >= 0:
            self.list.setCurrentIndex(self.quants.index(self.quants.row_of(self._want)))
        self._want = None
        self._show_states()
        self.listing_finished.emit()

    def _on_failed(self, seq: int, exc: BaseException) -> None:
        if seq != self._seq:
            return
        if not isinstance(exc, AppError):
            exc = AppError(str(exc) or type(exc).__name__, details=repr(exc))
        self.summary.setText("")
        self.quants.set_entries([], None)
        self.error_panel.show_error(exc)
        self._update()
        self.listing_finished.emit()

    def _show(self, listing: QuantListing, select_recommended: bool = False) -> None:
        keep = self.selected_quant()
        self.shown = listing
        rec = recommend(listing.entries, self._preferred)
        self.quants.set_entries(listing.entries, rec)
        hw = listing.hardware
        where = (f"VRAM free {human_size(hw['vram_free'])}" if hw.get("gpus") else "no GPU") + \
            f" · RAM available {human_size(hw['ram_available'])}"
        self.summary.setText(f"{len(listing.entries)} quants · {where} · architecture from {listing.arch_source}"
                             + (f" · profile {listing.profile_id}" if listing.profile_id else "")
                             + ". Hover a badge for the sum behind it.")
        self.ctx_label.setText(f"{listing.n_ctx:,} tokens")
        row = self.quants.row_of(rec if select_recommended or not keep else keep)
        if row >= 0:
            self.list.setCurrentIndex(self.quants.index(row))
        self._update()

    def _on_ctx(self, pos: int) -> None:
        if self.listing is None or not 0 <= pos < len(self._steps):
            return
        self._show(refit(self.listing, self._steps[pos]))

    def set_context(self, n_ctx: int) -> None:
        """Move the slider to the step nearest ``n_ctx`` (as a user dragging it would)."""
        pos = min(range(len(self._steps)), key=lambda i: abs(self._steps[i] - n_ctx))
        self.ctx.setValue(pos)

    # -- choosing -------------------------------------------------------------------------------
    def selected_quant(self) -> str | None:
        idx = self.list.currentIndex()
        return self.quants.entries[idx.row()].quant if idx.isValid() and idx.row() < len(self.quants.entries) \
            else None

    def _pending(self, quant: str | None) -> tuple[Job | None, str | None]:
        """``quant``'s newest job and its state while it still matters (not done or cancelled)."""
        job = self.job_of(quant)
        return job, (job.state if job is not None and job.state not in {"done", "cancelled"} else None)

    def _chat_profile(self, quant: str | None) -> str | None:
        """The profile to chat with when ``quant`` is installed and no download of it is pending."""
        return self.installed_profile(quant) if quant and self._pending(quant)[1] is None else None

    def _update(self) -> None:
        q = self.selected_quant()
        e = self.quants.entries[self.quants.row_of(q)] if q else None
        job, state = self._pending(q)
        installed = bool(q) and q.upper() in self.installed_quants() and state is None
        chat = self._chat_profile(q) is not None  # installed: the button starts a chat with it
        self.download_btn.setText(job_button_text(state, ("Chat with it" if chat else "Installed") if installed
                                                  else "Download"))
        self.download_btn.setIcon(icon("mdi6.message-text-outline" if chat else "mdi6.download", color="white"))
        self.download_btn.setEnabled(q is not None and self.listing is not None and (chat or not installed)
                                     and state not in ACTIVE_STATES)
        line = f"{q} · {human_size(e.size)} · {e.fit['verdict']}" if e and e.fit else ""
        if job is not None and state is not None:
            line = f"{line} · {job_state_text(job)}" if line else job_state_text(job)
        self.pick_label.setText(line)

    def download_selected(self) -> None:
        """The button's action on the selected quant: download it, or chat with it once it is installed."""
        q = self.selected_quant()
        if not (q and self.listing and self.download_btn.isEnabled()):
            return
        pid = self._chat_profile(q)
        if pid is not None:
            self.chat_requested.emit(pid)
        else:
            self.download_requested.emit(self.listing.repo, q)
