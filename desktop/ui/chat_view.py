"""The chat pane: one widget per message of a :class:`ChatModel`, Markdown with highlighted code blocks.

A view over the model (GUI thread only): it listens to the model's reset/insert/dataChanged signals and
rebuilds only the message that changed. While an answer streams, its text is appended to a plain
document (each flush inserts just the new characters at the end, so the cost does not grow with the
answer); when it finishes, the message is rendered once as Markdown, with code blocks in their own
highlighted, copyable widgets. Colours come from the palette (and a light or dark Pygments style
picked from it), so dark mode works.
"""
from __future__ import annotations

import bisect
import math
import re
from dataclasses import dataclass

from PySide6.QtCore import QModelIndex, Qt, QTimer, Signal
from PySide6.QtGui import (QColor, QFont, QFontDatabase, QGuiApplication, QPalette, QSyntaxHighlighter,
                           QTextCharFormat, QTextCursor, QTextDocument)
from PySide6.QtWidgets import (QFrame, QGraphicsOpacityEffect, QHBoxLayout, QLabel, QPlainTextEdit, QScrollArea,
                               QSizePolicy, QTextBrowser, QToolButton, QVBoxLayout, QWidget)

from .chat_model import BranchRole, ChatModel, DimmedRole, IdRole, ProvenanceRole, RoleRole, StateRole, TextRole

# ---------------------------------------------------------------------------------------------- Markdown split

_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})[ \t]*(?P<lang>[^\s`]*)[^\n]*$")


@dataclass
class Segment:
    kind: str  # "prose" or "code"
    text: str
    lang: str = ""


def split_markdown(text: str) -> list[Segment]:
    """Prose and fenced code blocks, in order. An unclosed fence (still streaming) runs to the end."""
    out: list[Segment] = []
    prose: list[str] = []
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            prose.append(lines[i])
            i += 1
            continue
        if any(s.strip() for s in prose):
            out.append(Segment("prose", "\n".join(prose).strip("\n")))
        prose = []
        fence = m.group("fence")
        code: list[str] = []
        i += 1
        while i < len(lines):
            stripped = lines[i].strip()
            if stripped.startswith(fence[0] * len(fence)) and set(stripped) <= {fence[0]}:
                i += 1
                break
            code.append(lines[i])
            i += 1
        out.append(Segment("code", "\n".join(code), m.group("lang").lower()))
    if any(s.strip() for s in prose):
        out.append(Segment("prose", "\n".join(prose).strip("\n")))
    return out


def stable_prefix(text: str) -> int:
    """Length of the leading part of a streaming answer made of finished blocks (0 if none).

    A block is finished after a blank line outside a code fence, or after a fence's closing line. Later
    text cannot change how such a prefix renders, so it can be rendered once while the rest streams.
    """
    cut = 0
    pos = 0
    fence: str | None = None
    lines = text.split("\n")
    for i, line in enumerate(lines[:-1]):  # the last line is still being written
        end = pos + len(line) + 1
        stripped = line.strip()
        if fence is None:
            m = _FENCE.match(line)
            if m:
                fence = m.group("fence")
            elif not stripped and i > 0:
                cut = end
        elif stripped.startswith(fence) and set(stripped) <= {fence[0]}:
            fence = None
            cut = end
        pos = end
    return cut


# ---------------------------------------------------------------------------------------------- highlighting


def is_dark(palette: QPalette) -> bool:
    return palette.color(QPalette.ColorRole.Base).lightness() < 128


class PygmentsHighlighter(QSyntaxHighlighter):
    """Colours a code block with Pygments, lexed once as a whole (so multi-line strings come out right)."""

    def __init__(self, doc: QTextDocument, lang: str, dark: bool) -> None:
        super().__init__(None)
        from pygments.lexers import get_lexer_by_name, guess_lexer
        from pygments.styles import get_style_by_name
        from pygments.util import ClassNotFound

        text = doc.toPlainText()
        try:
            lexer = get_lexer_by_name(lang) if lang else guess_lexer(text)
        except ClassNotFound:
            lexer = get_lexer_by_name("text")
        self.lexer_name = lexer.name
        style = get_style_by_name("monokai" if dark else "default")
        fmts: dict[object, QTextCharFormat | None] = {}
        self._starts: list[int] = []
        self._spans: list[tuple[int, int, QTextCharFormat]] = []
        for idx, tok, val in lexer.get_tokens_unprocessed(text):
            if tok not in fmts:
                st = style.style_for_token(tok)
                f = None
                if st.get("color") or st.get("bold") or st.get("italic"):
                    f = QTextCharFormat()
                    if st.get("color"):
                        f.setForeground(QColor("#" + st["color"]))
                    if st.get("bold"):
                        f.setFontWeight(QFont.Weight.Bold)
                    if st.get("italic"):
                        f.setFontItalic(True)
                fmts[tok] = f
            f = fmts[tok]
            if f is not None and val:
                self._starts.append(idx)
                self._spans.append((idx, len(val), f))
        self.setDocument(doc)
        self.rehighlight()  # now, not on the next event loop turn: the block is shown complete

    def highlightBlock(self, text: str) -> None:  # noqa: N802 - Qt's name
        start = self.currentBlock().position()
        end = start + len(text)
        i = max(0, bisect.bisect_right(self._starts, start) - 1)
        while i < len(self._spans):
            s, n, f = self._spans[i]
            if s >= end:
                break
            a, b = max(s, start), min(s + n, end)
            if b > a:
                self.setFormat(a - start, b - a, f)
            i += 1


# ---------------------------------------------------------------------------------------------- widgets


class AutoText(QTextBrowser):
    """A read-only, selectable text area exactly as tall as its text (the scroll area scrolls, not it)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setOpenExternalLinks(True)
        self.viewport().setAutoFillBackground(False)
        self.setAutoFillBackground(False)
        self.document().setDocumentMargin(2)
        self.document().documentLayout().documentSizeChanged.connect(self._fit)
        self.setFixedHeight(self.fontMetrics().lineSpacing() + 8)

    def _fit(self, size) -> None:
        h = math.ceil(size.height()) + 2 * self.frameWidth()
        if h != self.height():
            self.setFixedHeight(max(h, 4))

    def wheelEvent(self, e) -> None:  # noqa: N802 - let the chat scroll, not the message
        e.ignore()


class CodeBlock(QFrame):
    """A fenced code block: language, Copy button, highlighted monospace text, horizontal scroll only."""

    copied = Signal(str)

    def __init__(self, code: str, lang: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.code = code
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setBackgroundRole(QPalette.ColorRole.AlternateBase)
        self.setAutoFillBackground(True)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 2, 6, 4)
        lay.setSpacing(0)
        head = QHBoxLayout()
        self.lang_label = QLabel(lang or "code")
        self.lang_label.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        self.copy_btn = QToolButton(text="Copy code")
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
        self.edit.setBackgroundRole(QPalette.ColorRole.AlternateBase)
        self.edit.viewport().setBackgroundRole(QPalette.ColorRole.AlternateBase)
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


_TEXT_ROLES = {int(Qt.ItemDataRole.DisplayRole), int(TextRole)}


class MessageWidget(QFrame):
    """One message: header (who, state, branch switcher, actions) and its body."""

    def __init__(self, view: "ChatView", row: int) -> None:
        super().__init__()
        self.view = view
        self.message_id: int | None = None
        self.role = ""
        self.state = ""
        self.rendered_text: str | None = None  # what the Markdown body shows (None: streaming body)
        self.stream: AutoText | None = None  # the plain tail of a streaming answer
        self.streamed_len = 0  # characters in the tail
        self.committed = 0  # characters already rendered as Markdown above the tail
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setAutoFillBackground(True)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(12, 6, 12, 8)
        outer.setSpacing(2)
        head = QHBoxLayout()
        head.setSpacing(4)
        self.who = QLabel()
        f = self.who.font()
        f.setBold(True)
        self.who.setFont(f)
        self.tag = QLabel()
        self.tag.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        self.prev_btn = QToolButton(text="<")
        self.branch_label = QLabel()
        self.next_btn = QToolButton(text=">")
        for b in (self.prev_btn, self.next_btn):
            b.setAutoRaise(True)
        self.prev_btn.setToolTip("Previous version")
        self.next_btn.setToolTip("Next version")
        self.copy_btn = QToolButton(text="Copy")
        self.edit_btn = QToolButton(text="Edit")
        self.regen_btn = QToolButton(text="Regenerate")
        for b in (self.copy_btn, self.edit_btn, self.regen_btn):
            b.setAutoRaise(True)
        head.addWidget(self.who)
        head.addWidget(self.tag)
        head.addStretch(1)
        for w in (self.prev_btn, self.branch_label, self.next_btn, self.edit_btn, self.regen_btn, self.copy_btn):
            head.addWidget(w)
        outer.addLayout(head)
        self.body = QVBoxLayout()
        self.body.setSpacing(6)
        outer.addLayout(self.body)
        self.prev_btn.clicked.connect(lambda: self.view.branch_requested.emit(self.message_id, -1))
        self.next_btn.clicked.connect(lambda: self.view.branch_requested.emit(self.message_id, +1))
        self.copy_btn.clicked.connect(self.copy)
        self.edit_btn.clicked.connect(lambda: self.view.edit_requested.emit(self.message_id))
        self.regen_btn.clicked.connect(lambda: self.view.regenerate_requested.emit(self.message_id))
        self._opacity: QGraphicsOpacityEffect | None = None

    # ---------------------------------------------------------------- updates from the model

    def update_from(self, model: ChatModel, row: int, roles: list[int] | None = None) -> None:
        idx = model.index(row)
        text = model.data(idx, TextRole) or ""
        state = model.data(idx, StateRole)
        if (roles and set(roles) <= _TEXT_ROLES and state == "streaming" == self.state
                and model.data(idx, IdRole) == self.message_id):
            # A streamed flush: only the text grew. Touching the header (even with equal values, e.g.
            # setBackgroundRole) repaints the whole message and its children on every flush.
            self.text = text
            self._stream_to(text)
            return
        self.message_id = model.data(idx, IdRole)
        self.role = model.data(idx, RoleRole)
        self.text = text
        self.who.setText({"user": "You", "assistant": "Assistant", "system": "System"}.get(self.role, self.role))
        bg = QPalette.ColorRole.AlternateBase if self.role == "user" else QPalette.ColorRole.Base
        if self.backgroundRole() != bg:
            self.setBackgroundRole(bg)
        prov = model.data(idx, ProvenanceRole) or {}
        if self.role == "assistant" and prov.get("profile_name"):
            self.who.setToolTip(f"{prov.get('profile_name')} · {prov.get('model_file', '')} · "
                                f"{prov.get('quant') or ''} · seed {prov.get('seed')}")
        self.state = state
        self._update_tag(model.data(idx, DimmedRole))
        i, n = model.data(idx, BranchRole) or (0, 1)
        self.branch_label.setText(f"{i + 1}/{n}")
        for w in (self.prev_btn, self.branch_label, self.next_btn):
            w.setVisible(n > 1)
        self.prev_btn.setEnabled(i > 0)
        self.next_btn.setEnabled(i < n - 1)
        self.edit_btn.setVisible(self.role == "user")
        self.regen_btn.setVisible(self.role == "assistant" and row == model.rowCount() - 1)
        busy = self.view.busy
        for b in (self.prev_btn, self.next_btn, self.edit_btn, self.regen_btn):
            if busy:
                b.setEnabled(False)
        if not busy:
            self.edit_btn.setEnabled(True)
            self.regen_btn.setEnabled(True)
        if state == "streaming":
            self._stream_to(text)
        elif self.rendered_text != text:
            self._render(text)
        dim = bool(model.data(idx, DimmedRole))
        if dim and self._opacity is None:
            self._opacity = QGraphicsOpacityEffect(self)
            self._opacity.setOpacity(0.45)
            self.setGraphicsEffect(self._opacity)
        elif not dim and self._opacity is not None:
            self.setGraphicsEffect(None)
            self._opacity = None

    def _update_tag(self, dimmed: bool) -> None:
        parts = []
        if self.state == "streaming":
            parts.append("writing…")
        elif self.state == "cancelled":
            parts.append("stopped")
        elif self.state == "error":
            parts.append("interrupted")
        if dimmed:
            parts.append("not in the model's context")
        self.tag.setText(" · ".join(parts))

    def _clear_body(self) -> None:
        while self.body.count():
            item = self.body.takeAt(0)
            if item.widget():
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
            # Opaque, in the message's own background: a repaint of the growing tail then stays inside
            # it, instead of repainting the message (header, buttons) underneath on every flush.
            self.stream.viewport().setBackgroundRole(self.backgroundRole())
            self.stream.viewport().setAutoFillBackground(True)
            self.body.addWidget(self.stream)
        pending = text[self.committed:]
        cut = stable_prefix(pending)
        if cut:
            for w in self._segment_widgets(pending[:cut]):
                self.body.insertWidget(self.body.count() - 1, w)
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

    def _segment_widgets(self, text: str) -> list[QWidget]:
        out: list[QWidget] = []
        for seg in split_markdown(text):
            if seg.kind == "code":
                block = CodeBlock(seg.text, seg.lang)
                block.copied.connect(lambda _c: self.view.copied.emit("code"))
                out.append(block)
            else:
                t = AutoText()
                t.setMarkdown(seg.text)
                out.append(t)
        return out

    def _render(self, text: str) -> None:
        self._clear_body()
        self.rendered_text = text
        if not text:
            placeholder = QLabel("(no text)" if self.state != "error" else "(nothing was generated)")
            placeholder.setForegroundRole(QPalette.ColorRole.PlaceholderText)
            self.body.addWidget(placeholder)
            return
        if self.role == "user":
            t = AutoText()
            t.setPlainText(text)  # what the user typed, verbatim
            self.body.addWidget(t)
            return
        for w in self._segment_widgets(text):
            self.body.addWidget(w)

    def code_blocks(self) -> list[CodeBlock]:
        return [self.body.itemAt(i).widget() for i in range(self.body.count())
                if isinstance(self.body.itemAt(i).widget(), CodeBlock)]

    def copy(self) -> None:
        QGuiApplication.clipboard().setText(self.text)
        self.view.copied.emit("message")


class ChatView(QScrollArea):
    """Scrollable column of :class:`MessageWidget`, kept in step with a :class:`ChatModel`."""

    branch_requested = Signal(int, int)  # message id, step
    edit_requested = Signal(int)
    regenerate_requested = Signal(int)
    copied = Signal(str)

    def __init__(self, model: ChatModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = model
        self.busy = False
        self.setWidgetResizable(True)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.container = QWidget()
        self.container.setBackgroundRole(QPalette.ColorRole.Base)
        self.container.setAutoFillBackground(True)
        self.column = QVBoxLayout(self.container)
        self.column.setContentsMargins(0, 0, 0, 0)
        self.column.setSpacing(1)
        self.column.addStretch(1)
        self.setWidget(self.container)
        self.widgets: list[MessageWidget] = []
        self._follow = True
        self.verticalScrollBar().valueChanged.connect(self._on_scrolled)
        self.verticalScrollBar().rangeChanged.connect(self._on_range)
        model.modelReset.connect(self._rebuild)
        model.rowsInserted.connect(self._inserted)
        model.rowsRemoved.connect(lambda *_: self._rebuild())
        model.dataChanged.connect(self._changed)
        self._rebuild()

    def set_busy(self, busy: bool) -> None:
        self.busy = busy
        for row, w in enumerate(self.widgets):
            w.update_from(self.model, row)

    def _on_scrolled(self, value: int) -> None:
        bar = self.verticalScrollBar()
        self._follow = value >= bar.maximum() - 4  # the user scrolled up to read: stop following

    def _on_range(self, _lo: int, hi: int) -> None:
        if self._follow:
            self.verticalScrollBar().setValue(hi)

    def scroll_to_bottom(self) -> None:
        self._follow = True
        QTimer.singleShot(0, lambda: self.verticalScrollBar().setValue(self.verticalScrollBar().maximum()))

    def _rebuild(self) -> None:
        for w in self.widgets:
            self.column.removeWidget(w)
            w.deleteLater()
        self.widgets = []
        self._inserted(QModelIndex(), 0, self.model.rowCount() - 1)
        self.scroll_to_bottom()

    def _inserted(self, _parent: QModelIndex, first: int, last: int) -> None:
        for row in range(first, last + 1):
            w = MessageWidget(self, row)
            self.widgets.insert(row, w)
            self.column.insertWidget(row, w)
            w.update_from(self.model, row)
        # The previous last answer loses its Regenerate button.
        if first > 0 and first - 1 < len(self.widgets):
            self.widgets[first - 1].update_from(self.model, first - 1)
        self.scroll_to_bottom()

    def _changed(self, top: QModelIndex, bottom: QModelIndex, roles: list[int] | None = None) -> None:
        for row in range(top.row(), bottom.row() + 1):
            if 0 <= row < len(self.widgets):
                self.widgets[row].update_from(self.model, row, roles)
