"""The command-line front end: the same engine calls the GUI makes, printed to a terminal.

User errors print one ``error: ...`` line on stderr and exit 1, never a traceback. Runs on the main
thread of the CLI process; generation happens in the engine process.
"""
from __future__ import annotations

import argparse
import json
import signal
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any, NoReturn

from desktop.engine.gguf import doctor as gguf_doctor
from desktop.engine.library import registry as models
from desktop.engine.inference import prompts
from desktop.engine.inference import protocol as P
from desktop.engine.errors import AppError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, no usage dump
        sys.stderr.write(f"error: {message} (see --help)\n")
        raise SystemExit(1)


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


def _store():
    from desktop.engine.profiles import ProfileStore

    store = ProfileStore()
    for problem in store.problems:  # a broken user file is skipped, not fatal; say so once per file
        sys.stderr.write(f"warning: skipped a user profile: {problem.message}\n")
    return store


# ------------------------------------------------------------------------------------------ profiles


def cmd_profiles_list(a: argparse.Namespace) -> int:
    store = _store()
    rows = []
    for p in store.all():
        try:
            installed = None if models.is_remote(p) else str(models.resolve_model(p))
        except AppError:
            installed = None
        rows.append({"id": p.id, "name": p.name, "repo": p.source.repo, "prompt_format": p.prompt.format,
                     "recommended_quant": p.source.recommended_quant, "context": p.context.default,
                     "installed": installed, "default": p.id == store.default().id, "backend": p.backend.kind})
    if a.json:
        _print_json(rows)
    else:
        for r in rows:
            mark = "*" if r["default"] else " "
            state = "remote" if r["backend"] != "local" else "installed" if r["installed"] else "not downloaded"
            print(f"{mark} {r['id']:36} {r['prompt_format']:8} {state:15} {r['name']}")
    return 0


def cmd_profiles_show(a: argparse.Namespace) -> int:
    p = _store().get(a.id)
    d = p.to_dict()
    if a.json:
        _print_json(d)
    else:
        import yaml

        sys.stdout.write(yaml.safe_dump(d, sort_keys=False, allow_unicode=True))
    return 0


def cmd_profiles_validate(a: argparse.Namespace) -> int:
    from desktop.engine.profiles import load_profile_file

    p = load_profile_file(a.path)
    print(f"ok: {a.path} is a valid profile ({p.id})")
    return 0


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
            rep = gguf_doctor.inspect(a.model or models.resolve_model(profile))
            template = rep.chat_template
        text = models.render_for_profile(profile, msgs, chat_template=template)
    sys.stdout.write(text)
    sys.stdout.flush()
    return 0


# ------------------------------------------------------------------------------------------ ask


def ask_target(a: argparse.Namespace, profile_store: Any) -> tuple[Any, Path | None]:
    """The profile and GGUF file an ``ask`` runs on (``--profile``/``--model``); None as the file for a remote profile."""
    profile = None
    if a.profile or not a.model:
        store = profile_store()
        profile = store.get(a.profile) if a.profile else store.default()
    if a.model and models.is_remote(profile):
        raise AppError(f"profile {profile.id!r} runs on a server ({profile.backend.base_url}); drop --model")
    model_path = Path(a.model) if a.model else None if models.is_remote(profile) else models.resolve_model(profile)
    if a.model:
        gguf_doctor.inspect(model_path)  # fail fast, with the file's own error, before starting the engine
    return profile, model_path


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
    if models.is_remote(profile):
        return None  # the server decides what it can see
    mmproj = mmproj or models.projector_for(model_path) or (projector.find_beside(model_path) if model_path else None)
    if mmproj is None:
        raise ImageError(f"{model_path.name if model_path else 'this model'} has no vision projector, so it cannot "
                         "see images; pass --mmproj FILE (an mmproj-*.gguf made for it) or choose a vision model")
    return mmproj


def cmd_ask(a: argparse.Namespace) -> int:
    from desktop.engine.inference.client import EngineClient, new_id

    if getattr(a, "mcp", None) or getattr(a, "attach", None):
        from desktop.cli_tools import cmd_ask_tools  # tools (MCP) and attachments

        return cmd_ask_tools(a, _store)

    profile, model_path = ask_target(a, _store)
    messages: list[dict[str, Any]] = [{"role": "user", "content": a.text}]
    mmproj = _ask_images(a, profile, model_path, messages[0])
    client = EngineClient()
    gen = models.generate_request(profile, messages, new_id("gen"), max_tokens=a.max_tokens,
                                  temperature=a.temperature, seed=a.seed)
    text_parts: list[str] = []
    interrupted = False

    def on_sigint(_sig: int, _frm: Any) -> None:
        nonlocal interrupted
        interrupted = True
        client.cancel(gen.id)

    old = signal.signal(signal.SIGINT, on_sigint)
    try:
        loaded = client.load(models.load_request(profile, model_path, new_id("load"), n_ctx=a.ctx, mmproj=mmproj))
        for note in loaded.notes:  # e.g. a context reduced to what fits, with the numbers
            sys.stderr.write(f"note: {note}\n")
        finished: P.Finished | None = None
        for ev in client.generate(gen):
            if isinstance(ev, P.TokenChunk):
                text_parts.append(ev.text)
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
        if a.json:
            _print_json({"text": finished.text, "finish_reason": finished.finish_reason,
                         "stats": asdict(finished.stats), "profile": profile.id if profile else None,
                         "model": str(model_path) if model_path else loaded.description, "backend": loaded.backend,
                         "dropped": finished.dropped})
        else:
            sys.stdout.write("\n")
            if a.stats:
                s = finished.stats
                sys.stderr.write(f"[{s.generated_tokens} tokens, {s.tokens_per_s:.1f} tok/s, ttft {s.ttft_s*1000:.0f} ms, "
                                 f"{s.backend}, ctx {s.context_used}/{s.context_total}, {finished.finish_reason}]\n")
    finally:
        signal.signal(signal.SIGINT, old)
        client.close()
    return 130 if interrupted else 0


# ------------------------------------------------------------------------------------------ remote


def cmd_remote_check(a: argparse.Namespace) -> int:
    from desktop.engine.inference.remote_backend import check_connection

    profile = _store().get(a.profile)
    if not models.is_remote(profile):
        raise AppError(f"profile {profile.id!r} runs locally (backend.kind: local); there is no server to check")
    res = check_connection(profile)
    if a.json:
        _print_json(res.to_dict())
    elif res.ok:
        print(f"ok: {res.base_url} answered in {res.latency_ms:.0f} ms; model {res.model}; "
              f"server models: {', '.join(res.models) or '(none listed)'}")
    else:
        sys.stderr.write(f"error: {res.error}\n")
    return 0 if res.ok else 1


def cmd_serve(a: argparse.Namespace) -> int:
    import os

    from desktop.engine.inference.client import EngineClient, new_id
    from desktop.engine.inference.serve import OpenAIServer

    profile = None
    if a.profile or not a.model:
        store = _store()
        profile = store.get(a.profile) if a.profile else store.default()
    remote = models.is_remote(profile)
    model_path = Path(a.model) if a.model else None if remote else models.resolve_model(profile)
    if a.model:
        gguf_doctor.inspect(model_path)
    client = EngineClient()
    try:
        server = OpenAIServer(client, profile, profile.id if profile else model_path.stem, a.host, a.port,
                              allowed_origins=a.allow_origin, api_key=a.api_key or os.environ.get(a.api_key_env),
                              max_queue=a.max_queue, request_timeout_s=a.request_timeout)
        try:
            client.load(models.load_request(profile, model_path, new_id("load"), n_ctx=a.ctx))
            print(f"serving {server.model_id} at {server.base_url} (Ctrl-C to stop)", flush=True)
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()
    finally:
        client.close()
    return 0


# ------------------------------------------------------------------------------------------ gguf


def cmd_gguf_inspect(a: argparse.Namespace) -> int:
    from desktop.engine.gguf import projector

    if projector.is_projector(a.path):
        info = projector.inspect(a.path)
        if a.json:
            _print_json(info.to_dict())
            return 0
        side = f"{info.image_size} x {info.image_size}" if info.image_size else "any"
        print(f"file          {info.path} ({info.file_size / 2**20:.1f} MiB)")
        print(f"projector     {info.projector_type}   quant {info.file_type}   name {info.name}")
        print(f"encoder       vision {'yes' if info.has_vision else 'no'}   audio {'yes' if info.has_audio else 'no'}   "
              f"layers {info.n_layer}   embd {info.n_embd_vision}   heads {info.n_head}")
        print(f"images        {side} (patch {info.patch_size}); the app scales images to at most {info.max_side} px")
        print(f"fits          a language model of embedding size {info.n_embd_text or 'unknown'}")
        print(f"compute       ~{info.compute_bytes() / 2**20:.0f} MiB per image (estimate)")
        return 0
    rep = gguf_doctor.inspect(a.path)
    if a.json:
        _print_json(rep.to_dict())
        return 0
    def tok(t: gguf_doctor.TokenInfo | None) -> str:
        return f"{t.id} {t.text!r} ({t.type})" if t else "-"
    print(f"file          {rep.path} ({rep.file_size / 2**20:.1f} MiB)")
    print(f"architecture  {rep.architecture}   quant {rep.file_type}   name {rep.name}")
    print(f"context       {rep.context_length}   rope base {rep.rope_freq_base}   rope scaling {rep.rope_scaling}")
    print(f"layers        {rep.block_count}   embd {rep.embedding_length}   heads {rep.head_count}/{rep.head_count_kv} (q/kv)")
    print(f"vocab         {rep.vocab_size} ({rep.tokenizer_model}, pre {rep.pre_tokenizer or '-'})")
    eot_from = {"metadata": " (tokenizer.ggml.eot_token_id)", "text": " (found by its text, as llama.cpp does)"}
    print(f"bos / eos     {tok(rep.bos)} / {tok(rep.eos)}   eot {tok(rep.eot)}{eot_from.get(rep.eot_source or '', '')}")
    n = rep.numbers
    if n:
        swa = f"{n['swa_layers']} layers x {n['sliding_window']}" if n["sliding_window"] else "none"
        print(f"head size     k {n['head_dim']} / v {n['head_dim_v']}   sliding window {swa}")
    print(f"template      {'yes' if rep.has_chat_template else 'no, ' + (rep.detected or {}).get('reason', 'format unknown')}")
    print(f"experts       {rep.expert_count} (used {rep.expert_used_count}, layout {rep.expert_layout or '-'})")
    if rep.split_count:
        print(f"split         shard {rep.split_index} of {rep.split_count}")
    if rep.problems:
        print("problems:")
        for pr in rep.problems:
            print(f"  [{pr.code}] {pr.message}{'  (fixable: gguf fix)' if pr.fixable else ''}")
    else:
        print("problems:     none")
    return 0


def cmd_gguf_fix(a: argparse.Namespace) -> int:
    from desktop.engine import paths
    from desktop.engine.errors import FixError

    if a.revert:
        return _gguf_revert(a)
    real = Path(a.path).resolve()
    if not a.dry_run and paths.hf_hub_cache().resolve() in real.parents:
        raise FixError(f"{a.path} is in the shared Hugging Face cache, which the app never changes; it is repaired "
                       "at load time instead (or import a copy with `models import --repair`)")
    res = gguf_doctor.fix(a.path, dry_run=a.dry_run)
    entry = None if a.dry_run or not res.changes else models.find_by_path(a.path)
    if entry is not None:  # keep the library's record in step: repaired in place, undoable
        models.update_entry(entry["id"], fixes=res.summary(), repaired_in_place=True,
                            sha256=models.hash_file(a.path))
    if a.json:
        _print_json(res.to_dict())
        return 0
    if not res.changes:
        print("nothing to fix")
    for c in res.changes:
        print(("would apply: " if a.dry_run else "") + c.description)
    if res.changes and not a.dry_run:
        print(f"the original bytes are journaled: `desktop-chat gguf fix --revert {a.path}` undoes it")
    return 0


def _gguf_revert(a: argparse.Namespace) -> int:
    entry = models.find_by_path(a.path)
    if entry is not None:
        m = models.revert_repair(entry["id"])
        out: dict[str, Any] = {"path": m.path, "reverted": True, "sha256": m.sha256, "model_id": m.id,
                               "fixes": m.fixes}
    else:
        res = gguf_doctor.revert(a.path)
        out = {"path": res.path, "reverted": True, "sha256": models.hash_file(a.path), "model_id": None,
               "fixes": res.summary()}
    if a.json:
        _print_json(out)
        return 0
    print(f"restored the original bytes of {out['path']} (sha256 {out['sha256']})")
    return 0


# ------------------------------------------------------------------------------------------ main


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="desktop-chat", description="Chat with local GGUF models. Without a command, opens the app.")
    sub = p.add_subparsers(dest="cmd", parser_class=_Parser)

    prof = sub.add_parser("profiles", help="list, show and validate model profiles")
    psub = prof.add_subparsers(dest="sub", required=True, parser_class=_Parser)
    x = psub.add_parser("list")
    x.add_argument("--json", action="store_true")
    x.set_defaults(fn=cmd_profiles_list)
    x = psub.add_parser("show")
    x.add_argument("id")
    x.add_argument("--json", action="store_true")
    x.set_defaults(fn=cmd_profiles_show)
    x = psub.add_parser("validate")
    x.add_argument("path")
    x.set_defaults(fn=cmd_profiles_validate)

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
    from desktop.cli_tools import add_ask_options

    add_ask_options(x)
    x.add_argument("text")
    x.set_defaults(fn=cmd_ask)

    r = sub.add_parser("remote", help="profiles that run on an OpenAI-compatible server")
    rsub = r.add_subparsers(dest="sub", required=True, parser_class=_Parser)
    x = rsub.add_parser("check", help="list the server's models and time the answer")
    x.add_argument("profile")
    x.add_argument("--json", action="store_true")
    x.set_defaults(fn=cmd_remote_check)

    x = sub.add_parser("serve", help="expose the local engine as an OpenAI-compatible endpoint on loopback")
    x.add_argument("--profile")
    x.add_argument("--model", help="a GGUF file; without --profile its own chat template is used")
    x.add_argument("--host", default="127.0.0.1", help="a loopback address (there is no authentication)")
    x.add_argument("--port", type=int, default=8080)
    x.add_argument("--ctx", type=int, help="context length (default: the profile's)")
    x.add_argument("--allow-origin", action="append", default=[], metavar="ORIGIN",
                   help="a web origin (e.g. http://localhost:3000) whose pages may call the server; repeatable")
    x.add_argument("--api-key", help="require 'Authorization: Bearer KEY' (visible to other local users in ps: "
                   "prefer --api-key-env)")
    x.add_argument("--api-key-env", default="DESKTOP_CHAT_SERVE_API_KEY", metavar="NAME",
                   help="read the required API key from this environment variable (default: %(default)s)")
    x.add_argument("--max-queue", type=int, default=8, help="requests that may wait for the engine (default: 8)")
    x.add_argument("--request-timeout", type=float, default=600.0, metavar="SECONDS",
                   help="the most one request may take, waiting included (default: 600)")
    x.set_defaults(fn=cmd_serve)

    from desktop.cli_models import add_parser as add_models_parser

    add_models_parser(sub, _Parser)
    from desktop.cli_tools import add_tools_parser

    add_tools_parser(sub, _Parser)

    g = sub.add_parser("gguf", help="inspect and repair GGUF files")
    gsub = g.add_subparsers(dest="sub", required=True, parser_class=_Parser)
    x = gsub.add_parser("inspect")
    x.add_argument("path")
    x.add_argument("--json", action="store_true")
    x.set_defaults(fn=cmd_gguf_inspect)
    x = gsub.add_parser("fix", help="repair in place (journaled); --revert puts the original bytes back")
    x.add_argument("path")
    g2 = x.add_mutually_exclusive_group()
    g2.add_argument("--dry-run", action="store_true")
    g2.add_argument("--revert", action="store_true", help="undo an earlier repair of PATH, byte for byte")
    x.add_argument("--json", action="store_true")
    x.set_defaults(fn=cmd_gguf_fix)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not getattr(args, "cmd", None):
        from desktop.ui.app import run_gui

        return run_gui()
    from desktop.engine import logs

    log_file = logs.setup_logging("cli")
    logs.install_excepthooks()  # other threads' crashes go to the log file, not to the terminal
    try:
        return int(args.fn(args) or 0)
    except AppError as exc:
        sys.stderr.write(f"error: {exc.message}\n")
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:  # noqa: BLE001 - a bug: one line for the user, the traceback in the log
        logs.log_exception(exc, f"cli {args.cmd}")
        sys.stderr.write(f"error: internal error ({type(exc).__name__}: {exc}); details are in {log_file}\n")
        return 1


__all__ = ["main", "build_parser"]
