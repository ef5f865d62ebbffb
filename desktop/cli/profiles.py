"""``desktop-chat profiles ...`` (list, show, validate) and ``remote check`` for a profile that runs on a server.

Runs on the main thread of the CLI process.
"""
from __future__ import annotations

import argparse
import sys
from typing import Any

from desktop.cli.common import Parser, print_json, profile_store
from desktop.engine.errors import AppError
from desktop.engine.library import registry


# ------------------------------------------------------------------------------------------ profiles


def cmd_profiles_list(a: argparse.Namespace) -> int:
    store = profile_store()
    rows = []
    for p in store.all():
        try:
            installed = None if registry.is_remote(p) else str(registry.resolve_model(p))
        except AppError:
            installed = None
        rows.append({"id": p.id, "name": p.name, "repo": p.source.repo, "prompt_format": p.prompt.format,
                     "recommended_quant": p.source.recommended_quant, "context": p.context.default,
                     "installed": installed, "default": p.id == store.default().id, "backend": p.backend.kind})
    if a.json:
        print_json(rows)
    else:
        for r in rows:
            mark = "*" if r["default"] else " "
            state = "remote" if r["backend"] != "local" else "installed" if r["installed"] else "not downloaded"
            print(f"{mark} {r['id']:36} {r['prompt_format']:8} {state:15} {r['name']}")
    return 0


def cmd_profiles_show(a: argparse.Namespace) -> int:
    p = profile_store().get(a.id)
    d = p.to_dict()
    if a.json:
        print_json(d)
    else:
        import yaml

        sys.stdout.write(yaml.safe_dump(d, sort_keys=False, allow_unicode=True))
    return 0


def cmd_profiles_validate(a: argparse.Namespace) -> int:
    from desktop.engine.profiles import load_profile_file

    p = load_profile_file(a.path)
    print(f"ok: {a.path} is a valid profile ({p.id})")
    return 0


# ------------------------------------------------------------------------------------------ remote


def cmd_remote_check(a: argparse.Namespace) -> int:
    from desktop.engine.inference.remote_backend import check_connection

    profile = profile_store().get(a.profile)
    if not registry.is_remote(profile):
        raise AppError(f"profile {profile.id!r} runs locally (backend.kind: local); there is no server to check")
    res = check_connection(profile)
    if a.json:
        print_json(res.to_dict())
    elif res.ok:
        print(f"ok: {res.base_url} answered in {res.latency_ms:.0f} ms; model {res.model}; "
              f"server models: {', '.join(res.models) or '(none listed)'}")
    else:
        sys.stderr.write(f"error: {res.error}\n")
    return 0 if res.ok else 1


def add_parser(sub: Any) -> None:
    prof = sub.add_parser("profiles", help="list, show and validate model profiles")
    psub = prof.add_subparsers(dest="sub", required=True, parser_class=Parser)
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

    r = sub.add_parser("remote", help="profiles that run on an OpenAI-compatible server")
    rsub = r.add_subparsers(dest="sub", required=True, parser_class=Parser)
    x = rsub.add_parser("check", help="list the server's models and time the answer")
    x.add_argument("profile")
    x.add_argument("--json", action="store_true")
    x.set_defaults(fn=cmd_remote_check)
