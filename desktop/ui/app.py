"""QApplication set-up and the GUI entry point. GUI thread."""
from __future__ import annotations

import sys

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication

from desktop.engine.errors import AppError
from desktop.engine.profiles import Profile


def start_profile(win) -> Profile:
    """The profile used last, if it is still there and installed; else the bundled demo (works offline)."""
    from .list_models import ProfileListModel

    pid = QSettings().value("last_profile", "", type=str)
    if pid and pid in win.store.ids():
        p = win.store.get(pid)
        if ProfileListModel._installed(p):
            return p
    return win.store.default()


def run_gui() -> int:
    app = QApplication.instance() or QApplication(sys.argv)
    app.setApplicationName("desktop-chat")
    app.setOrganizationName("desktop-chat")
    app.setApplicationDisplayName("Desktop Chat")
    from .main_window import MainWindow

    try:
        win = MainWindow()
    except AppError as exc:
        sys.stderr.write(f"error: {exc.message}\n")
        return 1
    win.adapter.model_loaded.connect(
        lambda _ev: win.adapter.loaded_profile and QSettings().setValue("last_profile", win.adapter.loaded_profile.id))
    win.show()
    win.load_profile(start_profile(win))
    win.resume_downloads()
    return app.exec()
