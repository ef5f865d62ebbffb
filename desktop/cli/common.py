"""What the CLI commands share: the one-line-error parser, JSON output, the profile store, ``ask``'s target and
the options of the settings table (``profiles/fields.py``: their type, range and help, checked by its own rule).

Runs on the main thread of the CLI process.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Iterable, NoReturn

from desktop.engine.errors import AppError
from desktop.engine.gguf import doctor as gguf_doctor
from desktop.engine.library import registry
from desktop.engine.profiles.fields import field


class Parser(argparse.ArgumentParser):
    """argparse with the CLI's contract: a usage error is one ``error:`` line and exit 1."""

    def error(self, message: str) -> NoReturn:  # one line, no usage dump
        sys.stderr.write(f"error: {message} (see --help)\n")
        raise SystemExit(1)


def print_json(data: Any) -> None:
    """``--json`` output: indented, UTF-8 as is."""
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


def profile_store():
    """The profiles, each skipped user file said once on stderr (a broken one is not fatal)."""
    from desktop.engine.profiles import ProfileStore

    store = ProfileStore()
    for problem in store.problems:  # a broken user file is skipped, not fatal; say so once per file
        sys.stderr.write(f"warning: skipped a user profile: {problem.message}\n")
    return store


def ask_target(a: argparse.Namespace, profile_store: Any) -> tuple[Any, Path | None]:
    """The profile and GGUF file an ``ask`` runs on (``--profile``/``--model``); None as the file for a remote profile."""
    profile = None
    if a.profile or not a.model:
        store = profile_store()
        profile = store.get(a.profile) if a.profile else store.default()
    if a.model and registry.is_remote(profile):
        raise AppError(f"profile {profile.id!r} runs on a server ({profile.backend.base_url}); drop --model")
    model_path = Path(a.model) if a.model else None if registry.is_remote(profile) else registry.resolve_model(profile)
    if a.model:
        gguf_doctor.inspect(model_path)  # fail fast, with the file's own error, before starting the engine
    return profile, model_path


def _dest(flag: str) -> str:
    return flag.lstrip("-").replace("-", "_")


def add_field_options(x: argparse.ArgumentParser, options: Iterable[tuple[str, str]]) -> None:
    """One option per ``(flag, dotted key)`` of the settings table: its type, and its help and range from the
    table (the value is checked by ``field_values``, not by argparse, so the error names the range)."""
    for flag, key in options:
        f = field(key)
        lo, hi = (str(int(v)) if float(v).is_integer() else f"{v:g}" for v in f.bounds())
        span = f"{lo} to {hi}" if hi != "inf" else f"at least {lo}"
        x.add_argument(flag, dest=_dest(flag), type=int if f.kind == "int" else float, metavar=f.kind.upper(),
                       help=f"{f.help} ({span}; default: the profile's)".replace("%", "%%"))


def field_values(a: argparse.Namespace, options: Iterable[tuple[str, str]], profile: Any = None) -> dict[str, Any]:
    """``{dotted key: value}`` of the options given, each checked by its Field's rule (the one profiles and
    ``serve``'s requests use; a context's maximum is ``profile``'s): AppError naming the flag and the range."""
    values: dict[str, Any] = {}
    for flag, key in options:
        value = getattr(a, _dest(flag), None)
        if value is None:
            continue
        why = field(key).problem(value, profile)
        if why:
            raise AppError(f"{flag} {why}")
        values[key] = value
    return values
