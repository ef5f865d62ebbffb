"""How a message's body shows its text: a streamed answer as finished Markdown blocks plus a plain tail, and a
finished one as the same blocks, so nothing moves when the stream ends. GUI thread.

A mixin of :class:`~desktop.ui.chat.message_widget.MessageWidget`: it lays widgets into the message's ``body``
layout and reads the message's ``view`` (for the copy and link signals), ``role``, ``state`` and ``notice``.
"""
from __future__ import annotations

import re
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QFontDatabase, QPalette, QTextCursor
from PySide6.QtWidgets import QLabel, QWidget

from desktop.engine.inference import reasoning
from desktop.ui.chat.blocks import AutoText, CodeBlock
from desktop.ui.chat.markdown import _FENCE, blocks, split_markdown, stable_prefix

STOPPED_THINKING = reasoning.STOPPED_THINKING[:1].upper() + reasoning.STOPPED_THINKING[1:]  # the engine's words
_STATIC = Qt.WidgetAttribute.WA_StaticContents
_HARD_BREAK = re.compile(r"(?<=\S)[ \t]*\n(?=[ \t]*\S)")  # a single newline between two written lines


class MessageBody:
    body: Any  # QVBoxLayout of the body's widgets
    view: Any
    role: str
    state: str
    notice: QLabel
    stream: AutoText | None
    streamed_len: int
    committed: int
    rendered_text: str | None
    _streamed: str

    def _clear_body(self) -> None:
        while self.body.count():
            item = self.body.takeAt(0)
            if item.widget():
                item.widget().hide()  # gone from this paint on, not when the event loop deletes it
                item.widget().deleteLater()
        self.stream = None
        self.streamed_len = 0
        self.committed = 0

    def _stream_to(self, text: str) -> None:
        """Show a streaming answer: finished blocks as Markdown, the block being written as plain text.

        Each call renders only what completed since the last one (a paragraph, a code block) and appends
        the rest to the tail, so the cost per flush depends on the block being written, not on the answer.
        """
        if self.stream is None or len(text) < self.committed + self.streamed_len:
            self._clear_body()
            self.rendered_text = None
            self.committed = 0
            self.stream = AutoText()
            self.stream.setObjectName("StreamTail")
            # Opaque, in the conversation's background: a repaint of the growing tail then stays inside it,
            # instead of repainting the message (header, buttons) underneath on every flush.
            self.stream.viewport().setBackgroundRole(QPalette.ColorRole.Base)
            self.stream.viewport().setAutoFillBackground(True)
            # It grows a line at a time: repaint the new line, not the whole paragraph written so far (the text
            # itself marks what it changed).
            self.stream.setAttribute(_STATIC)
            self.stream.viewport().setAttribute(_STATIC)
            self.body.addWidget(self.stream)
        self._streamed = text
        pending = text[self.committed:]
        cut = stable_prefix(pending)
        if cut:
            for w in self._block_widgets(pending[:cut]):
                self.body.insertWidget(self.body.count() - 1, w)
                # At its final width and shown now (a layout shows new widgets later), so it is laid out in the
                # same pass as the shorter tail: the message's height barely changes and nothing else moves.
                w.resize(self.stream.width(), w.height())
                w.show()
            self.committed += cut
            self.stream.setPlainText(pending[cut:])
            self.streamed_len = len(pending) - cut
            self._tail_font(pending[cut:])
            return
        new = pending[self.streamed_len:]
        if new:
            cur = QTextCursor(self.stream.document())
            cur.movePosition(QTextCursor.MoveOperation.End)
            cur.insertText(new)
            if self.streamed_len == 0 or "\n" not in pending[:self.streamed_len]:
                self._tail_font(pending)
            self.streamed_len = len(pending)

    def _tail_font(self, tail: str) -> None:
        # A code block being written streams in the code font, so it does not jump when it is rendered.
        code = bool(_FENCE.match(tail.split("\n", 1)[0]))
        fixed = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
        want = fixed if code else self.font()
        if self.stream is not None and self.stream.document().defaultFont() != want:
            self.stream.document().setDefaultFont(want)

    def _block_widgets(self, text: str) -> list[QWidget]:
        """One widget (or a prose and a code widget) per finished block: streamed or rendered at once, an
        answer gets the same widgets, so nothing moves when its stream ends."""
        return [w for block in blocks(text) for w in self._segment_widgets(block)]

    def _segment_widgets(self, text: str) -> list[QWidget]:
        out: list[QWidget] = []
        for seg in split_markdown(text):
            if seg.kind == "code":
                block = CodeBlock(seg.text, seg.lang)
                block.copied.connect(lambda _c: self.view.copied.emit("code"))
                out.append(block)
            else:
                t = AutoText()
                # A line break the model wrote stays a line break (as it streamed), not a space.
                t.set_markdown(_HARD_BREAK.sub("  \n", seg.text))
                t.anchorClicked.connect(self.view.link_clicked.emit)
                out.append(t)
        return out

    def _render(self, text: str) -> None:
        if (self.stream is not None and self.role != "user" and text
                and text.startswith(self.text_committed())):
            # The stream ended: the finished blocks stay as they are; only the tail becomes Markdown.
            self.body.removeWidget(self.stream)
            self.stream.hide()
            self.stream.deleteLater()
            for w in self._block_widgets(text[self.committed:]):
                self.body.addWidget(w)
            self.stream = None
            self.streamed_len = 0
            self.rendered_text = text
            return
        self._clear_body()
        self.rendered_text = text
        if not text:
            if self.state == "error":
                words = "(nothing was generated)"
            elif self.notice.text() == STOPPED_THINKING:
                words = "(no answer: the model was still thinking)"
            else:
                words = "(no text)"
            placeholder = QLabel(words)
            placeholder.setProperty("muted", True)
            self.body.addWidget(placeholder)
            return
        if self.role == "user":
            t = AutoText()
            t.setPlainText(text)  # what the user typed, verbatim
            self.body.addWidget(t)
            return
        for w in self._block_widgets(text):
            self.body.addWidget(w)

    def text_committed(self) -> str:
        """The streamed text already rendered as finished blocks."""
        return self._streamed[:self.committed]

    def code_blocks(self) -> list[CodeBlock]:
        return [self.body.itemAt(i).widget() for i in range(self.body.count())
                if isinstance(self.body.itemAt(i).widget(), CodeBlock)]

