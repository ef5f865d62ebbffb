"""``desktop-chat serve``: the local engine as an OpenAI-compatible endpoint on loopback.

Runs on the main thread of the CLI process; the HTTP server's threads feed the engine process.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from desktop.cli.common import _store
from desktop.engine.gguf import doctor as gguf_doctor
from desktop.engine.library import registry as models


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


def add_parser(sub: Any) -> None:
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
