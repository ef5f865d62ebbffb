"""The model views in the main window: the picker on top of the chat, the Hub and Models pages, the welcome
screen of an empty chat. GUI thread only; each view gathers its data on its own workers.

Everything goes through the window's existing paths: a chosen profile loads with ``win.choose_profile``
(which offers the download window when the model is not downloaded), downloads are jobs of the app's one
DownloadManager (``DownloadsController.instance()``, the one the Downloads window shows), imports are
``win.import_gguf`` (on a worker, asking for the prompt format when the file cannot tell).
"""
from __future__ import annotations

import html
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Qt
from PySide6.QtWidgets import QFrame, QScrollArea, QStackedWidget, QVBoxLayout, QWidget

from desktop.engine.errors import AppError
from desktop.ui.chat.welcome import WelcomeView
from desktop.ui.library.hub_page import HubView
from desktop.ui.library.models_page import LibraryView
from desktop.ui.library.picker import ModelPicker
from desktop.ui.library.repo_page import RepoPage

if TYPE_CHECKING:
    from desktop.engine.hub.queue import Job
    from desktop.ui.shell.main_window import MainWindow


def scrolled(widget: QWidget) -> QScrollArea:
    """``widget`` in a frameless scroll area: a small window (800x500 at 2x) scrolls it instead of having
    to grow to the page's minimum size."""
    area = QScrollArea()
    area.setWidgetResizable(True)
    area.setFrameShape(QFrame.Shape.NoFrame)
    area.setWidget(widget)
    return area


class ModelViews(QObject):
    def __init__(self, win: "MainWindow") -> None:
        super().__init__(win)
        self.win = win
        store = win.store
        # ---- the picker replaces the plain model label at the top of the chat
        self.picker = ModelPicker(store=store)
        win.set_model_picker(self.picker)

        # ---- Hub: search, and a repo's quants on the same page (Back returns to the results)
        self.hub = HubView()
        self.repo = RepoPage(store=store)
        self.hub_page = QStackedWidget()
        self.hub_page.setObjectName("HubPage")
        self.hub_page.addWidget(self.hub)
        self.hub_page.addWidget(self.repo)
        self.hub_scroll = scrolled(self.hub_page)
        win.add_page("hub", "mdi6.magnify", self.hub_scroll, "Hub")

        # ---- Models: what is installed
        self.library = LibraryView(store=store)
        self.library_scroll = scrolled(self.library)
        win.add_page("models", "mdi6.cube-outline", self.library_scroll, "Models")

        # ---- the welcome screen where the chat is empty: one line on the model, then the WelcomeView
        self.welcome = WelcomeView(store=store)
        cp = win.chat_page
        old = cp.empty_page
        page = QWidget()
        page.setObjectName("WelcomePage")
        lay = QVBoxLayout(page)
        lay.setContentsMargins(0, 12, 0, 0)
        lay.setSpacing(0)
        cp.empty.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        cp.empty.setContentsMargins(28, 0, 28, 0)
        lay.addWidget(cp.empty)
        lay.addWidget(self.welcome, 1)
        holder = scrolled(page)
        holder.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)  # it wraps; only scrolls down
        cp.stack.insertWidget(cp.stack.indexOf(old), holder)
        cp.stack.removeWidget(old)
        old.deleteLater()
        cp.empty_page = holder
        # The picker's button names the model; in a narrow window it is cut rather than widening the window.
        self.picker.button.setMinimumWidth(160)

        self._connect()
        for v in (self.picker, self.library, self.welcome):
            v.refresh()

    def _connect(self) -> None:
        w, a = self.win, self.win.adapter
        self.picker.profile_chosen.connect(self.choose)
        self.picker.download_requested.connect(lambda pid, q: w.open_downloads(pid, q or None))
        self.picker.cancel_requested.connect(w.cancel_load)
        a.load_started.connect(self._on_load_started)
        a.load_progress.connect(self.picker.set_loading)
        a.model_loaded.connect(self._on_load_ended)
        a.load_failed.connect(self._on_load_ended)
        a.load_cancelled.connect(self._on_load_ended)

        self.hub.repo_opened.connect(self.open_repo)
        self.hub.import_requested.connect(self.import_gguf)
        self.repo.back_requested.connect(lambda: self.hub_page.setCurrentWidget(self.hub))
        self.repo.import_requested.connect(self.import_gguf)
        self.repo.download_requested.connect(self.download)
        self.library.load_requested.connect(self.load_from_library)
        self.library.import_requested.connect(self.import_gguf)
        self.welcome.start_chat.connect(w.focus_input)
        self.welcome.import_requested.connect(self.import_gguf)
        self.welcome.download_requested.connect(lambda pid, q: self.download(pid, q))

        # A finished download or import, or saved settings, change what is installed: every view re-reads.
        w.profile_model.scanned.connect(self.refresh)

    # ---------------------------------------------------------------- actions

    def choose(self, profile_id: str) -> None:
        self.win.choose_profile(profile_id)

    def load_from_library(self, profile_id: str) -> None:
        self.win.show_page("chats")
        self.win.choose_profile(profile_id)

    def open_repo(self, repo: str) -> None:
        self.repo.open_repo(repo)
        self.hub_page.setCurrentWidget(self.repo)

    def import_gguf(self) -> None:
        self.win.import_gguf()

    def download(self, spec: str, quant: str) -> "Job | None":
        """Queue ``quant`` of ``spec`` (a profile id or a repo) with the app's download manager; the Downloads
        window opens on it so the progress is in view."""
        from desktop.ui.library.download_window import DownloadsController

        ctrl = DownloadsController.instance()
        self.win.models.watch_downloads(ctrl)
        try:
            job = ctrl.manager.submit(spec, quant=quant or None)
        except AppError as exc:
            self.win.errors.present(exc)
            return None
        self.win.statusBar().showMessage(f"Downloading {quant + ' of ' if quant else ''}{spec}… "
                                         "(Model ▸ Downloads… shows progress)", 8000)
        dl = self.win.open_downloads(None, None)
        if dl is not None and hasattr(dl, "jobs"):
            try:
                if dl.jobs._row(job.id) < 0:
                    dl.jobs.add_job(job)
            except (AttributeError, KeyError):  # an older window: its events add the row
                pass
        return job

    def refresh(self) -> None:
        for v in (self.picker, self.library, self.welcome):
            v.refresh()

    # ---------------------------------------------------------------- the loaded model

    def _on_load_started(self, profile) -> None:  # noqa: ANN001 - Profile
        self.picker.set_current(profile.id)
        self.picker.set_loading(0.0)

    def _on_load_ended(self, *_: object) -> None:
        self.picker.set_loading(None)
        p = self.win.adapter.loaded_profile
        self.picker.set_current(p.id if p else None)

    def update_welcome(self) -> None:
        """The line over the welcome view: which model answers (the suggestions are the view's)."""
        a = self.win.adapter
        if a.loading and a.profile is not None:
            who = f"<b>{html.escape(a.profile.name)}</b> is loading; you can type meanwhile."
        elif a.loaded_profile is not None:
            who = f"You are chatting with <b>{html.escape(a.loaded_profile.name)}</b>, on this computer."
        else:
            who = "No model is loaded yet: choose one with the picker above."
        self.win.empty.setText(f"<p style='font-size:20px; font-weight:600'>Start a conversation</p>"
                               f"<p>{who} Type below and press Enter.</p>")

