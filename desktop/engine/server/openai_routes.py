"""OpenAI's API on the local server: ``/v1/models``, ``/v1/chat/completions``, ``/v1/completions`` and
``/v1/embeddings`` (``/v1/responses`` is ``responses_api``). Plain Python; runs on the server's handler threads.

Chat completions take ``response_format`` (``json_object``, ``json_schema``: the engine enforces it with a grammar,
so the answer parses), ``tools``/``tool_choice`` (offered and parsed in the model's own tool format, answered as
``tool_calls``) and ``stream_options.include_usage``. Unknown fields are ignored, as OpenAI does; bad values get
400 naming the field.
"""
from __future__ import annotations

import json
import time
from typing import Any

from desktop.engine.inference import protocol as P
from desktop.engine.inference.client import new_id
from desktop.engine.server import requests as R
from desktop.engine.server.requests import BadRequest


def _body(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object", None, "invalid_type")
    return body


def finish_reason(reason: str, calls: bool = False) -> str:
    return "tool_calls" if calls else "length" if reason == "length" else "stop"


def usage(fin: P.Finished | None) -> dict[str, int]:
    s = fin.stats if fin else P.GenerationStats()
    return {"prompt_tokens": s.prompt_tokens, "completion_tokens": s.generated_tokens,
            "total_tokens": s.prompt_tokens + s.generated_tokens}


def openai_calls(calls: list[Any], streamed: bool = False) -> list[dict[str, Any]]:
    out = []
    for i, c in enumerate(calls):
        d: dict[str, Any] = {"id": c.id, "type": "function",
                             "function": {"name": c.name, "arguments": json.dumps(c.arguments, ensure_ascii=False)}}
        out.append({"index": i, **d} if streamed else d)
    return out


def models(h: Any, _body: Any) -> None:
    h.send_json(200, {"object": "list", "data": [
        {"id": m.id, "object": "model", "owned_by": "desktop-chat", "created": int(m.modified)}
        for m in h.app.pool.models()]})


def _sse(h: Any, data: Any) -> None:
    h.write(b"data: " + json.dumps(data, ensure_ascii=False).encode("utf-8") + b"\n\n")


def _sse_error(h: Any, message: str, code: str) -> None:
    """An error after the stream began (its status line is sent): OpenAI's error object as the last event."""
    _sse(h, {"error": {"message": message, "type": "server_error", "code": code}})


def chat(h: Any, body: Any) -> None:
    body = _body(body)
    model = h.app.pool.find(body.get("model"))
    if body.get("max_tokens") is None and body.get("max_completion_tokens") is not None:
        body = {**body, "max_tokens": body["max_completion_tokens"]}
    if body.get("n") is not None and (isinstance(body["n"], bool) or body["n"] != 1):
        raise BadRequest("only one choice per request is supported ('n' must be 1)", "n", "invalid_value")
    sampling = R.sampling_from(body)
    stream = R.check_stream(body)
    opts = body.get("stream_options")
    if opts is not None and not isinstance(opts, dict):
        raise BadRequest("'stream_options' must be an object", "stream_options", "invalid_type")
    include_usage = bool((opts or {}).get("include_usage"))
    messages = R.chat_messages(body.get("messages"))
    tools = R.choose_tools(R.function_tools(body.get("tools")), body.get("tool_choice"))
    schema = R.schema_from(body.get("response_format"), "response_format")
    h.schema_param = "response_format"
    gen, parser = R.build_generate(model, new_id("api"), messages=messages, sampling=sampling,
                                   stop=R.stop_list(body.get("stop")), tools=tools, json_schema=schema)
    cid, created = f"chatcmpl-{gen.id}", int(time.time())

    def chunk(delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
        return {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model.id,
                "system_fingerprint": None, "choices": [{"index": 0, "delta": delta, "logprobs": None,
                                                         "finish_reason": finish}]}

    with h.turn(model):
        if stream:
            _stream(h, gen, parser, chunk, include_usage)
            return
        fin = h.run_whole(gen)
        if fin is None:
            return
        text, calls = split_calls(parser, fin.text)
        message: dict[str, Any] = {"role": "assistant", "content": text if (text or not calls) else None}
        if fin.reasoning:  # the thinking in llama-server's (and DeepSeek's) field, which OpenAI-style clients show
            message["reasoning_content"] = fin.reasoning
        if calls:
            message["tool_calls"] = openai_calls(calls)
        h.send_json(200, {"id": cid, "object": "chat.completion", "created": created, "model": model.id,
                          "system_fingerprint": None,
                          "choices": [{"index": 0, "message": message, "logprobs": None,
                                       "finish_reason": finish_reason(fin.finish_reason, bool(calls))}],
                          "usage": usage(fin)})


def split_calls(parser: Any, text: str) -> tuple[str, list[Any]]:
    """A whole answer's visible text and its tool calls (none without a parser: no tools were offered)."""
    from desktop.engine.tools import formats

    return formats.parse_tool_calls(parser.fmt, text) if parser else (text, [])


def _stream(h: Any, gen: P.Generate, parser: Any, chunk: Any, include_usage: bool) -> None:
    def on_event(ev: Any) -> None:
        if isinstance(ev, P.TokenChunk):
            if ev.reasoning:
                _sse(h, chunk({"reasoning_content": ev.reasoning}, None))
            shown = (parser.feed(ev.text) if parser else ev.text) if ev.text else ""
            if shown:
                _sse(h, chunk({"content": shown}, None))
        elif isinstance(ev, P.Finished):
            calls: list[Any] = []
            if parser:
                rest, calls = parser.finish()
                if rest:
                    _sse(h, chunk({"content": rest}, None))
                if calls:
                    _sse(h, chunk({"tool_calls": openai_calls(calls, streamed=True)}, None))
            _sse(h, chunk({}, finish_reason(ev.finish_reason, bool(calls))))
            if include_usage:
                _sse(h, {**chunk({}, None), "choices": [], "usage": usage(ev)})
            h.write(b"data: [DONE]\n\n")

    h.run_stream(gen, "text/event-stream", on_event, lambda message, code: _sse_error(h, message, code),
                 on_start=lambda: _sse(h, chunk({"role": "assistant", "content": ""}, None)))


def completions(h: Any, body: Any) -> None:
    body = _body(body)
    model = h.app.pool.find(body.get("model"))
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise BadRequest("'prompt' must be a string (one prompt per request)", "prompt", "invalid_type")
    if body.get("n") is not None and body["n"] != 1:
        raise BadRequest("only one choice per request is supported ('n' must be 1)", "n", "invalid_value")
    sampling = R.sampling_from(body)
    sampling.setdefault("max_tokens", 16)  # OpenAI's default for completions
    stream = R.check_stream(body)
    include_usage = bool((body.get("stream_options") or {}).get("include_usage")) if isinstance(
        body.get("stream_options"), dict) else False
    echo = body.get("echo") is True
    gen, _ = R.build_generate(model, new_id("cmpl"), prompt=prompt, sampling=sampling,
                              stop=R.stop_list(body.get("stop")), json_schema=None)
    cid, created = f"cmpl-{gen.id}", int(time.time())

    def obj(text: str, finish: str | None) -> dict[str, Any]:
        return {"id": cid, "object": "text_completion", "created": created, "model": model.id,
                "system_fingerprint": None,
                "choices": [{"text": text, "index": 0, "logprobs": None, "finish_reason": finish}]}

    with h.turn(model):
        if not stream:
            fin = h.run_whole(gen)
            if fin is not None:
                h.send_json(200, {**obj((prompt if echo else "") + fin.text, finish_reason(fin.finish_reason)),
                                  "usage": usage(fin)})
            return

        def on_event(ev: Any) -> None:
            if isinstance(ev, P.TokenChunk) and ev.text:
                _sse(h, obj(ev.text, None))
            elif isinstance(ev, P.Finished):
                _sse(h, obj("", finish_reason(ev.finish_reason)))
                if include_usage:
                    _sse(h, {**obj("", None), "choices": [], "usage": usage(ev)})
                h.write(b"data: [DONE]\n\n")

        h.run_stream(gen, "text/event-stream", on_event, lambda message, code: _sse_error(h, message, code),
                     on_start=(lambda: _sse(h, obj(prompt, None))) if echo else None)


def embed_texts(h: Any, model: Any, texts: list[str], truncate: bool) -> P.Embeddings | None:
    """Embeddings of ``texts`` with ``model`` loaded in embedding mode; answers the error itself (None)."""
    msg = P.Embed(new_id("emb"), texts, normalize=True, truncate=truncate)
    with h.turn(model, embedding=True):
        last = h.run_whole(msg)
    if not isinstance(last, P.Embeddings):
        return None
    h.stats = P.GenerationStats(prompt_tokens=last.n_tokens)
    return last


def embeddings(h: Any, body: Any) -> None:
    body = _body(body)
    model = h.app.pool.find(body.get("model"))
    texts = body.get("input")
    if isinstance(texts, str):
        texts = [texts]
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise BadRequest("'input' must be a string or a non-empty list of strings (token arrays are not supported)",
                         "input", "invalid_value")
    fmt = body.get("encoding_format")
    if fmt not in (None, "float", "base64"):
        raise BadRequest("'encoding_format' must be float or base64", "encoding_format", "invalid_value")
    out = embed_texts(h, model, texts, truncate=False)
    if out is None:
        return
    data = []
    for i, vec in enumerate(out.vectors):
        value: Any = vec
        if fmt == "base64":  # what the openai package asks for by default: little-endian float32
            import base64
            import struct

            value = base64.b64encode(struct.pack(f"<{len(vec)}f", *vec)).decode()
        data.append({"object": "embedding", "index": i, "embedding": value})
    h.send_json(200, {"object": "list", "data": data, "model": model.id,
                      "usage": {"prompt_tokens": out.n_tokens, "total_tokens": out.n_tokens}})


ROUTES = {}
for _prefix in ("/v1", ""):
    ROUTES.update({("GET", f"{_prefix}/models"): models, ("POST", f"{_prefix}/chat/completions"): chat,
                   ("POST", f"{_prefix}/completions"): completions, ("POST", f"{_prefix}/embeddings"): embeddings})

__all__ = ["ROUTES", "embed_texts", "split_calls", "finish_reason", "openai_calls", "usage"]
