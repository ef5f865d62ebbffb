"""The Model menu and what it starts: choosing a profile, downloads, importing a GGUF, profile settings. GUI thread.

The menu lists the profiles as the app's one installed-model scan has them (the app state's ``installed``:
installed first, each under its one name), so opening it never scans the disk; the scan runs on a worker when
something may have changed (start-up, a download or an import finished, a rename or removal, settings saved).

It is given what it uses (the owner widget for its dialogs, its menu and that menu's rows from the action
table; the app state, for the engine adapter, the profile store, the installed models and the downloads; the
error presenter, the banner and a status-line callable) and says what the window should do through signals: ``repo_requested`` (the repo page, the one
quant picker), ``downloads_requested`` (the Downloads page), ``reload_requested`` and ``settings_saved``.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QAction, QActionGroup
from PySide6.QtWidgets import QFileDialog, QInputDialog, QMenu, QWidget

from desktop.engine.errors import AppError, FormatUnknownError, ModelNotFoundError
from desktop.engine.library import registry
from desktop.engine.profiles import Profile
from desktop.ui import workers
from desktop.ui.state import AppState
from desktop.ui.workers import JobKeeper


class ModelMenu(QObject):
    repo_requested = Signal(str, str)  # profile id or repo, quant ("": the recommended one)
    downloads_requested = Signal()  # the Downloads page (a download without a profile to show)
    reload_requested = Signal(object)  # the Profile to load again with the window's load settings
    settings_saved = Signal(str, bool)  # profile id, needs a reload

    def __init__(self, owner: QWidget, menu: QMenu, actions: dict[str, QAction], state: AppState, errors: Any,
                 banner: Any, notify: Callable[..., None]) -> None:
        super().__init__(owner)
        self.owner, self.errors, self.banner = owner, errors, banner
        self.state, self.adapter, self.store = state, state.adapter, state.store
        self.installed, self.downloads = state.installed, state.downloads
        self.notify = notify  # notify(text, msecs=0): the status line
        self.menu: QMenu = menu
        self.menu.aboutToShow.connect(self.fill)
        self.group = QActionGroup(self)
        self.profile_actions: dict[str, QAction] = {}
        # The menu's own rows come from the window's action table (shell/actions.py), after the profiles.
        self.reload_action, self.settings_action = actions["reload_model"], actions["profile_settings"]
        self.import_action = actions["import_gguf"]
        self._jobs = JobKeeper(self)  # each worker job held until its answer
        self._ready: str | None = None  # a downloaded profile whose "ready" banner waits for its name
        self._offered: str | None = None  # the profile a "… Load it" banner offers (hidden once it is loaded)
        self.installed.changed.connect(self.fill)
        self.downloads.model_installed.connect(self._on_model_installed)
        self.installed.changed.connect(self._offer_ready)
        state.model_loaded.connect(self._on_loaded)
        self.fill()

    def fill(self) -> None:
        """The menu from the cached rows (no disk I/O)."""
        m = self.menu
        m.clear()
        for a in self.group.actions():
            self.group.removeAction(a)
        self.profile_actions = {}
        target = self.state.current.target
        current = target.id if target else None
        for pid, name, installed in self.rows():
            a = QAction(name if installed else f"{name}  (not downloaded)", self, checkable=True)
            a.setToolTip(self.store.get(pid).description or name)
            a.setChecked(pid == current)
            a.setData(pid)
            a.setProperty("installed", installed)
            a.triggered.connect(lambda _=False, p=pid: self.choose_profile(p))
            self.group.addAction(a)
            m.addAction(a)
            self.profile_actions[pid] = a
        m.addSeparator()
        for a in (self.reload_action, self.settings_action, self.import_action):
            m.addAction(a)

    def rows(self) -> list[tuple[str, str, bool]]:
        """(profile id, its one name, installed) per profile, as the last scan has them (installed first); a
        profile the scan has not seen yet (before the first scan, or just imported) follows by name, unmarked."""
        ids = set(self.store.ids())
        rows = [(e.profile_id, e.name, bool(e.installed)) for e in self.installed.entries if e.profile_id in ids]
        seen = {r[0] for r in rows}
        new = sorted((p for p in self.store.all() if p.id not in seen), key=lambda p: p.name.lower())
        return rows + [(p.id, p.name, True) for p in new]

    def check_current(self) -> None:
        p = self.state.current.target
        act = self.profile_actions.get(p.id) if p else None
        if act:
            act.setChecked(True)

    # ---------------------------------------------------------------- loading

    def choose_profile(self, profile_id: str) -> None:
        """Load it, or open its repo page (to download it) when its model is not downloaded."""
        profile = self.store.get(profile_id)
        if self.installed.installed(profile_id) is False and not registry.is_remote(profile):
            self.open_repo_page(profile.id, profile.source.recommended_quant)
            self.check_current()  # keep the check mark on what is actually loaded
            return
        self.load_profile(profile)

    def load_profile(self, profile: Profile, n_ctx: int | None = None, overrides: dict[str, Any] | None = None
                     ) -> None:
        a = self.adapter
        if a.loading:
            a.cancel_load(restore=False)  # the new choice replaces it
        try:
            a.load_requested(profile, n_ctx=n_ctx, overrides=overrides)
        except ModelNotFoundError:
            self.open_repo_page(profile.id, profile.source.recommended_quant)
            self.check_current()
            return
        except AppError as exc:
            self.errors.present(exc, modal=True)
            return
        self.check_current()

    def reload(self) -> None:
        p = self.state.current.profile or self.state.current.loading
        if p is not None:
            self.reload_requested.emit(p)

    # ---------------------------------------------------------------- downloads

    def open_repo_page(self, profile_id: str | None, quant: str | None) -> None:
        """The repo page of ``profile_id`` with ``quant`` selected (the one quant picker); without a profile,
        the Downloads page."""
        if profile_id:
            self.repo_requested.emit(profile_id, quant or "")
        else:
            self.downloads_requested.emit()

    def resume_downloads(self) -> int:
        """Downloads that a quit or crash interrupted continue in the background; returns how many."""
        n = self.downloads.resume_interrupted()
        if n:
            self.notify(f"Resuming {n} interrupted download{'s' if n > 1 else ''} "
                        "(the Downloads page, Ctrl+4, shows progress)", 8000)
        return n

    def _on_model_installed(self, profile_id: str) -> None:
        """A download finished: scan again; once the scan names the model, offer to load it."""
        self.store.reload()
        self._ready = profile_id or None
        self.installed.refresh()

    def _offer_ready(self) -> None:
        pid, self._ready = self._ready, None
        if pid and pid in self.store.ids():
            name = self.installed.name_of(pid, self.store.get(pid).name)
            self._offer(pid, f"{name} is downloaded and ready.")

    def _offer(self, pid: str, text: str) -> None:
        self._offered = pid
        self.banner.show_message(text, None, ("Load it", lambda: self.load_profile(self.store.get(pid))))

    def _on_loaded(self, *_a: Any) -> None:
        """The offered model is loaded (by the banner or any other way): its "Load it" banner is done."""
        p = self.state.current.profile
        if self._offered and p is not None and p.id == self._offered:
            self._offered = None
            self.banner.hide()

    # ---------------------------------------------------------------- import, settings

    def import_gguf(self, path: str | None = None, prompt_format: str | None = None) -> workers.Job | None:
        """Run the doctor on a GGUF and create a profile for it, off the GUI thread. A file whose prompt
        format cannot be told (FormatUnknownError) asks the user, then runs again with the choice."""
        if path is None:
            path, _ = QFileDialog.getOpenFileName(self.owner, "Import a GGUF model", str(Path.home()),
                                                  "GGUF models (*.gguf);;All files (*)")
            if not path:
                return None
        fn = registry.import_model
        self.import_action.setEnabled(False)
        self.notify(f"Importing {os.path.basename(path)}…")
        call = (lambda: fn(path, prompt_format=prompt_format)) if prompt_format else (lambda: fn(path))
        job = self._jobs.start(call, self._on_imported,
                            lambda exc, p=path: self._on_import_failed(exc, p))
        return job

    def _on_imported(self, result: Any) -> None:
        self.import_action.setEnabled(True)
        self.store.reload()
        self.installed.refresh()
        fixes = list(getattr(result, "fixes", []) or [])
        fixed = f" Fixed: {', '.join(map(str, fixes))}." if fixes else ""
        pid = result.profile_id
        name = self.store.get(pid).name if pid in self.store.ids() else pid
        self.notify(f"Imported {name}.", 8000)
        self._offer(pid, f"Imported {os.path.basename(str(result.path))} as “{name}”.{fixed}")

    def _on_import_failed(self, exc: BaseException, path: str | None = None) -> None:
        self.import_action.setEnabled(True)
        self.notify("")
        if isinstance(exc, FormatUnknownError) and exc.choices and path:
            choice = self.ask_prompt_format(os.path.basename(path), list(exc.choices))
            if choice:
                self.import_gguf(path, prompt_format=choice)
            return
        if isinstance(exc, AppError):
            self.errors.present(exc, modal=True)
        else:
            self.errors.present({"message": f"The import failed: {exc}", "details": repr(exc)}, modal=True)

    def ask_prompt_format(self, name: str, choices: list[str]) -> str | None:
        """The file names no chat format: the user picks one of ``choices`` (None: cancelled)."""
        choice, ok = QInputDialog.getItem(
            self.owner, "Choose the prompt format",
            f"{name} has no chat template and its model family is unknown.\n"
            "Which prompt format was it trained with? (The model card usually says.)", choices, 0, False)
        return str(choice) if ok and choice else None

    def open_settings(self, profile_id: str | None = None) -> Any:
        """The full profile settings dialog (threads, batch, KV cache, server…); common ones are in the panel."""
        from desktop.ui.settings.dialog import SettingsDialog

        c = self.state.current
        pid = profile_id or (c.target.id if c.target else self.store.default().id)
        dlg = SettingsDialog(self.store, pid, c.profile, self.owner)
        dlg.saved.connect(self.settings_saved)
        dlg.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dlg.open()
        self._settings = dlg
        return dlg
