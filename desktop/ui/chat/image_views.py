"""The pictures a sent message carried: a row of thumbnails in its bubble; a click opens the picture larger.

The files (stored in the data dir by content hash, named in the message's provenance ``images``) are read and
scaled on the thread pool (``ui/workers.py``), never on the GUI thread; thumbnails are kept by path, so reopening a
chat or re-rendering a message reads each picture once. A picture whose file is gone shows its name instead.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QUrl, Signal
from PySide6.QtGui import QDesktopServices, QGuiApplication, QImage
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from desktop.ui import workers
from desktop.ui.chat.image_input import pixmap_for

SIDE = 160  # a thumbnail's longest side in a message, logical pixels
_thumbs: dict[str, QImage] = {}  # path -> thumbnail (GUI thread only)


def _read(path: str, side: int) -> QImage:
    """Worker: the picture at ``path``, scaled to at most ``side`` pixels (QImage is safe off the GUI thread)."""
    img = QImage(path)
    if img.isNull():
        raise OSError(f"cannot read {Path(path).name}")
    if max(img.width(), img.height()) > side:
        img = img.scaled(side, side, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation)
    return img


class ImageThumb(QToolButton):
    """One picture of a message: its thumbnail (or its name while it is read, or when the file is gone)."""

    def __init__(self, info: dict[str, Any], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.info = info
        self.path = str(info.get("path", ""))
        name = str(info.get("name") or Path(self.path).name or "image")
        self.setObjectName("MessageImage")
        self.setAutoRaise(True)
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self.setAccessibleName(f"Image {name}")
        size = f" · {info['width']} × {info['height']}" if info.get("width") else ""
        self.setToolTip(f"{name}{size} — click to open it larger")
        self.setText(name)
        self.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        self.loaded = False
        self.clicked.connect(self.open_larger)

    def show_image(self, img: QImage) -> None:
        dpr = self.devicePixelRatioF()
        pm = pixmap_for(img, SIDE, dpr)
        self.setIcon(pm)
        self.setIconSize(pm.size() / dpr)
        self.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonIconOnly)
        self.loaded = True

    def show_missing(self) -> None:
        self.setText(f"{self.text()} (file missing)")
        self.setEnabled(False)

    def open_larger(self) -> "ImageViewer":
        dlg = ImageViewer(self.path, str(self.info.get("name") or Path(self.path).name), self.window())
        self._viewer = dlg
        dlg.open()
        return dlg


class ImageStrip(QWidget):
    """The thumbnails of one message, in a row."""

    loaded = Signal()  # a thumbnail arrived: the bubble may need to grow to it

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._lay = QHBoxLayout(self)
        self._lay.setContentsMargins(0, 0, 0, 0)
        self._lay.setSpacing(6)
        self._lay.addStretch(1)
        self.thumbs: list[ImageThumb] = []
        self._shown: list[str] = []
        self._jobs = workers.JobKeeper(self)
        self.hide()

    def set_images(self, infos: list[dict[str, Any]]) -> None:
        keys = [str(i.get("sha256") or i.get("path")) for i in infos]
        if keys == self._shown:
            return
        self._shown = keys
        for t in self.thumbs:
            t.setParent(None)
            t.deleteLater()
        self.thumbs = []
        for info in infos:
            t = ImageThumb(info, self)
            self._lay.insertWidget(len(self.thumbs), t)
            self.thumbs.append(t)
            self._load(t)
        self.setVisible(bool(self.thumbs))

    def _load(self, t: ImageThumb) -> None:
        path, side = t.path, int(SIDE * max(1.0, self.devicePixelRatioF()))
        if path in _thumbs:
            t.show_image(_thumbs[path])
            return

        def done(img: QImage, t: ImageThumb = t) -> None:
            _thumbs[path] = img
            if t in self.thumbs:
                t.show_image(img)
                self.loaded.emit()

        def failed(_exc: BaseException, t: ImageThumb = t) -> None:
            if t in self.thumbs:
                t.show_missing()

        self._jobs.start(lambda: _read(path, side), done, failed)

    def width_hint(self) -> int:
        return sum(t.sizeHint().width() + 6 for t in self.thumbs)


class ImageViewer(QDialog):
    """A picture at up to most of the screen, with a button that opens it in the system's viewer."""

    opened_externally = Signal(str)

    def __init__(self, path: str, name: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.path = path
        self.setWindowTitle(name)
        lay = QVBoxLayout(self)
        self.picture = QLabel("Reading…")
        self.picture.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.picture.setAccessibleName(f"Image {name}")
        lay.addWidget(self.picture, 1)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.external = QPushButton("Open in image viewer")
        buttons.addButton(self.external, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.rejected.connect(self.reject)
        self.external.clicked.connect(self.open_externally)
        lay.addWidget(buttons)
        screen = (parent.screen() if parent else None) or QGuiApplication.primaryScreen()
        avail = screen.availableGeometry() if screen else None
        self._side = int(min(avail.width(), avail.height()) * 0.8) if avail else 800
        self._jobs = workers.JobKeeper(self)
        dpr = self.devicePixelRatioF()
        self._jobs.start(lambda: _read(path, int(self._side * dpr)), self._show,
                         lambda _e: self.picture.setText("The picture's file is missing."))

    def _show(self, img: QImage) -> None:
        # A small picture (one scaled to a 32 px projector) is enlarged at most 4 times, not blown up to the screen.
        side = min(self._side, 4 * max(img.width(), img.height()))
        self.picture.setPixmap(pixmap_for(img, side, self.devicePixelRatioF()))

    def open_externally(self) -> None:
        self.opened_externally.emit(self.path)
        QDesktopServices.openUrl(QUrl.fromLocalFile(self.path))


__all__ = ["ImageStrip", "ImageThumb", "ImageViewer"]
