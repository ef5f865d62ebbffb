"""Window sizes that fit the screen: no window or dialog larger than the available area (HiDPI included)."""
from __future__ import annotations

from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QWidget


def available(widget: QWidget):  # noqa: ANN201 - QRect
    screen = widget.screen() or QGuiApplication.primaryScreen()
    return screen.availableGeometry()


def fit_to_screen(widget: QWidget, margin: int = 0) -> None:
    """Shrink ``widget`` to the available screen area (logical pixels, so QT_SCALE_FACTOR=2 halves it) and move
    it inside. Minimum sizes are capped too: a layout's minimum must not push Save off the screen."""
    area = available(widget)
    # The window manager's frame (title bar, borders) counts: known once shown, else a typical title bar.
    frame = widget.frameGeometry().size() - widget.size() if widget.isVisible() else None
    fw, fh = (frame.width(), frame.height()) if frame is not None and frame.height() > 0 else (0, 32)
    w = min(widget.width(), area.width() - margin - fw)
    h = min(widget.height(), area.height() - margin - fh)
    widget.setMinimumSize(min(widget.minimumWidth(), area.width()), min(widget.minimumHeight(), area.height()))
    widget.resize(max(200, w), max(150, h))
    if not widget.isVisible():
        return  # placed by the window manager when shown; fit_to_screen runs again then
    geo = widget.frameGeometry()
    x = min(max(geo.x(), area.x()), area.right() - geo.width() + 1)
    y = min(max(geo.y(), area.y()), area.bottom() - geo.height() + 1)
    widget.move(max(area.x(), x), max(area.y(), y))
