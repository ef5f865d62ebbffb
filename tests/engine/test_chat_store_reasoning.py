"""A reasoning model's thinking in saved chats: its own column (migrated into older databases), search, exports."""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from desktop.engine.chats.store import SCHEMA_VERSION, ChatStore

# The version-1 schema as it shipped (content only, indexed by FTS5 over content).
_V1 = """
CREATE TABLE chats (id INTEGER PRIMARY KEY, title TEXT NOT NULL, created REAL NOT NULL, updated REAL NOT NULL,
    current_leaf INTEGER);
CREATE TABLE messages (id INTEGER PRIMARY KEY, chat_id INTEGER NOT NULL REFERENCES chats(id) ON DELETE CASCADE,
    parent_id INTEGER REFERENCES messages(id) ON DELETE CASCADE, role TEXT NOT NULL, content TEXT NOT NULL DEFAULT '',
    state TEXT NOT NULL DEFAULT 'done', created REAL NOT NULL, updated REAL NOT NULL, provenance TEXT, stats TEXT);
CREATE TABLE file_hashes (path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
    sha256 TEXT NOT NULL);
CREATE VIRTUAL TABLE messages_fts USING fts5(content, content='messages', content_rowid='id');
CREATE TRIGGER messages_ai AFTER INSERT ON messages BEGIN
    INSERT INTO messages_fts(rowid, content) VALUES (new.id, new.content);
END;
CREATE TRIGGER messages_au AFTER UPDATE OF content ON messages BEGIN
    INSERT INTO messages_fts(messages_fts, rowid, content) VALUES ('delete', old.id, old.content);
    INSERT INTO messages_fts(rowid, content) VALUES (new.id, new.content);
END;
INSERT INTO chats VALUES (1, 'old chat', 1.0, 1.0, 2);
INSERT INTO messages VALUES (1, 1, NULL, 'user', 'what about penguins', 'done', 1.0, 1.0, NULL, NULL);
INSERT INTO messages VALUES (2, 1, 1, 'assistant', 'Penguins live in the south.', 'done', 1.0, 1.0, NULL, NULL);
PRAGMA user_version=1;
"""


def _answer(store: ChatStore) -> tuple[int, int]:
    cid = store.create_chat("birds")
    uid = store.add_message(cid, None, "user", "Say hi.")
    aid = store.add_message(cid, uid, "assistant", "", state="streaming")
    store.journal(aid, "Hi", reasoning="Hmm, the user greets me", force=True)
    assert store.message(aid).reasoning == "Hmm, the user greets me"  # journaled while streaming
    store.finish_message(aid, "Hi there!", "done", reasoning="Hmm, the user greets me with pelicans",
                         stats={"thinking_s": 3.4, "finish_reason": "stop"})
    return cid, aid


def test_thinking_is_saved_apart_from_the_answer(tmp_path: Path) -> None:
    store = ChatStore(tmp_path / "c.sqlite3")
    cid, aid = _answer(store)
    m = store.message(aid)
    assert (m.content, m.reasoning) == ("Hi there!", "Hmm, the user greets me with pelicans")
    assert [x.reasoning for x in store.thread(cid)] == ["", "Hmm, the user greets me with pelicans"]


def test_a_version_1_database_is_migrated_and_stays_searchable(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    db = sqlite3.connect(path)
    db.executescript(_V1)
    db.close()
    store = ChatStore(path)
    assert store.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 2
    old = store.message(2)
    assert (old.content, old.reasoning) == ("Penguins live in the south.", "")
    assert {h.message_id for h in store.search("penguins")} == {1, 2}  # the index was rebuilt over old rows
    _cid, aid = _answer(store)  # new answers in the migrated file keep their thinking, and it is searchable
    hits = store.search("pelicans")
    assert [(h.message_id, h.in_reasoning) for h in hits] == [(aid, True)]
    store.close()
    again = ChatStore(path)  # opening it again migrates nothing twice
    assert again.message(aid).reasoning.endswith("pelicans")


def test_search_finds_the_thinking_and_says_so(tmp_path: Path) -> None:
    store = ChatStore(tmp_path / "c.sqlite3")
    _cid, aid = _answer(store)
    hit = store.search("pelicans", marks=("\x01", "\x02"))
    assert len(hit) == 1 and hit[0].message_id == aid and hit[0].in_reasoning
    assert "\x01pelicans\x02" in hit[0].snippet
    answer = store.search("there")
    assert [(h.message_id, h.in_reasoning) for h in answer] == [(aid, False)]
    store.fts = False  # the LIKE fallback says the same
    assert [(h.message_id, h.in_reasoning) for h in store.search("pelicans")] == [(aid, True)]
    assert [(h.message_id, h.in_reasoning) for h in store.search("there!")] == [(aid, False)]


def test_exports_include_the_thinking_marked(tmp_path: Path) -> None:
    store = ChatStore(tmp_path / "c.sqlite3")
    cid, aid = _answer(store)
    data = store.export_json(cid)
    ans = next(m for m in data["messages"] if m["id"] == aid)
    assert ans["content"] == "Hi there!" and ans["reasoning"] == "Hmm, the user greets me with pelicans"
    assert "reasoning" not in data["messages"][0]  # the user's message has none
    json.dumps(data)
    md = store.export_markdown(cid)
    section = "<details><summary>Thinking (3 s)</summary>\n\n> Hmm, the user greets me with pelicans\n\n</details>"
    assert section in md
    assert md.index(section) < md.index("\nHi there!\n")  # before the answer, which is not quoted
    assert "> Hi there!" not in md
