"""MCP servers: edit ``mcp.json``, see each server's tools, and choose the servers of the current chat.

GUI thread for the widgets; reading and writing the config, starting servers and listing their tools run on
the thread pool (``ui/workers.py``). Chat ▸ Tools… opens ``McpSettingsDialog(manager_factory, chat_id, parent)``;
``manager_factory(servers)`` returns the app's one ``McpManager`` for those servers (the dialog only lists
tools through it). Signals: ``saved(dict)`` with the
new ``{name: ServerConfig}`` after a valid save, ``chat_servers_changed(object, list)`` with the chat id and its
enabled server names.
"""
from __future__ import annotations

import json
from typing import Any, Callable

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from desktop.engine.errors import AppError
from desktop.engine.tools import config as mcp_config
from desktop.engine.tools.config import ChatServerChoice, ServerConfig
from desktop.ui.workers import JobKeeper

EXAMPLE = {"mcpServers": {"example": {"command": "uvx", "args": ["mcp-server-time"]}}}


class McpSettingsDialog(QDialog):
    saved = Signal(object)
    chat_servers_changed = Signal(object, list)

    def __init__(self, manager_factory: Callable[[dict[str, ServerConfig]], Any] | None = None,
                 chat_id: int | str | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Tools (MCP servers)")
        self.manager_factory = manager_factory
        self.chat_id = chat_id
        self.servers: dict[str, ServerConfig] = {}
        self._jobs = JobKeeper(self)  # each worker job held until its answer
        lay = QVBoxLayout(self)
        lay.addWidget(QLabel(f"Servers in {mcp_config.config_path()} (the mcpServers format other MCP clients use):"))
        self.editor = QPlainTextEdit()
        self.editor.setObjectName("mcpJson")
        lay.addWidget(self.editor)
        self.error = QLabel("")
        self.error.setWordWrap(True)
        self.error.setObjectName("mcpError")
        lay.addWidget(self.error)
        self.save_button = QPushButton("Check and save")
        self.save_button.clicked.connect(self.save)
        lay.addWidget(self.save_button)
        hint = "Tick the servers this chat may use." if chat_id is not None else ""
        lay.addWidget(QLabel("Servers and their tools. " + hint))
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(["Server / tool", "Description"])
        self._populating = False
        self.tree.itemChanged.connect(self._item_changed)
        lay.addWidget(self.tree)
        self.refresh_button = QPushButton("Start servers and list tools")
        self.refresh_button.clicked.connect(self.refresh_tools)
        lay.addWidget(self.refresh_button)
        box = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        box.rejected.connect(self.reject)
        box.accepted.connect(self.accept)
        lay.addWidget(box)
        self.loaded = False
        self._start(self._read, self._on_read)

    # ------------------------------------------------------------------ jobs

    def _start(self, fn: Callable[[], Any], done: Callable[[Any], None]) -> None:
        self._jobs.start(fn, done, self._on_error)

    def _on_error(self, exc: BaseException) -> None:
        self.error.setText(exc.message if isinstance(exc, AppError) else str(exc))

    @staticmethod
    def _read() -> tuple[str, dict[str, ServerConfig], dict[str, list[str]]]:
        path = mcp_config.config_path()
        text = path.read_text(encoding="utf-8") if path.exists() else json.dumps(EXAMPLE, indent=2)
        try:
            servers = mcp_config.load_config(path) if path.exists() else {}
        except AppError:
            servers = {}  # shown as text; the error appears when the user checks it
        return text, servers, {}

    def _on_read(self, result: tuple[str, dict[str, ServerConfig], Any]) -> None:
        text, servers, _ = result
        self.editor.setPlainText(text)
        self._start(lambda: (servers, self._enabled(servers)), self._show_servers)

    def _enabled(self, servers: dict[str, ServerConfig]) -> list[str]:
        if self.chat_id is None:
            return [n for n, s in servers.items() if not s.disabled]
        return ChatServerChoice().enabled(self.chat_id, servers)

    # ------------------------------------------------------------------ servers

    def _show_servers(self, result: tuple[dict[str, ServerConfig], list[str]]) -> None:
        servers, enabled = result
        self.servers = servers
        self._populating = True  # check states set here are not the user's choice
        self.tree.clear()
        for name, cfg in servers.items():
            item = QTreeWidgetItem([name, cfg.describe()])
            item.setData(0, Qt.ItemDataRole.UserRole, name)
            if self.chat_id is not None:
                item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
                item.setCheckState(0, Qt.CheckState.Checked if name in enabled else Qt.CheckState.Unchecked)
            self.tree.addTopLevelItem(item)
        self._populating = False
        self.loaded = True

    def server_item(self, name: str) -> QTreeWidgetItem | None:
        for i in range(self.tree.topLevelItemCount()):
            item = self.tree.topLevelItem(i)
            if item.data(0, Qt.ItemDataRole.UserRole) == name:
                return item
        return None

    def _item_changed(self, item: QTreeWidgetItem, column: int) -> None:
        if self._populating or self.chat_id is None or item.parent() is not None or column != 0:
            return
        names = [self.tree.topLevelItem(i).data(0, Qt.ItemDataRole.UserRole)
                 for i in range(self.tree.topLevelItemCount())
                 if self.tree.topLevelItem(i).checkState(0) == Qt.CheckState.Checked]
        chat_id = self.chat_id
        self._start(lambda: ChatServerChoice().set_enabled(chat_id, names),
                    lambda _r: self.chat_servers_changed.emit(chat_id, names))

    def refresh_tools(self) -> None:
        if self.manager_factory is None or not self.servers:
            return
        manager = self.manager_factory(self.servers)
        names = list(self.servers)
        self.refresh_button.setEnabled(False)
        self._start(lambda: manager.tools(names), self._show_tools)

    def _show_tools(self, result: tuple[list[Any], dict[str, str]]) -> None:
        tools, errors = result
        self.refresh_button.setEnabled(True)
        for name in self.servers:
            item = self.server_item(name)
            if item is None:
                continue
            item.takeChildren()
            for t in (t for t in tools if t.server == name):
                item.addChild(QTreeWidgetItem([t.name, t.description]))
            if name in errors:
                item.addChild(QTreeWidgetItem(["(not available)", errors[name]]))
            item.setExpanded(True)

    # ------------------------------------------------------------------ save

    def save(self) -> None:
        text = self.editor.toPlainText()
        try:
            data = json.loads(text)
        except ValueError as exc:
            self.error.setText(f"{mcp_config.CONFIG_NAME}: not valid JSON ({exc})")
            return
        try:
            servers = mcp_config.parse_config(data, mcp_config.CONFIG_NAME)
        except AppError as exc:
            self.error.setText(exc.message)
            return
        self.error.setText("")

        def write() -> tuple[dict[str, ServerConfig], list[str]]:
            mcp_config.save_config(servers.values())
            return servers, self._enabled(servers)

        def done(result: tuple[dict[str, ServerConfig], list[str]]) -> None:
            self._show_servers(result)
            self.saved.emit(result[0])

        self._start(write, done)
