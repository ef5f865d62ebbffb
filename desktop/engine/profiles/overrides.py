"""User overrides of a profile, written from the GUI's profile settings dialog (caller's process and thread).

Only the keys that differ from the bundled profile are written, to a YAML file in the user profile directory.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import yaml

from desktop.engine.errors import ProfileError
from desktop.engine.profiles.store import ProfileStore, deep_merge
from desktop.engine.profiles.validate import profile_from_dict, read_yaml


def _user_file(profile_id: str, user_dir: Path) -> Path | None:
    """The user YAML that defines or overrides ``profile_id`` (its file name need not match the id)."""
    if not user_dir.is_dir():
        return None
    for path in sorted(user_dir.glob("*.yaml")):
        try:
            data = read_yaml(path)
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
    current = read_yaml(existing) if existing else {}
    merged = deep_merge(current, changes)
    bundled_file = store.bundled_data(profile_id)
    if bundled_file is not None:
        bpath, bdata = bundled_file
        bundled = profile_from_dict(bdata, str(bpath))
        body = _diff_from(bundled, {k: v for k, v in merged.items() if k != "id"})
        target = existing or store.user_dir / f"{profile_id}.yaml"
        profile_from_dict(deep_merge(bdata, body), str(target))
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
    if store.bundled_data(profile_id) is None:
        raise ProfileError(f"{profile_id!r} is your own profile, with no bundled defaults to reset to")
    existing = _user_file(profile_id, store.user_dir)
    if existing is None:
        return False
    existing.unlink()
    return True
