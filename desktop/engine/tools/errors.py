"""Errors of the tools package, in the app's one hierarchy (``AppError``).

They never cross the engine protocol (the tool loop runs in the caller), so they need no ``from_dict``
registration. Raised in the caller's process (the CLI, or the app's GUI process).
"""
from __future__ import annotations

from desktop.engine.errors import AppError


class ToolError(AppError):
    """A tool could not be offered or run."""

    code = "tool_error"


class McpConfigError(ToolError):
    """``mcp.json`` is unreadable or invalid; the message names the file and the key."""

    code = "mcp_config"


class McpServerError(ToolError):
    """An MCP server could not be started or reached, or broke the protocol."""

    code = "mcp_server"


class ToolTimeoutError(ToolError):
    """A tool did not answer within its time limit (the chat goes on without it)."""

    code = "tool_timeout"
