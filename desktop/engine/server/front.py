"""``serve``: the local engine as an OpenAI-compatible endpoint on loopback, for other tools.

The reverse of ``remote_backend``: ``GET /v1/models`` and ``POST /v1/chat/completions`` (streamed
as server-sent events, or whole) are turned into Generate requests on one :class:`EngineClient`, so
a request gets exactly what the app would do with the profile (its prompt format, GGUF fixes, stop
tokens and strings). Only the standard library's HTTP server.

Who may call: it binds loopback only, and since any web page the user opens can also reach loopback,
every request must carry a loopback ``Host`` (defeats DNS rebinding) and either no ``Origin`` or one
given with ``--allow-origin``; anything else gets 403 before its body is read, and a CORS preflight is
answered only for allowed origins. POST bodies must be ``application/json`` (a cross-site form or
``text/plain`` fetch cannot be one without a preflight). ``--api-key`` additionally demands
``Authorization: Bearer <key>``.

Threads: each HTTP request runs on its own handler thread of a ``ThreadingHTTPServer`` in the CLI
process. The engine runs one generation at a time, so requests wait their turn in an explicit FIFO
queue (``serve_requests.RequestQueue``): bounded (a full queue answers 429 with Retry-After), and every request has a
deadline (waiting too long: 503 with Retry-After; generating too long: the engine is told to stop).
"""
from __future__ import annotations

import hmac
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator

from desktop.engine.inference import protocol as P
from desktop.engine.inference.client import EngineClient, new_id
from desktop.engine.server.requests import (
    BadRequest,
    QueueFull,
    QueueTimeout,
    RequestQueue,
    generate_from_body,
)
from desktop.engine.errors import AppError, ContextOverflowError, TemplateError, from_dict
from desktop.engine.profiles import Profile

LOOPBACK = ("127.0.0.1", "localhost", "::1")
MAX_BODY = 8 << 20  # bytes; a chat request is text
DEFAULT_MAX_QUEUE = 8
DEFAULT_REQUEST_TIMEOUT_S = 600.0
def _finish_reason(reason: str) -> str:
    return "length" if reason == "length" else "stop"


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.0: a streamed body simply ends when the connection closes; no chunked encoding needed.
    protocol_version = "HTTP/1.0"
    server: "OpenAIServer"
    timed_out = False

    def log_message(self, fmt: str, *args: Any) -> None:
        if self.server.verbose:
            super().log_message(fmt, *args)

    # ------------------------------------------------------------------ who may call

    def _origin(self) -> str | None:
        return self.headers.get("Origin")

    def _cors_headers(self) -> None:
        origin = self._origin()
        if origin is not None and origin in self.server.allowed_origins:
            self.send_header("Access-Control-Allow-Origin", origin)
            self.send_header("Vary", "Origin")

    def _host_ok(self) -> bool:
        host = (self.headers.get("Host") or "").strip().lower()
        port = str(self.server.server_address[1])
        for name in ("127.0.0.1", "localhost", "[::1]"):
            if host in (name, f"{name}:{port}"):
                return True
        return False

    def _allowed(self, check_key: bool = True) -> bool:
        """Host, Origin and key checks; answers 403/401 itself and returns False when the request is refused."""
        if not self._host_ok():
            self._error(403, "the Host header must be a loopback address of this server", "forbidden")
            return False
        origin = self._origin()
        if origin is not None and origin not in self.server.allowed_origins:
            self._error(403, f"requests from the web origin {origin!r} are not allowed (serve --allow-origin)",
                        "forbidden")
            return False
        if check_key and self.server.api_key:
            auth = self.headers.get("Authorization") or ""
            given = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
            if not hmac.compare_digest(given.encode(), self.server.api_key.encode()):
                self._error(401, "a valid API key is required (Authorization: Bearer <key>)", "invalid_api_key",
                            etype="authentication_error")
                return False
        return True

    # ------------------------------------------------------------------ answers

    def _json(self, status: int, data: Any, headers: dict[str, str] | None = None) -> None:
        raw = json.dumps(data, ensure_ascii=False).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self._cors_headers()
        self.end_headers()
        self.wfile.write(raw)

    def _error(self, status: int, message: str, code: str, *, param: str | None = None, etype: str | None = None,
               headers: dict[str, str] | None = None) -> None:
        # OpenAI's error shape, so SDKs raise their usual exceptions.
        etype = etype or ("invalid_request_error" if status < 500 else "server_error")
        self._json(status, {"error": {"message": message, "type": etype, "param": param, "code": code}}, headers)

    def _app_error(self, err: AppError) -> None:
        status = 400 if isinstance(err, (TemplateError, ContextOverflowError, BadRequest)) else 500
        self._error(status, err.message, err.code, param=getattr(err, "param", None))

    def do_OPTIONS(self) -> None:  # noqa: N802 - http.server's naming
        origin = self._origin()
        if not self._host_ok() or origin is None or origin not in self.server.allowed_origins:
            self._error(403, "CORS preflight refused: this origin is not allowed (serve --allow-origin)", "forbidden")
            return
        self.send_response(204)
        self._cors_headers()
        self.send_header("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
        self.send_header("Access-Control-Allow-Headers", "Authorization, Content-Type")
        self.send_header("Access-Control-Max-Age", "600")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:  # noqa: N802
        if not self._allowed():
            return
        if self.path.rstrip("/") in ("/v1/models", "/models"):
            self._json(200, {"object": "list", "data": [
                {"id": self.server.model_id, "object": "model", "owned_by": "desktop-chat", "created": 0}]})
        else:
            self._error(404, f"no route {self.path}; this server has /v1/models and /v1/chat/completions",
                        "not_found")

    def do_POST(self) -> None:  # noqa: N802
        if not self._allowed():
            return
        if self.path.rstrip("/") not in ("/v1/chat/completions", "/chat/completions"):
            self._error(404, f"no route {self.path}; this server has /v1/models and /v1/chat/completions",
                        "not_found")
            return
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if ctype != "application/json":
            self._error(415, "the body must be sent as Content-Type: application/json", "unsupported_media_type")
            return
        try:
            n = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            n = -1
        if not 0 <= n <= MAX_BODY:
            self._error(413 if n > MAX_BODY else 400, f"the body must have a Content-Length of at most {MAX_BODY} bytes",
                        "invalid_body")
            return
        try:
            body = json.loads(self.rfile.read(n) or b"null")
        except ValueError:
            self._error(400, "the body is not valid JSON", "invalid_json")
            return
        model = body.get("model") if isinstance(body, dict) else None
        if model is not None and model != self.server.model_id:
            self._error(404, f"the model {model!r} does not exist; this server has {self.server.model_id!r}",
                        "model_not_found", param="model")
            return
        try:
            gen = generate_from_body(self.server.profile, body, new_id("api"))
        except BadRequest as exc:
            self._app_error(exc)
            return
        deadline = time.monotonic() + self.server.request_timeout_s
        retry = {"Retry-After": str(max(1, int(self.server.request_timeout_s // 10)))}
        try:
            self.server.queue.acquire(self.server.request_timeout_s)
        except QueueFull:
            self._error(429, f"the server is busy ({self.server.queue.limit} requests are already waiting)",
                        "queue_full", headers=retry)
            return
        except QueueTimeout:
            self._error(503, f"the request waited {self.server.request_timeout_s:g} s for its turn", "queue_timeout",
                        etype="server_error", headers=retry)
            return
        try:
            if body.get("stream"):
                self._stream(gen, bool((body.get("stream_options") or {}).get("include_usage")), deadline)
            else:
                self._whole(gen, deadline)
        finally:
            self.server.queue.release()

    # ------------------------------------------------------------------ generation

    def _events(self, gen: P.Generate, deadline: float) -> Iterator[Any]:
        """The generation's events; past the deadline the engine is told to stop (its watchdog makes sure)."""
        client = self.server.client
        self.timed_out = False

        def expire() -> None:
            self.timed_out = True
            client.cancel(gen.id)  # the client's watchdog ends it even if the engine is stuck

        timer = threading.Timer(max(0.0, deadline - time.monotonic()), expire)
        timer.daemon = True
        timer.start()
        try:
            # A last resort per event, far past the deadline plus the watchdog's grace.
            yield from client.generate(gen, timeout=self.server.request_timeout_s + 2 * client.stop_grace_s + 5)
        finally:
            timer.cancel()

    def _timeout_message(self) -> str:
        return (f"the request took longer than {self.server.request_timeout_s:g} s (serve --request-timeout) and "
                "was stopped")

    def _chunk(self, cid: str, created: int, delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
        return {"id": cid, "object": "chat.completion.chunk", "created": created, "model": self.server.model_id,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    def _stream(self, gen: P.Generate, include_usage: bool, deadline: float) -> None:
        client = self.server.client
        cid, created = f"chatcmpl-{gen.id}", int(time.time())
        events = self._events(gen, deadline)
        started = False
        try:
            for ev in events:
                if isinstance(ev, P.Failed):
                    err = from_dict(ev.error)
                    if not started:
                        self._app_error(err)
                        return
                    self._sse({"error": {"message": err.message, "type": "server_error", "code": err.code}})
                    return
                if not started:
                    self.send_response(200)
                    self.send_header("Content-Type", "text/event-stream")
                    self.send_header("Cache-Control", "no-cache")
                    self._cors_headers()
                    self.end_headers()
                    self._sse(self._chunk(cid, created, {"role": "assistant", "content": ""}, None))
                    started = True
                if isinstance(ev, P.TokenChunk) and ev.text:
                    self._sse(self._chunk(cid, created, {"content": ev.text}, None))
                elif isinstance(ev, P.Finished) and self.timed_out:
                    self._sse({"error": {"message": self._timeout_message(), "type": "server_error",
                                         "code": "timeout"}})
                elif isinstance(ev, P.Finished):
                    self._sse(self._chunk(cid, created, {}, _finish_reason(ev.finish_reason)))
                    if include_usage:
                        self._sse({**self._chunk(cid, created, {}, None), "choices": [], "usage": _usage(ev)})
                    self.wfile.write(b"data: [DONE]\n\n")
                    self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            # The caller hung up (its Stop): stop the engine too, and let the generation end.
            client.cancel(gen.id)
            for _ in events:
                pass

    def _sse(self, data: Any) -> None:
        self.wfile.write(b"data: " + json.dumps(data, ensure_ascii=False).encode("utf-8") + b"\n\n")
        self.wfile.flush()

    def _whole(self, gen: P.Generate, deadline: float) -> None:
        last: Any = None
        for ev in self._events(gen, deadline):
            last = ev
        if self.timed_out:
            self._error(504, self._timeout_message(), "timeout", etype="server_error")
            return
        if isinstance(last, P.Failed):
            self._app_error(from_dict(last.error))
            return
        assert isinstance(last, P.Finished)
        self._json(200, {
            "id": f"chatcmpl-{gen.id}", "object": "chat.completion", "created": int(time.time()),
            "model": self.server.model_id,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": last.text},
                         "finish_reason": _finish_reason(last.finish_reason)}],
            "usage": _usage(last)})


def _usage(fin: P.Finished) -> dict[str, int]:
    s = fin.stats
    return {"prompt_tokens": s.prompt_tokens, "completion_tokens": s.generated_tokens,
            "total_tokens": s.prompt_tokens + s.generated_tokens}


class OpenAIServer(ThreadingHTTPServer):
    """The HTTP server; ``client`` must already have the model loaded."""

    daemon_threads = True

    def __init__(self, client: EngineClient, profile: Profile | None, model_id: str, host: str = "127.0.0.1",
                 port: int = 8080, verbose: bool = False, *, allowed_origins: tuple[str, ...] | list[str] = (),
                 api_key: str | None = None, max_queue: int = DEFAULT_MAX_QUEUE,
                 request_timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S) -> None:
        if host not in LOOPBACK:
            raise AppError(f"serve has no authentication, so it only binds loopback ({', '.join(LOOPBACK)}), "
                           f"not {host!r}")
        for origin in allowed_origins:
            if origin == "*" or "://" not in origin or origin.endswith("/"):
                raise AppError(f"--allow-origin takes an exact origin such as http://localhost:3000, not {origin!r}")
        if max_queue < 1 or request_timeout_s <= 0:
            raise AppError("--max-queue must be at least 1 and --request-timeout positive")
        self.client, self.profile, self.model_id, self.verbose = client, profile, model_id, verbose
        self.allowed_origins = frozenset(allowed_origins)
        self.api_key = api_key or None
        self.queue = RequestQueue(max_queue)
        self.request_timeout_s = float(request_timeout_s)
        if ":" in host:
            self.address_family = socket.AF_INET6
        try:
            super().__init__((host, port), _Handler)
        except OSError as exc:
            raise AppError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc

    @property
    def base_url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/v1"
