"""Reasoning models in the chat pane: the thinking block, stops, saved thinking, attachments, and no reflow at the end.

The session runs over a real EngineAdapter whose client only records requests; the test plays the engine's events
into the adapter (as its reader thread would), so what is checked is the GUI's own handling."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QApplication

from desktop.engine.chats.attachments import Attachment
from desktop.engine.chats.store import ChatStore
from desktop.engine.inference import protocol as P
from desktop.engine.profiles import ProfileStore
from desktop.ui.chat.conversation import ChatView
from desktop.ui.chat.message_model import ChatModel, ReasoningRole, TextRole
from desktop.ui.chat.message_widget import STOPPED_THINKING
from desktop.ui.chat.session import ChatSession
from desktop.ui.engine_adapter import EngineAdapter
from desktop.ui.theme import theme


class RecordingClient:
    def __init__(self) -> None:
        self.sent: list[P.Generate] = []

    def submit(self, msg: P.Generate) -> str:
        self.sent.append(msg)
        return msg.id

    def cancel(self, _rid: str) -> None:
        pass

    def needs_restart(self) -> bool:
        return False

    def close(self) -> None:
        pass


def _loaded(fmt: str = "think") -> P.Loaded:
    return P.Loaded("load", "/models/qwen3.gguf", 4096, 40960, 0, "CPU", 0.1, [], None, {}, "qwen3",
                    reasoning_format=fmt, quant="Q8_0")


def _setup(qtbot, tmp_path: Path):
    theme.apply(app=QApplication.instance())
    client = RecordingClient()
    adapter = EngineAdapter(client=client)
    adapter.profile = adapter.loaded_profile = ProfileStore().default()
    model = ChatModel()
    view = ChatView(model)
    qtbot.addWidget(view)
    view.resize(820, 700)
    view.show()
    session = ChatSession(adapter, ChatStore(tmp_path / "chats.sqlite3"), model)
    session.loaded = _loaded()
    return client, adapter, model, view, session


def _chunk(adapter: EngineAdapter, rid: str, text: str = "", reasoning: str = "") -> None:
    adapter._on_event(P.TokenChunk(rid, text, 1, reasoning=reasoning))


def _finish(adapter, rid, text, reasoning, reason="stop", stopped=False, **stats) -> None:
    adapter._on_event(P.Finished(rid, text, reason, P.GenerationStats(**stats), reasoning=reasoning,
                                 stopped_thinking=stopped))


def test_thinking_streams_open_then_folds_and_copy_takes_the_answer(qtbot, tmp_path, monkeypatch) -> None:
    client, adapter, model, view, session = _setup(qtbot, tmp_path)
    clock = [100.0]
    monkeypatch.setattr("desktop.ui.chat.session.time", SimpleNamespace(monotonic=lambda: clock[0]))
    assert session.send("Say hi.")
    rid = client.sent[-1].id
    roles: list[list[int]] = []
    model.dataChanged.connect(lambda a, b, r: roles.append([int(x) for x in r]))
    _chunk(adapter, rid, reasoning="Hmm, ")
    _chunk(adapter, rid, reasoning="a greeting.")
    model.flush()
    assert roles and all(r == [int(ReasoningRole)] for r in roles)  # a thinking flush touches the thinking of the last row only
    w = view.widgets[-1]
    assert not w.thinking.isHidden() and w.thinking.is_open and w.thinking.toggle.text() == "Thinking…"
    assert w.thinking.text.toPlainText() == "Hmm, a greeting." and model.messages[-1].text == ""
    clock[0] = 104.2
    _chunk(adapter, rid, text="Hi ")
    _chunk(adapter, rid, text="there!")
    model.flush()
    assert roles[-1] == [int(Qt.ItemDataRole.DisplayRole), int(TextRole)]
    assert not w.thinking.is_open and w.thinking.toggle.text() == "Thought for 4 s"  # folded when the answer began
    assert "Hmm" not in model.messages[-1].text
    _finish(adapter, rid, "Hi there!", "Hmm, a greeting.", generated_tokens=9, reasoning_tokens=5, tokens_per_s=3.0)
    assert w.thinking.toggle.text() == "Thought for 4 s" and not w.thinking.is_open
    assert "9 tokens (5 thinking)" in w.stats_label.text()
    saved = session.chats.message(session.model.messages[-1].id)
    assert (saved.content, saved.reasoning, saved.stats["thinking_s"]) == ("Hi there!", "Hmm, a greeting.", 4.2)
    assert saved.provenance["reasoning_format"] == "think"
    w.copy()
    assert QGuiApplication.clipboard().text() == "Hi there!"
    # Keyboard: the header is a Tab stop; Enter and Space open and close it.
    w.thinking.toggle.setFocus()
    assert w.thinking.toggle.focusPolicy() & Qt.FocusPolicy.TabFocus
    qtbot.keyClick(w.thinking.toggle, Qt.Key.Key_Return)
    assert w.thinking.is_open and not w.thinking.text.isHidden()
    qtbot.keyClick(w.thinking.toggle, Qt.Key.Key_Space)
    assert not w.thinking.is_open
    # The next request sends the earlier answer's thinking back with it (its template decides).
    assert session.send("And again?")
    hist = client.sent[-1].messages
    assert hist[1] == {"role": "assistant", "content": "Hi there!", "reasoning": "Hmm, a greeting."}
    # Reopened from the store, the thinking is there, folded, with its time.
    _finish(adapter, client.sent[-1].id, "Yes.", "")
    session.open_chat(session.chat_id)
    w0 = view.widgets[1]
    assert not w0.thinking.isHidden() and not w0.thinking.is_open and w0.thinking.toggle.text() == "Thought for 4 s"
    assert view.open_thinking(session.model.messages[1].id) and w0.thinking.is_open  # a search hit opens it


def test_focus_on_the_thinking_header_is_visible(qtbot, tmp_path) -> None:
    client, adapter, model, view, session = _setup(qtbot, tmp_path)
    model.append("assistant", "Hi there!", "done", id=7, reasoning="Hmm", thinking_s=2.0)
    toggle = view.widgets[-1].thinking.toggle
    qtbot.waitExposed(view)
    before = toggle.grab().toImage()
    view.activateWindow()
    toggle.setFocus(Qt.FocusReason.TabFocusReason)
    qtbot.waitUntil(toggle.hasFocus, timeout=2000)
    assert toggle.grab().toImage() != before


def test_stopped_while_thinking_is_said_not_empty_success(qtbot, tmp_path) -> None:
    client, adapter, model, view, session = _setup(qtbot, tmp_path)
    session.send("Think hard.")
    rid = client.sent[-1].id
    _chunk(adapter, rid, reasoning="Let me consider every case")
    _finish(adapter, rid, "", "Let me consider every case", reason="length", stopped=True, generated_tokens=8)
    w = view.widgets[-1]
    assert not w.notice.isHidden() and w.notice.text() == STOPPED_THINKING == "Stopped while thinking: raise max tokens"
    assert not w.thinking.isHidden()
    body = [w.body.itemAt(i).widget().text() for i in range(w.body.count()) if hasattr(w.body.itemAt(i).widget(), "text")]
    assert "(no text)" not in body
    assert session.chats.message(model.messages[-1].id).stats["stopped_thinking"] is True


def test_an_answer_cut_at_max_tokens_is_labelled(qtbot, tmp_path) -> None:
    client, adapter, model, view, session = _setup(qtbot, tmp_path)
    session.send("Count.")
    rid = client.sent[-1].id
    limit = client.sent[-1].max_tokens
    _chunk(adapter, rid, text="one two three")
    _finish(adapter, rid, "one two three", "", reason="length", generated_tokens=limit)
    w = view.widgets[-1]
    assert not w.notice.isHidden() and w.notice.text() == f"Cut off at the max tokens limit ({limit:,})"
    session.send("Again.")
    _finish(adapter, client.sent[-1].id, "Done.", "")
    assert view.widgets[-1].notice.isHidden()


def test_a_sent_message_shows_its_attachments(qtbot, tmp_path) -> None:
    client, adapter, model, view, session = _setup(qtbot, tmp_path)
    session.attachments = [Attachment(str(tmp_path / "notes.txt"), "notes.txt", "text", [], 12, 40),
                           Attachment(str(tmp_path / "paper.pdf"), "paper.pdf", "pdf", [], 90, 900)]
    session.send("Summarise these.")

    def chips() -> list[str]:
        w = view.widgets[0]
        return [w.files.itemAt(i).widget().text() for i in range(w.files.count()) if w.files.itemAt(i).widget()]

    assert chips() == ["notes.txt", "paper.pdf"]
    _finish(adapter, client.sent[-1].id, "Done.", "")
    session.open_chat(session.chat_id)  # saved with the message: shown again when the chat is reopened
    assert chips() == ["notes.txt", "paper.pdf"]


ANSWER = ("The first paragraph explains the idea in a long sentence that certainly wraps across more than one line "
          "of the column at this width, so that wrapping matters.\n\nA second paragraph follows with more words to "
          "wrap, and it goes on for a while longer than one line too, as answers do.\nIts own second line.\n\n"
          "- one item of a list\n- two items\n\nThe last paragraph is still being written when the stream ends, "
          "and it also is long enough to wrap onto a second line.")


def _lines(w) -> list[int]:
    out = []
    for i in range(w.body.count()):
        doc = w.body.itemAt(i).widget().document()
        b, n = doc.begin(), 0
        while b.isValid():
            n += b.layout().lineCount()
            b = b.next()
        out.append(n)
    return out


def test_text_does_not_reflow_when_streaming_ends(qtbot) -> None:
    theme.apply(app=QApplication.instance())
    model = ChatModel()
    view = ChatView(model)
    qtbot.addWidget(view)
    view.resize(700, 900)
    view.show()
    model.append("assistant", "", "streaming", id=1)
    for i in range(0, len(ANSWER), 7):
        model.append_token(ANSWER[i:i + 7])
        model.flush()
        QApplication.processEvents()
    w = view.widgets[0]
    QApplication.processEvents()
    streamed = (w.bubble.height(), _lines(w))
    model.finish_last("done", ANSWER)
    QApplication.processEvents()
    QApplication.processEvents()
    assert (w.bubble.height(), _lines(w)) == streamed
    # Rendered at once (the chat reopened), the same answer is laid out the same way.
    model2 = ChatModel()
    view2 = ChatView(model2)
    qtbot.addWidget(view2)
    view2.resize(700, 900)
    view2.show()
    model2.append("assistant", ANSWER, "done", id=1)
    QApplication.processEvents()
    QApplication.processEvents()
    assert (view2.widgets[0].bubble.height(), _lines(view2.widgets[0])) == streamed
