"""Tab and Shift+Tab walk the window in reading order: the rail, the sidebar, the chat page's top bar, what the
page shows, the composer, then the settings panel; Shift+Tab is the exact reverse, and no stop is a bare scroll
area (which shows no focus)."""
from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QScrollArea


def _window(qtbot) -> Any:
    from desktop.ui.shell.main_window import MainWindow

    w = MainWindow()
    qtbot.addWidget(w)
    w.resize(1300, 850)
    w.show()
    w.activateWindow()
    qtbot.waitUntil(w.isActiveWindow, timeout=3000)
    return w


def _walk(qtbot, w: Any, key: Qt.Key, n: int) -> list[Any]:
    seen = []
    for _ in range(n):
        qtbot.keyClick(QApplication.focusWidget(), key)
        seen.append(QApplication.focusWidget())
    return seen


def test_tab_follows_reading_order_and_shift_tab_reverses_it(qtbot) -> None:
    w = _window(qtbot)
    w.input.setFocus()
    forward = _walk(qtbot, w, Qt.Key.Key_Tab, 60)
    cycle = forward[: forward.index(w.input, 1) + 1] if w.input in forward[1:] else forward
    assert cycle[-1] is w.input  # the walk comes back round
    rail = list(w.page_buttons.values())
    picker = w.picker.focusProxy() or w.picker
    fixed = rail + [w.sidebar.new_btn, w.search, w.chat_list, picker, w.chat_page.settings_btn,
                    w.chat_page.attach_btn, w.input]
    # Every fixed stop is there once, in this order, with the welcome view's buttons between top bar and composer.
    positions = [cycle.index(x) for x in fixed]
    assert positions == sorted(positions) and len(set(map(id, cycle))) == len(cycle)
    assert cycle[positions[-2] - 1] is not w.chat_page.settings_btn  # the page's own stops come in between
    assert not any(isinstance(x, QScrollArea) for x in cycle)
    w.input.setFocus()
    backward = _walk(qtbot, w, Qt.Key.Key_Backtab, len(cycle))
    assert backward == list(reversed(cycle[:-1])) + [w.input]


def test_the_settings_panel_comes_after_the_composer_and_other_pages_have_their_own_order(qtbot) -> None:
    w = _window(qtbot)
    w.toggle_settings_panel(True)
    w.input.setFocus()
    stops = _walk(qtbot, w, Qt.Key.Key_Tab, 4)
    assert stops[0] is w.chat_page.send_btn
    assert w.settings_panel.isAncestorOf(stops[1])  # the panel's first field follows the Send button
    w.toggle_settings_panel(False)
    w.show_page("hub")
    assert [b.isChecked() for b in w.page_buttons.values()] == [k == "hub" for k in w.page_buttons]
    hub = w.pages.currentWidget()
    w.page_buttons["hub"].setFocus()
    (nxt,) = _walk(qtbot, w, Qt.Key.Key_Tab, 1)
    assert nxt is w.page_buttons["models"]
    list(w.page_buttons.values())[-1].setFocus()  # the rail's last button
    (nxt,) = _walk(qtbot, w, Qt.Key.Key_Tab, 1)
    assert hub.isAncestorOf(nxt)  # from the rail into the page, never into the hidden chat page


def test_every_stop_shows_that_it_has_the_focus(qtbot) -> None:
    w = _window(qtbot)
    w.input.setFocus()
    stops = _walk(qtbot, w, Qt.Key.Key_Tab, 12)
    for stop in stops:
        stop.clearFocus()
        qtbot.wait(10)
        before = stop.grab().toImage()
        stop.setFocus(Qt.FocusReason.TabFocusReason)
        qtbot.waitUntil(stop.hasFocus, timeout=1000)
        qtbot.wait(10)
        assert stop.grab().toImage() != before, f"{type(stop).__name__} {stop.accessibleName()!r} looks the same"
