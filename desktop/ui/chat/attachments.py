"""Attachment chips above the composer: file name, token count and a remove button per file.

GUI thread for the widgets; files are read and counted on the thread pool (``ui/workers.py``), never on the
GUI thread. Files come from the "Attach…" button (a file picker) or by drag-and-drop onto the widget. Pictures
(by file name, or pasted: ``add_image``) get an :class:`~desktop.ui.chat.image_input.ImageChip` and are checked,
scaled down and stored on a worker (``image_input.prepare_picture``); ``images()`` lists them for the message.
``set_vision`` says whether the model takes pictures: without vision, a picture is refused with one sentence.

The chat page holds one ``AttachmentChips`` above the composer; a send takes ``attachments()`` (the loaded
``desktop.engine.chats.attachments.Attachment`` objects) into the session, whose tool stage (chat/tool_send.py)
fits them into the prompt, and then ``clear()`` empties the row. ``set_token_counter(fn)`` swaps the estimate
for the model's tokenizer.
Signals: ``changed()`` whenever the list changes (a file loaded or removed), ``failed(str)`` with one
sentence when a file cannot be attached.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from PySide6.QtCore import Signal
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import (
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QToolButton,
    QWidget,
)

from desktop.engine.chats.attachments import (
    Attachment,
    AttachmentError,
    load_attachment,
)
from desktop.engine.errors import AppError
from desktop.engine.vision.images import DEFAULT_MAX_SIDE
from desktop.ui.chat.image_input import (
    IMAGE_FILTER,
    ImageChip,
    Picture,
    is_image_path,
    prepare_picture,
    qimage_png,
)
from desktop.ui.workers import JobKeeper

FILE_FILTER = ("Documents (*.txt *.md *.markdown *.rst *.pdf *.py *.js *.ts *.json *.yaml *.yml *.toml *.c *.h "
               "*.cpp *.rs *.go *.java *.sh *.html *.css *.csv *.sql);;All files (*)")


class Chip(QFrame):
    """One file: ``name · N tokens`` and ×."""

    remove_clicked = Signal(str)

    def __init__(self, path: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.path = path
        self.attachment: Attachment | None = None
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setObjectName("attachmentChip")
        lay = QHBoxLayout(self)
        lay.setContentsMargins(6, 1, 2, 1)
        self.label = QLabel(f"{Path(path).name} · counting…")
        lay.addWidget(self.label)
        self.remove_button = QToolButton()
        self.remove_button.setText("×")
        self.remove_button.setToolTip(f"Remove {Path(path).name}")
        self.remove_button.setAutoRaise(True)
        self.remove_button.clicked.connect(lambda: self.remove_clicked.emit(self.path))
        lay.addWidget(self.remove_button)

    def set_attachment(self, att: Attachment) -> None:
        self.attachment = att
        pages = f", {len(att.sections)} pages" if att.kind == "pdf" else ""
        self.label.setText(f"{att.name} · {att.tokens:,} tokens{pages}")
        self.setToolTip(att.path)


class AttachmentChips(QWidget):
    changed = Signal()
    failed = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAcceptDrops(True)
        self._lay = QHBoxLayout(self)
        self._lay.setContentsMargins(0, 0, 0, 0)
        self.attach_button = QPushButton("Attach…")
        self.attach_button.setToolTip("Attach text, Markdown, code or PDF files (or drop them here)")
        self.attach_button.clicked.connect(self.pick_files)
        self._lay.addWidget(self.attach_button)
        self._lay.addStretch(1)
        self.chips: dict[str, Chip] = {}
        self.image_chips: dict[str, ImageChip] = {}
        self._jobs = JobKeeper(self)  # each worker job held until its answer
        self._count: Callable[[str], int] | None = None
        self._pasted = 0
        # Whether the model takes pictures (None: not known until a model is loaded), why not, its largest side.
        self.vision: bool | None = None
        self.no_vision_reason = ""
        self.image_max_side = DEFAULT_MAX_SIDE

    # ------------------------------------------------------------------ API

    def set_token_counter(self, fn: Callable[[str], int] | None) -> None:
        """Count with ``fn`` (e.g. the model's tokenizer) instead of the estimate; it runs on a worker."""
        self._count = fn

    def attachments(self) -> list[Attachment]:
        return [c.attachment for c in self.chips.values() if c.attachment is not None]

    def images(self) -> list[dict[str, Any]]:
        """The pictures for the message (``Picture.as_dict``: stored path, hash, name, size), in order."""
        return [c.picture.as_dict() for c in self.image_chips.values() if c.picture is not None]

    def pending(self) -> int:
        return (sum(1 for c in self.chips.values() if c.attachment is None)
                + sum(1 for c in self.image_chips.values() if c.picture is None))

    def set_vision(self, vision: bool | None, reason: str = "", max_side: int = 0) -> None:
        """What the loaded model takes: pictures (scaled down to ``max_side``), or not (``reason``, one sentence)."""
        self.vision, self.no_vision_reason = vision, reason
        self.image_max_side = max_side or DEFAULT_MAX_SIDE

    def add_image(self, image: Any, name: str | None = None) -> bool:
        """A pasted picture (a QImage): encoded, checked, scaled and stored on a worker. False when refused."""
        if self._refuse_images():
            return False
        self._pasted += 1
        img = image.copy()  # the clipboard's image may change; the worker encodes its own copy
        self._start_image(f"pasted:{self._pasted}", name or f"pasted-image-{self._pasted}.png",
                          lambda: qimage_png(img))
        return True

    def _refuse_images(self) -> bool:
        if self.vision is False:
            self.failed.emit(self.no_vision_reason or "The loaded model cannot see images.")
            return True
        return False

    def _start_image(self, key: str, name: str, read: Callable[[], bytes]) -> None:
        chip = ImageChip(key, name, self)
        chip.remove_clicked.connect(self.remove)
        self.image_chips[key] = chip
        self._lay.insertWidget(self._lay.count() - 1, chip)
        side = self.image_max_side
        self._jobs.start(lambda: prepare_picture(read(), name, side),
                            lambda pic, key=key: self._image_ready(key, pic),
                            lambda exc, key=key: self._failed(key, exc))
        self.changed.emit()

    def total_tokens(self) -> int:
        return sum(a.tokens for a in self.attachments())

    def add_paths(self, paths: list[str]) -> None:
        for p in paths:
            path = str(Path(p).expanduser())
            if path in self.chips or path in self.image_chips:
                continue
            if is_image_path(path):
                if not self._refuse_images():
                    from desktop.engine.vision.images import read_image_file

                    self._start_image(path, Path(path).name, lambda path=path: read_image_file(path))
                continue
            chip = Chip(path, self)
            chip.remove_clicked.connect(self.remove)
            self.chips[path] = chip
            self._lay.insertWidget(self._lay.count() - 1, chip)
            count = self._count
            self._jobs.start(lambda path=path, count=count: load_attachment(path, count),
                                lambda att, path=path: self._loaded(path, att),
                                lambda exc, path=path: self._failed(path, exc))

    def remove(self, path: str) -> None:
        chip: QWidget | None = self.chips.pop(path, None) or self.image_chips.pop(path, None)
        if chip is not None:
            chip.setParent(None)
            chip.deleteLater()
            self.changed.emit()

    def clear(self) -> None:
        for path in [*self.chips, *self.image_chips]:
            self.remove(path)

    def pick_files(self) -> None:
        filters = FILE_FILTER if self.vision is False else f"{IMAGE_FILTER};;{FILE_FILTER}"
        paths, _ = QFileDialog.getOpenFileNames(self, "Attach files", "", filters)
        if paths:
            self.add_paths(paths)

    # ------------------------------------------------------------------ results (GUI thread)

    def _loaded(self, path: str, att: Attachment) -> None:
        chip = self.chips.get(path)
        if chip is not None:  # not removed meanwhile
            chip.set_attachment(att)
            self.changed.emit()

    def _image_ready(self, key: str, pic: Picture) -> None:
        chip = self.image_chips.get(key)
        if chip is not None:
            chip.set_picture(pic)
            self.changed.emit()

    def _failed(self, path: str, exc: BaseException) -> None:
        chip: QWidget | None = self.chips.pop(path, None) or self.image_chips.pop(path, None)
        if chip is not None:
            chip.setParent(None)
            chip.deleteLater()
        msg = exc.message if isinstance(exc, (AppError, AttachmentError)) else f"cannot attach {path}: {exc}"
        self.failed.emit(msg)

    # ------------------------------------------------------------------ drag and drop

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802
        if event.mimeData().hasUrls() and any(u.isLocalFile() for u in event.mimeData().urls()):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802
        paths = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if paths:
            self.add_paths(paths)
            event.acceptProposedAction()


__all__ = ["AttachmentChips", "Chip"]
