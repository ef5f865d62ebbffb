"""Images in the composer: a chip with a thumbnail per picture, and the worker that checks, scales and stores it.

A picture comes from a file (the paperclip, a drop) or from the clipboard (Ctrl+V in the message box). On a worker
(``ui/workers.py``), never on the GUI thread, :func:`prepare_picture` decodes it whole (``vision.images``: a file
that is not an image, a PNG cut short or a 20,000 x 20,000 picture is refused with one sentence), scales it down to
what the loaded projector takes, stores it in the data dir by content hash and makes the chip's thumbnail. What a
message then carries is :meth:`Picture.as_dict`: the stored file's hash, path, name and size.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import QBuffer, QByteArray, QIODevice, Qt, Signal
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QToolButton, QWidget

from desktop.engine.vision import images

#: File names taken as pictures (anything else is a document attachment).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp")
IMAGE_FILTER = "Images (" + " ".join(f"*{s}" for s in IMAGE_SUFFIXES) + ")"
THUMB = 48  # the chip's thumbnail, logical pixels


def is_image_path(path: str) -> bool:
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


@dataclass(frozen=True)
class Picture:
    """A picture ready to send: stored by content hash; ``thumb`` is a small QImage for the chip."""

    sha256: str
    path: str
    name: str
    width: int
    height: int
    source_size: tuple[int, int]
    thumb: QImage

    def as_dict(self) -> dict[str, Any]:
        return {"sha256": self.sha256, "path": self.path, "name": self.name, "width": self.width,
                "height": self.height}


def qimage_png(image: QImage) -> bytes:
    """A QImage (a pasted one) as PNG bytes. Worker thread: QImage is safe off the GUI thread, QPixmap is not."""
    ba = QByteArray()
    buf = QBuffer(ba)
    buf.open(QIODevice.OpenModeFlag.WriteOnly)
    image.save(buf, "PNG")
    buf.close()
    return bytes(ba.data())


def prepare_picture(data: bytes, name: str, max_side: int) -> Picture:
    """Worker: the whole picture decoded (ImageError, one sentence, for anything unreadable), scaled down so its
    longest side is at most ``max_side``, stored by content hash (the original bytes when nothing needed changing,
    else a PNG of the scaled picture)."""
    from PIL import Image

    prep = images.prepare(data, max_side, name)
    info = images.inspect_bytes(data, name)
    if (prep.width, prep.height) != prep.source_size or info.format not in ("PNG", "JPEG"):
        buf = io.BytesIO()
        Image.frombytes("RGB", (prep.width, prep.height), prep.rgb).save(buf, format="PNG")
        data = buf.getvalue()
    stored = images.store(data)
    thumb = QImage(prep.rgb, prep.width, prep.height, prep.width * 3, QImage.Format.Format_RGB888).copy()
    thumb = thumb.scaled(THUMB * 2, THUMB * 2, Qt.AspectRatioMode.KeepAspectRatio,
                         Qt.TransformationMode.SmoothTransformation)  # sharp at a scale factor of 2
    return Picture(stored.stem, str(stored), name, prep.width, prep.height, prep.source_size, thumb)


def pixmap_for(image: QImage, side: int, dpr: float) -> QPixmap:
    """``image`` as a pixmap of at most ``side`` logical pixels, sharp on a scaled screen."""
    pm = QPixmap.fromImage(image).scaled(int(side * dpr), int(side * dpr), Qt.AspectRatioMode.KeepAspectRatio,
                                         Qt.TransformationMode.SmoothTransformation)
    pm.setDevicePixelRatio(dpr)
    return pm


class ImageChip(QFrame):
    """One picture above the composer: thumbnail, name and size, ×. Reading until ``set_picture``."""

    remove_clicked = Signal(str)

    def __init__(self, key: str, name: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.key = key
        self.name = name
        self.picture: Picture | None = None
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setObjectName("attachmentChip")
        self.setAccessibleName(f"Image {name}")
        lay = QHBoxLayout(self)
        lay.setContentsMargins(4, 2, 2, 2)
        lay.setSpacing(6)
        self.thumb = QLabel()
        self.thumb.setObjectName("ImageThumb")
        self.thumb.setFixedSize(THUMB, THUMB)
        self.thumb.setAlignment(Qt.AlignmentFlag.AlignCenter)
        lay.addWidget(self.thumb)
        self.label = QLabel(f"{name} · reading…")
        lay.addWidget(self.label)
        self.remove_button = QToolButton()
        self.remove_button.setText("×")
        self.remove_button.setToolTip(f"Remove {name}")
        self.remove_button.setAutoRaise(True)
        self.remove_button.clicked.connect(lambda: self.remove_clicked.emit(self.key))
        lay.addWidget(self.remove_button)

    def set_picture(self, pic: Picture) -> None:
        self.picture = pic
        self.thumb.setPixmap(pixmap_for(pic.thumb, THUMB, self.devicePixelRatioF()))
        sw, sh = pic.source_size
        scaled = f" (scaled from {sw} × {sh})" if (sw, sh) != (pic.width, pic.height) else ""
        self.label.setText(f"{pic.name} · {pic.width} × {pic.height}")
        self.setToolTip(f"{pic.name}: {pic.width} × {pic.height} pixels{scaled}")


__all__ = ["IMAGE_FILTER", "IMAGE_SUFFIXES", "ImageChip", "Picture", "is_image_path", "prepare_picture",
           "qimage_png"]
