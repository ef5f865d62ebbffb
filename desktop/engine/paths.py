"""Where the app keeps things: bundled profiles, user profiles, data, settings.

Honours the platform's user dirs through platformdirs (``XDG_DATA_HOME`` / ``XDG_CONFIG_HOME`` on
Linux), so tests and users can isolate them. Runs in every process (the app's GUI process, the CLI, the engine
process), on any thread.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

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
    """The download folder the user chose with DESKTOP_CHAT_MODELS_DIR, if any."""
    env = os.environ.get("DESKTOP_CHAT_MODELS_DIR")
    return Path(os.path.expanduser(env)) if env else None


# ------------------------------------------------------------------------------------ the model library
# The app's own model library: folders of ``owner/repo/file.gguf`` the app may write (downloads, repairs
# in place with an undo journal). The shared Hugging Face cache is not one of them: it is only read.


def library_settings_path() -> Path:
    return config_dir() / "library.json"


def library_settings() -> dict[str, Any]:
    """``{"download_dir": str, "library_dirs": [str], "connections": int}``; absent keys use the defaults."""
    try:
        raw = json.loads(library_settings_path().read_text())
    except (OSError, ValueError):
        return {}
    return raw if isinstance(raw, dict) else {}


def save_library_settings(**changes: Any) -> dict[str, Any]:
    """Merge ``changes`` into the settings file (None removes a key); returns the new settings."""
    data = library_settings()
    for k, v in changes.items():
        if v is None:
            data.pop(k, None)
        else:
            data[k] = [str(x) for x in v] if isinstance(v, (list, tuple)) else (str(v) if isinstance(v, Path) else v)
    target = library_settings_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f"{target.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(target)
    return data


def download_dir() -> Path:
    """Where new downloads go: DESKTOP_CHAT_MODELS_DIR, else the settings file, else ``data_dir()/library``."""
    env = user_models_dir()
    if env is not None:
        return env
    chosen = library_settings().get("download_dir")
    return Path(os.path.expanduser(chosen)) if isinstance(chosen, str) and chosen else data_dir() / "library"


def library_dirs() -> list[Path]:
    """Every library folder, the download folder first (searched for installed GGUFs; all writable)."""
    extra = library_settings().get("library_dirs")
    dirs = [download_dir(), *(Path(os.path.expanduser(d)) for d in extra if isinstance(d, str) and d)] \
        if isinstance(extra, list) else [download_dir()]
    return list(dict.fromkeys(dirs))


def in_library(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` lies inside one of the app's library folders (so the app may change it)."""
    real = Path(os.path.realpath(path))
    for d in library_dirs():
        try:
            real.relative_to(Path(os.path.realpath(d)))
            return True
        except ValueError:
            continue
    return False


def download_connections() -> int:
    """Parallel ranged connections per file (DESKTOP_CHAT_DOWNLOAD_CONNECTIONS, the settings file, else 8).

    Eight, not four: a CDN that caps each connection at 8 MB/s gave a 98 MB file 3.3x what one connection allows
    with four connections and 5.7x with eight (bench/RESULTS.md, row 4b); the goal is at least 4x.
    """
    raw: Any = os.environ.get("DESKTOP_CHAT_DOWNLOAD_CONNECTIONS") or library_settings().get("connections") or 8
    try:
        return max(1, min(16, int(raw)))
    except (TypeError, ValueError):
        return 8
