"""Tools (MCP) and attachments wired into the main window (pytest-qt, offscreen).

A real MCP server (tests/fixtures/mcp_server.py) and a scripted Hermes tool GGUF (tests/fixtures/tool_gguf.py):
round 1 of the model calls ``add(2, 3)``, round 2 answers with the result. The permission dialog is answered by
a click, as a user would.
"""
from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from desktop.engine import paths
from desktop.engine.inference import protocol as P
from desktop.engine.library import registry
from desktop.engine.tools.config import config_path
from desktop.ui.chat.message_widget import stats_text
from tests.fixtures import mcp_server, tool_gguf

PID = "tiny-hermes-tools"


@pytest.fixture(scope="module")
def hermes(tmp_path_factory: pytest.TempPathFactory) -> tool_gguf.ToolModel:
    return tool_gguf.make_hermes(tmp_path_factory.mktemp("wiring") / "hermes.gguf")


def _tool_setup(hermes: tool_gguf.ToolModel, n_ctx: int = 2048) -> None:
    """A profile on the tool GGUF, and the calc MCP server configured (every chat uses it by default)."""
    d = paths.user_profiles_dir()
    d.mkdir(parents=True, exist_ok=True)
    stops = ", ".join(str(t) for t in hermes.stop_token_ids)
    (d / f"{PID}.yaml").write_text(textwrap.dedent(f"""\
        id: {PID}
        name: Tiny Hermes
        source: {{repo: tests/{PID}-GGUF, quants: [F32], recommended_quant: F32}}
        prompt: {{format: gguf, stop_tokens: [{stops}]}}
        context: {{native: 2048, default: {n_ctx}}}
        sampling: {{temperature: 0.0, top_k: 1, max_tokens: 48, seed: 1}}
        load: {{threads: 1}}
        """))
    registry.register_model(PID, hermes.path)
    config_path().parent.mkdir(parents=True, exist_ok=True)
    config_path().write_text(json.dumps(mcp_server.stdio_config("calc")), encoding="utf-8")


@pytest.fixture
def tool_window(make_window, hermes: tool_gguf.ToolModel):
    _tool_setup(hermes)  # 2048 tokens: the tool spec alone takes ~1300
    return make_window(PID)


def _answer(w):
    return next(m for m in reversed(w.model.messages) if m.role == "assistant")


def _send_and_answer(qtbot, w, text: str, button: str) -> None:
    """Type and send from the composer; click ``button`` in the permission dialog; wait for the answer."""
    broker = w.tool_send.broker
    w.input.setPlainText(text)
    with qtbot.waitSignal(broker.asked, timeout=30000):
        qtbot.mouseClick(w.send_btn, Qt.MouseButton.LeftButton)
    (dlg,) = broker.open_dialogs()
    assert dlg.req.tool == "add" and json.loads(dlg.arguments.toPlainText()) == tool_gguf.CALL_ARGS
    with qtbot.waitSignal(w.session.busy_changed, timeout=30000, check_params_cb=lambda b: b is False):
        qtbot.mouseClick(getattr(dlg, button), Qt.MouseButton.LeftButton)


def test_send_with_tools_asks_runs_the_tool_and_saves_the_call(qtbot, tool_window) -> None:
    w = tool_window
    # The tool loop asks the engine through the adapter (so Stop and a restart's notice reach its requests).
    rounds: list[str] = []
    through = w.adapter.generate

    def generate(req, timeout=None):
        rounds.append(req.id)
        return through(req, timeout=timeout)

    w.adapter.generate = generate
    _send_and_answer(qtbot, w, "What is 2 + 3?", "allow_once")
    assert len(rounds) == 2 and w.adapter.current is None  # the call, then the answer with the tool's result
    ans = _answer(w)
    assert ans.text == tool_gguf.ANSWER and ans.state == "done"  # the raw call text never reached the chat
    (call,) = ans.provenance["tool_calls"]
    assert (call["server"], call["name"], call["status"], call["result"]) == ("calc", "add", "ok", "5")
    mw = w.view.widgets[-1]
    assert mw.tool_calls.isVisibleTo(mw) and len(mw.tool_calls.views) == 1
    view = mw.tool_calls.views[0]
    assert "calc.add — done" in view.header.text() and not view.expanded()  # collapsed
    saved = w.chats.message(ans.id)
    assert saved.content == tool_gguf.ANSWER and saved.provenance["tool_calls"][0]["result"] == "5"
    assert w.chats.export_json(w.chat_id)["messages"][-1]["provenance"]["tool_calls"][0]["result"] == "5"
    md = w.chats.export_markdown(w.chat_id)
    assert "<details><summary>Tool calc.add — ok</summary>" in md
    assert md.index("Tool calc.add") < md.index(tool_gguf.ANSWER, md.index("## Assistant"))

    # Reopening the chat shows the saved call again.
    cid = w.chat_id
    w.new_chat()
    w.open_chat(cid)
    mw = w.view.widgets[-1]
    assert [v.record["name"] for v in mw.tool_calls.views] == ["add"] and mw.tool_calls.isVisibleTo(mw)


def test_denied_tool_call_is_saved_as_denied(qtbot, tool_window) -> None:
    w = tool_window
    _send_and_answer(qtbot, w, "What is 2 + 3?", "deny")
    ans = _answer(w)
    (call,) = ans.provenance["tool_calls"]
    assert call["status"] == "denied" and "denied" in call["result"]
    assert "denied" in w.view.widgets[-1].tool_calls.views[0].header.text()


def test_stop_while_the_permission_dialog_is_open_ends_the_answer(qtbot, tool_window) -> None:
    w = tool_window
    broker = w.tool_send.broker
    w.input.setPlainText("What is 2 + 3?")
    with qtbot.waitSignal(broker.asked, timeout=30000):
        w.send()
    with qtbot.waitSignal(w.session.busy_changed, timeout=2000, check_params_cb=lambda b: b is False):
        w.escape()  # Esc: runner.stop + broker.cancel_all
    assert broker.open_dialogs() == [] and w.session.stream is None


def test_a_failed_tool_answer_goes_to_the_error_presenter(qtbot, make_window, hermes) -> None:
    _tool_setup(hermes, n_ctx=512)  # too small for the tool spec: the engine refuses the prompt
    w = make_window(PID)
    with qtbot.waitSignal(w.session.busy_changed, timeout=30000, check_params_cb=lambda b: b is False):
        w.send("What is 2 + 3?")
    assert _answer(w).state == "error" and "context holds 512" in w.errors.last
    assert w.tool_send.rid is None and w.session.stream is None


def test_tools_menu_opens_the_mcp_settings_for_the_chat(qtbot, tool_window) -> None:
    w = tool_window
    assert w.tools_action.shortcut().toString() == "Ctrl+T"
    assert w.tools_action in w.menuBar().actions()[0].menu().actions()  # Chat ▸ Tools…, its shortcut listed
    w.session.chat_id = 5
    dlg = w.open_tools()
    qtbot.waitUntil(lambda: dlg.server_item("calc") is not None, timeout=10000)
    assert dlg.chat_id == 5 and w.tool_send.servers_for(5) == ["calc"]
    with qtbot.waitSignal(dlg.chat_servers_changed, timeout=5000):
        dlg.server_item("calc").setCheckState(0, Qt.CheckState.Unchecked)
    # The choice is read again off the GUI thread: chat 5 now sends without tools, other chats keep them.
    qtbot.waitUntil(lambda: w.tool_send.servers_for(5) == [], timeout=5000)
    assert w.tool_send.servers_for(6) == ["calc"] and not w.tool_send.handles(5, [])
    dlg.close()


def test_attachment_goes_into_the_prompt_and_its_citation_is_shown(qtbot, window, tmp_path: Path) -> None:
    w = window  # the demo model, no tool servers configured
    f = tmp_path / "notes.txt"
    f.write_text("The launch code is 4711.\nKeep it secret.\n", encoding="utf-8")
    chips = w.chat_page.chips
    with qtbot.waitSignal(chips.changed, timeout=10000):
        chips.add_paths([str(f)])
    assert len(chips.attachments()) == 1
    sent: list = []
    orig = w.adapter.submit
    w.adapter.submit = lambda req: sent.append(req.messages) or orig(req)
    with qtbot.waitSignal(w.session.busy_changed, timeout=60000, check_params_cb=lambda b: b is False):
        assert w.send("What is the launch code?")
    assert chips.chips == {}  # cleared after send
    assert "4711" in sent[0][-1]["content"] and sent[0][-1]["content"].endswith("What is the launch code?")
    ans = _answer(w)
    assert ans.provenance["citations"][0]["file"] == "notes.txt"
    saved = w.chats.message(ans.id)
    assert saved.provenance["citations"] == ans.provenance["citations"]
    label = w.view.widgets[-1].citations
    assert label.isVisibleTo(w.view.widgets[-1]) and label.text().startswith("Sources: notes.txt")
    assert "Sources: notes.txt" in w.chats.export_markdown(w.chat_id)


def test_draft_acceptance_is_shown_under_the_answer(qtbot) -> None:
    stats = P.GenerationStats(tokens_per_s=12.0, generated_tokens=10, draft_acceptance=0.87).__dict__
    assert "draft 87 % accepted" in stats_text({"profile_name": "M"}, stats)
    plain = P.GenerationStats(tokens_per_s=12.0, generated_tokens=10).__dict__
    assert "draft" not in stats_text({"profile_name": "M"}, plain)


def test_settings_panel_shows_speculative_setting(qtbot) -> None:
    import dataclasses

    from desktop.engine.profiles import ProfileStore
    from desktop.ui.settings.panel import SettingsPanel

    store = ProfileStore()
    panel = SettingsPanel(store)
    qtbot.addWidget(panel)
    p = store.default()
    panel.set_profile(p)
    assert panel.speculative.text() == "Speculative decoding: off"
    spec = dataclasses.replace(p.speculative, prompt_lookup=True, n_draft=6)
    panel.set_profile(dataclasses.replace(p, speculative=spec))
    assert panel.speculative.text() == "Speculative decoding: prompt lookup, 6 tokens per step"



def test_paperclip_and_drops_on_the_chat_page_add_chips(qtbot, tmp_path: Path, monkeypatch) -> None:
    from PySide6.QtCore import QMimeData, QPointF, QUrl
    from PySide6.QtGui import QDragEnterEvent, QDropEvent
    from PySide6.QtWidgets import QFileDialog

    from desktop.ui.chat.message_model import ChatModel
    from desktop.ui.chat.page import ChatPage

    a, b = tmp_path / "a.md", tmp_path / "b.py"
    a.write_text("# A\n", encoding="utf-8")
    b.write_text("print(1)\n", encoding="utf-8")
    page = ChatPage(ChatModel())
    qtbot.addWidget(page)
    assert page.chips.attach_button.isHidden() and page.acceptDrops()
    monkeypatch.setattr(QFileDialog, "getOpenFileNames", lambda *_a, **_k: ([str(a)], ""))
    qtbot.mouseClick(page.attach_btn, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: len(page.chips.attachments()) == 1, timeout=5000)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(b))])
    enter = QDragEnterEvent(page.rect().center(), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                            Qt.KeyboardModifier.NoModifier)
    page.dragEnterEvent(enter)
    assert enter.isAccepted()
    page.dropEvent(QDropEvent(QPointF(5, 5), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                              Qt.KeyboardModifier.NoModifier))
    qtbot.waitUntil(lambda: len(page.chips.attachments()) == 2, timeout=5000)
    assert sorted(x.name for x in page.chips.attachments()) == ["a.md", "b.py"]
