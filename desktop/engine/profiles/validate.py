"""Parsed YAML -> :class:`Profile`: the strict typed validator and the safe YAML reader (any process).

Unknown keys and wrong types are rejected with a :class:`ProfileError` that names the file and the dotted key; so
is a setting outside the range ``fields``' table gives it (the same range the settings forms and ``serve`` use).
"""
from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from pathlib import Path
from typing import Any, Literal, Union

import yaml

from desktop.engine.errors import ProfileError
from desktop.engine.profiles.fields import FIELDS, read
from desktop.engine.profiles.schema import KNOWN_FIXES, Profile

#: keys that would put a secret in YAML; rejected with a pointer to api_key_env / keyring_service
_SECRET_KEYS = ("api_key", "apikey", "key", "token", "password", "secret")


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
    if c.native <= 0 or (c.max is not None and c.max <= 0):
        raise _fail(file, "context", "lengths must be positive")
    for f in FIELDS:  # the ranges the settings forms and serve use too
        why = f.problem(read(p, f.key), p)
        if why:
            raise _fail(file, f.key, why)
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


def read_yaml(path: Path) -> dict[str, Any]:
    """A profile file's top-level mapping, read with the safe loader; ProfileError (naming the file, and the line
    and column of a syntax error) when it cannot be read, is not YAML or is not a mapping."""
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
    return profile_from_dict(read_yaml(path), str(path))

