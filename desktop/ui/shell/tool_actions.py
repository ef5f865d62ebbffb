"""The main window's tools (MCP) and attachments: set up, the Tools… dialog, closing. GUI thread.

A mixin of :class:`MainWindow` (through :class:`ChatActions`). ``setup_tools`` runs once while the menus are
built: one :class:`ToolSend` (one MCP manager, one permission policy and broker) for the window's lifetime,
handed to the chat session, which lets it take over a send that has attachments or tool servers.
"""
from __future__ import annotations

from typing import Any

from desktop.engine.chats.attachments import engine_token_counter
from desktop.ui.chat.tool_send import ToolSend
from desktop.ui.tools.mcp_settings import McpSettingsDialog
from desktop.ui.tools.permission_dialog import PermissionBroker


class ToolActions:
    tool_send: ToolSend

    def setup_tools(self) -> None:
        self.tool_send = ToolSend(PermissionBroker(self), self)
        self.session.set_tool_send(self.tool_send)
        self.session.notice.connect(lambda t: self.statusBar().showMessage(t, 10000))
        chips = self.chat_page.chips
        chips.failed.connect(lambda msg: self.errors.present({"message": msg}))
        # Chips count with the loaded model's tokenizer (on their worker); the estimate when none is loaded.
        chips.set_token_counter(engine_token_counter(self.adapter, timeout_s=10.0))

    def open_tools(self) -> McpSettingsDialog:
        """Chat ▸ Tools…: the MCP servers, and which ones this chat uses."""
        ts = self.tool_send
        dlg = McpSettingsDialog(ts.manager_for, chat_id=self.chat_id, parent=self)
        # Servers or this chat's choice changed: read both again (a new manager when the servers changed).
        dlg.saved.connect(lambda _servers: ts.refresh())
        dlg.chat_servers_changed.connect(lambda _cid, _names: ts.refresh())
        self._tools_dialog = dlg
        dlg.open()
        return dlg

    def attach_files(self) -> None:
        self.chat_page.chips.pick_files()

    def take_attachments(self) -> list[Any] | None:
        """The loaded attachments for the message being sent; None while a file is still being read."""
        chips = self.chat_page.chips
        if chips.pending():
            return None
        return chips.attachments()

    def closeEvent(self, e: Any) -> None:  # noqa: N802 - MainWindow.closeEvent calls this through super()
        self.tool_send.close()  # stops the MCP servers this app started
        super().closeEvent(e)  # type: ignore[misc]
