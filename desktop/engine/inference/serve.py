"""``serve``: the local engine as an OpenAI-compatible endpoint on loopback, for other tools.

The reverse of ``remote_backend``: ``GET /v1/models`` and ``POST /v1/chat/completions`` (streamed
as server-sent events, or whole) are turned into Generate requests on one :class:`EngineClient`, so
a request gets exactly what the app would do with the profile (its prompt format, GGUF fixes, stop
tokens and strings). Only the standard library's HTTP server: there is no authentication, so it
binds loopback addresses only.

Threads: each HTTP request runs on its own handler thread of a ``ThreadingHTTPServer`` in the CLI
process; the engine process runs the generations one after another, in arrival order.
"""
from __future__ import annotations

import json
import socket
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from desktop.engine.library import registry as models
from desktop.engine.inference import protocol as P
from desktop.engine.inference.client import EngineClient, new_id
from desktop.engine.errors import AppError, ContextOverflowError, TemplateError, from_dict
from desktop.engine.profiles import Profile

LOOPBACK = ("127.0.0.1", "localhost", "::1")
_SAMPLING = {"temperature": float, "top_p": float, "top_k": int, "min_p": float, "repeat_penalty": float,
             "max_tokens": int, "seed": int}


class BadRequest(AppError):
    code = "bad_request"


def generate_from_body(profile: Profile | None, body: Any, request_id: str) -> P.Generate:
    """An OpenAI chat-completions body -> a Generate with the profile's defaults under the body's values."""
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list) or not body["messages"]:
        raise BadRequest("the body must be a JSON object with a non-empty 'messages' list")
    sampling: dict[str, Any] = {}
    if body.get("max_tokens") is None and body.get("max_completion_tokens") is not None:
        body = {**body, "max_tokens": body["max_completion_tokens"]}
    for key, tp in _SAMPLING.items():
        if body.get(key) is not None:
            try:
                sampling[key] = tp(body[key])
            except (TypeError, ValueError):
                raise BadRequest(f"'{key}' must be a number, not {body[key]!r}") from None
    messages = [{"role": m.get("role"), "content": _text(m.get("content"))} if isinstance(m, dict) else m
                for m in body["messages"]]
    gen = models.generate_request(profile, messages, request_id, **sampling)
    stop = body.get("stop")
    extra = [stop] if isinstance(stop, str) else [s for s in stop if isinstance(s, str)] if isinstance(stop, list) else []
    gen.stop_strings = list(dict.fromkeys([*gen.stop_strings, *extra]))
    return gen


def _text(content: Any) -> Any:
    # Newer clients send content as a list of parts; only text parts mean anything to a text model.
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return content


def _finish_reason(reason: str) -> str:
    return "length" if reason == "length" else "stop"


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.0: a streamed body simply ends when the connection closes; no chunked encoding needed.
    protocol_version = "HTTP/1.0"
    server: "OpenAIServer"

    def log_message(self, fmt: str, *args: Any) -> None:
        if self.server.verbose:
            super().log_message(fmt, *args)

    def _json(self, status: int, data: Any) -> None:
        raw = json.dumps(data, ensure_ascii=False).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def _error(self, status: int, err: AppError) -> None:
        self._json(status, {"error": {"message": err.message, "type": err.code, "code": err.code}})

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if self.path.rstrip("/") in ("/v1/models", "/models"):
            self._json(200, {"object": "list", "data": [
                {"id": self.server.model_id, "object": "model", "owned_by": "desktop-chat", "created": 0}]})
        else:
            self._error(404, BadRequest(f"no route {self.path}; this server has /v1/models and /v1/chat/completions"))

    def do_POST(self) -> None:  # noqa: N802
        if self.path.rstrip("/") not in ("/v1/chat/completions", "/chat/completions"):
            self._error(404, BadRequest(f"no route {self.path}; this server has /v1/models and /v1/chat/completions"))
            return
        try:
            n = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(n) or b"null")
            gen = generate_from_body(self.server.profile, body, new_id("api"))
        except ValueError:
            self._error(400, BadRequest("the body is not valid JSON"))
            return
        except BadRequest as exc:
            self._error(400, exc)
            return
        if body.get("stream"):
            self._stream(gen, bool((body.get("stream_options") or {}).get("include_usage")))
        else:
            self._whole(gen)

    def _chunk(self, cid: str, created: int, delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
        return {"id": cid, "object": "chat.completion.chunk", "created": created, "model": self.server.model_id,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    def _stream(self, gen: P.Generate, include_usage: bool) -> None:
        client = self.server.client
        cid, created = f"chatcmpl-{gen.id}", int(time.time())
        events = client.generate(gen)
        started = False
        try:
            for ev in events:
                if isinstance(ev, P.Failed):
                    err = from_dict(ev.error)
                    if not started:
                        self._error(400 if isinstance(err, (TemplateError, ContextOverflowError)) else 500, err)
                        return
                    self._sse({"error": {"message": err.message, "type": err.code, "code": err.code}})
                    return
                if not started:
                    self.send_response(200)
                    self.send_header("Content-Type", "text/event-stream")
                    self.send_header("Cache-Control", "no-cache")
                    self.end_headers()
                    self._sse(self._chunk(cid, created, {"role": "assistant", "content": ""}, None))
                    started = True
                if isinstance(ev, P.TokenChunk) and ev.text:
                    self._sse(self._chunk(cid, created, {"content": ev.text}, None))
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

    def _whole(self, gen: P.Generate) -> None:
        last: Any = None
        for ev in self.server.client.generate(gen):
            last = ev
        if isinstance(last, P.Failed):
            err = from_dict(last.error)
            self._error(400 if isinstance(err, (TemplateError, ContextOverflowError)) else 500, err)
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
                 port: int = 8080, verbose: bool = False) -> None:
        if host not in LOOPBACK:
            raise AppError(f"serve has no authentication, so it only binds loopback ({', '.join(LOOPBACK)}), "
                           f"not {host!r}")
        self.client, self.profile, self.model_id, self.verbose = client, profile, model_id, verbose
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
