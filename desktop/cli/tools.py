"""``desktop-chat tools list``: the configured MCP servers and their tools (``ask --mcp`` is in ``chat.py``, a
stage of the one ``ask``). Runs on the CLI's main thread; MCP servers on the MCP client's own thread.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from desktop.cli.common import Parser


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
    tsub = t.add_subparsers(dest="sub", required=True, parser_class=Parser)
    x = tsub.add_parser("list", help="start each configured server and list its tools")
    x.add_argument("--mcp", metavar="FILE", help="an mcp.json (default: the one in the config dir)")
    x.add_argument("--json", action="store_true")
    x.set_defaults(fn=cmd_tools_list)
