"""The parts of a message body: auto-height text (safe Markdown, nothing fetched), highlighted code blocks, and a
reasoning model's thinking (a block that folds)."""
from __future__ import annotations

import math

from PySide6.QtCore import Qt, QUrl, Signal
from PySide6.QtGui import QFontDatabase, QGuiApplication, QTextCursor
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QSizePolicy,
    QTextBrowser,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from desktop.ui.chat.markdown import PygmentsHighlighter, is_dark, set_safe_markdown
from desktop.ui.theme import theme


class AutoText(QTextBrowser):
    """A read-only, selectable text area exactly as tall as its text (the scroll area scrolls, not it)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("MessageText")
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        # Links never navigate by themselves: the view asks before opening an http(s) link (link_clicked).
        self.setOpenLinks(False)
        self.setOpenExternalLinks(False)
        self.setTabChangesFocus(True)  # Tab leaves a message instead of walking its links
        self.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
        self.viewport().setAutoFillBackground(False)
        self.setAutoFillBackground(False)
        self.document().setDocumentMargin(2)
        self.document().documentLayout().documentSizeChanged.connect(self._fit)
        self.setFixedHeight(self.fontMetrics().lineSpacing() + 8)

    def _fit(self, size) -> None:
        h = math.ceil(size.height()) + 2 * self.frameWidth()
        if h != self.height():
            self.setFixedHeight(max(h, 4))

    def set_markdown(self, text: str) -> None:
        set_safe_markdown(self.document(), text)

    def loadResource(self, _type: int, _url: QUrl) -> object:  # noqa: N802 - nothing is ever fetched
        return None

    def wheelEvent(self, e) -> None:  # noqa: N802 - let the chat scroll, not the message
        e.ignore()


class CodeBlock(QFrame):
    """A fenced code block: language, Copy button, highlighted monospace text, horizontal scroll only."""

    copied = Signal(str)

    def __init__(self, code: str, lang: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.code = code
        self.setObjectName("CodeBlock")
        lay = QVBoxLayout(self)
        lay.setContentsMargins(10, 4, 6, 8)
        lay.setSpacing(0)
        head = QHBoxLayout()
        self.lang_label = QLabel(lang or "code")
        self.copy_btn = QToolButton(text="Copy code")
        self.copy_btn.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        theme.set_icon(self.copy_btn, "mdi6.content-copy")
        self.copy_btn.setAccessibleName("Copy code")
        self.copy_btn.setAutoRaise(True)
        self.copy_btn.clicked.connect(self.copy)
        head.addWidget(self.lang_label)
        head.addStretch(1)
        head.addWidget(self.copy_btn)
        lay.addLayout(head)
        self.edit = QPlainTextEdit()
        self.edit.setReadOnly(True)
        self.edit.setFrameShape(QFrame.Shape.NoFrame)
        self.edit.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.edit.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.edit.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.edit.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
        self.edit.setTabChangesFocus(True)
        self.edit.setPlainText(code)
        self.highlighter = PygmentsHighlighter(self.edit.document(), lang, is_dark(self.palette()))
        lines = max(1, code.count("\n") + 1)
        fm = self.edit.fontMetrics()
        longest = max((fm.horizontalAdvance(line) for line in code.split("\n")), default=0)
        self._content_h = lines * fm.lineSpacing() + 2 * int(self.edit.document().documentMargin()) + 4
        self._longest = longest
        self.edit.setFixedHeight(self._content_h)
        lay.addWidget(self.edit)

    def resizeEvent(self, e) -> None:  # noqa: N802 - make room for the horizontal scroll bar when needed
        super().resizeEvent(e)
        bar = self.edit.horizontalScrollBar().sizeHint().height() if self._longest > self.edit.width() - 12 else 0
        if self.edit.height() != self._content_h + bar:
            self.edit.setFixedHeight(self._content_h + bar)

    def copy(self) -> None:
        QGuiApplication.clipboard().setText(self.code)
        self.copied.emit(self.code)

    def wheelEvent(self, e) -> None:  # noqa: N802
        e.ignore()


class _Toggle(QToolButton):
    """The thinking block's header: a button that Enter and Return press too (Space already does)."""

    def keyPressEvent(self, e) -> None:  # noqa: N802
        if e.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            self.click()
            return
        super().keyPressEvent(e)


class ThinkingBlock(QFrame):
    """A reasoning model's thinking, above its answer: streams open under "Thinking…", folds to "Thought for N s"
    when the answer begins; its header opens and closes it (click, Enter, Space; a Tab stop with visible focus).

    The text is plain (it is the model's scratch work, not its answer): each streamed piece is appended at the
    end of the document, so the cost per flush does not grow with the thinking.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("Thinking")
        lay = QVBoxLayout(self)
        lay.setContentsMargins(8, 0, 0, 0)
        lay.setSpacing(2)
        self.toggle = _Toggle()
        self.toggle.setObjectName("ThinkingToggle")
        self.toggle.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.toggle.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.toggle.setCheckable(True)
        self.toggle.toggled.connect(self._set_open)
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.toggle)
        row.addStretch(1)
        lay.addLayout(row)
        self.text = AutoText()
        self.text.setObjectName("ThinkingText")
        self.text.setAccessibleName("Thinking")
        lay.addWidget(self.text)
        self.reasoning = ""
        self.live = False  # still thinking (the answer has not begun)
        self.seconds: float | None = None
        self._set_open(False)

    @property
    def is_open(self) -> bool:
        return self.toggle.isChecked()

    def set_open(self, on: bool) -> None:
        self.toggle.setChecked(on)
        self._set_open(on)

    def _set_open(self, on: bool) -> None:
        self.text.setVisible(on)
        theme.set_icon(self.toggle, "mdi6.chevron-down" if on else "mdi6.chevron-right")
        self.toggle.setAccessibleName(self.toggle.text() + (", open" if on else ", closed"))

    def show_thinking(self, reasoning: str, live: bool, seconds: float | None) -> None:
        """Show ``reasoning`` (appending when it only grew); ``live``: the model is thinking now (open, and
        "Thinking…"); else "Thought for N s" (``seconds`` None: "Thought"), folded the moment thinking ends."""
        if reasoning.startswith(self.reasoning) and self.reasoning:
            new = reasoning[len(self.reasoning):]
            if new:
                cur = QTextCursor(self.text.document())
                cur.movePosition(QTextCursor.MoveOperation.End)
                cur.insertText(new)
        elif reasoning != self.reasoning:
            self.text.setPlainText(reasoning)
        self.reasoning = reasoning
        was_live, self.live, self.seconds = self.live, live, seconds
        if live:
            label = "Thinking…"
        elif seconds is not None:
            label = f"Thought for {max(1, round(seconds)):,} s"
        else:
            label = "Thought"
        if self.toggle.text() != label:
            self.toggle.setText(label)
            self.toggle.setAccessibleName(label + (", open" if self.is_open else ", closed"))
        if live and not was_live:
            self.set_open(True)
        elif was_live and not live:
            self.set_open(False)  # the answer began: fold
