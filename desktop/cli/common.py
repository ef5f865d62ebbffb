"""What the CLI commands share: the one-line-error parser, JSON output, the profile store and ``ask``'s target.

Runs on the main thread of the CLI process.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, NoReturn

from desktop.engine.errors import AppError
from desktop.engine.gguf import doctor as gguf_doctor
from desktop.engine.library import registry


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, no usage dump
        sys.stderr.write(f"error: {message} (see --help)\n")
        raise SystemExit(1)


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


def _store():
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
