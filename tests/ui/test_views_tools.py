"""GUI pieces of tools and attachments (pytest-qt, offscreen): the permission dialog and its broker, the
collapsed tool-call view, the attachment chips (file picker, drag-and-drop, remove) and the MCP settings."""
from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent
from PySide6.QtWidgets import QFileDialog

from desktop.engine.tools import config as mcp_config
from desktop.engine.tools.config import ChatServerChoice
from desktop.engine.tools.permissions import (
    ALLOW_ALWAYS,
    ALLOW_ONCE,
    DENY,
    PermissionRequest,
)
from desktop.ui.chat.attachments import AttachmentChips
from desktop.ui.tools.call_rows import CitationsLabel, ToolCallList
from desktop.ui.tools.mcp_settings import McpSettingsDialog
from desktop.ui.tools.permission_dialog import PermissionBroker, ToolPermissionDialog

REQ = PermissionRequest("calc", "add", {"a": 2, "b": 3}, "call_1")


@pytest.mark.parametrize("button, decision", [("allow_once", ALLOW_ONCE), ("allow_always", ALLOW_ALWAYS),
                                              ("deny", DENY)])
def test_permission_dialog_buttons(qtbot, button: str, decision: str) -> None:
    dlg = ToolPermissionDialog(REQ)
    qtbot.addWidget(dlg)
    assert json.loads(dlg.arguments.toPlainText()) == {"a": 2, "b": 3}  # the arguments are shown
    assert "add" in dlg.allow_always.text()
    dlg.open()
    qtbot.mouseClick(getattr(dlg, button), Qt.MouseButton.LeftButton)
    assert dlg.decision() == decision and not dlg.isVisible()


def test_closing_the_dialog_denies(qtbot) -> None:
    dlg = ToolPermissionDialog(REQ)
    qtbot.addWidget(dlg)
    dlg.open()
    dlg.reject()
    assert dlg.decision() == DENY
    dlg2 = ToolPermissionDialog(REQ)
    qtbot.addWidget(dlg2)
    dlg2.open()
    dlg2._decision = ALLOW_ONCE  # make sure Enter really chooses, rather than leaving a default
    qtbot.keyClick(dlg2, Qt.Key.Key_Return)
    assert dlg2.decision() == DENY and not dlg2.isVisible()  # Enter never runs a tool


def _ask_in_thread(broker: PermissionBroker, req: PermissionRequest) -> tuple[threading.Thread, list[str]]:
    answers: list[str] = []
    t = threading.Thread(target=lambda: answers.append(broker.ask(req, timeout_s=20)), daemon=True)
    t.start()
    return t, answers


def test_broker_asks_on_the_gui_thread_and_unblocks_the_worker(qtbot) -> None:
    broker = PermissionBroker()
    with qtbot.waitSignal(broker.asked, timeout=5000):
        t, answers = _ask_in_thread(broker, REQ)
    (dlg,) = broker.open_dialogs()
    assert dlg.req == REQ
    with qtbot.waitSignal(broker.answered, timeout=5000) as sig:
        qtbot.mouseClick(dlg.allow_always, Qt.MouseButton.LeftButton)
    t.join(5)
    assert answers == [ALLOW_ALWAYS] and sig.args == [REQ, ALLOW_ALWAYS]
    with pytest.raises(RuntimeError):
        broker.ask(REQ)  # never from the GUI thread: it would deadlock


def test_broker_cancel_denies_pending_questions(qtbot) -> None:
    broker = PermissionBroker()
    with qtbot.waitSignal(broker.asked, timeout=5000):
        t, answers = _ask_in_thread(broker, REQ)
    broker.cancel_all()
    t.join(5)
    assert answers == [DENY]
    qtbot.waitUntil(lambda: broker.open_dialogs() == [], timeout=3000)


def test_tool_calls_start_collapsed(qtbot) -> None:
    rec = {"id": "c1", "server": "calc", "name": "add", "arguments": {"a": 2, "b": 3}, "result": "5",
           "status": "ok", "duration_s": 0.25}
    lst = ToolCallList([rec])
    qtbot.addWidget(lst)
    lst.show()
    (view,) = lst.views
    assert view.header.text() == "Tool calc.add — done, 0.2 s" or view.header.text() == "Tool calc.add — done, 0.3 s"
    assert not view.expanded()
    qtbot.mouseClick(view.header, Qt.MouseButton.LeftButton)
    assert view.expanded() and "Result:\n5" in view.body.toPlainText() and '"a": 2' in view.body.toPlainText()
    lst.add_record({**rec, "status": "timeout", "result": "late"})  # same id: updated in place
    assert len(lst.views) == 1 and "timed out" in view.header.text()
    label = CitationsLabel([{"file": "a.pdf", "page": 2, "label": "a.pdf, p. 2"}])
    qtbot.addWidget(label)
    assert label.text() == "Sources: a.pdf, p. 2"


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    from tests.engine.test_attachments import make_pdf

    txt = tmp_path / "notes.md"
    txt.write_text("x" * 400, encoding="utf-8")  # 100 tokens by the estimate
    pdf = make_pdf(tmp_path / "paper.pdf", ["first page", "second page"])
    binary = tmp_path / "data.bin"
    binary.write_bytes(b"\x89PNG\x00\x00\x00")
    return {"txt": txt, "pdf": pdf, "bin": binary}


def test_chips_show_name_and_tokens_and_remove(qtbot, files: dict[str, Path], monkeypatch) -> None:
    chips = AttachmentChips()
    qtbot.addWidget(chips)
    monkeypatch.setattr(QFileDialog, "getOpenFileNames",
                        staticmethod(lambda *a, **k: ([str(files["txt"]), str(files["pdf"])], "")))
    qtbot.mouseClick(chips.attach_button, Qt.MouseButton.LeftButton)  # the file picker
    qtbot.waitUntil(lambda: len(chips.attachments()) == 2, timeout=5000)
    labels = {Path(p).name: c.label.text() for p, c in chips.chips.items()}
    assert labels["notes.md"] == "notes.md · 100 tokens"
    assert labels["paper.pdf"].startswith("paper.pdf · ") and labels["paper.pdf"].endswith(", 2 pages")
    assert chips.total_tokens() == 100 + chips.chips[str(files["pdf"])].attachment.tokens
    with qtbot.waitSignal(chips.changed, timeout=2000):
        qtbot.mouseClick(chips.chips[str(files["txt"])].remove_button, Qt.MouseButton.LeftButton)
    assert [a.name for a in chips.attachments()] == ["paper.pdf"]
    with qtbot.waitSignal(chips.failed, timeout=5000) as sig:
        chips.add_paths([str(files["bin"])])
    assert "looks like a binary file" in sig.args[0] and len(chips.chips) == 1
    broken = files["bin"].with_name("image.png")  # a picture's name: read as a picture, and refused as one
    broken.write_bytes(files["bin"].read_bytes())
    with qtbot.waitSignal(chips.failed, timeout=5000) as sig:
        chips.add_paths([str(broken)])
    assert "image.png is not an image this app can read" in sig.args[0] and len(chips.chips) == 1


def test_chips_accept_dropped_files(qtbot, files: dict[str, Path]) -> None:
    chips = AttachmentChips()
    qtbot.addWidget(chips)
    chips.set_token_counter(lambda text: 7)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(files["txt"]))])
    ev = QDropEvent(QPointF(5, 5), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                    Qt.KeyboardModifier.NoModifier)
    chips.dropEvent(ev)
    qtbot.waitUntil(lambda: len(chips.attachments()) == 1, timeout=5000)
    assert chips.attachments()[0].tokens == 7  # counted with the given tokenizer
    chips.clear()
    assert chips.attachments() == [] and chips.chips == {}


def test_mcp_settings_validates_saves_and_sets_chat_servers(qtbot) -> None:
    dlg = McpSettingsDialog(chat_id=7)
    qtbot.addWidget(dlg)
    qtbot.waitUntil(lambda: dlg.loaded, timeout=5000)
    assert "mcpServers" in dlg.editor.toPlainText()  # the example, since there is no file yet
    dlg.editor.setPlainText('{"mcpServers": {"x": {"url": "ftp://nope"}}}')
    dlg.save()
    assert "mcpServers.x.url must be an http" in dlg.error.text()
    assert not mcp_config.config_path().exists()
    dlg.editor.setPlainText(json.dumps({"mcpServers": {"a": {"command": "a"}, "b": {"url": "http://127.0.0.1:9/mcp"}}}))
    with qtbot.waitSignal(dlg.saved, timeout=5000):
        dlg.save()
    assert dlg.error.text() == "" and set(mcp_config.load_config()) == {"a", "b"}
    item = dlg.server_item("b")
    assert item.checkState(0) == Qt.CheckState.Checked
    with qtbot.waitSignal(dlg.chat_servers_changed, timeout=5000) as sig:
        item.setCheckState(0, Qt.CheckState.Unchecked)
    assert sig.args == [7, ["a"]]
    assert ChatServerChoice().enabled(7, mcp_config.load_config()) == ["a"]


def test_tool_loop_runs_in_the_background_and_asks_through_the_dialog(qtbot) -> None:
    """The whole GUI path: a real engine on a server that asks for a tool, a real MCP tool, the permission
    dialog answered by a click, signals back on the GUI thread, and the provenance to save."""
    from desktop.engine.inference import protocol as P
    from desktop.engine.inference.client import EngineClient, new_id
    from desktop.engine.tools.config import parse_config
    from desktop.engine.tools.loop import (
        RemoteTurns,
        ToolBox,
        ToolCallFinished,
        ToolLoop,
    )
    from desktop.engine.tools.mcp_client import McpManager
    from desktop.ui.tools.runner import ToolLoopRunner, tool_provenance
    from tests.fixtures import mcp_server
    from tests.fixtures.openai_server import ToolAskingServer

    srv = ToolAskingServer()
    client = EngineClient()
    manager = McpManager(parse_config(mcp_server.stdio_config("calc")))
    try:
        client.load(P.Load(id=new_id("load"), model_path="", backend={"kind": "openai", "base_url": srv.base_url,
                                                                       "model": srv.model}))
        broker = PermissionBroker()
        loop = ToolLoop(client, RemoteTurns(P.Generate(id="b", max_tokens=32)),
                        ToolBox(manager.list_tools("calc"), manager), ask=broker.ask)
        runner = ToolLoopRunner(loop)
        texts: list[str] = []
        events: list[object] = []
        runner.signals.text.connect(texts.append)
        runner.signals.tool_event.connect(events.append)
        with qtbot.waitSignal(broker.asked, timeout=20000):
            runner.start([{"role": "user", "content": "2+3?"}])
        (dlg,) = broker.open_dialogs()
        with qtbot.waitSignal(runner.signals.finished, timeout=20000) as done:
            qtbot.mouseClick(dlg.allow_once, Qt.MouseButton.LeftButton)
        result = done.args[0]
        assert result.text == "".join(texts) == "The sum is 5."
        assert [type(e) for e in events][-1] is ToolCallFinished and events[-1].record.result == "5"
        prov = tool_provenance(result)
        assert prov["tool_calls"][0]["name"] == "add" and prov["tool_calls"][0]["status"] == "ok"
    finally:
        manager.close()
        client.close()
        srv.close()


def test_chip_jobs_are_let_go_when_their_answers_come(qtbot, files) -> None:
    """One way to keep worker jobs (workers.JobKeeper): each is held until its answer, not for the widget's life."""
    chips = AttachmentChips()
    qtbot.addWidget(chips)
    with qtbot.waitSignal(chips.changed, timeout=5000):
        chips.add_paths([str(files["txt"]), str(files["pdf"])])
    qtbot.waitUntil(lambda: len(chips.attachments()) == 2, timeout=5000)
    qtbot.waitUntil(lambda: not chips._jobs.jobs, timeout=5000)
