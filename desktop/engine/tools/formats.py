"""Tool-call formats of local models: how tools are offered, how calls are written, parsed and answered.

Three families, as their chat templates define them:

* ``llama31`` — Llama 3.1 JSON tool calls (Nemotron, Llama 3.x): the model answers
  ``<|python_tag|>{"name": ..., "parameters": {...}}`` (the tag is a control token, so it is usually not in the
  streamed text) and ends with ``<|eom_id|>``; results come back in an ``ipython`` turn.
* ``hermes`` — Qwen 2.5 / Hermes / ChatML: ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>``;
  results come back as ``<tool_response>…</tool_response>`` in a user turn.
* ``mistral`` — ``[TOOL_CALLS][{"name": ..., "arguments": {...}}]`` (a control token too); tools are listed in
  ``[AVAILABLE_TOOLS]…[/AVAILABLE_TOOLS]`` and results come back as ``[TOOL_RESULTS]…[/TOOL_RESULTS]``.
* ``harmony`` — OpenAI's gpt-oss: a call is its own message,
  ``<|start|>assistant to=functions.NAME<|channel|>commentary json<|message|>{…}<|call|>``, and the result comes
  back as the ``<|start|>functions.NAME to=assistant<|channel|>commentary<|message|>…<|end|>`` message. The
  engine's reasoning splitter reads the calls out of the stream (``Finished.tool_calls``), so no markup reaches
  the text; the thinking before a call goes back as the message's ``thinking`` (the template keeps it there).

Reasoning models think before they call: Qwen3 writes its ``<tool_call>`` (hermes) after its thinking, or
sometimes inside it; the loop looks in the thinking when the answer has no call.

A file whose chat template knows ``tools`` is rendered with it (``tools`` variable, ``tool_calls`` on assistant
messages, ``tool`` role). Otherwise the prompt is written here: natively for the profile formats that have a
tool syntax (llama31/llama3, chatml, mixtral), else through the profile's own format with a system-prompt block
that describes the tools and the tool turns written as text.

Internal messages are OpenAI-like: ``{"role": "assistant", "content", "tool_calls": [{"id", "name", "arguments":
dict}]}`` and ``{"role": "tool", "tool_call_id", "name", "content"}``. Runs in the caller's process (the CLI, the
app's GUI process, the server's handler threads), never in the engine process.
"""
from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from desktop.engine.inference import prompts

TOOL_FORMATS = ("llama31", "hermes", "mistral", "harmony")
_PROFILE_TO_TOOL = {"llama31": "llama31", "llama3": "llama31", "chatml": "hermes", "mixtral": "mistral"}
# Tags that open a call anywhere in an answer, and openers that only count at its very start (the control
# tokens <|python_tag|> and [TOOL_CALLS] are not in the streamed text, so a bare JSON start means a call).
_TAGS = {"llama31": ("<|python_tag|>",), "hermes": ("<tool_call>",), "mistral": ("[TOOL_CALLS]",)}
_STARTS = {"llama31": ("{",), "hermes": (), "mistral": ("[{", "{")}
_HERMES_CALL = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.S)


@dataclass
class ToolCall:
    """One call the model asked for."""

    name: str
    arguments: dict[str, Any]
    id: str = field(default_factory=lambda: "call_" + uuid.uuid4().hex[:9])

    def to_message(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "arguments": self.arguments}


def format_for(prompt_format: str, chat_template: str | None = None) -> str:
    """The tool format of a profile's prompt format, or of a GGUF's own template."""
    if prompt_format == "gguf":
        t = chat_template or ""
        if "<|channel|>" in t and "to=" in t:
            return "harmony"
        if "<tool_call>" in t:
            return "hermes"
        if "[TOOL_CALLS]" in t or "[INST]" in t:
            return "mistral"
        if "<|python_tag|>" in t or "ipython" in t or "<|start_header_id|>" in t:
            return "llama31"
        return "hermes"
    return _PROFILE_TO_TOOL.get(prompt_format, "hermes")


def template_knows_tools(chat_template: str | None) -> bool:
    """Whether a chat template renders the ``tools`` variable (else the tools go in a system block)."""
    return bool(chat_template) and re.search(r"\btools\b", chat_template or "") is not None


def tool_spec(name: str, description: str, schema: dict[str, Any] | None) -> dict[str, Any]:
    """An OpenAI-style function tool (what templates and servers expect)."""
    params = dict(schema or {})
    params.setdefault("type", "object")
    params.setdefault("properties", {})
    return {"type": "function", "function": {"name": name, "description": description, "parameters": params}}


def system_block(fmt: str, specs: list[dict[str, Any]]) -> str:
    """The text that offers ``specs`` to a model whose template cannot."""
    lines = "\n".join(json.dumps(s, ensure_ascii=False) for s in specs)
    if fmt == "llama31":
        return ("Given the following functions, please respond with a JSON for a function call with its proper "
                "arguments that best answers the given prompt.\n\nRespond in the format {\"name\": function name, "
                "\"parameters\": dictionary of argument name and its value}. Do not use variables.\n\n" + lines)
    if fmt == "mistral":
        return ("You can call these tools:\n" + lines + "\n\nTo call tools, answer only with [TOOL_CALLS] followed "
                "by a JSON list of {\"name\": tool name, \"arguments\": {...}} objects.")
    return ("# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with "
            "function signatures within <tools></tools> XML tags:\n<tools>\n" + lines + "\n</tools>\n\nFor each "
            "function call, return a json object with function name and arguments within <tool_call></tool_call> "
            "XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call>")


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False)


def call_text(fmt: str, calls: list[dict[str, Any]]) -> str:
    """How ``fmt`` writes an assistant's calls (for the prompt of the next round)."""
    if fmt == "llama31":
        return "<|python_tag|>" + "; ".join(_dumps({"name": c["name"], "parameters": c["arguments"]}) for c in calls)
    if fmt == "mistral":
        return "[TOOL_CALLS]" + _dumps([{"name": c["name"], "arguments": c["arguments"]} for c in calls])
    if fmt == "harmony":
        return "".join(f"<|start|>assistant to=functions.{c['name']}<|channel|>commentary json<|message|>"
                       f"{_dumps(c['arguments'])}<|call|>" for c in calls)
    return "\n".join(f"<tool_call>\n{_dumps({'name': c['name'], 'arguments': c['arguments']})}\n</tool_call>"
                     for c in calls)


# ---------------------------------------------------------------------------------------------- rendering


def _system_and_rest(messages: list[dict[str, Any]], system_prompt: str) -> tuple[str, list[dict[str, Any]]]:
    if messages and messages[0].get("role") == "system":
        return str(messages[0].get("content", "")), messages[1:]
    return system_prompt, messages


def _render_llama31(msgs: list[dict[str, Any]], specs: list[dict[str, Any]], system_prompt: str,
                    date_string: str, dated: bool) -> str:
    system, rest = _system_and_rest(msgs, system_prompt)
    head = f"Cutting Knowledge Date: December 2023\nToday Date: {date_string}\n\n" if dated else ""
    block = system_block("llama31", specs) if specs else ""
    sys_text = "\n\n".join(p for p in (system.strip(), block) if p)
    out = ["<|begin_of_text|>"]
    if head or sys_text:
        out.append(f"<|start_header_id|>system<|end_header_id|>\n\n{head}{sys_text}<|eot_id|>")
    for m in rest:
        role, content = m["role"], str(m.get("content") or "")
        if role == "tool":
            out.append(f"<|start_header_id|>ipython<|end_header_id|>\n\n{content}<|eot_id|>")
        elif role == "assistant" and m.get("tool_calls"):
            out.append(f"<|start_header_id|>assistant<|end_header_id|>\n\n{content.strip()}"
                       f"{call_text('llama31', m['tool_calls'])}<|eom_id|>")
        else:
            out.append(f"<|start_header_id|>{role}<|end_header_id|>\n\n{content.strip()}<|eot_id|>")
    out.append("<|start_header_id|>assistant<|end_header_id|>\n\n")
    return "".join(out)


def _render_hermes(msgs: list[dict[str, Any]], specs: list[dict[str, Any]], system_prompt: str) -> str:
    system, rest = _system_and_rest(msgs, system_prompt)
    if specs:
        system = "\n\n".join(p for p in (system or "You are a helpful assistant.", system_block("hermes", specs)) if p)
    out = [f"<|im_start|>system\n{system}<|im_end|>\n"] if system else []
    i = 0
    while i < len(rest):
        m = rest[i]
        content = str(m.get("content") or "")
        if m["role"] == "tool":
            responses = []
            while i < len(rest) and rest[i]["role"] == "tool":
                responses.append(f"<tool_response>\n{rest[i].get('content') or ''}\n</tool_response>")
                i += 1
            out.append("<|im_start|>user\n" + "\n".join(responses) + "<|im_end|>\n")
            continue
        if m["role"] == "assistant" and m.get("tool_calls"):
            content = (content + "\n" if content else "") + call_text("hermes", m["tool_calls"])
        out.append(f"<|im_start|>{m['role']}\n{content}<|im_end|>\n")
        i += 1
    out.append("<|im_start|>assistant\n")
    return "".join(out)


def _render_mistral(msgs: list[dict[str, Any]], specs: list[dict[str, Any]], system_prompt: str) -> str:
    system, rest = _system_and_rest(msgs, system_prompt)
    last_user = max((i for i, m in enumerate(rest) if m["role"] == "user"), default=-1)
    out = ["<s>"]
    for i, m in enumerate(rest):
        content = str(m.get("content") or "")
        if m["role"] == "user":
            if i == last_user and specs:
                out.append(f"[AVAILABLE_TOOLS]{_dumps(specs)}[/AVAILABLE_TOOLS]")
            if i == last_user and system:
                content = f"{system}\n\n{content}"
            out.append(f"[INST] {content} [/INST]")
        elif m["role"] == "assistant" and m.get("tool_calls"):
            out.append(call_text("mistral", m["tool_calls"]) + "</s>")
        elif m["role"] == "assistant":
            out.append(f"{content}</s>")
        elif m["role"] == "tool":
            out.append(f"[TOOL_RESULTS]{_dumps({'content': content, 'call_id': m.get('tool_call_id', '')})}"
                       "[/TOOL_RESULTS]")
    return "".join(out)


def _flatten(fmt: str, msgs: list[dict[str, Any]], specs: list[dict[str, Any]], system_prompt: str
             ) -> list[dict[str, str]]:
    """Tool turns as plain text, for formats (and templates) without a tool syntax of their own."""
    system, rest = _system_and_rest(msgs, system_prompt)
    if specs:
        system = "\n\n".join(p for p in (system, system_block(fmt, specs)) if p)
    out: list[dict[str, str]] = [{"role": "system", "content": system}] if system else []
    for m in rest:
        content = str(m.get("content") or "")
        if m["role"] == "assistant" and m.get("tool_calls"):
            out.append({"role": "assistant", "content": (content + "\n" if content else "")
                        + call_text(fmt, m["tool_calls"])})
        elif m["role"] == "tool":
            text = f"<tool_response>\n{content}\n</tool_response>"
            if out and out[-1]["role"] == "user":  # several results of one round: one user turn
                out[-1] = {"role": "user", "content": out[-1]["content"] + "\n" + text}
            else:
                out.append({"role": "user", "content": text})
        else:
            out.append({"role": m["role"], "content": content})
    return out


def _template_messages(msgs: list[dict[str, Any]], harmony: bool = False) -> list[dict[str, Any]]:
    """Messages in the shape Hugging Face chat templates read (tool_calls with ``function``; an answer's thinking
    as ``reasoning_content`` and ``thinking``, for its template to keep or drop)."""
    out: list[dict[str, Any]] = []
    for m in msgs:
        thought = {"reasoning": m["reasoning"]} if m["role"] == "assistant" and m.get("reasoning") else {}
        if m["role"] == "assistant" and m.get("tool_calls"):
            content = str(m.get("content") or "")
            if harmony and thought and content:  # gpt-oss's template takes a call's thinking or its text, not both
                thought = {"reasoning": thought["reasoning"] + "\n\n" + content}
                content = ""
            out.append({"role": "assistant", "content": content, **thought, "tool_calls": [
                {"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}}
                for c in m["tool_calls"]]})
        elif m["role"] == "tool":
            out.append({"role": "tool", "content": str(m.get("content") or ""),
                        "tool_call_id": m.get("tool_call_id", ""), "name": m.get("name", "")})
        else:
            out.append({"role": m["role"], "content": str(m.get("content") or ""), **thought})
    return out  # render_jinja turns ``reasoning`` into the names the templates read


def render(prompt_format: str, messages: list[dict[str, Any]], specs: list[dict[str, Any]], *,
           system_prompt: str = "", date_string: str = "26 Jul 2024", chat_template: str | None = None,
           bos_token: str = "", eos_token: str = "", enable_thinking: bool | None = None,
           reasoning_effort: str | None = None) -> str:
    """The exact prompt text for a conversation with tool turns, offering ``specs`` (with a reasoning model's
    thinking controls, ``enable_thinking`` and ``reasoning_effort``, when set)."""
    fmt = format_for(prompt_format, chat_template)
    if prompt_format == "gguf":
        if template_knows_tools(chat_template):
            msgs = _template_messages(messages, harmony=fmt == "harmony")
            if system_prompt and not (msgs and msgs[0]["role"] == "system"):
                msgs = [{"role": "system", "content": system_prompt}, *msgs]
            return prompts.render_jinja(chat_template or "", msgs, bos_token=bos_token, eos_token=eos_token,
                                        tools=specs or None, enable_thinking=enable_thinking,
                                        reasoning_effort=reasoning_effort)
        return prompts.render("gguf", _flatten(fmt, messages, specs, system_prompt), chat_template=chat_template,
                              bos_token=bos_token, eos_token=eos_token)
    if prompt_format in ("llama31", "llama3"):
        return _render_llama31(messages, specs, system_prompt, date_string, dated=prompt_format == "llama31")
    if prompt_format == "chatml":
        return _render_hermes(messages, specs, system_prompt)
    if prompt_format == "mixtral":
        return _render_mistral(messages, specs, system_prompt)
    return prompts.render(prompt_format, _flatten(fmt, messages, specs, system_prompt), date_string=date_string)


# ---------------------------------------------------------------------------------------------- parsing


def call_from(obj: Any) -> ToolCall | None:
    """A ToolCall from a decoded JSON object in any of the formats' shapes, or None."""
    if isinstance(obj, dict) and isinstance(obj.get("function"), dict):
        call_id = obj.get("id")
        obj = obj["function"]
    else:
        call_id = obj.get("id") if isinstance(obj, dict) else None
    if not isinstance(obj, dict) or not isinstance(obj.get("name"), str) or not obj["name"].strip():
        return None
    args = obj.get("arguments", obj.get("parameters", {}))
    if isinstance(args, str):
        try:
            args = json.loads(args) if args.strip() else {}
        except ValueError:
            return None
    if args is None:
        args = {}
    if not isinstance(args, dict):
        return None
    call = ToolCall(obj["name"].strip(), args)
    if isinstance(call_id, str) and call_id:
        call.id = call_id
    return call


def _json_values(text: str) -> list[Any] | None:
    """Every JSON value in ``text`` separated by whitespace, ``;`` or ``,`` — or None if anything else is there."""
    dec = json.JSONDecoder()
    values, i = [], 0
    while True:
        while i < len(text) and text[i] in " \t\r\n;,":
            i += 1
        if i >= len(text):
            return values
        try:
            value, i = dec.raw_decode(text, i)
        except ValueError:
            return None
        values.append(value)


def _calls_from_json(text: str) -> list[ToolCall] | None:
    values = _json_values(text)
    if not values:
        return None
    flat = [v for value in values for v in (value if isinstance(value, list) else [value])]
    calls = [call_from(v) for v in flat]
    if not calls or any(c is None for c in calls):
        return None
    return calls  # type: ignore[return-value]


def parse_tool_calls(fmt: str, text: str) -> tuple[str, list[ToolCall]]:
    """Split a finished answer into its visible text and the calls it makes (none: the text unchanged)."""
    if fmt == "hermes":
        calls: list[ToolCall] = []
        kept: list[str] = []
        pos = 0
        for m in _HERMES_CALL.finditer(text):
            found = _calls_from_json(m.group(1))
            if found is None:
                continue  # not valid JSON: it stays visible, as the model wrote it
            calls += found
            kept.append(text[pos:m.start()])
            pos = m.end()
        if not calls:
            return text, []
        kept.append(text[pos:])
        return "".join(kept).strip(), calls
    for tag in _TAGS.get(fmt, ()):
        i = text.find(tag)
        if i >= 0:
            found = _calls_from_json(text[i + len(tag):])
            return (text[:i].strip(), found) if found else (text, [])
    body = text.strip()
    if any(body.startswith(s) for s in _STARTS.get(fmt, ())):
        found = _calls_from_json(body)
        if found:
            return "", found
    return text, []


class StreamingToolParser:
    """Shows an answer as it streams while holding back anything that may be a tool call.

    ``feed`` returns the text safe to show now: a possible opener (``<tool_call``, ``[TOOL_CALLS``, a JSON start
    for the formats whose tag is a hidden control token) is held until it is either a call — then nothing of it
    is ever shown — or turns out to be text. ``finish`` returns the rest to show and the calls.
    """

    def __init__(self, fmt: str) -> None:
        self.fmt = fmt
        self.buf = ""
        self.emitted = 0
        self._start_decided = not _STARTS.get(fmt)
        self._holding = False  # a call (or a possible one) started: hold everything to the end
        self._tags = _TAGS.get(fmt, ())

    def feed(self, piece: str) -> str:
        self.buf += piece
        if self._holding:
            return ""
        if not self._start_decided:
            body = self.buf.lstrip()
            if not body:
                return ""
            starts = _STARTS[self.fmt]
            if any(s.startswith(body) for s in starts if len(body) < len(s)) or any(body.startswith(s) for s in starts):
                if any(body.startswith(s) for s in starts):
                    self._holding = True
                return ""
            self._start_decided = True
        search_from = max(0, self.emitted - max((len(t) for t in self._tags), default=0))
        cut = len(self.buf)
        for tag in self._tags:
            i = self.buf.find(tag, search_from)
            if i >= 0:
                cut = min(cut, i)
                self._holding = True
        if not self._holding:
            # hold a tail that could still become a tag
            for tag in self._tags:
                for k in range(min(len(tag) - 1, len(self.buf)), 0, -1):
                    if self.buf.endswith(tag[:k]):
                        cut = min(cut, len(self.buf) - k)
                        break
        cut = max(cut, self.emitted)
        shown, self.emitted = self.buf[self.emitted:cut], cut
        return shown

    def finish(self) -> tuple[str, list[ToolCall]]:
        content, calls = parse_tool_calls(self.fmt, self.buf)
        if not calls:
            rest = self.buf[self.emitted:]
        else:
            done = self.buf[:self.emitted]
            rest = content[len(done):] if content.startswith(done) else ""
        self.emitted = len(self.buf)
        return rest, calls
