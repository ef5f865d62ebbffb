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
