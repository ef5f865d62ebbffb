"""The Qt binding itself must not corrupt the interpreter (PySide6 6.12.0 on Python 3.11 did)."""
from __future__ import annotations

import sys

from PySide6.QtWidgets import QApplication, QLabel


def test_void_calls_do_not_drop_references_to_none(qtbot) -> None:
    # 6.12.0 returned None from every void method without a new reference: after a few thousand calls
    # (one streamed answer) the interpreter aborted with "Fatal Python error: none_dealloc".
    label = QLabel()
    qtbot.addWidget(label)
    app = QApplication.instance()
    before = sys.getrefcount(None)
    for _ in range(2000):
        label.setText("x")
        app.processEvents()
    assert sys.getrefcount(None) - before > -100
