"""Moved to :mod:`desktop.engine.server`; this name stays for callers that import it from here."""
from __future__ import annotations

from desktop.engine.server.front import OpenAIServer  # noqa: F401
