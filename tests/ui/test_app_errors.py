"""Start-up and errors: the GUI's log, excepthooks that show one sentence, Qt warnings in the log, Help menu."""
from __future__ import annotations

import logging
import sys
import threading

from PySide6.QtCore import QUrl, qWarning

from desktop.engine import logs


def _window(qtbot):
    from desktop.ui.shell.main_window import MainWindow

    w = MainWindow()
    qtbot.addWidget(w)
    w.show()
    return w


def _flush() -> None:
    for h in logs.get_logger().handlers:
        h.flush()


def test_unhandled_exceptions_reach_the_presenter_as_one_sentence_and_the_log(qtbot) -> None:
    from desktop.ui.errors import install_error_hooks

    w = _window(qtbot)
    old_hook, old_thread_hook = sys.excepthook, threading.excepthook
    try:
        bridge = install_error_hooks(w.errors)

        def boom() -> None:
            raise ValueError("worker went wrong")

        t = threading.Thread(target=boom, name="worker-x")
        t.start()
        t.join()
        qtbot.waitUntil(lambda: w.banner.isVisible(), timeout=3000)
        text = w.banner.label.text()
        assert "ValueError: worker went wrong" in text and "Help ▸ Show log" in text
        assert "Traceback" not in text and "\n" not in text
        try:
            raise KeyError("main thread")
        except KeyError:
            sys.excepthook(*sys.exc_info())
        qtbot.waitUntil(lambda: "KeyError" in (w.errors.last or ""), timeout=3000)
        qWarning("a Qt warning for the log")
        _flush()
        log = logs.log_path().read_text()
        assert "Traceback" in log and "worker went wrong" in log and "thread worker-x" in log
        assert "a Qt warning for the log" in log and "gui[" in log
        assert bridge is not None
    finally:
        sys.excepthook, threading.excepthook = old_hook, old_thread_hook
        from PySide6.QtCore import qInstallMessageHandler

        qInstallMessageHandler(None)
        logger = logs.get_logger()
        for h in list(logger.handlers):
            logger.removeHandler(h)
            h.close()
        logs._handler = None
        logger.setLevel(logging.NOTSET)


def test_help_menu_shows_the_log_and_about(qtbot, monkeypatch) -> None:
    from PySide6.QtGui import QDesktopServices

    opened: list[QUrl] = []
    monkeypatch.setattr(QDesktopServices, "openUrl", lambda url: opened.append(url) or True)
    w = _window(qtbot)
    w.show_log_action.trigger()
    assert opened and opened[0].toLocalFile() == str(logs.log_path().parent)
    w.about_action.trigger()
    box = w._about_box
    assert "Desktop Chat" in box.text() and str(logs.log_path()) in box.text()
    box.close()
    box = w.show_shortcuts()
    assert "Ctrl+R" in box.text() and "Esc" in box.text()
    box.close()
