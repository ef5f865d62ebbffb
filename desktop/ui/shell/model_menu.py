"""The Model menu and what it starts: choosing a profile, downloads, importing a GGUF, profile settings. GUI thread.

The menu lists the profiles from the cached :class:`ProfileListModel` (installed first): opening it never
scans the disk; the scan runs on a worker when something may have changed (start-up, a download or an
import finished, settings saved).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import QFileDialog, QInputDialog, QMenu

from desktop.engine.errors import AppError, FormatUnknownError, ModelNotFoundError
from desktop.engine.library import registry as models
from desktop.engine.profiles import Profile
from desktop.ui import workers
from desktop.ui.library.profile_list import (
    InstalledRole,
    ProfileIdRole,
    ProfileListModel,
    ProfileSortProxy,
)

if TYPE_CHECKING:
    from desktop.ui.shell.main_window import MainWindow


class ModelMenu(QObject):
    def __init__(self, win: "MainWindow") -> None:
        super().__init__(win)
        self.win = win
        self.profile_model = ProfileListModel(win.store, self)
        self.proxy = ProfileSortProxy(self)
        self.proxy.setSourceModel(self.profile_model)
        self.menu: QMenu = win.menuBar().addMenu("&Model")
        self.menu.aboutToShow.connect(self.fill)
        self.group = QActionGroup(self)
        self.profile_actions: dict[str, QAction] = {}
        self.settings_action = QAction("Profile &settings…", self)
        self.settings_action.triggered.connect(lambda _=False: self.open_settings())
        self.import_action = QAction("&Import GGUF from disk…", self)
        self.import_action.setShortcut(QKeySequence("Ctrl+I"))
        self.import_action.triggered.connect(lambda _=False: self.import_gguf())
        self.downloads_action = QAction("&Downloads…", self)
        self.downloads_action.setShortcut(QKeySequence("Ctrl+J"))
        self.downloads_action.triggered.connect(lambda _=False: self.open_downloads(None, None))
        self.reload_action = QAction("&Reload model", self)
        self.reload_action.setShortcut(QKeySequence("Ctrl+Shift+L"))
        self.reload_action.triggered.connect(lambda _=False: self.reload())
        win.addActions([self.import_action, self.downloads_action, self.reload_action])  # before any opening
        self._downloads: Any = None
        self._watching = False
        self._jobs: list[workers.Job] = []
        self.profile_model.scanned.connect(self.fill)
        self.fill()

    def fill(self) -> None:
        """The menu from the cached rows (no disk I/O)."""
        m = self.menu
        m.clear()
        for a in self.group.actions():
            self.group.removeAction(a)
        self.profile_actions = {}
        current = self.win.adapter.profile.id if self.win.adapter.profile else None
        for r in range(self.proxy.rowCount()):
            idx = self.proxy.index(r, 0)
            pid = idx.data(ProfileIdRole)
            a = QAction(idx.data(Qt.ItemDataRole.DisplayRole), self, checkable=True)
            a.setToolTip(idx.data(Qt.ItemDataRole.ToolTipRole) or "")
            a.setChecked(pid == current)
            a.setData(pid)
            a.setProperty("installed", bool(idx.data(InstalledRole)))
            a.triggered.connect(lambda _=False, p=pid: self.choose_profile(p))
            self.group.addAction(a)
            m.addAction(a)
            self.profile_actions[pid] = a
        m.addSeparator()
        for a in (self.reload_action, self.settings_action, self.import_action, self.downloads_action):
            m.addAction(a)

    def check_current(self) -> None:
        p = self.win.adapter.profile
        act = self.profile_actions.get(p.id) if p else None
        if act:
            act.setChecked(True)

    # ---------------------------------------------------------------- loading

    def choose_profile(self, profile_id: str) -> None:
        """Load it, or offer the download window when its model is not downloaded."""
        profile = self.win.store.get(profile_id)
        if self.profile_model.installed(profile_id) is False and not models.is_remote(profile):
            self.open_downloads(profile.id, profile.source.recommended_quant)
            self.check_current()  # keep the check mark on what is actually loaded
            return
        self.load_profile(profile)

    def load_profile(self, profile: Profile, n_ctx: int | None = None, overrides: dict[str, Any] | None = None
                     ) -> None:
        a = self.win.adapter
        if a.loading:
            a.cancel_load(restore=False)  # the new choice replaces it
        try:
            a.load_requested(profile, n_ctx=n_ctx, overrides=overrides)
        except ModelNotFoundError:
            self.open_downloads(profile.id, profile.source.recommended_quant)
            self.check_current()
            return
        except AppError as exc:
            self.win.errors.present(exc, modal=True)
            return
        self.check_current()

    def reload(self) -> None:
        p = self.win.adapter.loaded_profile or self.win.adapter.profile
        if p is not None:
            self.win.reload_model(p)

    # ---------------------------------------------------------------- downloads

    def open_downloads(self, profile_id: str | None, quant: str | None) -> Any:
        """The download window (non-modal), with ``profile_id``/``quant`` pre-selected when given."""
        try:
            from desktop.ui.library.download_window import DownloadWindow
        except ImportError as exc:
            self.win.errors.present({"message": "The download window is not available in this build.",
                                     "details": f"{type(exc).__name__}: {exc}"})
            return None
        if self._downloads is None:
            self._downloads = DownloadWindow(parent=self.win)
            self.watch_downloads(getattr(self._downloads, "controller", None))
        self._downloads.show_for(profile_id, quant)
        return self._downloads

    def watch_downloads(self, controller: Any) -> None:
        if controller is not None and not self._watching:
            controller.model_installed.connect(self._on_model_installed)
            self._watching = True

    def resume_downloads(self) -> int:
        """Downloads that a quit or crash interrupted continue in the background; returns how many."""
        from desktop.ui.library.download_window import DownloadsController

        ctrl = DownloadsController.instance()
        n = ctrl.resume_interrupted()
        if n:
            self.watch_downloads(ctrl)
            self.win.statusBar().showMessage(f"Resuming {n} interrupted download{'s' if n > 1 else ''} "
                                             "(Model ▸ Downloads… shows progress)", 8000)
        return n

    def _on_model_installed(self, profile_id: str) -> None:
        """A download finished: the menu and the welcome text show it installed; offer to load it."""
        w = self.win
        w.store.reload()
        self.profile_model.refresh()
        if profile_id in w.store.ids():
            p = w.store.get(profile_id)
            w.banner.show_message(f"{p.name} is downloaded and ready.", None,
                                  ("Load it", lambda: self.load_profile(w.store.get(profile_id))))

    # ---------------------------------------------------------------- import, settings

    def import_gguf(self, path: str | None = None, prompt_format: str | None = None) -> workers.Job | None:
        """Run the doctor on a GGUF and create a profile for it, off the GUI thread. A file whose prompt
        format cannot be told (FormatUnknownError) asks the user, then runs again with the choice."""
        w = self.win
        if path is None:
            path, _ = QFileDialog.getOpenFileName(w, "Import a GGUF model", str(Path.home()),
                                                  "GGUF models (*.gguf);;All files (*)")
            if not path:
                return None
        fn = getattr(models, "import_model", None)
        if fn is None:
            w.errors.present({"message": "Importing models is not available in this build."}, modal=True)
            return None
        self.import_action.setEnabled(False)
        w.statusBar().showMessage(f"Importing {os.path.basename(path)}…")
        call = (lambda: fn(path, prompt_format=prompt_format)) if prompt_format else (lambda: fn(path))
        job = workers.start(call, self._on_imported,
                            lambda exc, p=path: self._on_import_failed(exc, p), self)
        self._jobs.append(job)
        return job

    def _on_imported(self, result: Any) -> None:
        w = self.win
        self.import_action.setEnabled(True)
        w.store.reload()
        self.profile_model.refresh()
        fixes = list(getattr(result, "fixes", []) or [])
        fixed = f" Fixed: {', '.join(map(str, fixes))}." if fixes else ""
        pid = result.profile_id
        w.statusBar().showMessage(f"Imported as profile {pid}.", 8000)
        w.banner.show_message(f"Imported {os.path.basename(str(result.path))} as the profile “{pid}”.{fixed}",
                              None, ("Load it", lambda: self.load_profile(w.store.get(pid))))

    def _on_import_failed(self, exc: BaseException, path: str | None = None) -> None:
        self.import_action.setEnabled(True)
        self.win.statusBar().clearMessage()
        if isinstance(exc, FormatUnknownError) and exc.choices and path:
            choice = self.ask_prompt_format(os.path.basename(path), list(exc.choices))
            if choice:
                self.import_gguf(path, prompt_format=choice)
            return
        if isinstance(exc, AppError):
            self.win.errors.present(exc, modal=True)
        else:
            self.win.errors.present({"message": f"The import failed: {exc}", "details": repr(exc)}, modal=True)

    def ask_prompt_format(self, name: str, choices: list[str]) -> str | None:
        """The file names no chat format: the user picks one of ``choices`` (None: cancelled)."""
        choice, ok = QInputDialog.getItem(
            self.win, "Choose the prompt format",
            f"{name} has no chat template and its model family is unknown.\n"
            "Which prompt format was it trained with? (The model card usually says.)", choices, 0, False)
        return str(choice) if ok and choice else None

    def open_settings(self, profile_id: str | None = None) -> Any:
        """The full profile settings dialog (threads, batch, KV cache, server…); common ones are in the panel."""
        from desktop.ui.settings.dialog import SettingsDialog

        w = self.win
        pid = profile_id or (w.adapter.profile.id if w.adapter.profile else w.store.default().id)
        dlg = SettingsDialog(w.store, pid, w.adapter.loaded_profile, w)
        dlg.saved.connect(w.on_settings_saved)
        dlg.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dlg.open()
        self._settings = dlg
        return dlg
