"""The parts of a message body: auto-height text (safe Markdown, nothing fetched) and highlighted code blocks."""
from __future__ import annotations

import math

from PySide6.QtCore import Qt, QUrl, Signal
from PySide6.QtGui import QFontDatabase, QGuiApplication
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
