"""The profile store: bundled profiles, the user's additions and overrides, reload (any process)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from desktop.engine import paths
from desktop.engine.errors import ProfileError, UnknownProfileError
from desktop.engine.profiles.schema import DEFAULT_PROFILE_ID, Profile
from desktop.engine.profiles.validate import profile_from_dict, read_yaml


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``over`` laid over ``base``, nested mappings merged key by key (how a user file overrides a bundled one);
    neither argument is changed."""
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
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
        self._listeners: list[Callable[[], None]] = []
        self.reload()

    def add_listener(self, fn: Callable[[], None]) -> None:
        """Call ``fn()`` after each reload, on the thread that reloaded: a saved setting reaches every form that
        shows it. A GUI listener hands the call to its own thread (a queued signal)."""
        self._listeners.append(fn)

    def remove_listener(self, fn: Callable[[], None]) -> None:
        if fn in self._listeners:
            self._listeners.remove(fn)

    def reload(self) -> None:
        raw_bundled: dict[str, tuple[Path, dict[str, Any]]] = {}
        profiles: dict[str, Profile] = {}
        problems: list[ProfileProblem] = []
        for path in sorted(self.bundled_dir.glob("*.yaml")):
            data = read_yaml(path)
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
                    data = read_yaml(path)
                    pid = data.get("id", path.stem)
                    if isinstance(pid, str) and pid in raw_bundled:
                        bpath, bdata = raw_bundled[pid]
                        prof = profile_from_dict(deep_merge(bdata, data), str(path))
                        profiles[pid] = dataclasses.replace(prof, origin=str(bpath), overridden_by=str(path))
                    else:
                        prof = profile_from_dict(data, str(path))
                        profiles[prof.id] = dataclasses.replace(prof, origin=str(path))
                except ProfileError as exc:
                    problems.append(_problem(path, exc))
        # One assignment each: readers on other threads never see a cleared or half-built store.
        self._raw_bundled, self._profiles, self.problems = raw_bundled, profiles, problems
        for fn in list(self._listeners):
            fn()

    def bundled_data(self, profile_id: str) -> tuple[Path, dict[str, Any]] | None:
        """The bundled file of ``profile_id`` and its YAML as read, before any user override; None for a profile
        that is not bundled (one that exists only in the user dir)."""
        return self._raw_bundled.get(profile_id)

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

