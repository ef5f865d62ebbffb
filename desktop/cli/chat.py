"""``desktop-chat prompt`` (the exact prompt text a model would see) and ``ask`` (stream one answer).

``ask`` with tools or attachments hands over to ``desktop.cli.tools``. Runs on the main thread of the CLI
process; generation happens in the engine process.
"""
from __future__ import annotations

import argparse
import json
import signal
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from desktop.cli.common import _print_json, _store, ask_target
from desktop.engine.gguf import doctor as gguf_doctor
from desktop.engine.library import registry
from desktop.engine.inference import prompts
from desktop.engine.inference import protocol as P
from desktop.engine.errors import AppError, GenerationError
from desktop.engine.inference.reasoning import EFFORTS, STOPPED_THINKING
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
        store = _store()
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


def _ask_images(a: argparse.Namespace, profile: Any, model_path: Path | None, message: dict[str, Any]) -> Path | None:
    """``--image`` files checked (before the engine starts) and put on ``message``; the projector to load:
    ``--mmproj``, else the one recorded for the model, else the one beside the file."""
    from desktop.engine.errors import ImageError
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
    mmproj = mmproj or registry.projector_for(model_path) or (projector.find_beside(model_path) if model_path else None)
    if mmproj is None:
        raise ImageError(f"{model_path.name if model_path else 'this model'} has no vision projector, so it cannot "
                         "see images; pass --mmproj FILE (an mmproj-*.gguf made for it) or choose a vision model")
    return mmproj


def cmd_ask(a: argparse.Namespace) -> int:
    from desktop.engine.inference.client import EngineClient, new_id

    if a.mcp or a.attach:
        from desktop.cli.tools import cmd_ask_tools  # tools (MCP) and attachments

        return cmd_ask_tools(a, _store)

    profile, model_path = ask_target(a, _store)
    messages: list[dict[str, Any]] = [{"role": "user", "content": a.text}]
    mmproj = _ask_images(a, profile, model_path, messages[0])
    client = EngineClient()
    gen = registry.generate_request(profile, messages, new_id("gen"), max_tokens=a.max_tokens,
                                  temperature=a.temperature, seed=a.seed)
    thinking_controls(gen, a)
    text_parts: list[str] = []
    thought = False  # some thinking was written to stderr (--show-reasoning)
    interrupted = False

    def on_sigint(_sig: int, _frm: Any) -> None:
        nonlocal interrupted
        interrupted = True
        client.cancel(gen.id)

    old = signal.signal(signal.SIGINT, on_sigint)
    try:
        loaded = client.load(registry.load_request(profile, model_path, new_id("load"), n_ctx=a.ctx, mmproj=mmproj))
        for note in loaded.notes:  # e.g. a context reduced to what fits, with the numbers
            sys.stderr.write(f"note: {note}\n")
        if loaded.reasoning_format and profile is None and a.max_tokens is None:
            gen.max_tokens = REASONING_MAX_TOKENS  # thinking is long: a file without a profile gets room for it
        finished: P.Finished | None = None
        for ev in client.generate(gen):
            if isinstance(ev, P.TokenChunk):
                text_parts.append(ev.text)
                if ev.reasoning and a.show_reasoning and not a.json:
                    sys.stderr.write(ev.reasoning)  # thinking to stderr: stdout carries only the answer
                    sys.stderr.flush()
                    thought = True
                if ev.text and thought:
                    sys.stderr.write("\n")
                    thought = False
                if not a.json:
                    sys.stdout.write(ev.text)
                    sys.stdout.flush()
            elif isinstance(ev, P.Failed):
                if text_parts and not a.json:
                    sys.stdout.write("\n")
                from desktop.engine.errors import from_dict

                raise from_dict(ev.error)
            elif isinstance(ev, P.Finished):
                finished = ev
        assert finished is not None
        if thought:
            sys.stderr.write("\n")
        if a.json:
            _print_json({"text": finished.text, "reasoning": finished.reasoning,
                         "finish_reason": finished.finish_reason, "stopped_thinking": finished.stopped_thinking,
                         "stats": asdict(finished.stats), "profile": profile.id if profile else None,
                         "model": str(model_path) if model_path else loaded.description, "backend": loaded.backend,
                         "reasoning_format": loaded.reasoning_format, "dropped": finished.dropped})
        else:
            sys.stdout.write("\n")
            if a.stats:
                s = finished.stats
                sys.stderr.write(f"[{s.generated_tokens} tokens, {s.tokens_per_s:.1f} tok/s, ttft {s.ttft_s*1000:.0f} ms, "
                                 f"{s.backend}, ctx {s.context_used}/{s.context_total}, {finished.finish_reason}]\n")
        if finished.stopped_thinking:
            # no answer, only thinking cut off by max_tokens: not a success
            raise GenerationError(STOPPED_THINKING)
    finally:
        signal.signal(signal.SIGINT, old)
        client.close()
    return 130 if interrupted else 0


def thinking_controls(gen: P.Generate, a: argparse.Namespace) -> None:
    """``--thinking off`` and ``--effort`` over the profile's reasoning settings (the template's controls)."""
    if getattr(a, "thinking", None):
        gen.prompt_spec["enable_thinking"] = None if a.thinking == "on" else False
    if getattr(a, "effort", None):
        gen.prompt_spec["reasoning_effort"] = a.effort


def add_parser(sub: Any) -> None:
    x = sub.add_parser("prompt", help="print the exact prompt text a model would see")
    x.add_argument("--profile")
    x.add_argument("--model", help="a GGUF whose own chat template to use (when no --profile)")
    x.add_argument("--messages", required=True, help="a JSON file: a list of {role, content}")
    x.set_defaults(fn=cmd_prompt)

    x = sub.add_parser("ask", help="stream one answer")
    x.add_argument("--profile")
    x.add_argument("--model", help="a GGUF file; without --profile its own chat template is used")
    x.add_argument("--max-tokens", type=int)
    x.add_argument("--temperature", type=float)
    x.add_argument("--seed", type=int)
    x.add_argument("--ctx", type=int, help="context length (default: the profile's)")
    x.add_argument("--json", action="store_true")
    x.add_argument("--stats", action="store_true", help="print speed and context use to stderr")
    x.add_argument("--image", action="append", default=[], metavar="FILE",
                   help="an image for a vision model (repeatable); scaled down to what its projector takes")
    x.add_argument("--mmproj", metavar="FILE", help="the model's multimodal projector (default: the one recorded "
                   "for the model, else an mmproj-*.gguf beside it)")
    from desktop.cli.tools import add_ask_options

    add_ask_options(x)
    x.add_argument("text")
    x.set_defaults(fn=cmd_ask)
    x.add_argument("--show-reasoning", action="store_true", help="print a reasoning model's thinking to stderr")
    x.add_argument("--thinking", choices=("on", "off"), help="ask for thinking or not, where the template allows "
                   "it (Qwen3's enable_thinking)")
    x.add_argument("--effort", choices=EFFORTS, help="gpt-oss's reasoning effort (default: the profile's, else medium)")
