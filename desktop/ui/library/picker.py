"""The model picker at the top of the chat: a button naming the current model that opens a searchable
popup of profiles (installed first) with quant, size and a fit badge; typing filters, Enter or a click
chooses. Not-downloaded entries ask for a download instead (the repo page opens on them). While a model
loads, the button says so with the percentage; the one progress bar and its Cancel are the status bar's.

The data (profiles, registry, HF cache, hardware, fit) is the app's one scan (``installed.InstalledModels``);
the picker only shows its answer.
"""
from __future__ import annotations


from PySide6.QtCore import QEvent, QModelIndex, QObject, QPoint, Qt, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListView,
    QVBoxLayout,
    QWidget,
)

from desktop.ui.library.installed import InstalledModels
from desktop.ui.library.picker_model import (
    EntryRole,
    PickerEntry,
    PickerFilter,
    PickerModel,
)
from desktop.ui.widgets.cards import CardDelegate, apply_style, icon
from desktop.ui.widgets.elided import ElidedButton


class _Popup(QFrame):
    """The dropdown: a filter box over the profile cards."""

    def __init__(self, picker: "ModelPicker") -> None:
        super().__init__(picker, Qt.WindowType.Popup)
        self.setObjectName("panel")
        apply_style(self)
        self.search = QLineEdit()
        self.search.setObjectName("search")
        self.search.setPlaceholderText("Filter models…")
        self.search.addAction(icon("mdi6.magnify", color="#888"), QLineEdit.ActionPosition.LeadingPosition)
        self.list = QListView()
        self.list.setObjectName("cards")
        self.list.setItemDelegate(CardDelegate(self.list))
        self.list.setMouseTracking(True)
        self.list.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.empty = QLabel("No model matches.")
        self.empty.setObjectName("muted")
        self.empty.hide()
        lay = QVBoxLayout(self)
        lay.setContentsMargins(10, 10, 10, 10)
        lay.addWidget(self.search)
        lay.addWidget(self.empty)
        lay.addWidget(self.list, 1)
        self.resize(540, 440)


class ModelPicker(QWidget):
    profile_chosen = Signal(str)
    download_requested = Signal(str, str)  # profile id, quant
    refreshed = Signal()  # the entries were (re)gathered

    def __init__(self, source: InstalledModels, parent: QWidget | None = None) -> None:
        """``source``: the app's one installed-model scan (the app state's), which this view only reads."""
        super().__init__(parent)
        apply_style(self)
        self.source = source
        self.current: str | None = None
        self.current_quant: str | None = None
        self.loading: float | None = None

        self.button = ElidedButton("Choose a model")  # a long name ends in … in a narrow column
        self.button.setObjectName("secondary")
        self.button.setIcon(icon("mdi6.cube-outline"))
        self.button.setToolTip("Choose the model to chat with")
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.button)
        lay.addStretch(1)

        self.model = PickerModel(self)
        self.proxy = PickerFilter(self)
        self.proxy.setSourceModel(self.model)
        self.popup = _Popup(self)
        self.popup.list.setModel(self.proxy)
        self.popup.search.textChanged.connect(self._filter)
        self.popup.search.returnPressed.connect(self.choose_current)
        self.popup.search.installEventFilter(self)
        self.popup.list.clicked.connect(self.choose)
        self.popup.list.activated.connect(self.choose)
        self.button.clicked.connect(self.open_popup)
        self.source.changed.connect(lambda: self._on_entries(self.source.entries))
        self.source.failed.connect(self._on_failed)
        if self.source.scanned:
            self._on_entries(self.source.entries)

    # -- public API ------------------------------------------------------------------------------
    def refresh(self) -> None:
        """Scan again (on a worker); the popup updates when the answer arrives."""
        self.source.refresh()

    def set_current(self, profile_id: str | None, quant: str | None = None) -> None:
        self.current, self.current_quant = profile_id, quant
        self.model.set_current(profile_id)
        self._update_button()

    def set_loading(self, fraction: float | None) -> None:
        """``None``: idle. A fraction in [0, 1]: loading; the button says so (the bar and Cancel are the
        status bar's: one of each in the window)."""
        self.loading = None if fraction is None else max(0.0, min(1.0, float(fraction)))
        self.button.setEnabled(fraction is None)
        self._update_button()

    def entry(self, profile_id: str | None) -> PickerEntry | None:
        return next((e for e in self.model.entries if e.profile_id == profile_id), None)

    # -- internals --------------------------------------------------------------------------------
    def _update_button(self) -> None:
        e = self.entry(self.current)
        name = e.name if e else (self.current or "Choose a model")
        if self.loading is not None:
            self.button.setText(f"Loading {name}… {self.loading:.0%}")
            return
        quant = self.current_quant or (e.quant_label or e.quant if e else None)
        self.button.setText(f"{name}  ·  {quant}  ▾" if quant and self.current else f"{name}  ▾")

    def _on_entries(self, entries: list[PickerEntry]) -> None:
        self.model.set_entries(entries)
        self.model.set_current(self.current)
        self._update_button()
        self._select_first()
        self.refreshed.emit()

    def _on_failed(self, exc: BaseException) -> None:
        self.popup.empty.setText(f"Could not list the models: {getattr(exc, 'message', None) or exc}")
        self.popup.empty.show()
        self.refreshed.emit()

    def open_popup(self) -> None:
        if not self.model.entries:
            self.refresh()
        self.popup.search.clear()
        below = self.button.mapToGlobal(QPoint(0, self.button.height() + 4))
        self.popup.move(below)
        self.popup.show()
        self.popup.search.setFocus()
        self._select_first()

    def _filter(self, text: str) -> None:
        self.proxy.set_text(text)
        self.popup.empty.setText("No model matches.")
        self.popup.empty.setVisible(self.proxy.rowCount() == 0 and bool(self.model.entries))
        self._select_first()

    def _select_first(self) -> None:
        if self.proxy.rowCount():
            self.popup.list.setCurrentIndex(self.proxy.index(0, 0))

    def eventFilter(self, obj: QObject, ev: QEvent) -> bool:  # noqa: N802
        # Up/Down in the filter box move through the list, as in a command palette.
        if obj is self.popup.search and ev.type() == QEvent.Type.KeyPress and isinstance(ev, QKeyEvent):
            if ev.key() in (Qt.Key.Key_Down, Qt.Key.Key_Up):
                row = self.popup.list.currentIndex().row()
                row = row + (1 if ev.key() == Qt.Key.Key_Down else -1)
                if 0 <= row < self.proxy.rowCount():
                    self.popup.list.setCurrentIndex(self.proxy.index(row, 0))
                return True
        return super().eventFilter(obj, ev)

    def choose_current(self) -> None:
        idx = self.popup.list.currentIndex()
        if idx.isValid():
            self.choose(idx)

    def choose(self, index: QModelIndex) -> None:
        e: PickerEntry | None = index.data(EntryRole)
        if e is None:
            return
        self.popup.hide()
        if e.installed:
            self.set_current(e.profile_id)
            self.profile_chosen.emit(e.profile_id)
        else:
            self.download_requested.emit(e.profile_id, e.quant or "")
