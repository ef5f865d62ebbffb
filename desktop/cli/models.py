"""``desktop-chat models ...``: list quants with a fit estimate, download, list, import, rename, revert, remove.

Runs on the CLI's main thread; a download blocks it and draws a progress bar on a terminal's stderr.
Ctrl+C leaves the partial file in place, and the same command resumes it.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from desktop.cli.common import Parser, print_json, profile_store
from desktop.engine.hub import downloads
from desktop.engine.hub.events import CANNOT_RESUME, DownloadEvent
from desktop.engine.hub.quants import list_quants
from desktop.engine.library import registry
from desktop.engine.hub.hardware import GiB
from desktop.engine.profiles.fields import KV_CACHE_TYPES


def _gib(n: float) -> str:
    return f"{n / GiB:.1f} GiB" if n >= GiB / 10 else f"{n / 2**20:.1f} MiB"


def cmd_quants(a: argparse.Namespace) -> int:
    res = list_quants(a.spec, n_ctx=a.ctx, kv_type=a.kv_type, store=profile_store())
    if a.json:
        print_json([e.to_dict() for e in res.entries])
        return 0
    hw = res.hardware
    print(f"{res.repo}" + (f" (profile {res.profile_id})" if res.profile_id else ""))
    print(f"context {res.n_ctx:,} tokens, KV {res.kv_type}; architecture from {res.arch_source}; "
          f"RAM available {_gib(hw['ram_available'])}, VRAM free {_gib(hw['vram_free'])}")
    for e in res.entries:
        split = f" ({len(e.files)} {e.split})" if e.split else ""
        print(f"  {e.quant:<10} {_gib(e.size):>10}{split}  {e.fit['verdict'] if e.fit else ''}")
    if res.entries and res.entries[0].fit:
        print(f"  e.g. {res.entries[0].quant}: {res.entries[0].fit['explanation']}")
    for line in res.advice:
        print(f"  {line}")
    for name in res.rejected:
        print(f"  (ignored a file name that would escape the download folder: {name!r})")
    return 0


class _Bar:
    """A one-line progress bar on stderr, only when it is a terminal."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self.last = 0.0

    def __call__(self, ev: DownloadEvent) -> None:
        if not self.tty:
            if (ev.state in {"stalled", "retrying", "repairing"} or ev.message == CANNOT_RESUME) \
                    and ev.message:
                sys.stderr.write(f"{ev.state}: {ev.message}\n")
            return
        now = time.monotonic()
        if ev.state == "downloading" and now - self.last < 0.2:
            return
        self.last = now
        frac = ev.done / ev.total if ev.total else 0.0
        bar = "#" * int(frac * 30)
        eta = f" ETA {int(ev.eta) // 60}m{int(ev.eta) % 60:02d}s" if ev.eta else ""
        speed = f" {_gib(ev.speed)}/s" if ev.speed else ""
        files = f" file {ev.file_index}/{ev.n_files}" if ev.n_files > 1 else ""
        msg = f" {ev.message}" if ev.message and ev.state != "downloading" else ""
        sys.stderr.write(f"\r\x1b[2K{ev.state:<11} [{bar:<30}] {frac:6.1%} {_gib(ev.done)}/{_gib(ev.total)}"
                         f"{speed}{eta}{files}{msg}"[:200])
        if ev.state == "done":
            sys.stderr.write("\n")
        sys.stderr.flush()


def cmd_download(a: argparse.Namespace) -> int:
    try:
        res = downloads.run_download(a.spec, quant=a.quant, filename=a.file, target_dir=a.dir,
                                     connections=a.connections, on_event=_Bar(), store=profile_store())
    except KeyboardInterrupt:
        sys.stderr.write("\ninterrupted: the partial file is kept; run the same command to resume\n")
        return 130
    if a.json:
        out = {"path": res.path, "sha256": res.sha256, "fixes": res.fixes, "profile": res.profile_id,
               "model_id": res.model_id, "quant": res.quant, "repo": res.repo, "files": res.files,
               "size": res.size, "source_sha256": res.source_sha256, "fetched_bytes": res.fetched_bytes,
               "reused_bytes": res.reused_bytes, "origin": res.origin}
        sys.stdout.write(json.dumps(out) + "\n")
        return 0
    print(f"{res.path}")
    print(f"verified sha256 {res.source_sha256[0]}" + (" (reused, nothing fetched)" if not res.fetched_bytes else ""))
    if res.origin == "hf-cache":
        print("used where it is in the Hugging Face cache (read-only)")
    for f in res.fixes:
        print(f)
    print(f"installed as {res.model_id} (profile {res.profile_id})")
    return 0


def cmd_list(a: argparse.Namespace) -> int:
    items = registry.list_installed(profile_store())
    if a.json:
        print_json([m.to_dict() for m in items])
        return 0
    if not items:
        print("no models installed; see `desktop-chat models quants PROFILE`")
    for m in items:
        repaired = " (repaired in place; undo: models revert)" if m.can_revert else ""
        vision = " vision" if m.vision else ""
        print(f"{m.id:<44} {_gib(m.size):>10}  {m.status:<7} {m.origin:<10} {m.path}{repaired}{vision}")
    return 0


def cmd_import(a: argparse.Namespace) -> int:
    m = registry.import_model(a.path, a.profile, repair=a.repair, store=profile_store(), prompt_format=a.format,
                            mmproj=a.mmproj)
    if a.json:
        sys.stdout.write(json.dumps(m.to_dict()) + "\n")
        return 0
    for f in m.fixes:
        print(f)
    print(f"imported {m.path} as {m.id} (profile {m.profile})")
    if m.mmproj:
        print(f"vision: projector {m.mmproj}")
    return 0


def cmd_rename(a: argparse.Namespace) -> int:
    m = registry.rename_model(a.id, a.name)
    print(f"{m.id} is now called {m.name!r}")
    return 0


def cmd_revert(a: argparse.Namespace) -> int:
    m = registry.revert_repair(a.id)
    if a.json:
        sys.stdout.write(json.dumps(m.to_dict()) + "\n")
        return 0
    print(f"restored the original bytes of {m.path} (sha256 {m.sha256})")
    for f in m.fixes:
        print(f)
    return 0


def cmd_search(a: argparse.Namespace) -> int:
    from desktop.engine.hub import search

    rows = search.search(a.query, limit=a.limit)
    if a.json:
        print_json([r.to_dict() for r in rows])
        return 0
    if not rows:
        print(f"no GGUF repositories match {a.query!r}")
    for r in rows:
        params = f"{r.params / 1e9:.1f}B" if r.params else "?"
        print(f"{r.repo_id:<56} {r.downloads:>10,} downloads {r.likes:>6,} likes {params:>7}  "
              f"{(r.last_modified or '')[:10]}{'  gated' if r.gated else ''}")
    return 0


def cmd_remove(a: argparse.Namespace) -> int:
    for m in registry.remove_model(a.id):
        kept = {"imported": " (file kept: it was imported, not downloaded)",
                "hf-cache": " (file kept: it is in the shared Hugging Face cache)"}.get(m.origin, "")
        print(f"removed {m.id}{kept}")
    return 0


def add_parser(sub: Any) -> None:
    m = sub.add_parser("models", help="list quants, download, list, import and remove models")
    msub = m.add_subparsers(dest="sub", required=True, parser_class=Parser)
    x = msub.add_parser("quants", help="a repo's or profile's quants with sizes and a fit estimate")
    x.add_argument("spec", metavar="REPO_OR_PROFILE")
    x.add_argument("--ctx", type=int, help="what-if context length (default: the profile's)")
    x.add_argument("--kv-type", choices=KV_CACHE_TYPES)
    x.add_argument("--json", action="store_true")
    x.set_defaults(fn=cmd_quants)
    x = msub.add_parser("download", help="download, verify and repair a quant")
    x.add_argument("spec", metavar="REPO_OR_PROFILE")
    g = x.add_mutually_exclusive_group()
    g.add_argument("--quant")
    g.add_argument("--file")
    x.add_argument("--dir", help="a library folder to download into (default: the download folder)")
    x.add_argument("--connections", type=int, help="parallel connections per big file (default 8)")
    x.add_argument("--json", action="store_true")
    x.set_defaults(fn=cmd_download)
    x = msub.add_parser("list", help="installed models")
    x.add_argument("--json", action="store_true")
    x.set_defaults(fn=cmd_list)
    x = msub.add_parser("import", help="check and register a GGUF from disk (left unchanged unless --repair)")
    x.add_argument("path")
    x.add_argument("--repair", action="store_true",
                   help="repair the file in place (journaled; `models revert ID` undoes it) instead of at load time")
    x.add_argument("--profile", help="attach it to this profile (default: make one from its metadata)")
    x.add_argument("--format", help="the prompt format, for a file with no chat template whose family is unknown "
                   "(e.g. llama2, mistral_v3, chatml)")
    x.add_argument("--mmproj", metavar="FILE", help="the vision model's multimodal projector (default: an "
                   "mmproj-*.gguf beside the file that fits it)")
    x.add_argument("--json", action="store_true")
    x.set_defaults(fn=cmd_import)
    x = msub.add_parser("search", help="search the Hub for GGUF repositories, most downloaded first")
    x.add_argument("query", metavar="QUERY")
    x.add_argument("--limit", type=int, default=20)
    x.add_argument("--json", action="store_true")
    x.set_defaults(fn=cmd_search)
    x = msub.add_parser("rename", help="change a model's display name")
    x.add_argument("id", metavar="ID")
    x.add_argument("name", metavar="NAME")
    x.set_defaults(fn=cmd_rename)
    x = msub.add_parser("revert", help="undo an in-place repair: restore the file's original bytes")
    x.add_argument("id", metavar="ID")
    x.add_argument("--json", action="store_true")
    x.set_defaults(fn=cmd_revert)
    x = msub.add_parser("remove", help="unregister a model and delete what the app downloaded")
    x.add_argument("id", metavar="ID")
    x.set_defaults(fn=cmd_remove)
