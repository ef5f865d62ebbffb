"""The chat session controller: which chat is open, what the engine is writing, and where it is saved. GUI thread.

Every chat lives in the chat store (SQLite). A user message is written before its generation is
requested; the answer's row is created at once (state "streaming") and journaled while tokens arrive,
whichever chat is on screen, so neither a crash of the app nor of the engine loses what was generated.
The session owns no widgets: it fills the :class:`ChatModel` the chat view shows and tells the window what
changed through signals.
"""
from __future__ import annotations

import dataclasses
import itertools
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Signal

from desktop.engine.chats.store import ChatStore
from desktop.engine.inference import protocol as P
from desktop.ui.chat.message_model import ChatMessage, ChatModel, ProvenanceRole
from desktop.ui.chat.model_hash import ModelHasher
from desktop.ui.chat.stream import (
    Overrides,
    SendContext,
    StreamState,
    images_for,
    no_vision_reason,
    thinking_settings,
)
from desktop.ui.engine_adapter import EngineAdapter

if TYPE_CHECKING:  # the stage is handed in (set_tool_send): the session itself opens no dialog
    from desktop.ui.chat.tool_send import ToolSend

SAMPLING_KEYS = ("temperature", "top_p", "top_k", "min_p", "repeat_penalty", "max_tokens")
_send_ids = itertools.count(1)


class ChatSession(QObject):
    chat_changed = Signal(object)  # the open chat id (None: a new, unsaved chat)
    chats_changed = Signal()  # titles or order changed: the list must refresh
    busy_changed = Signal(bool)
    stream_progress = Signal(object)  # StreamState, after each token chunk of the shown chat
    finished = Signal(object)  # P.Finished of the session's request (stats)
    failed = Signal(object)  # error dict of the session's request
    editing_changed = Signal(object)  # the user message being edited, or None
    notice = Signal(str)  # one sentence for the status line

    def __init__(self, adapter: EngineAdapter, chats: ChatStore, model: ChatModel, parent: QObject | None = None
                 ) -> None:
        super().__init__(parent)
        self.adapter = adapter
        self.chats = chats
        self.model = model
        self.loaded: P.Loaded | None = None
        self.model_name: str | None = None  # the loaded model's one name (the library's, following a rename)
        self.chat_id: int | None = None
        self.stream: StreamState | None = None
        self.editing: int | None = None
        self.overrides = Overrides()
        self._hasher = ModelHasher(chats, self)
        # The attachment and tool stage of a send (set_tool_send), when the window has one.
        self.tool_send: ToolSend | None = None
        self.attachments: list[Any] = []  # the files to put into the next message's prompt
        adapter.tokens_counted.connect(self._on_count)
        adapter.token_received.connect(self._on_token)
        adapter.reasoning_received.connect(self._on_reasoning)
        adapter.generation_finished.connect(self._on_finished)
        adapter.generation_failed.connect(self._on_failed)

    def set_tool_send(self, stage: ToolSend) -> None:
        """The stage that fits attachments into the prompt and runs MCP tools; it reports through signals."""
        self.tool_send = stage
        stage.send_plain.connect(self._send_prepared)
        stage.text.connect(self._on_stage_text)
        stage.reasoning.connect(self._on_stage_reasoning)
        stage.tool_calls.connect(self._on_tool_calls)
        stage.done.connect(self._on_stage_done)
        stage.failed.connect(self._on_stage_failed)
        stage.notice.connect(self.notice)

    # ------------------------------------------------------------------ chats

    def new_chat(self) -> None:
        self.cancel_edit()
        self.chat_id = None
        self.model.set_messages([])
        self.chat_changed.emit(None)

    def open_chat(self, chat_id: int, leaf: int | None = None) -> None:
        """Show ``chat_id``; with ``leaf`` (a message anywhere in its tree) switch to the branch holding it."""
        self.cancel_edit()
        self.chat_id = chat_id
        if leaf is not None and self.chats.message(leaf) is not None:
            self.chats.set_current_leaf(chat_id, self.chats.leaf_under(leaf))
        self.show_thread()
        self.chat_changed.emit(chat_id)

    def show_thread(self) -> None:
        msgs = self.chats.thread(self.chat_id) if self.chat_id is not None else []
        st = self.stream
        dropped: set[int] = set()
        out: list[ChatMessage] = []
        prev_model: str | None = None
        for m in msgs:
            text, state, reasoning = m.content, m.state, m.reasoning
            if st and m.id == st.msg_id:
                text, state, reasoning = st.text, "streaming", st.reasoning  # fresher than the journal
            if m.role == "assistant":
                dropped = set(m.stats.get("dropped_ids", [])) if m.stats else dropped
                name = m.provenance.get("profile_name") if m.provenance else None
                if name and prev_model and name != prev_model:
                    # A small marker row where the chat switched models (not a message: never sent).
                    out.append(ChatMessage("marker", f"Switched to {name}", "done"))
                prev_model = name or prev_model
            thought = st.thinking_s if st and m.id == st.msg_id else (m.stats or {}).get("thinking_s")
            out.append(ChatMessage(m.role, text, state, m.id, (m.sibling_index, m.sibling_count),
                                   False, m.provenance, m.stats, reasoning, thought))
        for cm in out:
            cm.dimmed = cm.id in dropped
        self.model.set_messages(out)

    def delete_chat(self, chat_id: int) -> bool:
        if self.stream and self.stream.chat_id == chat_id:
            return False
        self.chats.delete_chat(chat_id)
        if self.chat_id == chat_id:
            self.new_chat()
        self.chats_changed.emit()
        return True

    def rename_chat(self, chat_id: int, title: str) -> None:
        self.chats.rename_chat(chat_id, title)
        self.chats_changed.emit()

    # ------------------------------------------------------------------ editing, branches

    def edit_message(self, message_id: int) -> str | None:
        """Start editing a user message; returns its text for the input box (None when not allowed)."""
        if self.stream:
            return None
        m = self.chats.message(message_id)
        if m is None or m.role != "user":
            return None
        self.editing = message_id
        self.editing_changed.emit(message_id)
        return m.content

    def cancel_edit(self) -> None:
        was = self.editing
        self.editing = None
        if was is not None:
            self.editing_changed.emit(None)

    def switch_branch(self, message_id: int, step: int) -> bool:
        if self.stream:
            return False
        if self.chats.switch_branch(message_id, step) is None:
            return False
        self.show_thread()
        return True

    def last_user_message(self) -> int | None:
        return next((m.id for m in reversed(self.model.messages) if m.role == "user"), None)

    def last_answer_text(self) -> str | None:
        return next((m.text for m in reversed(self.model.messages) if m.role == "assistant"), None)

    # ------------------------------------------------------------------ sending

    def send(self, text: str, images: list[dict[str, Any]] | None = None) -> bool:
        """Save the user message, then ask the engine for the answer. False when nothing was sent.

        ``images`` (stored by content hash: ``image_input.Picture.as_dict``) go with the message, in its
        provenance; a model known to have no vision refuses them with one sentence (``failed``)."""
        text = text.strip()
        if not text or self.stream or self.adapter.profile is None:
            return False
        if images and self.loaded is not None and not self.loaded.vision:
            self.failed.emit({"code": "image_error", "message": no_vision_reason(self.model_name, True)})
            return False
        if self.chat_id is None:
            first = text.splitlines()[0]
            self.chat_id = self.chats.create_chat(first[:48] + ("…" if len(first) > 48 else ""))
            self.chat_changed.emit(self.chat_id)
        if self.editing is not None:
            edited = self.chats.message(self.editing)
            parent = edited.parent_id if edited else None
        else:
            parent = self._last_real_id()
        # The files sent with it are named in its provenance: the message shows them, now and when reopened.
        prov = {"attachments": [{"name": a.name, "kind": a.kind, "tokens": a.tokens, "size": a.size}
                                for a in self.attachments]} if self.attachments else None
        if images:
            prov = {**(prov or {}), "images": list(images)}
        uid = self.chats.add_message(self.chat_id, parent, "user", text, provenance=prov)  # on disk before generating
        if self.editing is None and parent == self._last_real_id():
            self.model.append("user", text, id=uid, provenance=prov or {})  # cheaper than re-rendering the chat
        self.cancel_edit()
        self._generate()
        self.chats_changed.emit()
        return True

    def _last_real_id(self) -> int | None:
        return next((m.id for m in reversed(self.model.messages) if m.id is not None), None)

    def regenerate(self, message_id: int | None = None) -> bool:
        """A new answer to the user message before the last answer; the old one stays as a branch."""
        real = [m for m in self.model.messages if m.id is not None]
        if self.stream or not real:
            return False
        last = real[-1]
        if (message_id is not None and last.id != message_id) or last.role != "assistant":
            return False
        m = self.chats.message(last.id)
        if m is None or m.parent_id is None:
            return False
        self.chats.set_current_leaf(self.chat_id, m.parent_id)
        self._generate()
        return True

    def _generate(self) -> None:
        """Start an answer to the chat's current leaf (a user message)."""
        leaf = self.chats.chat(self.chat_id).current_leaf
        # The send's one request: its settings are the provenance, the tool stage's base and what is sent.
        profile = self.request_profile()
        req = self.adapter.request_for(profile, **self.overrides.sampling)
        prov = self.provenance(req)
        msg_id = self.chats.add_message(self.chat_id, leaf, "assistant", "", state="streaming", provenance=prov)
        if self._last_real_id() == leaf:
            before = next((m for m in reversed(self.model.messages) if m.role == "assistant"), None)
            name = prov.get("profile_name")
            if before is not None and name and before.provenance.get("profile_name") not in (None, name):
                self.model.append("marker", f"Switched to {name}")  # the chat changed models here
            self.model.append("assistant", "", "streaming", id=msg_id, provenance=prov)
        else:  # a regeneration or an edit: a new branch, shown with its < n/m > switcher
            self.show_thread()
        msgs = [m for m in self.model.messages[:-1] if m.role in ("user", "assistant") and m.text]
        # An earlier answer's thinking goes back with it: the model's template decides whether the model sees it.
        history = [{"role": m.role, "content": m.text, **({"reasoning": m.reasoning} if m.reasoning else {}),
                    **images_for(m.provenance, self.loaded)} for m in msgs]
        atts, self.attachments = self.attachments, []
        st = self.stream = StreamState(f"send-{next(_send_ids)}", self.chat_id, msg_id, [m.id for m in msgs],
                                       time.monotonic(), request=req)
        self.model.messages[-1].state = "streaming"
        ts = self.tool_send
        if ts is not None and ts.handles(self.chat_id, atts):
            ld = self.loaded
            ctx = SendContext(self.adapter,
                              (ld.n_ctx if ld and ld.n_ctx else None) or profile.context.default,
                              req.max_tokens or 0, ld.model_path if ld else None)
            ts.start(st.rid, self.chat_id, history, atts, profile, req, ctx)
        else:
            self._send_prepared(st.rid, history, {})
        self.busy_changed.emit(True)

    def _send_prepared(self, rid: str, messages: list[dict[str, Any]], extra_prov: dict[str, Any]) -> None:
        """The engine request of the send ``rid``: the one place a chat message reaches the adapter."""
        st = self.stream
        if not st or st.rid != rid:
            return
        st.extra_prov.update(extra_prov)
        assert st.request is not None
        st.engine_rid = self.adapter.submit(dataclasses.replace(st.request, messages=messages))

    def request_profile(self) -> Any:
        """The loaded profile with this chat's system prompt and thinking settings (from the settings panel)."""
        p = self.adapter.profile
        o = self.overrides
        if p is None:
            return p
        if o.system_prompt is not None:
            p = dataclasses.replace(p, prompt=dataclasses.replace(p.prompt, system_prompt=o.system_prompt))
        if o.reasoning:
            p = dataclasses.replace(p, reasoning=dataclasses.replace(p.reasoning, **o.reasoning))
        return p

    def stop(self) -> None:
        if self.tool_send is not None and self.tool_send.active:
            self.tool_send.stop()
        else:
            self.adapter.stop_requested()

    def hash_later(self, path: str) -> None:
        """sha256 of the model for provenance: once per file, off the GUI thread (model_hash.py)."""
        self._hasher.hash_later(path)

    def provenance(self, gen: P.Generate | None = None) -> dict[str, Any]:
        """What an answer records about how it was made; ``gen``: the send's request (default: the one the next
        message would make)."""
        p = self.adapter.profile
        ld = self.loaded
        if gen is None:
            gen = self.adapter.request_for(self.request_profile(), **self.overrides.sampling)
        path = ld.model_path if ld and ld.model_path else ""
        resolved = str(Path(path).resolve()) if path else ""
        return {
            "profile_id": p.id if p else None, "profile_name": self.model_name or (p.name if p else None),
            "model_file": os.path.basename(path) or None, "model_path": resolved or None,
            "sha256": self.chats.cached_sha256(resolved) if resolved else None,
            "quant": ld.quant if ld else (p.source.recommended_quant if p else None),
            "sampling": {k: getattr(gen, k) for k in SAMPLING_KEYS}, "seed": gen.seed,
            "llama_cpp_version": ld.llama_cpp_version if ld else None,
            "backend": ld.backend if ld else None, "n_ctx": ld.n_ctx if ld else None,
            **thinking_settings(gen.prompt_spec, ld),
        }

    def stream_shown(self, st: StreamState | None = None) -> bool:
        st = st or self.stream
        return bool(st and self.model.messages and self.model.messages[-1].id == st.msg_id)

    # ------------------------------------------------------------------ engine events

    def _ours(self, engine_rid: str) -> StreamState | None:
        st = self.stream
        return st if st is not None and st.engine_rid is not None and st.engine_rid == engine_rid else None

    def _on_count(self, rid: str, n: int) -> None:
        st = self._ours(rid)
        if not st:
            return
        if st.t_first is None:
            st.t_first = time.monotonic()
            st.first_tokens = n
        st.tokens += n

    def _on_token(self, rid: str, text: str) -> None:
        st = self._ours(rid)
        if st:
            self._append(st, text)

    def _on_reasoning(self, rid: str, text: str) -> None:
        st = self._ours(rid)
        if st:
            self._append(st, text, thinking=True)

    def _on_stage_text(self, rid: str, text: str) -> None:
        st = self.stream
        if st and st.rid == rid:
            self._append(st, text)

    def _on_stage_reasoning(self, rid: str, text: str) -> None:
        st = self.stream
        if st and st.rid == rid:
            self._append(st, text, thinking=True)

    def _append(self, st: StreamState, text: str, thinking: bool = False) -> None:
        now = time.monotonic()
        if st.t_first is None:  # a client that counts no tokens: chunks then
            st.t_first, st.first_tokens = now, 1
            st.tokens = 1
        shown = self.stream_shown(st)
        if thinking:
            st.t_think = now if st.t_think is None else st.t_think
            st.reasoning += text
        else:
            if st.t_think is not None and st.thinking_s is None and text:
                st.thinking_s = now - st.t_think  # the answer began: the thinking block folds to this time
                if shown:
                    self.model.set_thinking_time(st.thinking_s)
            st.text += text
        self.chats.journal(st.msg_id, st.text, reasoning=st.reasoning)  # throttled to ~2 writes a second
        if shown:
            if thinking:
                self.model.append_reasoning(text)
            else:
                self.model.append_token(text)
            self.stream_progress.emit(st)

    def _finish(self, state: str, text: str, stats: dict[str, Any] | None, reasoning: str | None = None
                ) -> StreamState:
        st = self.stream
        assert st is not None
        self.stream = None
        reasoning = st.reasoning if reasoning is None else reasoning
        if st.t_think is not None and st.thinking_s is None:
            st.thinking_s = time.monotonic() - st.t_think  # it never got to an answer
        if stats is not None and st.thinking_s is not None:
            stats["thinking_s"] = round(st.thinking_s, 2)
        m = self.chats.message(st.msg_id)
        prov = dict(m.provenance) if m else {}
        for k, v in self.provenance(st.request).items():  # the model may have finished loading after the send
            if v is not None and k not in ("sampling", "seed", "enable_thinking", "reasoning_effort"):
                prov[k] = v
        if stats and stats.get("seed", -1) >= 0:
            prov["seed"] = stats["seed"]
        prov.update(st.extra_prov)
        self.chats.finish_message(st.msg_id, text, state, stats=stats, provenance=prov, reasoning=reasoning)
        if self.stream_shown(st):
            self.model.finish_last(state, text, stats=stats, provenance=prov, reasoning=reasoning)
            if stats is not None:
                self.model.set_dimmed(set(stats.get("dropped_ids", [])))
        self.busy_changed.emit(False)
        return st

    def _on_finished(self, rid: str, ev: P.Finished) -> None:
        st = self._ours(rid)
        if not st:
            return
        dropped_ids = [st.sent_ids[i] for i in ev.dropped if 0 <= i < len(st.sent_ids)]
        stats = {**ev.stats.__dict__, "finish_reason": ev.finish_reason, "dropped_ids": dropped_ids}
        if ev.stopped_thinking:  # out of tokens while thinking, no answer: said so, never an empty success
            stats["stopped_thinking"] = True
        shown = self.stream_shown(st)
        self._finish("cancelled" if ev.finish_reason == "cancelled" else "done", ev.text, stats,
                     reasoning=ev.reasoning or st.reasoning)
        if shown:
            self.finished.emit(ev)

    def _on_failed(self, rid: str, error: dict[str, Any]) -> None:
        st = self._ours(rid)
        if st:
            self._fail(error)

    def _on_stage_failed(self, rid: str, error: dict[str, Any]) -> None:
        st = self.stream
        if st and st.rid == rid:
            self._fail(error)

    def _fail(self, error: dict[str, Any]) -> None:
        self._finish("error", self.stream.text if self.stream else "", None)  # the partial answer (and thinking) stays
        self.failed.emit(error)

    def _on_tool_calls(self, rid: str, calls: list[dict[str, Any]]) -> None:
        st = self.stream
        if not st or st.rid != rid:
            return
        st.extra_prov["tool_calls"] = calls
        if self.stream_shown(st):
            self.model.flush()
            m = self.model.messages[-1]
            m.provenance = {**m.provenance, "tool_calls": calls}
            idx = self.model.index(len(self.model.messages) - 1)
            self.model.dataChanged.emit(idx, idx, [ProvenanceRole])

    def _on_stage_done(self, rid: str, result: Any, extra_prov: dict[str, Any]) -> None:
        """A tool loop's answer: saved and shown like a plain one, with its calls and citations."""
        st = self.stream
        if not st or rid != st.rid:
            return
        st.extra_prov = {**st.extra_prov, **extra_prov}
        stats = {**(result.stats.__dict__ if result.stats else {}), "finish_reason": result.finish_reason,
                 "dropped_ids": [], "tool_rounds": result.rounds}
        if getattr(result, "stopped_thinking", False):
            stats["stopped_thinking"] = True
        shown = self.stream_shown(st)
        text = result.text or st.text
        self._finish("cancelled" if result.finish_reason == "cancelled" else "done", text, stats,
                     reasoning=getattr(result, "reasoning", "") or st.reasoning)
        if shown and result.stats is not None:
            self.finished.emit(P.Finished(rid, text, result.finish_reason, result.stats))

    def finish_on_close(self) -> None:
        st = self.stream
        if st:
            self.adapter.stop_requested()  # else the engine finishes the answer before it reads Shutdown
            self.chats.finish_message(st.msg_id, st.text, "cancelled", reasoning=st.reasoning)
            self.stream = None
