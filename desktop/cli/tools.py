"""``ask`` with tools (``--mcp FILE [--allow-tools]``) and attachments (``--attach FILE``, repeatable).

Kept apart from ``chat.py`` so the plain ``ask`` stays as it is: ``chat.cmd_ask`` hands over when either
option is given. Without ``--allow-tools`` every tool call is refused, reported on stderr, and the model is
told it was denied. ``--json`` adds ``tool_calls: [{"server", "name", "arguments", "result", "status"}]`` and
``citations``. Runs on the CLI's main thread; generation happens in the engine process, MCP servers on the
MCP client's own thread.
"""
from __future__ import annotations

import argparse
import json
import signal
import sys
from dataclasses import asdict
from typing import Any, Callable

from desktop.cli.common import _Parser, ask_target
from desktop.engine.errors import AppError, from_dict
from desktop.engine.inference import protocol as P
from desktop.engine.library import registry


def add_ask_options(x: argparse.ArgumentParser) -> None:
    x.add_argument("--mcp", metavar="FILE", help="an mcp.json whose servers' tools the model may call")
    x.add_argument("--allow-tools", action="store_true", help="run the tool calls (without it each is refused)")
    x.add_argument("--max-tool-rounds", type=int, default=5, help="stop calling tools after N rounds (default 5)")
    x.add_argument("--attach", metavar="FILE", action="append", default=[],
                   help="a text, Markdown, code or PDF file for the model to use (repeatable)")


def _refuse(req: Any) -> str:
    from desktop.engine.tools.permissions import DENY

    sys.stderr.write(f"tool call refused: {req.server}.{req.tool}({json.dumps(req.arguments, ensure_ascii=False)}) "
                     "- pass --allow-tools to run tools\n")
    return DENY


def cmd_ask_tools(a: argparse.Namespace, profile_store: Callable[[], Any]) -> int:
    from desktop.engine.chats import attachments as att
    from desktop.engine.inference.client import EngineClient, new_id

    profile, model_path = ask_target(a, profile_store)
    messages: list[dict[str, Any]] = [{"role": "user", "content": a.text}]
    gen = registry.generate_request(profile, messages, new_id("gen"), max_tokens=a.max_tokens,
                                  temperature=a.temperature, seed=a.seed)
    load = registry.load_request(profile, model_path, new_id("load"), n_ctx=a.ctx)

    files = [att.load_attachment(p) for p in a.attach]  # unreadable files fail before the engine starts
    citations: list[Any] = []
    client = EngineClient()
    manager = None
    interrupted = False
    tool_loop = None

    def on_sigint(_sig: int, _frm: Any) -> None:
        nonlocal interrupted
        interrupted = True
        if tool_loop is not None:
            tool_loop.cancel()
        client.cancel(gen.id)

    def out(text: str) -> None:
        if not a.json:
            sys.stdout.write(text)
            sys.stdout.flush()

    old = signal.signal(signal.SIGINT, on_sigint)
    try:
        loaded = client.load(load)
        if files:
            # Counted with the model's own tokenizer (the estimate for a remote backend).
            count = att.engine_token_counter(client)
            files = [att.load_attachment(f.path, count) for f in files]
            budget = att.context_budget(loaded.n_ctx, gen.max_tokens, count(a.text))
            if budget < att.MIN_CONTEXT_TOKENS:
                raise AppError(f"the context ({loaded.n_ctx} tokens) leaves no room for attachments; raise --ctx")
            ctx = att.build_context(files, a.text, budget, count)
            messages = att.with_context(messages, ctx)
            citations = ctx.citations
            gen.messages = messages
        if a.mcp:
            from desktop.engine.tools.config import load_config
            from desktop.engine.tools.loop import ToolBox, ToolLoop, turns_for
            from desktop.engine.tools.mcp_client import McpManager
            from desktop.engine.tools.permissions import allow_all

            manager = McpManager(load_config(a.mcp))
            toolbox, errors = ToolBox.from_manager(manager)
            for name, msg in errors.items():
                sys.stderr.write(f"warning: {msg}\n")
            tool_loop = ToolLoop(client, turns_for(profile, model_path, gen), toolbox,
                                 ask=allow_all if a.allow_tools else _refuse, max_rounds=a.max_tool_rounds,
                                 on_text=out)
            res = tool_loop.run(messages)
            text, finish, stats = res.text, res.finish_reason, res.stats
            records = [r.to_dict() for r in res.tool_calls]
        else:
            parts: list[str] = []
            finished: P.Finished | None = None
            for ev in client.generate(gen):
                if isinstance(ev, P.TokenChunk):
                    parts.append(ev.text)
                    out(ev.text)
                elif isinstance(ev, P.Failed):
                    raise from_dict(ev.error)
                elif isinstance(ev, P.Finished):
                    finished = ev
            assert finished is not None
            text, finish, stats, records = finished.text, finished.finish_reason, finished.stats, []
        if a.json:
            sys.stdout.write(json.dumps({
                "text": text, "finish_reason": finish, "stats": asdict(stats) if stats else None,
                "profile": profile.id if profile else None,
                "model": str(model_path) if model_path else loaded.description, "backend": loaded.backend,
                "tool_calls": [{k: r[k] for k in ("server", "name", "arguments", "result", "status")}
                               for r in records],
                "citations": [c.to_dict() for c in citations],
            }, indent=2, ensure_ascii=False) + "\n")
        else:
            sys.stdout.write("\n")
            for r in records:
                sys.stderr.write(f"[tool {r['server'] or '?'}.{r['name']}: {r['status']}]\n")
            if citations:
                sys.stdout.write(att.citations_markdown(citations) + "\n")
    finally:
        signal.signal(signal.SIGINT, old)
        if manager is not None:
            manager.close()
        client.close()
    return 130 if interrupted else 0


def cmd_tools_list(a: argparse.Namespace) -> int:
    """``tools list [--mcp FILE] [--json]``: every configured server (started) with its tools, or its error."""
    from desktop.engine.tools.config import load_config
    from desktop.engine.tools.mcp_client import McpManager

    servers = load_config(a.mcp)
    with McpManager(servers) as manager:
        rows = []
        for name, cfg in servers.items():
            row: dict[str, Any] = {"server": name, "kind": cfg.kind, "target": cfg.describe(),
                                   "disabled": cfg.disabled, "tools": [], "error": None}
            if not cfg.disabled:
                tools, errors = manager.tools([name])
                row["tools"] = [{"name": t.name, "description": t.description, "input_schema": t.input_schema}
                                for t in tools]
                row["error"] = errors.get(name)
            rows.append(row)
    if a.json:
        sys.stdout.write(json.dumps(rows, indent=2, ensure_ascii=False) + "\n")
        return 0
    if not rows:
        print("no MCP servers configured (mcp.json in the config dir, or --mcp FILE)")
    for r in rows:
        state = "disabled" if r["disabled"] else f"error: {r['error']}" if r["error"] else f"{len(r['tools'])} tools"
        print(f"{r['server']} ({r['kind']}: {r['target']}) - {state}")
        for t in r["tools"]:
            print(f"  {t['name']:24} {t['description'].splitlines()[0] if t['description'] else ''}")
    return 0


def add_parser(sub: Any) -> None:
    t = sub.add_parser("tools", help="MCP servers and their tools")
    tsub = t.add_subparsers(dest="sub", required=True, parser_class=_Parser)
    x = tsub.add_parser("list", help="start each configured server and list its tools")
    x.add_argument("--mcp", metavar="FILE", help="an mcp.json (default: the one in the config dir)")
    x.add_argument("--json", action="store_true")
    x.set_defaults(fn=cmd_tools_list)
