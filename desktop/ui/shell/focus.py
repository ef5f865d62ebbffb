"""Tab order in reading order: the window's focus moves through what is shown, region by region (the rail, the
sidebar, the page, the settings panel), and within a region row by row, left to right. GUI thread.

Qt's own focus chain follows the order widgets were created in, which after pages, pickers and welcome cards
are added later jumps around the window (and stops on bare scroll areas that show no focus). The order here is
computed from what is visible when Tab is pressed, so Shift+Tab is always the exact reverse of Tab.
"""
from __future__ import annotations

from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QApplication, QScrollArea, QWidget


def _focusable(region: QWidget, window: QWidget) -> list[QWidget]:
    found = []
    for w in region.findChildren(QWidget):
        if not (w.focusPolicy() & Qt.FocusPolicy.TabFocus) or not w.isEnabled() or not w.isVisibleTo(window):
            continue
        if isinstance(w, QScrollArea):  # a container: its contents are the stops (it would show no focus)
            continue
        if w.focusProxy() is not None:
            continue  # its proxy is the stop
        found.append(w)
    if region.focusPolicy() & Qt.FocusPolicy.TabFocus and region.isVisibleTo(window) and region.isEnabled():
        found.append(region)
    return found


def _ordered(widgets: list[QWidget], frame: QWidget) -> list[QWidget]:
    """``widgets`` (all inside ``frame``) in reading order. Whatever sits in a scroll area counts as being where
    the scroll area is, and is ordered inside it by its place in the scrolled contents (scrolled out of view or
    not)."""
    units: list[tuple[QWidget, list[QWidget]]] = []
    groups: dict[QScrollArea, list[QWidget]] = {}
    for w in widgets:
        outer = None
        p = w.parentWidget()
        while p is not None and p is not frame:
            if isinstance(p, QScrollArea) and p.widget() is not None:
                outer = p
            p = p.parentWidget()
        if outer is None:
            units.append((w, [w]))
        else:
            groups.setdefault(outer, []).append(w)
    for area, inner in groups.items():
        units.append((area, _ordered(inner, area.widget())))
    by_place = reading_order([u[0] for u in units], frame)
    members = {id(u[0]): u[1] for u in units}
    return [w for anchor in by_place for w in members[id(anchor)]]


def reading_order(widgets: list[QWidget], frame: QWidget) -> list[QWidget]:
    """Rows top to bottom (widgets whose vertical extents overlap share a row), each left to right."""
    boxes = []
    for w in widgets:
        top_left = w.mapTo(frame, QPoint(0, 0))
        boxes.append((top_left.y(), top_left.y() + max(w.height(), 1), top_left.x(), w))
    boxes.sort(key=lambda b: (b[0] + b[1]) / 2)
    rows: list[list[tuple[int, int, int, QWidget]]] = []
    bottom = 0
    for b in boxes:
        if rows and b[0] < bottom - 2 and (b[0] + b[1]) / 2 < bottom:
            rows[-1].append(b)
            bottom = max(bottom, b[1])
        else:
            rows.append([b])
            bottom = b[1]
    return [b[3] for row in rows for b in sorted(row, key=lambda b: b[2])]


def tab_stops(regions: list[QWidget], window: QWidget) -> list[QWidget]:
    out: list[QWidget] = []
    for r in regions:
        if r is not None and r.isVisibleTo(window):
            out += _ordered(_focusable(r, window), window)
    return out


def move_focus(stops: list[QWidget], forward: bool) -> bool:
    """Focus the stop after (or before) the one holding the focus; False when there is none."""
    if not stops:
        return False
    cur = QApplication.focusWidget()
    i = -1
    w = cur
    while w is not None and i < 0:  # the focus may be inside a stop (a spin box's line edit) or on a proxy
        if w in stops:
            i = stops.index(w)
        w = w.parentWidget()
    if i < 0:
        target = stops[0] if forward else stops[-1]
    else:
        target = stops[(i + (1 if forward else -1)) % len(stops)]
    target.setFocus(Qt.FocusReason.TabFocusReason if forward else Qt.FocusReason.BacktabFocusReason)
    area = target.parentWidget()
    while area is not None:  # scrolled into view, as Qt's own Tab does
        if isinstance(area, QScrollArea):
            area.ensureWidgetVisible(target)
        area = area.parentWidget()
    return True


__all__ = ["tab_stops", "move_focus", "reading_order"]
