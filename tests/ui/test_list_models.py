"""The Qt item models (messages, chats) and their proxies, checked by qtmodeltester."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt

from desktop.engine.chats.store import ChatStore
from desktop.ui.chat.chat_list import ChatFilterProxy, ChatIdRole, ChatListModel
from desktop.ui.chat.message_model import (
    BranchRole,
    ChatModel,
    DimmedRole,
    IdRole,
    TextRole,
)


def test_chat_model_passes_qmodeltester(qtmodeltester) -> None:
    m = ChatModel()
    m.append("user", "hi", id=1)
    m.append("assistant", "", state="streaming", id=2, branch=(1, 2))
    m.append_token("Hel")
    m.append_token("lo")
    m.flush()
    m.set_dimmed({1})
    qtmodeltester.check(m)
    assert m.data(m.index(1), TextRole) == "Hello" and m.data(m.index(1), BranchRole) == (1, 2)
    assert m.data(m.index(0), DimmedRole) is True and m.data(m.index(1), IdRole) == 2


def test_token_updates_are_coalesced_and_touch_only_the_last_row(qtbot) -> None:
    m = ChatModel()
    m.append("user", "hi")
    m.append("assistant", "", state="streaming")
    changed: list[tuple[int, int]] = []
    m.dataChanged.connect(lambda a, b, _roles=None: changed.append((a.row(), b.row())))
    for _ in range(200):
        m.append_token("x")
    qtbot.waitUntil(lambda: m.data(m.index(1), TextRole) == "x" * 200, timeout=2000)
    assert m.flushes < 10  # 200 tokens, a handful of repaints
    assert set(changed) == {(1, 1)}


def test_chat_list_and_search_proxy(qtmodeltester, tmp_path: Path) -> None:
    store = ChatStore(tmp_path / "c.sqlite3")
    a = store.create_chat("Cooking")
    store.add_message(a, None, "user", "boil an egg")
    b = store.create_chat("Rust")
    store.add_message(b, None, "user", "lifetimes")
    src = ChatListModel(store)
    proxy = ChatFilterProxy()
    proxy.setSourceModel(src)
    qtmodeltester.check(src)
    qtmodeltester.check(proxy)
    assert src.rowCount() == 2 and src.data(src.index(0), Qt.ItemDataRole.DisplayRole) == "Rust"
    proxy.set_search("egg", store)
    assert proxy.rowCount() == 1 and proxy.index(0, 0).data(ChatIdRole) == a
    proxy.set_search("rust", store)  # titles too
    assert proxy.rowCount() == 1 and proxy.index(0, 0).data(ChatIdRole) == b
    proxy.set_search("", store)
    assert proxy.rowCount() == 2
    qtmodeltester.check(proxy)



def test_first_token_after_a_pause_shows_at_once_then_coalesces(qtbot) -> None:
    m = ChatModel()
    m.append("assistant", "", state="streaming")
    m.append_token("a")
    assert m.flushes == 1 and m.data(m.index(0), TextRole) == "a"  # no timer wait for the first token
    for _ in range(50):
        m.append_token("b")
    assert m.flushes == 1  # the rest waits for the interval
    qtbot.waitUntil(lambda: m.data(m.index(0), TextRole) == "a" + "b" * 50, timeout=2000)
    assert m.flushes == 2
