"""A saved chat as JSON or Markdown: every branch, with provenance, tool calls, images and a reasoning model's
thinking.

Plain Python, no Qt; runs in the caller's process (the CLI, or the app's GUI process) and reads through the
:class:`~desktop.engine.chats.store.ChatStore` it is given, on the store's thread. The thinking is kept apart from
the answer: JSON has a ``reasoning`` field next to ``content``; Markdown puts it before the answer in a collapsed,
quoted "Thinking" section, so a reader never takes it for the answer. Images a message carried (kept in the data
dir by content hash, ``vision.images.store``) are listed by hash in JSON; Markdown links them as
``![image](<name>_files/<hash>.png)`` and :func:`write_export` copies the files there.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

_WHO = {"user": "You", "assistant": "Assistant", "system": "System"}
_STATE = {"cancelled": " (stopped)", "error": " (interrupted)", "streaming": " (interrupted)"}
# Provenance keys written as their own lines (or sections) rather than in the key list.
_OWN_LINES = ("sampling", "tool_calls", "citations", "images")


def message_images(provenance: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The images a message carried (its provenance's ``images``: sha256, path, name, width, height)."""
    imgs = (provenance or {}).get("images") or []
    return [i for i in imgs if isinstance(i, dict) and i.get("sha256")]


def _image_json(img: dict[str, Any]) -> dict[str, Any]:
    # The hash names the picture; the file name is the one in the data dir (and beside a Markdown export).
    return {"sha256": img["sha256"], "file": Path(str(img.get("path", ""))).name or None,
            **{k: img[k] for k in ("name", "width", "height") if img.get(k) is not None}}


def chat_json(store: Any, chat_id: int) -> dict[str, Any]:
    """The whole chat: every branch, each message with ``shown`` (on the branch the app shows) and
    ``parent_id``, so a reader can rebuild the tree; ``shown_path`` lists the shown branch in order."""
    c = store.chat(chat_id)
    if c is None:
        raise KeyError(chat_id)
    shown = [m.id for m in store.thread(chat_id)]
    on_path = set(shown)
    return {
        "format": "desktop-chat/2", "id": c.id, "title": c.title, "created": c.created,
        "branches": "all", "shown_path": shown,
        "messages": [{"id": m.id, "parent_id": m.parent_id, "role": m.role, "content": m.content,
                      **({"reasoning": m.reasoning} if m.reasoning else {}),
                      "state": m.state, "created": m.created, "shown": m.id in on_path,
                      "version": [m.sibling_index + 1, m.sibling_count],
                      **({"images": [_image_json(i) for i in message_images(m.provenance)]}
                         if message_images(m.provenance) else {}),
                      **({"provenance": {k: v for k, v in m.provenance.items() if k != "images"}}
                         if m.provenance else {}),
                      **({"stats": m.stats} if m.stats else {})} for m in store.tree(chat_id)],
    }


def thinking_markdown(reasoning: str, seconds: float | None = None) -> list[str]:
    """A collapsed "Thinking" section, every line quoted (``<details>`` stays closed in viewers; the quote marks
    it in plain-text ones)."""
    head = "Thinking" + (f" ({seconds:.0f} s)" if seconds is not None else "")
    quoted = [("> " + line) if line.strip() else ">" for line in reasoning.strip("\n").split("\n")]
    return [f"<details><summary>{head}</summary>", "", *quoted, "", "</details>", ""]


def chat_markdown(store: Any, chat_id: int, files_dir: str = "chat-export_files") -> str:
    """Every branch, in tree order; the branch shown in the app is marked, the others say what they answer.
    Images are linked as ``files_dir/<file>`` (:func:`write_export` puts them there)."""
    data = chat_json(store, chat_id)
    msgs = data["messages"]
    branched = any(m["version"][1] > 1 for m in msgs)
    out = [f"# {data['title']}", ""]
    if branched:
        out += ["_All branches are included. Messages of the branch shown in the app are marked ★; "
                "the others are earlier versions (edits and regenerations)._", ""]
    for m in msgs:
        who = _WHO.get(m["role"], m["role"])
        state = _STATE.get(m["state"], "")
        mark = ""
        if branched:
            i, n = m["version"]
            mark = (" ★" if m["shown"] else "") + (f" · version {i} of {n}" if n > 1 else "")
            mark += f" · #{m['id']}" + (f", reply to #{m['parent_id']}" if m["parent_id"] else "")
        prov = m.get("provenance") or {}
        stats = m.get("stats") or {}
        out += [f"## {who}{state}{mark}", ""]
        if m.get("reasoning"):  # the thinking, before the answer (as in the app)
            out += thinking_markdown(m["reasoning"], stats.get("thinking_s"))
        if prov.get("tool_calls"):  # the answer's tool calls, collapsed, before its text (as in the app)
            from desktop.engine.tools.loop import records_markdown
            out.append(records_markdown(prov["tool_calls"]))
        if m.get("images"):
            out += [f"![{_alt(i)}]({files_dir}/{i['file']})" for i in m["images"] if i.get("file")] + [""]
        out += [m["content"], ""]
        if stats.get("stopped_thinking"):
            out += ["_Stopped while thinking: raise max tokens._", ""]
        elif stats.get("finish_reason") == "length":
            out += ["_Cut off at the max tokens limit._", ""]
        if prov.get("citations"):
            out += ["Sources: " + "; ".join(dict.fromkeys(c.get("label", "") for c in prov["citations"])), ""]
        if prov:
            lines = [f"- {k}: `{v}`" for k, v in prov.items() if k not in _OWN_LINES and v not in (None, "")]
            if prov.get("sampling"):
                lines.append("- sampling: " + ", ".join(f"{k}={v}" for k, v in prov["sampling"].items()))
            out += ["<details><summary>Provenance</summary>", "", *lines, "", "</details>", ""]
    return "\n".join(out).rstrip() + "\n"


def _alt(img: dict[str, Any]) -> str:
    name = str(img.get("name") or "image")
    return "".join(ch for ch in name if ch not in "[]\n\r") or "image"


def write_export(store: Any, chat_id: int, fmt: str, path: str | os.PathLike[str]) -> Path:
    """Write the chat to ``path``: ``fmt`` "md" (images copied into ``<stem>_files/`` beside it) or "json".

    OSError when a file cannot be written; an image missing from the data dir is left out of the folder (its link
    and hash stay)."""
    target = Path(path)
    if fmt != "md":
        target.write_text(json.dumps(chat_json(store, chat_id), indent=2, ensure_ascii=False), encoding="utf-8")
        return target
    files = target.with_name(f"{target.stem}_files")
    text = chat_markdown(store, chat_id, files_dir=files.name)
    imgs = {Path(str(i.get("path", ""))) for m in store.tree(chat_id) for i in message_images(m.provenance)}
    present = [p for p in imgs if p.name and p.is_file()]
    if present:
        files.mkdir(parents=True, exist_ok=True)
        for p in present:
            if not (files / p.name).exists():
                shutil.copyfile(p, files / p.name)
    target.write_text(text, encoding="utf-8")
    return target
