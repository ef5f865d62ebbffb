"""The session's plain parts: the answer being written (StreamState), this chat's overrides, and what an answer's
provenance records about thinking and images. No widgets, no I/O; GUI thread (held by chat/session.py)."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from desktop.engine.inference import protocol as P


@dataclass
class StreamState:
    """The answer being generated (in any chat, shown or not)."""

    rid: str  # the send's own id (a stage before the engine request, such as the tool loop, reports under it)
    chat_id: int
    msg_id: int
    sent_ids: list[int]  # the message ids sent as history, in order (Finished.dropped indexes them)
    t0: float  # when the request was sent
    text: str = ""
    reasoning: str = ""  # the thinking so far (reasoning models), never part of ``text``
    t_think: float | None = None  # when the first thinking arrived
    thinking_s: float | None = None  # thinking time, once the answer began (or the stream ended)
    tokens: int = 0
    first_tokens: int = 0  # tokens in the first chunk (they arrived at t_first, so they take no time)
    t_first: float | None = None  # when the first chunk arrived
    extra_prov: dict[str, Any] = field(default_factory=dict)  # tool calls and citations, saved with the answer
    engine_rid: str | None = None  # the engine request writing the answer, once the session sent it
    request: P.Generate | None = None  # the send's one request (settings; its messages are added when sent)

    def live_rate(self, now: float | None = None) -> float | None:
        """Tokens per second since the first chunk, None until a later chunk gives a rate."""
        if self.t_first is None or self.tokens <= self.first_tokens:
            return None
        dt = (now or time.monotonic()) - self.t_first
        return (self.tokens - self.first_tokens) / dt if dt > 0 else None


@dataclass
class Overrides:
    """Per-chat parameters set in the settings panel: applied to this session's requests, not saved."""

    sampling: dict[str, Any] = field(default_factory=dict)
    system_prompt: str | None = None
    reasoning: dict[str, Any] = field(default_factory=dict)  # thinking on/off, effort


def thinking_settings(prompt_spec: dict[str, Any], loaded: P.Loaded | None) -> dict[str, Any]:
    """The thinking settings an answer was asked with (provenance): the request's reasoning format (the loaded
    model's when the profile leaves it to the engine), ``enable_thinking`` and ``reasoning_effort`` when set."""
    fmt = prompt_spec.get("reasoning_format")
    if fmt is None:
        fmt = loaded.reasoning_format if loaded else None
    if not fmt:
        return {}
    out: dict[str, Any] = {"reasoning_format": fmt}
    for key in ("enable_thinking", "reasoning_effort"):
        if prompt_spec.get(key) is not None:
            out[key] = prompt_spec[key]
    return out


def no_vision_reason(name: str | None, sending: bool = False) -> str:
    """One sentence: why the model (its one name) cannot take pictures (``sending``: and that the message waits
    in the box)."""
    name = name or "The loaded model"
    if sending:
        return f"{name} cannot see images, so the message was not sent; it is still in the box."
    return f"{name} has no vision projector (mmproj), so it cannot see images."


def images_for(provenance: dict[str, Any] | None, loaded: P.Loaded | None) -> dict[str, Any]:
    """The ``images`` of a message in the history sent to the engine: the stored paths, unless the loaded model
    is known to have no vision (then the earlier pictures are left out and the text still goes)."""
    paths = [str(i["path"]) for i in (provenance or {}).get("images") or [] if isinstance(i, dict) and i.get("path")]
    if not paths or (loaded is not None and not loaded.vision):
        return {}
    return {"images": paths}


@dataclass
class SendContext:
    """What a send knows when it starts: the engine as the stage asks it (token counts, the tool loop: the
    engine adapter, whose ``generate``/``cancel``/``count_tokens`` are EngineClient's), the context size, the
    answer's token budget and the model file (its tool format)."""

    engine: Any
    n_ctx: int
    max_tokens: int
    model_path: str | None
