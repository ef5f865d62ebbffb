"""QApplication set-up and the GUI entry point. GUI thread."""
from __future__ import annotations

import os
import sys

from PySide6.QtCore import QSettings, QTimer
from PySide6.QtWidgets import QApplication

from desktop.engine.errors import AppError
from desktop.engine.profiles import Profile

# A test hook: quit after this many seconds and print what Qt came up with (tests/ui/test_qt_args.py).
EXIT_AFTER_ENV = "DESKTOP_CHAT_EXIT_AFTER_S"


def start_profile(win) -> Profile:
    """The profile used last, if it is still there and installed; else the bundled demo (works offline)."""
    from desktop.ui.library.scan import profile_installed

    pid = QSettings().value("last_profile", "", type=str)
    if pid and pid in win.store.ids():
        p = win.store.get(pid)
        if profile_installed(p):
            return p
    return win.store.default()


def run_gui(qt_args: list[str] | None = None) -> int:
    """``qt_args``: Qt's own command-line arguments (``-platform xcb``, ``-style Fusion``…), passed through."""
    app = QApplication.instance() or QApplication([sys.argv[0], *(qt_args or [])])
    qt_style = app.style().name()  # what Qt made of -style, before the theme's stylesheet wraps it
    app.setApplicationName("desktop-chat")
    app.setOrganizationName("desktop-chat")
    app.setApplicationDisplayName("Desktop Chat")
    from desktop.ui.errors import install_error_hooks
    from desktop.ui.shell.main_window import MainWindow
    from desktop.ui.theme import theme

    style = _style_arg(qt_args or [])
    theme.apply()
    if style:  # the user asked for a Qt style: keep it under the app's stylesheet
        app.setStyle(qt_style or style)
    try:
        win = MainWindow()
    except AppError as exc:
        sys.stderr.write(f"error: {exc.message}\n")
        return 1
    win.error_bridge = install_error_hooks(win.errors)
    win.state.model_loaded.connect(
        lambda current: current.profile and QSettings().setValue("last_profile", current.profile.id))
    win.show()
    win.load_profile(start_profile(win))
    win.resume_downloads()
    exit_after = os.environ.get(EXIT_AFTER_ENV)
    if exit_after:
        def report() -> None:
            print(f"gui: platform={app.platformName()} style={qt_style} visible={win.isVisible()}",
                  flush=True)
            win.close()
            app.quit()

        QTimer.singleShot(int(float(exit_after) * 1000), report)
    return app.exec()


def _style_arg(args: list[str]) -> str | None:
    for i, a in enumerate(args):
        if a in ("-style", "--style") and i + 1 < len(args):
            return args[i + 1]
        if a.startswith(("-style=", "--style=")):
            return a.split("=", 1)[1]
    return None
