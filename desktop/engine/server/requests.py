"""The server's request side, shared by its APIs: body fields validated (400 naming the field, as OpenAI's
``param`` does), a request turned into a Generate for the model it names (messages, tools in the model's own
format, a JSON schema for constrained output), and the FIFO queue requests wait in for the one engine. Plain
Python; runs on the server's HTTP handler threads."""
from __future__ import annotations

import collections
import math
import threading
import time
from typing import Any

from desktop.engine.errors import AppError
from desktop.engine.inference import protocol as P
from desktop.engine.library import registry
from desktop.engine.profiles.fields import FIELDS

# The request's sampling parameters and their ranges: the settings table's, as in profiles and the settings forms.
_PARAMS = {f.name: f for f in FIELDS if f.serve}


class BadRequest(AppError):
    """400: a body the API does not accept. ``param`` names the field, as OpenAI's errors do."""

    code = "invalid_request_error"

    def __init__(self, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.param = param


def _number(body: dict[str, Any], key: str, integer: bool, prefix: str = "") -> Any:
    v = body[key]
    name = prefix + key
    # JSON true/false are ints to Python; a string "0.5" is not a number to OpenAI either.
    if isinstance(v, bool) or not isinstance(v, (int, float)) or (integer and not float(v).is_integer()):
        raise BadRequest(f"'{name}' must be {'an integer' if integer else 'a number'}, not {v!r}", name,
                         "invalid_type")
    if not math.isfinite(v):
        raise BadRequest(f"'{name}' must be finite", name, "invalid_value")
    return int(v) if integer else float(v)


def sampling_from(body: dict[str, Any], *, max_key: str = "max_tokens", prefix: str = "") -> dict[str, Any]:
    """The sampling values of a body, validated (400 naming the field). ``prefix`` names a nested object
    (Ollama's ``options.``) in the error; ``max_key`` is the API's name for max_tokens."""
    sampling: dict[str, Any] = {}
    for name, f in _PARAMS.items():
        key = max_key if name == "max_tokens" else name
        if body.get(key) is not None:
            sampling[name] = _number(body, key, f.kind == "int", prefix)
            why = f.problem(sampling[name])
            if why:
                raise BadRequest(f"'{prefix}{key}' {why}", prefix + key, "invalid_value")
    return sampling


def check_stream(body: dict[str, Any], default: bool = False) -> bool:
    v = body.get("stream", default)
    if v is None:
        return default
    if not isinstance(v, bool):
        raise BadRequest("'stream' must be true or false", "stream", "invalid_type")
    return v


def stop_list(value: Any, param: str = "stop") -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return [v for v in value if v]
    raise BadRequest(f"'{param}' must be a string or a list of strings", param, "invalid_type")


def text_of(content: Any) -> str:
    """Message content as text: newer clients send a list of parts; only text parts mean anything to a text model."""
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict)
                       and p.get("type") in ("text", "input_text", "output_text"))
    return "" if content is None else str(content)


_IMAGE_PARTS = ("image_url", "input_image")


def _stored(data: bytes) -> str:
    from desktop.engine.vision import images

    return str(images.store(data))


def _image_parts(content: Any, param: str) -> list[str]:
    """The images of OpenAI content parts (``image_url`` in chat, ``input_image`` in Responses), each a data URL,
    stored by content hash in the data dir: their paths. Remote URLs and anything not an image: 400 naming the
    part."""
    from desktop.engine.errors import ImageError
    from desktop.engine.vision import images

    if not isinstance(content, list):
        return []
    paths: list[str] = []
    for k, part in enumerate(content):
        if not isinstance(part, dict) or part.get("type") not in _IMAGE_PARTS:
            continue
        url = part.get("image_url")
        field = f"{param}.content[{k}].image_url"
        if isinstance(url, dict):  # chat: {"url": ..., "detail": ...}; Responses: the URL itself
            url, field = url.get("url"), field + ".url"
        try:
            paths.append(_stored(images.decode_data_url(url, f"'{field}'")))
        except ImageError as exc:
            raise BadRequest(exc.message, field, "invalid_value") from exc
    return paths


def _ollama_images(raw: Any, param: str) -> list[str]:
    """Ollama's ``images``: a list of base64 strings (the ``ollama`` client encodes files and bytes so)."""
    import base64
    import binascii

    from desktop.engine.errors import ImageError

    if raw is None:
        return []
    if not isinstance(raw, list):
        raise BadRequest(f"'{param}.images' must be a list of base64 strings", f"{param}.images", "invalid_type")
    paths: list[str] = []
    for k, item in enumerate(raw):
        field = f"{param}.images[{k}]"
        if not isinstance(item, str):
            raise BadRequest(f"'{field}' must be a base64 string", field, "invalid_type")
        if item.startswith("data:"):
            item = item.partition(",")[2]
        try:
            paths.append(_stored(base64.b64decode(item, validate=True)))
        except (binascii.Error, ValueError) as exc:
            raise BadRequest(f"'{field}' is not valid base64", field, "invalid_value") from exc
        except ImageError as exc:
            raise BadRequest(f"'{field}': {exc.message}", field, "invalid_value") from exc
    return paths


def chat_messages(raw: Any, param: str = "messages") -> list[dict[str, Any]]:
    """OpenAI or Ollama chat messages in the internal shape of ``tools.formats`` (tool calls with dict arguments,
    tool results with the call's name). Images (OpenAI ``image_url`` data URLs, Ollama ``images``) are stored by
    content hash in the data dir and named on the message's ``images``, as the chat sends them."""
    from desktop.engine.tools import formats

    if not isinstance(raw, list) or not raw:
        raise BadRequest(f"the body must have a non-empty '{param}' list", param, "invalid_value")
    out: list[dict[str, Any]] = []
    names: dict[str, str] = {}
    for i, m in enumerate(raw):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise BadRequest(f"{param}[{i}] must be an object with a 'role'", f"{param}[{i}]", "invalid_type")
        role = "system" if m["role"] == "developer" else m["role"]
        msg: dict[str, Any] = {"role": role, "content": text_of(m.get("content"))}
        pics = _image_parts(m.get("content"), f"{param}[{i}]") + _ollama_images(m.get("images"), f"{param}[{i}]")
        if pics:
            msg["images"] = pics
        if role == "assistant" and m.get("tool_calls"):
            calls = []
            for j, c in enumerate(m["tool_calls"] if isinstance(m["tool_calls"], list) else [None]):
                call = formats.call_from(c)
                if call is None:
                    raise BadRequest(f"{param}[{i}].tool_calls[{j}] is not a function call with a name and JSON "
                                     "arguments", f"{param}[{i}].tool_calls", "invalid_value")
                calls.append(call.to_message())
                names[call.id] = call.name
            msg["tool_calls"] = calls
        elif role == "tool":
            cid = str(m.get("tool_call_id") or "")
            msg.update(tool_call_id=cid, name=str(m.get("name") or m.get("tool_name") or names.get(cid, "")))
        out.append(msg)
    return out


def schema_from(value: Any, param: str) -> dict[str, Any] | None:
    """The JSON schema a ``response_format`` (OpenAI chat), ``text.format`` (Responses) or ``format`` (Ollama)
    asks the output to match: None for plain text, ``{"type": "object"}`` for any JSON object."""
    if value is None or value == "":
        return None
    if value == "json":  # Ollama
        return {"type": "object"}
    if not isinstance(value, dict):
        raise BadRequest(f"'{param}' must be an object", param, "invalid_type")
    kind = value.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "object"}
    if kind == "json_schema":
        inner = value.get("json_schema", value)  # chat nests it; Responses' text.format is flat
        schema = inner.get("schema") if isinstance(inner, dict) else None
        if not isinstance(schema, dict):
            raise BadRequest(f"'{param}' of type json_schema needs a 'schema' object", param, "invalid_value")
        return schema
    if "properties" in value or kind == "object":  # Ollama: the schema itself
        return value
    raise BadRequest(f"'{param}.type' must be text, json_object or json_schema, not {kind!r}", param, "invalid_value")


def function_tools(tools: Any, param: str = "tools") -> list[dict[str, Any]]:
    """Function tools, given as Chat Completions (``{"type", "function": {...}}``), Responses (flat) or Ollama
    write them, as the chat-template spec ``{"type": "function", "function": {name, description, parameters}}``."""
    from desktop.engine.tools import formats

    if tools is None:
        return []
    if not isinstance(tools, list):
        raise BadRequest(f"'{param}' must be a list", param, "invalid_type")
    specs = []
    for i, t in enumerate(tools):
        fn = t.get("function", t) if isinstance(t, dict) else None
        if not isinstance(t, dict) or t.get("type", "function") != "function":
            raise BadRequest(f"{param}[{i}]: only function tools are supported", f"{param}[{i}].type",
                             "invalid_value")
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn["name"]:
            raise BadRequest(f"{param}[{i}] needs a function name", f"{param}[{i}].name", "invalid_value")
        params = fn.get("parameters")
        if params is not None and not isinstance(params, dict):
            raise BadRequest(f"{param}[{i}].parameters must be a JSON schema object", f"{param}[{i}].parameters",
                             "invalid_type")
        specs.append(formats.tool_spec(fn["name"], str(fn.get("description") or ""), params))
    return specs


def choose_tools(specs: list[dict[str, Any]], choice: Any, param: str = "tool_choice") -> list[dict[str, Any]]:
    """The tools a ``tool_choice`` leaves on offer: none for "none", the named one for a named choice."""
    if choice is None or choice in ("auto", "required"):
        return specs
    if choice == "none":
        return []
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name") if "function" in choice else choice.get("name")
        picked = [s for s in specs if s["function"]["name"] == name]
        if not picked:
            raise BadRequest(f"'{param}' names {name!r}, which is not in 'tools'", param, "invalid_value")
        return picked
    raise BadRequest(f"'{param}' must be none, auto, required or a function", param, "invalid_value")


def build_generate(model: Any, request_id: str, *, messages: list[dict[str, Any]] | None = None,
                   prompt: str | None = None, sampling: dict[str, Any] | None = None, stop: list[str] | None = None,
                   tools: list[dict[str, Any]] | None = None, json_schema: dict[str, Any] | None = None
                   ) -> tuple[P.Generate, Any]:
    """The Generate for a request to ``model`` (a ``pool.ServedModel``), and the tool-call parser of its answer
    (None without tools). Chat messages render with the model's profile; tool turns and offered tools in the
    model's own tool format (``tools.formats``), as the app's tool loop renders them."""
    from desktop.engine.tools.loop import turns_for

    profile = model.profile
    gen = registry.generate_request(profile, [], request_id, **(sampling or {}))
    parser = None
    if prompt is not None:
        gen.prompt = prompt
    elif tools or any(m.get("tool_calls") or m["role"] == "tool" for m in messages or []):
        turns = turns_for(profile, model.path or None, gen)
        gen = turns.request(messages or [], tools or [])
        gen.id = request_id
        parser = turns.parser() if tools else None
    else:
        gen.messages = [{"role": m["role"], "content": m["content"], **({"images": m["images"]} if m.get("images")
                                                                     else {})} for m in messages or []]
    gen.stop_strings = list(dict.fromkeys([*gen.stop_strings, *(stop or [])]))
    gen.json_schema = json_schema
    return gen, parser


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

    def try_acquire(self) -> bool:
        """Take the turn only if it is free and nobody waits (the idle unloader never makes a request wait)."""
        with self._cond:
            if self._busy or self._waiting:
                return False
            self._busy = True
            return True

    def release(self) -> None:
        with self._cond:
            self._busy = False
            self._cond.notify_all()

    @property
    def waiting(self) -> int:
        with self._cond:
            return len(self._waiting)


__all__ = ["BadRequest", "QueueFull", "QueueTimeout", "RequestQueue", "build_generate", "chat_messages",
           "check_stream", "choose_tools", "function_tools", "sampling_from", "schema_from", "stop_list", "text_of"]
