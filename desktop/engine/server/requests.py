"""``serve``'s request side: an OpenAI chat-completions body validated into a Generate (400s with OpenAI's
``param``), and the FIFO queue requests wait in for the one engine. Plain Python; runs on the HTTP handler
threads of the ``serve`` CLI process."""
from __future__ import annotations

import collections
import math
import threading
import time
from typing import Any

from desktop.engine.errors import AppError
from desktop.engine.inference import protocol as P
from desktop.engine.library import registry as models
from desktop.engine.profiles import Profile

_FLOAT_RANGES = {"temperature": (0.0, 2.0), "top_p": (0.0, 1.0), "min_p": (0.0, 1.0), "repeat_penalty": (0.0, 10.0)}
_INTS = ("top_k", "max_tokens", "seed")


class BadRequest(AppError):
    """400: a body the API does not accept. ``param`` names the field, as OpenAI's errors do."""

    code = "invalid_request_error"

    def __init__(self, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.param = param


def _number(body: dict[str, Any], key: str, integer: bool) -> Any:
    v = body[key]
    # JSON true/false are ints to Python; a string "0.5" is not a number to OpenAI either.
    if isinstance(v, bool) or not isinstance(v, (int, float)) or (integer and not float(v).is_integer()):
        raise BadRequest(f"'{key}' must be {'an integer' if integer else 'a number'}, not {v!r}", key, "invalid_type")
    if not math.isfinite(v):
        raise BadRequest(f"'{key}' must be finite", key, "invalid_value")
    return int(v) if integer else float(v)


def generate_from_body(profile: Profile | None, body: Any, request_id: str) -> P.Generate:
    """An OpenAI chat-completions body -> a Generate with the profile's defaults under the body's values."""
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list) or not body["messages"]:
        raise BadRequest("the body must be a JSON object with a non-empty 'messages' list", "messages")
    if body.get("max_tokens") is None and body.get("max_completion_tokens") is not None:
        body = {**body, "max_tokens": body["max_completion_tokens"]}
    sampling: dict[str, Any] = {}
    for key, (lo, hi) in _FLOAT_RANGES.items():
        if body.get(key) is not None:
            sampling[key] = _number(body, key, False)
            if not lo <= sampling[key] <= hi:
                raise BadRequest(f"'{key}' must be between {lo:g} and {hi:g}, not {body[key]!r}", key, "invalid_value")
    for key in _INTS:
        if body.get(key) is not None:
            sampling[key] = _number(body, key, True)
    if sampling.get("max_tokens", 1) < 1:
        raise BadRequest(f"'max_tokens' must be at least 1, not {sampling['max_tokens']}", "max_tokens",
                         "invalid_value")
    if body.get("n") is not None and (isinstance(body["n"], bool) or body["n"] != 1):
        raise BadRequest("only one choice per request is supported ('n' must be 1)", "n", "invalid_value")
    if not isinstance(body.get("stream", False), bool):
        raise BadRequest("'stream' must be true or false", "stream", "invalid_type")
    for i, m in enumerate(body["messages"]):
        if not isinstance(m, dict):
            raise BadRequest(f"messages[{i}] must be an object with 'role' and 'content'", f"messages[{i}]",
                             "invalid_type")
    messages = [{"role": m.get("role"), "content": _text(m.get("content"))} for m in body["messages"]]
    gen = models.generate_request(profile, messages, request_id, **sampling)
    stop = body.get("stop")
    if stop is not None and not isinstance(stop, (str, list)):
        raise BadRequest("'stop' must be a string or a list of strings", "stop", "invalid_type")
    extra = [stop] if isinstance(stop, str) else [s for s in stop if isinstance(s, str)] if isinstance(stop, list) else []
    gen.stop_strings = list(dict.fromkeys([*gen.stop_strings, *extra]))
    return gen


def _text(content: Any) -> Any:
    # Newer clients send content as a list of parts; only text parts mean anything to a text model.
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return content


class QueueFull(Exception):
    pass


class QueueTimeout(Exception):
    pass


class RequestQueue:
    """First come, first served: one request generates, up to ``limit`` wait, in arrival order."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._cond = threading.Condition()
        self._waiting: collections.deque[object] = collections.deque()
        self._busy = False

    def acquire(self, timeout: float) -> None:
        ticket = object()
        deadline = time.monotonic() + timeout
        with self._cond:
            if len(self._waiting) >= self.limit:
                raise QueueFull
            self._waiting.append(ticket)
            try:
                while self._busy or self._waiting[0] is not ticket:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise QueueTimeout
                    self._cond.wait(left)
            except BaseException:
                self._waiting.remove(ticket)
                self._cond.notify_all()
                raise
            self._waiting.popleft()
            self._busy = True

    def release(self) -> None:
        with self._cond:
            self._busy = False
            self._cond.notify_all()

    @property
    def waiting(self) -> int:
        with self._cond:
            return len(self._waiting)


__all__ = ["BadRequest", "generate_from_body", "QueueFull", "QueueTimeout", "RequestQueue"]
