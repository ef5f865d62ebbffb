"""Sending a message with attachments and/or MCP tools: the work the plain send does not do. GUI thread.

The chat session asks :meth:`ToolSend.handles` before it sends; when the message has attachments or its chat
has MCP servers enabled, :meth:`ToolSend.start` takes over the answer:

1. on a worker (never disk, tokenizer or server start-up on the GUI thread): the attachments are fitted into
   the context left by the history (``build_context`` / ``with_context``), and the chat's MCP servers are
   started and listed (``ToolBox.from_manager``);
2. back on the GUI thread: with tools, a :class:`ToolLoopRunner` runs the answer (each call asks through the
   :class:`PermissionBroker` dialog); without, the plain engine request is sent with the new messages.

Streamed text, tool events, the result and errors all go back to the session (``on_token``, ``on_tool_event``,
``on_tool_result``, ``on_failed``) under one request id, so the answer grows and is saved exactly like a plain one.
One :class:`McpManager` lives as long as this object (``close()`` on exit).
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from PySide6.QtCore import QObject, Qt
from PySide6.QtWidgets import QWidget

from desktop.engine.chats.attachments import Attachment, build_context, engine_token_counter, with_context
from desktop.engine.errors import AppError
from desktop.engine.library import registry as models
from desktop.engine.tools.config import ChatServerChoice, load_config
from desktop.engine.tools.loop import ToolBox, ToolLoop, ToolLoopResult, turns_for
from desktop.engine.tools.mcp_client import McpManager
from desktop.engine.tools.permissions import PermissionPolicy

from . import workers
from .views.tool_permission import PermissionBroker
from .views.tool_runner import ToolLoopRunner, tool_provenance

if TYPE_CHECKING:
    from .session import ChatSession

_ids = itertools.count(1)
MIN_CONTEXT_TOKENS = 64  # below this the attachments are left out rather than cut to nothing


@dataclass
class Prepared:
    """What the worker made ready: the messages to send, the citations to save, the tools (None: no tools)."""

    messages: list[dict[str, Any]]
    citations: list[Any] = field(default_factory=list)
    toolbox: ToolBox | None = None
    server_errors: dict[str, str] = field(default_factory=dict)


def _error_dict(exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, AppError):
        return exc.to_dict()
    return AppError(f"the tools could not run: {exc}").to_dict()


class ToolSend(QObject):
    def __init__(self, session: "ChatSession", window: QWidget | None = None,
                 manager_factory: Callable[[], McpManager] | None = None) -> None:
        super().__init__(window)
        self.session = session
        self._factory = manager_factory or (lambda: McpManager(load_config()))
        self.manager: McpManager | None = None
        self.policy = PermissionPolicy()
        self.broker = PermissionBroker(window)  # its dialogs are modal to the window
        self.choice = ChatServerChoice()
        self.runner: ToolLoopRunner | None = None
        self.rid: str | None = None
        self._citations: list[Any] = []
        self._cancelled = False
        self._jobs: list[workers.Job] = []

    # ------------------------------------------------------------------ the MCP manager

    def get_manager(self) -> McpManager:
        if self.manager is None:
            self.manager = self._factory()  # reads the config file once, starts nothing yet
        return self.manager

    def reload(self) -> None:
        """The servers changed (the Tools dialog saved): the next send uses a new manager."""
        if self.manager is not None:
            old, self.manager = self.manager, None
            self._jobs.append(workers.start(old.close, lambda _r: None, lambda _e: None, self))

    def close(self) -> None:
        if self.runner is not None:
            self.stop()
        if self.manager is not None:
            self.manager.close()
            self.manager = None

    def servers_for(self, chat_id: int | None) -> list[str]:
        if chat_id is None:
            return []
        try:
            return self.choice.enabled(chat_id, self.get_manager().configs)
        except AppError:
            return []  # a broken config is reported by the Tools dialog, not on every message

    # ------------------------------------------------------------------ one answer

    def handles(self, chat_id: int | None, attachments: list[Attachment]) -> bool:
        return bool(attachments) or bool(self.servers_for(chat_id))

    @property
    def active(self) -> bool:
        return self.rid is not None

    def start(self, history: list[dict[str, Any]], attachments: list[Attachment], profile: Any,
              sampling: dict[str, Any]) -> str:
        """Begin the answer; returns its request id (the session's ``StreamState.rid``)."""
        s = self.session
        rid = self.rid = f"tools-{next(_ids)}"
        self._cancelled = False
        self._citations = []
        servers = self.servers_for(s.chat_id)
        manager = self.get_manager() if servers else None
        client = s.adapter.client
        loaded = s.loaded
        n_ctx = (loaded.n_ctx if loaded and loaded.n_ctx else None) or profile.context.default
        max_tokens = s.adapter.generate_request_preview(**sampling).max_tokens or 0
        question = history[-1]["content"] if history else ""

        def prepare() -> Prepared:  # worker thread
            messages = history
            citations: list[Any] = []
            if attachments:
                count = engine_token_counter(client)
                used = count("\n".join(m.get("content", "") for m in history))
                budget = n_ctx - max_tokens - used - 32  # 32: the chat template's own tokens
                if budget >= MIN_CONTEXT_TOKENS:
                    ctx = build_context(attachments, question, budget, count)
                    messages, citations = with_context(history, ctx), ctx.citations
            toolbox, errors = (ToolBox.from_manager(manager, servers) if manager is not None else (None, {}))
            return Prepared(messages, citations, toolbox if toolbox else None, errors)

        self._jobs.append(workers.start(prepare, lambda p: self._prepared(rid, p, profile, sampling),
                                        lambda exc: self._failed(rid, exc), self))
        return rid

    def _prepared(self, rid: str, prep: Prepared, profile: Any, sampling: dict[str, Any]) -> None:
        if rid != self.rid:
            return
        s = self.session
        self._citations = prep.citations
        for name, err in prep.server_errors.items():
            s.notice.emit(f"Tool server {name} did not start: {err}")
        if self._cancelled:
            self.rid = None
            s.on_tool_result(rid, ToolLoopResult("", "cancelled", [], 0, None, []), tool_provenance(None, prep.citations))
            return
        if prep.toolbox is None:  # attachments only: the plain request, under the engine's own id
            self.rid = None
            real = s.adapter.send_requested(prep.messages, profile=profile, **sampling)
            s.rebind(rid, real, tool_provenance(None, prep.citations))
            return
        model_path = s.loaded.model_path if s.loaded else None
        base = models.generate_request(profile, prep.messages, f"{rid}-gen", **sampling)
        try:
            turns = turns_for(profile, model_path, base)
        except AppError as exc:
            self._failed(rid, exc)
            return
        loop = ToolLoop(s.adapter.client, turns, prep.toolbox, ask=self.broker.ask, policy=self.policy)
        runner = self.runner = ToolLoopRunner(loop, self)
        q = Qt.ConnectionType.QueuedConnection  # lambdas: without it PySide would call them on the pool thread
        runner.signals.text.connect(lambda t: self._text(rid, t), q)
        runner.signals.tool_event.connect(lambda ev: self._event(rid, ev), q)
        runner.signals.finished.connect(lambda res: self._done(rid, res), q)
        runner.signals.failed.connect(lambda exc: self._failed(rid, exc), q)
        runner.start(prep.messages)

    # Signals of the runner (queued onto the GUI thread: the runner lives here).
    def _text(self, rid: str, text: str) -> None:
        if rid == self.rid:
            self.session._on_token(rid, text)

    def _event(self, rid: str, ev: Any) -> None:
        if rid == self.rid:
            self.session.on_tool_event(rid, ev.record)

    def _done(self, rid: str, result: ToolLoopResult) -> None:
        if rid != self.rid:
            return
        self.rid, self.runner = None, None
        self.session.on_tool_result(rid, result, tool_provenance(result, self._citations))

    def _failed(self, rid: str, exc: BaseException) -> None:
        if rid != self.rid:
            return
        self.rid, self.runner = None, None
        self.broker.cancel_all()
        self.session._on_failed(rid, _error_dict(exc))

    def stop(self) -> None:
        """Stop: the loop between tokens or calls, and any question still open (answered "deny")."""
        self._cancelled = True
        if self.runner is not None:
            self.runner.stop()
        self.broker.cancel_all()
