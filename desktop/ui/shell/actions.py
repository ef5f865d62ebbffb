"""The window's actions in one table: menus, keyboard shortcuts and the F1 list all come from :data:`TABLE`.

Each row names an action by key; the window hands :class:`Actions` a handler per key, and the menus are built
in table order. Keys the composer or a list handles themselves (Enter, Up) are rows without a menu, so the F1
list still names them. Pages added later (View ▸ Go to, Ctrl+<n>) are registered through :meth:`Actions.add`.
Nothing here knows the window's type: it takes a parent widget, a menu bar and callables.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import QMenu, QMenuBar, QWidget

from desktop.ui.theme import MODES, theme


@dataclass(frozen=True)
class Spec:
    key: str
    menu: str  # "&Chat", "&View", "&Model", "&Help"; "" for keys a widget handles itself (listed in F1 only)
    text: str
    shortcut: str | None = None
    checkable: bool = False
    separator: bool = False  # a separator before this entry


TABLE: tuple[Spec, ...] = (
    Spec("new_chat", "&Chat", "&New chat", "Ctrl+N"),
    Spec("find", "&Chat", "&Find in chats", "Ctrl+F"),
    Spec("focus_input", "&Chat", "&Message box", "Ctrl+L", separator=True),
    Spec("regenerate", "&Chat", "&Regenerate answer", "Ctrl+R"),
    Spec("copy_answer", "&Chat", "&Copy last answer", "Ctrl+Shift+C"),
    Spec("edit_last", "&Chat", "&Edit last message"),
    Spec("stop", "&Chat", "&Stop answer", "Esc"),
    Spec("attach", "&Chat", "&Attach files…", "Ctrl+Shift+A", separator=True),
    Spec("tools", "&Chat", "&Tools…", "Ctrl+T"),
    Spec("rename", "&Chat", "Re&name…", "F2", separator=True),
    Spec("delete", "&Chat", "&Delete…", "Del"),
    Spec("export_md", "&Chat", "Export as &Markdown…", "Ctrl+Shift+E"),
    Spec("export_json", "&Chat", "Export as &JSON…"),
    Spec("quit", "&Chat", "&Quit", "Ctrl+Q", separator=True),
    Spec("settings", "&View", "Chat &settings panel", "Ctrl+,", checkable=True),
    Spec("sidebar", "&View", "Chat &list", "Ctrl+B", checkable=True),
    Spec("scroll_up", "&View", "Scroll &up", "PgUp", separator=True),
    Spec("scroll_down", "&View", "Scroll &down", "PgDown"),
    Spec("scroll_top", "&View", "To the &top", "Ctrl+Home"),
    Spec("scroll_end", "&View", "To the &end", "Ctrl+End"),
    Spec("reload_model", "&Model", "&Reload model", "Ctrl+Shift+L"),
    Spec("profile_settings", "&Model", "Profile &settings…"),
    Spec("import_gguf", "&Model", "&Import GGUF from disk…", "Ctrl+I"),
    Spec("show_log", "&Help", "Show &log"),
    Spec("shortcuts", "&Help", "&Keyboard shortcuts", "F1"),
    Spec("about", "&Help", "&About Desktop Chat"),
    Spec("send", "", "Send / new line", "Enter / Shift+Enter"),
    Spec("edit_last_key", "", "Edit the last message (empty box)", "Up"),
)
# Menus in the menu bar, in order. The Model menu lists the profiles above its rows (shell/model_menu.py).
MENUS = ("&Chat", "&View", "&Model", "&Help")


class Actions(QObject):
    """The QActions of :data:`TABLE` for one window, with the menus they live in."""

    def __init__(self, parent: QWidget, menubar: QMenuBar, handlers: Mapping[str, Callable[[], object]]) -> None:
        super().__init__(parent)
        self.parent_widget = parent
        self.by_key: dict[str, QAction] = {}
        self.menus: dict[str, QMenu] = {name: menubar.addMenu(name) for name in MENUS}
        self._extra: list[tuple[str, str]] = []  # (text, shortcut) of actions added later, in order
        for spec in TABLE:
            if not spec.menu:
                continue
            menu = self.menus[spec.menu]
            if spec.separator:
                menu.addSeparator()
            self.by_key[spec.key] = self._make(menu, spec.text, handlers[spec.key], spec.shortcut, spec.checkable)
            if spec.key == "sidebar":
                self.go_menu = self.menus["&View"].addMenu("&Go to")
                self.menus["&View"].addSeparator()
                self.theme_menu = self.menus["&View"].addMenu("&Theme")
        self.by_key["sidebar"].setChecked(True)
        group = QActionGroup(self)
        self.theme_actions: dict[str, QAction] = {}
        set_theme = handlers["theme"]
        for mode, label in zip(MODES, ("Follow the &system", "&Light", "&Dark")):
            a = self._make(self.theme_menu, label, lambda m=mode: set_theme(m), None, True)  # type: ignore[misc]
            a.setChecked(theme.mode == mode)
            group.addAction(a)
            self.theme_actions[mode] = a

    def _make(self, menu: QMenu, text: str, slot: Callable[[], object], shortcut: str | None,
              checkable: bool) -> QAction:
        a = QAction(text, self.parent_widget, checkable=checkable)
        if shortcut:
            a.setShortcut(QKeySequence(shortcut))
            # Window-wide: Esc stops an answer wherever the focus is (after clicking Regenerate, in the list…).
            a.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        a.triggered.connect(lambda _=False: slot())
        menu.addAction(a)
        self.parent_widget.addAction(a)  # its shortcut works before the menu was ever opened
        return a

    def add(self, menu: QMenu, text: str, slot: Callable[[], object], shortcut: str | None = None) -> QAction:
        """An action that is not in the table (a page's Go to entry): it joins the F1 list too."""
        a = self._make(menu, text, slot, shortcut, False)
        if shortcut:
            self._extra.append((text.replace("&", ""), a.shortcut().toString()))
        return a

    def shortcuts(self) -> list[tuple[str, str]]:
        """(action, shortcut) for every row with a shortcut, the table first, then the added ones."""
        rows = []
        for spec in TABLE:
            if not spec.shortcut:
                continue
            a = self.by_key.get(spec.key)
            rows.append((spec.text.replace("&", ""), a.shortcut().toString() if a else spec.shortcut))
        return rows + self._extra
