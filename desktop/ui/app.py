"""QApplication set-up and the GUI entry point. GUI thread."""
from __future__ import annotations

import sys

from PySide6.QtWidgets import QApplication

from desktop.engine.errors import AppError


def run_gui() -> int:
    app = QApplication.instance() or QApplication(sys.argv)
    app.setApplicationName("desktop-chat")
    app.setOrganizationName("desktop-chat")
    from .main_window import MainWindow

    try:
        win = MainWindow()
    except AppError as exc:
        sys.stderr.write(f"error: {exc.message}\n")
        return 1
    win.show()
    win.load_profile(win.store.default())  # first start: the bundled demo, offline
    return app.exec()
