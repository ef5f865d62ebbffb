"""The attachment and tool stage of a send (desktop/ui/chat/tool_send.py), driven without an engine: the stage asks
its engine (the adapter, in the app) only for token counts here."""
from __future__ import annotations

from pathlib import Path

from desktop.engine.chats.attachments import load_attachment
from desktop.engine.inference import protocol as P
from desktop.ui.chat.stream import SendContext
from desktop.ui.chat.tool_send import ToolSend
from desktop.ui.tools.permission_dialog import PermissionBroker


class _Engine:
    """Counts a token per word, as the stage's engine would with the model's tokenizer."""

    def count_tokens(self, text: str, timeout: float | None = None) -> int:
        return len(text.split())


def _stage(qtbot) -> ToolSend:
    stage = ToolSend(PermissionBroker())
    qtbot.waitUntil(lambda: not stage._jobs.jobs, timeout=5000)  # its MCP config is read on a worker
    return stage


def test_attachments_that_fit_go_into_the_prompt(qtbot, tmp_path: Path) -> None:
    doc = tmp_path / "notes.txt"
    doc.write_text("The launch code is 4242.\n")
    stage = _stage(qtbot)
    history = [{"role": "user", "content": "What is the launch code?"}]
    with qtbot.waitSignal(stage.send_plain, timeout=10000) as sig:
        stage.start("s1", None, history, [load_attachment(doc)], None, P.Generate("g", []),
                    SendContext(_Engine(), 4096, 256, None))
    rid, messages, provenance = sig.args
    assert rid == "s1" and "4242" in messages[-1]["content"] and provenance["citations"]


def test_no_room_for_the_attachments_fails_the_send_with_the_numbers(qtbot, tmp_path: Path) -> None:
    """One budget rule for the chat and ask --attach: the chat used to drop the files without a word."""
    doc = tmp_path / "notes.txt"
    doc.write_text("The launch code is 4242.\n")
    stage = _stage(qtbot)
    history = [{"role": "user", "content": "word " * 400 + "What is the launch code?"}]
    failed: list[tuple] = []
    stage.failed.connect(lambda rid, err: failed.append((rid, err)))
    stage.send_plain.connect(lambda *a: failed.append(("sent", a)))
    stage.start("s2", None, history, [load_attachment(doc)], None, P.Generate("g", []),
                SendContext(_Engine(), 512, 128, None))
    qtbot.waitUntil(lambda: bool(failed), timeout=10000)
    ((rid, err),) = failed
    assert rid == "s2" and "no room for the attachments" in err["message"] and "512 tokens" in err["message"]


def test_pictures_to_a_local_model_go_without_tools_and_say_so(qtbot) -> None:
    """A local model's tool turns are text: with tools on, a picture used to be left out without a word."""
    from desktop.engine.profiles import ProfileStore
    from desktop.engine.tools.config import ServerConfig

    stage = _stage(qtbot)
    stage.configs = {"calc": ServerConfig("calc", "stdio", command="never-started")}
    assert stage.servers_for(7) == ["calc"]
    notices: list[str] = []
    stage.notice.connect(notices.append)
    history = [{"role": "user", "content": "What is in this picture?", "images": ["/pictures/cat.png"]}]
    with qtbot.waitSignal(stage.send_plain, timeout=10000) as sig:
        stage.start("s3", 7, history, [], ProfileStore().default(), P.Generate("g", []),
                    SendContext(_Engine(), 4096, 256, None))
    assert sig.args[1][-1]["images"] == ["/pictures/cat.png"] and stage.manager is None
    assert notices and "pictures" in notices[0]
