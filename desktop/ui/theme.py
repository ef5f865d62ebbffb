"""The app's one look: palettes (light, dark), type scale, spacing, radii, one stylesheet, and icons. GUI thread.

Every view takes its colours from here: the QPalette (for widgets that paint themselves, and for the chat
view's dark/light Pygments choice) and one application-wide stylesheet keyed on object names and dynamic
properties, so a view sets ``objectName``/properties and never carries colours of its own. The mode (light,
dark or follow the system) is the user's choice in the app's own settings (QSettings ``appearance/theme``).
Icons come from qtawesome (Material Design Icons), tinted with the palette and re-tinted when the theme
changes.
"""
from __future__ import annotations

import os
import weakref
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QObject, QSettings, Qt, Signal
from PySide6.QtGui import QColor, QGuiApplication, QIcon, QPalette
from PySide6.QtWidgets import QAbstractButton, QApplication

MODES = ("system", "light", "dark")
SETTINGS_KEY = "appearance/theme"


@dataclass(frozen=True)
class Colors:
    name: str
    bg: str  # the conversation
    surface: str  # cards, composer, menus
    sidebar: str  # navigation rail and chat list
    border: str
    text: str
    muted: str
    accent: str
    on_accent: str
    accent_soft: str  # selected items, the user's bubble
    hover: str
    code_bg: str
    notice_bg: str
    notice_text: str
    danger: str


LIGHT = Colors("light", bg="#ffffff", surface="#ffffff", sidebar="#f4f4f6", border="#e3e3e8", text="#1d1d1f",
               muted="#6e6e76", accent="#4f5bd5", on_accent="#ffffff", accent_soft="#eceefc", hover="#e9e9ee",
               code_bg="#f6f7f9", notice_bg="#fff6e0", notice_text="#5c4300", danger="#c62828")
DARK = Colors("dark", bg="#1b1b1f", surface="#26262b", sidebar="#141417", border="#34343b", text="#ececf1",
              muted="#9a9aa5", accent="#8b93ff", on_accent="#101018", accent_soft="#2e3150", hover="#2c2c33",
              code_bg="#111114", notice_bg="#3a3120", notice_text="#f5dfa6", danger="#ff6b6b")

# Type scale (px; Qt scales px by the device pixel ratio, so HiDPI keeps the proportions).
FONT = {"xs": 11, "sm": 12, "base": 14, "lg": 16, "xl": 20, "xxl": 26}
RADIUS = {"sm": 6, "md": 10, "lg": 16, "pill": 999}
COLUMN_MAX = 760  # the conversation's readable width


def resolve(mode: str) -> Colors:
    """``system`` follows the OS colour scheme (Qt 6.5+), light when it is unknown."""
    if mode == "dark":
        return DARK
    if mode == "light":
        return LIGHT
    hints = QGuiApplication.styleHints() if QGuiApplication.instance() else None
    scheme = hints.colorScheme() if hints is not None and hasattr(hints, "colorScheme") else None
    return DARK if scheme == Qt.ColorScheme.Dark else LIGHT


def saved_mode() -> str:
    mode = QSettings().value(SETTINGS_KEY, "system", type=str)
    return mode if mode in MODES else "system"


def qpalette(c: Colors) -> QPalette:
    p = QPalette()
    R = QPalette.ColorRole
    for role, value in ((R.Window, c.sidebar), (R.WindowText, c.text), (R.Base, c.bg), (R.AlternateBase, c.code_bg),
                        (R.Text, c.text), (R.Button, c.surface), (R.ButtonText, c.text), (R.ToolTipBase, c.surface),
                        (R.ToolTipText, c.text), (R.PlaceholderText, c.muted), (R.Highlight, c.accent),
                        (R.HighlightedText, c.on_accent), (R.Link, c.accent), (R.BrightText, c.danger),
                        (R.Mid, c.border), (R.Midlight, c.hover), (R.Dark, c.border), (R.Shadow, c.border)):
        p.setColor(role, QColor(value))
    p.setColor(QPalette.ColorGroup.Disabled, R.Text, QColor(c.muted))
    p.setColor(QPalette.ColorGroup.Disabled, R.ButtonText, QColor(c.muted))
    p.setColor(QPalette.ColorGroup.Disabled, R.WindowText, QColor(c.muted))
    return p


def stylesheet(c: Colors) -> str:
    f, r = FONT, RADIUS
    return f"""
* {{ font-size: {f['base']}px; }}
QMainWindow, QDialog {{ background: {c.bg}; color: {c.text}; }}
QToolTip {{ background: {c.surface}; color: {c.text}; border: 1px solid {c.border}; padding: 4px 6px; }}
QMenuBar {{ background: {c.sidebar}; color: {c.text}; border-bottom: 1px solid {c.border}; }}
QMenuBar::item {{ padding: 4px 10px; border-radius: {r['sm']}px; }}
QMenuBar::item:selected {{ background: {c.hover}; }}
QMenu {{ background: {c.surface}; color: {c.text}; border: 1px solid {c.border}; padding: 4px;
         border-radius: {r['sm']}px; }}
QMenu::item {{ padding: 6px 24px 6px 12px; border-radius: {r['sm']}px; }}
QMenu::item:selected {{ background: {c.accent_soft}; }}
QMenu::separator {{ height: 1px; background: {c.border}; margin: 4px 8px; }}
QStatusBar {{ background: {c.sidebar}; color: {c.muted}; border-top: 1px solid {c.border}; }}
QStatusBar QLabel {{ color: {c.muted}; font-size: {f['sm']}px; }}
QStatusBar::item {{ border: none; }}
#StatusSep {{ background: {c.border}; margin: 4px 2px; }}
QSplitter::handle {{ background: {c.border}; }}
QScrollBar:vertical {{ background: transparent; width: 10px; margin: 2px; }}
QScrollBar::handle:vertical {{ background: {c.border}; border-radius: 4px; min-height: 32px; }}
QScrollBar::handle:vertical:hover {{ background: {c.muted}; }}
QScrollBar:horizontal {{ background: transparent; height: 10px; margin: 2px; }}
QScrollBar::handle:horizontal {{ background: {c.border}; border-radius: 4px; min-width: 32px; }}
QScrollBar::add-line, QScrollBar::sub-line {{ width: 0; height: 0; }}
QScrollBar::add-page, QScrollBar::sub-page {{ background: transparent; }}
QPushButton {{ background: {c.surface}; color: {c.text}; border: 1px solid {c.border};
               border-radius: {r['sm']}px; padding: 6px 14px; }}
QPushButton:hover {{ background: {c.hover}; }}
QPushButton:focus {{ border: 2px solid {c.accent}; padding: 5px 13px; }}
QPushButton:disabled {{ color: {c.muted}; }}
QPushButton[primary="true"] {{ background: {c.accent}; color: {c.on_accent}; border: none; }}
QToolButton {{ background: transparent; color: {c.muted}; border: 2px solid transparent;
               border-radius: {r['sm']}px; padding: 2px; }}
QToolButton:hover {{ background: {c.hover}; color: {c.text}; }}
QToolButton:focus {{ background: {c.hover}; color: {c.text}; border-color: {c.accent}; }}
QToolButton:checked {{ background: {c.accent_soft}; color: {c.accent}; }}
QLineEdit, QSpinBox, QDoubleSpinBox, QComboBox {{ background: {c.surface}; color: {c.text};
    border: 1px solid {c.border}; border-radius: {r['sm']}px; padding: 5px 8px;
    selection-background-color: {c.accent}; selection-color: {c.on_accent}; }}
QLineEdit:focus, QSpinBox:focus, QDoubleSpinBox:focus, QComboBox:focus, QPlainTextEdit:focus {{
    border-color: {c.accent}; }}
QPlainTextEdit, QTextEdit {{ background: {c.surface}; color: {c.text}; border: 1px solid {c.border};
    border-radius: {r['sm']}px; selection-background-color: {c.accent}; selection-color: {c.on_accent}; }}
QSpinBox::up-button, QSpinBox::down-button, QDoubleSpinBox::up-button, QDoubleSpinBox::down-button {{
    width: 0; border: none; }}
QSpinBox, QDoubleSpinBox {{ padding-right: 8px; }}
QSlider::groove:horizontal {{ height: 4px; background: {c.border}; border-radius: 2px; }}
QSlider::sub-page:horizontal {{ background: {c.accent}; border-radius: 2px; }}
QSlider::handle:horizontal {{ background: {c.accent}; width: 14px; height: 14px; margin: -5px 0;
    border-radius: 7px; }}
QProgressBar {{ background: {c.border}; border: none; border-radius: 3px; max-height: 6px; color: transparent; }}
QProgressBar::chunk {{ background: {c.accent}; border-radius: 3px; }}
QCheckBox {{ color: {c.text}; }}
QLabel {{ color: {c.text}; }}
QLabel[muted="true"] {{ color: {c.muted}; font-size: {f['sm']}px; }}
QLabel[heading="true"] {{ font-size: {f['xl']}px; font-weight: 600; }}
QLabel[subheading="true"] {{ font-size: {f['lg']}px; font-weight: 600; }}

#NavRail {{ background: {c.sidebar}; border-right: 1px solid {c.border}; }}
#NavRail QToolButton {{ padding: 6px; border-radius: {r['md']}px; }}
#Sidebar {{ background: {c.sidebar}; border-right: 1px solid {c.border}; }}
#Sidebar QListView {{ background: transparent; border: 2px solid transparent; border-radius: {r['sm']}px;
                      outline: none; }}
#Sidebar QListView:focus {{ border-color: {c.accent}; }}
#Sidebar QListView::item {{ color: {c.text}; padding: 8px 10px; border-radius: {r['sm']}px; }}
#Sidebar QListView::item:hover {{ background: {c.hover}; }}
#Sidebar QListView::item:selected {{ background: {c.accent_soft}; color: {c.text}; }}
#Sidebar QLineEdit {{ border-radius: {r['md']}px; padding: 7px 10px; }}
#NewChat {{ background: {c.accent}; color: {c.on_accent}; border: none; border-radius: {r['md']}px;
            padding: 8px 12px; font-weight: 600; }}
#NewChat:hover {{ background: {c.accent}; }}
#NewChat:focus, #SendButton:focus, #StopButton:focus {{ border: 2px solid {c.text}; }}
#ChatPage, #ChatColumn, #ChatScroll, #ChatContainer {{ background: {c.bg}; }}
#TopBar {{ background: {c.bg}; border-bottom: 1px solid {c.border}; }}
#TopBar QLabel {{ font-size: {f['lg']}px; font-weight: 600; }}
#Composer {{ background: {c.surface}; border: 1px solid {c.border}; border-radius: {r['lg']}px; }}
#Composer QPlainTextEdit {{ background: transparent; border: none; padding: 4px; }}
#SendButton {{ background: {c.accent}; border-radius: 18px; padding: 0; }}
#SendButton:hover {{ background: {c.accent}; }}
#SendButton:disabled {{ background: {c.border}; }}
#StopButton {{ background: {c.text}; border-radius: 18px; padding: 0; }}
#Bubble[role="user"] {{ background: {c.accent_soft}; border-radius: {r['lg']}px; }}
#Bubble[role="assistant"], #Bubble[role="system"] {{ background: transparent; }}
#Bubble[role="marker"] {{ background: transparent; }}
#Who {{ font-weight: 600; color: {c.text}; }}
#MessageStats, #MessageTag {{ color: {c.muted}; font-size: {f['xs']}px; }}
#Marker {{ color: {c.muted}; font-size: {f['sm']}px; }}
#Thinking {{ border-left: 2px solid {c.border}; }}
#Thinking QTextBrowser {{ color: {c.muted}; background: transparent; border: none; }}
#ThinkingToggle {{ color: {c.muted}; border: 1px solid transparent; padding: 2px 6px; }}
#ThinkingToggle:focus {{ border: 1px solid {c.accent}; color: {c.text}; }}
#AttachmentChip {{ color: {c.muted}; background: {c.surface}; border: 1px solid {c.border};
    border-radius: {r['sm']}px; padding: 1px 6px; font-size: {f['xs']}px; }}
#AnswerNotice {{ color: {c.notice_text}; background: {c.notice_bg}; border-radius: {r['sm']}px; padding: 2px 8px;
    font-size: {f['xs']}px; }}
QTextBrowser#MessageText {{ background: transparent; border: none; }}
QTextBrowser#StreamTail {{ background: {c.bg}; border: none; }}
#Bubble[role="user"] QTextBrowser#MessageText {{ background: transparent; }}
#CodeBlock {{ background: {c.code_bg}; border: 1px solid {c.border}; border-radius: {r['md']}px; }}
#CodeBlock QPlainTextEdit {{ background: transparent; border: none; }}
#CodeBlock QLabel {{ color: {c.muted}; font-size: {f['xs']}px; }}
#Banner {{ background: {c.notice_bg}; border-radius: {r['md']}px; }}
#Banner QLabel {{ color: {c.notice_text}; }}
#Empty QLabel {{ color: {c.text}; }}
#SettingsPanel {{ background: {c.sidebar}; border-left: 1px solid {c.border}; }}
#SettingsPanel QLabel[hint="true"] {{ color: {c.muted}; font-size: {f['xs']}px; }}
#SearchResults {{ background: transparent; border: none; outline: none; }}
#SearchResults::item {{ padding: 6px 8px; border-radius: {r['sm']}px; }}
#SearchResults::item:selected {{ background: {c.accent_soft}; color: {c.text}; }}
"""


class _Theme(QObject):
    """The applied theme; ``changed`` fires after a switch so custom-painted parts can refresh."""

    changed = Signal(object)  # Colors

    def __init__(self) -> None:
        super().__init__()
        self.mode = "system"
        self.colors: Colors = LIGHT
        self.applied: Colors | None = None  # None until apply() ran in this process
        self._icons: list[tuple[weakref.ref, str, str]] = []

    def apply(self, mode: str | None = None, app: QApplication | None = None) -> Colors:
        app = app or QApplication.instance()  # type: ignore[assignment]
        self.mode = mode if mode in MODES else saved_mode()
        self.colors = resolve(self.mode)
        if app is not None:
            app.setStyle("Fusion")  # the same metrics everywhere; the stylesheet does the rest
            app.setPalette(qpalette(self.colors))
            app.setStyleSheet(stylesheet(self.colors))
        self.applied = self.colors
        hints = QGuiApplication.styleHints() if app is not None else None
        if hints is not None and hasattr(hints, "colorSchemeChanged") and not getattr(self, "_following", False):
            self._following = True  # "follow the system" follows it live, not only at start-up
            hints.colorSchemeChanged.connect(lambda _s: self.mode == "system" and self.apply("system"))
        self._retint()
        self.changed.emit(self.colors)
        return self.colors

    def set_mode(self, mode: str) -> Colors:
        """The user's choice from the View menu: applied now and remembered."""
        QSettings().setValue(SETTINGS_KEY, mode)
        return self.apply(mode)

    # ---------------------------------------------------------------- icons

    def icon(self, name: str, color: str | None = None) -> QIcon:
        # qtawesome talks Qt through QtPy, which would pick PyQt5/PySide2 first if one is installed too.
        os.environ.setdefault("QT_API", "pyside6")
        try:
            import qtawesome as qta
        except ImportError:  # pragma: no cover - a broken install: text labels still say what a button does
            return QIcon()
        c = self.colors
        return qta.icon(name, color=color or c.muted, color_active=c.text, color_disabled=c.border)

    def set_icon(self, button: QAbstractButton, name: str, color_key: str = "muted") -> None:
        """Give ``button`` the icon ``name`` in the palette colour ``color_key``, re-tinted on theme changes."""
        button.setIcon(self.icon(name, getattr(self.colors, color_key)))
        self._icons = [e for e in self._icons if e[0]() is not None and e[0]() is not button]
        self._icons.append((weakref.ref(button), name, color_key))

    def _retint(self) -> None:
        alive = []
        for ref, name, key in self._icons:
            b = ref()
            if b is None:
                continue
            try:
                b.setIcon(self.icon(name, getattr(self.colors, key)))
            except RuntimeError:  # deleted on the C++ side
                continue
            alive.append((ref, name, key))
        self._icons = alive


theme = _Theme()


def polish(widget: Any) -> None:
    """Re-apply the stylesheet after a dynamic property used in a selector changed."""
    st = widget.style()
    st.unpolish(widget)
    st.polish(widget)
