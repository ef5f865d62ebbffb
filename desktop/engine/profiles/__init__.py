"""Model profiles: YAML files validated into typed, frozen dataclasses (plain Python, runs in any process).

Bundled profiles live in ``model_profiles/``; a user directory can add profiles or override bundled
ones (a user file whose ``id`` matches a bundled profile is deep-merged over it, so an override only
needs the keys it changes). Loading uses ``yaml.safe_load``; unknown keys and wrong types are
rejected with a :class:`ProfileError` that names the file and the dotted key.

Split by job: ``schema`` (the dataclasses), ``validate`` (YAML -> Profile), ``store`` (bundled + user
profiles, reload), ``overrides`` (the settings dialog's user overrides). Every public name is imported here,
so callers keep writing ``from desktop.engine import profiles`` or ``from desktop.engine.profiles import X``.
"""
from __future__ import annotations

# The errors a caller catches, importable from here as they were from the single module.
from desktop.engine.errors import ProfileError, UnknownProfileError
from desktop.engine.profiles.overrides import reset_override, save_override
from desktop.engine.profiles.schema import (
    DEFAULT_PROFILE_ID,
    KNOWN_FIXES,
    Architecture,
    BackendKind,
    BackendSpec,
    ContextSpec,
    KVCacheType,
    LoadSpec,
    Profile,
    PromptFormat,
    PromptSpec,
    REASONING_MAX_TOKENS,
    ReasoningSpec,
    RopeScaling,
    RopeSpec,
    Sampling,
    Source,
    SpeculativeSpec,
    ntk_rope_freq_base,
)
from desktop.engine.profiles.store import ProfileProblem, ProfileStore, deep_merge
from desktop.engine.profiles.validate import load_profile_file, profile_from_dict, read_yaml

__all__ = [
    "DEFAULT_PROFILE_ID", "KNOWN_FIXES", "Architecture", "BackendKind", "BackendSpec", "ContextSpec", "KVCacheType",
    "LoadSpec", "Profile", "ProfileProblem", "ProfileStore", "PromptFormat", "PromptSpec", "ProfileError", "UnknownProfileError", "RopeScaling", "RopeSpec",
    "Sampling", "Source", "SpeculativeSpec", "load_profile_file", "ntk_rope_freq_base", "profile_from_dict",
    "reset_override", "save_override", "REASONING_MAX_TOKENS", "ReasoningSpec", "deep_merge", "read_yaml",
]
