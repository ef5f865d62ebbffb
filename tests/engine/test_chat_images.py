"""Images in saved chats: kept in the data dir by content hash, named in the message, exported beside Markdown and
by hash in JSON; a database of an older schema opens with its chats and takes images too."""
from __future__ import annotations

import hashlib
import json
import sqlite3

from desktop.engine.chats.store import ChatStore
from desktop.engine.vision import images
from tests.fixtures.vision_gguf import make_png


def _chat_with_image(store: ChatStore, tmp_path) -> tuple[int, dict]:
    src = make_png(tmp_path / "red.png", (230, 20, 20))
    data = src.read_bytes()
    stored = images.store(data)
    img = {"sha256": hashlib.sha256(data).hexdigest(), "path": str(stored), "name": "red.png",
           "width": 64, "height": 48}
    c = store.create_chat("Colours")
    u = store.add_message(c, None, "user", "What colour?", provenance={"images": [img]})
    store.add_message(c, u, "assistant", "Red")
    return c, img


def test_images_are_stored_by_hash_in_the_data_dir_and_kept_with_the_message(tmp_path) -> None:
    from desktop.engine import paths

    store = ChatStore(tmp_path / "c.sqlite3")
    c, img = _chat_with_image(store, tmp_path)
    assert img["path"] == str(paths.data_dir() / "images" / f"{img['sha256']}.png")
    # The same picture again is the same file (stored once).
    assert str(images.store((tmp_path / "red.png").read_bytes())) == img["path"]
    store.close()
    reopened = ChatStore(tmp_path / "c.sqlite3")
    first = reopened.thread(c)[0]
    assert first.images == [img] and first.content == "What colour?"
    assert reopened.thread(c)[1].images == []


def test_json_export_names_images_by_hash(tmp_path) -> None:
    store = ChatStore(tmp_path / "c.sqlite3")
    c, img = _chat_with_image(store, tmp_path)
    data = json.loads(json.dumps(store.export_json(c)))
    user = data["messages"][0]
    assert user["images"] == [{"sha256": img["sha256"], "file": f"{img['sha256']}.png", "name": "red.png",
                               "width": 64, "height": 48}]
    assert "images" not in user.get("provenance", {})  # once, not twice
    out = store.export_to(c, "json", tmp_path / "chat.json")
    assert json.loads(out.read_text())["messages"][0]["images"][0]["sha256"] == img["sha256"]


def test_markdown_export_puts_the_images_beside_it(tmp_path) -> None:
    store = ChatStore(tmp_path / "c.sqlite3")
    c, img = _chat_with_image(store, tmp_path)
    (tmp_path / "out").mkdir()
    md_path = store.export_to(c, "md", tmp_path / "out" / "chat-export.md")
    md = md_path.read_text()
    link = f"chat-export_files/{img['sha256']}.png"
    assert f"![red.png]({link})" in md
    assert md.index(link) < md.index("What colour?")  # the picture, then the question (as in the app)
    copied = tmp_path / "out" / link
    assert copied.read_bytes() == (tmp_path / "red.png").read_bytes()
    assert "- images:" not in md  # not repeated in the provenance list
    # A chat without images writes no folder.
    c2 = store.create_chat("Plain")
    store.add_message(c2, None, "user", "hi")
    store.export_to(c2, "md", tmp_path / "out" / "plain.md")
    assert not (tmp_path / "out" / "plain_files").exists()


def test_an_old_database_migrates_and_takes_images(tmp_path) -> None:
    db = tmp_path / "old.sqlite3"
    con = sqlite3.connect(db)
    con.executescript(
        "CREATE TABLE chats (id INTEGER PRIMARY KEY, title TEXT NOT NULL, created REAL NOT NULL, updated REAL"
        " NOT NULL, current_leaf INTEGER);"
        "CREATE TABLE messages (id INTEGER PRIMARY KEY, chat_id INTEGER NOT NULL, parent_id INTEGER, role TEXT"
        " NOT NULL, content TEXT NOT NULL DEFAULT '', state TEXT NOT NULL DEFAULT 'done', created REAL NOT NULL,"
        " updated REAL NOT NULL, provenance TEXT, stats TEXT);"
        "INSERT INTO chats VALUES (1, 'Old', 0, 0, 1);"
        "INSERT INTO messages VALUES (1, 1, NULL, 'user', 'old words', 'done', 0, 0, NULL, NULL);"
        "PRAGMA user_version=1;")
    con.close()
    store = ChatStore(db)
    assert [m.content for m in store.thread(1)] == ["old words"] and store.thread(1)[0].images == []
    assert [h.message_id for h in store.search("words")] == [1]
    c, img = _chat_with_image(store, tmp_path)
    assert store.thread(c)[0].images[0]["sha256"] == img["sha256"]
