"""Ctrl+F search: matching messages with the hit highlighted, jump to the message (even on a hidden branch),
"No results", Esc clears."""
from __future__ import annotations

from PySide6.QtCore import Qt

from desktop.engine.chats.store import ChatStore
from desktop.ui.chat.sidebar import MARKS, HitRole, snippet_html


def _seed() -> tuple[int, int, int]:
    s = ChatStore()
    a = s.create_chat("Fruit talk")
    u = s.add_message(a, None, "user", "Tell me about apples <b>and</b> pears")
    hidden = s.add_message(a, u, "assistant", "The pineapple is not an apple at all.")  # an older answer
    s.add_message(a, u, "assistant", "Apples and pears are pome fruits.")  # the shown one
    b = s.create_chat("Other")
    s.add_message(b, None, "user", "nothing to see here")
    s.close()
    return a, b, hidden


def _window(qtbot):
    from desktop.ui.shell.main_window import MainWindow

    w = MainWindow()
    qtbot.addWidget(w)
    w.show()
    w.activateWindow()
    qtbot.waitUntil(w.isActiveWindow, timeout=3000)
    return w


def test_snippet_is_escaped_and_the_hit_highlighted() -> None:
    html = snippet_html(f"about {MARKS[0]}apples{MARKS[1]} <b>and</b>", "A <title>")
    assert "apples</u></b>" in html and "<b><u style=" in html and "&lt;b&gt;and&lt;/b&gt;" in html and "A &lt;title&gt;" in html


def test_search_lists_hits_and_jumps_to_a_hidden_branch(qtbot) -> None:
    a, b, hidden = _seed()
    w = _window(qtbot)
    qtbot.keyClick(w, Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier)
    assert w.search.hasFocus()
    qtbot.keyClicks(w.search, "pineapple")
    qtbot.waitUntil(lambda: w.sidebar.pages.currentWidget() is w.sidebar.results, timeout=3000)
    items = [w.sidebar.results.item(i) for i in range(w.sidebar.results.count())]
    assert [it.data(HitRole) for it in items] == [(a, hidden, False)]
    assert "pineapple</u></b>" in items[0].text() and "Fruit talk" in items[0].text()
    qtbot.keyClick(w.search, Qt.Key.Key_Down)  # into the results
    assert w.sidebar.results.hasFocus()
    qtbot.keyClick(w.sidebar.results, Qt.Key.Key_Return)
    assert w.chat_id == a
    assert hidden in [m.id for m in w.model.messages]  # switched to the branch holding the hit
    i = w.model.row_of(hidden)
    assert w.model.messages[i].branch == (0, 2)


def test_no_results_and_esc_clears(qtbot) -> None:
    _seed()
    w = _window(qtbot)
    w.focus_search()
    qtbot.keyClicks(w.search, "zzzznothing")
    qtbot.waitUntil(lambda: w.sidebar.pages.currentWidget() is w.sidebar.no_results, timeout=3000)
    assert w.sidebar.no_results.isVisible() and w.sidebar.no_results.text() == "No results"
    qtbot.keyClick(w.search, Qt.Key.Key_Escape)
    assert w.search.text() == "" and w.sidebar.pages.currentWidget() is w.sidebar.list
    assert w.chat_proxy.rowCount() == 2 and w.input.hasFocus()


def test_a_title_hit_opens_the_chat(qtbot) -> None:
    a, b, _ = _seed()
    w = _window(qtbot)
    w.search.setText("Other")
    w.sidebar.apply_search()
    hits = [w.sidebar.results.item(i).data(HitRole) for i in range(w.sidebar.results.count())]
    assert (b, 0, False) in hits
    w.sidebar.results.setCurrentRow(hits.index((b, 0, False)))
    w.sidebar.results.itemClicked.emit(w.sidebar.results.currentItem())
    assert w.chat_id == b


def test_a_hit_in_the_thinking_opens_its_block(qtbot) -> None:
    s = ChatStore()
    c = s.create_chat("Greetings")
    u = s.add_message(c, None, "user", "Say hi.")
    ans = s.add_message(c, u, "assistant", "")
    s.finish_message(ans, "Hi there!", "done", reasoning="Hmm, a marmoset would wave.", stats={"thinking_s": 2.0})
    s.close()
    w = _window(qtbot)
    w.search.setText("marmoset")
    w.sidebar.apply_search()
    assert [w.sidebar.results.item(i).data(HitRole) for i in range(w.sidebar.results.count())] == [(c, ans, True)]
    w.sidebar.results.setCurrentRow(0)
    w.sidebar.results.itemClicked.emit(w.sidebar.results.currentItem())
    assert w.chat_id == c
    block = w.view.widgets[w.model.row_of(ans)].thinking
    assert not block.isHidden() and block.is_open and block.toggle.text() == "Thought for 2 s"
