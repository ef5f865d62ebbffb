"""The main window's chat actions: send, stop, regenerate, edit, branches, chats, search hits, export. GUI thread.

A mixin of :class:`MainWindow`: each method turns a user action (a key, a button, a menu entry) into a call
on the chat session and updates what the window shows; the session does the work.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QUrl
from PySide6.QtWidgets import QFileDialog, QInputDialog, QMessageBox

from desktop.engine.inference import protocol as P
from desktop.ui.chat.conversation import confirm_link
from desktop.ui.shell.tool_actions import ToolActions

if TYPE_CHECKING:
    from desktop.ui.chat.stream import StreamState


class ChatActions(ToolActions):
    # ------------------------------------------------------------------ the open chat's state

    @property
    def chat_id(self) -> int | None:
        return self.session.chat_id

    @property
    def _stream(self) -> "StreamState | None":
        return self.session.stream

    # ------------------------------------------------------------------ sending

    def send(self, text: str | None = None) -> bool:
        """Send the input (or ``text``): saves the user message, then asks the engine for the answer."""
        text = (self.input.toPlainText() if text is None else text).strip()
        if not text or self.session.stream:
            return False
        if self.state.current.target is None:
            self.errors.present({"message": "Choose a model in the Model menu first."})
            return False
        if not self.server.chat_may_send(lambda: self.send(text)):  # the server holds the engine: say so first
            return False
        atts = self.take_attachments()
        if atts is None:
            self.errors.present({"message": "An attachment is still being read; send again in a moment."})
            return False
        self.session.attachments = atts  # fitted into the prompt on a worker, with the tools (tool_send.py)
        pictures = self.chat_page.chips.images()  # checked, scaled and stored by hash on a worker
        if not self.session.send(text, pictures):
            self.session.attachments = []
            return False
        self.input.clear()
        if atts or pictures:
            self.chat_page.chips.clear()
        return True

    def escape(self) -> None:
        """Esc, from anywhere in the window: stop the answer; else leave the search or the edit."""
        if self.adapter.current or self.session.stream:
            self.stop()
        elif self.search.hasFocus() or self.sidebar.results.hasFocus():
            self.sidebar.clear_search()
        elif self.session.editing is not None:
            self.cancel_edit()

    def stop(self) -> None:
        self.session.stop()

    def regenerate(self, message_id: int | None = None) -> bool:
        if not self.server.chat_may_send(lambda: self.regenerate(message_id)):
            return False
        ok = self.session.regenerate(message_id if isinstance(message_id, int) else None)
        if ok:
            self.input.setFocus()  # Esc then stops it; the Regenerate button is gone while it streams
        return ok

    def edit_message(self, message_id: int) -> None:
        text = self.session.edit_message(message_id)
        if text is not None:
            self.input.setPlainText(text)
            self.input.setFocus()

    def edit_last(self) -> None:
        mid = self.session.last_user_message()
        if mid is not None:
            self.edit_message(mid)

    def cancel_edit(self) -> None:
        if self.session.editing is not None:
            self.input.clear()
        self.session.cancel_edit()

    def switch_branch(self, message_id: int, step: int) -> None:
        self.session.switch_branch(message_id, step)

    def copy_last_answer(self) -> None:
        text = self.session.last_answer_text()
        if text:
            self._clipboard().setText(text)
            self.statusBar().showMessage("Copied the last answer.", 3000)

    def _on_busy(self, busy: bool) -> None:
        self.chat_page.set_busy(busy)
        self.regen_action.setEnabled(not busy)

    def _on_answer_finished(self, ev: P.Finished) -> None:
        self.status.answer_finished(ev.stats, len(ev.dropped))

    def _on_answer_failed(self, error: dict[str, Any]) -> None:
        if error.get("code") == "engine_crashed":
            self._crashed = True  # the status bar says so from the app state; the banner goes once it is back
            self.status.clear_chat_numbers()
        self.errors.present(error)

    # ------------------------------------------------------------------ chats

    def focus_search(self) -> None:
        self.show_page("chats")
        if not self.sidebar.isVisible():
            self.toggle_sidebar()
        self.sidebar.focus_search()

    def focus_input(self) -> None:
        self.show_page("chats")
        self.input.setFocus()

    def new_chat(self) -> None:
        self.session.new_chat()
        self.input.setFocus()

    def open_chat(self, chat_id: int) -> None:
        self.session.open_chat(chat_id)

    def open_hit(self, chat_id: int, message_id: int, in_thinking: bool = False) -> None:
        """A search result: open its chat on the branch holding the message, scrolled to it (with its thinking
        open when the words were found there)."""
        if self.chats.chat(chat_id) is None:
            return
        self.session.open_chat(chat_id, leaf=message_id or None)
        if message_id:
            if in_thinking:
                self.view.open_thinking(message_id)
            self.view.scroll_to_message(message_id)

    def _on_chat_changed(self, chat_id: int | None) -> None:
        self.sidebar.select(chat_id)
        self._show_chat_numbers()
        self._update_empty()

    def _show_chat_numbers(self, n_ctx: int | None = None) -> None:
        """The status bar's speed and context use come from this chat's last answer (hidden when none);
        ``n_ctx``: a model was just (re)loaded with this context, which is now the total."""
        last = next((m for m in reversed(self.model.messages) if m.role == "assistant" and m.stats), None)
        if last is None:
            self.status.clear_chat_numbers()
            return
        s = last.stats
        if n_ctx is None:  # after a (re)load the last answer's speed was another model's: not shown
            self.status.speed.setText(f"{s.get('tokens_per_s', 0):.1f} tok/s · first token "
                                      f"{s.get('ttft_s', 0) * 1000:.0f} ms" if s.get("tokens_per_s") else "")
        self.status.show_context(s.get("context_used"), n_ctx or s.get("context_total"),
                                 len(s.get("dropped_ids", [])), s.get("reasoning_tokens"))

    def rename_chat(self, chat_id: int, title: str | None = None) -> None:
        if title is None:
            c = self.chats.chat(chat_id)
            title, ok = QInputDialog.getText(self, "Rename chat", "Title:", text=c.title if c else "")
            if not ok:
                return
        self.session.rename_chat(chat_id, title)

    def delete_chat(self, chat_id: int, *, confirm: bool = True) -> bool:
        if self.session.stream and self.session.stream.chat_id == chat_id:
            self.errors.present({"message": "Stop the answer being written before deleting its chat."})
            return False
        if confirm and not self._confirm_delete(chat_id):
            return False
        return self.session.delete_chat(chat_id)

    def _confirm_delete(self, chat_id: int) -> bool:
        c = self.chats.chat(chat_id)
        box = QMessageBox(QMessageBox.Icon.Question, "Delete chat",
                          f"Delete “{c.title if c else ''}” and all its messages?",
                          QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, self)
        box.setDefaultButton(QMessageBox.StandardButton.No)  # Enter on a stray Del keeps the chat
        self._delete_box = box
        return box.exec() == QMessageBox.StandardButton.Yes

    def export_chat(self, chat_id: int, fmt: str, path: str | None = None) -> Path | None:
        """Markdown or JSON with every branch; the branch shown in the app is marked."""
        c = self.chats.chat(chat_id)
        if c is None:
            return None
        if path is None:
            safe = "".join(ch if ch.isalnum() or ch in " -_" else "_" for ch in c.title).strip() or "chat"
            path, _ = QFileDialog.getSaveFileName(self, "Export chat", str(Path.home() / f"{safe}.{fmt}"),
                                                  "Markdown (*.md)" if fmt == "md" else "JSON (*.json)")
            if not path:
                return None
        try:  # Markdown gets the chat's images beside it (<name>_files/)
            self.chats.export_to(chat_id, fmt, path)
        except OSError as exc:
            self.errors.present({"message": f"Could not write {path}: {exc.strerror or exc}"})
            return None
        self.statusBar().showMessage(f"Exported to {path} (all branches)", 5000)
        return Path(path)

    # ------------------------------------------------------------------ welcome text, links

    def open_link(self, url: QUrl) -> bool:
        """A link in an answer: http(s) only, after the user confirmed."""
        return confirm_link(self, url)
