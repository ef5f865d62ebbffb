"""The look of the model views (hub search, repo page, picker, library, welcome), kept in ONE place.

The colours come from the app's one theme (``desktop/ui/theme.py``): accent, surface, border, text and muted
are the theme's, and the views re-style themselves when the theme switches (light/dark/system). What is only
the model views' (badge tones, the card delegate that paints list rows as cards, number formatting) lives here.
GUI thread only (painting), except the plain formatting helpers, which run anywhere.
"""
from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QRectF, QSize, Qt
from PySide6.QtGui import (
    QColor,
    QFont,
    QFontMetrics,
    QIcon,
    QPainter,
    QPainterPath,
    QPalette,
)
from PySide6.QtWidgets import QStyle, QStyledItemDelegate, QStyleOptionViewItem, QWidget

from desktop.engine.hub.hardware import GiB
from desktop.ui.theme import RADIUS, Colors, theme

# Roles every card model answers (DisplayRole is the card's title).
SubtitleRole = Qt.ItemDataRole.UserRole + 101  # str: the grey line under the title
BadgesRole = Qt.ItemDataRole.UserRole + 102  # list[tuple[text, tone]]: pills on the right
HighlightRole = Qt.ItemDataRole.UserRole + 103  # bool: recommended / current, drawn with an accent edge
KeyRole = Qt.ItemDataRole.UserRole + 104  # the row's id (repo id, profile id, quant, model id)

# tone -> (light background, dark background, text light, text dark)
TONES = {
    "good": ("#dcf5e3", "#1d3b27", "#17663a", "#8ee0aa"),
    "ok": ("#e0f0fb", "#1b3347", "#165a8a", "#9ccff5"),
    "warn": ("#fdf0d5", "#45361a", "#8a5a00", "#f3cd7c"),
    "bad": ("#fde2e1", "#4a2222", "#a3211d", "#f5a3a0"),
    "muted": ("#ececef", "#34353a", "#4d4f57", "#c2c4cc"),
    "accent": ("#e8e3fd", "#312a52", "#4b36b8", "#c5b8ff"),
    "star": ("#6b52e0", "#7b64f0", "#ffffff", "#ffffff"),  # the recommended pick: solid accent
}
#: Marks a model that takes images (a multimodal projector goes with it): Models page, picker, repo page.
VISION_BADGE = ("Vision", "ok")
REASONING_BADGE = ("Reasoning", "accent")  # thinks before it answers (Qwen3, gpt-oss, R1 distills, Magistral)


def accent() -> str:
    """The theme's accent colour (changes with light/dark)."""
    return theme.colors.accent



# Fit.kind (desktop.engine.hub.fit) -> the words and tone of its badge.
FIT_BADGE = {
    "gpu": ("Fits", "good"),
    "cpu": ("Fits in RAM", "ok"),
    "partial": ("Partial offload", "warn"),
    "none": ("Won't fit", "bad"),
    "unknown": ("Fit unknown", "muted"),
}

# Approximate bits per weight of llama.cpp quant types, for a size estimate before the file is listed.
BITS_PER_WEIGHT = {"Q2_K": 2.6, "Q3_K_M": 3.9, "Q4_0": 4.5, "Q4_1": 5.0, "Q4_K_M": 4.85, "Q4_K_S": 4.6,
                   "Q5_K_M": 5.7, "Q5_0": 5.5, "Q6_K": 6.6, "Q8_0": 8.5, "F16": 16.0, "BF16": 16.0, "F32": 32.0,
                   # gpt-oss's MXFP4 files keep attention and embeddings at 8-16 bits: 12.1 GB for 20.9B weights
                   "MXFP4": 4.63}


def fit_badge(fit: dict[str, Any] | Any | None) -> tuple[str, str]:
    kind = (fit.get("kind") if isinstance(fit, dict) else getattr(fit, "kind", None)) or "unknown"
    return FIT_BADGE.get(kind, FIT_BADGE["unknown"])


def human_size(n: float | None, mib_digits: int = 0) -> str:
    """``n`` bytes in KiB, MiB or GiB ("?" when unknown); ``mib_digits``: decimals for MiB (a download's
    progress and speed show one)."""
    if not n:
        return "?"
    if n >= GiB:
        return f"{n / GiB:.1f} GiB"
    if n >= 1 << 20:
        return f"{n / (1 << 20):.{mib_digits}f} MiB"
    return f"{n / 1024:.0f} KiB"


def human_count(n: int) -> str:
    for div, suffix in ((1_000_000_000, "B"), (1_000_000, "M"), (1_000, "k")):
        if n >= div:
            return f"{n / div:.1f}".rstrip("0").rstrip(".") + suffix
    return str(n)


def params_text(n: int | float | None) -> str | None:
    """494032768 -> "0.5B"; 7.6e9 -> "7.6B"; None when unknown."""
    if not n:
        return None
    if n >= 1e9:
        return f"{n / 1e9:.1f}".rstrip("0").rstrip(".") + "B"
    return f"{n / 1e6:.0f}M"


def age_text(iso: str | None, now: float | None = None) -> str | None:
    if not iso:
        return None
    try:
        ts = datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
    d = (now or time.time()) - ts
    if d < 3600:
        return "updated just now"
    if d < 86400:
        return f"updated {int(d // 3600)} h ago"
    if d < 86400 * 60:
        return f"updated {int(d // 86400)} days ago"
    return "updated " + time.strftime("%b %Y", time.gmtime(ts))


def estimate_size(params_b: float, quant: str | None) -> int | None:
    """Bytes of a ``quant`` GGUF of a ``params_b``-billion model (an estimate: the listing has the truth)."""
    bpw = BITS_PER_WEIGHT.get((quant or "").upper())
    return int(params_b * 1e9 * bpw / 8) if params_b and bpw else None


def icon(name: str, color: str | None = None, **kw: Any) -> QIcon:
    """A qtawesome icon (e.g. "mdi6.magnify"); an empty icon if qtawesome or the glyph is missing."""
    try:
        return theme.icon(name, color, **kw) if not kw else _qta_icon(name, color or theme.colors.muted, **kw)
    except Exception:  # noqa: BLE001 - an icon is decoration: never let it break a view
        return QIcon()


def _qta_icon(name: str, color: str, **kw: Any) -> QIcon:
    import qtawesome

    return qtawesome.icon(name, color=color, **kw)


def is_dark(widget: QWidget | None = None) -> bool:
    if theme.applied is not None:  # the app's theme decides, not a widget's possibly stale palette
        return theme.colors.name == "dark"
    pal = widget.palette() if widget is not None else QPalette()
    return pal.color(QPalette.ColorRole.Window).lightness() < 128


def tone_colors(tone: str, dark: bool) -> tuple[QColor, QColor]:
    bg_l, bg_d, fg_l, fg_d = TONES.get(tone, TONES["muted"])
    return QColor(bg_d if dark else bg_l), QColor(fg_d if dark else fg_l)


def badge_css(tone: str, dark: bool = False) -> str:
    bg, fg = tone_colors(tone, dark)
    return (f"background:{bg.name()}; color:{fg.name()}; border-radius:9px; padding:2px 9px; "
            f"font-weight:600;")


def style(c: Colors) -> str:
    """The model views' stylesheet in the theme's colours ``c``."""
    r = RADIUS
    return f"""
QLineEdit#search {{ border: 1px solid {c.border}; border-radius: {r['md']}px; padding: 8px 12px; font-size: 14px;
                   background: {c.surface}; color: {c.text}; }}
QLineEdit#search:focus {{ border: 2px solid {c.accent}; padding: 7px 11px; }}
QPushButton#primary {{ background: {c.accent}; color: {c.on_accent}; border: none; border-radius: 8px;
                       padding: 7px 16px; font-weight: 600; }}
QPushButton#primary:disabled {{ background: {c.border}; color: {c.muted}; }}
QPushButton#primary:focus {{ border: 2px solid {c.text}; padding: 5px 14px; }}
QPushButton#secondary, QToolButton#secondary {{ border: 1px solid {c.border}; border-radius: 8px;
                        padding: 6px 12px; background: {c.surface}; color: {c.text}; }}
QPushButton#secondary:hover {{ border-color: {c.accent}; background: {c.hover}; }}
QPushButton#secondary:disabled {{ color: {c.muted}; }}
QPushButton#secondary:focus, QToolButton#secondary:focus {{ border: 2px solid {c.accent}; padding: 5px 11px; }}
QPushButton#link {{ border: none; color: {c.accent}; font-weight: 600; text-align: left; padding: 2px; }}
QFrame#panel {{ border: 1px solid {c.border}; border-radius: 12px; background: {c.surface}; }}
QFrame#errorPanel {{ border: 1px solid {c.danger}; border-radius: 12px; background: {c.surface}; }}
QLabel#title {{ font-size: 18px; font-weight: 700; color: {c.text}; }}
QLabel#muted {{ color: {c.muted}; }}
QListView#cards {{ border: 2px solid transparent; border-radius: 8px; background: transparent; }}
QListView#cards:focus {{ border-color: {c.accent}; }}
QListView#cards QScrollBar:vertical {{ width: 8px; background: transparent; margin: 2px; }}
QListView#cards QScrollBar::handle:vertical {{ background: {c.border}; border-radius: 3px; min-height: 28px; }}
QListView#cards QScrollBar::add-line:vertical, QListView#cards QScrollBar::sub-line:vertical {{ height: 0; }}
QListView#cards QScrollBar::add-page:vertical, QListView#cards QScrollBar::sub-page:vertical {{
    background: transparent; }}
"""




def apply_style(widget: QWidget) -> None:
    """Give a top-level model view its stylesheet (children inherit it), again whenever the theme switches."""
    widget.setStyleSheet(style(theme.colors))

    def restyle(c: Colors, ref: Any = __import__("weakref").ref(widget)) -> None:
        w = ref()
        try:
            if w is not None:
                w.setStyleSheet(style(c))
        except RuntimeError:  # deleted on the C++ side
            pass

    theme.changed.connect(restyle)
    widget._hub_restyle = restyle  # type: ignore[attr-defined]  # keeps the slot alive with the widget


class CardDelegate(QStyledItemDelegate):
    """Paints a list row as a rounded card: bold title, grey subtitle, pills on the right."""

    PAD = 12
    RADIUS = 10.0

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex) -> QSize:  # noqa: N802
        fm = QFontMetrics(option.font)
        return QSize(320, fm.height() * 2 + self.PAD * 2 + 10)

    def paint(self, p: QPainter, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex) -> None:
        p.save()
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        # The theme's colours, not the view's palette: a card list has a transparent background (its
        # stylesheet), which would make the cards' Base colour transparent too.
        c = theme.colors
        dark = is_dark()
        rect = QRectF(option.rect).adjusted(2, 3, -2, -3)
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        hover = bool(option.state & QStyle.StateFlag.State_MouseOver)
        border = QColor(c.border)
        accent = QColor(c.accent)
        if selected:
            fill = QColor(accent)
            fill.setAlpha(40 if not dark else 70)
            base = fill
            border = accent
        elif hover:
            border = QColor(accent)
            border.setAlpha(150)
        path = QPainterPath()
        path.addRoundedRect(rect, self.RADIUS, self.RADIUS)
        p.fillPath(path, QColor(c.hover) if hover and not selected else QColor(c.surface))
        if selected:
            p.fillPath(path, base)
        p.setPen(border)
        p.drawPath(path)
        if index.data(HighlightRole):
            edge = QPainterPath()
            edge.addRoundedRect(QRectF(rect.left(), rect.top(), 5, rect.height()), 2.5, 2.5)
            p.fillPath(edge, accent)

        # Badges, right to left, so the title gets what is left.
        small = QFont(option.font)
        small.setPointSizeF(max(option.font.pointSizeF() * 0.85, 7.0))
        small.setBold(True)
        sfm = QFontMetrics(small)
        x = rect.right() - self.PAD
        pill_h = sfm.height() + 6
        for text, tone in reversed(list(index.data(BadgesRole) or [])):
            w = sfm.horizontalAdvance(text) + 16
            r = QRectF(x - w, rect.center().y() - pill_h / 2, w, pill_h)
            bg, fg = tone_colors(tone, dark)
            pill = QPainterPath()
            pill.addRoundedRect(r, pill_h / 2, pill_h / 2)
            p.fillPath(pill, bg)
            p.setFont(small)
            p.setPen(fg)
            p.drawText(r, Qt.AlignmentFlag.AlignCenter, text)
            x = r.left() - 6

        left = rect.left() + self.PAD + 4
        width = max(10.0, x - left - 8)
        title_font = QFont(option.font)
        title_font.setBold(True)
        fm = QFontMetrics(title_font)
        top = rect.top() + self.PAD - 2
        p.setFont(title_font)
        p.setPen(QColor(c.text))
        title = fm.elidedText(str(index.data(Qt.ItemDataRole.DisplayRole) or ""), Qt.TextElideMode.ElideRight,
                              int(width))
        p.drawText(QRectF(left, top, width, fm.height()), Qt.AlignmentFlag.AlignLeft, title)
        sub = str(index.data(SubtitleRole) or "")
        if sub:
            p.setFont(option.font)
            p.setPen(QColor(c.muted))
            ofm = QFontMetrics(option.font)
            p.drawText(QRectF(left, top + fm.height() + 4, width, ofm.height()), Qt.AlignmentFlag.AlignLeft,
                       ofm.elidedText(sub, Qt.TextElideMode.ElideRight, int(width)))
        p.restore()
