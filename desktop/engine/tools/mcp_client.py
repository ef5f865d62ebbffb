"""MCP client: the official SDK on a dedicated asyncio thread, behind a synchronous facade.

The SDK (``mcp`` 1.x) is asyncio and its transports are async context managers that must be entered and left
by the same task, so every server gets one long-lived task on the manager's event-loop thread that opens the
transport and the ``ClientSession``, signals "ready", and waits for the close request. Callers (CLI main
thread, GUI workers, the tool loop) block on ``concurrent.futures`` results with timeouts, so a server that
hangs never hangs them: :meth:`McpManager.call_tool` raises :class:`ToolTimeoutError` after the server's
``timeout_s``. Servers start lazily, on the first list or call. Runs in the caller's process (the CLI, or the
app's GUI process), never in the engine. No Qt.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import json
import threading
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from desktop.engine import paths
from desktop.engine.tools.config import ServerConfig
from desktop.engine.tools.errors import McpServerError, ToolError, ToolTimeoutError

CONNECT_TIMEOUT_S = 30.0
MAX_RESULT_CHARS = 16_000  # what a tool may put into the prompt; the rest is cut with a note


@dataclass(frozen=True)
class ToolInfo:
    """A tool one server offers."""

    server: str
    name: str
    description: str
    input_schema: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ToolResult:
    text: str
    is_error: bool = False


def result_text(result: Any) -> str:
    """The text of a ``CallToolResult``: text blocks joined; structured content or other blocks described."""
    parts: list[str] = []
    for block in getattr(result, "content", None) or []:
        kind = getattr(block, "type", "")
        if kind == "text":
            parts.append(block.text)
        elif kind == "resource":
            res = block.resource
            parts.append(getattr(res, "text", None) or f"[resource {getattr(res, 'uri', '')}]")
        else:
            parts.append(f"[{kind or 'content'} omitted]")
    if not parts and getattr(result, "structuredContent", None) is not None:
        parts.append(json.dumps(result.structuredContent, ensure_ascii=False))
    text = "\n".join(parts)
    if len(text) > MAX_RESULT_CHARS:
        text = text[:MAX_RESULT_CHARS] + f"\n[… cut: the tool returned {len(text)} characters]"
    return text


class _Server:
    """One server's session, owned by a task on the manager's loop."""

    def __init__(self, cfg: ServerConfig) -> None:
        self.cfg = cfg
        self.session: Any = None
        self.task: asyncio.Task[None] | None = None
        self.stop: asyncio.Event | None = None
        self.ready: asyncio.Future[Any] | None = None
        self.tools: list[ToolInfo] | None = None


def _log_file(name: str) -> Any:
    # A stdio server's stderr goes to a log of its own: it must not scribble over the CLI or vanish silently.
    d = paths.data_dir() / "logs"
    d.mkdir(parents=True, exist_ok=True)
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:60] or "server"
    return open(d / f"mcp-{safe}.log", "a", encoding="utf-8", errors="replace")


class McpManager:
    """The configured servers, started lazily; thread-safe synchronous methods."""

    def __init__(self, servers: dict[str, ServerConfig], *, connect_timeout_s: float = CONNECT_TIMEOUT_S) -> None:
        self.configs = dict(servers)
        self.connect_timeout_s = connect_timeout_s
        self._servers: dict[str, _Server] = {}
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="mcp-loop", daemon=True)
        self._thread.start()
        self._closed = False

    # ------------------------------------------------------------------ plumbing

    def _submit(self, coro: Any) -> concurrent.futures.Future[Any]:
        if self._closed:
            coro.close()
            raise McpServerError("the MCP client is closed")
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    def _wait(self, coro: Any, timeout: float, what: str) -> Any:
        fut = self._submit(coro)
        try:
            return fut.result(timeout)
        except concurrent.futures.TimeoutError as exc:
            fut.cancel()
            raise ToolTimeoutError(f"{what} did not answer within {timeout:g} s") from exc

    def _config(self, name: str) -> ServerConfig:
        cfg = self.configs.get(name)
        if cfg is None:
            raise McpServerError(f"there is no MCP server named {name!r} in mcp.json")
        return cfg

    async def _run(self, srv: _Server) -> None:
        """Open the transport and session, publish it, and hold it open until asked to stop."""
        from contextlib import AsyncExitStack

        from mcp import ClientSession

        assert srv.ready is not None and srv.stop is not None
        cfg = srv.cfg
        try:
            async with AsyncExitStack() as stack:
                if cfg.kind == "stdio":
                    from mcp import StdioServerParameters
                    from mcp.client.stdio import get_default_environment, stdio_client

                    env = {**get_default_environment(), **cfg.env} if cfg.env else None
                    params = StdioServerParameters(command=cfg.command, args=list(cfg.args), env=env, cwd=cfg.cwd)
                    errlog = stack.enter_context(_log_file(cfg.name))
                    read, write = await stack.enter_async_context(stdio_client(params, errlog=errlog))
                else:
                    read, write = await stack.enter_async_context(_http_transport(cfg))
                session = await stack.enter_async_context(ClientSession(read, write))
                await session.initialize()
                srv.session = session
                srv.ready.set_result(session)
                await srv.stop.wait()
        except BaseException as exc:  # noqa: BLE001 - the reason reaches the waiting caller
            if not srv.ready.done():
                srv.ready.set_exception(exc)
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
        finally:
            srv.session = None

    async def _session(self, name: str) -> Any:
        srv = self._servers.get(name)
        if srv is None or srv.task is None or srv.task.done() and srv.session is None:
            srv = _Server(self._config(name))
            srv.stop = asyncio.Event()
            srv.ready = self._loop.create_future()
            srv.task = self._loop.create_task(self._run(srv))
            self._servers[name] = srv
        assert srv.ready is not None
        return await asyncio.shield(srv.ready)

    def _start_error(self, name: str, exc: BaseException) -> McpServerError:
        cfg = self.configs.get(name)
        where = cfg.describe() if cfg else name
        inner = exc
        while isinstance(inner, BaseExceptionGroup) and inner.exceptions:
            inner = inner.exceptions[0]
        why = str(inner) or type(inner).__name__
        if isinstance(inner, FileNotFoundError):
            why = f"the command was not found ({inner.filename or cfg.command if cfg else ''})"
        self._servers.pop(name, None)  # the next call tries again
        return McpServerError(f"the MCP server {name!r} ({where}) could not be started: {why}")

    def session(self, name: str) -> Any:
        """The open session of ``name``, starting the server on first use."""
        try:
            return self._wait(self._session(name), self.connect_timeout_s, f"the MCP server {name!r}")
        except ToolTimeoutError as exc:
            self._stop_one(name)
            raise McpServerError(f"the MCP server {name!r} did not start within {self.connect_timeout_s:g} s") from exc
        except ToolError:
            raise
        except Exception as exc:  # noqa: BLE001 - SDK/transport failures become one sentence
            raise self._start_error(name, exc) from exc

    # ------------------------------------------------------------------ public

    def list_tools(self, name: str) -> list[ToolInfo]:
        """The tools of server ``name`` (cached after the first answer)."""
        srv = self._servers.get(name)
        if srv is not None and srv.tools is not None and srv.session is not None:
            return list(srv.tools)
        session = self.session(name)

        async def fetch() -> list[ToolInfo]:
            out: list[ToolInfo] = []
            cursor = None
            while True:
                res = await session.list_tools(cursor) if cursor else await session.list_tools()
                out += [ToolInfo(name, t.name, t.description or "", dict(t.inputSchema or {})) for t in res.tools]
                cursor = getattr(res, "nextCursor", None)
                if not cursor:
                    return out

        try:
            tools = self._wait(fetch(), self.connect_timeout_s, f"the MCP server {name!r}")
        except ToolError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise McpServerError(f"the MCP server {name!r} failed to list its tools: {exc}") from exc
        if name in self._servers:
            self._servers[name].tools = tools
        return list(tools)

    def tools(self, names: list[str] | None = None) -> tuple[list[ToolInfo], dict[str, str]]:
        """The tools of several servers, and for each server that failed, its one-sentence error."""
        out: list[ToolInfo] = []
        errors: dict[str, str] = {}
        for name in names if names is not None else [n for n, c in self.configs.items() if not c.disabled]:
            try:
                out += self.list_tools(name)
            except ToolError as exc:
                errors[name] = exc.message
        return out, errors

    def call_tool(self, server: str, tool: str, arguments: dict[str, Any], timeout_s: float | None = None) -> ToolResult:
        """Run one tool; raises ToolTimeoutError past the timeout, McpServerError when the server fails."""
        timeout = float(timeout_s if timeout_s is not None else self._config(server).timeout_s)
        session = self.session(server)

        async def call() -> Any:
            return await session.call_tool(tool, arguments, read_timeout_seconds=timedelta(seconds=timeout))

        try:
            # The SDK's own read timeout fires first; the outer wait is the guarantee for the caller.
            res = self._wait(call(), timeout + 2.0, f"the tool {server}.{tool}")
        except ToolTimeoutError as exc:
            raise ToolTimeoutError(f"the tool {server}.{tool} did not answer within {timeout:g} s") from exc
        except Exception as exc:  # noqa: BLE001
            text = str(exc)
            if "timed out" in text.lower() or "timeout" in type(exc).__name__.lower():
                raise ToolTimeoutError(f"the tool {server}.{tool} did not answer within {timeout:g} s") from exc
            raise McpServerError(f"the tool {server}.{tool} failed: {text or type(exc).__name__}") from exc
        return ToolResult(result_text(res), bool(getattr(res, "isError", False)))

    def _stop_one(self, name: str) -> None:
        srv = self._servers.pop(name, None)
        if srv is None or srv.stop is None:
            return

        async def stop() -> None:
            assert srv.stop is not None
            srv.stop.set()
            if srv.task is not None:
                try:
                    await asyncio.wait_for(srv.task, 5.0)
                except (asyncio.TimeoutError, Exception):  # noqa: BLE001 - closing must not raise
                    srv.task.cancel()

        try:
            asyncio.run_coroutine_threadsafe(stop(), self._loop).result(8.0)
        except Exception:  # noqa: BLE001
            pass

    def running(self) -> list[str]:
        return [n for n, s in self._servers.items() if s.session is not None]

    def close(self) -> None:
        """Stop every server (their processes exit with their stdin closed) and the loop thread."""
        if self._closed:
            return
        for name in list(self._servers):
            self._stop_one(name)
        self._closed = True
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5.0)
        if not self._thread.is_alive():
            self._loop.close()

    def __enter__(self) -> McpManager:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _http_transport(cfg: ServerConfig) -> Any:
    """A streamable-HTTP transport yielding (read, write), with the configured headers."""
    from contextlib import asynccontextmanager

    import httpx

    try:
        from mcp.client.streamable_http import streamable_http_client as new_client
    except ImportError:  # mcp < 1.24: only the older name, which takes headers itself
        new_client = None

    @asynccontextmanager
    async def transport() -> Any:
        if new_client is None:
            from mcp.client.streamable_http import streamablehttp_client

            async with streamablehttp_client(cfg.url, headers=cfg.headers or None) as (read, write, _sid):
                yield read, write
            return
        timeout = httpx.Timeout(30.0, read=max(300.0, cfg.timeout_s + 5))
        async with httpx.AsyncClient(headers=cfg.headers or None, timeout=timeout, trust_env=False) as http:
            async with new_client(cfg.url, http_client=http) as (read, write, _sid):
                yield read, write

    return transport()


def default_manager(path: str | Path | None = None) -> McpManager:
    """A manager for the user's ``mcp.json`` (or ``path``)."""
    from desktop.engine.tools.config import load_config

    return McpManager(load_config(path))


__all__ = ["McpManager", "ToolInfo", "ToolResult", "result_text", "default_manager"]
