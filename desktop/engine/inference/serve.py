"""Moved to :mod:`desktop.engine.server`; this name stays for callers that import the server from here."""
from __future__ import annotations

from desktop.engine.server.config import ServerConfig  # noqa: F401
from desktop.engine.server.app import LocalServer  # noqa: F401
