"""The HTTP front of the local server: who may call, bodies, the engine's turn, errors, the request log.

Two APIs share one port: OpenAI's (``/v1/...``, ``openai_routes`` and ``responses_api``) and Ollama's (``/api/...``
and ``/``, ``ollama_routes``). Each route is a function ``(handler, body)``; this module does what they share.

Who may call: bound to loopback, every request must carry a loopback ``Host`` (defeats DNS rebinding) and either
no ``Origin`` or an allowed one; anything else gets 403 before its body is read, and a CORS preflight is answered
only for allowed origins. POST bodies must be ``application/json`` (a cross-site form or ``text/plain`` fetch
cannot be one without a preflight). An API key demands ``Authorization: Bearer <key>``; serving the local network
(``ServerConfig.lan``) requires one, and then any Host is served.

Threads: each connection runs on its own handler thread of a ``ThreadingHTTPServer`` in the caller's process (the
CLI, or the app). The engine runs one request at a time, so requests wait their turn in a bounded FIFO
(``requests.RequestQueue``: full -> 429, waited too long -> 503), the model they name is loaded in their turn
(``pool``), and a request past its deadline is stopped (504). The running server is ``app.LocalServer``.
"""
from __future__ import annotations

import contextlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler
from typing import Any, Callable, Iterator

from desktop.engine.errors import (
    AppError,
    ContextOverflowError,
    GrammarError,
    ImageError,
    ModelNotFoundError,
    TemplateError,
    from_dict,
)
from desktop.engine.inference import protocol as P
from desktop.engine.server.config import RequestLog
from desktop.engine.server.pool import ServedModel
from desktop.engine.server.requests import BadRequest, QueueFull, QueueTimeout

MAX_BODY = 8 << 20  # bytes; a request is text
Route = Callable[["Handler", Any], None]


class RequestTimeout(AppError):
    code = "timeout"


def status_of(exc: BaseException) -> int:
    """The HTTP status of a request that failed before its answer started."""
    if isinstance(exc, (BadRequest, TemplateError, ContextOverflowError, GrammarError, ImageError)):
        return 400
    if isinstance(exc, ModelNotFoundError):
        return 404
    if isinstance(exc, QueueFull):
        return 429
    if isinstance(exc, QueueTimeout):
        return 503
    if isinstance(exc, RequestTimeout):
        return 504
    return 500


class Handler(BaseHTTPRequestHandler):
    # HTTP/1.0: a streamed body simply ends when the connection closes; no chunked encoding needed.
    protocol_version = "HTTP/1.0"
    server: Any  # app._HTTPServer, whose ``app`` is the LocalServer
    timed_out = False

    @property
    def app(self) -> Any:  # app.LocalServer
        return self.server.app

    @property
    def api(self) -> str:
        return "ollama" if self.path == "/" or self.path.startswith("/api/") else "openai"

    def log_message(self, fmt: str, *args: Any) -> None:
        if self.app.config.verbose:
            super().log_message(fmt, *args)

    # ------------------------------------------------------------------ who may call

    def _origin(self) -> str | None:
        return self.headers.get("Origin")

    def _cors_headers(self) -> None:
        origin = self._origin()
        if origin is not None and origin in self.app.config.allowed_origins:
            self.send_header("Access-Control-Allow-Origin", origin)
            self.send_header("Vary", "Origin")

    def _host_ok(self) -> bool:
        if self.app.config.open_host:
            return True
        host = (self.headers.get("Host") or "").strip().lower()
        port = str(self.server.server_address[1])
        return any(host in (name, f"{name}:{port}") for name in ("127.0.0.1", "localhost", "[::1]"))

    def _allowed(self) -> bool:
        """Host, Origin and key checks; answers 403/401 itself and returns False when the request is refused."""
        if not self._host_ok():
            self.fail(403, "the Host header must be a loopback address of this server", "forbidden")
            return False
        origin = self._origin()
        if origin is not None and origin not in self.app.config.allowed_origins:
            self.fail(403, f"requests from the web origin {origin!r} are not allowed (serve --allow-origin)",
                      "forbidden")
            return False
        key = self.app.config.api_key
        if key:
            auth = self.headers.get("Authorization") or ""
            given = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
            if not hmac.compare_digest(given.encode(), key.encode()):
                self.fail(401, "a valid API key is required (Authorization: Bearer <key>)", "invalid_api_key",
                          etype="authentication_error")
                return False
        return True

    # ------------------------------------------------------------------ answers

    def send_json(self, status: int, data: Any, headers: dict[str, str] | None = None) -> None:
        raw = json.dumps(data, ensure_ascii=False).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self._cors_headers()
        self.end_headers()
        self.wfile.write(raw)
        self.status = status

    def send_text(self, status: int, text: str) -> None:
        raw = text.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(raw)))
        self._cors_headers()
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(raw)
        self.status = status

    def fail(self, status: int, message: str, code: str, *, param: str | None = None, etype: str | None = None,
             headers: dict[str, str] | None = None) -> None:
        """An error in the shape of the API the path belongs to."""
        self.error_text = message
        if self.api == "ollama":
            self.send_json(status, {"error": message}, headers)
            return
        # OpenAI's error shape, so SDKs raise their usual exceptions.
        etype = etype or ("invalid_request_error" if status < 500 else "server_error")
        self.send_json(status, {"error": {"message": message, "type": etype, "param": param, "code": code}}, headers)

    def fail_with(self, exc: BaseException) -> None:
        status = status_of(exc)
        retry = None
        if isinstance(exc, (QueueFull, QueueTimeout)):
            retry = {"Retry-After": str(max(1, int(self.app.config.request_timeout_s // 10)))}
        if isinstance(exc, QueueFull):
            msg, code = f"the server is busy ({self.app.queue.limit} requests are already waiting)", "queue_full"
        elif isinstance(exc, QueueTimeout):
            msg, code = f"the request waited {self.app.config.request_timeout_s:g} s for its turn", "queue_timeout"
        elif isinstance(exc, AppError):
            msg, code = exc.message, exc.code
        else:
            msg, code = str(exc), "internal_error"
        param = "model" if isinstance(exc, ModelNotFoundError) else getattr(exc, "param", None)
        if isinstance(exc, GrammarError):
            param = self.schema_param  # the field that asked for it: response_format, text.format, format
        self.fail(status, msg, code, param=param, headers=retry)

    def begin_stream(self, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Cache-Control", "no-cache")
        self._cors_headers()
        self.end_headers()
        self.status = 200

    def write(self, data: bytes) -> None:
        """One piece of a streamed answer; a caller that hung up raises BrokenPipeError/ConnectionResetError."""
        self.wfile.write(data)
        self.wfile.flush()

    # ------------------------------------------------------------------ the engine's turn

    @contextlib.contextmanager
    def turn(self, model: ServedModel, embedding: bool = False) -> Iterator[None]:
        """Wait for the engine (bounded FIFO), then have ``model`` loaded; the deadline starts now."""
        self.model_id = model.id
        cfg = self.app.config
        self.deadline = time.monotonic() + cfg.request_timeout_s
        self.app.queue.acquire(cfg.request_timeout_s)
        try:
            self.app.pool.ensure(model, embedding)
            yield
        finally:
            self.app.pool.touch()
            self.app.queue.release()

    def events(self, msg: Any) -> Iterator[Any]:
        """The request's events; past the deadline the engine is told to stop (its watchdog makes sure)."""
        client = self.app.client
        self.timed_out = False

        def expire() -> None:
            self.timed_out = True
            client.cancel(msg.id)

        timer = threading.Timer(max(0.0, self.deadline - time.monotonic()), expire)
        timer.daemon = True
        timer.start()
        try:
            limit = self.app.config.request_timeout_s + 2 * client.stop_grace_s + 5
            for ev in client.events(msg, timeout=limit):
                if isinstance(ev, P.Finished):
                    self.stats = ev.stats
                yield ev
        finally:
            timer.cancel()

    def hung_up(self, msg_id: str, events: Iterator[Any]) -> None:
        """The caller hung up mid-answer: stop the engine, and let the request end before the turn is given up."""
        self.app.client.cancel(msg_id)
        self.status = 499
        for _ in events:
            pass

    def run_whole(self, msg: Any) -> Any:
        """Run ``msg`` to its end and return its last event (``Finished``, ``Embeddings``); when it failed or
        ran past the deadline, answer the error in the path's API shape and return None."""
        last: Any = None
        for ev in self.events(msg):
            last = ev
        if self.timed_out or last is None:  # the engine's Stop (or its kill) after the deadline: a timeout
            self.fail(504, self.timeout_message(), "timeout", etype="server_error")
            return None
        if isinstance(last, P.Failed):
            self.fail_with(from_dict(last.error))
            return None
        return last

    def run_stream(self, msg: Any, content_type: str, on_event: Callable[[Any], None],
                   on_error: Callable[[str, str], None], on_start: Callable[[], None] | None = None) -> None:
        """Stream ``msg``'s answer, the same way for every API: a failure before the first event is an HTTP error;
        the first event opens the stream (``on_start`` writes what the API sends first); a failure or the
        deadline after that goes to ``on_error(message, code)`` (the API's error event) and ends the stream;
        every other event (``TokenChunk``, the last ``Finished``) goes to ``on_event``. A caller that hangs up
        stops the engine."""
        events = self.events(msg)
        started = False
        try:
            for ev in events:
                if isinstance(ev, P.Failed) and not started:
                    self.fail_with(from_dict(ev.error))
                    return
                if not started:
                    self.begin_stream(content_type)
                    started = True
                    if on_start is not None:
                        on_start()
                if isinstance(ev, P.Failed):
                    err = from_dict(ev.error)
                    on_error(err.message, err.code)
                    return
                if isinstance(ev, P.Finished) and self.timed_out:
                    on_error(self.timeout_message(), "timeout")
                    return
                on_event(ev)
        except (BrokenPipeError, ConnectionResetError):
            self.hung_up(msg.id, events)

    def timeout_message(self) -> str:
        return (f"the request took longer than {self.app.config.request_timeout_s:g} s (serve --request-timeout) "
                "and was stopped")

    # ------------------------------------------------------------------ dispatch

    def do_OPTIONS(self) -> None:  # noqa: N802 - http.server's naming
        origin = self._origin()
        if not self._host_ok() or origin is None or origin not in self.app.config.allowed_origins:
            self.fail(403, "CORS preflight refused: this origin is not allowed (serve --allow-origin)", "forbidden")
            return
        self.send_response(204)
        self._cors_headers()
        self.send_header("Access-Control-Allow-Methods", "GET, POST, DELETE, OPTIONS")
        self.send_header("Access-Control-Allow-Headers", "Authorization, Content-Type")
        self.send_header("Access-Control-Max-Age", "600")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:  # noqa: N802
        self._dispatch("GET")

    def do_HEAD(self) -> None:  # noqa: N802
        self._dispatch("HEAD")

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch("POST")

    def _read_json(self) -> Any:
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if ctype != "application/json":
            raise _Refused(415, "the body must be sent as Content-Type: application/json", "unsupported_media_type")
        try:
            n = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            n = -1
        if not 0 <= n <= MAX_BODY:
            raise _Refused(413 if n > MAX_BODY else 400,
                           f"the body must have a Content-Length of at most {MAX_BODY} bytes", "invalid_body")
        try:
            return json.loads(self.rfile.read(n) or b"null")
        except ValueError:
            raise _Refused(400, "the body is not valid JSON", "invalid_json") from None

    def _dispatch(self, method: str) -> None:
        self.t0 = time.monotonic()
        self.status, self.model_id, self.stats, self.error_text = 0, None, None, ""
        self.schema_param: str | None = None
        path = self.path.split("?", 1)[0]
        route = self.app.routes.get((method if method != "HEAD" else "GET", path.rstrip("/") or "/"))
        try:
            if not self._allowed():
                return
            if route is None:
                self.fail(404, f"no route {method} {path}", "not_found")
                return
            body = self._read_json() if method == "POST" else None
            try:
                route(self, body)
            except (AppError, QueueFull, QueueTimeout) as exc:
                self.fail_with(exc)
        except _Refused as exc:
            self.fail(exc.status, exc.message, exc.code)
        except (BrokenPipeError, ConnectionResetError):
            self.status = 499
        finally:
            self._log(method, path)

    def _log(self, method: str, path: str) -> None:
        cb = self.app.on_request
        if cb is None or path == "/" or path == "/api/version":
            return
        s = self.stats
        entry = RequestLog(
            self.api, method, path, self.status, self.model_id, s.prompt_tokens if s else 0,
            s.generated_tokens if s else 0, s.tokens_per_s if s else 0.0, time.monotonic() - self.t0,
            self.error_text, self.client_address[0] if self.client_address else "")
        try:
            cb(entry)
        except Exception:  # noqa: BLE001 - a log display must not break the server
            pass


class _Refused(Exception):
    def __init__(self, status: int, message: str, code: str) -> None:
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


__all__ = ["Handler", "MAX_BODY", "RequestTimeout", "status_of"]
