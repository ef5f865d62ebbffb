"""The sidebar: New chat, search over every chat, and the chat list (or the search's results). GUI thread.

Search (Ctrl+F) lists the matching messages themselves, the hit highlighted from the FTS5 snippet; Enter or
a click jumps to the message (the window switches to its branch when it is on a hidden one); no match shows
"No results"; Esc clears the search and brings the chat list back.
"""
from __future__ import annotations

import html

from PySide6.QtCore import (
    QItemSelectionModel,
    QModelIndex,
    QRectF,
    QSize,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import QAbstractTextDocumentLayout, QPalette, QTextDocument
from PySide6.QtWidgets import (
    QAbstractItemView,
    QLabel,
    QLineEdit,
    QListView,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QPushButton,
    QStackedWidget,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QVBoxLayout,
    QWidget,
)

from desktop.engine.chats.store import ChatStore
from desktop.ui.chat.chat_list import ChatFilterProxy, ChatIdRole, ChatListModel
from desktop.ui.theme import theme

MARKS = ("\x02", "\x03")  # around each hit in a snippet: characters no message text contains
HitRole = Qt.ItemDataRole.UserRole + 21  # (chat id, message id, found in the answer's thinking)


def snippet_html(snippet: str, title: str) -> str:
    """The chat's title, then the snippet with the hits in bold; everything else escaped. An empty snippet:
    the title itself matched."""
    hit = f"<b><u style='color:{theme.colors.accent}'>"
    body = html.escape(" ".join(snippet.split())).replace(MARKS[0], hit).replace(MARKS[1], "</u></b>")
    if not snippet:
        body = f"<span style='color:{theme.colors.muted}'>title matches</span>"
    return f"<span style='font-weight:600'>{html.escape(title)}</span><br>{body}"


class _HtmlDelegate(QStyledItemDelegate):
    """Paints an item's DisplayRole as (escaped, built-by-us) rich text: the search hits stand out."""

    def _doc(self, option: QStyleOptionViewItem, index: QModelIndex) -> QTextDocument:
        doc = QTextDocument()
        doc.setDefaultFont(option.font)
        doc.setHtml(index.data(Qt.ItemDataRole.DisplayRole) or "")
        doc.setTextWidth(max(80, option.rect.width() - 16))
        return doc

    def paint(self, painter, option, index) -> None:  # noqa: ANN001
        opt = QStyleOptionViewItem(option)
        self.initStyleOption(opt, index)
        opt.text = ""
        opt.widget.style().drawControl(QStyle.ControlElement.CE_ItemViewItem, opt, painter, opt.widget)
        doc = self._doc(option, index)
        painter.save()
        painter.translate(option.rect.left() + 8, option.rect.top() + 4)
        ctx = QAbstractTextDocumentLayout.PaintContext()
        ctx.palette.setColor(QPalette.ColorRole.Text, option.palette.color(QPalette.ColorRole.Text))
        doc.documentLayout().draw(painter, ctx)
        painter.restore()

    def sizeHint(self, option, index) -> QSize:  # noqa: N802, ANN001
        doc = self._doc(option, index)
        return QSize(int(doc.idealWidth()), int(QRectF(0, 0, 0, doc.size().height()).height()) + 8)


class _FitWidthDelegate(QStyledItemDelegate):
    """Items no wider than the list's viewport: a long chat title is elided ("…") instead of widening the item,
    which gave the narrow sidebar a horizontal scroll bar and cut titles off mid-letter."""

    def sizeHint(self, option, index) -> QSize:  # noqa: N802, ANN001
        hint = super().sizeHint(option, index)
        view = self.parent()
        return QSize(min(hint.width(), view.viewport().width()), hint.height()) if view else hint


class _ChatList(QListView):
    """The chat list; lays its items out again when its width changes (QListView does that only for height in
    a top-to-bottom list), so ``_FitWidthDelegate`` fits them to the new width."""

    def resizeEvent(self, e) -> None:  # noqa: N802, ANN001
        super().resizeEvent(e)
        if e.size().width() != e.oldSize().width():
            self.scheduleDelayedItemsLayout()


class SearchResults(QListWidget):
    activated_hit = Signal(int, int, bool)  # chat id, message id (0: the title matched), found in the thinking

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("SearchResults")
        self.setAccessibleName("Search results")
        self.setItemDelegate(_HtmlDelegate(self))
        self.setWordWrap(True)
        self.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.itemActivated.connect(self._go)
        self.itemClicked.connect(self._go)

    def _go(self, item: QListWidgetItem) -> None:
        cid, mid, thinking = item.data(HitRole)
        self.activated_hit.emit(cid, mid, thinking)

    def keyPressEvent(self, e) -> None:  # noqa: N802 - Enter jumps (itemActivated is platform dependent)
        if e.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and self.currentItem() is not None:
            self._go(self.currentItem())
            return
        super().keyPressEvent(e)


class SearchBox(QLineEdit):
    escape_pressed = Signal()
    down_pressed = Signal()

    def keyPressEvent(self, e) -> None:  # noqa: N802
        if e.key() == Qt.Key.Key_Escape:
            self.escape_pressed.emit()
            return
        if e.key() in (Qt.Key.Key_Down, Qt.Key.Key_Return, Qt.Key.Key_Enter):
            self.down_pressed.emit()
            return
        super().keyPressEvent(e)


class Sidebar(QWidget):
    new_chat_requested = Signal()
    chat_requested = Signal(int)
    hit_requested = Signal(int, int, bool)  # chat id, message id, found in the thinking
    rename_requested = Signal(int)
    delete_requested = Signal(int)
    export_requested = Signal(int, str)  # chat id, "md" or "json"
    search_cleared = Signal()

    def __init__(self, chats: ChatStore, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("Sidebar")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        self.chats = chats
        self.current_id: int | None = None
        self.model = ChatListModel(chats, self)
        self.proxy = ChatFilterProxy(self)
        self.proxy.setSourceModel(self.model)
        self.new_btn = QPushButton("New chat")
        self.new_btn.setObjectName("NewChat")
        self.new_btn.setToolTip("New chat (Ctrl+N)")
        theme.set_icon(self.new_btn, "mdi6.plus", "on_accent")
        self.new_btn.clicked.connect(self.new_chat_requested)
        self.search = SearchBox()
        self.search.setPlaceholderText("Search chats (Ctrl+F)")
        self.search.setAccessibleName("Search chats")
        self.search.setClearButtonEnabled(True)
        self._timer = QTimer(self, singleShot=True, interval=150)
        self._timer.timeout.connect(self.apply_search)
        self.search.textChanged.connect(lambda _t: self._timer.start())
        self.search.escape_pressed.connect(self.clear_search)
        self.search.down_pressed.connect(self._into_results)
        self.list = _ChatList()
        self.list.setAccessibleName("Chats")
        self.list.setModel(self.proxy)
        self.list.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.list.setUniformItemSizes(True)
        self.list.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.list.setItemDelegate(_FitWidthDelegate(self.list))
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.list.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.list.customContextMenuRequested.connect(self._menu)
        self.list.selectionModel().currentChanged.connect(self._selected)
        self.results = SearchResults()
        self.results.activated_hit.connect(self.hit_requested)
        self.no_results = QLabel("No results")
        self.no_results.setAlignment(Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop)
        self.no_results.setProperty("muted", True)
        self.pages = QStackedWidget()
        for w in (self.list, self.results, self.no_results):
            self.pages.addWidget(w)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(10, 10, 10, 10)
        lay.setSpacing(8)
        lay.addWidget(self.new_btn)
        lay.addWidget(self.search)
        lay.addWidget(self.pages, 1)
        self._selecting = False

    # ---------------------------------------------------------------- list

    def refresh(self) -> None:
        self.model.refresh()
        if self.proxy.query:
            self.apply_search()
        self.select(self.current_id)

    def select(self, chat_id: int | None) -> None:
        self.current_id = chat_id
        self._selecting = True
        try:
            row = self.model.row_of(chat_id)
            sel = self.list.selectionModel()
            idx = self.proxy.mapFromSource(self.model.index(row)) if row >= 0 else QModelIndex()
            if idx.isValid():
                sel.setCurrentIndex(idx, QItemSelectionModel.SelectionFlag.ClearAndSelect)
            else:
                sel.clearSelection()
                sel.setCurrentIndex(QModelIndex(), QItemSelectionModel.SelectionFlag.Clear)
        finally:
            self._selecting = False

    def _selected(self, current: QModelIndex, _prev: QModelIndex) -> None:
        if self._selecting or not current.isValid():
            return
        cid = current.data(ChatIdRole)
        if cid != self.current_id:
            self.chat_requested.emit(cid)

    def _menu(self, pos) -> None:  # noqa: ANN001
        idx = self.list.indexAt(pos)
        if not idx.isValid():
            return
        cid = idx.data(ChatIdRole)
        menu = QMenu(self)
        menu.addAction("Rename…", lambda: self.rename_requested.emit(cid))
        menu.addAction("Export as Markdown…", lambda: self.export_requested.emit(cid, "md"))
        menu.addAction("Export as JSON…", lambda: self.export_requested.emit(cid, "json"))
        menu.addSeparator()
        menu.addAction("Delete…", lambda: self.delete_requested.emit(cid))
        menu.popup(self.list.viewport().mapToGlobal(pos))

    # ---------------------------------------------------------------- search

    def focus_search(self) -> None:
        self.search.setFocus()
        self.search.selectAll()

    def apply_search(self) -> None:
        q = self.search.text().strip()
        # The chat list narrows too (titles and bodies). Narrowing moves the list's current row, which must not
        # open another chat: only a chosen result or a click does that.
        self._selecting = True
        try:
            self.proxy.set_search(q, self.chats)
        finally:
            self._selecting = False
        if not q:
            self.pages.setCurrentWidget(self.list)
            self.select(self.current_id)
            return
        titles = {c.id: c.title for c in self.model.chats}
        self.results.clear()
        for hit in self.chats.search(q, marks=MARKS):
            title = titles.get(hit.chat_id, "")
            text = snippet_html(hit.snippet if hit.message_id else "", title or hit.snippet)
            item = QListWidgetItem(text)
            item.setData(HitRole, (hit.chat_id, hit.message_id, hit.in_reasoning))
            item.setData(Qt.ItemDataRole.AccessibleTextRole, f"{title}: {hit.snippet.replace(MARKS[0], '').replace(MARKS[1], '')}")
            self.results.addItem(item)
        self.pages.setCurrentWidget(self.results if self.results.count() else self.no_results)

    def _into_results(self) -> None:
        if self.pages.currentWidget() is self.results and self.results.count():
            self.results.setFocus()
            self.results.setCurrentRow(0)

    def clear_search(self) -> None:
        self.search.clear()
        self._timer.stop()
        self.apply_search()
        self.search_cleared.emit()
