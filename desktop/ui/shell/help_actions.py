"""The Help menu's actions: the log file, the keyboard shortcuts, About. GUI thread (a mixin of MainWindow)."""
from __future__ import annotations

import html
import platform

from PySide6.QtCore import QUrl, qVersion
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QMessageBox

from desktop.engine import logs


class HelpActions:
    def show_log(self) -> bool:
        """Open the folder of the log file (the file itself may not exist before the first line)."""
        return QDesktopServices.openUrl(QUrl.fromLocalFile(str(logs.log_path().parent)))

    def shortcuts(self) -> list[tuple[str, str]]:
        """(action, shortcut) for every action that has one: the window's one action table."""
        return self.actions.shortcuts()

    def show_shortcuts(self) -> QMessageBox:
        rows = "".join(f"<tr><td>{html.escape(t)}</td><td style='padding-left:16px'><b>{html.escape(k)}</b>"
                       f"</td></tr>" for t, k in self.shortcuts())
        box = QMessageBox(QMessageBox.Icon.NoIcon, "Keyboard shortcuts", f"<table>{rows}</table>",
                          QMessageBox.StandardButton.Close, self)
        box.open()
        self._shortcuts_box = box
        return box

    def show_about(self) -> QMessageBox:
        from importlib.metadata import PackageNotFoundError
        from importlib.metadata import version as dist_version

        try:
            version = dist_version("desktop-chat")
        except PackageNotFoundError:
            version = "(from source)"
        lib = getattr(self.loaded, "llama_cpp_version", "") or "not loaded yet"
        box = QMessageBox(QMessageBox.Icon.Information, "About Desktop Chat",
                          f"<b>Desktop Chat</b> {html.escape(str(version))}<br>Local LLM chat on llama.cpp.<br><br>"
                          f"llama.cpp (llama-cpp-python): {html.escape(lib)}<br>Qt {qVersion()} · Python "
                          f"{platform.python_version()}<br>Log: {html.escape(str(logs.log_path()))}",
                          QMessageBox.StandardButton.Close, self)
        box.open()
        self._about_box = box
        return box
