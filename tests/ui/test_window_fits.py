"""The window fits a small screen (800x500 logical: 1600x1000 at QT_SCALE_FACTOR=2) whatever the status bar and
the composer say: long texts end in "…" or wrap instead of widening the window past the screen."""
from __future__ import annotations

from typing import Any

SMALL_SCREEN_WIDTH = 800  # logical pixels


def _window(qtbot) -> Any:
    from desktop.ui.shell.main_window import MainWindow

    w = MainWindow()
    qtbot.addWidget(w)
    w.resize(780, 460)
    w.show()
    return w


def test_a_long_load_text_and_model_name_do_not_widen_the_window(qtbot) -> None:
    w = _window(qtbot)
    name = "A Very Long Model Name Instruct 70B With A Long Suffix (fine-tune of a fine-tune)"
    w.status.load_started(name)
    w.status.load_progress(0.42)
    w.status.model.setText(f"{name} · Q4_K_M")
    w.status.backend.setText("CUDA · 81/81 GPU layers")
    qtbot.wait(50)
    assert w.minimumSizeHint().width() < SMALL_SCREEN_WIDTH - 100
    assert w.width() <= 780
    label = w.status.load_label
    assert label.width() < label.fontMetrics().horizontalAdvance(label.text())  # shown shortened, not cut off
    img = label.grab().toImage()
    assert not img.isNull()


def test_the_composer_hint_wraps_instead_of_setting_a_minimum_width(qtbot) -> None:
    w = _window(qtbot)
    hint = w.chat_page.hint
    assert hint.wordWrap()
    assert w.chat_page.minimumSizeHint().width() < hint.fontMetrics().horizontalAdvance(hint.text())
