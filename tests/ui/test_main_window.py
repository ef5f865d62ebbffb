"""The main window against the real demo model in the engine process (offscreen)."""
from __future__ import annotations

import json
import os
import signal
from pathlib import Path

from PySide6.QtCore import Qt

from desktop.engine.chats.store import ChatStore
from desktop.ui.chat.message_model import BranchRole, StateRole, TextRole
from tests.ui.conftest import LONG_PROMPT, TINY_LLAMA3


def _send_and_wait(qtbot, w, text: str, timeout: int = 120000):
    with qtbot.waitSignal(w.adapter.generation_finished, timeout=timeout) as blocker:
        w.input.setPlainText(text)
        assert w.send()
    qtbot.waitUntil(lambda: not w._stream, timeout=5000)
    return blocker.args[1]


def _tokens(w) -> list[str]:
    seen: list[str] = []
    w.adapter.token_received.connect(lambda _r, t: seen.append(t))
    return seen


def test_send_streams_saves_and_shows_stats(qtbot, window, isolated_dirs: Path) -> None:
    w = window
    assert "SmolLM2" in w.status_model.text() and "Q4_1" in w.status_model.text()
    assert w.status_backend.text().startswith(("CPU", "CUDA", "Metal", "Vulkan"))
    assert w.stack.currentWidget() is w.chat_page.empty_page and "Start a conversation" in w.empty.text()
    assert "SmolLM2" in w.empty.text()  # the welcome text names the model that is loaded
    seen = _tokens(w)
    # What the window shows at each repaint of the answer, taken as it happens: polling from the test
    # instead races the engine (a 24-token answer can end before the first poll).
    shown: list[tuple[str, str, bool, bool]] = []
    w.model.flushed.connect(lambda text: shown.append(
        (text, w.model.messages[-1].state, w.stop_btn.isEnabled(), w.send_btn.isEnabled())))
    with qtbot.waitSignal(w.adapter.generation_finished, timeout=120000) as blocker:
        w.input.setPlainText("What is the capital of France?")
        w.send()
        # The user message is on disk before the first token.
        (chat,) = w.chats.chats()
        first = w.chats.thread(chat.id)
        assert [m.role for m in first] == ["user", "assistant"] and first[0].content.startswith("What is")
        assert first[1].state == "streaming"
    fin = blocker.args[1]
    # The first token shows at once (leading-edge flush), mid-answer, with Stop enabled and Send not.
    assert shown and shown[0][0] == seen[0] and shown[0][1:] == ("streaming", True, False)
    assert all(fin.text.startswith(text) for text, *_ in shown)
    last = w.model.index(w.model.rowCount() - 1)
    assert w.model.data(last, StateRole) == "done"
    assert w.model.data(last, TextRole) == "".join(seen) == fin.text != ""
    # Saved, with provenance (the sha256 arrives from a worker thread once per file).
    qtbot.waitUntil(lambda: bool(w.chats.thread(chat.id)[1].provenance.get("sha256")), timeout=30000)
    saved = w.chats.thread(chat.id)[1]
    assert saved.content == fin.text and saved.state == "done"
    prov = saved.provenance
    assert prov["profile_id"] == "smollm2-135m-instruct" and prov["model_file"].endswith(".gguf")
    assert prov["quant"] == "Q4_1" and prov["llama_cpp_version"] and len(prov["sha256"]) == 64
    assert prov["sampling"]["max_tokens"] == 24 and prov["seed"] >= 0  # the seed actually used
    assert saved.stats["generated_tokens"] == fin.stats.generated_tokens
    assert "tok/s" in w.status_speed.text() and "first token" in w.status_speed.text()
    assert f"/{fin.stats.context_total:,}" in w.status_ctx.text()
    assert w.chat_list_model.rowCount() == 1 and w.chat_list_model.chats[0].title.startswith("What is the capital")
    # Export, provenance included.
    md = w.export_chat(chat.id, "md", str(isolated_dirs / "c.md"))
    js = w.export_chat(chat.id, "json", str(isolated_dirs / "c.json"))
    assert prov["sha256"] in md.read_text() and json.loads(js.read_text())["messages"][1]["provenance"]["seed"] >= 0


def test_stop_keeps_the_partial_answer(qtbot, make_window, long_demo) -> None:
    w = make_window()
    w.adapter.client.stop_grace_s = 30.0  # the cooperative Stop, not the watchdog's kill (test_watchdog.py)
    seen = _tokens(w)
    with qtbot.waitSignal(w.adapter.generation_finished, timeout=120000) as blocker:
        w.input.setPlainText(LONG_PROMPT)
        w.send()
        qtbot.waitUntil(lambda: len(seen) >= 2, timeout=30000)
        w.input.setFocus()
        qtbot.keyClick(w.input, Qt.Key.Key_Escape)  # Esc stops
    assert blocker.args[1].finish_reason == "cancelled"
    qtbot.waitUntil(lambda: not w._stream, timeout=5000)
    assert w.model.data(w.model.index(1), StateRole) == "cancelled"
    saved = w.chats.thread(w.chat_id)[1]
    assert saved.state == "cancelled" and saved.content == blocker.args[1].text
    assert w.send_btn.isEnabled() and not w.stop_btn.isEnabled()


def test_regenerate_and_edit_make_switchable_branches(qtbot, make_window, tiny_profiles) -> None:
    w = make_window(TINY_LLAMA3)  # fast and scripted: every answer is "Hi there!"
    first = _send_and_wait(qtbot, w, "Name a colour.")
    a1 = w.model.messages[-1].id
    # Regenerate: a second answer to the same question, the first kept as a branch.
    with qtbot.waitSignal(w.adapter.generation_finished, timeout=120000):
        assert w.regenerate(a1)
    qtbot.waitUntil(lambda: not w._stream, timeout=5000)
    assert w.model.rowCount() == 2
    assert w.model.data(w.model.index(1), BranchRole) == (1, 2)
    assert w.view.widgets[1].branch_label.text() == "2/2" and w.view.widgets[1].prev_btn.isVisible()
    w.view.widgets[1].prev_btn.click()
    assert w.model.messages[1].id == a1 and w.model.messages[1].text == first.text
    assert w.model.data(w.model.index(1), BranchRole) == (0, 2)
    # Edit the question: a new user branch with its own answer.
    u1 = w.model.messages[0].id
    w.view.widgets[0].edit_btn.click()
    assert w.input.toPlainText() == "Name a colour." and w.edit_bar.isVisible()
    _send_and_wait(qtbot, w, "Name an animal.")
    assert [m.text for m in w.model.messages][0] == "Name an animal."
    assert w.model.data(w.model.index(0), BranchRole) == (1, 2)
    assert not w.edit_bar.isVisible()
    w.switch_branch(w.model.messages[0].id, -1)
    assert w.model.messages[0].id == u1 and w.model.messages[1].id == a1  # where that branch was left
    thread = w.chats.thread(w.chat_id)
    assert [m.id for m in thread] == [u1, a1]


def test_killed_engine_keeps_partial_answer_and_recovers(qtbot, make_window, long_demo) -> None:
    w = make_window()
    seen = _tokens(w)
    with qtbot.waitSignal(w.adapter.generation_failed, timeout=120000):
        w.input.setPlainText(LONG_PROMPT)
        w.send()
        qtbot.waitUntil(lambda: len(seen) >= 2, timeout=30000)
        os.kill(w.adapter.client.pid, signal.SIGKILL)
    qtbot.waitUntil(lambda: not w._stream, timeout=5000)
    assert w.model.rowCount() == 2 and w.model.data(w.model.index(1), StateRole) == "error"
    partial = w.model.data(w.model.index(1), TextRole)
    assert partial == "".join(seen) and partial
    saved = w.chats.thread(w.chat_id)[1]
    assert saved.state == "error" and saved.content == partial  # kept in SQLite
    assert "engine process was killed" in (w.errors.last or "")
    assert w.banner.isVisible() and "killed" in w.banner.label.text()
    assert "Traceback" not in w.banner.label.text()
    with qtbot.waitSignal(w.adapter.model_loaded, timeout=120000):  # a new engine, the model reloaded
        with qtbot.waitSignal(w.adapter.generation_finished, timeout=120000):
            w.input.setPlainText("Say hello.")
            assert w.send()
            # The few seconds of restarting and reloading show, with the load bar, until the model is back.
            assert w.status.loading and "restarting the engine" in w.status.load_label.text()
    qtbot.waitUntil(lambda: not w._stream, timeout=5000)
    assert not w.status.loading
    assert w.model.rowCount() == 4 and w.model.data(w.model.index(3), StateRole) == "done"
    assert "SmolLM2" in w.status_model.text()
    assert not w.banner.isVisible()  # the crash notice went away with the recovery


def test_restart_finds_the_chats(qtbot, make_window, tiny_profiles, isolated_dirs: Path) -> None:
    w = make_window(TINY_LLAMA3)
    _send_and_wait(qtbot, w, "Remember the word pineapple.")
    cid, answer = w.chat_id, w.model.messages[-1].text
    w.new_chat()
    _send_and_wait(qtbot, w, "Second chat here.")
    w.close()
    w2 = make_window(TINY_LLAMA3)
    assert [c.title for c in w2.chats.chats()][:2] == ["Second chat here.", "Remember the word pineapple."]
    assert w2.chat_list_model.rowCount() == 2
    assert w2.chat_id == w2.chat_list_model.chats[0].id  # the latest chat is open
    w2.open_chat(cid)
    assert [m.text for m in w2.model.messages] == ["Remember the word pineapple.", answer]
    # Full-text search over message bodies narrows the list.
    w2.search.setText("pineapple")
    qtbot.waitUntil(lambda: w2.chat_proxy.rowCount() == 1, timeout=2000)
    assert w2.chat_proxy.index(0, 0).data() == "Remember the word pineapple."
    w2.search.clear()
    qtbot.waitUntil(lambda: w2.chat_proxy.rowCount() == 2, timeout=2000)
    w2.close()


def test_a_crash_mid_answer_is_shown_as_interrupted_after_restart(qtbot, make_window, short_demo) -> None:
    # What an app crash leaves behind: a journaled, still "streaming" answer.
    s = ChatStore()
    c = s.create_chat("crashed")
    u = s.add_message(c, None, "user", "q")
    a = s.add_message(c, u, "assistant", "", state="streaming")
    s.journal(a, "half an ans", force=True)
    s.close()
    w = make_window(load=False)
    w.open_chat(c)
    assert w.model.messages[1].text == "half an ans" and w.model.messages[1].state == "error"
    assert "interrupted" in w.view.widgets[1].tag.text()
    w.close()


def test_the_answer_keeps_streaming_into_its_chat_while_another_is_shown(qtbot, window) -> None:
    w = window
    seen = _tokens(w)
    switched: list[int] = []

    def look_elsewhere(_rid: str, _text: str) -> None:
        # Switch chats from the second token's own slot, so the rest of the answer (and its end)
        # arrives after the switch however fast the engine is.
        if len(seen) == 2 and not switched:
            switched.append(len(seen))
            w.new_chat()

    w.adapter.token_received.connect(look_elsewhere)
    with qtbot.waitSignal(w.adapter.generation_finished, timeout=120000) as blocker:
        w.input.setPlainText("Write a poem about the sea.")
        w.send()
        first = w.chat_id
    assert switched and len(seen) > 2  # tokens kept coming after the switch
    assert w.model.rowCount() == 0 and w.stack.currentWidget() is w.chat_page.empty_page
    qtbot.waitUntil(lambda: not w._stream, timeout=5000)
    assert w.model.rowCount() == 0  # the other chat was not touched
    saved = w.chats.thread(first)[1]
    assert saved.state == "done" and saved.content == blocker.args[1].text == "".join(seen)
    w.open_chat(first)
    assert w.model.messages[1].text == saved.content and w.send_btn.isEnabled()
