"""Asking before a tool runs: allow once, always allow this tool, or deny.

The front end supplies the question as a callback (the CLI answers from ``--allow-tools``; the GUI shows
``ui/tools/permission_dialog.py``'s dialog). "Always" is remembered per server and tool in the user config dir, so
it holds across chats and restarts. Runs in the caller's process (the CLI, or the app's GUI process); the callback
runs on the tool loop's thread.
"""
from __future__ import annotations

import json
import os
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from desktop.engine import paths

ALLOW_ONCE = "allow_once"
ALLOW_ALWAYS = "allow_always"
DENY = "deny"


@dataclass(frozen=True)
class PermissionRequest:
    """What the user is asked about: which tool, on which server, with which arguments."""

    server: str
    tool: str
    arguments: dict[str, Any] = field(default_factory=dict)
    call_id: str = ""

    def arguments_text(self) -> str:
        return json.dumps(self.arguments, indent=2, ensure_ascii=False, sort_keys=True)


AskPermission = Callable[[PermissionRequest], str]


def allow_all(_req: PermissionRequest) -> str:
    return ALLOW_ONCE


def deny_all(_req: PermissionRequest) -> str:
    return DENY


def permissions_path() -> Path:
    return paths.config_dir() / "tool_permissions.json"


class PermissionPolicy:
    """The tools the user always allows; everything else is asked, every time."""

    def __init__(self, path: str | Path | None = None, *, persist: bool = True) -> None:
        self.path = Path(path) if path is not None else permissions_path()
        self.persist = persist
        self._lock = threading.Lock()
        self._always: set[tuple[str, str]] = self._load() if persist else set()

    def _load(self) -> set[tuple[str, str]]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            return {(str(a), str(b)) for a, b in data.get("always_allow", [])}
        except (OSError, ValueError, TypeError, AttributeError):
            return set()  # no file, or a damaged one: ask again rather than guess

    def _save(self) -> None:
        if not self.persist:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump({"always_allow": sorted([list(p) for p in self._always])}, f, indent=2)
        os.replace(tmp, self.path)

    def always_allowed(self, server: str, tool: str) -> bool:
        with self._lock:
            return (server, tool) in self._always

    def allow_always(self, server: str, tool: str) -> None:
        with self._lock:
            self._always.add((server, tool))
            self._save()

    def decide(self, req: PermissionRequest, ask: AskPermission) -> bool:
        """Whether the call may run: remembered, or asked (and "always" remembered)."""
        if self.always_allowed(req.server, req.tool):
            return True
        answer = ask(req)
        if answer == ALLOW_ALWAYS:
            self.allow_always(req.server, req.tool)
            return True
        return answer == ALLOW_ONCE
