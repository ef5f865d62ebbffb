"""Prompt formats: turn a list of ``{role, content}`` messages into the exact text a model sees.

The hand-written formats match the model cards (and their Hugging Face chat templates) byte for
byte; golden tests pin them. ``gguf`` renders the file's own Jinja chat template in an immutable
sandbox: a GGUF is untrusted input, so its template may not touch attributes that reach Python
internals, read files or produce unbounded output. Runs in any process: the engine process renders
the prompt of a local model; the caller's process (the CLI, the app's GUI process) uses the same formats for
the tool loop and for requests.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from desktop.engine.errors import TemplateError
from desktop.engine.inference.chat_formats import FAMILY_FORMATS

Message = Mapping[str, str]

ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class FormatInfo:
    """What a caller needs beside the text: the BOS text a format writes itself, and its stops."""

    bos_text: str
    stop_strings: tuple[str, ...]


FORMATS: dict[str, FormatInfo] = {
    "llama3": FormatInfo("<|begin_of_text|>", ("<|eot_id|>", "<|end_of_text|>")),
    "llama31": FormatInfo("<|begin_of_text|>", ("<|eot_id|>", "<|eom_id|>", "<|end_of_text|>")),
    "mixtral": FormatInfo("<s>", ("</s>", "[INST]")),
    "upstage": FormatInfo("", ("### User:", "### System:", "</s>")),
    "chatml": FormatInfo("", ("<|im_end|>", "<|im_start|>")),
    "gguf": FormatInfo("", ()),
    **{name: FormatInfo(bos, stops) for name, (_fn, bos, stops) in FAMILY_FORMATS.items()},
}
#: the formats a user can pick when a file has no template and its family is unknown
HAND_FORMATS = tuple(name for name in FORMATS if name != "gguf")


def checked_messages(messages: Iterable[Message]) -> list[dict[str, str]]:
    """``messages`` as plain role/content dicts; raises TemplateError naming the first malformed one."""
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, Mapping) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
            raise TemplateError(f"message {i} must be an object with string 'role' and 'content'")
        if m["role"] not in ROLES:
            raise TemplateError(f"message {i} has unknown role {m['role']!r} (use system, user or assistant)")
        msg = {"role": m["role"], "content": m["content"]}
        if m["role"] == "assistant" and isinstance(m.get("reasoning"), str) and m["reasoning"]:
            msg["reasoning"] = m["reasoning"]  # an earlier answer's thinking: its template decides whether it goes back
        out.append(msg)
    return out


def template_messages(msgs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Messages as chat templates read them: an answer's thinking under both names the real templates use
    (Qwen3 ``reasoning_content``, gpt-oss ``thinking``); the hand-written formats never send it back."""
    out = []
    for m in msgs:
        if m.get("reasoning"):
            thought = m["reasoning"]
            m = {k: v for k, v in m.items() if k != "reasoning"}
            m["reasoning_content"] = m["thinking"] = thought
        out.append(m)
    return out


def with_default_system(messages: list[dict[str, str]], system_prompt: str) -> list[dict[str, str]]:
    """Prepend the profile's system prompt when the conversation has none."""
    if system_prompt and not (messages and messages[0]["role"] == "system"):
        return [{"role": "system", "content": system_prompt}, *messages]
    return messages


def _llama3_turns(msgs: list[dict[str, str]], gen: bool) -> str:
    # Meta's templates trim each message's content.
    turns = [f"<|start_header_id|>{m['role']}<|end_header_id|>\n\n{m['content'].strip()}<|eot_id|>" for m in msgs]
    if gen:
        turns.append("<|start_header_id|>assistant<|end_header_id|>\n\n")
    return "".join(turns)


def _llama3(msgs: list[dict[str, str]], gen: bool) -> str:
    return "<|begin_of_text|>" + _llama3_turns(msgs, gen)


def _llama31(msgs: list[dict[str, str]], gen: bool, date_string: str) -> str:
    # Llama 3.1's template always writes a system turn with the knowledge cut-off and a date.
    system = ""
    if msgs and msgs[0]["role"] == "system":
        system = msgs[0]["content"].strip()
        msgs = msgs[1:]
    parts = [
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n",
        "Cutting Knowledge Date: December 2023\n",
        f"Today Date: {date_string}\n\n",
        system,
        "<|eot_id|>",
        _llama3_turns(msgs, gen),
    ]
    return "".join(parts)


def _mixtral(msgs: list[dict[str, str]], gen: bool) -> str:
    # Mixtral-Instruct has no system role: the system text goes at the top of the first user turn.
    system = ""
    if msgs and msgs[0]["role"] == "system":
        system = msgs[0]["content"]
        msgs = msgs[1:]
    out = ["<s>"]
    first_user = True
    for i, m in enumerate(msgs):
        if m["role"] == "system":
            raise TemplateError("the Mixtral format allows a system message only at the start")
        expected = "user" if i % 2 == 0 else "assistant"
        if m["role"] != expected:
            raise TemplateError("the Mixtral format needs user and assistant turns to alternate, starting with user")
        if m["role"] == "user":
            content = m["content"]
            if first_user and system:
                content = f"{system}\n\n{content}"
            first_user = False
            out.append(f"[INST] {content} [/INST]")
        else:
            out.append(f"{m['content']}</s>")
    return "".join(out)


def _upstage(msgs: list[dict[str, str]], gen: bool) -> str:
    names = {"system": "### System:", "user": "### User:", "assistant": "### Assistant:"}
    out = []
    for m in msgs:
        out.append(f"{names[m['role']]}\n{m['content']}\n\n")
    if gen:
        out.append("### Assistant:\n")
    return "".join(out)


def _chatml(msgs: list[dict[str, str]], gen: bool) -> str:
    out = [f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in msgs]
    if gen:
        out.append("<|im_start|>assistant\n")
    return "".join(out)


def render_jinja(template: str, messages: list[dict[str, Any]], *, bos_token: str = "", eos_token: str = "",
                 add_generation_prompt: bool = True, tools: list[dict[str, Any]] | None = None,
                 enable_thinking: bool | None = None, reasoning_effort: str | None = None) -> str:
    """Render an untrusted chat template (a GGUF's) in Jinja's immutable sandbox, inside time/size budgets.

    ``enable_thinking`` (Qwen3) and ``reasoning_effort`` (gpt-oss) are passed only when set: the templates test
    whether they are defined and fall back to their own defaults."""
    from desktop.engine.inference.template_sandbox import render_chat_template

    extra: dict[str, Any] = {}
    if enable_thinking is not None:
        extra["enable_thinking"] = bool(enable_thinking)
    if reasoning_effort:
        extra["reasoning_effort"] = reasoning_effort
    return render_chat_template(template, messages=template_messages(messages), bos_token=bos_token,
                                eos_token=eos_token, add_generation_prompt=add_generation_prompt, tools=tools,
                                **extra)


def render(fmt: str, messages: Iterable[Message], *, system_prompt: str = "", add_generation_prompt: bool = True,
           date_string: str = "26 Jul 2024", chat_template: str | None = None, bos_token: str = "",
           eos_token: str = "", enable_thinking: bool | None = None, reasoning_effort: str | None = None,
           reasoning_format: str | None = None) -> str:
    """Render ``messages`` in format ``fmt``; the profile's ``system_prompt`` fills in a missing one."""
    msgs = with_default_system(checked_messages(messages), system_prompt)
    if fmt == "llama3":
        return _llama3(msgs, add_generation_prompt)
    if fmt == "llama31":
        return _llama31(msgs, add_generation_prompt, date_string)
    if fmt == "mixtral":
        return _mixtral(msgs, add_generation_prompt)
    if fmt == "upstage":
        return _upstage(msgs, add_generation_prompt)
    if fmt == "chatml":
        return _chatml(msgs, add_generation_prompt)
    if fmt in FAMILY_FORMATS:
        return FAMILY_FORMATS[fmt][0](msgs, add_generation_prompt)
    if fmt == "gguf":
        if not chat_template:
            raise TemplateError("this model file has no chat template; choose a profile with a prompt format")
        return render_jinja(chat_template, msgs, bos_token=bos_token, eos_token=eos_token,
                            add_generation_prompt=add_generation_prompt, enable_thinking=enable_thinking,
                            reasoning_effort=reasoning_effort)
    raise TemplateError(f"unknown prompt format {fmt!r}")


def format_info(fmt: str) -> FormatInfo:
    return FORMATS.get(fmt, FORMATS["gguf"])


def spec_dict(fmt: str, system_prompt: str = "", date_string: str = "26 Jul 2024",
              chat_template: str | None = None, bos_token: str = "", eos_token: str = "", *,
              reasoning_format: str | None = None, enable_thinking: bool | None = None,
              reasoning_effort: str | None = None) -> dict[str, Any]:
    """A JSON-able description of how to render, for sending to the engine process.

    ``reasoning_format`` None lets the engine recognise it from the template and tokens ("" turns splitting
    off); ``enable_thinking`` / ``reasoning_effort`` are the templates' thinking controls (None: their default)."""
    return {"fmt": fmt, "system_prompt": system_prompt, "date_string": date_string,
            "chat_template": chat_template, "bos_token": bos_token, "eos_token": eos_token,
            "reasoning_format": reasoning_format, "enable_thinking": enable_thinking,
            "reasoning_effort": reasoning_effort}
