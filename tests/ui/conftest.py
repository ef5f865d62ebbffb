"""GUI test fixtures: a main window on the demo model, and user profiles for the tiny scripted GGUFs."""
from __future__ import annotations

import textwrap
from typing import Iterator

import pytest

from desktop.engine import paths, profiles
from desktop.engine.library import registry

TINY_LLAMA3 = "tiny-llama3"
TINY_SPM = "tiny-spm"
LONG_PROMPT = "Write a very long story about a dragon."  # 598 tokens, greedy, on the demo model (long_demo)


def _write_profile(pid: str, name: str, fmt: str, stop: int) -> None:
    d = paths.user_profiles_dir()
    d.mkdir(parents=True, exist_ok=True)
    (d / f"{pid}.yaml").write_text(textwrap.dedent(f"""\
        id: {pid}
        name: {name}
        source: {{repo: tests/{pid}-GGUF, quants: [F32], recommended_quant: F32}}
        prompt: {{format: {fmt}, stop_tokens: [{stop}]}}
        context: {{native: 512, default: 512}}
        sampling: {{temperature: 0.0, top_k: 1, max_tokens: 32, seed: 1}}
        load: {{threads: 1}}
        """))


@pytest.fixture
def tiny_profiles(llama3_ok, spm_model) -> tuple[str, str]:
    """Two installed profiles on the scripted GGUFs: llama3 answers "Hi there!", spm "Hello!"."""
    _write_profile(TINY_LLAMA3, "Tiny Llama 3", "llama3", 128009)
    _write_profile(TINY_SPM, "Tiny SPM", "upstage", 2)
    registry.register_model(TINY_LLAMA3, llama3_ok.path)
    registry.register_model(TINY_SPM, spm_model.path)
    return TINY_LLAMA3, TINY_SPM


@pytest.fixture
def short_demo() -> None:
    """Keep demo answers short (the demo streams ~80 tok/s on 2 cores)."""
    profiles.save_override(profiles.DEFAULT_PROFILE_ID, {"sampling": {"max_tokens": 24}})


@pytest.fixture
def long_demo() -> None:
    """Room for a long answer, so a test that stops or kills mid-answer acts before the answer ends.

    With ``short_demo``'s 24 tokens the engine can finish before the GUI gets to act (a race CI hit). Greedy, too:
    sampled at random, the 135M demo model often answers in 3 to 20 tokens (it ended a "count to one hundred" answer
    after 2 tokens, before the kill, in one CI run of four). Greedy, "Write a very long story about a dragon." runs
    598 tokens: use that prompt.
    """
    profiles.save_override(profiles.DEFAULT_PROFILE_ID,
                           {"sampling": {"max_tokens": 1024, "temperature": 0.0, "top_k": 1, "seed": 1}})


@pytest.fixture
def make_window(qtbot):
    """A factory: a shown MainWindow (over the isolated user data dir) with ``profile_id`` loaded (``load=False``:
    none)."""
    made = []

    def make(profile_id: str | None = None, timeout: int = 120000, load: bool = True):
        from desktop.ui.shell.main_window import MainWindow

        w = MainWindow()
        qtbot.addWidget(w)
        w.show()
        w.activateWindow()
        qtbot.waitUntil(w.isActiveWindow, timeout=3000)  # window shortcuts (Esc, Ctrl+R) need the active window
        made.append(w)
        if not load:  # a test of the window that never asks the engine anything starts no engine
            return w
        p = w.store.get(profile_id) if profile_id else w.store.default()
        with qtbot.waitSignal(w.adapter.model_loaded, timeout=timeout):
            w.load_profile(p)
        return w

    yield make
    for w in made:
        w.close()


@pytest.fixture
def window(make_window, short_demo) -> Iterator:
    return make_window()
