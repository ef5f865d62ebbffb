"""My models: what is installed, where it came from, what was repaired, and what to do with it.

Cards on the left (``models.library``), the selected model's details and actions on the right: Load
(``load_requested(profile_id)``), Rename, Reveal in the file manager, Undo repair (where the registry can
revert an in-place repair), and Remove, which follows ``models remove``'s ownership rules (a file the user
imported, or found in the shared HF cache, is only unregistered, never deleted) and says so before acting.
The list is the app's one scan (``installed.InstalledModels``); removing, renaming and reverting touch the
disk, so they run on workers, and then ask that scan to run again so every view follows.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from PySide6.QtCore import Qt, QUrl, Signal
from PySide6.QtGui import QDesktopServices, QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QBoxLayout,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QListView,
    QMessageBox,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from desktop.engine.errors import AppError
from desktop.engine.library import registry
from desktop.ui.errors import error_text
from desktop.ui.library.installed import InstalledModels
from desktop.ui.library.models_list import LibraryItem, LibraryModel
from desktop.ui.widgets.cards import CardDelegate, apply_style, human_size, icon
from desktop.ui.workers import JobKeeper


class LibraryView(QWidget):
    load_requested = Signal(str)  # profile id
    import_requested = Signal()
    refreshed = Signal()  # the list was (re)read
    action_finished = Signal(str)  # "removed" | "renamed" | "reverted" | "failed"

    def __init__(self, source: InstalledModels, parent: QWidget | None = None) -> None:
        """``source``: the app's one installed-model scan (the app state's), which this view only reads."""
        super().__init__(parent)
        apply_style(self)
        self.source = source
        self._jobs = JobKeeper(self)
        self.confirm_box: QMessageBox | None = None
        self.rename_dialog: QInputDialog | None = None

        title = QLabel("My models")
        title.setObjectName("title")
        self.count = QLabel()
        self.count.setObjectName("muted")
        self.import_btn = QPushButton("Import a GGUF…")
        self.import_btn.setObjectName("secondary")
        self.import_btn.setIcon(icon("mdi6.folder-open-outline"))
        head = QHBoxLayout()
        head.addWidget(title)
        head.addWidget(self.count, 1)
        head.addWidget(self.import_btn)

        self.model = LibraryModel(self)
        self.list = QListView()
        self.list.setObjectName("cards")
        self.list.setModel(self.model)
        self.list.setItemDelegate(CardDelegate(self.list))
        self.list.setMouseTracking(True)
        self.list.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.list.setMinimumWidth(380)

        self.details = QFrame()
        self.details.setObjectName("panel")
        self.name = QLabel()
        self.name.setObjectName("title")
        self.name.setWordWrap(True)
        grid = QGridLayout()
        grid.setHorizontalSpacing(12)
        self.fields: dict[str, QLabel] = {}
        for r, key in enumerate(("Origin", "Quant", "Size", "Profile", "Source", "SHA-256", "File", "Repairs")):
            k = QLabel(key)
            k.setObjectName("muted")
            v = QLabel()
            v.setWordWrap(True)
            v.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            grid.addWidget(k, r, 0)
            grid.addWidget(v, r, 1)
            self.fields[key] = v
        mono = QFont("monospace")
        mono.setStyleHint(QFont.StyleHint.Monospace)
        self.fields["SHA-256"].setFont(mono)
        self.load_btn = QPushButton("Load")
        self.load_btn.setObjectName("primary")
        self.load_btn.setIcon(icon("mdi6.play", color="white"))
        self.rename_btn = QPushButton("Rename")
        self.reveal_btn = QPushButton("Show in folder")
        self.revert_btn = QPushButton("Undo repair")
        self.remove_btn = QPushButton("Remove")
        for b, ic in ((self.rename_btn, "mdi6.pencil-outline"), (self.reveal_btn, "mdi6.folder-outline"),
                      (self.revert_btn, "mdi6.undo"), (self.remove_btn, "mdi6.delete-outline")):
            b.setObjectName("secondary")
            b.setIcon(icon(ic))
        # Two rows so the panel stays narrow: the main action and the destructive one apart, tools below.
        actions = QVBoxLayout()
        main_row, tools_row = QHBoxLayout(), QHBoxLayout()
        main_row.addWidget(self.load_btn)
        main_row.addStretch(1)
        main_row.addWidget(self.remove_btn)
        for b in (self.rename_btn, self.reveal_btn, self.revert_btn):
            tools_row.addWidget(b)
        tools_row.addStretch(1)
        actions.addLayout(tools_row)
        actions.addLayout(main_row)
        self.message = QLabel()
        self.message.setWordWrap(True)
        dl = QVBoxLayout(self.details)
        dl.setContentsMargins(18, 16, 18, 16)
        dl.addWidget(self.name)
        dl.addLayout(grid)
        dl.addStretch(1)
        dl.addWidget(self.message)
        dl.addLayout(actions)

        # Side by side when there is room, the details under the list when not (a small window, 2x scaling):
        # the page never needs a horizontal scroll bar. Cards elide, details wrap.
        self.body = body = QBoxLayout(QBoxLayout.Direction.LeftToRight)
        body.setSpacing(16)
        grid.setColumnStretch(1, 1)
        self.list.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.details.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.list.setMinimumWidth(240)
        self.details.setMinimumWidth(260)
        for v in self.fields.values():
            v.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
            v.setMinimumWidth(120)
        body.addWidget(self.list, 5)
        body.addWidget(self.details, 4)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(24, 20, 24, 16)
        lay.addLayout(head)
        lay.addLayout(body, 1)

        self.import_btn.clicked.connect(self.import_requested)
        self.list.selectionModel().currentChanged.connect(lambda *_a: self._show_details())
        self.list.doubleClicked.connect(lambda _i: self.load_selected())
        self.load_btn.clicked.connect(self.load_selected)
        self.rename_btn.clicked.connect(lambda: self.rename_selected())
        self.reveal_btn.clicked.connect(self.reveal_selected)
        self.revert_btn.clicked.connect(self.revert_selected)
        self.remove_btn.clicked.connect(self.remove_selected)
        self.source.changed.connect(lambda: self._on_items(self.source.items))
        self.source.failed.connect(self._on_failed)
        if self.source.scanned:
            self._on_items(self.source.items)
        self._show_details()

    NARROW = 720  # below this width the details go under the list

    def resizeEvent(self, e: Any) -> None:  # noqa: N802
        super().resizeEvent(e)
        want = (QBoxLayout.Direction.TopToBottom if self.width() < self.NARROW
                else QBoxLayout.Direction.LeftToRight)
        if self.body.direction() != want:
            self.body.setDirection(want)
            self.list.setMinimumHeight(160 if want == QBoxLayout.Direction.TopToBottom else 0)

    # -- data -------------------------------------------------------------------------------------
    def refresh(self) -> None:
        self.source.refresh()

    def _on_items(self, items: list[LibraryItem]) -> None:
        keep = self.selected()
        self.model.set_items(items)
        self.count.setText(f"{len(items)} installed · {human_size(sum(i.size for i in items))} on disk"
                           if items else "nothing installed yet")
        row = self.model.row_of(keep.id if keep else None)
        if self.model.items:
            self.list.setCurrentIndex(self.model.index(max(row, 0)))
        self._show_details()
        self.refreshed.emit()

    def _on_failed(self, exc: BaseException) -> None:
        self.message.setText(error_text(exc)[0])
        self.refreshed.emit()

    def selected(self) -> LibraryItem | None:
        idx = self.list.currentIndex()
        return self.model.items[idx.row()] if idx.isValid() and idx.row() < len(self.model.items) else None

    def select(self, model_id: str) -> None:
        row = self.model.row_of(model_id)
        if row >= 0:
            self.list.setCurrentIndex(self.model.index(row))

    def _show_details(self) -> None:
        m = self.selected()
        self.details.setVisible(m is not None)
        if m is None:
            return
        self.name.setText(m.name)
        f = self.fields
        f["Origin"].setText(m.origin)
        f["Quant"].setText(m.quant_label or "unknown")
        f["Size"].setText(human_size(m.size))
        f["Profile"].setText(m.profile_id or "none")
        f["Source"].setText(m.source_repo or "a file from disk")
        # 64 hex digits would set the panel's minimum width: show both ends, the whole in the tooltip.
        f["SHA-256"].setText(f"{m.sha256[:16]}…{m.sha256[-16:]}" if m.sha256 else "not hashed yet")
        f["SHA-256"].setToolTip(m.sha256 or "")
        f["File"].setText(m.path)
        f["Repairs"].setText("\n".join(m.fixes) or "none needed")
        self.load_btn.setEnabled(bool(m.profile_id) and m.status != "missing")
        self.rename_btn.setEnabled(m.origin != "Bundled demo")
        self.revert_btn.setVisible(m.can_revert)
        self.revert_btn.setEnabled(m.can_revert)
        self.remove_btn.setEnabled(m.removable)
        self.remove_btn.setToolTip("Deletes the downloaded file" if m.deletes_file
                                   else "Unregisters it; the file stays where it is")

    # -- actions ----------------------------------------------------------------------------------
    def _act(self, what: str, fn: Callable[[], Any], done_text: str) -> None:
        self.message.setText("Working …")

        def ok(_res: Any) -> None:
            self.message.setText(done_text)
            if what == "removed":
                # The next model's card is selected now: focus stays on the list, not on that model's Remove.
                self.list.setFocus()
            self.action_finished.emit(what)
            self.refresh()

        def failed(exc: BaseException) -> None:
            self.message.setText(error_text(exc if isinstance(exc, AppError) else AppError(str(exc)))[0])
            self.action_finished.emit("failed")

        self._jobs.start(fn, ok, failed)

    def load_selected(self) -> None:
        m = self.selected()
        if m and m.profile_id and m.status != "missing":
            self.load_requested.emit(m.profile_id)

    def reveal_selected(self) -> None:
        m = self.selected()
        if m:
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(Path(m.path).parent)))

    def rename_selected(self, name: str | None = None) -> None:
        """Rename to ``name``; without one, ask in a (non-blocking) dialog."""
        m = self.selected()
        if m is None:
            return
        if name is None:
            dlg = QInputDialog(self)
            dlg.setWindowTitle("Rename model")
            dlg.setLabelText("Name shown in the app (the file is not renamed):")
            dlg.setTextValue(m.name)
            dlg.textValueSelected.connect(self.rename_selected)
            self.rename_dialog = dlg
            dlg.open()
            return
        model_id = m.id
        self._act("renamed", lambda: registry.rename_model(model_id, name), f"Renamed to “{name.strip()}”.")

    def revert_selected(self) -> None:
        m = self.selected()
        if m is None or not m.can_revert:
            return
        model_id = m.id
        self._act("reverted", lambda: registry.revert_repair(model_id),
                  "The original bytes are back; the fix is now applied at load time instead.")

    def remove_selected(self) -> None:
        """Ask first (non-blocking), saying whether the file is deleted or stays."""
        m = self.selected()
        if m is None or not m.removable:
            return
        if m.deletes_file:
            text = f"Remove {m.name}? This deletes the downloaded file ({human_size(m.size)})."
        elif m.origin == "Found in HF cache":
            text = f"Remove {m.name} from the list? The file stays in the shared Hugging Face cache."
        else:
            text = f"Remove {m.name} from the list? Your file stays where it is:\n{m.path}"
        box = QMessageBox(QMessageBox.Icon.Question, "Remove model", text,
                          QMessageBox.StandardButton.Cancel, self)
        remove = box.addButton("Remove", QMessageBox.ButtonRole.DestructiveRole)
        # Enter must not delete a file: Cancel is the default (and Esc's answer).
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        box.setEscapeButton(QMessageBox.StandardButton.Cancel)
        model_id = m.id

        def answered() -> None:
            if box.clickedButton() is remove:
                self.list.setFocus()
                self._act("removed", lambda: registry.remove_model(model_id), f"Removed {m.name}.")

        box.finished.connect(lambda _r: answered())
        self.confirm_box = box
        box.open()
