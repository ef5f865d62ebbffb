"""Drive the real window with xdotool under Xvfb: type, Tab out, Shift+Tab back, send, Esc mid-answer.

    xvfb-run -a -s "-screen 0 1600x1000x24" bash -c "openbox & .venv/bin/python scripts/drive_x11.py"

Keys go through the X server (xdotool), not Qt's test API, so this checks what a user's keyboard does. Runs
over a throw-away data dir with the demo model; prints one line per step and exits 1 if a check failed.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    home = Path(tempfile.mkdtemp(prefix="desktop-chat-drive-"))
    for var, sub in (("XDG_DATA_HOME", "data"), ("XDG_CONFIG_HOME", "config"), ("XDG_CACHE_HOME", "cache")):
        os.environ[var] = str(home / sub)
    os.environ["QT_QPA_PLATFORM"] = "xcb"
    sys.path.insert(0, str(ROOT))
    from PySide6.QtCore import QEventLoop, QTimer
    from PySide6.QtWidgets import QApplication

    from desktop.engine import profiles

    app = QApplication(sys.argv[:1])
    app.setApplicationName("desktop-chat")
    profiles.save_override(profiles.DEFAULT_PROFILE_ID, {"sampling": {"max_tokens": 1024}})
    from desktop.ui.shell.main_window import MainWindow

    def wait(cond, seconds: float) -> bool:  # noqa: ANN001
        for _ in range(int(seconds * 50)):
            if cond():
                return True
            loop = QEventLoop()
            QTimer.singleShot(20, loop.quit)
            loop.exec()
        return cond()

    def xdo(*args: str) -> None:
        subprocess.run(["xdotool", *args], check=True)
        wait(lambda: False, 0.4)  # the X events reach the event loop

    ok = True

    def check(what: str, cond: bool) -> None:
        nonlocal ok
        ok &= cond
        print(f"{'ok  ' if cond else 'FAIL'} {what}", flush=True)

    win = MainWindow()
    win.setWindowTitle("Desktop Chat (xdotool)")
    win.show()
    win.load_profile(win.store.default())
    check("the demo model loads", wait(lambda: win.loaded is not None, 120))
    wid = subprocess.run(["xdotool", "search", "--sync", "--name", "Desktop Chat \\(xdotool\\)"], check=True,
                         capture_output=True, text=True).stdout.split()[0]
    xdo("windowfocus", "--sync", wid)  # works with or without a window manager
    win.input.setFocus()
    xdo("type", "--delay", "30", "Write a long story about a dragon")
    check("typing lands in the message box", win.input.toPlainText() == "Write a long story about a dragon")
    xdo("key", "Tab")
    check(f"Tab leaves the box (focus: {type(app.focusWidget()).__name__})", not win.input.hasFocus())
    xdo("key", "shift+Tab")
    check("Shift+Tab comes back", win.input.hasFocus())
    check("the text is unchanged", win.input.toPlainText() == "Write a long story about a dragon")
    xdo("key", "Return")
    check("Enter sends; the answer streams", wait(lambda: bool(win.session.stream and win.session.stream.text), 60))
    win.chat_list.setFocus()
    xdo("key", "Escape")
    check("Esc (focus in the chat list) stops it", wait(lambda: win.session.stream is None, 30)
          and win.model.messages[-1].state == "cancelled")
    last = win.view.widgets[-1]
    geo = last.regen_btn.mapToGlobal(last.regen_btn.rect().center())
    xdo("mousemove", str(geo.x()), str(geo.y()))
    xdo("click", "1")
    check("clicking Regenerate starts a new answer", wait(lambda: bool(win.session.stream and win.session.stream.text),
                                                           60))
    xdo("key", "Escape")
    check("Esc after clicking Regenerate stops it", wait(lambda: win.session.stream is None, 30)
          and win.model.messages[-1].state == "cancelled")
    xdo("key", "ctrl+Home")
    check("Ctrl+Home scrolls to the top", win.view.verticalScrollBar().value() == 0)
    win.close()
    shutil.rmtree(home, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
