"""The tool loop: generate, parse calls, ask, run them with a timeout, feed results back, until an answer.

Runs in the caller's process on the caller's thread (the CLI's main thread, a worker thread of the app's GUI
process), over the same :class:`EngineClient` as a plain answer, so Stop, crashes and stats behave the same. A
local model gets a prompt rendered here (:mod:`formats`: the file's template with ``tools``, or the format's own
syntax) and its calls are parsed out of the stream, held back so the user never sees raw call JSON; a remote
(OpenAI-compatible) backend gets ``tools`` and returns ``tool_calls`` itself. Each call is asked about
(:mod:`permissions`), run through :class:`ToolBox` with its time limit, and recorded (:class:`ToolCallRecord`,
saved with the answer). After ``max_rounds`` rounds of calls the loop stops asking the tools and ends
(``finish_reason`` "tool_limit"). No Qt; callbacks run on the loop's thread and receive typed dataclasses.
"""
from __future__ import annotations

import dataclasses
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Protocol

from desktop.engine.inference import protocol as P
from desktop.engine.inference.client import run_to_finish
from desktop.engine.tools import formats
from desktop.engine.tools.errors import ToolError, ToolTimeoutError
from desktop.engine.tools.mcp_client import McpManager, ToolInfo, ToolResult
from desktop.engine.tools.permissions import AskPermission, PermissionPolicy, PermissionRequest

DEFAULT_MAX_ROUNDS = 5


# ---------------------------------------------------------------------------------------------- records


@dataclass
class ToolCallRecord:
    """One call, as shown in the chat and saved in the answer's metadata (``provenance["tool_calls"]``)."""

    id: str
    server: str
    name: str
    arguments: dict[str, Any]
    result: str = ""
    # ok | error (the tool or its server failed) | denied | timeout | unknown_tool | round_limit
    status: str = "pending"
    duration_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ToolCallRecord:
        return cls(**{k: d[k] for k in ("id", "server", "name", "arguments", "result", "status", "duration_s")
                      if k in d})


@dataclass
class ToolCallStarted:
    """Event: a call was asked for and allowed; it is running."""

    record: ToolCallRecord


@dataclass
class ToolCallFinished:
    """Event: a call ended (any status), with its result."""

    record: ToolCallRecord


@dataclass
class ToolLoopResult:
    text: str
    finish_reason: str  # the last generation's, or "tool_limit"
    tool_calls: list[ToolCallRecord]
    rounds: int
    stats: P.GenerationStats | None = None
    messages: list[dict[str, Any]] = field(default_factory=list)  # the whole exchange, tool turns included
    reasoning: str = ""  # a reasoning model's thinking, every round's, apart from the answer
    stopped_thinking: bool = False  # the last round ran out of tokens while still thinking
    dropped: list[int] = field(default_factory=list)  # the last round's messages that fell out of the context


# ---------------------------------------------------------------------------------------------- tools


class ToolBox:
    """The tools offered in one chat: the names the model sees, and how to run each."""

    def __init__(self, tools: list[ToolInfo], manager: McpManager | None = None) -> None:
        self.manager = manager
        self.by_name: dict[str, ToolInfo] = {}
        counts: dict[str, int] = {}
        for t in tools:
            counts[t.name] = counts.get(t.name, 0) + 1
        for t in tools:
            # Two servers with the same tool name: the model sees them apart as server_tool.
            self.by_name[t.name if counts[t.name] == 1 else f"{t.server}_{t.name}"] = t

    @classmethod
    def from_manager(cls, manager: McpManager, servers: list[str] | None = None) -> tuple[ToolBox, dict[str, str]]:
        tools, errors = manager.tools(servers)
        return cls(tools, manager), errors

    def specs(self) -> list[dict[str, Any]]:
        return [formats.tool_spec(n, t.description, t.input_schema) for n, t in self.by_name.items()]

    def resolve(self, name: str) -> ToolInfo | None:
        return self.by_name.get(name)

    def run(self, tool: ToolInfo, arguments: dict[str, Any]) -> ToolResult:
        if self.manager is None:
            raise ToolError("no MCP servers are configured")
        return self.manager.call_tool(tool.server, tool.name, arguments)

    def __bool__(self) -> bool:
        return bool(self.by_name)


# ---------------------------------------------------------------------------------------------- turns


class Turns(Protocol):
    def request(self, messages: list[dict[str, Any]], specs: list[dict[str, Any]]) -> P.Generate: ...

    def parser(self) -> formats.StreamingToolParser | None: ...


class LocalTurns:
    """A local model: the prompt is rendered here, with the tools in the format the model knows."""

    def __init__(self, base: P.Generate, prompt_format: str, *, system_prompt: str = "",
                 date_string: str = "26 Jul 2024", chat_template: str | None = None, bos_token: str = "",
                 eos_token: str = "") -> None:
        self.base = base
        self.prompt_format = prompt_format
        spec = base.prompt_spec or {}
        self.kw = dict(system_prompt=system_prompt, date_string=date_string, chat_template=chat_template,
                       bos_token=bos_token, eos_token=eos_token, enable_thinking=spec.get("enable_thinking"),
                       reasoning_effort=spec.get("reasoning_effort"))
        self.fmt = formats.format_for(prompt_format, chat_template)

    def request(self, messages: list[dict[str, Any]], specs: list[dict[str, Any]]) -> P.Generate:
        from desktop.engine.inference.client import new_id

        text = formats.render(self.prompt_format, messages, specs, **self.kw)  # type: ignore[arg-type]
        return dataclasses.replace(self.base, id=new_id("gen"), messages=[], prompt=text)

    def parser(self) -> formats.StreamingToolParser | None:
        # Harmony calls are messages of their own: the engine reads them out of the stream (Finished.tool_calls).
        return None if self.fmt == "harmony" else formats.StreamingToolParser(self.fmt)


def openai_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Internal messages in the Chat Completions shape (arguments as JSON strings)."""
    out: list[dict[str, Any]] = []
    for m in messages:
        if m["role"] == "assistant" and m.get("tool_calls"):
            out.append({"role": "assistant", "content": m.get("content") or None, "tool_calls": [
                {"id": c["id"], "type": "function",
                 "function": {"name": c["name"], "arguments": json.dumps(c["arguments"], ensure_ascii=False)}}
                for c in m["tool_calls"]]})
        elif m["role"] == "tool":
            out.append({"role": "tool", "tool_call_id": m.get("tool_call_id", ""), "content": m.get("content", "")})
        else:
            # A message's pictures stay with it: the remote backend sends them as image_url parts.
            pics = {"images": m["images"]} if m.get("images") else {}
            out.append({"role": m["role"], "content": m.get("content", ""), **pics})
    return out


class RemoteTurns:
    """An OpenAI-compatible server: it gets ``tools`` and answers ``tool_calls`` (Finished.tool_calls)."""

    def __init__(self, base: P.Generate) -> None:
        self.base = base

    def request(self, messages: list[dict[str, Any]], specs: list[dict[str, Any]]) -> P.Generate:
        from desktop.engine.inference.client import new_id

        return dataclasses.replace(self.base, id=new_id("gen"), messages=openai_messages(messages),
                                   prompt=None, tools=specs or None)

    def parser(self) -> None:
        return None


def turns_for(profile: Any, model_path: Any, base: P.Generate) -> LocalTurns | RemoteTurns:
    """The turns for a profile (or, with ``profile`` None, for a GGUF's own template). Reads the GGUF header."""
    from desktop.engine.gguf import doctor as gguf_doctor
    from desktop.engine.library import registry

    if registry.is_remote(profile):
        return RemoteTurns(base)
    fmt = profile.prompt.format if profile is not None else "gguf"
    template = bos = eos = None
    if fmt == "gguf":
        rep = gguf_doctor.inspect(model_path)
        template, bos, eos = rep.chat_template, rep.bos.text if rep.bos else "", rep.eos.text if rep.eos else ""
    return LocalTurns(base, fmt, system_prompt=profile.prompt.system_prompt if profile else "",
                      date_string=profile.prompt.date_string if profile else "26 Jul 2024",
                      chat_template=template, bos_token=bos or "", eos_token=eos or "")


# ---------------------------------------------------------------------------------------------- loop


class ToolLoop:
    """One answer with tools. ``run`` blocks; ``cancel`` (any thread) stops it between tokens or calls."""

    def __init__(self, client: Any, turns: LocalTurns | RemoteTurns, toolbox: ToolBox, *, ask: AskPermission,
                 policy: PermissionPolicy | None = None, max_rounds: int = DEFAULT_MAX_ROUNDS,
                 on_text: Callable[[str], None] | None = None, on_event: Callable[[Any], None] | None = None,
                 timeout_s: float | None = None, on_reasoning: Callable[[str], None] | None = None) -> None:
        self.client = client
        self.turns = turns
        self.toolbox = toolbox
        self.ask = ask
        self.policy = policy or PermissionPolicy(persist=False)
        self.max_rounds = max_rounds
        self.on_text = on_text or (lambda _t: None)
        self.on_reasoning = on_reasoning or (lambda _t: None)  # a reasoning model's thinking, as it streams
        self.on_event = on_event or (lambda _e: None)
        self.timeout_s = timeout_s
        self._cancelled = threading.Event()
        self._current: str | None = None

    def cancel(self) -> None:
        self._cancelled.set()
        if self._current:
            self.client.cancel(self._current)

    def _generate(self, gen: P.Generate) -> Iterator[Any]:
        self._current = gen.id
        try:
            yield from self.client.generate(gen, timeout=self.timeout_s)
        finally:
            self._current = None

    def _one_round(self, messages: list[dict[str, Any]], specs: list[dict[str, Any]]
                   ) -> tuple[str, list[formats.ToolCall], P.Finished]:
        gen = self.turns.request(messages, specs)
        parser = self.turns.parser()
        shown: list[str] = []

        def chunk(ev: P.TokenChunk) -> None:
            if ev.reasoning:
                self.on_reasoning(ev.reasoning)
            text = parser.feed(ev.text) if parser else ev.text
            if text:
                shown.append(text)
                self.on_text(text)

        finished = run_to_finish(self._generate(gen), chunk)
        calls: list[formats.ToolCall] = []
        if parser is not None:
            rest, calls = parser.finish()
            if rest:
                shown.append(rest)
                self.on_text(rest)
        for raw in getattr(finished, "tool_calls", None) or []:
            call = formats.call_from(raw)
            if call is not None:
                calls.append(call)
        if not calls and parser is not None and finished.reasoning:
            # Qwen3 sometimes writes its <tool_call> inside its thinking: a call all the same.
            thought, calls = formats.parse_tool_calls(parser.fmt, finished.reasoning)
            if calls:
                finished.reasoning = thought
        return "".join(shown), calls, finished

    def _execute(self, call: formats.ToolCall) -> ToolCallRecord:
        tool = self.toolbox.resolve(call.name)
        rec = ToolCallRecord(call.id, tool.server if tool else "", tool.name if tool else call.name, call.arguments)
        if tool is None:
            rec.status = "unknown_tool"
            rec.result = f"There is no tool named {call.name!r}. Available: {', '.join(self.toolbox.by_name) or 'none'}."
            return rec
        req = PermissionRequest(tool.server, tool.name, call.arguments, call.id)
        if not self.policy.decide(req, self.ask):
            rec.status = "denied"
            rec.result = "The user denied this tool call. Answer without it."
            return rec
        self.on_event(ToolCallStarted(rec))
        t0 = time.perf_counter()
        try:
            res = self.toolbox.run(tool, call.arguments)
            rec.result, rec.status = res.text, "error" if res.is_error else "ok"
        except ToolTimeoutError as exc:
            rec.status, rec.result = "timeout", f"The tool did not answer in time ({exc.message})."
        except ToolError as exc:
            rec.status, rec.result = "error", f"The tool failed: {exc.message}"
        rec.duration_s = round(time.perf_counter() - t0, 3)
        return rec

    def run(self, messages: list[dict[str, Any]]) -> ToolLoopResult:
        convo = [dict(m) for m in messages]
        specs = self.toolbox.specs()
        records: list[ToolCallRecord] = []
        texts: list[str] = []
        thoughts: list[str] = []
        rounds = 0

        def result(reason: str, fin: P.Finished) -> ToolLoopResult:
            return ToolLoopResult("".join(texts), reason, records, rounds, fin.stats, convo, "\n\n".join(thoughts),
                                  bool(fin.stopped_thinking), list(fin.dropped))

        while True:
            text, calls, fin = self._one_round(convo, specs)
            if text.strip():
                texts.append(text)
            thought = {"reasoning": fin.reasoning} if fin.reasoning else {}
            if fin.reasoning:
                thoughts.append(fin.reasoning)
            if not calls or fin.finish_reason == "cancelled" or self._cancelled.is_set():
                convo.append({"role": "assistant", "content": text, **thought})
                return result(fin.finish_reason, fin)
            if rounds >= self.max_rounds:
                for c in calls:
                    rec = ToolCallRecord(c.id, "", c.name, c.arguments, status="round_limit",
                                         result=f"Not run: the limit of {self.max_rounds} tool rounds was reached.")
                    records.append(rec)
                    self.on_event(ToolCallFinished(rec))
                convo.append({"role": "assistant", "content": text, **thought})
                return result("tool_limit", fin)
            rounds += 1
            # The thinking before a call goes back with it: the template decides (gpt-oss keeps it).
            convo.append({"role": "assistant", "content": text, **thought,
                          "tool_calls": [c.to_message() for c in calls]})
            for c in calls:
                if self._cancelled.is_set():
                    break
                rec = self._execute(c)
                records.append(rec)
                self.on_event(ToolCallFinished(rec))
                convo.append({"role": "tool", "tool_call_id": c.id, "name": c.name, "content": rec.result})
            if self._cancelled.is_set():
                return result("cancelled", fin)


def records_markdown(records: list[dict[str, Any]] | list[ToolCallRecord]) -> str:
    """Tool calls as collapsed Markdown blocks, for exports (``<details>`` stays closed in viewers)."""
    out = []
    for r in records:
        d = r.to_dict() if isinstance(r, ToolCallRecord) else r
        args = json.dumps(d.get("arguments", {}), ensure_ascii=False)
        out += [f"<details><summary>Tool {d.get('server')}.{d.get('name')} — {d.get('status')}</summary>", "",
                "Arguments:", "", "```json", args, "```", "", "Result:", "", "```", str(d.get("result", "")), "```",
                "", "</details>", ""]
    return "\n".join(out)
