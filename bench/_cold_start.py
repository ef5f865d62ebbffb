"""Cold start of the GUI, in a fresh process: what ``python -m desktop`` does, with timestamps.

``argv[1]`` is the parent's ``time.time()`` just before it started this process. Prints one JSON line:
seconds to the first paint of the main window, and to the demo model loaded (the app usable).
Bench-only code; the environment (XDG dirs, offscreen platform) comes from ``bench/run.py``.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> int:
    t_parent = float(sys.argv[1])
    from PySide6.QtCore import QEvent, QObject, QTimer
    from PySide6.QtWidgets import QApplication

    t_import = time.time()
    app = QApplication(sys.argv[:1])
    app.setApplicationName("desktop-chat")
    app.setOrganizationName("desktop-chat")
    from desktop.ui.shell.main_window import MainWindow

    out: dict[str, float] = {}

    class FirstPaint(QObject):
        def eventFilter(self, obj, ev):  # noqa: N802 - Qt's name
            # A child's paint: the window's backing store is being drawn, i.e. the first frame.
            if ev.type() == QEvent.Type.Paint and "paint_s" not in out:
                QTimer.singleShot(0, lambda: out.setdefault("paint_s", time.time() - t_parent))
            return False

    flt = FirstPaint()
    app.installEventFilter(flt)
    win = MainWindow()
    win.show()
    win.load_profile(win.store.default())  # as desktop/ui/app.py run_gui does
    win.adapter.model_loaded.connect(lambda _ev: out.setdefault("loaded_s", time.time() - t_parent))

    def check() -> None:
        if "paint_s" in out and "loaded_s" in out:
            app.quit()

    timer = QTimer(interval=5)
    timer.timeout.connect(check)
    timer.start()
    QTimer.singleShot(120_000, app.quit)
    app.exec()
    out["python_import_s"] = t_import - t_parent
    app.removeEventFilter(flt)
    win.close()
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
