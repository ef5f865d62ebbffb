"""The model views in the main window: the picker on top of the chat, the Hub (with the repo page), Models and
Downloads pages, the welcome screen of an empty chat. GUI thread only.

They read the app state (ui/state.py): its one installed-model scan (``installed``), its one download queue
(``downloads``) and the current model (``model_changed``: the picker's choice and the welcome headline follow
it, names and all). They use the Model menu's flows: choosing a profile (which opens the repo page when the
model is not downloaded) and importing a GGUF. The window hands in what places them: ``add_page`` (a rail page) and
``show_page``, the chat page (for the picker and the welcome screen), ``focus_input``, the status line
(``notify``) and the error presenter (``present``). Nothing here reaches into the window.
"""
from __future__ import annotations

import html
from typing import Any, Callable

from PySide6.QtCore import QEvent, QObject, Qt, QTimer
from PySide6.QtWidgets import QFrame, QScrollArea, QStackedWidget, QWidget

from desktop.engine.errors import AppError
from desktop.engine.hub.queue import Job
from desktop.engine.library import registry
from desktop.ui.chat.welcome import WelcomeView
from desktop.ui.library.downloads_page import DownloadsPanel
from desktop.ui.library.hub_page import HubView
from desktop.ui.library.models_page import LibraryView
from desktop.ui.library.picker import ModelPicker
from desktop.ui.library.repo_page import RepoPage
from desktop.ui.shell.model_menu import ModelMenu
from desktop.ui.state import AppState, CurrentModel


class Page(QScrollArea):
    """A rail page: ``widget`` in a frameless scroll area (a small window, 800x500 at 2x, scrolls it instead of
    growing to the page's minimum size) that only scrolls down (its content wraps and elides), and that puts
    the focus on ``focus()``'s widget each time it is shown (Ctrl+2 lands in the Hub's search box)."""

    def __init__(self, widget: QWidget, focus: Callable[[], QWidget | None] | None = None) -> None:
        super().__init__()
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setWidget(widget)
        self._focus = focus

    def event(self, e: QEvent) -> bool:
        if e.type() == QEvent.Type.Show and self._focus is not None:
            QTimer.singleShot(0, self._take_focus)  # after the stack made it current
        return super().event(e)

    def _take_focus(self) -> None:
        w = self._focus() if self._focus else None
        if w is not None and self.isVisible():
            w.setFocus(Qt.FocusReason.OtherFocusReason)


class ModelViews(QObject):
    def __init__(self, state: AppState, menu: ModelMenu, chat_page: Any, *, add_page: Callable[..., Any],
                 show_page: Callable[[str], None], focus_input: Callable[[], None],
                 notify: Callable[..., None], present: Callable[[BaseException], object]) -> None:
        super().__init__(menu)
        self.state, self.menu, self.chat_page = state, menu, chat_page
        self.show_page, self.notify, self.present = show_page, notify, present
        self.installed, self.downloads = state.installed, state.downloads
        store = state.store
        # ---- the picker replaces the plain model label at the top of the chat
        self.picker = ModelPicker(self.installed)
        chat_page.set_model_picker(self.picker)

        # ---- Hub: search, and a repo's quants on the same page (Back returns to the results)
        self.hub = HubView()
        self.repo = RepoPage(store=store)
        self.repo.attach(self.downloads, self.installed)
        self.hub_page = QStackedWidget()
        self.hub_page.setObjectName("HubPage")
        self.hub_page.addWidget(self.hub)
        self.hub_page.addWidget(self.repo)
        self.hub_scroll = Page(self.hub_page, self._hub_focus)
        add_page("hub", "mdi6.magnify", self.hub_scroll, "Hub")

        # ---- Models: what is installed
        self.library = LibraryView(self.installed)
        self.library_scroll = Page(self.library, lambda: self.library.list)
        add_page("models", "mdi6.cube-outline", self.library_scroll, "Models")

        # ---- Downloads: the queue (it opens nothing on its own)
        self.downloads_panel = DownloadsPanel(self.downloads, name_of=self._job_name)
        self.downloads_scroll = Page(self.downloads_panel, lambda: self.downloads_panel.view)
        add_page("downloads", "mdi6.download-outline", self.downloads_scroll, "Downloads")

        # ---- the welcome screen where the chat is empty: one line on the model, then the WelcomeView
        self.welcome = WelcomeView(self.installed, downloads=self.downloads)
        chat_page.set_welcome(self.welcome)
        # The picker's button names the model; in a narrow window it is cut rather than widening the window.
        self.picker.button.setMinimumWidth(160)

        self._connect(focus_input)  # the app state started the first scan

    def _connect(self, focus_input: Callable[[], None]) -> None:
        m, st = self.menu, self.state
        self.picker.profile_chosen.connect(m.choose_profile)
        self.picker.download_requested.connect(self.open_repo)
        st.model_changed.connect(self._on_model_changed)
        st.load_progress.connect(self.picker.set_loading)
        m.repo_requested.connect(self.open_repo)
        m.downloads_requested.connect(lambda: self.show_page("downloads"))

        self.hub.repo_opened.connect(self.open_repo)
        self.hub.import_requested.connect(m.import_gguf)
        self.repo.back_requested.connect(lambda: self.hub_page.setCurrentWidget(self.hub))
        self.repo.import_requested.connect(m.import_gguf)
        self.repo.download_requested.connect(self.download)
        self.repo.chat_requested.connect(self.load_from_library)
        self.library.load_requested.connect(self.load_from_library)
        self.library.import_requested.connect(m.import_gguf)
        self.library.action_finished.connect(lambda _what: m.store.reload())
        self.welcome.start_chat.connect(focus_input)
        self.welcome.import_requested.connect(m.import_gguf)
        # One click downloads a suggestion's recommended quant, on its repo page (the one place that downloads):
        # its progress, size and fit, and the other quants, are in view there.
        self.welcome.download_requested.connect(self.download_on_repo_page)
        self.welcome.repo_requested.connect(self.open_repo)
        # A rename, a removal, a download or an import changes what is installed: every view follows the one
        # scan (the current model's new name comes through the state's model_changed). The welcome line is the
        # window's to refresh (update_welcome, from its _update_empty), when an empty chat shows it.
        self.installed.changed.connect(self.downloads_panel.sync)
        self.downloads.event_received.connect(self._on_download_event)

    def _hub_focus(self) -> QWidget:
        return self.hub.box if self.hub_page.currentWidget() is self.hub else self.repo.list

    def _job_name(self, job: Job) -> str:
        pid = job.profile_id or (job.result or {}).get("profile_id")  # a repo's download makes its profile
        name = self.installed.name_of(pid, "") if pid else ""
        what = job.quant or job.filename or ""
        return f"{name or job.repo} {what}".strip()

    # ---------------------------------------------------------------- actions

    def load_from_library(self, profile_id: str) -> None:
        self.show_page("chats")
        self.menu.choose_profile(profile_id)

    def open_repo(self, spec: str, quant: str | None = None) -> None:
        """The repo page (the one quant picker) of ``spec`` (a repo or a profile id), ``quant`` selected."""
        self.repo.open_repo(spec, quant or None)
        self.hub_page.setCurrentWidget(self.repo)
        self.show_page("hub")

    def download_on_repo_page(self, spec: str, quant: str) -> Job | None:
        self.open_repo(spec, quant)
        return self.download(spec, quant)

    def download(self, spec: str, quant: str) -> Job | None:
        """Queue ``quant`` of ``spec`` (a profile id or a repo) with the app's one download queue (a job of the
        same quant is resumed, not queued twice). Opens nothing: the repo page, the welcome card and the Downloads page show its progress."""
        try:
            job = self.downloads.queue(spec, quant)
        except AppError as exc:
            self.present(exc)
            return None
        self.downloads_panel.show_job(job.id)
        name = self._job_name(job)
        self.notify(f"Downloading {name}…", 8000)  # its progress shows on the page that started it
        return job

    def _on_download_event(self, ev: Any) -> None:
        """A failed download says so on the status line (replacing "Downloading…"), with where to retry."""
        if ev.state != "failed":
            return
        job = self.downloads.job(ev.job_id)
        if job is None:
            return
        reason = (ev.error or {}).get("message") or ev.message or "unknown error"
        self.notify(f"Download of {self._job_name(job)} failed: {reason} (Retry on the Downloads page, Ctrl+4)", 15000)

    def refresh(self) -> None:
        self.installed.refresh()

    # ---------------------------------------------------------------- the loaded model

    def _on_model_changed(self, current: CurrentModel) -> None:
        """The picker shows the model loading (its button says so) or the one loaded, with its quant label."""
        if current.loading is not None:
            if self.picker.loading is None:
                self.picker.set_loading(0.0)
            self.picker.set_current(current.loading.id)
        else:
            self.picker.set_loading(None)
            p = current.profile
            self.picker.set_current(p.id if p else None, current.quant if p else None)

    def update_welcome(self) -> None:
        """The line over the welcome view, and its headline: which model answers (the suggestions are the
        view's). "Ready" only for the loaded model, and not while a load runs."""
        c = self.state.current
        loading_name = c.loading_name if c.loading is not None else None
        loaded_name = c.name if c.profile is not None and c.loading is None else None
        if loading_name:
            who = f"<b>{html.escape(loading_name)}</b> is loading; you can type meanwhile."
        elif loaded_name:
            where = "through its server" if registry.is_remote(c.profile) else "on this computer"
            who = f"You are chatting with <b>{html.escape(loaded_name)}</b>, {where}."
        else:
            who = "No model is loaded yet: choose one with the picker above."
        self.chat_page.set_model_line(f"<p style='font-size:20px; font-weight:600'>Start a conversation</p>"
                                      f"<p>{who} Type below and press Enter.</p>")
        self.welcome.set_model(loaded_name, loading_name, remote=registry.is_remote(c.profile))
