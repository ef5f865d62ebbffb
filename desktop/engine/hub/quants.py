"""A repo's quants with a fit verdict each, against this machine: the listing, plus the architecture from a
profile, a GGUF already on disk, or a ranged read of the remote header. Network I/O, no Qt: runs in the CLI
(``models quants``) or on a worker thread of the app's GUI process (the repo page), never in the engine.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from desktop.engine import paths
from desktop.engine.errors import AppError
from desktop.engine.hub import listing as hub
from desktop.engine.hub.targets import library_file, resolve_spec
from desktop.engine.profiles import ProfileStore
from desktop.engine.profiles.fields import default as _default


@dataclass
class QuantListing:
    repo: str
    profile_id: str | None
    n_ctx: int
    kv_type: str
    arch_source: str  # "profile" | "gguf header" | "unknown"
    entries: list[hub.QuantEntry]
    rejected: list[str]
    hardware: dict[str, Any]
    advice: list[str] = dataclasses.field(default_factory=list)  # fit.advise for the recommended quant

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["entries"] = [e.to_dict() for e in self.entries]
        return d


def list_quants(repo_or_profile: str, *, n_ctx: int | None = None, kv_type: str | None = None,
                store: ProfileStore | None = None, hw: Any = None) -> QuantListing:
    """A repo's quants with a fit verdict each, against this machine (or ``hw``). Network; any thread."""
    from desktop.engine.hub import fit
    from desktop.engine.hub import hardware

    store = store or ProfileStore()
    repo, profile = resolve_spec(repo_or_profile, store)
    listing = hub.list_files(repo)
    entries = hub.group_quants(listing.files)
    hub.prefer_projector(entries, listing.files, profile.source.mmproj if profile else None)
    hw = hw or hardware.detect()
    kv_type = kv_type or (profile.load.kv_cache_type if profile else _default("load.kv_cache_type"))
    arch: fit.Arch | None = None
    source = "unknown"
    numbers: dict[str, Any] = {}
    local = _local_header(repo, entries)
    if local:
        numbers = local
        arch = fit.Arch.from_numbers(numbers)
        source = "downloaded gguf header"
    if arch is None and profile and profile.architecture.layers:
        arch = fit.Arch.from_profile(profile)
        source = "profile"
    elif arch is None and entries:
        try:
            numbers = hub.read_remote_header(repo, entries[0].files[0], listing.commit or "main")
            arch = fit.Arch.from_numbers(numbers)
            source = "gguf header" if arch else "unknown"
        except AppError:
            arch = None
    if n_ctx is None:
        ctx = _default("context.default")  # no profile: the default context, or the model's native one if smaller
        n_ctx = profile.context.default if profile else min(int(numbers.get("context_native") or ctx), ctx)
    fa = profile.load.flash_attn if profile else _default("load.flash_attn")
    swa_full = profile.load.swa_full if profile else True
    for e in entries:
        e.fit = fit.estimate(e.size, arch, n_ctx, hw, kv_type, flash_attn=fa, swa_full=swa_full,
                             projector_bytes=fit.projector_need(e.mmproj_size)).to_dict()
    rec = (profile.source.recommended_quant or "").upper() if profile else ""
    pick = next((e for e in entries if e.quant.upper() == rec), entries[0] if entries else None)
    advice = [f"{pick.quant}: {line}" for line in fit.advise(pick.size, arch, n_ctx, hw, kv_type, flash_attn=fa)] \
        if pick else []
    return QuantListing(repo, profile.id if profile else None, n_ctx, kv_type, source, entries, listing.rejected,
                        hw.to_dict(), advice)


def _local_header(repo: str, entries: list[hub.QuantEntry]) -> dict[str, Any] | None:
    """Architecture numbers from a copy already on disk (complete or partial, in the library or the HF
    cache), if any: no network."""
    from huggingface_hub.file_download import repo_folder_name

    from desktop.engine.gguf import header as gguf_header

    blobs = paths.hf_hub_cache() / repo_folder_name(repo_id=repo, repo_type="model") / "blobs"
    for e in entries:
        cands: list[Path] = []
        for base in paths.library_dirs():
            try:
                f = library_file(base, repo, e.files[0])
            except AppError:
                continue
            cands += [f, f.with_name(f.name + ".incomplete")]
        cands += [blobs / str(sha) for sha in e.sha256[:1] if sha]
        if cands:
            for cand in cands:
                if cand.is_file() and cand.stat().st_size >= 64 * 1024:
                    with cand.open("rb") as fh:
                        head = fh.read(hub.HEADER_PREFIX_BYTES)
                    try:
                        numbers = gguf_header.arch_numbers(gguf_header.parse_prefix(head))
                    except AppError:
                        continue
                    if numbers.get("layers") and numbers.get("head_dim"):
                        return numbers
    return None
