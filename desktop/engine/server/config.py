"""The server's settings and the record of each request it answered (plain Python; any process).

``ServerConfig`` is what a Server page or ``serve``'s flags set; ``check`` enforces the security defaults:
loopback unless an API key is set, exact allowed origins, a bounded queue and a timeout per request.
``RequestLog`` is what ``LocalServer.on_request`` receives after every request, for a live log.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from desktop.engine.errors import AppError

LOOPBACK = ("127.0.0.1", "localhost", "::1")
ALL_INTERFACES = "0.0.0.0"
DEFAULT_PORT = 8080
DEFAULT_MAX_QUEUE = 8
DEFAULT_REQUEST_TIMEOUT_S = 600.0
DEFAULT_MODEL_TTL_S = 3600.0


@dataclass
class ServerConfig:
    """How the server listens and whom it serves.

    ``lan`` binds every interface (``0.0.0.0``) so other machines can call it; it then demands ``api_key``,
    and any ``Host`` is accepted (the key, which a web page cannot know, is what keeps pages out). Without it
    only loopback addresses are bound and only loopback ``Host`` headers served (DNS rebinding).
    """

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    lan: bool = False
    api_key: str | None = None
    allowed_origins: tuple[str, ...] = ()
    max_queue: int = DEFAULT_MAX_QUEUE
    request_timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S
    model_ttl_s: float = DEFAULT_MODEL_TTL_S  # an idle model is unloaded after this long
    n_ctx: int | None = None  # context length of every model it loads (None: each profile's default)
    verbose: bool = False

    @property
    def bind_host(self) -> str:
        return ALL_INTERFACES if self.lan else self.host

    def check(self) -> None:
        """Raise AppError (one sentence, naming the setting) for settings the server refuses."""
        if self.host not in LOOPBACK and not self.lan:
            if not self.api_key:
                raise AppError(f"serving on {self.host!r} makes the server reachable from other machines, so it "
                               "needs an API key (--api-key-env or --api-key); without one it binds loopback only "
                               f"({', '.join(LOOPBACK)})")
            self.lan = self.host in (ALL_INTERFACES, "::")
        if self.lan and not self.api_key:
            raise AppError("serving on the local network needs an API key (--api-key-env or --api-key)")
        for origin in self.allowed_origins:
            if origin == "*" or "://" not in origin or origin.endswith("/"):
                raise AppError(f"--allow-origin takes an exact origin such as http://localhost:3000, not {origin!r}")
        if self.max_queue < 1 or self.request_timeout_s <= 0:
            raise AppError("--max-queue must be at least 1 and --request-timeout positive")
        if not 0 <= self.port <= 65535:
            raise AppError(f"the port must be between 0 and 65535, not {self.port}")
        if self.model_ttl_s <= 0:
            raise AppError("the idle time before a model is unloaded must be positive")

    @property
    def open_host(self) -> bool:
        """Whether any Host header is served (a non-loopback bind, which always has an API key)."""
        return self.lan or self.host not in LOOPBACK


@dataclass
class RequestLog:
    """One answered request: which API and route, the model, tokens, speed and the HTTP status."""

    api: str  # "openai" | "ollama"
    method: str
    path: str
    status: int
    model: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    tokens_per_s: float = 0.0
    duration_s: float = 0.0
    error: str = ""
    client: str = ""
    time: float = field(default_factory=time.time)


__all__ = ["ALL_INTERFACES", "DEFAULT_MODEL_TTL_S", "DEFAULT_PORT", "LOOPBACK", "RequestLog", "ServerConfig"]
