"""A one-line label that takes the room it is given and ends in "…" when that is short. GUI thread.

Its minimum width is small, so a long text (a model's name, a repo, a load message) never sets a layout's
minimum: a status bar lays its fields out at their minimum widths and a top-level window grows to its layout's
minimum, so a full-width label once widened the window past a 2x screen. A wrapped label in a scroll area is no
answer either: it gets the height of one line and is drawn over the next. The whole text is in the tooltip.
"""
from __future__ import annotations

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QPainter
from PySide6.QtWidgets import QLabel, QPushButton, QWidget


class ElidedLabel(QLabel):
    MIN_WIDTH = 40

    def __init__(self, text: str = "", parent: QWidget | None = None) -> None:
        super().__init__(text, parent)
        self.setToolTip(text)

    def setText(self, text: str) -> None:  # noqa: N802 - Qt's name
        super().setText(text)
        self.setToolTip(text)

    def minimumSizeHint(self) -> QSize:  # noqa: N802 - Qt's name
        hint = super().minimumSizeHint()
        return QSize(min(self.MIN_WIDTH, hint.width()), hint.height())

    def paintEvent(self, e) -> None:  # noqa: N802 - Qt's name
        fm = self.fontMetrics()
        r = self.contentsRect()
        if fm.horizontalAdvance(self.text()) <= r.width():
            super().paintEvent(e)
            return
        p = QPainter(self)
        p.setPen(self.palette().color(self.foregroundRole()))
        align = self.alignment() or (Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        p.drawText(r, int(align), fm.elidedText(self.text(), Qt.TextElideMode.ElideRight, r.width()))


class ElidedButton(QPushButton):
    """A push button whose text ends in "…" when the button gets less room than the text needs (a long model
    name in a narrow column), instead of Qt's centred text cut at both ends. ``text()`` is the whole text."""

    MIN_TEXT = 60  # at least this much of the text shows

    def __init__(self, text: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._full = ""
        self.setText(text)

    def text(self) -> str:  # noqa: D102 - the whole text, not the shortened one on screen
        return self._full

    def setText(self, text: str) -> None:  # noqa: N802 - Qt's name
        self._full = text
        self.setAccessibleName(text)
        self._fit()

    def _chrome(self) -> int:
        """The width of everything but the text: icon, padding, frame."""
        return super().sizeHint().width() - self.fontMetrics().horizontalAdvance(super().text())

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt's name
        hint = super().sizeHint()
        return QSize(self._chrome() + self.fontMetrics().horizontalAdvance(self._full), hint.height())

    def minimumSizeHint(self) -> QSize:  # noqa: N802 - Qt's name
        return QSize(min(self.sizeHint().width(), self._chrome() + self.MIN_TEXT), super().minimumSizeHint().height())

    def resizeEvent(self, e) -> None:  # noqa: N802 - Qt's name
        super().resizeEvent(e)
        self._fit()

    def _fit(self) -> None:
        room = self.width() - self._chrome() if self.isVisible() else 1 << 20
        shown = self.fontMetrics().elidedText(self._full, Qt.TextElideMode.ElideRight, max(room, 0))
        if shown != super().text():
            QPushButton.setText(self, shown)
