"""Chats in SQLite: a message tree (edits and regenerations are branches), journaled streaming, provenance,
full-text search, Markdown/JSON export, and a cache of GGUF sha256 digests.

Plain Python, no Qt; runs in the caller's process (the CLI, or the app's GUI process). A :class:`ChatStore` owns
one ``sqlite3`` connection and must be used from the thread that opened it (the GUI thread in the app). The
database is in WAL mode, and a streamed answer is written to its row while it streams (see
:meth:`ChatStore.journal`), so a crash of the app or of the engine keeps what was generated. :func:`hash_file` is
the only slow function; it touches no store, so a worker thread can run it and hand the digest back to the owning
thread (:meth:`ChatStore.remember_sha256`).
"""
from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from desktop.engine import paths
from desktop.engine.chats import export
from desktop.engine.library.registry import hash_file

# 2: messages.reasoning (a reasoning model's thinking, apart from the answer), indexed for search with the content.
SCHEMA_VERSION = 2
JOURNAL_INTERVAL_S = 0.5

_SCHEMA = """
CREATE TABLE IF NOT EXISTS chats (
    id INTEGER PRIMARY KEY,
    title TEXT NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    current_leaf INTEGER
);
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY,
    chat_id INTEGER NOT NULL REFERENCES chats(id) ON DELETE CASCADE,
    parent_id INTEGER REFERENCES messages(id) ON DELETE CASCADE,
    role TEXT NOT NULL,
    content TEXT NOT NULL DEFAULT '',
    reasoning TEXT NOT NULL DEFAULT '',
    state TEXT NOT NULL DEFAULT 'done',
    created REAL NOT NULL,
    updated REAL NOT NULL,
    provenance TEXT,
    stats TEXT
);
CREATE INDEX IF NOT EXISTS messages_chat ON messages(chat_id);
CREATE INDEX IF NOT EXISTS messages_parent ON messages(parent_id);
CREATE TABLE IF NOT EXISTS file_hashes (
    path TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    sha256 TEXT NOT NULL
);
"""

_FTS = """
CREATE VIRTUAL TABLE IF NOT EXISTS messages_fts USING fts5(content, reasoning, content='messages', content_rowid='id');
CREATE TRIGGER IF NOT EXISTS messages_ai AFTER INSERT ON messages BEGIN
    INSERT INTO messages_fts(rowid, content, reasoning) VALUES (new.id, new.content, new.reasoning);
END;
CREATE TRIGGER IF NOT EXISTS messages_ad AFTER DELETE ON messages BEGIN
    INSERT INTO messages_fts(messages_fts, rowid, content, reasoning)
        VALUES ('delete', old.id, old.content, old.reasoning);
END;
CREATE TRIGGER IF NOT EXISTS messages_au AFTER UPDATE OF content, reasoning ON messages BEGIN
    INSERT INTO messages_fts(messages_fts, rowid, content, reasoning)
        VALUES ('delete', old.id, old.content, old.reasoning);
    INSERT INTO messages_fts(rowid, content, reasoning) VALUES (new.id, new.content, new.reasoning);
END;
"""

# Version 1 -> 2: the thinking gets its own column, and the search index (content only before) is rebuilt over both.
_MIGRATE_2 = """
ALTER TABLE messages ADD COLUMN reasoning TEXT NOT NULL DEFAULT '';
DROP TRIGGER IF EXISTS messages_ai;
DROP TRIGGER IF EXISTS messages_ad;
DROP TRIGGER IF EXISTS messages_au;
DROP TABLE IF EXISTS messages_fts;
"""


def default_path() -> Path:
    return paths.data_dir() / "chats.sqlite3"


@dataclass
class Message:
    id: int
    chat_id: int
    parent_id: int | None
    role: str
    content: str
    state: str  # "done", "streaming" (or interrupted by a crash), "cancelled", "error"
    created: float
    provenance: dict[str, Any] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)
    sibling_index: int = 0  # position among the parent's children (branches), 0-based
    sibling_count: int = 1
    reasoning: str = ""  # the thinking of a reasoning model's answer ("" for the others)

    @property
    def images(self) -> list[dict[str, Any]]:
        """The images sent with the message: kept in the data dir by content hash (``vision.images.store``) and
        named in its provenance (``images``: sha256, path, name, width, height), so no schema change was needed."""
        return export.message_images(self.provenance)


@dataclass
class Chat:
    id: int
    title: str
    created: float
    updated: float
    current_leaf: int | None


@dataclass
class SearchHit:
    chat_id: int
    message_id: int
    snippet: str
    in_reasoning: bool = False  # the words were found in the answer's thinking (the GUI opens its block)


def _file_key(path: str | Path) -> tuple[str, int, int]:
    p = Path(path).resolve()
    st = p.stat()
    return str(p), st.st_size, st.st_mtime_ns


class ChatStore:
    """All chats of the user. One connection; use it on the thread that created it."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path else default_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(self.path), isolation_level=None)  # autocommit; explicit transactions
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode survives an app crash (not a power cut) and keeps journaling cheap.
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA foreign_keys=ON")
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        existing = self.db.execute("SELECT 1 FROM sqlite_master WHERE name='messages'").fetchone() is not None
        if existing and version < 2:
            self.db.executescript("BEGIN;" + _MIGRATE_2 + "COMMIT;")
        self.db.executescript(_SCHEMA)
        try:
            self.db.executescript(_FTS)
            self.fts = True
        except sqlite3.OperationalError:  # an SQLite built without FTS5: search falls back to LIKE
            self.fts = False
        if self.fts and existing and version < 2:
            self.db.execute("INSERT INTO messages_fts(messages_fts) VALUES ('rebuild')")
        self.db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        self._journaled: dict[int, float] = {}
        self.journal_writes = 0

    def close(self) -> None:
        self.db.close()

    # ------------------------------------------------------------------ chats

    def create_chat(self, title: str = "New chat") -> int:
        now = time.time()
        cur = self.db.execute("INSERT INTO chats(title, created, updated) VALUES (?, ?, ?)", (title, now, now))
        return int(cur.lastrowid)

    def chats(self) -> list[Chat]:
        """Newest activity first."""
        rows = self.db.execute("SELECT * FROM chats ORDER BY updated DESC, id DESC").fetchall()
        return [Chat(r["id"], r["title"], r["created"], r["updated"], r["current_leaf"]) for r in rows]

    def chat(self, chat_id: int) -> Chat | None:
        r = self.db.execute("SELECT * FROM chats WHERE id=?", (chat_id,)).fetchone()
        return Chat(r["id"], r["title"], r["created"], r["updated"], r["current_leaf"]) if r else None

    def rename_chat(self, chat_id: int, title: str) -> None:
        self.db.execute("UPDATE chats SET title=? WHERE id=?", (title.strip() or "Untitled", chat_id))

    def delete_chat(self, chat_id: int) -> None:
        self.db.execute("DELETE FROM chats WHERE id=?", (chat_id,))

    def set_current_leaf(self, chat_id: int, leaf: int | None) -> None:
        self.db.execute("UPDATE chats SET current_leaf=? WHERE id=?", (leaf, chat_id))

    # ------------------------------------------------------------------ messages

    def add_message(self, chat_id: int, parent_id: int | None, role: str, content: str, *, state: str = "done",
                    provenance: dict[str, Any] | None = None) -> int:
        """Insert a message (committed at once: a user message is on disk before its generation starts)."""
        now = time.time()
        cur = self.db.execute(
            "INSERT INTO messages(chat_id, parent_id, role, content, state, created, updated, provenance)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (chat_id, parent_id, role, content, state, now, now, json.dumps(provenance) if provenance else None))
        mid = int(cur.lastrowid)
        self.db.execute("UPDATE chats SET current_leaf=?, updated=? WHERE id=?", (mid, now, chat_id))
        return mid

    def journal(self, message_id: int, content: str, *, force: bool = False, reasoning: str = "") -> bool:
        """Save a streaming answer's text so far, at most every JOURNAL_INTERVAL_S unless ``force``.

        Returns whether it wrote. Called on every coalesced UI flush; the throttle keeps a 4,000-token answer
        to a few dozen small writes.
        """
        now = time.monotonic()
        if not force and now - self._journaled.get(message_id, 0.0) < JOURNAL_INTERVAL_S:
            return False
        self._journaled[message_id] = now
        self.db.execute("UPDATE messages SET content=?, reasoning=?, updated=? WHERE id=?",
                        (content, reasoning, time.time(), message_id))
        self.journal_writes += 1
        return True

    def finish_message(self, message_id: int, content: str, state: str, *, stats: dict[str, Any] | None = None,
                       provenance: dict[str, Any] | None = None, reasoning: str | None = None) -> None:
        self._journaled.pop(message_id, None)
        sets = ["content=?", "state=?", "updated=?"]
        args: list[Any] = [content, state, time.time()]
        if reasoning is not None:
            sets.append("reasoning=?")
            args.append(reasoning)
        if stats is not None:
            sets.append("stats=?")
            args.append(json.dumps(stats))
        if provenance is not None:
            sets.append("provenance=?")
            args.append(json.dumps(provenance))
        self.db.execute(f"UPDATE messages SET {', '.join(sets)} WHERE id=?", (*args, message_id))

    def mark_interrupted(self) -> int:
        """At start-up: answers left "streaming" by a crash become "error" (their text is kept)."""
        return self.db.execute("UPDATE messages SET state='error' WHERE state='streaming'").rowcount

    def message(self, message_id: int) -> Message | None:
        r = self.db.execute("SELECT * FROM messages WHERE id=?", (message_id,)).fetchone()
        return self._msg(r) if r else None

    def _msg(self, r: sqlite3.Row) -> Message:
        return Message(r["id"], r["chat_id"], r["parent_id"], r["role"], r["content"], r["state"], r["created"],
                       json.loads(r["provenance"]) if r["provenance"] else {},
                       json.loads(r["stats"]) if r["stats"] else {}, reasoning=r["reasoning"] or "")

    def children(self, chat_id: int, parent_id: int | None) -> list[int]:
        if parent_id is None:
            rows = self.db.execute("SELECT id FROM messages WHERE chat_id=? AND parent_id IS NULL ORDER BY id",
                                   (chat_id,))
        else:
            rows = self.db.execute("SELECT id FROM messages WHERE parent_id=? ORDER BY id", (parent_id,))
        return [r[0] for r in rows]

    def leaf_under(self, message_id: int) -> int:
        """The most recently written or viewed leaf below ``message_id``: switching to a branch shows where it
        was left."""
        mid = message_id
        while True:
            r = self.db.execute("SELECT id FROM messages WHERE parent_id=? ORDER BY updated DESC, id DESC LIMIT 1",
                                (mid,)).fetchone()
            if r is None:
                return mid
            mid = r[0]

    def thread(self, chat_id: int, leaf: int | None = None) -> list[Message]:
        """The messages from the root to ``leaf`` (default: the chat's current leaf), with branch positions."""
        if leaf is None:
            c = self.chat(chat_id)
            leaf = c.current_leaf if c else None
        if leaf is None:
            return []
        rows = self.db.execute(
            "WITH RECURSIVE up(id) AS (SELECT ? UNION ALL SELECT m.parent_id FROM messages m JOIN up ON m.id=up.id"
            " WHERE m.parent_id IS NOT NULL) SELECT m.* FROM messages m JOIN up ON m.id=up.id", (leaf,)).fetchall()
        by_id = {r["id"]: r for r in rows}
        out: list[Message] = []
        mid: int | None = leaf
        while mid is not None and mid in by_id:
            out.append(self._msg(by_id[mid]))
            mid = by_id[mid]["parent_id"]
        out.reverse()
        for m in out:
            sibs = self.children(chat_id, m.parent_id)
            m.sibling_count = len(sibs)
            m.sibling_index = sibs.index(m.id) if m.id in sibs else 0
        return out

    def switch_branch(self, message_id: int, step: int) -> int | None:
        """Make the sibling ``step`` away from ``message_id`` current; returns the new leaf (None at an end)."""
        m = self.message(message_id)
        if m is None:
            return None
        sibs = self.children(m.chat_id, m.parent_id)
        i = sibs.index(m.id) + step
        if not 0 <= i < len(sibs):
            return None
        leaf = self.leaf_under(sibs[i])
        # Mark the path as the most recently used one below its fork, so a later switch back comes here.
        now = time.time()
        mid: int | None = leaf
        while mid is not None:
            self.db.execute("UPDATE messages SET updated=? WHERE id=?", (now, mid))
            if mid == sibs[i]:
                break
            mid = self.db.execute("SELECT parent_id FROM messages WHERE id=?", (mid,)).fetchone()[0]
        self.set_current_leaf(m.chat_id, leaf)
        return leaf

    # ------------------------------------------------------------------ search

    def search(self, query: str, limit: int = 200, marks: tuple[str, str] = ("[", "]")) -> list[SearchHit]:
        """Messages (all branches) and chat titles matching ``query``; FTS5 when built in, else LIKE.

        ``marks`` go around each hit in the snippet (the GUI passes control characters it can tell apart
        from the message's own brackets, then escapes the text and highlights between them)."""
        q = query.strip()
        if not q:
            return []
        hits: list[SearchHit] = []
        if self.fts:
            # Each word as a quoted prefix term: user text is never parsed as FTS syntax.
            terms = " ".join('"' + w.replace('"', '""') + '"*' for w in q.split())
            try:
                # A snippet of each column: the answer's when the words are there, else the thinking's.
                rows = self.db.execute(
                    "SELECT m.chat_id, m.id, snippet(messages_fts, 0, ?, ?, '…', 12),"
                    " snippet(messages_fts, 1, ?, ?, '…', 12) FROM messages_fts"
                    " JOIN messages m ON m.id = messages_fts.rowid WHERE messages_fts MATCH ? ORDER BY rank LIMIT ?",
                    (marks[0], marks[1], marks[0], marks[1], terms, limit)).fetchall()
                hits = [SearchHit(r[0], r[1], r[2]) if marks[0] in (r[2] or "") or marks[0] not in (r[3] or "")
                        else SearchHit(r[0], r[1], r[3], in_reasoning=True) for r in rows]
            except sqlite3.OperationalError:
                hits = []
        if not self.fts:
            like = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            rows = self.db.execute("SELECT chat_id, id, content, reasoning FROM messages WHERE content LIKE ? ESCAPE"
                                   " '\\' OR reasoning LIKE ? ESCAPE '\\' ORDER BY id DESC LIMIT ?",
                                   (like, like, limit)).fetchall()
            hits = [SearchHit(r[0], r[1], _snippet(r[2], q, marks=marks)) if q.lower() in r[2].lower()
                    else SearchHit(r[0], r[1], _snippet(r[3], q, marks=marks), in_reasoning=True) for r in rows]
        like = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        for r in self.db.execute("SELECT id, title FROM chats WHERE title LIKE ? ESCAPE '\\'", (like,)):
            hits.append(SearchHit(r[0], 0, r[1]))
        return hits

    # ------------------------------------------------------------------ sha256 cache

    def cached_sha256(self, path: str | Path) -> str | None:
        """The digest of ``path`` if it was hashed before and the file is unchanged (size and mtime)."""
        try:
            key, size, mtime = _file_key(path)
        except OSError:
            return None
        r = self.db.execute("SELECT sha256 FROM file_hashes WHERE path=? AND size=? AND mtime_ns=?",
                            (key, size, mtime)).fetchone()
        return r[0] if r else None

    def remember_sha256(self, path: str | Path, digest: str) -> None:
        """Cache the digest, and fill it into provenance that was recorded before the hash was ready."""
        key, size, mtime = _file_key(path)
        self.db.execute("INSERT OR REPLACE INTO file_hashes(path, size, mtime_ns, sha256) VALUES (?, ?, ?, ?)",
                        (key, size, mtime, digest))
        rows = self.db.execute("SELECT id, provenance FROM messages WHERE provenance LIKE ?",
                               ('%"model_path": ' + json.dumps(key) + "%",)).fetchall()
        for r in rows:
            prov = json.loads(r[1])
            if prov.get("model_path") == key and not prov.get("sha256"):
                prov["sha256"] = digest
                self.db.execute("UPDATE messages SET provenance=? WHERE id=?", (json.dumps(prov), r[0]))

    def sha256(self, path: str | Path) -> str:
        """Cached digest, hashing (slowly, on this thread) only the first time. For the CLI and tests."""
        digest = self.cached_sha256(path)
        if digest is None:
            digest = hash_file(path)
            self.remember_sha256(path, digest)
        return digest

    # ------------------------------------------------------------------ export

    def tree(self, chat_id: int) -> list[Message]:
        """Every message of the chat, every branch, parents before children (depth first, oldest first)."""
        rows = self.db.execute("SELECT * FROM messages WHERE chat_id=? ORDER BY id", (chat_id,)).fetchall()
        kids: dict[int | None, list[Message]] = {}
        for r in rows:
            m = self._msg(r)
            kids.setdefault(m.parent_id, []).append(m)
        out: list[Message] = []
        stack = list(reversed(kids.get(None, [])))
        while stack:
            m = stack.pop()
            sibs = kids.get(m.parent_id, [])
            m.sibling_count, m.sibling_index = len(sibs), sibs.index(m)
            out.append(m)
            stack.extend(reversed(kids.get(m.id, [])))
        return out

    def export_json(self, chat_id: int) -> dict[str, Any]:
        """The whole chat, every branch (:func:`export.chat_json`)."""
        return export.chat_json(self, chat_id)

    def export_markdown(self, chat_id: int) -> str:
        """Every branch as Markdown (:func:`export.chat_markdown`)."""
        return export.chat_markdown(self, chat_id)

    def export_to(self, chat_id: int, fmt: str, path: str | Path) -> Path:
        """Write the export to ``path`` (:func:`export.write_export`: Markdown gets its images beside it)."""
        return export.write_export(self, chat_id, fmt, path)


def _snippet(text: str, q: str, width: int = 40, marks: tuple[str, str] = ("[", "]")) -> str:
    i = text.lower().find(q.lower())
    if i < 0:
        return text[:2 * width]
    start = max(0, i - width)
    end = i + len(q)
    return ("…" if start else "") + text[start:i] + marks[0] + text[i:end] + marks[1] + text[end:end + width]
