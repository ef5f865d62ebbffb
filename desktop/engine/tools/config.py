"""``mcp.json``: the MCP servers the user configured, and which of them each chat uses.

The file has the shape other MCP clients use, so one file can be shared::

    {"mcpServers": {
        "files": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-filesystem", "/tmp"],
                  "env": {"DEBUG": "0"}},
        "search": {"url": "http://127.0.0.1:8000/mcp", "headers": {"Authorization": "Bearer ..."}}
    }}

A server is either stdio (``command`` + optional ``args``/``env``/``cwd``) or streamable HTTP (``url`` + optional
``headers``); ``timeout_s`` (per tool call) and ``disabled`` are optional on both. Errors name the file and the
dotted key. The per-chat choice of servers is a small JSON file in the data dir keyed by chat id (the chats
database is not ours to extend). Runs in the caller's process (the CLI, or the app's GUI process), never in the
engine; file I/O only, so the app runs it off the GUI thread.
"""
from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from desktop.engine import paths
from desktop.engine.tools.errors import McpConfigError

CONFIG_NAME = "mcp.json"
DEFAULT_TOOL_TIMEOUT_S = 30.0
_STDIO_KEYS = {"command", "args", "env", "cwd", "timeout_s", "disabled", "type"}
_HTTP_KEYS = {"url", "headers", "timeout_s", "disabled", "type"}


@dataclass(frozen=True)
class ServerConfig:
    """One configured MCP server."""

    name: str
    kind: str  # "stdio" | "http"
    command: str = ""
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    cwd: str | None = None
    url: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    timeout_s: float = DEFAULT_TOOL_TIMEOUT_S
    disabled: bool = False

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any]
        if self.kind == "stdio":
            d = {"command": self.command, "args": list(self.args)}
            if self.env:
                d["env"] = dict(self.env)
            if self.cwd:
                d["cwd"] = self.cwd
        else:
            d = {"url": self.url}
            if self.headers:
                d["headers"] = dict(self.headers)
        if self.timeout_s != DEFAULT_TOOL_TIMEOUT_S:
            d["timeout_s"] = self.timeout_s
        if self.disabled:
            d["disabled"] = True
        return d

    def describe(self) -> str:
        """One line for lists: the command line or the URL (never header values: they may hold keys)."""
        if self.kind == "stdio":
            return " ".join([self.command, *self.args])
        return self.url


def config_path() -> Path:
    return paths.config_dir() / CONFIG_NAME


def _str_map(value: Any, where: str) -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise McpConfigError(f"{where} must be an object of strings")
    return dict(value)


def parse_server(name: str, raw: Any, source: str) -> ServerConfig:
    """Validate one ``mcpServers`` entry; ``source`` (the file) starts every error message."""
    where = f"{source}: mcpServers.{name}"
    if not name.strip():
        raise McpConfigError(f"{source}: mcpServers has an entry with an empty name")
    if not isinstance(raw, dict):
        raise McpConfigError(f"{where} must be an object with a command (stdio) or a url (HTTP)")
    has_cmd, has_url = "command" in raw, "url" in raw
    if has_cmd == has_url:
        raise McpConfigError(f"{where} needs exactly one of 'command' (a stdio server) or 'url' (an HTTP server)")
    allowed = _STDIO_KEYS if has_cmd else _HTTP_KEYS
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise McpConfigError(f"{where}.{unknown[0]} is not a known key (allowed: {', '.join(sorted(allowed))})")
    timeout = raw.get("timeout_s", DEFAULT_TOOL_TIMEOUT_S)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout <= 3600:
        raise McpConfigError(f"{where}.timeout_s must be a number of seconds between 0 and 3600")
    disabled = raw.get("disabled", False)
    if not isinstance(disabled, bool):
        raise McpConfigError(f"{where}.disabled must be true or false")
    if has_cmd:
        cmd = raw["command"]
        if not isinstance(cmd, str) or not cmd.strip():
            raise McpConfigError(f"{where}.command must be a non-empty string")
        args = raw.get("args", [])
        if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
            raise McpConfigError(f"{where}.args must be a list of strings")
        cwd = raw.get("cwd")
        if cwd is not None and not isinstance(cwd, str):
            raise McpConfigError(f"{where}.cwd must be a string")
        return ServerConfig(name, "stdio", command=cmd, args=tuple(args),
                            env=_str_map(raw.get("env", {}), f"{where}.env"), cwd=cwd,
                            timeout_s=float(timeout), disabled=disabled)
    url = raw["url"]
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise McpConfigError(f"{where}.url must be an http:// or https:// URL")
    return ServerConfig(name, "http", url=url, headers=_str_map(raw.get("headers", {}), f"{where}.headers"),
                        timeout_s=float(timeout), disabled=disabled)


def parse_config(data: Any, source: str = CONFIG_NAME) -> dict[str, ServerConfig]:
    if not isinstance(data, dict) or not isinstance(data.get("mcpServers", {}), dict):
        raise McpConfigError(f"{source}: expected an object {{\"mcpServers\": {{name: server, ...}}}}")
    unknown = sorted(set(data) - {"mcpServers"})
    if unknown:
        raise McpConfigError(f"{source}: {unknown[0]} is not a known key (only mcpServers)")
    return {name: parse_server(name, raw, source) for name, raw in data.get("mcpServers", {}).items()}


def load_config(path: str | Path | None = None) -> dict[str, ServerConfig]:
    """The servers in ``path`` (default: the user's ``mcp.json``); a missing default file means none."""
    p = Path(path) if path is not None else config_path()
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        if path is None:
            return {}
        raise McpConfigError(f"{p}: no such file") from exc
    except OSError as exc:
        raise McpConfigError(f"{p}: cannot read it ({exc.strerror or exc})") from exc
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise McpConfigError(f"{p}: not valid JSON ({exc})") from exc
    return parse_config(data, str(p))


def _atomic_write(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2, ensure_ascii=False)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_config(servers: Iterable[ServerConfig], path: str | Path | None = None) -> Path:
    p = Path(path) if path is not None else config_path()
    _atomic_write(p, {"mcpServers": {s.name: s.to_json() for s in servers}})
    return p


# ------------------------------------------------------------------------------------ per-chat choice


def chat_servers_path() -> Path:
    return paths.data_dir() / "tools" / "chat_servers.json"


def enabled_servers(chosen: list[str] | None, servers: dict[str, ServerConfig]) -> list[str]:
    """The servers a chat uses: the ones it chose (``chosen``), or every enabled one when it never chose;
    a disabled server never."""
    names = [n for n, s in servers.items() if not s.disabled]
    return names if chosen is None else [n for n in names if n in chosen]


class ChatServerChoice:
    """Which configured servers each chat uses. A chat never set uses every enabled server."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else chat_servers_path()

    def read(self) -> dict[str, list[str]]:
        """Every chat's chosen servers by chat id (a chat absent from it uses every enabled server)."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}  # a lost or damaged file only resets the choice to the default
        chats = data.get("chats", {}) if isinstance(data, dict) else {}
        return {str(k): [s for s in v if isinstance(s, str)] for k, v in chats.items() if isinstance(v, list)}

    def enabled(self, chat_id: int | str, servers: dict[str, ServerConfig]) -> list[str]:
        return enabled_servers(self.read().get(str(chat_id)), servers)

    def set_enabled(self, chat_id: int | str, names: Iterable[str]) -> None:
        data = self.read()
        data[str(chat_id)] = sorted(set(names))
        _atomic_write(self.path, {"chats": data})

    def forget(self, chat_id: int | str) -> None:
        data = self.read()
        if data.pop(str(chat_id), None) is not None:
            _atomic_write(self.path, {"chats": data})
