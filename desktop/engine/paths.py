"""Where the app keeps things: bundled profiles, user profiles, data, settings.

Honours the platform's user dirs through platformdirs (``XDG_DATA_HOME`` / ``XDG_CONFIG_HOME`` on
Linux), so tests and users can isolate them. Runs anywhere.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import platformdirs

APP_NAME = "desktop-chat"


def _bundle_root() -> Path:
    # Frozen by PyInstaller: data files live under sys._MEIPASS; from source: the repo root.
    meipass = getattr(sys, "_MEIPASS", None)
    if meipass:
        return Path(meipass)
    return Path(__file__).resolve().parent.parent.parent


def bundled_profiles_dir() -> Path:
    env = os.environ.get("DESKTOP_CHAT_BUNDLED_PROFILES")
    return Path(env) if env else _bundle_root() / "model_profiles"


def config_dir() -> Path:
    return Path(platformdirs.user_config_dir(APP_NAME, appauthor=False))


def data_dir() -> Path:
    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def user_profiles_dir() -> Path:
    env = os.environ.get("DESKTOP_CHAT_USER_PROFILES")
    return Path(env) if env else config_dir() / "profiles"


def models_dir() -> Path:
    """Where imported models and the installed-models registry live."""
    return data_dir() / "models"


def _truthy(value: str | None) -> bool:
    return (value or "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def hf_home() -> Path:
    default = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "huggingface"
    return Path(os.path.expanduser(os.environ.get("HF_HOME") or default))


def hf_hub_cache() -> Path:
    """The standard Hugging Face cache, so files other tools fetched are reused (read at call time)."""
    env = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE")
    return Path(os.path.expanduser(env)) if env else hf_home() / "hub"


def hf_endpoint() -> str:
    return (os.environ.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/")


def hf_offline() -> bool:
    return _truthy(os.environ.get("HF_HUB_OFFLINE")) or _truthy(os.environ.get("TRANSFORMERS_OFFLINE"))


def user_models_dir() -> Path | None:
    """A models directory the user chose instead of the HF cache (DESKTOP_CHAT_MODELS_DIR), if any."""
    env = os.environ.get("DESKTOP_CHAT_MODELS_DIR")
    return Path(os.path.expanduser(env)) if env else None
