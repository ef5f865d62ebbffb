"""The chat page: a slot for the model picker on top, the conversation (or the welcome text), notices, composer.

Everything sits in a centred column of readable width. The page owns widgets only; the window connects
its signals to the chat session. Keys typed in the message box: Enter sends, Shift+Enter adds a line,
Esc stops, Up in an empty box edits the last message, Tab/Shift+Tab move focus (never typed), and
PgUp/PgDn/Ctrl+Home/Ctrl+End scroll the conversation. Ctrl+V of a picture (or of copied image files) puts it
above the composer as an image chip, as a drop or the paperclip does; ``set_vision`` says whether the model
takes pictures, and why not in the paperclip's tooltip.
"""
from __future__ import annotations

from PySide6.QtCore import QMimeData, Qt, Signal
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QStackedWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from desktop.ui.chat.attachments import AttachmentChips
from desktop.ui.chat.conversation import ChatView
from desktop.ui.chat.image_input import is_image_path
from desktop.ui.chat.message_model import ChatModel
from desktop.ui.errors import Banner
from desktop.ui.theme import COLUMN_MAX, theme

class MessageInput(QPlainTextEdit):
    """The message box. It never keeps Tab: focus moves on, and the text stays as it was."""

    send_pressed = Signal()
    escape_pressed = Signal()
    up_in_empty = Signal()
    scroll_key = Signal(int)  # Qt.Key: PageUp/PageDown/Home/End for the conversation
    image_pasted = Signal(object)  # a QImage from the clipboard
    files_pasted = Signal(list)  # local image files copied in a file manager

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setTabChangesFocus(True)
        self.setPlaceholderText("Message the model…")
        self.setAccessibleName("Message")
        self.setFrameShape(QFrame.Shape.NoFrame)
        lines = self.fontMetrics().lineSpacing()
        self.setMinimumHeight(lines * 2 + 12)
        self.setMaximumHeight(lines * 8 + 12)
        self.document().documentLayout().documentSizeChanged.connect(self._fit)
        self._fit()

    PLACEHOLDERS = ("Message the model…", "Message…")

    def resizeEvent(self, e) -> None:  # noqa: N802 - Qt's name
        super().resizeEvent(e)
        # The placeholder on one line: the short one where the long one would wrap and be cut (a narrow column).
        room = self.viewport().width() - 2 * int(self.document().documentMargin()) - 4
        fits = [p for p in self.PLACEHOLDERS if self.fontMetrics().horizontalAdvance(p) <= room]
        want = fits[0] if fits else self.PLACEHOLDERS[-1]
        if self.placeholderText() != want:
            self.setPlaceholderText(want)

    def _fit(self, *_: object) -> None:
        # Grows with its text up to eight lines, then scrolls.
        h = int(self.document().size().height() * self.fontMetrics().lineSpacing()) + 14
        self.setFixedHeight(max(self.minimumHeight(), min(h, self.maximumHeight())))

    @staticmethod
    def _image_files(source: QMimeData) -> list[str]:
        if not source.hasUrls():
            return []
        paths = [u.toLocalFile() for u in source.urls() if u.isLocalFile()]
        return paths if paths and all(is_image_path(p) for p in paths) else []

    def canInsertFromMimeData(self, source: QMimeData) -> bool:  # noqa: N802 - Qt's name
        return source.hasImage() or bool(self._image_files(source)) or super().canInsertFromMimeData(source)

    def insertFromMimeData(self, source: QMimeData) -> None:  # noqa: N802 - Qt's name: a paste
        files = self._image_files(source)
        if files:
            self.files_pasted.emit(files)
        elif source.hasImage() and not source.hasText():
            self.image_pasted.emit(source.imageData())  # the text typed so far stays as it is
        else:
            super().insertFromMimeData(source)

    def keyPressEvent(self, e) -> None:  # noqa: N802 - Qt's name
        key, mods = e.key(), e.modifiers()
        ctrl = bool(mods & Qt.KeyboardModifier.ControlModifier)
        if key in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and not mods & Qt.KeyboardModifier.ShiftModifier:
            self.send_pressed.emit()
            return
        if key == Qt.Key.Key_Escape:
            self.escape_pressed.emit()
            return
        if key == Qt.Key.Key_Up and not self.toPlainText():
            self.up_in_empty.emit()
            return
        if key in (Qt.Key.Key_PageUp, Qt.Key.Key_PageDown) or (ctrl and key in (Qt.Key.Key_Home, Qt.Key.Key_End)):
            self.scroll_key.emit(int(key))
            return
        super().keyPressEvent(e)


def centred(widget: QWidget, max_width: int = COLUMN_MAX, margins: tuple[int, int, int, int] = (24, 0, 24, 0)
            ) -> QWidget:
    """``widget`` in the middle of a row, at most ``max_width`` wide."""
    widget.setMaximumWidth(max_width)
    holder = QWidget()
    lay = QHBoxLayout(holder)
    lay.setContentsMargins(*margins)
    lay.addWidget(widget, 1)  # a box layout centres a widget held back by its maximum width
    return holder


class ChatPage(QWidget):
    def __init__(self, model: ChatModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("ChatPage")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        # ---- top bar: the model picker slot, the chat's title, the settings toggle
        self.top_bar = QWidget()
        self.top_bar.setObjectName("TopBar")
        self.top_bar.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        tb = QHBoxLayout(self.top_bar)
        tb.setContentsMargins(16, 8, 12, 8)
        self.picker_slot = QHBoxLayout()
        self.picker_slot.setContentsMargins(0, 0, 0, 0)
        self.picker: QWidget | None = None  # the model picker (set_model_picker), which names the model
        tb.addLayout(self.picker_slot)
        tb.addStretch(1)
        self.settings_btn = QToolButton()
        self.settings_btn.setCheckable(True)
        self.settings_btn.setToolTip("Chat settings (Ctrl+,)")
        self.settings_btn.setAccessibleName("Chat settings")
        theme.set_icon(self.settings_btn, "mdi6.tune-variant")
        tb.addWidget(self.settings_btn)

        # ---- the conversation or the welcome text
        self.view = ChatView(model)
        # The page of an empty chat: a line on the model over the welcome view (set_welcome), scrolled as one.
        self.empty = QLabel()
        self.empty.setObjectName("EmptyText")
        self.empty.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        self.empty.setWordWrap(True)
        self.empty.setTextFormat(Qt.TextFormat.RichText)
        self.empty.setOpenExternalLinks(False)
        self.empty.setContentsMargins(28, 0, 28, 0)
        self.empty.setMaximumWidth(560 + 56)  # a readable line
        welcome_page = QWidget()
        welcome_page.setObjectName("WelcomePage")
        self._welcome_lay = QVBoxLayout(welcome_page)
        self._welcome_lay.setContentsMargins(0, 12, 0, 0)
        self._welcome_lay.setSpacing(0)
        # In a row of its own: a vertical box computes a wrapped label's height at the row's whole width, while a
        # horizontal one computes it at the width the label really gets (held back by its maximum). The page's
        # height is then right, and nothing under the label is squeezed (a card growing by a line while the page
        # was hidden squeezed its button to a sliver).
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.empty, 1)
        row.addStretch(0)  # what is left past the label's maximum goes here: the line stays on the left
        self._welcome_lay.addLayout(row)
        self._welcome_lay.addStretch(1)
        empty_scroll = QScrollArea()
        empty_scroll.setObjectName("Empty")
        empty_scroll.setWidgetResizable(True)
        empty_scroll.setFrameShape(QFrame.Shape.NoFrame)
        empty_scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)  # its content wraps
        empty_scroll.setWidget(welcome_page)
        self.empty_page = empty_scroll
        self.stack = QStackedWidget()
        self.stack.addWidget(empty_scroll)
        self.stack.addWidget(self.view)

        # ---- notices, edit bar, composer
        self.banner = Banner()
        self.problems = Banner()  # malformed profile files: stays until dismissed
        self.edit_bar = QWidget()
        eb = QHBoxLayout(self.edit_bar)
        eb.setContentsMargins(4, 0, 4, 0)
        self.edit_label = QLabel("Editing an earlier message: sending keeps the old version as a branch.")
        self.edit_label.setProperty("muted", True)
        self.cancel_edit_btn = QPushButton("Cancel edit")
        eb.addWidget(self.edit_label, 1)
        eb.addWidget(self.cancel_edit_btn)
        self.edit_bar.hide()
        self.composer = QFrame()
        self.composer.setObjectName("Composer")
        cl = QHBoxLayout(self.composer)
        cl.setContentsMargins(12, 8, 8, 8)
        cl.setSpacing(8)
        self.input = MessageInput()
        # Attachments: a paperclip in the composer opens the file picker; files dropped on the page land here too.
        self.attach_btn = QToolButton()
        self.attach_btn.setObjectName("AttachButton")
        self.attach_btn.setAccessibleName("Attach files")
        self.attach_btn.setFixedSize(36, 36)
        self.attach_btn.setAutoRaise(True)
        theme.set_icon(self.attach_btn, "mdi6.paperclip")
        self.chips = AttachmentChips()
        self.chips.attach_button.hide()  # the paperclip is the one way in
        self.attach_btn.clicked.connect(self.chips.pick_files)
        self.input.image_pasted.connect(self.chips.add_image)
        self.input.files_pasted.connect(self.chips.add_paths)
        self.set_vision(None)  # the tooltip; a loaded model then says whether it takes pictures
        self.setAcceptDrops(True)
        self.send_btn = QToolButton()
        self.send_btn.setObjectName("SendButton")
        self.send_btn.setToolTip("Send (Enter)")
        self.send_btn.setAccessibleName("Send")
        theme.set_icon(self.send_btn, "mdi6.arrow-up", "on_accent")
        self.stop_btn = QToolButton()
        self.stop_btn.setObjectName("StopButton")
        self.stop_btn.setToolTip("Stop generating (Esc)")
        self.stop_btn.setAccessibleName("Stop")
        theme.set_icon(self.stop_btn, "mdi6.stop", "bg")
        for b in (self.send_btn, self.stop_btn):
            b.setFixedSize(36, 36)
        self.stop_btn.setEnabled(False)
        self.stop_btn.hide()
        cl.addWidget(self.attach_btn, 0, Qt.AlignmentFlag.AlignBottom)
        cl.addWidget(self.input, 1)
        cl.addWidget(self.send_btn, 0, Qt.AlignmentFlag.AlignBottom)
        cl.addWidget(self.stop_btn, 0, Qt.AlignmentFlag.AlignBottom)
        bottom = QWidget()
        bl = QVBoxLayout(bottom)
        bl.setContentsMargins(0, 0, 0, 0)
        bl.setSpacing(6)
        for w in (self.problems, self.banner, self.edit_bar, self.chips, self.composer):
            bl.addWidget(w)
        hint = QLabel("Enter sends · Shift+Enter adds a line · Esc stops · answers can be wrong")
        hint.setProperty("muted", True)
        hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        hint.setWordWrap(True)  # two lines in a narrow window rather than cut at both ends
        self.hint = hint
        bl.addWidget(hint)

        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(0)
        lay.addWidget(self.top_bar)
        lay.addWidget(self.stack, 1)
        lay.addWidget(centred(bottom, COLUMN_MAX, (24, 4, 24, 10)))
        self.input.scroll_key.connect(self.view.scroll_key)

    # Files dropped anywhere on the chat page become attachments (the chips read them on a worker).
    def dragEnterEvent(self, event) -> None:  # noqa: N802 - Qt's name
        self.chips.dragEnterEvent(event)

    def dropEvent(self, event) -> None:  # noqa: N802 - Qt's name
        self.chips.dropEvent(event)

    def set_model_line(self, html: str) -> None:
        """The line over the welcome view of an empty chat: which model answers (rich text, the app's own)."""
        self.empty.setText(html)

    def set_welcome(self, widget: QWidget) -> None:
        """Put ``widget`` (the welcome view: suggestions, import) under the line on the model of an empty chat."""
        self._welcome_lay.takeAt(self._welcome_lay.count() - 1)  # the stretch that held the line at the top
        self._welcome_lay.addWidget(widget, 1)

    def set_model_picker(self, widget: QWidget) -> None:
        """Put the model picker at the top of the chat column (again: it replaces the previous one)."""
        if self.picker is not None:
            self.picker_slot.removeWidget(self.picker)
            self.picker.deleteLater()
        self.picker = widget
        self.picker_slot.insertWidget(0, widget)
        if widget.focusProxy() is None:  # Tab and Shift+Tab land on its button, not on the container
            first = next((c for c in widget.findChildren(QWidget)
                          if c.focusPolicy() & Qt.FocusPolicy.TabFocus), None)
            if first is not None:
                widget.setFocusProxy(first)

    def set_vision(self, vision: bool | None, reason: str = "", max_side: int = 0) -> None:
        """Whether the loaded model takes pictures (None: no model loaded yet); the paperclip's tooltip says so."""
        self.chips.set_vision(vision, reason, max_side)
        if vision is False:
            tip = f"Attach files (or drop them on the chat). Images are off: {reason}"
        else:
            tip = "Attach files or images (or drop them on the chat, or paste an image)"
        self.attach_btn.setToolTip(tip)

    def set_busy(self, busy: bool) -> None:
        self.send_btn.setEnabled(not busy)
        self.stop_btn.setEnabled(busy)
        self.send_btn.setVisible(not busy)
        self.stop_btn.setVisible(busy)
        self.view.set_busy(busy)

    def show_conversation(self, has_messages: bool) -> None:
        self.stack.setCurrentWidget(self.view if has_messages else self.empty_page)
