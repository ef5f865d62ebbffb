"""``desktop-chat gguf ...``: inspect a GGUF file, repair it in place (journaled) and revert the repair.

Runs on the main thread of the CLI process.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from desktop.cli.common import Parser, print_json
from desktop.engine.gguf import doctor as gguf_doctor
from desktop.engine.gguf import repair as gguf_repair
from desktop.engine.library import registry


# ------------------------------------------------------------------------------------------ gguf


def cmd_gguf_inspect(a: argparse.Namespace) -> int:
    from desktop.engine.gguf import projector

    if projector.is_projector(a.path):
        info = projector.inspect(a.path)
        if a.json:
            print_json(info.to_dict())
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
        print_json(rep.to_dict())
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
    res = gguf_repair.fix(a.path, dry_run=a.dry_run)
    entry = None if a.dry_run or not res.changes else registry.find_by_path(a.path)
    if entry is not None:  # keep the library's record in step: repaired in place, undoable
        registry.update_entry(entry["id"], fixes=res.summary(), repaired_in_place=True,
                            sha256=registry.hash_file(a.path))
    if a.json:
        print_json(res.to_dict())
        return 0
    if not res.changes:
        print("nothing to fix")
    for c in res.changes:
        print(("would apply: " if a.dry_run else "") + c.description)
    if res.changes and not a.dry_run:
        print(f"the original bytes are journaled: `desktop-chat gguf fix --revert {a.path}` undoes it")
    return 0


def _gguf_revert(a: argparse.Namespace) -> int:
    entry = registry.find_by_path(a.path)
    if entry is not None:
        m = registry.revert_repair(entry["id"])
        out: dict[str, Any] = {"path": m.path, "reverted": True, "sha256": m.sha256, "model_id": m.id,
                               "fixes": m.fixes}
    else:
        res = gguf_repair.revert(a.path)
        out = {"path": res.path, "reverted": True, "sha256": registry.hash_file(a.path), "model_id": None,
               "fixes": res.summary()}
    if a.json:
        print_json(out)
        return 0
    print(f"restored the original bytes of {out['path']} (sha256 {out['sha256']})")
    return 0


def add_parser(sub: Any) -> None:
    g = sub.add_parser("gguf", help="inspect and repair GGUF files")
    gsub = g.add_subparsers(dest="sub", required=True, parser_class=Parser)
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
