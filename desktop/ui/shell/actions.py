"""The window's menus and keyboard shortcuts: every action is in a menu, and the menu shows its shortcut."""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import QMenu

from desktop.ui.theme import MODES, theme

if TYPE_CHECKING:
    from desktop.ui.shell.main_window import MainWindow


def _act(win: "MainWindow", menu: QMenu, text: str, slot: Callable[[], object], shortcut: str | None = None,
         *, checkable: bool = False) -> QAction:
    a = QAction(text, win, checkable=checkable)
    if shortcut:
        a.setShortcut(QKeySequence(shortcut))
        # Window-wide: Esc stops an answer wherever the focus is (after clicking Regenerate, in the list…).
        a.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
    a.triggered.connect(lambda _=False: slot())
    menu.addAction(a)
    win.addAction(a)  # its shortcut works before the menu was ever opened
    return a


def build_menus(win: "MainWindow") -> None:
    mb = win.menuBar()
    chat = mb.addMenu("&Chat")
    win.new_action = _act(win, chat, "&New chat", win.new_chat, "Ctrl+N")
    win.find_action = _act(win, chat, "&Find in chats", win.focus_search, "Ctrl+F")
    chat.addSeparator()
    win.focus_input_action = _act(win, chat, "&Message box", win.focus_input, "Ctrl+L")
    win.regen_action = _act(win, chat, "&Regenerate answer", win.regenerate, "Ctrl+R")
    win.copy_answer_action = _act(win, chat, "&Copy last answer", win.copy_last_answer, "Ctrl+Shift+C")
    win.edit_last_action = _act(win, chat, "&Edit last message", win.edit_last, None)
    win.stop_action = _act(win, chat, "&Stop answer", win.escape, "Esc")
    chat.addSeparator()
    win.attach_action = _act(win, chat, "&Attach files…", win.attach_files, "Ctrl+Shift+A")
    win.tools_action = _act(win, chat, "&Tools…", win.open_tools, "Ctrl+T")
    win.setup_tools()
    chat.addSeparator()
    win.rename_action = _act(win, chat, "Re&name…", lambda: win.chat_id and win.rename_chat(win.chat_id), "F2")
    win.delete_action = _act(win, chat, "&Delete…", lambda: win.chat_id and win.delete_chat(win.chat_id), "Del")
    _act(win, chat, "Export as &Markdown…", lambda: win.chat_id and win.export_chat(win.chat_id, "md"),
         "Ctrl+Shift+E")
    _act(win, chat, "Export as &JSON…", lambda: win.chat_id and win.export_chat(win.chat_id, "json"))
    chat.addSeparator()
    win.quit_action = _act(win, chat, "&Quit", win.close, "Ctrl+Q")

    view = mb.addMenu("&View")
    win.settings_action = _act(win, view, "Chat &settings panel", win.toggle_settings_panel, "Ctrl+,",
                               checkable=True)
    win.sidebar_action = _act(win, view, "Chat &list", win.toggle_sidebar, "Ctrl+B", checkable=True)
    win.sidebar_action.setChecked(True)
    win.go_menu = view.addMenu("&Go to")
    view.addSeparator()
    theme_menu = view.addMenu("&Theme")
    group = QActionGroup(win)
    win.theme_actions = {}
    for mode, label in zip(MODES, ("Follow the &system", "&Light", "&Dark")):
        a = _act(win, theme_menu, label, lambda m=mode: win.set_theme(m), checkable=True)
        a.setChecked(theme.mode == mode)
        group.addAction(a)
        win.theme_actions[mode] = a
    view.addSeparator()
    _act(win, view, "Scroll &up", lambda: win.chat_page.view.scroll_key(Qt.Key.Key_PageUp), "PgUp")
    _act(win, view, "Scroll &down", lambda: win.chat_page.view.scroll_key(Qt.Key.Key_PageDown), "PgDown")
    _act(win, view, "To the &top", lambda: win.chat_page.view.scroll_key(Qt.Key.Key_Home), "Ctrl+Home")
    _act(win, view, "To the &end", lambda: win.chat_page.view.scroll_key(Qt.Key.Key_End), "Ctrl+End")


def build_help_menu(win: "MainWindow") -> None:
    help_menu = win.menuBar().addMenu("&Help")
    win.show_log_action = _act(win, help_menu, "Show &log", win.show_log)
    _act(win, help_menu, "&Keyboard shortcuts", win.show_shortcuts, "F1")
    win.about_action = _act(win, help_menu, "&About Desktop Chat", win.show_about)
