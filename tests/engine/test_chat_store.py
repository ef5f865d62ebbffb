"""The SQLite chat store: tree, journaling, crash survival, search, export, sha256 cache."""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from desktop.engine.chats import store as chat_store
from desktop.engine.chats.store import ChatStore


@pytest.fixture
def store(tmp_path: Path) -> ChatStore:
    s = ChatStore(tmp_path / "chats.sqlite3")
    yield s
    s.close()


def test_default_location_is_the_user_data_dir(isolated_dirs: Path) -> None:
    s = ChatStore()
    try:
        assert s.path.is_relative_to(isolated_dirs / "data")
        assert s.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        s.close()


def test_tree_branches_and_switching(store: ChatStore) -> None:
    c = store.create_chat("t")
    u1 = store.add_message(c, None, "user", "first question")
    a1 = store.add_message(c, u1, "assistant", "first answer")
    a1b = store.add_message(c, u1, "assistant", "regenerated answer")
    assert [m.content for m in store.thread(c)] == ["first question", "regenerated answer"]
    last = store.thread(c)[-1]
    assert (last.sibling_index, last.sibling_count) == (1, 2)
    # Edit the first question: a sibling user message with its own answer.
    u1e = store.add_message(c, None, "user", "edited question")
    store.add_message(c, u1e, "assistant", "answer to edit")
    t = store.thread(c)
    assert [m.content for m in t] == ["edited question", "answer to edit"]
    assert (t[0].sibling_index, t[0].sibling_count) == (1, 2)
    leaf = store.switch_branch(u1e, -1)
    assert leaf == a1b  # the newest leaf under the old branch
    assert [m.content for m in store.thread(c)] == ["first question", "regenerated answer"]
    assert store.switch_branch(u1, -1) is None  # already the first
    assert store.switch_branch(a1b, -1) == a1
    assert store.thread(c)[-1].content == "first answer"


def test_journal_is_throttled_and_forced(store: ChatStore, monkeypatch: pytest.MonkeyPatch) -> None:
    c = store.create_chat()
    u = store.add_message(c, None, "user", "q")
    a = store.add_message(c, u, "assistant", "", state="streaming")
    assert store.journal(a, "a")
    assert not store.journal(a, "ab")  # within the interval
    assert store.message(a).content == "a"
    monkeypatch.setattr(chat_store, "JOURNAL_INTERVAL_S", 0.0)
    assert store.journal(a, "abc")
    assert store.journal(a, "abcd", force=True)
    assert store.message(a).content == "abcd"


_CRASHER = """
import os, sys
from desktop.engine.chats.store import ChatStore
s = ChatStore(sys.argv[1])
c = s.create_chat("crash")
u = s.add_message(c, None, "user", "tell me")
a = s.add_message(c, u, "assistant", "", state="streaming")
s.journal(a, "partial answer that was streaming")
os._exit(9)  # no close, no commit hooks: like a crash
"""


def test_a_crash_mid_answer_keeps_the_journaled_text(tmp_path: Path) -> None:
    db = tmp_path / "c.sqlite3"
    root = Path(__file__).resolve().parents[2]
    r = subprocess.run([sys.executable, "-c", _CRASHER, str(db)], cwd=root, capture_output=True)
    assert r.returncode == 9
    s = ChatStore(db)
    try:
        (chat,) = s.chats()
        msgs = s.thread(chat.id)
        assert [m.role for m in msgs] == ["user", "assistant"]
        assert msgs[1].content == "partial answer that was streaming" and msgs[1].state == "streaming"
        assert s.mark_interrupted() == 1
        assert s.thread(chat.id)[1].state == "error"
    finally:
        s.close()


def test_search_fts_across_chats_and_titles(store: ChatStore) -> None:
    a = store.create_chat("Cooking")
    store.add_message(a, None, "user", "How long do I boil an egg?")
    b = store.create_chat("Rust")
    store.add_message(b, None, "user", "Explain the borrow checker")
    assert store.fts
    assert {h.chat_id for h in store.search("egg")} == {a}
    assert {h.chat_id for h in store.search("borrow chec")} == {b}  # prefix terms
    assert {h.chat_id for h in store.search("cook")} == {a}  # title
    assert isinstance(store.search('"unbalanced (x'), list)  # user text never breaks the FTS query
    hit = store.search("egg")[0]
    assert "[egg]" in hit.snippet
    mid = store.thread(a)[0].id
    store.finish_message(mid, "poached salmon", "done")  # the index follows edits
    assert store.search("egg") == [] and {h.chat_id for h in store.search("salmon")} == {a}


def test_search_falls_back_to_like(store: ChatStore) -> None:
    store.fts = False
    a = store.create_chat("x")
    store.add_message(a, None, "user", "100% sure_thing")
    assert {h.chat_id for h in store.search("100%")} == {a}
    assert store.search("nothing") == []


def test_rename_delete_and_order(store: ChatStore) -> None:
    a = store.create_chat("a")
    time.sleep(0.01)
    b = store.create_chat("b")
    assert [c.id for c in store.chats()] == [b, a]
    time.sleep(0.01)
    store.add_message(a, None, "user", "bump")
    assert [c.id for c in store.chats()] == [a, b]
    store.rename_chat(a, "  renamed ")
    assert store.chat(a).title == "renamed"
    store.delete_chat(a)
    assert [c.id for c in store.chats()] == [b]
    assert store.db.execute("SELECT COUNT(*) FROM messages").fetchone()[0] == 0
    assert store.search("bump") == []


def test_export_includes_provenance(store: ChatStore) -> None:
    c = store.create_chat("Export me")
    u = store.add_message(c, None, "user", "hi")
    prov = {"profile_id": "p", "model_file": "m.gguf", "sha256": "ab" * 32, "quant": "Q4_1",
            "sampling": {"temperature": 0.2}, "seed": 42, "llama_cpp_version": "0.3.36"}
    a = store.add_message(c, u, "assistant", "", state="streaming", provenance=prov)
    store.finish_message(a, "hello **there**", "done", stats={"tokens_per_s": 10.0})
    data = store.export_json(c)
    json.dumps(data)
    assert data["messages"][1]["provenance"]["sha256"] == "ab" * 32
    assert data["messages"][1]["stats"]["tokens_per_s"] == 10.0
    md = store.export_markdown(c)
    assert md.startswith("# Export me")
    assert "hello **there**" in md and "seed: `42`" in md and "temperature=0.2" in md and "Q4_1" in md


def test_sha256_is_computed_once_and_cached(store: ChatStore, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    f = tmp_path / "m.gguf"
    f.write_bytes(b"x" * 5000)
    expected = hashlib.sha256(b"x" * 5000).hexdigest()
    c = store.create_chat()
    a = store.add_message(c, None, "assistant", "x", provenance={"model_path": str(f.resolve()), "sha256": None})
    assert store.cached_sha256(f) is None
    assert store.sha256(f) == expected
    assert store.message(a).provenance["sha256"] == expected  # filled in afterwards
    calls = []
    monkeypatch.setattr(chat_store, "hash_file", lambda p: calls.append(p) or "nope")
    assert store.sha256(f) == expected and calls == []
    f.write_bytes(b"y" * 10)  # changed file: hashed again
    assert store.sha256(f) == "nope" and len(calls) == 1
