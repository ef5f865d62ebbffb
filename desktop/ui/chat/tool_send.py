"""Sending a message with attachments and/or MCP tools: the work the plain send does not do. GUI thread.

The chat session asks :meth:`ToolSend.handles` before it sends; when the message has attachments or its chat
has MCP servers enabled, :meth:`ToolSend.start` takes over the answer:

1. on a worker (never disk, tokenizer or server start-up on the GUI thread): the attachments are fitted into
   the context left by the history (``build_context`` / ``with_context``), and the chat's MCP servers are
   started and listed (``ToolBox.from_manager``);
2. back on the GUI thread: with tools, a :class:`ToolLoopRunner` runs the answer (each call asks through the
   :class:`PermissionBroker` dialog); without, the plain engine request is sent with the new messages.

The stage knows nothing of the session: everything goes back through signals carrying the session's send id
(``send_plain`` hands the prepared messages back for the session's own engine request; ``text``,
``tool_calls``, ``done`` and ``failed`` feed the answer a tool loop writes), so the answer grows and is saved
by the session's one path, like a plain one.
One :class:`McpManager` lives as long as this object (``close()`` on exit). The MCP config and the per-chat server
choice are files: they are read on a worker (``refresh``), at start and whenever the Tools dialog changes them.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import QObject, Qt, Signal

from desktop.engine.chats.attachments import (
    Attachment,
    engine_token_counter,
    fit_attachments,
    with_context,
)
from desktop.engine.errors import AppError
from desktop.engine.inference import protocol as P
from desktop.engine.library import registry
from desktop.engine.tools.config import ChatServerChoice, ServerConfig, enabled_servers, load_config
from desktop.engine.tools.loop import ToolBox, ToolLoop, ToolLoopResult, turns_for
from desktop.engine.tools.mcp_client import McpManager
from desktop.engine.tools.permissions import PermissionPolicy
from desktop.ui.chat.stream import SendContext
from desktop.ui.tools.permission_dialog import PermissionBroker
from desktop.ui.tools.runner import ToolLoopRunner, tool_provenance
from desktop.ui.workers import JobKeeper


@dataclass
class Prepared:
    """What the worker made ready: the messages to send, the citations to save, the tools (None: no tools)."""

    messages: list[dict[str, Any]]
    citations: list[Any] = field(default_factory=list)
    toolbox: ToolBox | None = None
    server_errors: dict[str, str] = field(default_factory=dict)
    turns: Any = None  # how the tool exchange is rendered for this model (reads the GGUF header)


def _error_dict(exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, AppError):
        return exc.to_dict()
    return AppError(f"the tools could not run: {exc}").to_dict()


class ToolSend(QObject):
    send_plain = Signal(str, object, object)  # send id, the messages to send, provenance to add to the answer
    text = Signal(str, str)  # send id, a piece of visible answer text
    reasoning = Signal(str, str)  # send id, a piece of a reasoning model's thinking
    tool_calls = Signal(str, object)  # send id, every call so far (dicts), whenever one starts or ends
    done = Signal(str, object, object)  # send id, ToolLoopResult, provenance to add to the answer
    failed = Signal(str, object)  # send id, error dict
    notice = Signal(str)  # one sentence for the status line

    def __init__(self, broker: PermissionBroker, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.manager: McpManager | None = None
        self.configs: dict[str, ServerConfig] = {}  # as last read by refresh()
        self.chosen: dict[str, list[str]] = {}  # chat id -> the servers it uses (absent: every enabled one)
        self.policy = PermissionPolicy()
        self.broker = broker  # asks before a tool runs (its dialogs are modal to the window that made it)
        self.choice = ChatServerChoice()
        self.runner: ToolLoopRunner | None = None
        self.rid: str | None = None
        self._citations: list[Any] = []
        self._calls: list[dict[str, Any]] = []
        self._cancelled = False
        self._jobs = JobKeeper(self)  # each worker job held until its answer
        self.refresh()

    # ------------------------------------------------------------------ the MCP manager

    def refresh(self) -> None:
        """Read the MCP config and the per-chat choices again, on a worker."""
        choice = self.choice

        def read() -> tuple[dict[str, ServerConfig], dict[str, list[str]]]:
            try:
                configs = load_config()
            except AppError:
                configs = {}  # a broken config is reported by the Tools dialog, not on every message
            return configs, choice.read()

        def done(res: tuple[dict[str, ServerConfig], dict[str, list[str]]]) -> None:
            if res[0] != self.configs and self.manager is not None:
                self._close_manager()  # the servers changed: the next send starts the new ones
            self.configs, self.chosen = res

        self._jobs.start(read, done, lambda _e: None)

    def get_manager(self) -> McpManager:
        if self.manager is None:
            self.manager = McpManager(self.configs)  # starts nothing yet: servers start when first used
        return self.manager

    def manager_for(self, servers: dict[str, ServerConfig]) -> McpManager:
        """The manager for the Tools dialog, which lists the servers in the file it read or just saved."""
        if servers != self.configs:
            self._close_manager()
            self.configs = dict(servers)
        return self.get_manager()

    def _close_manager(self) -> None:
        old, self.manager = self.manager, None
        if old is not None:
            self._jobs.start(old.close, lambda _r: None, lambda _e: None)

    def close(self) -> None:
        if self.runner is not None:
            self.stop()
        if self.manager is not None:
            self.manager.close()
            self.manager = None

    def servers_for(self, chat_id: int | None) -> list[str]:
        """The chat's servers (``enabled_servers``), on what ``refresh`` read (no file I/O on the GUI thread)."""
        return [] if chat_id is None else enabled_servers(self.chosen.get(str(chat_id)), self.configs)

    # ------------------------------------------------------------------ one answer

    def handles(self, chat_id: int | None, attachments: list[Attachment]) -> bool:
        return bool(attachments) or bool(self.servers_for(chat_id))

    @property
    def active(self) -> bool:
        return self.rid is not None

    def start(self, rid: str, chat_id: int | None, history: list[dict[str, Any]], attachments: list[Attachment],
              profile: Any, request: P.Generate, ctx: SendContext) -> None:
        """Begin the answer of the session's send ``rid``; its signals carry that id."""
        self.rid = rid
        self._cancelled = False
        self._citations = []
        self._calls = []
        servers = self.servers_for(chat_id)
        if servers and not registry.is_remote(profile) and any(m.get("images") for m in history):
            # A local model's tool turns are rendered as text, which carries no pictures: the pictures win.
            servers = []
            self.notice.emit("Tools are not offered with pictures in the conversation of a local model; "
                             "it answers from the pictures without them.")
        manager = self.get_manager() if servers else None
        engine, n_ctx, max_tokens, model_path = ctx.engine, ctx.n_ctx, ctx.max_tokens, ctx.model_path

        def prepare() -> Prepared:  # worker thread
            messages = history
            citations: list[Any] = []
            if attachments:  # the one budget rule; no room fails the send (NoRoomForAttachmentsError), as in ask
                ctx = fit_attachments(attachments, history, n_ctx, max_tokens, engine_token_counter(engine))
                messages, citations = with_context(history, ctx), ctx.citations
            toolbox, errors = (ToolBox.from_manager(manager, servers) if manager is not None else (None, {}))
            if not toolbox:
                return Prepared(messages, citations, None, errors)
            base = dataclasses.replace(request, id=f"{rid}-gen", messages=messages)
            return Prepared(messages, citations, toolbox, errors, turns_for(profile, model_path, base))

        self._jobs.start(prepare, lambda p: self._prepared(rid, p, engine),
                                        lambda exc: self._failed(rid, exc))

    def _prepared(self, rid: str, prep: Prepared, engine: Any) -> None:
        if rid != self.rid:
            return
        self._citations = prep.citations
        for name, err in prep.server_errors.items():
            self.notice.emit(f"Tool server {name} did not start: {err}")
        if self._cancelled:
            self.rid = None
            self.done.emit(rid, ToolLoopResult("", "cancelled", [], 0, None, []), tool_provenance(None, prep.citations))
            return
        if prep.toolbox is None:  # attachments only: the session sends the plain request itself
            self.rid = None
            self.send_plain.emit(rid, prep.messages, tool_provenance(None, prep.citations))
            return
        loop = ToolLoop(engine, prep.turns, prep.toolbox, ask=self.broker.ask, policy=self.policy)
        runner = self.runner = ToolLoopRunner(loop, self)
        q = Qt.ConnectionType.QueuedConnection  # lambdas: without it PySide would call them on the pool thread
        runner.signals.text.connect(lambda t: self._text(rid, t), q)
        runner.signals.reasoning.connect(lambda t: self._reasoning(rid, t), q)
        runner.signals.tool_event.connect(lambda ev: self._event(rid, ev), q)
        runner.signals.finished.connect(lambda res: self._done(rid, res), q)
        runner.signals.failed.connect(lambda exc: self._failed(rid, exc), q)
        runner.start(prep.messages)

    # Signals of the runner (queued onto the GUI thread: the runner lives here).
    def _text(self, rid: str, text: str) -> None:
        if rid == self.rid:
            self.text.emit(rid, text)

    def _reasoning(self, rid: str, text: str) -> None:
        if rid == self.rid:
            self.reasoning.emit(rid, text)

    def _event(self, rid: str, ev: Any) -> None:
        if rid != self.rid:
            return
        # A tool call started or ended: the answer shows it (collapsed) at once.
        d = ev.record.to_dict()
        self._calls = [c for c in self._calls if not d.get("id") or c.get("id") != d.get("id")] + [d]
        self.tool_calls.emit(rid, list(self._calls))

    def _done(self, rid: str, result: ToolLoopResult) -> None:
        if rid != self.rid:
            return
        self.rid, self.runner = None, None
        self.done.emit(rid, result, tool_provenance(result, self._citations))

    def _failed(self, rid: str, exc: BaseException) -> None:
        if rid != self.rid:
            return
        self.rid, self.runner = None, None
        self.broker.cancel_all()
        self.failed.emit(rid, _error_dict(exc))

    def stop(self) -> None:
        """Stop: the loop between tokens or calls, and any question still open (answered "deny")."""
        self._cancelled = True
        if self.runner is not None:
            self.runner.stop()
        self.broker.cancel_all()
