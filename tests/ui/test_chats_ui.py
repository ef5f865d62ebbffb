"""Chat list actions, shortcuts, the empty state, and messages dimmed when they leave the context."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence

from desktop.engine.chats.store import ChatStore
from tests.ui.conftest import TINY_LLAMA3


def _seeded() -> tuple[int, int]:
    s = ChatStore()
    a = s.create_chat("Alpha")
    u = s.add_message(a, None, "user", "first question about apples")
    s.add_message(a, u, "assistant", "an answer")
    b = s.create_chat("Beta")
    s.add_message(b, None, "user", "bananas")
    s.close()
    return a, b


def _window(qtbot):
    from desktop.ui.shell.main_window import MainWindow

    w = MainWindow()  # no model load: the engine process starts with the first request
    qtbot.addWidget(w)
    w.show()
    return w


def test_shortcuts_and_empty_state(qtbot) -> None:
    w = _window(qtbot)
    shortcuts = {a.text().replace("&", ""): a.shortcut() for a in
                 (w.new_action, w.find_action, w.settings_action, w.quit_action)}
    assert shortcuts == {"New chat": QKeySequence("Ctrl+N"), "Find in chats": QKeySequence("Ctrl+F"),
                         "Chat settings panel": QKeySequence("Ctrl+,"), "Quit": QKeySequence("Ctrl+Q")}
    assert w.stack.currentWidget() is w.chat_page.empty_page and "Start a conversation" in w.empty.text()
    # The welcome view under it suggests the starter profiles first.
    qtbot.waitUntil(lambda: bool(w.welcome.cards), timeout=15000)
    assert w.welcome.isVisibleTo(w.chat_page.empty_page) and w.welcome.cards[0].entry.starter
    w.find_action.trigger()
    assert w.search.hasFocus() or w.focusWidget() is w.search
    # No model chosen yet (e.g. the demo failed to load): a sentence, not a crash.
    w.adapter.profile = None
    assert not w.send("hello")
    assert "Model menu" in (w.errors.last or "")
    assert "No model is loaded" in w.empty.text() or "demo" in w.empty.text()
    w.close()


def test_open_rename_delete_and_search(qtbot) -> None:
    a, b = _seeded()
    w = _window(qtbot)
    assert w.chat_id == b and [m.text for m in w.model.messages] == ["bananas"]  # newest chat opens
    # Selecting a chat in the list opens it.
    row = w.chat_proxy.mapFromSource(w.chat_list_model.index(w.chat_list_model.row_of(a)))
    w.chat_list.setCurrentIndex(row)
    assert w.chat_id == a and [m.text for m in w.model.messages] == ["first question about apples", "an answer"]
    w.rename_chat(a, "Apples")
    assert w.chats.chat(a).title == "Apples"
    assert "Apples" in [w.chat_list_model.index(r).data() for r in range(w.chat_list_model.rowCount())]
    assert w.chat_list.currentIndex().data() == "Apples"  # the selection survives the refresh
    w.search.setText("apples")  # message text, full-text
    qtbot.waitUntil(lambda: w.chat_proxy.rowCount() == 1, timeout=2000)
    w.search.setText("zzz-nothing")
    qtbot.waitUntil(lambda: w.chat_proxy.rowCount() == 0, timeout=2000)
    w.search.clear()
    qtbot.waitUntil(lambda: w.chat_proxy.rowCount() == 2, timeout=2000)
    w.delete_chat(a, confirm=False)
    assert w.chats.chat(a) is None and w.chat_id is None and w.model.rowCount() == 0
    assert w.chat_list_model.rowCount() == 1
    qtbot.keyClick(w, Qt.Key.Key_N, Qt.KeyboardModifier.ControlModifier)
    assert w.chat_id is None
    w.close()


def test_download_finishing_refreshes_the_menu_and_offers_the_model(qtbot, monkeypatch, tiny_profiles) -> None:
    w = _window(qtbot)
    w.model_menu.downloads.model_installed.emit(TINY_LLAMA3)  # what the one download manager says when a job is done
    qtbot.waitUntil(lambda: "is downloaded" in w.banner.label.text(), timeout=15000)  # after the scan names it
    assert w.banner.isVisibleTo(w) and "Tiny Llama 3 is downloaded" in w.banner.label.text()
    assert w.banner.action_btn.text() == "Load it"
    w.close()


def test_old_messages_are_dimmed_when_they_leave_the_context(qtbot, make_window, tiny_profiles) -> None:
    w = make_window(TINY_LLAMA3)  # a 512-token context
    long = "tell me about " + " ".join(f"topic{i}" for i in range(25))  # ~190 tokens in this vocab
    for text in (long, long + " again", long + " and again"):
        with qtbot.waitSignal(w.adapter.generation_finished, timeout=60000) as blocker:
            w.input.setPlainText(text)
            w.send()
        qtbot.waitUntil(lambda: not w._stream, timeout=5000)
    assert blocker.args[1].dropped == [0, 1]
    dims = [m.dimmed for m in w.model.messages]
    assert dims == [True, True, False, False, False, False]
    assert w.view.widgets[0].graphicsEffect() is not None
    assert "2 earlier messages not in context" in w.status_ctx.text()
    # Persisted: reopening the chat shows the same.
    cid = w.chat_id
    w.new_chat()
    w.open_chat(cid)
    assert [m.dimmed for m in w.model.messages] == [True, True, False, False, False, False]


def test_start_profile_is_the_last_one_used_if_still_installed(qtbot, tiny_profiles) -> None:
    from PySide6.QtCore import QSettings

    from desktop.ui.app import start_profile

    w = _window(qtbot)
    QSettings().setValue("last_profile", TINY_LLAMA3)
    assert start_profile(w).id == TINY_LLAMA3
    QSettings().setValue("last_profile", "smaug-mixtral-v0.1")  # not downloaded: the demo, which works offline
    assert start_profile(w).id == "smollm2-135m-instruct"
    QSettings().setValue("last_profile", "no-such-profile")
    assert start_profile(w).id == "smollm2-135m-instruct"
    w.close()


def test_a_long_chat_title_is_elided_in_the_sidebar_not_scrolled(qtbot) -> None:
    s = ChatStore()
    s.create_chat("Write a short poem about the sea, in three short lines, and make it rhyme please")
    s.close()
    w = _window(qtbot)
    lst = w.sidebar.list
    qtbot.waitUntil(lambda: lst.model().rowCount() == 1, timeout=3000)
    qtbot.waitExposed(lst)
    # The list lays its items out again after a resize (Qt's delayed layout), at the viewport's width.
    qtbot.waitUntil(lambda: 0 < lst.visualRect(lst.model().index(0, 0)).width() <= lst.viewport().width(),
                    timeout=3000)
    assert lst.horizontalScrollBar().maximum() == 0 and not lst.horizontalScrollBar().isVisible()
    w.sidebar.setFixedWidth(w.sidebar.width() + 80)  # wider sidebar: the item follows the new width
    qtbot.waitUntil(lambda: lst.visualRect(lst.model().index(0, 0)).width() == lst.viewport().width(), timeout=3000)
