"""Ollama's API on the same port, for programs that only know Ollama: ``/``, ``/api/version``, ``/api/tags``,
``/api/ps``, ``/api/show``, ``/api/chat``, ``/api/generate`` (streamed as NDJSON by default, or whole) and
``/api/embed``. Errors are Ollama's ``{"error": "..."}``. Plain Python; runs on the server's handler threads.
"""
from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from typing import Any

from desktop.engine.inference import protocol as P
from desktop.engine.inference.client import new_id
from desktop.engine.server import requests as R
from desktop.engine.server.openai_routes import embed_texts, split_calls
from desktop.engine.server.requests import BadRequest

#: The Ollama version this API follows (clients such as Open WebUI check it).
VERSION = "0.9.0"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts or 0, timezone.utc).isoformat().replace("+00:00", "Z")


def _details(m: Any) -> dict[str, Any]:
    params_b = m.profile.architecture.params_b if m.profile is not None else 0.0
    return {"parent_model": "", "format": "gguf", "family": "", "families": None,
            "parameter_size": f"{params_b:g}B" if params_b else "", "quantization_level": m.quant or ""}


def _entry(m: Any) -> dict[str, Any]:
    return {"name": m.id, "model": m.id, "modified_at": _iso(m.modified), "size": m.size,
            "digest": f"{abs(hash(m.path)):064x}"[-64:], "details": _details(m)}


def root(h: Any, _body: Any) -> None:
    h.send_text(200, "Ollama is running")


def version(h: Any, _body: Any) -> None:
    h.send_json(200, {"version": VERSION})


def tags(h: Any, _body: Any) -> None:
    h.send_json(200, {"models": [_entry(m) for m in h.app.pool.models()]})


def ps(h: Any, _body: Any) -> None:
    loaded = h.app.pool.loaded
    ttl = h.app.config.model_ttl_s - h.app.pool.idle_s()
    h.send_json(200, {"models": [{**_entry(m), "expires_at": _iso(time.time() + max(0.0, ttl)), "size_vram": 0}
                                 for m in h.app.pool.models() if m.id == loaded]})


def _body(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    return body


def _model(h: Any, body: dict[str, Any]) -> Any:
    name = body.get("model") or body.get("name")
    if not name:
        raise BadRequest("model is required", "model")
    return h.app.pool.find(name)


def show(h: Any, body: Any) -> None:
    m = _model(h, _body(body))
    template = ""
    if m.path:
        from desktop.engine.gguf import doctor

        try:
            template = doctor.inspect(m.path).chat_template or ""
        except Exception:  # noqa: BLE001 - an unreadable header still has a name and a size
            template = ""
    h.send_json(200, {"modelfile": f"FROM {m.path}\n", "parameters": "", "template": template,
                      "details": _details(m), "model_info": {"general.name": m.name or m.id},
                      "capabilities": ["completion", "tools", "embedding"], "modified_at": _iso(m.modified)})


def _sampling(body: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    opts = body.get("options") or {}
    if not isinstance(opts, dict):
        raise BadRequest("options must be an object", "options")
    if opts.get("num_predict") in (-1, -2):  # "until the context is full": the profile's limit
        opts = {k: v for k, v in opts.items() if k != "num_predict"}
    sampling = R.sampling_from(opts, max_key="num_predict", prefix="options.")
    return sampling, R.stop_list(opts.get("stop"), "options.stop")


def _final(h: Any, model_id: str, fin: P.Finished, key: str, content: Any, t0: float) -> dict[str, Any]:
    s = fin.stats
    ns = lambda sec: int(sec * 1e9)  # noqa: E731
    out: dict[str, Any] = {"model": model_id, "created_at": _now(), key: content, "done": True,
                           "done_reason": "length" if fin.finish_reason == "length" else "stop",
                           "total_duration": ns(time.monotonic() - t0), "load_duration": 0,
                           "prompt_eval_count": s.prompt_tokens, "prompt_eval_duration": ns(s.ttft_s),
                           "eval_count": s.generated_tokens, "eval_duration": ns(max(0.0, s.total_s - s.ttft_s))}
    return out


def _keep_alive_zero(body: dict[str, Any]) -> bool:
    """``keep_alive: 0`` asks Ollama to unload the model right after the request."""
    return body.get("keep_alive") in (0, "0", "0s", "0m")


def _run(h: Any, model: Any, gen: P.Generate, parser: Any, stream: bool, chat: bool) -> None:
    try:
        _answer(h, model, gen, parser, stream, chat)
    finally:
        if _keep_alive_zero(h.body):
            h.app.unload()


def _answer(h: Any, model: Any, gen: P.Generate, parser: Any, stream: bool, chat: bool) -> None:
    t0 = time.monotonic()
    key = "message" if chat else "response"

    def piece(text: str, calls: list[Any] | None = None, thinking: str = "") -> Any:
        if not chat:
            return text
        msg: dict[str, Any] = {"role": "assistant", "content": text}
        if thinking:  # Ollama's field for a thinking model's reasoning
            msg["thinking"] = thinking
        if calls:
            msg["tool_calls"] = [{"function": {"name": c.name, "arguments": c.arguments}} for c in calls]
        return msg

    with h.turn(model):
        if not stream:
            last = h.run_whole(gen)
            if last is not None:
                text, calls = split_calls(parser, last.text)
                out = _final(h, model.id, last, key, piece(text, calls, last.reasoning), t0)
                if last.reasoning and not chat:
                    out["thinking"] = last.reasoning
                h.send_json(200, out)
            return

        def line(d: dict[str, Any]) -> None:
            h.write(json.dumps(d, ensure_ascii=False).encode("utf-8") + b"\n")

        def on_event(ev: Any) -> None:
            if isinstance(ev, P.TokenChunk) and ev.reasoning:
                part = {"model": model.id, "created_at": _now(), key: piece("", None, ev.reasoning), "done": False}
                if not chat:
                    part["thinking"] = ev.reasoning
                line(part)
            if isinstance(ev, P.TokenChunk) and ev.text:
                shown = parser.feed(ev.text) if parser else ev.text
                if shown:
                    line({"model": model.id, "created_at": _now(), key: piece(shown), "done": False})
            elif isinstance(ev, P.Finished):
                rest, calls = parser.finish() if parser else ("", [])
                line(_final(h, model.id, ev, key, piece(rest, calls), t0))

        h.run_stream(gen, "application/x-ndjson", on_event, lambda message, _code: line({"error": message}))


def chat(h: Any, body: Any) -> None:
    body = h.body = _body(body)
    model = _model(h, body)
    sampling, stop = _sampling(body)
    stream = R.check_stream(body, default=True)
    messages = R.chat_messages(body.get("messages"))
    tools = R.function_tools(body.get("tools"))
    schema = R.schema_from(body.get("format"), "format")
    h.schema_param = "format"
    gen, parser = R.build_generate(model, new_id("ochat"), messages=messages, sampling=sampling, stop=stop,
                                   tools=tools, json_schema=schema)
    _run(h, model, gen, parser, stream, chat=True)


def generate(h: Any, body: Any) -> None:
    body = h.body = _body(body)
    model = _model(h, body)
    prompt = body.get("prompt", "")
    if not isinstance(prompt, str):
        raise BadRequest("prompt must be a string", "prompt")
    if not prompt:  # Ollama's way to load a model (or, with keep_alive 0, to unload it)
        if _keep_alive_zero(body):
            h.app.unload()
            h.send_json(200, {"model": model.id, "created_at": _now(), "response": "", "done": True,
                              "done_reason": "unload"})
            return
        with h.turn(model):
            pass
        h.send_json(200, {"model": model.id, "created_at": _now(), "response": "", "done": True,
                          "done_reason": "load"})
        return
    sampling, stop = _sampling(body)
    stream = R.check_stream(body, default=True)
    schema = R.schema_from(body.get("format"), "format")
    h.schema_param = "format"
    if body.get("raw"):
        gen, _ = R.build_generate(model, new_id("ogen"), prompt=prompt, sampling=sampling, stop=stop,
                                  json_schema=schema)
    else:
        system = body.get("system")
        msgs = ([{"role": "system", "content": str(system)}] if system else []) + [{"role": "user", "content": prompt}]
        gen, _ = R.build_generate(model, new_id("ogen"), messages=msgs, sampling=sampling, stop=stop,
                                  json_schema=schema)
    _run(h, model, gen, None, stream, chat=False)


def embed(h: Any, body: Any) -> None:
    body = _body(body)
    model = _model(h, body)
    texts = body.get("input")
    if isinstance(texts, str):
        texts = [texts]
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise BadRequest("input must be a string or a non-empty list of strings", "input")
    t0 = time.monotonic()
    out = embed_texts(h, model, texts, truncate=body.get("truncate", True) is not False)
    if out is not None:
        h.send_json(200, {"model": model.id, "embeddings": out.vectors, "total_duration": int((time.monotonic() - t0) * 1e9),
                          "load_duration": 0, "prompt_eval_count": out.n_tokens})


ROUTES = {("GET", "/"): root, ("GET", "/api/version"): version, ("GET", "/api/tags"): tags, ("GET", "/api/ps"): ps,
          ("POST", "/api/show"): show, ("POST", "/api/chat"): chat, ("POST", "/api/generate"): generate,
          ("POST", "/api/embed"): embed}

__all__ = ["ROUTES", "VERSION"]
