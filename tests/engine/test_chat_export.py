"""Export keeps every branch (edits and regenerations), with the branch shown in the app marked."""
from __future__ import annotations

import json

from desktop.engine.chats.store import ChatStore


def _branched(store: ChatStore) -> tuple[int, list[int], list[str]]:
    """A chat of 11 messages: two versions of the first question, three answers to one of them, and so on."""
    c = store.create_chat("Branches")
    texts = [f"message number {i}" for i in range(11)]
    u1 = store.add_message(c, None, "user", texts[0])
    a1 = store.add_message(c, u1, "assistant", texts[1])
    a2 = store.add_message(c, u1, "assistant", texts[2])  # regenerated
    a3 = store.add_message(c, u1, "assistant", texts[3])  # regenerated again
    u2 = store.add_message(c, a3, "user", texts[4])
    store.add_message(c, u2, "assistant", texts[5])
    u1b = store.add_message(c, None, "user", texts[6])  # the first question, edited
    a4 = store.add_message(c, u1b, "assistant", texts[7])
    u3 = store.add_message(c, a4, "user", texts[8])
    store.add_message(c, u3, "assistant", texts[9])
    last = store.add_message(c, a1, "user", texts[10])  # a follow-up on the first answer
    store.set_current_leaf(c, last)
    return c, [u1, a1, last], texts


def test_json_export_has_every_branch_and_marks_the_shown_one(tmp_path) -> None:
    store = ChatStore(tmp_path / "c.sqlite3")
    c, shown, texts = _branched(store)
    data = json.loads(json.dumps(store.export_json(c)))
    assert data["branches"] == "all" and data["shown_path"] == shown
    assert len(data["messages"]) == 11 and sorted(m["content"] for m in data["messages"]) == sorted(texts)
    assert [m["id"] for m in data["messages"] if m["shown"]] == shown
    by_id = {m["id"]: m for m in data["messages"]}
    assert all(m["parent_id"] is None or m["parent_id"] in by_id for m in data["messages"])  # a whole tree
    firsts = [m for m in data["messages"] if m["parent_id"] is None]
    assert [m["version"] for m in firsts] == [[1, 2], [2, 2]]
    # Parents come before their children.
    seen: set[int] = set()
    for m in data["messages"]:
        assert m["parent_id"] is None or m["parent_id"] in seen
        seen.add(m["id"])


def test_markdown_export_has_every_branch_and_marks_the_shown_one(tmp_path) -> None:
    store = ChatStore(tmp_path / "c.sqlite3")
    c, shown, texts = _branched(store)
    md = store.export_markdown(c)
    assert all(t in md for t in texts)  # 11 of 11
    assert "All branches are included" in md
    headings = [line for line in md.splitlines() if line.startswith("## ")]
    assert len(headings) == 11
    marked = [h for h in headings if "★" in h]
    assert len(marked) == 3 and all(f"#{i}" in h for i, h in zip(shown, marked))
    assert any("version 3 of 3" in h for h in headings)


def test_a_chat_without_branches_exports_as_before(tmp_path) -> None:
    store = ChatStore(tmp_path / "c.sqlite3")
    c = store.create_chat("Plain")
    u = store.add_message(c, None, "user", "hi")
    store.add_message(c, u, "assistant", "hello")
    md = store.export_markdown(c)
    assert "★" not in md and "All branches" not in md and "## You" in md and "## Assistant" in md
