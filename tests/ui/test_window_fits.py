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


def test_the_welcome_page_fits_the_chat_column_with_the_settings_panel_open(qtbot) -> None:
    """With the settings panel open the chat column is narrow (at 2x, a few hundred pixels): the welcome card and
    the suggestions are laid out within it, the hero's buttons stacked, nothing past its right edge."""
    from PySide6.QtCore import QPoint
    from PySide6.QtWidgets import QAbstractButton, QLabel, QScrollArea

    w = _window(qtbot)
    w.toggle_settings_panel(True)
    qtbot.wait(300)
    area = w.welcome.parentWidget()
    while not isinstance(area, QScrollArea):
        area = area.parentWidget()
    port = area.viewport()
    assert w.welcome.width() <= port.width()
    right = port.mapTo(w, QPoint(port.width(), 0)).x()
    shown = [c for c in w.welcome.findChildren(QAbstractButton) + w.welcome.findChildren(QLabel) if c.isVisible()]
    assert shown and all(c.mapTo(w, QPoint(c.width(), 0)).x() <= right + 1 for c in shown)
    assert w.welcome.start_btn.y() != w.welcome.import_btn.y() or port.width() > 500  # stacked when narrow


def test_in_a_narrow_column_the_picker_and_the_placeholder_shorten_instead_of_being_cut(qtbot) -> None:
    w = _window(qtbot)
    w.resize(800, 480)  # a 1600 x 1000 screen at QT_SCALE_FACTOR=2, with the settings panel open
    qtbot.wait(100)
    w.toggle_settings_panel(True)
    qtbot.wait(300)
    assert not w.sidebar.isVisible() and not w.sidebar_action.isChecked()  # folded for the conversation's sake
    button = w.picker.button
    full = "A Very Long Model Name Instruct 70B (a fine-tune of a fine-tune)  ·  Q4_K_M  ▾"
    button.setText(full)
    qtbot.wait(50)
    assert button.text() == full  # the whole name for tests, tooltips and screen readers
    shown = type(button).__mro__[1].text(button)  # what the button paints
    assert shown.endswith("…") and button.fontMetrics().horizontalAdvance(shown) <= button.width()
    box = w.input
    fm = box.fontMetrics()
    assert fm.horizontalAdvance(box.placeholderText()) <= box.viewport().width()
    w.toggle_settings_panel(False)
    assert w.sidebar.isVisible()  # back when the panel closes
    w.resize(1180, 760)
    qtbot.wait(300)
    assert box.placeholderText() == "Message the model…"


def test_the_downloads_table_shares_the_page_width_instead_of_scrolling_sideways(qtbot) -> None:
    """At 2x a 1600 px screen leaves the page about 690 logical pixels: every column shows, none is cut off."""
    from desktop.ui.library.download_queue import DownloadsController
    from desktop.ui.library.downloads_page import DownloadsPanel

    ctrl = DownloadsController()
    panel = DownloadsPanel(ctrl)
    qtbot.addWidget(panel)
    panel.resize(690, 480)
    panel.show()
    qtbot.wait(50)
    hh, view = panel.view.horizontalHeader(), panel.view
    assert hh.length() <= view.viewport().width()
    fm = hh.fontMetrics()
    for col, title in enumerate(panel.jobs.HEADERS):  # each header is there in full
        assert hh.sectionSize(col) >= fm.horizontalAdvance(title), (title, hh.sectionSize(col))
    ctrl.close()


def test_a_suggestion_that_grows_while_the_chat_is_hidden_is_not_squeezed(qtbot) -> None:
    """A card that gained its "Failed: …" line while another page was shown squeezed its Retry button to a sliver:
    the page's height came from the model line's wrapped height at the whole row's width, not at its own."""
    from types import SimpleNamespace

    w = _window(qtbot)
    w.new_chat()
    qtbot.waitUntil(lambda: bool(w.welcome.cards), timeout=15000)
    w.chat_page.empty.setMaximumWidth(300)  # held back by its maximum, as in a wide window (a small screen here)
    w.chat_page.empty.setText("<p>Start a conversation</p><p>" + "A model with a long name is loading. " * 8 + "</p>")
    w.show_page("hub")
    card = w.welcome.cards[0]
    job = SimpleNamespace(state="failed", message="cannot reach https://huggingface.co (ConnectError); check the "
                          "network and try again", error=None, done=0, total=None, speed=0.0, eta_s=None)
    card.set_job(job)  # type: ignore[arg-type]
    w.show_page("chats")
    qtbot.wait(200)
    for widget in (card, card.download_btn):
        assert widget.height() >= widget.minimumSizeHint().height(), (widget, widget.height())
    # The page asks its scroll area for room for the model line at the width the line really has.
    page, line, welcome = w.chat_page.empty_page.widget(), w.chat_page.empty, w.welcome
    need = 12 + line.heightForWidth(line.width()) + welcome.heightForWidth(welcome.width())
    assert line.width() < page.width() and page.heightForWidth(page.width()) >= need
