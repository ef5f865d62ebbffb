"""The keyboard: Tab never types into the message box, Esc stops an answer from anywhere, shortcuts in menus."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import QApplication, QMenu, QMessageBox

from desktop.engine.chats.store import ChatStore
from desktop.ui.shell.actions import TABLE
from tests.ui.conftest import LONG_PROMPT


def _window(qtbot):
    from desktop.ui.shell.main_window import MainWindow

    w = MainWindow()  # no model: the engine starts with the first request
    qtbot.addWidget(w)
    w.show()
    w.activateWindow()
    qtbot.waitUntil(w.isActiveWindow, timeout=3000)  # focus (and Tab) only work in the active window
    return w


def _seed(n_turns: int = 1, title: str = "Seeded") -> int:
    s = ChatStore()
    c = s.create_chat(title)
    parent = None
    for i in range(n_turns):
        parent = s.add_message(c, parent, "user", f"question {i}\n" * 3)
        parent = s.add_message(c, parent, "assistant", f"answer {i}\n\n" * 12)
    s.close()
    return c


def test_tab_and_shift_tab_move_focus_and_never_change_the_text(qtbot) -> None:
    w = _window(qtbot)
    w.input.setFocus()
    qtbot.keyClicks(w.input, "half a thought")
    assert w.input.hasFocus()
    qtbot.keyClick(w.input, Qt.Key.Key_Tab)
    assert not w.input.hasFocus() and QApplication.focusWidget() is not None
    assert w.input.toPlainText() == "half a thought"  # no tab character typed
    qtbot.keyClick(QApplication.focusWidget(), Qt.Key.Key_Tab, Qt.KeyboardModifier.ShiftModifier)
    assert w.input.hasFocus()
    assert w.input.toPlainText() == "half a thought"


def test_scroll_keys_move_the_conversation_from_the_message_box(qtbot) -> None:
    _seed(6)
    w = _window(qtbot)
    w.resize(900, 500)
    bar = w.view.verticalScrollBar()
    qtbot.waitUntil(lambda: bar.maximum() > 0 and bar.value() == bar.maximum(), timeout=3000)
    w.input.setFocus()
    top = bar.value()
    qtbot.keyClick(w.input, Qt.Key.Key_PageUp)
    assert bar.value() < top
    qtbot.keyClick(w.input, Qt.Key.Key_Home, Qt.KeyboardModifier.ControlModifier)
    assert bar.value() == 0
    qtbot.keyClick(w.input, Qt.Key.Key_PageDown)
    assert bar.value() > 0
    qtbot.keyClick(w.input, Qt.Key.Key_End, Qt.KeyboardModifier.ControlModifier)
    assert bar.value() == bar.maximum()


def test_menus_list_the_shortcuts(qtbot) -> None:
    w = _window(qtbot)
    listed = dict(w.shortcuts())
    for text, key in (("Regenerate answer", "Ctrl+R"), ("Copy last answer", "Ctrl+Shift+C"), ("Rename…", "F2"),
                      ("Delete…", "Del"), ("Stop answer", "Esc"), ("Chat settings panel", "Ctrl+,"),
                      ("Find in chats", "Ctrl+F"), ("Scroll up", "PgUp"), ("To the top", "Ctrl+Home"),
                      ("Chats", "Ctrl+1"), ("Reload model", "Ctrl+Shift+L"), ("Import GGUF from disk…", "Ctrl+I"),
                      ("Downloads", "Ctrl+4")):
        assert listed.get(text) == QKeySequence(key).toString(), (text, listed.get(text))
    # Every shortcut in any menu is in the one table, so the F1 list names it; the Model menu's rows are the
    # table's, after its profiles (the menu is filled again each time it opens).
    in_menus = {a.text().replace("&", ""): a.shortcut().toString() for m in w.menuBar().findChildren(QMenu)
                for a in m.actions() if not a.shortcut().isEmpty()}
    assert in_menus and all(listed.get(t) == k for t, k in in_menus.items()), in_menus
    menu = w.model_menu.menu
    menu.aboutToShow.emit()
    rows = [a.text() for a in menu.actions() if not a.isSeparator()][-3:]
    assert rows == [s.text for s in TABLE if s.menu == "&Model"]


def test_up_in_an_empty_box_edits_the_last_message_and_copy_last_answer(qtbot) -> None:
    _seed(2)
    w = _window(qtbot)
    w.input.setFocus()
    qtbot.keyClick(w.input, Qt.Key.Key_Up)
    assert w.input.toPlainText() == "question 1\n" * 3 and w.edit_bar.isVisible()
    qtbot.keyClick(w.input, Qt.Key.Key_Escape)  # leaves the edit
    assert not w.edit_bar.isVisible() and w.input.toPlainText() == ""
    qtbot.keyClick(w, Qt.Key.Key_C, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert QApplication.clipboard().text() == "answer 1\n\n" * 12


def test_f2_renames_and_del_asks_with_no_as_the_default(qtbot, monkeypatch) -> None:
    c = _seed(1, "Old name")
    w = _window(qtbot)
    from PySide6.QtWidgets import QInputDialog

    monkeypatch.setattr(QInputDialog, "getText", lambda *a, **k: ("New name", True))
    w.chat_list.setFocus()
    qtbot.keyClick(w.chat_list, Qt.Key.Key_F2)
    assert w.chats.chat(c).title == "New name"
    defaults: list[bool] = []

    def refuse(box) -> int:
        defaults.append(box.defaultButton() is box.button(QMessageBox.StandardButton.No))
        return QMessageBox.StandardButton.No

    monkeypatch.setattr(QMessageBox, "exec", refuse)
    qtbot.keyClick(w.chat_list, Qt.Key.Key_Delete)
    assert defaults == [True] and w.chats.chat(c) is not None  # kept
    monkeypatch.setattr(QMessageBox, "exec", lambda box: QMessageBox.StandardButton.Yes)
    qtbot.keyClick(w.chat_list, Qt.Key.Key_Delete)
    assert w.chats.chat(c) is None and w.chat_id is None


def test_del_in_the_message_box_deletes_a_character_not_the_chat(qtbot) -> None:
    c = _seed(1)
    w = _window(qtbot)
    w.input.setFocus()
    qtbot.keyClicks(w.input, "abc")
    qtbot.keyClick(w.input, Qt.Key.Key_Left)
    qtbot.keyClick(w.input, Qt.Key.Key_Delete)
    assert w.input.toPlainText() == "ab" and w.chats.chat(c) is not None


def test_controls_have_accessible_names(qtbot) -> None:
    w = _window(qtbot)
    for widget in (w.input, w.send_btn, w.stop_btn, w.search, w.chat_list, w.chat_page.settings_btn,
                   w.sidebar.results, w.status.load_cancel, *w.page_buttons.values()):
        assert widget.accessibleName(), widget


def test_esc_stops_an_answer_from_anywhere_also_after_regenerate(qtbot, make_window, long_demo) -> None:
    w = make_window()
    # Under load a demo token took 4.5 s, past the 1.5 s watchdog, whose kill ends the answer as Failed, not
    # Finished: this test is about where Esc works, so the cooperative Stop gets the time it needs.
    w.adapter.client.stop_grace_s = 30.0
    seen: list[str] = []
    w.adapter.token_received.connect(lambda _r, t: seen.append(t))
    with qtbot.waitSignal(w.adapter.generation_finished, timeout=120000) as blocker:
        w.input.setPlainText(LONG_PROMPT)
        w.send()
        qtbot.waitUntil(lambda: len(seen) >= 2, timeout=30000)
        w.chat_list.setFocus()  # focus far from the message box
        qtbot.keyClick(w.chat_list, Qt.Key.Key_Escape)
    assert blocker.args[1].finish_reason == "cancelled"
    qtbot.waitUntil(lambda: not w._stream, timeout=5000)
    seen.clear()
    last = w.view.widgets[-1]
    with qtbot.waitSignal(w.adapter.generation_finished, timeout=120000) as blocker:
        qtbot.mouseClick(last.regen_btn, Qt.MouseButton.LeftButton)  # focus goes where the click left it
        qtbot.waitUntil(lambda: len(seen) >= 2, timeout=30000)
        target = QApplication.focusWidget() or w
        qtbot.keyClick(target, Qt.Key.Key_Escape)
    assert blocker.args[1].finish_reason == "cancelled"
    qtbot.waitUntil(lambda: not w._stream, timeout=5000)
    assert w.model.messages[-1].state == "cancelled" and w.send_btn.isEnabled()
