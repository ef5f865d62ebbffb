"""``desktop-chat prompt`` (the exact prompt text a model would see) and ``ask`` (stream one answer).

``ask`` is one flow whatever it is given: images (``--image``), files (``--attach``) and tools (``--mcp``) are
stages of it, so every option works with every other: one load, one request, one output (the answer on stdout,
the thinking on stderr with ``--show-reasoning``, ``--json`` with the same fields, ``--stats``), one Ctrl+C.
Without ``--allow-tools`` every tool call is refused, reported on stderr, and the model is told it was denied.
Runs on the main thread of the CLI process; generation happens in the engine process, MCP servers on the MCP
client's own thread.
"""
from __future__ import annotations

import argparse
import json
import signal
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from desktop.cli.common import print_json, profile_store, add_field_options, ask_target, field_values
from desktop.engine.gguf import doctor as gguf_doctor
from desktop.engine.library import registry
from desktop.engine.inference import prompts
from desktop.engine.inference import protocol as P
from desktop.engine.inference.client import run_to_finish
from desktop.engine.errors import AppError, GenerationError, ImageError
from desktop.engine.inference.reasoning import STOPPED_THINKING
from desktop.engine.profiles import fields
from desktop.engine.profiles.schema import REASONING_MAX_TOKENS


# ------------------------------------------------------------------------------------------ prompt


def _read_messages(path: str) -> list[dict[str, str]]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise AppError(f"{path}: cannot read the messages file ({exc.strerror or exc})") from exc
    except ValueError as exc:
        raise AppError(f"{path}: not valid JSON ({exc})") from exc
    if isinstance(data, dict) and "messages" in data:
        data = data["messages"]
    if not isinstance(data, list):
        raise AppError(f"{path}: expected a JSON list of {{role, content}} messages")
    return data


def cmd_prompt(a: argparse.Namespace) -> int:
    msgs = _read_messages(a.messages)
    if a.model and not a.profile:
        rep = gguf_doctor.inspect(a.model)
        from desktop.engine.library.generated import format_for

        text = prompts.render(format_for(rep)[0], msgs, chat_template=rep.chat_template,
                              bos_token=rep.bos.text if rep.bos else "", eos_token=rep.eos.text if rep.eos else "")
    else:
        store = profile_store()
        profile = store.get(a.profile) if a.profile else store.default()
        template = None
        if profile.prompt.format == "gguf":
            rep = gguf_doctor.inspect(a.model or registry.resolve_model(profile))
            template = rep.chat_template
        text = registry.render_for_profile(profile, msgs, chat_template=template)
    sys.stdout.write(text)
    sys.stdout.flush()
    return 0


# ------------------------------------------------------------------------------------------ ask

#: ask's options that set a setting of the table (flag, dotted key): the request's sampling, and the context
ASK_FIELDS: tuple[tuple[str, str], ...] = (
    *(("--" + f.name.replace("_", "-"), f.key) for f in fields.FIELDS if f.serve),
    ("--ctx", "context.default"),
)


def _ask_images(a: argparse.Namespace, profile: Any, model_path: Path | None, message: dict[str, Any]) -> Path | None:
    """``--image`` files checked (before the engine starts) and put on ``message``; the projector to load:
    ``--mmproj``, else the one recorded for the model, else the one beside the file."""
    from desktop.engine.gguf import projector
    from desktop.engine.vision import images

    mmproj = Path(a.mmproj) if getattr(a, "mmproj", None) else None
    paths = [Path(p) for p in (getattr(a, "image", None) or [])]
    if mmproj is not None and model_path is not None:
        projector.check_pair(model_path, mmproj)
    if not paths:
        return mmproj
    for p in paths:
        images.check_image_file(p)
    message["images"] = [str(p.absolute()) for p in paths]
    if registry.is_remote(profile):
        return None  # the server decides what it can see
    if a.mcp:
        raise ImageError("--image cannot be used with --mcp on a local model: its tool turns are rendered as text, "
                         "which carries no images")
    mmproj = mmproj or registry.projector_for(model_path) or (projector.find_beside(model_path) if model_path else None)
    if mmproj is None:
        raise ImageError(f"{model_path.name if model_path else 'this model'} has no vision projector, so it cannot "
                         "see images; pass --mmproj FILE (an mmproj-*.gguf made for it) or choose a vision model")
    return mmproj


def thinking_controls(gen: P.Generate, a: argparse.Namespace) -> None:
    """``--thinking off`` and ``--effort`` over the profile's reasoning settings (the template's controls)."""
    if getattr(a, "thinking", None):
        gen.prompt_spec["enable_thinking"] = None if a.thinking == "on" else False
    if getattr(a, "effort", None):
        gen.prompt_spec["reasoning_effort"] = a.effort


@dataclass
class _Answer:
    """One answer, plain or after tool rounds: what ``--json``, ``--stats`` and the exit status are made of."""

    text: str
    reasoning: str
    finish_reason: str
    stopped_thinking: bool
    stats: P.GenerationStats | None
    dropped: list[int] = field(default_factory=list)
    tool_calls: list[dict[str, Any]] = field(default_factory=list)


class _Output:
    """The answer as it streams: on stdout (only the answer), the thinking on stderr with ``--show-reasoning``;
    nothing while streaming with ``--json``."""

    def __init__(self, a: argparse.Namespace) -> None:
        self.quiet = bool(a.json)
        self.show_thinking = bool(a.show_reasoning) and not a.json
        self.thinking = False  # some thinking is on stderr without its line end yet
        self.wrote = False  # some answer is on stdout

    def reasoning(self, text: str) -> None:
        if text and self.show_thinking:
            sys.stderr.write(text)
            sys.stderr.flush()
            self.thinking = True

    def text(self, text: str) -> None:
        if not text:
            return
        self._end_thinking()
        if not self.quiet:
            sys.stdout.write(text)
            sys.stdout.flush()
            self.wrote = True

    def _end_thinking(self) -> None:
        if self.thinking:
            sys.stderr.write("\n")
            self.thinking = False

    def end(self, failed: bool = False) -> None:
        """The answer's last line ended (on a failure only where some answer was written)."""
        self._end_thinking()
        if not self.quiet and (self.wrote or not failed):
            sys.stdout.write("\n")


def _generate(client: Any, gen: P.Generate, out: _Output) -> _Answer:
    """One plain generation, streamed to ``out``."""
    def chunk(ev: P.TokenChunk) -> None:
        out.reasoning(ev.reasoning)
        out.text(ev.text)

    finished = run_to_finish(client.generate(gen), chunk)
    return _Answer(finished.text, finished.reasoning, finished.finish_reason, finished.stopped_thinking,
                   finished.stats, list(finished.dropped))


def _refuse(req: Any) -> str:
    from desktop.engine.tools.permissions import DENY

    sys.stderr.write(f"tool call refused: {req.server}.{req.tool}({json.dumps(req.arguments, ensure_ascii=False)}) "
                     "- pass --allow-tools to run tools\n")
    return DENY


def cmd_ask(a: argparse.Namespace) -> int:
    """Every check that needs no engine first (options, model, images, files, mcp.json); then one load, the
    optional stages (the attachments fitted into the question, the tool loop around the generation) and one
    output. Ctrl+C stops the answer (exit 130) and keeps what was written."""
    from desktop.engine.chats import attachments as att
    from desktop.engine.inference.client import EngineClient, new_id

    profile, model_path = ask_target(a, profile_store)
    values = field_values(a, ASK_FIELDS, profile)
    if a.max_tool_rounds < 0:
        raise AppError(f"--max-tool-rounds must be 0 or more, not {a.max_tool_rounds}")
    messages: list[dict[str, Any]] = [{"role": "user", "content": a.text}]
    mmproj = _ask_images(a, profile, model_path, messages[0])
    files = [att.load_attachment(p) for p in a.attach]  # unreadable files fail before the engine starts
    servers = None
    if a.mcp:
        from desktop.engine.tools.config import load_config

        servers = load_config(a.mcp)
    sampling = {key.split(".", 1)[1]: v for key, v in values.items() if key.startswith("sampling.")}
    gen = registry.generate_request(profile, messages, new_id("gen"), **sampling)
    thinking_controls(gen, a)
    load = registry.load_request(profile, model_path, new_id("load"), n_ctx=values.get("context.default"),
                                 mmproj=mmproj)
    out = _Output(a)
    client = EngineClient()
    manager: Any = None
    tool_loop: Any = None
    interrupted = False

    def on_sigint(_sig: int, _frm: Any) -> None:
        nonlocal interrupted
        interrupted = True
        if tool_loop is not None:
            tool_loop.cancel()  # the round's own request, or the tool call running
        else:
            client.cancel(gen.id)

    old = signal.signal(signal.SIGINT, on_sigint)
    try:
        loaded = client.load(load)
        for note in loaded.notes:  # e.g. a context reduced to what fits, with the numbers
            sys.stderr.write(f"note: {note}\n")
        if interrupted:  # during the load, which llama.cpp cannot stop
            return 130
        if loaded.reasoning_format and profile is None and "sampling.max_tokens" not in values:
            gen.max_tokens = REASONING_MAX_TOKENS  # thinking is long: a file without a profile gets room for it
        citations: list[Any] = []
        if files:  # counted with the model's own tokenizer (the estimate for a remote backend)
            ctx = att.fit_attachments(files, gen.messages, loaded.n_ctx, gen.max_tokens,
                                      att.engine_token_counter(client))
            gen.messages, citations = att.with_context(gen.messages, ctx), ctx.citations
        try:
            if servers is not None:
                from desktop.engine.tools.loop import ToolBox, ToolLoop, turns_for
                from desktop.engine.tools.mcp_client import McpManager
                from desktop.engine.tools.permissions import allow_all

                manager = McpManager(servers)
                toolbox, errors = ToolBox.from_manager(manager)
                for msg in errors.values():
                    sys.stderr.write(f"warning: {msg}\n")
                tool_loop = ToolLoop(client, turns_for(profile, model_path, gen), toolbox,
                                     ask=allow_all if a.allow_tools else _refuse, max_rounds=a.max_tool_rounds,
                                     on_text=out.text, on_reasoning=out.reasoning)
                if interrupted:
                    return 130
                res = tool_loop.run(gen.messages)
                answer = _Answer(res.text, res.reasoning, res.finish_reason, res.stopped_thinking, res.stats,
                                 res.dropped, [{k: r.to_dict()[k] for k in ("server", "name", "arguments", "result",
                                                                           "status")} for r in res.tool_calls])
            else:
                answer = _generate(client, gen, out)
        except AppError:
            out.end(failed=True)
            raise
        out.end()
        if a.json:
            print_json({"text": answer.text, "reasoning": answer.reasoning, "finish_reason": answer.finish_reason,
                         "stopped_thinking": answer.stopped_thinking,
                         "stats": asdict(answer.stats) if answer.stats else None,
                         "profile": profile.id if profile else None,
                         "model": str(model_path) if model_path else loaded.description, "backend": loaded.backend,
                         "reasoning_format": loaded.reasoning_format, "dropped": answer.dropped,
                         "tool_calls": answer.tool_calls, "citations": [c.to_dict() for c in citations]})
        else:
            for r in answer.tool_calls:
                sys.stderr.write(f"[tool {r['server'] or '?'}.{r['name']}: {r['status']}]\n")
            if citations:
                sys.stdout.write(att.citations_markdown(citations) + "\n")
            s = answer.stats
            if a.stats and s is not None:
                sys.stderr.write(f"[{s.generated_tokens} tokens, {s.tokens_per_s:.1f} tok/s, ttft {s.ttft_s*1000:.0f} ms, "
                                 f"{s.backend}, ctx {s.context_used}/{s.context_total}, {answer.finish_reason}]\n")
        if answer.stopped_thinking:
            # no answer, only thinking cut off by max_tokens: not a success
            raise GenerationError(STOPPED_THINKING)
    finally:
        signal.signal(signal.SIGINT, old)
        if manager is not None:
            manager.close()
        client.close()
    return 130 if interrupted else 0


def add_parser(sub: Any) -> None:
    x = sub.add_parser("prompt", help="print the exact prompt text a model would see")
    x.add_argument("--profile")
    x.add_argument("--model", help="a GGUF whose own chat template to use (when no --profile)")
    x.add_argument("--messages", required=True, help="a JSON file: a list of {role, content}")
    x.set_defaults(fn=cmd_prompt)

    x = sub.add_parser("ask", help="stream one answer")
    x.add_argument("--profile")
    x.add_argument("--model", help="a GGUF file; without --profile its own chat template is used")
    add_field_options(x, ASK_FIELDS)
    x.add_argument("--json", action="store_true", help="print the answer, its thinking, stats, tool calls and "
                   "citations as one JSON object")
    x.add_argument("--stats", action="store_true", help="print speed and context use to stderr")
    x.add_argument("--show-reasoning", action="store_true", help="print a reasoning model's thinking to stderr")
    x.add_argument("--thinking", choices=fields.field("reasoning.thinking").choices, help="ask for thinking or "
                   "not, where the template allows it (Qwen3's enable_thinking)")
    x.add_argument("--effort", choices=fields.REASONING_EFFORTS,
                   help="gpt-oss's reasoning effort (default: the profile's, else medium)")
    x.add_argument("--image", action="append", default=[], metavar="FILE",
                   help="an image for a vision model (repeatable); scaled down to what its projector takes")
    x.add_argument("--mmproj", metavar="FILE", help="the model's multimodal projector (default: the one recorded "
                   "for the model, else an mmproj-*.gguf beside it)")
    x.add_argument("--attach", metavar="FILE", action="append", default=[],
                   help="a text, Markdown, code or PDF file for the model to use (repeatable)")
    x.add_argument("--mcp", metavar="FILE", help="an mcp.json whose servers' tools the model may call")
    x.add_argument("--allow-tools", action="store_true", help="run the tool calls (without it each is refused)")
    x.add_argument("--max-tool-rounds", type=int, default=5, help="stop calling tools after N rounds (default 5)")
    x.add_argument("text")
    x.set_defaults(fn=cmd_ask)
