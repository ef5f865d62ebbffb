"""Shared test set-up: isolate every user-level location, and build the tiny scripted GGUFs once."""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from tests.fixtures import tiny_gguf  # noqa: E402


@pytest.fixture(autouse=True)
def isolated_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the HF cache, the app's data/config dirs and QSettings at tmp_path."""
    home = tmp_path / "home"
    for sub in ("data", "config", "cache", "hf"):
        (home / sub).mkdir(parents=True)
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / "cache"))
    monkeypatch.setenv("HF_HOME", str(home / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(home / "hf" / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("DESKTOP_CHAT_USER_PROFILES", raising=False)
    # QSettings reads XDG_CONFIG_HOME once per process: point it at this test's dir explicitly, so a window's
    # geometry, last chat, theme or server settings never leak from one test into the next.
    from PySide6.QtCore import QSettings

    for fmt in (QSettings.Format.NativeFormat, QSettings.Format.IniFormat):
        QSettings.setPath(fmt, QSettings.Scope.UserScope, str(home / "config"))
    return home


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tiny")


@pytest.fixture(scope="session")
def _llama3_broken_src(tiny_dir: Path) -> tiny_gguf.TinyModel:
    return tiny_gguf.make_llama3(tiny_dir / "llama3-broken.gguf", eos_id=128001, eot_control=False,
                                 with_eot_key=False)


@pytest.fixture
def llama3_broken(_llama3_broken_src: tiny_gguf.TinyModel, tmp_path: Path) -> tiny_gguf.TinyModel:
    """A fresh, writable copy of the classic broken early Llama-3 GGUF (EOS 128001, 128009 NORMAL)."""
    dst = tmp_path / "llama3-broken.gguf"
    shutil.copyfile(_llama3_broken_src.path, dst)
    return tiny_gguf.TinyModel(dst, *[getattr(_llama3_broken_src, f) for f in
                                      ("kind", "eot_id", "expected_text", "expected_ids", "after_eot_text")])


@pytest.fixture(scope="session")
def llama3_ok(tiny_dir: Path) -> tiny_gguf.TinyModel:
    return tiny_gguf.make_llama3(tiny_dir / "llama3-ok.gguf")


@pytest.fixture(scope="session")
def spm_model(tiny_dir: Path) -> tiny_gguf.TinyModel:
    return tiny_gguf.make_spm(tiny_dir / "spm.gguf")


@pytest.fixture(scope="session")
def mixtral_model(tiny_dir: Path) -> tiny_gguf.TinyModel:
    return tiny_gguf.make_mixtral(tiny_dir / "mixtral.gguf")


@pytest.fixture(scope="session")
def mixtral_old(tiny_dir: Path) -> tiny_gguf.TinyModel:
    return tiny_gguf.make_mixtral(tiny_dir / "mixtral-old.gguf", old_expert_layout=True)


@pytest.fixture(scope="session")
def demo_model() -> Path:
    from desktop.engine.library import registry
    from desktop.engine.profiles import ProfileStore

    store = ProfileStore()
    return registry.resolve_model(store.default())


@pytest.fixture
def hub_server(monkeypatch: pytest.MonkeyPatch):
    """A loopback server speaking the Hub's protocol; HF_ENDPOINT points at it and offline mode is off."""
    from tests.fixtures.hub_server import HubServer

    with HubServer(lifetime=300) as srv:
        monkeypatch.setenv("HF_ENDPOINT", srv.url)
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        yield srv
