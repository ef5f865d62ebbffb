"""GUI smoke tests against the real demo model in the engine process (offscreen)."""
from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from desktop.ui.chat_model import ChatModel, StateRole, TextRole


def test_chat_model_passes_qmodeltester(qtmodeltester) -> None:
    m = ChatModel()
    m.append("user", "hi")
    m.append("assistant", "", state="streaming")
    m.append_token("Hel")
    m.append_token("lo")
    m.flush()
    qtmodeltester.check(m)
    assert m.data(m.index(1), TextRole) == "Hello"


def test_token_updates_are_coalesced_and_touch_only_the_last_row(qtbot) -> None:
    m = ChatModel()
    m.append("user", "hi")
    m.append("assistant", "", state="streaming")
    changed: list[tuple[int, int]] = []
    m.dataChanged.connect(lambda a, b, _roles=None: changed.append((a.row(), b.row())))
    for _ in range(200):
        m.append_token("x")
    qtbot.waitUntil(lambda: m.data(m.index(1), TextRole) == "x" * 200, timeout=2000)
    assert m.flushes < 10  # 200 tokens, a handful of repaints
    assert set(changed) == {(1, 1)}


@pytest.fixture
def window(qtbot):
    from desktop.ui.main_window import MainWindow

    w = MainWindow()
    qtbot.addWidget(w)
    w.show()
    with qtbot.waitSignal(w.adapter.model_loaded, timeout=60000):
        w.load_profile(w.store.default())
    yield w
    w.adapter.shutdown()


def _send(qtbot, w, text: str) -> None:
    w.input.setPlainText(text)
    w.send()


def test_send_streams_and_finishes(qtbot, window, tmp_path: Path) -> None:
    w = window
    assert "CPU" in w.status_model.text() and "SmolLM2" in w.status_model.text()
    seen: list[str] = []
    w.adapter.token_received.connect(lambda _r, t: seen.append(t))
    with qtbot.waitSignal(w.adapter.generation_finished, timeout=60000):
        _send(qtbot, w, "What is the capital of France?")
        qtbot.waitUntil(lambda: len(seen) >= 2, timeout=30000)
        w.grab().save(str(tmp_path / "midstream.png"))
    last = w.model.index(w.model.rowCount() - 1)
    assert w.model.data(last, StateRole) == "done"
    assert w.model.data(last, TextRole) == "".join(seen) != ""
    assert "tok/s" in w.status_speed.text()
    if os.environ.get("DESKTOP_CHAT_SHOTS"):
        w.grab().save(os.path.join(os.environ["DESKTOP_CHAT_SHOTS"], "main-window.png"))


def test_stop_keeps_the_partial_answer(qtbot, window) -> None:
    w = window
    seen: list[str] = []
    w.adapter.token_received.connect(lambda _r, t: seen.append(t))
    with qtbot.waitSignal(w.adapter.generation_finished, timeout=60000) as blocker:
        _send(qtbot, w, "Write a very long story about a dragon.")
        qtbot.waitUntil(lambda: len(seen) >= 2, timeout=30000)
        w.stop_btn.click()
    assert blocker.args[1].finish_reason == "cancelled"
    assert w.model.data(w.model.index(1), StateRole) == "cancelled"


def test_engine_crash_keeps_messages_and_recovers(qtbot, window) -> None:
    w = window
    seen: list[str] = []
    w.adapter.token_received.connect(lambda _r, t: seen.append(t))
    with qtbot.waitSignal(w.adapter.generation_failed, timeout=60000):
        _send(qtbot, w, "Count from one to one hundred.")
        qtbot.waitUntil(lambda: len(seen) >= 2, timeout=30000)
        os.kill(w.adapter.client.pid, signal.SIGKILL)
    assert w.model.rowCount() == 2
    assert w.model.data(w.model.index(1), StateRole) == "error"
    partial = w.model.data(w.model.index(1), TextRole)
    assert partial and partial.startswith("".join(seen[:1]))
    assert "engine process was killed" in (w.errors.last or "")
    with qtbot.waitSignal(w.adapter.generation_finished, timeout=60000):
        _send(qtbot, w, "Say hello.")
    assert w.model.rowCount() == 4 and w.model.data(w.model.index(3), StateRole) == "done"
