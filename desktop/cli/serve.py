"""``desktop-chat serve``: the local engine as an OpenAI-compatible endpoint on loopback.

Runs on the main thread of the CLI process; the HTTP server's threads feed the engine process.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from desktop.cli.common import profile_store
from desktop.engine.gguf import doctor as gguf_doctor
from desktop.engine.library import registry


def cmd_serve(a: argparse.Namespace) -> int:
    import os

    from desktop.engine.inference.client import EngineClient
    from desktop.engine.server.config import ServerConfig
    from desktop.engine.server.app import LocalServer
    from desktop.engine.server.pool import ServedModel

    pinned = None
    if a.profile or a.model:
        profile = profile_store().get(a.profile) if a.profile else None
        remote = registry.is_remote(profile)
        model_path = Path(a.model) if a.model else None if remote else registry.resolve_model(profile)
        if a.model:
            gguf_doctor.inspect(model_path)
        pinned = ServedModel(profile.id if profile else model_path.stem, str(model_path or ""), profile,
                             profile.name if profile else model_path.stem)
    config = ServerConfig(host=a.host, port=a.port, lan=a.lan, api_key=a.api_key or os.environ.get(a.api_key_env),
                          allowed_origins=tuple(a.allow_origin), max_queue=a.max_queue,
                          request_timeout_s=a.request_timeout, model_ttl_s=a.idle_unload * 60.0, n_ctx=a.ctx)
    client = EngineClient()

    def on_model(ev: Any) -> None:
        if ev.state in ("loaded", "unloaded", "failed"):
            print(f"model {ev.model}: {ev.state}{' (embedding mode)' if ev.embedding else ''}"
                  f"{': ' + ev.error if ev.error else ''}", flush=True)

    try:
        server = LocalServer(client, config, pinned=pinned, on_model=on_model)
        try:
            if pinned is not None:
                server.pool.ensure(pinned)
            where = ", ".join(server.lan_urls()) or server.base_url
            offered = ", ".join(m.id for m in server.pool.models()) or "none installed"
            print(f"serving {offered} at {where} (OpenAI: {server.base_url}, Ollama: "
                  f"{server.base_url.removesuffix('/v1')}; Ctrl-C to stop)", flush=True)
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()
    finally:
        client.close()
    return 0


def add_parser(sub: Any) -> None:
    x = sub.add_parser("serve", help="every installed model behind OpenAI- and Ollama-compatible APIs, on loopback")
    x.add_argument("--profile", help="load this profile's model at start and use it when a request names none")
    x.add_argument("--model", help="a GGUF file to offer (and load at start); without --profile its own chat "
                   "template is used")
    x.add_argument("--host", default="127.0.0.1", help="a loopback address; any other needs an API key")
    x.add_argument("--lan", action="store_true", help="serve the local network (all interfaces); needs an API key")
    x.add_argument("--idle-unload", type=float, default=60.0, metavar="MINUTES",
                   help="unload a model nobody used for this long (default: 60)")
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
