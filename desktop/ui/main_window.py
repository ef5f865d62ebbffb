"""The main window: chat list, chat pane, input, Model menu, status bar. GUI thread only.

Every chat lives in the chat store (SQLite). A user message is written before its generation is
requested; the answer's row is created at once (state "streaming") and journaled while tokens arrive,
whichever chat is on screen, so neither a crash of the app nor of the engine loses what was generated.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import QItemSelectionModel, QModelIndex, Qt, QTimer
from PySide6.QtGui import QAction, QActionGroup, QKeySequence, QPalette
from PySide6.QtWidgets import (QAbstractItemView, QFileDialog, QFrame, QHBoxLayout, QInputDialog, QLabel, QLineEdit,
                               QListView, QMainWindow, QMenu, QMessageBox, QPlainTextEdit, QProgressBar, QPushButton,
                               QSplitter, QStackedWidget, QVBoxLayout, QWidget)

from desktop.engine.chats import store as chat_store
from desktop.engine.library import registry as models
from desktop.engine.inference import protocol as P
from desktop.engine.chats.store import ChatStore
from desktop.engine.errors import AppError, ModelNotFoundError
from desktop.engine.profiles import Profile, ProfileStore

from . import workers
from .chat_model import ChatMessage, ChatModel
from .chat_view import ChatView
from .engine_adapter import EngineAdapter
from .errors import Banner, ErrorPresenter
from .list_models import (ChatFilterProxy, ChatIdRole, ChatListModel, InstalledRole, ProfileIdRole,
                          ProfileListModel, ProfileSortProxy)

_SAMPLING_KEYS = ("temperature", "top_p", "top_k", "min_p", "repeat_penalty", "max_tokens")


class _Input(QPlainTextEdit):
    """Enter sends, Shift+Enter inserts a newline, Esc stops (or leaves edit mode)."""

    def __init__(self, window: "MainWindow") -> None:
        super().__init__()
        self.window_ = window
        self.setPlaceholderText("Message the model. Enter sends, Shift+Enter adds a line, Esc stops.")
        self.setFixedHeight(self.fontMetrics().lineSpacing() * 4 + 12)

    def keyPressEvent(self, e) -> None:  # noqa: N802 - Qt's name
        if e.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and not e.modifiers() & Qt.KeyboardModifier.ShiftModifier:
            self.window_.send()
            return
        if e.key() == Qt.Key.Key_Escape:
            self.window_.escape()
            return
        super().keyPressEvent(e)


class _Field(QLabel):
    """A status bar field that hides itself (and its separator) while empty."""

    sep: QFrame | None = None

    def setText(self, text: str) -> None:  # noqa: N802 - Qt's name
        super().setText(text)
        self.setVisible(bool(text))
        if self.sep is not None:
            self.sep.setVisible(bool(text))


class MainWindow(QMainWindow):
    def __init__(self, store: ProfileStore | None = None, chats: ChatStore | None = None) -> None:
        super().__init__()
        self.setWindowTitle("Desktop Chat")
        self.resize(1100, 720)
        self.store = store or ProfileStore()
        self.chats = chats or ChatStore()
        self.chats.mark_interrupted()  # answers a crash left "streaming" are shown as interrupted
        self.model = ChatModel(self)
        self.adapter = EngineAdapter(self)
        self.loaded: P.Loaded | None = None
        self.last_stats: P.GenerationStats | None = None
        self.chat_id: int | None = None  # None: a new chat, created in the store by its first message
        self._stream: dict[str, Any] | None = None  # the answer being generated (any chat)
        self._editing: int | None = None  # the user message being edited (a new branch on send)
        self._hashing: set[str] = set()
        self._jobs: list[workers.Job] = []
        self._downloads: Any = None
        self._selecting = False
        self._load_t0 = 0.0

        # ---- left: search + chat list
        self.chat_list_model = ChatListModel(self.chats, self)
        self.chat_proxy = ChatFilterProxy(self)
        self.chat_proxy.setSourceModel(self.chat_list_model)
        self.search = QLineEdit()
        self.search.setPlaceholderText("Search all chats (Ctrl+F)")
        self.search.setClearButtonEnabled(True)
        self._search_timer = QTimer(self, singleShot=True, interval=150)
        self._search_timer.timeout.connect(self._apply_search)
        self.search.textChanged.connect(lambda _t: self._search_timer.start())
        self.chat_list = QListView()
        self.chat_list.setModel(self.chat_proxy)
        self.chat_list.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.chat_list.setSpacing(2)
        self.chat_list.setUniformItemSizes(True)
        self.chat_list.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.chat_list.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.chat_list.customContextMenuRequested.connect(self._chat_menu)
        self.chat_list.selectionModel().currentChanged.connect(self._on_chat_selected)
        self.new_btn = QPushButton("New chat")
        self.new_btn.clicked.connect(self.new_chat)
        left = QWidget()
        ll = QVBoxLayout(left)
        ll.setContentsMargins(6, 6, 0, 6)
        ll.addWidget(self.new_btn)
        ll.addWidget(self.search)
        ll.addWidget(self.chat_list, 1)

        # ---- centre: empty state or messages, banner, edit bar, input
        self.view = ChatView(self.model)
        self.view.branch_requested.connect(self.switch_branch)
        self.view.edit_requested.connect(self.edit_message)
        self.view.regenerate_requested.connect(self.regenerate)
        self.view.copied.connect(lambda what: self.statusBar().showMessage(f"Copied the {what}.", 3000))
        self.empty = QLabel()
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty.setWordWrap(True)
        self.empty.setTextFormat(Qt.TextFormat.RichText)
        self.empty.setOpenExternalLinks(False)
        self.empty.linkActivated.connect(self._on_empty_link)
        self.empty.setBackgroundRole(QPalette.ColorRole.Base)
        self.empty.setAutoFillBackground(True)
        self.stack = QStackedWidget()
        self.stack.addWidget(self.empty)
        self.stack.addWidget(self.view)
        self.banner = Banner()
        self.edit_bar = QWidget()
        eb = QHBoxLayout(self.edit_bar)
        eb.setContentsMargins(0, 0, 0, 0)
        self.edit_label = QLabel("Editing an earlier message: sending keeps the old version as a branch.")
        cancel_edit = QPushButton("Cancel edit")
        cancel_edit.clicked.connect(self.cancel_edit)
        eb.addWidget(self.edit_label, 1)
        eb.addWidget(cancel_edit)
        self.edit_bar.hide()
        self.input = _Input(self)
        self.send_btn = QPushButton("Send")
        self.send_btn.setDefault(True)
        self.send_btn.clicked.connect(self.send)
        self.stop_btn = QPushButton("Stop")
        self.stop_btn.setToolTip("Stop generating (Esc)")
        self.stop_btn.clicked.connect(self.stop)
        self.stop_btn.setEnabled(False)
        row = QHBoxLayout()
        row.addWidget(self.input, 1)
        col = QVBoxLayout()
        col.addWidget(self.send_btn)
        col.addWidget(self.stop_btn)
        col.addStretch(1)
        row.addLayout(col)
        centre = QWidget()
        cl = QVBoxLayout(centre)
        cl.setContentsMargins(0, 6, 6, 6)
        cl.addWidget(self.stack, 1)
        cl.addWidget(self.banner)
        cl.addWidget(self.edit_bar)
        cl.addLayout(row)

        self.splitter = QSplitter()
        self.splitter.addWidget(left)
        self.splitter.addWidget(centre)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setSizes([250, 850])
        self.setCentralWidget(self.splitter)

        # ---- status bar
        sb = self.statusBar()
        self.status_model = _Field("No model loaded")
        self.status_backend = _Field()
        self.status_speed = _Field()
        self.status_ctx = _Field()
        self.load_bar = QProgressBar()
        self.load_bar.setRange(0, 0)  # llama.cpp reports no load progress: a busy bar with the elapsed time
        self.load_bar.setMaximumWidth(120)
        self.load_label = QLabel()
        self.load_cancel = QPushButton("Cancel")
        self.load_cancel.clicked.connect(self.cancel_load)
        self._load_widgets = (self.load_label, self.load_bar, self.load_cancel)
        for w in self._load_widgets:
            sb.addPermanentWidget(w)
            w.hide()
        for i, label in enumerate((self.status_model, self.status_backend, self.status_speed, self.status_ctx)):
            if i:
                label.sep = QFrame()
                label.sep.setFrameShape(QFrame.Shape.VLine)
                label.sep.setFrameShadow(QFrame.Shadow.Sunken)
                sb.addPermanentWidget(label.sep)
            label.setText(label.text())
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            label.setContentsMargins(4, 0, 4, 0)
            sb.addPermanentWidget(label)
        self._load_timer = QTimer(self, interval=500)
        self._load_timer.timeout.connect(self._tick_load)
        self.errors = ErrorPresenter(self, lambda t: self.statusBar().showMessage(t, 15000), self.banner)

        # ---- models for the Model menu
        self.profile_model = ProfileListModel(self.store, self)
        self.profile_proxy = ProfileSortProxy(self)
        self.profile_proxy.setSourceModel(self.profile_model)
        self._build_menus()

        a = self.adapter
        a.load_started.connect(self._on_load_started)
        a.model_loaded.connect(self._on_loaded)
        a.load_failed.connect(self._on_load_failed)
        a.load_cancelled.connect(self._on_load_cancelled)
        a.token_received.connect(self._on_token)
        a.generation_finished.connect(self._on_finished)
        a.generation_failed.connect(self._on_failed)

        self.new_chat()
        if self.chat_list_model.rowCount():
            self.open_chat(self.chat_list_model.chats[0].id)

    # ------------------------------------------------------------------ menus

    def _build_menus(self) -> None:
        chat = self.menuBar().addMenu("&Chat")

        def act(menu: QMenu, text: str, slot, shortcut: str | None = None) -> QAction:
            a = QAction(text, self)
            if shortcut:
                a.setShortcut(QKeySequence(shortcut))
            a.triggered.connect(lambda _=False: slot())
            menu.addAction(a)
            return a

        self.new_action = act(chat, "&New chat", self.new_chat, "Ctrl+N")
        self.find_action = act(chat, "&Find in chats", self.focus_search, "Ctrl+F")
        chat.addSeparator()
        act(chat, "&Rename…", lambda: self.chat_id and self.rename_chat(self.chat_id))
        act(chat, "&Delete…", lambda: self.chat_id and self.delete_chat(self.chat_id))
        act(chat, "Export as &Markdown…", lambda: self.chat_id and self.export_chat(self.chat_id, "md"))
        act(chat, "Export as &JSON…", lambda: self.chat_id and self.export_chat(self.chat_id, "json"))
        chat.addSeparator()
        self.quit_action = act(chat, "&Quit", self.close, "Ctrl+Q")

        self.model_menu = self.menuBar().addMenu("&Model")
        self.model_menu.aboutToShow.connect(self._fill_model_menu)
        self.profile_group = QActionGroup(self)
        self.profile_actions: dict[str, QAction] = {}
        self.settings_action = QAction("Profile &settings…", self)
        self.settings_action.setShortcut(QKeySequence("Ctrl+,"))
        self.settings_action.triggered.connect(lambda _=False: self.open_settings())
        self.import_action = QAction("&Import GGUF from disk…", self)
        self.import_action.triggered.connect(lambda _=False: self.import_gguf())
        self.downloads_action = QAction("&Downloads…", self)
        self.downloads_action.triggered.connect(lambda _=False: self.open_downloads(None, None))
        self.addActions([self.settings_action])  # shortcuts work before the menu was ever opened
        self._fill_model_menu()

    def _fill_model_menu(self) -> None:
        """Rebuilt on every opening: a download or an import may have installed a model since."""
        self.profile_model.refresh()
        m = self.model_menu
        m.clear()
        for a in self.profile_group.actions():
            self.profile_group.removeAction(a)
        self.profile_actions = {}
        current = self.adapter.profile.id if self.adapter.profile else None
        for r in range(self.profile_proxy.rowCount()):
            idx = self.profile_proxy.index(r, 0)
            pid = idx.data(ProfileIdRole)
            installed = bool(idx.data(InstalledRole))
            a = QAction(idx.data(Qt.ItemDataRole.DisplayRole), self, checkable=True)
            a.setToolTip(idx.data(Qt.ItemDataRole.ToolTipRole) or "")
            a.setChecked(pid == current)
            a.setData(pid)
            a.setProperty("installed", installed)
            a.triggered.connect(lambda _=False, p=pid: self.choose_profile(p))
            self.profile_group.addAction(a)
            m.addAction(a)
            self.profile_actions[pid] = a
        m.addSeparator()
        m.addAction(self.settings_action)
        m.addAction(self.import_action)
        m.addAction(self.downloads_action)

    # ------------------------------------------------------------------ models

    def choose_profile(self, profile_id: str) -> None:
        """From the Model menu: load it, or offer the download window when its model is not downloaded."""
        profile = self.store.get(profile_id)
        if not ProfileListModel._installed(profile):
            self.open_downloads(profile.id, profile.source.recommended_quant)
            if self.adapter.profile:  # keep the check mark on what is actually loaded
                act = self.profile_actions.get(self.adapter.profile.id)
                if act:
                    act.setChecked(True)
            return
        self.load_profile(profile)

    def load_profile(self, profile: Profile) -> None:
        if not ProfileListModel._installed(profile):
            self.open_downloads(profile.id, profile.source.recommended_quant)
            return
        if self.adapter.loading:
            self.adapter.cancel_load(restore=False)  # the new choice replaces it
        try:
            self.adapter.load_requested(profile)
        except ModelNotFoundError:
            self.open_downloads(profile.id, profile.source.recommended_quant)
            return
        except AppError as exc:
            self.errors.present(exc, modal=True)
            return
        act = self.profile_actions.get(profile.id)
        if act:
            act.setChecked(True)

    def cancel_load(self) -> None:
        self.adapter.cancel_load()

    def open_downloads(self, profile_id: str | None, quant: str | None) -> Any:
        """The download window (non-modal), with ``profile_id``/``quant`` pre-selected when given."""
        try:
            from desktop.ui.download_window import DownloadWindow
        except ImportError as exc:
            self.errors.present({"message": "The download window is not available in this build.",
                                 "details": f"{type(exc).__name__}: {exc}"})
            return None
        if self._downloads is None:
            self._downloads = DownloadWindow(parent=self)
            self._watch_downloads(getattr(self._downloads, "controller", None))
        self._downloads.show_for(profile_id, quant)
        return self._downloads

    def _watch_downloads(self, controller: Any) -> None:
        if controller is not None and not getattr(self, "_watching_downloads", False):
            controller.model_installed.connect(self._on_model_installed)
            self._watching_downloads = True

    def resume_downloads(self) -> int:
        """Downloads that a quit or crash interrupted continue in the background; returns how many."""
        from desktop.ui.download_window import DownloadsController

        ctrl = DownloadsController.instance()
        n = ctrl.resume_interrupted()
        if n:
            self._watch_downloads(ctrl)
            self.statusBar().showMessage(f"Resuming {n} interrupted download{'s' if n > 1 else ''} "
                                         "(Model ▸ Downloads… shows progress)", 8000)
        return n

    def _on_model_installed(self, profile_id: str) -> None:
        """A download finished: the menu and the empty state show it installed; offer to load it."""
        self.store.reload()
        self.profile_model.refresh()
        if profile_id in self.store.ids():
            p = self.store.get(profile_id)
            self.banner.show_message(f"{p.name} is downloaded and ready.", None,
                                     ("Load it", lambda: self.load_profile(self.store.get(profile_id))))
        if not self.model.rowCount():
            self._update_empty()

    def open_settings(self, profile_id: str | None = None) -> Any:
        from .settings_dialog import SettingsDialog

        pid = profile_id or (self.adapter.profile.id if self.adapter.profile else self.store.default().id)
        dlg = SettingsDialog(self.store, pid, self.adapter.loaded_profile, self)
        dlg.saved.connect(self._on_settings_saved)
        dlg.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dlg.open()
        self._settings = dlg
        return dlg

    def _on_settings_saved(self, profile_id: str, needs_reload: bool) -> None:
        self.profile_model.refresh()
        if self.adapter.profile and self.adapter.profile.id == profile_id:
            # Sampling, system prompt and stop strings take effect with the next message.
            self.adapter.profile = self.store.get(profile_id)
        if needs_reload:
            self.banner.show_message("The new load settings take effect when the model is reloaded.", None,
                                     ("Reload now", lambda: self.load_profile(self.store.get(profile_id))))
        else:
            self.statusBar().showMessage("Settings saved; they apply to the next message.", 5000)

    def import_gguf(self, path: str | None = None) -> workers.Job | None:
        """Run the doctor on a GGUF and create a profile for it, off the GUI thread."""
        if path is None:
            path, _ = QFileDialog.getOpenFileName(self, "Import a GGUF model", str(Path.home()),
                                                  "GGUF models (*.gguf);;All files (*)")
            if not path:
                return None
        fn = getattr(models, "import_model", None)
        if fn is None:
            self.errors.present({"message": "Importing models is not available in this build."}, modal=True)
            return None
        self.import_action.setEnabled(False)
        self.statusBar().showMessage(f"Importing {os.path.basename(path)}…")
        job = workers.start(lambda: fn(path), self._on_imported, self._on_import_failed, self)
        self._jobs.append(job)
        return job

    def _on_imported(self, result: Any) -> None:
        self.import_action.setEnabled(True)
        self.store.reload()
        self.profile_model.refresh()
        fixes = list(getattr(result, "fixes", []) or [])
        fixed = f" Fixed: {', '.join(map(str, fixes))}." if fixes else ""
        pid = result.profile_id
        self.statusBar().showMessage(f"Imported as profile {pid}.", 8000)
        self.banner.show_message(f"Imported {os.path.basename(str(result.path))} as the profile “{pid}”.{fixed}",
                                 None, ("Load it", lambda: self.load_profile(self.store.get(pid))))

    def _on_import_failed(self, exc: BaseException) -> None:
        self.import_action.setEnabled(True)
        self.statusBar().clearMessage()
        if isinstance(exc, AppError):
            self.errors.present(exc, modal=True)
        else:
            self.errors.present({"message": f"The import failed: {exc}", "details": repr(exc)}, modal=True)

    # ------------------------------------------------------------------ chats

    def focus_search(self) -> None:
        self.search.setFocus()
        self.search.selectAll()

    def _apply_search(self) -> None:
        self.chat_proxy.set_search(self.search.text(), self.chats)
        self._select_in_list(self.chat_id)

    def _select_in_list(self, chat_id: int | None) -> None:
        self._selecting = True
        try:
            row = self.chat_list_model.row_of(chat_id)
            sel = self.chat_list.selectionModel()
            if row < 0:
                sel.clearSelection()
                sel.setCurrentIndex(QModelIndex(), QItemSelectionModel.SelectionFlag.Clear)
                return
            idx = self.chat_proxy.mapFromSource(self.chat_list_model.index(row))
            if idx.isValid():
                sel.setCurrentIndex(idx, QItemSelectionModel.SelectionFlag.ClearAndSelect)
            else:
                sel.clearSelection()
        finally:
            self._selecting = False

    def _refresh_chat_list(self) -> None:
        self.chat_list_model.refresh()
        if self.chat_proxy.query:
            self.chat_proxy.set_search(self.chat_proxy.query, self.chats)
        self._select_in_list(self.chat_id)

    def _on_chat_selected(self, current: QModelIndex, _prev: QModelIndex) -> None:
        if self._selecting or not current.isValid():
            return
        cid = current.data(ChatIdRole)
        if cid != self.chat_id:
            self.open_chat(cid)

    def new_chat(self) -> None:
        self.cancel_edit()
        self.chat_id = None
        self.model.set_messages([])
        self._select_in_list(None)
        self._update_empty()
        self.input.setFocus()

    def open_chat(self, chat_id: int) -> None:
        self.cancel_edit()
        self.chat_id = chat_id
        self._show_thread()
        self._select_in_list(chat_id)

    def _show_thread(self) -> None:
        msgs = self.chats.thread(self.chat_id) if self.chat_id is not None else []
        st = self._stream
        dropped: set[int] = set()
        out: list[ChatMessage] = []
        for m in msgs:
            text, state = m.content, m.state
            if st and m.id == st["msg_id"]:
                text, state = st["text"], "streaming"  # fresher than the journal
            if m.role == "assistant":
                dropped = set(m.stats.get("dropped_ids", [])) if m.stats else dropped
            out.append(ChatMessage(m.role, text, state, m.id, (m.sibling_index, m.sibling_count),
                                   False, m.provenance, m.stats))
        for cm in out:
            cm.dimmed = cm.id in dropped
        self.model.set_messages(out)
        self._update_empty()

    def _update_empty(self) -> None:
        if self.model.rowCount():
            self.stack.setCurrentWidget(self.view)
            return
        name = self.adapter.profile.name if self.adapter.profile else "the demo model"
        missing = [r for r in self.profile_model.rows if not r[1]]
        lines = [f"<h2>Start a conversation</h2><p>You are chatting with <b>{name}</b>, on this computer, "
                 "offline. Type below and press Enter.</p>"]
        if missing:
            items = "".join(f"<li><a href='dl:{p.id}'>{p.name}</a></li>" for p, _ in missing[:6])
            lines.append("<p>The demo model is tiny and makes things up. For real work, download a model:</p>"
                         f"<ul style='text-align:left'>{items}</ul><p>(or <b>Model ▸ Downloads…</b>, or "
                         "<b>Model ▸ Import GGUF from disk…</b>)</p>")
        self.empty.setText("".join(lines))
        self.stack.setCurrentWidget(self.empty)

    def _on_empty_link(self, link: str) -> None:
        if link.startswith("dl:"):
            p = self.store.get(link[3:])
            self.open_downloads(p.id, p.source.recommended_quant)

    def rename_chat(self, chat_id: int, title: str | None = None) -> None:
        if title is None:
            c = self.chats.chat(chat_id)
            title, ok = QInputDialog.getText(self, "Rename chat", "Title:", text=c.title if c else "")
            if not ok:
                return
        self.chats.rename_chat(chat_id, title)
        self._refresh_chat_list()

    def delete_chat(self, chat_id: int, *, confirm: bool = True) -> None:
        if self._stream and self._stream["chat_id"] == chat_id:
            self.errors.present({"message": "Stop the answer being written before deleting its chat."})
            return
        if confirm:
            c = self.chats.chat(chat_id)
            if QMessageBox.question(self, "Delete chat", f"Delete “{c.title if c else ''}” and all its messages?"
                                    ) != QMessageBox.StandardButton.Yes:
                return
        self.chats.delete_chat(chat_id)
        if self.chat_id == chat_id:
            self.new_chat()
        self._refresh_chat_list()

    def export_chat(self, chat_id: int, fmt: str, path: str | None = None) -> Path | None:
        c = self.chats.chat(chat_id)
        if c is None:
            return None
        if path is None:
            safe = "".join(ch if ch.isalnum() or ch in " -_" else "_" for ch in c.title).strip() or "chat"
            path, _ = QFileDialog.getSaveFileName(self, "Export chat", str(Path.home() / f"{safe}.{fmt}"),
                                                  "Markdown (*.md)" if fmt == "md" else "JSON (*.json)")
            if not path:
                return None
        text = (self.chats.export_markdown(chat_id) if fmt == "md"
                else json.dumps(self.chats.export_json(chat_id), indent=2, ensure_ascii=False))
        try:
            Path(path).write_text(text, encoding="utf-8")
        except OSError as exc:
            self.errors.present({"message": f"Could not write {path}: {exc.strerror or exc}"})
            return None
        self.statusBar().showMessage(f"Exported to {path}", 5000)
        return Path(path)

    def _chat_menu(self, pos) -> None:
        idx = self.chat_list.indexAt(pos)
        if not idx.isValid():
            return
        cid = idx.data(ChatIdRole)
        menu = QMenu(self)
        menu.addAction("Rename…", lambda: self.rename_chat(cid))
        menu.addAction("Export as Markdown…", lambda: self.export_chat(cid, "md"))
        menu.addAction("Export as JSON…", lambda: self.export_chat(cid, "json"))
        menu.addSeparator()
        menu.addAction("Delete…", lambda: self.delete_chat(cid))
        menu.popup(self.chat_list.viewport().mapToGlobal(pos))

    # ------------------------------------------------------------------ sending

    def escape(self) -> None:
        if self.adapter.current:
            self.stop()
        elif self._editing is not None:
            self.cancel_edit()

    def stop(self) -> None:
        self.adapter.stop_requested()

    def edit_message(self, message_id: int) -> None:
        if self._stream:
            return
        m = self.chats.message(message_id)
        if m is None or m.role != "user":
            return
        self._editing = message_id
        self.input.setPlainText(m.content)
        self.edit_bar.show()
        self.input.setFocus()

    def cancel_edit(self) -> None:
        if self._editing is not None:
            self.input.clear()
        self._editing = None
        self.edit_bar.hide()

    def switch_branch(self, message_id: int, step: int) -> None:
        if self._stream:
            return
        if self.chats.switch_branch(message_id, step) is not None:
            self._show_thread()

    def send(self, text: str | None = None) -> bool:
        """Send the input (or ``text``): saves the user message, then asks the engine for the answer."""
        text = (self.input.toPlainText() if text is None else text).strip()
        if not text or self._stream:
            return False
        if self.adapter.profile is None:
            self.errors.present({"message": "Choose a model in the Model menu first."})
            return False
        if self.chat_id is None:
            title = text.splitlines()[0][:48] + ("…" if len(text.splitlines()[0]) > 48 else "")
            self.chat_id = self.chats.create_chat(title)
        if self._editing is not None:
            edited = self.chats.message(self._editing)
            parent = edited.parent_id if edited else None
        else:
            parent = self.model.messages[-1].id if self.model.messages else None
        uid = self.chats.add_message(self.chat_id, parent, "user", text)  # on disk before generation starts
        if self._editing is None and (parent is None or parent == (self.model.messages[-1].id
                                                                   if self.model.messages else None)):
            self.model.append("user", text, id=uid)  # appending is cheaper than re-rendering the chat
        self.input.clear()
        self.cancel_edit()
        self._generate()
        self._refresh_chat_list()
        return True

    def regenerate(self, message_id: int | None = None) -> bool:
        """A new answer to the user message before the last answer; the old one stays as a branch."""
        if self._stream or not self.model.messages:
            return False
        last = self.model.messages[-1]
        if message_id is not None and last.id != message_id:
            return False
        if last.role != "assistant":
            return False
        m = self.chats.message(last.id)
        if m is None or m.parent_id is None:
            return False
        self.chats.set_current_leaf(self.chat_id, m.parent_id)
        self._generate()
        return True

    def _generate(self) -> None:
        """Start an answer to the chat's current leaf (a user message)."""
        leaf = self.chats.chat(self.chat_id).current_leaf
        prov = self._provenance()
        msg_id = self.chats.add_message(self.chat_id, leaf, "assistant", "", state="streaming", provenance=prov)
        if self.model.messages and self.model.messages[-1].id == leaf:
            self.model.append("assistant", "", "streaming", id=msg_id, provenance=prov)
        else:  # a regeneration or an edit: a new branch, shown with its < n/m > switcher
            self._show_thread()
        self._update_empty()
        msgs = [m for m in self.model.messages[:-1] if m.role in ("user", "assistant") and m.text]
        history = [{"role": m.role, "content": m.text} for m in msgs]
        rid = self.adapter.send_requested(history)
        self._stream = {"rid": rid, "chat_id": self.chat_id, "msg_id": msg_id, "text": "",
                        "sent_ids": [m.id for m in msgs], "t0": time.monotonic()}
        # The row exists (empty, "streaming") before the first token: the journal has somewhere to write.
        self.model.messages[-1].state = "streaming"
        self._set_busy(True)

    def _provenance(self) -> dict[str, Any]:
        p = self.adapter.profile
        ld = self.loaded
        gen = self.adapter.generate_request_preview()
        path = ld.model_path if ld and ld.model_path else ""
        resolved = str(Path(path).resolve()) if path else ""
        return {
            "profile_id": p.id if p else None, "profile_name": p.name if p else None,
            "model_file": os.path.basename(path) or None, "model_path": resolved or None,
            "sha256": self.chats.cached_sha256(resolved) if resolved else None,
            "quant": ld.quant if ld else (p.source.recommended_quant if p else None),
            "sampling": {k: getattr(gen, k) for k in _SAMPLING_KEYS}, "seed": gen.seed,
            "llama_cpp_version": ld.llama_cpp_version if ld else None,
            "backend": ld.backend if ld else None, "n_ctx": ld.n_ctx if ld else None,
        }

    def _set_busy(self, busy: bool) -> None:
        self.send_btn.setEnabled(not busy)
        self.stop_btn.setEnabled(busy)
        self.view.set_busy(busy)

    def _stream_shown(self) -> bool:
        return self._stream_shown_for(self._stream)

    def _stream_shown_for(self, st: dict[str, Any] | None) -> bool:
        return bool(st and self.model.messages and self.model.messages[-1].id == st["msg_id"])

    # ------------------------------------------------------------------ engine events

    def _on_token(self, rid: str, text: str) -> None:
        st = self._stream
        if not st or rid != st["rid"]:
            return
        st["text"] += text
        self.chats.journal(st["msg_id"], st["text"])  # throttled to ~2 writes a second
        if self._stream_shown():
            self.model.append_token(text)

    def _finish_stream(self, state: str, text: str, stats: dict[str, Any] | None) -> None:
        st = self._stream
        assert st is not None
        self._stream = None
        m = self.chats.message(st["msg_id"])
        prov = dict(m.provenance) if m else {}
        fresh = self._provenance()
        for k, v in fresh.items():  # the model may have finished loading after the message was sent
            if v is not None and k not in ("sampling", "seed"):
                prov[k] = v
        if stats and stats.get("seed", -1) >= 0:
            prov["seed"] = stats["seed"]
        self.chats.finish_message(st["msg_id"], text, state, stats=stats, provenance=prov)
        if self._stream_shown_for(st):
            self.model.finish_last(state, text, stats=stats, provenance=prov)
            if stats is not None:
                self.model.set_dimmed(set(stats.get("dropped_ids", [])))
        self._set_busy(False)

    def _on_finished(self, rid: str, ev: P.Finished) -> None:
        st = self._stream
        if not st or rid != st["rid"]:
            return
        s = ev.stats
        self.last_stats = s
        sent = st["sent_ids"]
        dropped_ids = [sent[i] for i in ev.dropped if 0 <= i < len(sent)]
        stats = {**s.__dict__, "finish_reason": ev.finish_reason, "dropped_ids": dropped_ids}
        self._finish_stream("cancelled" if ev.finish_reason == "cancelled" else "done", ev.text, stats)
        self.status_speed.setText(f"{s.tokens_per_s:.1f} tok/s · first token {s.ttft_s * 1000:.0f} ms")
        left_out = f" · {len(dropped_ids)} earlier messages not in context" if dropped_ids else ""
        self.status_ctx.setText(f"context {s.context_used:,}/{s.context_total:,}{left_out}")

    def _on_failed(self, rid: str, error: dict[str, Any]) -> None:
        st = self._stream
        if not st or rid != st["rid"]:
            return
        self._finish_stream("error", st["text"], None)  # the partial answer stays
        if error.get("code") == "engine_crashed":
            self.status_model.setText("Engine stopped; it restarts with the next message")
            self.status_backend.setText("")
        self.errors.present(error)

    def _on_load_started(self, profile: Profile) -> None:
        self._load_t0 = time.monotonic()
        self._load_name = profile.name
        for w in self._load_widgets:
            w.show()
        self._tick_load()
        self._load_timer.start()

    def _tick_load(self) -> None:
        self.load_label.setText(f"Loading {self._load_name}… {time.monotonic() - self._load_t0:.0f} s")

    def _end_load(self) -> None:
        self._load_timer.stop()
        for w in self._load_widgets:
            w.hide()

    def _on_loaded(self, ev: P.Loaded) -> None:
        self._end_load()
        self.loaded = ev
        p = self.adapter.loaded_profile
        name = p.name if p else os.path.basename(ev.model_path)
        self.status_model.setText(f"{name} · {ev.quant}" if ev.quant else name)
        self.status_model.setToolTip(f"{ev.model_path}\nllama.cpp {ev.llama_cpp_version}\n" + "\n".join(ev.notes))
        layers = (f"{ev.n_gpu_layers}/{ev.gpu_layers_total} GPU layers" if ev.gpu_layers_total
                  else f"{ev.n_gpu_layers} GPU layers")
        self.status_backend.setText(f"{ev.backend} · {layers}" if ev.backend not in ("CPU", "remote")
                                    else ev.backend)
        # The engine's one-line reason for its GPU-layer choice (free VRAM, model size, context).
        self.status_backend.setToolTip(ev.gpu_reason or ev.description)
        if ev.gpu_reason:
            self.statusBar().showMessage(ev.gpu_reason, 10000)
        self.status_ctx.setText(f"context 0/{ev.n_ctx:,}")
        self.status_speed.setText("")
        if ev.model_path and not models.is_remote(p):
            self._hash_later(ev.model_path)
        if not self.model.rowCount():
            self._update_empty()

    def _hash_later(self, path: str) -> None:
        """sha256 of the model for provenance: once per file (cached by size+mtime), off the GUI thread."""
        resolved = str(Path(path).resolve())
        if resolved in self._hashing or self.chats.cached_sha256(resolved):
            return
        for entry in models.read_registry().values():  # downloads and imports were hashed when registered
            if entry.get("sha256") and str(Path(entry.get("path", "")).resolve()) == resolved:
                try:
                    if Path(resolved).stat().st_size == entry.get("size", -1):
                        self.chats.remember_sha256(resolved, entry["sha256"])
                        return
                except OSError:
                    return
        self._hashing.add(resolved)

        def done(digest: str) -> None:
            self._hashing.discard(resolved)
            try:
                self.chats.remember_sha256(resolved, digest)
            except OSError:
                pass  # the file went away meanwhile: provenance keeps the name only

        def failed(_exc: BaseException) -> None:
            self._hashing.discard(resolved)

        self._jobs.append(workers.start(lambda: chat_store.hash_file(resolved), done, failed, self))

    def _on_load_failed(self, error: dict[str, Any]) -> None:
        self._end_load()
        self.status_model.setText("No model loaded")
        self.status_backend.setText("")
        self.errors.present(error, modal=True)

    def _on_load_cancelled(self, profile: Profile | None) -> None:
        prev = self.adapter.profile if self.adapter.loading else None  # the previous model, reloading
        if prev is None:
            self._end_load()
        self.statusBar().showMessage(f"Stopped loading {profile.name if profile else 'the model'}." +
                                     (f" Going back to {prev.name}." if prev else ""), 8000)
        if prev is None:
            self.status_model.setText("No model loaded")
            self.status_backend.setText("")

    def closeEvent(self, e) -> None:  # noqa: N802
        st = self._stream
        if st:
            self.adapter.stop_requested()  # else the engine finishes the answer before it reads Shutdown
            self.chats.finish_message(st["msg_id"], st["text"], "cancelled")
            self._stream = None
        self.adapter.shutdown()
        super().closeEvent(e)
