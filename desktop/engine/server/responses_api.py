"""OpenAI's Responses API (``/v1/responses``), the one the official SDK now leads with: text in and out, streamed
as typed events, function tools and structured output (``text.format``). Nothing is stored, so
``previous_response_id`` is refused. Plain Python; runs on the server's handler threads.
"""
from __future__ import annotations

import json
import time
from typing import Any

from desktop.engine.inference import protocol as P
from desktop.engine.inference.client import new_id
from desktop.engine.server import requests as R
from desktop.engine.server.openai_routes import split_calls
from desktop.engine.server.requests import BadRequest


def _messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    """``instructions`` and ``input`` (a string, or message / function_call / function_call_output items) as
    chat messages."""
    out: list[dict[str, Any]] = []
    if body.get("instructions") is not None:
        if not isinstance(body["instructions"], str):
            raise BadRequest("'instructions' must be a string", "instructions", "invalid_type")
        out.append({"role": "system", "content": body["instructions"]})
    items = body.get("input")
    if isinstance(items, str):
        return R.chat_messages([*out, {"role": "user", "content": items}], "input")
    if not isinstance(items, list) or not items:
        raise BadRequest("'input' must be a string or a non-empty list of items", "input", "invalid_value")
    for i, item in enumerate(items):
        kind = item.get("type", "message") if isinstance(item, dict) else None
        if kind == "message":
            out.append({"role": item.get("role"), "content": item.get("content")})
        elif kind == "function_call":
            out.append({"role": "assistant", "content": "", "tool_calls": [
                {"id": item.get("call_id"), "function": {"name": item.get("name"), "arguments": item.get("arguments")}}]})
        elif kind == "function_call_output":
            out.append({"role": "tool", "tool_call_id": item.get("call_id"), "content": R.text_of(item.get("output"))})
        else:
            raise BadRequest(f"input[{i}] has the unsupported type {kind!r}", f"input[{i}].type", "invalid_value")
    return R.chat_messages(out, "input")


def respond(h: Any, body: Any) -> None:
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object", None, "invalid_type")
    if body.get("previous_response_id") is not None:
        raise BadRequest("this server stores no responses: send the whole conversation in 'input'",
                         "previous_response_id", "unsupported_value")
    model = h.app.pool.find(body.get("model"))
    sampling = R.sampling_from(body, max_key="max_output_tokens")
    stream = R.check_stream(body)
    text_opts = body.get("text")
    if text_opts is not None and not isinstance(text_opts, dict):
        raise BadRequest("'text' must be an object", "text", "invalid_type")
    schema = R.schema_from((text_opts or {}).get("format"), "text.format")
    h.schema_param = "text.format"
    tools = R.choose_tools(R.function_tools(body.get("tools")), body.get("tool_choice"))
    gen, parser = R.build_generate(model, new_id("resp"), messages=_messages(body), sampling=sampling,
                                   tools=tools, json_schema=schema)
    rid, msg_id = f"resp_{gen.id}", f"msg_{gen.id}"
    created = int(time.time())
    seq = [0]

    def response(status: str, output: list[dict[str, Any]], fin: P.Finished | None = None) -> dict[str, Any]:
        s = fin.stats if fin else P.GenerationStats()
        return {
            "id": rid, "object": "response", "created_at": created, "status": status, "error": None,
            "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
            "instructions": body.get("instructions"), "max_output_tokens": body.get("max_output_tokens"),
            "model": model.id, "output": output, "parallel_tool_calls": True, "previous_response_id": None,
            "temperature": body.get("temperature"), "top_p": body.get("top_p"),
            "tool_choice": body.get("tool_choice", "auto"), "tools": body.get("tools") or [],
            "text": text_opts or {"format": {"type": "text"}}, "truncation": "disabled", "metadata": {},
            "usage": {"input_tokens": s.prompt_tokens, "input_tokens_details": {"cached_tokens": 0},
                      "output_tokens": s.generated_tokens, "output_tokens_details": {"reasoning_tokens": 0},
                      "total_tokens": s.prompt_tokens + s.generated_tokens} if fin else None}

    def message(text: str, status: str = "completed") -> dict[str, Any]:
        return {"type": "message", "id": msg_id, "status": status, "role": "assistant",
                "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]}

    def call_items(calls: list[Any]) -> list[dict[str, Any]]:
        return [{"type": "function_call", "id": f"fc_{c.id}", "call_id": c.id, "name": c.name,
                 "arguments": json.dumps(c.arguments, ensure_ascii=False), "status": "completed"} for c in calls]

    def event(kind: str, **data: Any) -> None:
        payload = {"type": kind, "sequence_number": seq[0], **data}
        seq[0] += 1
        h.write(f"event: {kind}\ndata: ".encode() + json.dumps(payload, ensure_ascii=False).encode("utf-8") + b"\n\n")

    with h.turn(model):
        if not stream:
            last = h.run_whole(gen)
            if last is not None:
                text, calls = split_calls(parser, last.text)
                output = ([message(text)] if text or not calls else []) + call_items(calls)
                status = "incomplete" if last.finish_reason == "length" else "completed"
                h.send_json(200, response(status, output, last))
            return
        opened = False
        parts: list[str] = []
        ref = {"item_id": msg_id, "output_index": 0, "content_index": 0}

        def start() -> None:
            event("response.created", response=response("in_progress", []))
            event("response.in_progress", response=response("in_progress", []))

        def on_event(ev: Any) -> None:
            nonlocal opened
            shown = ""
            if isinstance(ev, P.TokenChunk) and ev.text:
                shown = parser.feed(ev.text) if parser else ev.text
            calls: list[Any] = []
            if isinstance(ev, P.Finished) and parser:
                rest, calls = parser.finish()
                shown += rest
            if shown and not opened:
                event("response.output_item.added", output_index=0, item=message("", "in_progress"))
                event("response.content_part.added", **ref,
                      part={"type": "output_text", "text": "", "annotations": [], "logprobs": []})
                opened = True
            if shown:
                parts.append(shown)
                event("response.output_text.delta", **ref, delta=shown, logprobs=[])
            if isinstance(ev, P.Finished):
                finish(ev, calls)

        def finish(ev: P.Finished, calls: list[Any]) -> None:
            text = "".join(parts)
            output = [message(text)] if opened else []
            if opened:
                event("response.output_text.done", **ref, text=text, logprobs=[])
                event("response.content_part.done", **ref,
                      part={"type": "output_text", "text": text, "annotations": [], "logprobs": []})
                event("response.output_item.done", output_index=0, item=output[0])
            for item in call_items(calls):
                index = len(output)
                event("response.output_item.added", output_index=index,
                      item={**item, "arguments": "", "status": "in_progress"})
                event("response.function_call_arguments.delta", item_id=item["id"], output_index=index,
                      delta=item["arguments"])
                event("response.function_call_arguments.done", item_id=item["id"], output_index=index,
                      arguments=item["arguments"], name=item["name"])
                event("response.output_item.done", output_index=index, item=item)
                output.append(item)
            status = "incomplete" if ev.finish_reason == "length" else "completed"
            event(f"response.{status}", response=response(status, output, ev))

        h.run_stream(gen, "text/event-stream", on_event,
                     lambda message, code: event("error", code=code, param=None, message=message), on_start=start)


ROUTES = {("POST", "/v1/responses"): respond, ("POST", "/responses"): respond}

__all__ = ["ROUTES"]
