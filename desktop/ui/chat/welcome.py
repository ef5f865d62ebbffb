"""The first screen: which model answers, and what to download next.

The headline says a model "is ready" only when it is the loaded one and no load runs (:meth:`set_model`);
a load's progress and Cancel are the status bar's, not repeated here. Suggestions are the not-yet-installed
profiles, small starter models first (``starter: true``), smallest first, then the larger seed models; each
card has its size and a fit badge for this machine and a Download button
(``download_requested(profile_id, quant)``: the window queues the recommended quant and shows it on the repo page,
the one place that downloads; "Other quants…" opens that page without downloading), and, once queued, the download's own state from the queue
(Downloading 40 %, or Failed with the reason and Retry). Import from disk is one click away
(``import_requested``). The data is the app's one scan (``installed.InstalledModels``).
"""
from __future__ import annotations

from typing import Any

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtWidgets import (
    QBoxLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from desktop.engine.hub.queue import ACTIVE_STATES, Job
from desktop.ui.library.download_models import job_button_text, job_state_text
from desktop.ui.library.installed import InstalledModels
from desktop.ui.library.picker_model import PickerEntry
from desktop.ui.widgets.cards import (
    apply_style,
    badge_css,
    fit_badge,
    human_size,
    icon,
    is_dark,
)
from desktop.ui.widgets.elided import ElidedLabel


def suggestions(entries: list[PickerEntry]) -> list[PickerEntry]:
    """Not installed, downloadable entries (not the demo: it ships with the app): starters by size, then the
    others by size."""
    todo = [e for e in entries if not e.installed and not e.remote and e.repo and not e.bundled]
    size = (lambda e: (e.size or 0, e.name))  # noqa: E731
    return sorted((e for e in todo if e.starter), key=size) + sorted((e for e in todo if not e.starter), key=size)


class SuggestionCard(QFrame):
    """One suggested download: name, repo, quant and size, a fit badge, and Download."""

    def __init__(self, e: PickerEntry, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.entry = e
        self.setObjectName("panel")
        name = ElidedLabel(e.name)
        f = name.font()
        f.setBold(True)
        name.setFont(f)
        size = ("~" if e.size_estimated else "") + human_size(e.size) if e.size else "size unknown"
        sub = ElidedLabel(f"{e.quant or '?'}  ·  {size}  ·  {e.repo}")
        sub.setObjectName("muted")
        self.state = ElidedLabel()  # the download's state, once there is one (the whole reason in its tooltip)
        self.state.hide()
        text, tone = fit_badge(e.fit)
        self.badge = QLabel(text)
        self.badge.setStyleSheet(badge_css(tone, is_dark(self)))
        if e.fit:
            self.badge.setToolTip(f"{e.fit['verdict']}: {e.fit['explanation']}")
        self.starter = QLabel("Starter")
        self.starter.setStyleSheet(badge_css("accent", is_dark(self)))
        if not e.starter:  # never setVisible(True) here: a parentless label would open as a window
            self.starter.hide()
        self.download_btn = QPushButton("Download")
        self.download_btn.setObjectName("secondary")
        self.download_btn.setIcon(icon("mdi6.download"))
        self.download_btn.setToolTip(f"Download {e.quant or 'the recommended quant'} now")
        self.quants_btn = QPushButton("Other quants…")  # the repo page: the one place to choose a quant
        self.quants_btn.setObjectName("link")
        self.quants_btn.setFlat(True)
        self.quants_btn.setCursor(Qt.CursorShape.PointingHandCursor)
        # Name and pills on top, the wrapping details under them across the whole card, the actions last:
        # in a narrow chat column (2x scaling) the text keeps its width and nothing is cut.
        top = QHBoxLayout()
        top.addWidget(name, 1)
        for pill in (self.starter, self.badge):
            pill.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
            top.addWidget(pill, 0, Qt.AlignmentFlag.AlignVCenter)
        actions = QHBoxLayout()
        actions.addWidget(self.quants_btn)
        actions.addStretch(1)
        actions.addWidget(self.download_btn)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(14, 10, 14, 10)
        lay.setSpacing(4)
        lay.addLayout(top)
        lay.addWidget(sub)
        lay.addWidget(self.state)
        lay.addLayout(actions)

    def set_job(self, job: Job | None) -> None:
        """Show the queue's state of this card's download: running, failed (with the reason, and Retry)."""
        if job is None or job.state in {"cancelled", "done"}:
            self.state.hide()
            self.download_btn.setText("Download")
            self.download_btn.setIcon(icon("mdi6.download"))
            self.download_btn.setEnabled(True)
            return
        self.state.setText(job_state_text(job))
        self.state.setVisible(True)
        active = job.state in ACTIVE_STATES
        self.download_btn.setText(job_button_text(job.state))
        self.download_btn.setIcon(icon("mdi6.refresh" if job.state == "failed" else "mdi6.download"))
        self.download_btn.setEnabled(not active)


class WelcomeView(QWidget):
    start_chat = Signal()
    import_requested = Signal()
    download_requested = Signal(str, str)  # profile id, quant
    repo_requested = Signal(str, str)  # profile id, quant: its repo page, to choose another quant
    refreshed = Signal()

    def __init__(self, source: InstalledModels, parent: QWidget | None = None, downloads: Any = None) -> None:
        """``source``: the app's one installed-model scan; ``downloads``: its download queue, whose jobs' states
        show on the cards."""
        super().__init__(parent)
        apply_style(self)
        self.source = source
        self.downloads = downloads  # a DownloadsController: its jobs' states show on the cards
        self.cards: list[SuggestionCard] = []
        self._model: tuple[str | None, str | None] = (None, None)

        hero = QFrame()
        hero.setObjectName("panel")
        hi = QLabel()
        hi.setPixmap(icon("mdi6.chat-processing-outline", color="#6b52e0").pixmap(48, 48))
        self.headline = QLabel("Ready to chat")
        self.headline.setObjectName("title")
        self.headline.setWordWrap(True)  # a long model name must not widen the page past a small window
        self.blurb = QLabel("A small demo model is built in and runs on any machine, offline. Start a chat now, "
                            "and download a bigger model when you want better answers.")
        self.blurb.setWordWrap(True)
        self.blurb.setObjectName("muted")
        self.start_btn = QPushButton("Start chatting")
        self.start_btn.setObjectName("primary")
        self.start_btn.setIcon(icon("mdi6.message-text-outline", color="white"))
        self.import_btn = QPushButton(self._IMPORT)
        self.import_btn.setToolTip("Import a GGUF file you already have (no network needed)")
        self.import_btn.setObjectName("secondary")
        self.import_btn.setIcon(icon("mdi6.folder-open-outline"))
        btns = self._hero_buttons = QBoxLayout(QBoxLayout.Direction.LeftToRight)  # stacked when narrow
        btns.addWidget(self.start_btn)
        btns.addWidget(self.import_btn)
        btns.addStretch(1)
        htext = QVBoxLayout()
        htext.addWidget(self.headline)
        htext.addWidget(self.blurb)
        htext.addSpacing(8)
        htext.addLayout(btns)
        hl = self._hero_layout = QHBoxLayout(hero)
        hl.setContentsMargins(self._HERO_MARGIN, 18, self._HERO_MARGIN, 18)
        hl.setSpacing(16)
        hl.addWidget(hi, 0, Qt.AlignmentFlag.AlignTop)
        self._hero_icon = hi
        hl.addLayout(htext, 1)

        sug = QLabel("Suggested downloads")
        f = sug.font()
        f.setBold(True)
        f.setPointSizeF(f.pointSizeF() * 1.15)
        sug.setFont(f)
        self.sug_note = QLabel("Sizes and fit are for this machine. Small models first.")
        self.sug_note.setObjectName("muted")
        self.sug_note.setWordWrap(True)
        self.cards_box = QVBoxLayout()
        self.cards_box.setSpacing(8)
        # No scroll area of its own: the page around the welcome view scrolls (one scroll bar, and the cards
        # are never squeezed into a strip at 2x).
        holder = QWidget()
        hv = QVBoxLayout(holder)
        hv.setContentsMargins(0, 0, 0, 0)
        hv.addLayout(self.cards_box)
        hv.addStretch(1)

        lay = QVBoxLayout(self)
        lay.setContentsMargins(self._MARGIN, 24, self._MARGIN, 18)
        lay.setSpacing(12)
        lay.addWidget(hero)
        lay.addSpacing(6)
        lay.addWidget(sug)
        lay.addWidget(self.sug_note)
        lay.addWidget(holder, 1)

        self.start_btn.clicked.connect(self.start_chat)
        self.import_btn.clicked.connect(self.import_requested)
        self.source.changed.connect(lambda: self._on_entries(self.source.entries))
        self.source.failed.connect(self._on_failed)
        if downloads is not None:
            downloads.event_received.connect(lambda _ev: self._show_jobs())
        if self.source.scanned:
            self._on_entries(self.source.entries)
        self.set_model(None, None)


    # Where there is room the hero's buttons sit side by side beside its icon; in a narrow column (the settings
    # panel open, or at 2x) the icon goes, the margins shrink and the buttons stack. The page never asks for more
    # width than that compact layout needs, so nothing is cut at the column's edge.
    _MARGIN, _HERO_MARGIN, _COMPACT_MARGIN = 28, 20, 12  # the page's, the hero card's, both when compact
    _IMPORT, _IMPORT_SHORT = "Import a GGUF from disk…", "Import a GGUF…"

    def _hero_widths(self) -> tuple[int, int]:
        """The widths the page needs with the hero's buttons side by side, and stacked (compact)."""
        fm = self.import_btn.fontMetrics()
        frame = self.import_btn.sizeHint().width() - fm.horizontalAdvance(self.import_btn.text())
        start = self.start_btn.sizeHint().width()
        imp, imp_short = (frame + fm.horizontalAdvance(t) for t in (self._IMPORT, self._IMPORT_SHORT))
        wide = (2 * self._MARGIN + 2 * self._HERO_MARGIN + self._hero_icon.sizeHint().width()
                + self._hero_layout.spacing() + start + self._hero_buttons.spacing() + imp + 2)
        compact = 4 * self._COMPACT_MARGIN + max(start, imp_short) + 2  # the page's and the hero's margins
        return wide, compact

    def minimumSizeHint(self) -> QSize:  # noqa: N802 - Qt's name
        hint = super().minimumSizeHint()
        return QSize(min(hint.width(), self._hero_widths()[1]), hint.height())

    def resizeEvent(self, e: Any) -> None:  # noqa: N802 - Qt's name
        super().resizeEvent(e)
        compact = e.size().width() < self._hero_widths()[0]
        direction = QBoxLayout.Direction.TopToBottom if compact else QBoxLayout.Direction.LeftToRight
        if self._hero_buttons.direction() != direction:
            self._hero_buttons.setDirection(direction)
            self._hero_icon.setVisible(not compact)
            self.import_btn.setText(self._IMPORT_SHORT if compact else self._IMPORT)
            m = self._COMPACT_MARGIN if compact else self._MARGIN
            self.layout().setContentsMargins(m, 24, m, 18)
            h = self._COMPACT_MARGIN if compact else self._HERO_MARGIN
            self._hero_layout.setContentsMargins(h, 18, h, 18)

    def refresh(self) -> None:
        self.source.refresh()

    def set_model(self, loaded: str | None, loading: str | None, remote: bool = False) -> None:
        """The headline for the model state: ``loaded`` (a name) answers now (``remote``: through a server);
        ``loading`` is being loaded."""
        self._model = (loaded, loading)
        if loading:
            self.headline.setText(f"Loading {loading}…")
            self.blurb.setText("You can type your first message meanwhile; it is answered once the model is "
                               "ready. The status bar shows the progress.")
        elif loaded:
            self.headline.setText(f"{loaded} is ready to chat")
            self.blurb.setText("It answers through its server (a remote profile). Download a model below to chat "
                               "offline on this computer." if remote else "It runs on this computer, offline. "
                               "Download a bigger model below when you want better answers.")
        else:
            self.headline.setText("Choose a model to chat with")
            self.blurb.setText("No model is loaded. Pick one with the model picker above, download one below, or "
                               "import a GGUF from disk.")

    def _show_jobs(self) -> None:
        if self.downloads is None:
            return
        for c in self.cards:
            c.set_job(self.downloads.latest(profile_id=c.entry.profile_id))

    def _on_entries(self, entries: list[PickerEntry]) -> None:
        for c in self.cards:
            self.cards_box.removeWidget(c)  # not setParent(None): that makes it a window and takes activation
            c.deleteLater()
        self.cards = []
        for e in suggestions(entries):
            card = SuggestionCard(e, self)  # parented at once: a parentless card would be a window for a moment
            card.download_btn.clicked.connect(
                lambda _c=False, pid=e.profile_id, q=e.quant: self.download_requested.emit(pid, q or ""))
            card.quants_btn.clicked.connect(
                lambda _c=False, pid=e.profile_id, q=e.quant: self.repo_requested.emit(pid, q or ""))
            self.cards_box.addWidget(card)
            self.cards.append(card)
        self.sug_note.setText("Sizes and fit are for this machine. Small models first." if self.cards
                              else "Every suggested model is installed.")
        self._show_jobs()
        self.refreshed.emit()

    def _on_failed(self, exc: BaseException) -> None:
        self.sug_note.setText(f"Could not list suggestions: {getattr(exc, 'message', None) or exc}")
        self.refreshed.emit()
