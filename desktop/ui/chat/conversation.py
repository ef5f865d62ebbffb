"""The conversation: one widget per message of a :class:`ChatModel`, in a centred column of readable width.

A view over the model (GUI thread only): it listens to the model's reset/insert/dataChanged signals and
rebuilds only the message that changed. While an answer streams, its text is appended to a plain
document (each flush inserts just the new characters at the end, so the cost does not grow with the
answer); when it finishes, the message is rendered once as Markdown (no raw HTML, http(s) links only, see
``markdown.py``), with code blocks in their own highlighted, copyable widgets. The user's messages are
bubbles on the right, answers are full-width with their model and speed underneath; per-message actions
(copy, edit, regenerate) appear on hover or keyboard focus. Colours come from the theme.
"""
from __future__ import annotations

from PySide6.QtCore import QModelIndex, Qt, QTimer, QUrl, Signal
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import (
    QApplication,
    QFrame,
    QHBoxLayout,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from desktop.ui.chat.markdown import is_safe_link
from desktop.ui.chat.message_model import ChatModel
from desktop.ui.chat.message_widget import MessageWidget
from desktop.ui.theme import COLUMN_MAX


class ChatView(QScrollArea):
    """Scrollable, centred column of :class:`MessageWidget`, kept in step with a :class:`ChatModel`."""

    branch_requested = Signal(int, int)  # message id, step
    edit_requested = Signal(int)
    regenerate_requested = Signal(int)
    copied = Signal(str)
    link_clicked = Signal(QUrl)  # an http(s) link in an answer: the window asks before opening it

    def __init__(self, model: ChatModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = model
        self.busy = False
        self.setObjectName("ChatScroll")
        self.setWidgetResizable(True)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # keys reach it from the window (PgUp/PgDn)
        self.container = QWidget()
        self.container.setObjectName("ChatContainer")
        self.container.setBackgroundRole(QPalette.ColorRole.Base)
        self.container.setAutoFillBackground(True)
        # Plain backgrounds that only grow while an answer streams: a resize repaints the strip it uncovers, not the
        # screen; the layouts grow their widget at once instead of squeezing it first (see MessageWidget).
        self.container.setAttribute(Qt.WidgetAttribute.WA_StaticContents)
        centre = QHBoxLayout(self.container)
        centre.setContentsMargins(24, 16, 24, 16)
        centre.setSizeConstraint(QHBoxLayout.SizeConstraint.SetMinimumSize)
        self.column_widget = QWidget()
        self.column_widget.setObjectName("ChatColumn")
        self.column_widget.setMaximumWidth(COLUMN_MAX)
        self.column_widget.setAttribute(Qt.WidgetAttribute.WA_StaticContents)
        centre.addWidget(self.column_widget, 1)
        self.column = QVBoxLayout(self.column_widget)
        self.column.setContentsMargins(0, 0, 0, 0)
        self.column.setSpacing(6)
        self.column.setSizeConstraint(QVBoxLayout.SizeConstraint.SetMinimumSize)
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
        QApplication.instance().focusChanged.connect(self._focus_changed)
        self._rebuild()

    def set_busy(self, busy: bool) -> None:
        self.busy = busy
        for row, w in enumerate(self.widgets):
            w.update_from(self.model, row)

    def _focus_changed(self, old: QWidget | None, new: QWidget | None) -> None:
        for w in self.widgets:
            if old is not None and (old is w or w.isAncestorOf(old)):
                w.set_actions_visible(False)
            if new is not None and (new is w or w.isAncestorOf(new)):
                w.set_actions_visible(True)
                if old is not None:  # Tab moved here; not the window getting its focus back (that keeps the view)
                    self.ensureWidgetVisible(new, 0, 40)

    # ---------------------------------------------------------------- scrolling

    def _on_scrolled(self, value: int) -> None:
        bar = self.verticalScrollBar()
        self._follow = value >= bar.maximum() - 4  # the user scrolled up to read: stop following

    def _on_range(self, _lo: int, hi: int) -> None:
        if self._follow:
            self.verticalScrollBar().setValue(hi)

    def scroll_to_bottom(self) -> None:
        self._follow = True
        QTimer.singleShot(0, lambda: self.verticalScrollBar().setValue(self.verticalScrollBar().maximum()))

    def scroll_key(self, key: int) -> bool:
        """PgUp/PgDn/Home/End on the conversation, wherever the focus is; False for other keys."""
        bar = self.verticalScrollBar()
        step = max(40, self.viewport().height() - 40)
        target = {Qt.Key.Key_PageUp: bar.value() - step, Qt.Key.Key_PageDown: bar.value() + step,
                  Qt.Key.Key_Home: bar.minimum(), Qt.Key.Key_End: bar.maximum()}.get(Qt.Key(key))
        if target is None:
            return False
        bar.setValue(target)
        return True

    def scroll_to_message(self, message_id: int) -> bool:
        row = self.model.row_of(message_id)
        if row < 0 or row >= len(self.widgets):
            return False
        self._follow = False
        w = self.widgets[row]
        QTimer.singleShot(0, lambda: self.verticalScrollBar().setValue(max(0, w.y() - 24)))
        return True

    def open_thinking(self, message_id: int) -> bool:
        """Open the thinking block of a message (a search hit in its thinking); False when it has none."""
        row = self.model.row_of(message_id)
        return 0 <= row < len(self.widgets) and self.widgets[row].open_thinking()

    # ---------------------------------------------------------------- model changes

    def _rebuild(self) -> None:
        for w in self.widgets:
            self.column.removeWidget(w)
            # Hidden at once: deleteLater waits for the event loop, and until then the old message would still
            # paint where the new ones are laid out (text over text on the first paint of a reopened chat).
            w.hide()
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

    def set_live_rate(self, rate: float | None) -> None:
        if self.widgets and self.model.messages and self.model.messages[-1].state == "streaming":
            self.widgets[-1].set_live_rate(self.model.messages[-1].provenance, rate)


def confirm_link(parent: QWidget, url: QUrl) -> bool:
    """Ask before opening a link from model output; only http(s) is ever opened."""
    from PySide6.QtGui import QDesktopServices
    from PySide6.QtWidgets import QMessageBox

    text = url.toString()
    if not is_safe_link(text):
        return False
    box = QMessageBox(QMessageBox.Icon.Question, "Open link", f"Open this link in your browser?\n\n{text}",
                      QMessageBox.StandardButton.Open | QMessageBox.StandardButton.Cancel, parent)
    box.setDefaultButton(QMessageBox.StandardButton.Cancel)
    if box.exec() != QMessageBox.StandardButton.Open:
        return False
    return QDesktopServices.openUrl(url)


__all__ = ["ChatView", "confirm_link"]
