"""Reasoning ("thinking") models: which format a model thinks in, and the streaming splitter that keeps its
thinking apart from its answer.

Formats (``REASONING_FORMATS``), recognised from the chat template and the vocabulary the way llama.cpp's chat
parser does (a fine-tune keeps its template whatever its architecture):

* ``think`` — ``<think>…</think>`` before the answer: Qwen3, QwQ, the DeepSeek-R1 distills (whose template
  writes ``<think>`` into the prompt, so the answer starts inside the thinking);
* ``magistral`` — ``[THINK]…[/THINK]``: Magistral and the Ministral reasoning models;
* ``harmony`` — OpenAI's gpt-oss: messages ``<|start|>assistant<|channel|>analysis<|message|>…<|end|>``, where
  ``analysis`` is thinking, ``final`` the answer and ``commentary`` a preamble or, with ``to=functions.NAME``, a
  tool call ending in ``<|call|>``. ``<|end|>`` closes a message but not the turn; ``<|return|>`` ends the turn.

:class:`ReasoningSplitter` takes generated text in pieces cut anywhere (a tag may arrive one character at a time)
and hands back ``(reasoning, answer)`` increments; text that could still grow into a tag is held back, so no
markup ever reaches either stream. Plain Python; runs in the engine process (the local backend) and anywhere
else that needs to split a finished text (``split_text``).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Iterable

from desktop.engine.profiles.fields import REASONING_EFFORTS

REASONING_FORMATS = ("think", "magistral", "harmony")
STOPPED_THINKING = "stopped while thinking: raise max tokens"
EFFORTS = REASONING_EFFORTS  # the settings table's list

_TAGS = {
    "think": ("<think>", "</think>"),
    "magistral": ("[THINK]", "[/THINK]"),
}
_HARMONY_TAGS = ("<|start|>", "<|channel|>", "<|message|>", "<|end|>", "<|return|>", "<|call|>", "<|constrain|>")
#: hand-written prompt formats (prompts.FORMATS) that think
_FORMAT_REASONING = {"deepseek_r1": "think"}


def detect(chat_template: str | None, token_texts: Iterable[str] = (), prompt_format: str = "gguf") -> str:
    """The reasoning format of a model ("" when it does not think in a known way).

    The template decides when there is one; a file without one is judged by its special tokens."""
    if prompt_format in _FORMAT_REASONING:
        return _FORMAT_REASONING[prompt_format]
    t = chat_template or ""
    if t:
        if "<|channel|>" in t and "<|message|>" in t:
            return "harmony"
        if "[THINK]" in t:
            return "magistral"
        if "<think>" in t or "</think>" in t:
            return "think"
        return ""
    tokens = set(token_texts)
    if {"<|channel|>", "<|message|>"} <= tokens:
        return "harmony"
    if "[THINK]" in tokens:
        return "magistral"
    if "<think>" in tokens and "</think>" in tokens:
        return "think"
    return ""


def starts_thinking(fmt: str, prompt: str) -> bool:
    """Whether the prompt itself opened a thinking block the model continues (R1 distills: "…<think>\\n")."""
    if fmt not in _TAGS:
        return False
    open_tag, close_tag = _TAGS[fmt]
    i = prompt.rfind(open_tag)
    return i >= 0 and prompt.find(close_tag, i) < 0 and not prompt[i + len(open_tag):].strip()


class _TagStream:
    """Cuts streamed text into ("text", s) and ("tag", t) segments, holding back a tail that may become a tag."""

    def __init__(self, tags: tuple[str, ...]) -> None:
        self.tags = tags
        self._re = re.compile("|".join(re.escape(t) for t in sorted(tags, key=len, reverse=True)))
        self._first = frozenset(t[0] for t in tags)
        self.buf = ""

    def feed(self, text: str, final: bool = False) -> list[tuple[str, str]]:
        self.buf += text
        out: list[tuple[str, str]] = []
        pos = 0
        for m in self._re.finditer(self.buf):
            if m.start() > pos:
                out.append(("text", self.buf[pos:m.start()]))
            out.append(("tag", m.group()))
            pos = m.end()
        rest = self.buf[pos:]
        keep = 0 if final else self._held(rest)
        if len(rest) > keep:
            out.append(("text", rest[:len(rest) - keep]))
        self.buf = rest[len(rest) - keep:]
        return out

    def _held(self, text: str) -> int:
        start = max(0, len(text) - max(len(t) for t in self.tags) + 1)
        for i in range(start, len(text)):
            if text[i] in self._first and any(t.startswith(text[i:]) for t in self.tags):
                return len(text) - i
        return 0


@dataclass
class _Out:
    """One stream (thinking or answer): leading whitespace dropped, trailing whitespace held until more text."""

    text: str = ""
    ws: str = ""
    blocks: int = 0  # blocks begun: the second one is separated from the first by a blank line
    fresh: bool = True  # at the start of a block, where leading whitespace is dropped

    def add(self, s: str) -> str:
        if self.fresh:
            s = s.lstrip()
            if not s:
                return ""
            self.fresh = False
        body = s.rstrip()
        if not body:
            self.ws += s
            return ""
        shown = self.ws + body if self.text else body
        self.ws = s[len(body):]
        self.text += shown
        return shown

    def new_block(self) -> None:
        self.blocks += 1
        self.fresh = True
        if self.text:
            self.ws = "\n\n"


@dataclass
class ReasoningSplitter:
    """Streams generated text apart into thinking and answer (see the module doc)."""

    fmt: str
    thinking: bool = False  # inside a thinking block right now (the prompt may have opened one)
    tool_calls: list[dict[str, Any]] = field(default_factory=list)  # harmony calls: {"name", "arguments" (JSON text)}
    saw_markup: bool = False

    def __post_init__(self) -> None:
        self.reasoning = _Out()
        self.answer = _Out()
        if self.fmt == "harmony":
            self._tags = _TagStream(_HARMONY_TAGS)
            self._state = "header"  # the prompt ends with "<|start|>assistant"
            self._header = ""
            self._channel = ""
            self._recipient = ""
            self._body = ""
        elif self.fmt in _TAGS:
            self._tags = _TagStream(_TAGS[self.fmt])
            if self.thinking:
                self.reasoning.new_block()
        else:
            self._tags = None

    @property
    def reasoning_text(self) -> str:
        return self.reasoning.text

    @property
    def answer_text(self) -> str:
        return self.answer.text

    def feed(self, text: str) -> tuple[str, str]:
        """Add generated text; return the (reasoning, answer) text now safe to show."""
        return self._run(text, final=False)

    def finish(self) -> tuple[str, str]:
        """The generation ended: hand out what was held back."""
        r, a = self._run("", final=True)
        if self.fmt == "harmony":
            r2, a2 = self._harmony_end(final=True)
            r, a = r + r2, a + a2
        return r, a

    # ------------------------------------------------------------------ internals

    def _run(self, text: str, final: bool) -> tuple[str, str]:
        if self._tags is None:  # not a reasoning model: the text passes untouched
            self.answer.text += text
            return "", text
        rs: list[str] = []
        ans: list[str] = []
        for kind, s in self._tags.feed(text, final):
            if kind == "tag":
                self.saw_markup = True
            if self.fmt == "harmony":
                r, a = self._harmony(kind, s)
            else:
                r, a = self._think(kind, s)
            rs.append(r)
            ans.append(a)
        return "".join(rs), "".join(ans)

    def _think(self, kind: str, s: str) -> tuple[str, str]:
        open_tag, _close = _TAGS[self.fmt]
        if kind == "text":
            return (self.reasoning.add(s), "") if self.thinking else ("", self.answer.add(s))
        if s == open_tag and not self.thinking:
            self.thinking = True
            self.reasoning.new_block()
        elif s != open_tag and self.thinking:
            self.thinking = False
        return "", ""  # a stray tag is dropped: markup never reaches the answer

    def _harmony(self, kind: str, s: str) -> tuple[str, str]:
        if self._state == "header":
            if kind == "tag" and s == "<|message|>":
                self._open_message()
            elif kind == "tag" and s in ("<|end|>", "<|return|>", "<|call|>"):
                self._state = "between"
            elif kind == "tag" and s == "<|start|>":
                self._header = ""
            else:
                self._header += s
            return "", ""
        if self._state == "body":
            if kind == "text":
                return self._body_text(s)
            if s in ("<|end|>", "<|return|>", "<|call|>", "<|start|>"):
                r, a = self._harmony_end(final=False)
                self._state = "header" if s == "<|start|>" else "between"
                self._header = ""
                return r, a
            return "", ""  # a header tag inside a body: dropped
        # between messages: only a new message header matters
        if kind == "tag" and s in ("<|start|>", "<|channel|>"):
            self._state = "header"
            self._header = "" if s == "<|start|>" else s
        return "", ""

    def _open_message(self) -> None:
        header = self._header
        m = re.search(r"<\|channel\|>\s*([A-Za-z_]+)", header)
        self._channel = m.group(1) if m else ("final" if "<|channel|>" not in header else "")
        r = re.search(r"\bto=([^\s<]+)", header)
        self._recipient = r.group(1) if r else ""
        self._state = "body"
        self._body = ""
        self.thinking = self._channel == "analysis"
        if self.thinking:
            self.reasoning.new_block()
        elif not self._recipient:
            self.answer.new_block()  # a preamble and the final answer are two paragraphs

    def _body_text(self, s: str) -> tuple[str, str]:
        if self._recipient:
            self._body += s
            return "", ""
        if self._channel == "analysis":
            return self.reasoning.add(s), ""
        return "", self.answer.add(s)  # final, or a commentary preamble meant for the user

    def _harmony_end(self, final: bool) -> tuple[str, str]:
        if self._state == "header" and final and not self.saw_markup and self._header.strip():
            return "", self.answer.add(self._header)  # a model that ignored harmony altogether
        if self._state != "body":
            return "", ""
        if self._recipient:
            self._state = "between"
            name = self._recipient.split(".", 1)[1] if self._recipient.startswith("functions.") else self._recipient
            self.tool_calls.append({"name": name, "arguments": self._body.strip()})
            self._body = ""
        if final is False:
            self.thinking = False
        return "", ""

    @property
    def unfinished_thinking(self) -> bool:
        """Still inside a thinking block with no answer: the generation was cut off while thinking."""
        return self.thinking and not self.answer.text


def split_text(fmt: str, text: str, *, prompt: str = "") -> tuple[str, str]:
    """(reasoning, answer) of a whole generated text."""
    sp = ReasoningSplitter(fmt, thinking=starts_thinking(fmt, prompt))
    sp.feed(text)
    sp.finish()
    return sp.reasoning_text, sp.answer_text
