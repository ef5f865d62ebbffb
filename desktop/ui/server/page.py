"""The Server page: on/off, port, local-network mode with its API key, allowed origins, the idle-unload time, the
addresses to paste into other programs, the model the server holds, and a live log of requests. GUI thread.

A view over :class:`~desktop.ui.server.controller.ServerController`: every change of a setting goes to
``controller.apply`` (saved, and a running server restarts with it); the page re-reads the controller on its
signals. ``ServerBadge`` is the status bar's line on the server.
"""
from __future__ import annotations

import secrets

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QFormLayout,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListWidget,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from desktop.engine.errors import AppError
from desktop.engine.server.pool import ModelEvent
from desktop.ui.server.controller import ServerController, ServerSettings
from desktop.ui.server.log_model import RequestLogModel
from desktop.ui.widgets.cards import apply_style, icon

CLIENTS = ("Works with programs that speak OpenAI's API (the openai Python and JavaScript packages, Open WebUI, "
           "editor assistants such as Continue) or Ollama's (the ollama package, apps with an Ollama setting). "
           "They name a model by the id that Models shows; it loads on demand.")


def _button(text: str, ic: str, name: str = "secondary") -> QPushButton:
    b = QPushButton(text)
    b.setObjectName(name)
    b.setIcon(icon(ic))
    return b


def _panel(title: str) -> tuple[QFrame, QVBoxLayout]:
    frame = QFrame()
    frame.setObjectName("panel")
    lay = QVBoxLayout(frame)
    lay.setContentsMargins(16, 12, 16, 14)
    lay.setSpacing(8)
    head = QLabel(title)
    head.setStyleSheet("font-weight: 700;")
    lay.addWidget(head)
    return frame, lay


class ServerPage(QWidget):
    copied = Signal(str)  # what was copied to the clipboard ("API key", an address's name), for the status line

    def __init__(self, controller: ServerController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        apply_style(self)
        self.controller = c = controller
        root = QVBoxLayout(self)
        root.setContentsMargins(24, 20, 24, 20)
        root.setSpacing(14)
        title = QLabel("Local server")
        title.setObjectName("title")
        intro = QLabel("Other programs use your installed models through OpenAI's and Ollama's APIs, on one port, "
                       "with the same engine as your chats.")
        intro.setObjectName("muted")
        intro.setWordWrap(True)
        root.addWidget(title)
        root.addWidget(intro)

        # ---- on/off
        row = QHBoxLayout()
        self.switch = QCheckBox("Run the local server")
        self.switch.setAccessibleName("Run the local server")
        self.state = QLabel()
        self.state.setWordWrap(True)
        self.state.setTextFormat(Qt.TextFormat.PlainText)
        row.addWidget(self.switch)
        row.addWidget(self.state, 1)
        root.addLayout(row)

        # ---- settings
        frame, lay = _panel("Settings")
        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.ExpandingFieldsGrow)
        form.setLabelAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
        self.port = QSpinBox()
        self.port.setRange(0, 65535)
        self.port.setSpecialValueText("any free port")
        self.port.setKeyboardTracking(False)  # a restart per finished number, not per digit
        self.port.setAccessibleName("Port")
        self.ttl = QSpinBox()
        self.ttl.setRange(1, 24 * 60)
        self.ttl.setSuffix(" min")
        self.ttl.setKeyboardTracking(False)
        self.ttl.setAccessibleName("Unload an idle model after")
        self.lan = QCheckBox("Serve on the local network")
        self.lan.setToolTip("Other machines on your network can use the server; they need the API key.")
        self.key = QLineEdit()
        self.key.setPlaceholderText("needed on the local network")
        self.key.setAccessibleName("API key")
        self.new_key = _button("New key", "mdi6.key-variant")
        self.copy_key = _button("Copy", "mdi6.content-copy")
        self.copy_key.setAccessibleName("Copy the API key")
        key_row = QHBoxLayout()
        key_row.addWidget(self.key, 1)
        key_row.addWidget(self.new_key)
        key_row.addWidget(self.copy_key)
        self.origins = QListWidget()
        self.origins.setAccessibleName("Allowed origins")
        self.origins.setMaximumHeight(90)
        self.origin_edit = QLineEdit()
        self.origin_edit.setPlaceholderText("http://localhost:3000")
        self.origin_edit.setAccessibleName("New allowed origin")
        self.add_origin = _button("Add", "mdi6.plus")
        self.remove_origin = _button("Remove", "mdi6.minus")
        origin_row = QHBoxLayout()
        origin_row.addWidget(self.origin_edit, 1)
        origin_row.addWidget(self.add_origin)
        origin_row.addWidget(self.remove_origin)
        origin_box = QVBoxLayout()
        origin_box.addWidget(self.origins)
        origin_box.addLayout(origin_row)
        origin_note = QLabel("Web pages from these origins may call the server (exact origins, no '*').")
        origin_note.setObjectName("muted")
        origin_note.setWordWrap(True)
        origin_box.addWidget(origin_note)
        # Room for a whole origin and much of a key: on a narrow page the form puts such rows under their label.
        for edit in (self.key, self.origin_edit):
            edit.setMinimumWidth(self.fontMetrics().horizontalAdvance("http://localhost:30000") + 24)
        form.addRow("Port", self.port)
        form.addRow("Unload an idle model after", self.ttl)
        form.addRow("", self.lan)
        form.addRow("API key", key_row)
        form.addRow("Allowed origins", origin_box)
        lay.addLayout(form)
        root.addWidget(frame)

        # ---- addresses
        frame, lay = _panel("Addresses")
        self.addr_grid = QGridLayout()
        self.addr_grid.setColumnStretch(1, 1)
        self.addr_grid.setHorizontalSpacing(10)
        lay.addLayout(self.addr_grid)
        self.addr_rows: list[tuple[QLabel, QLabel, QPushButton]] = []
        clients = QLabel(CLIENTS)
        clients.setObjectName("muted")
        clients.setWordWrap(True)
        lay.addWidget(clients)
        root.addWidget(frame)

        # ---- the model the server holds
        frame, lay = _panel("Model")
        mrow = QHBoxLayout()
        self.model_label = QLabel()
        self.model_label.setWordWrap(True)
        self.model_label.setTextFormat(Qt.TextFormat.PlainText)
        self.model_bar = QProgressBar()
        self.model_bar.setRange(0, 100)
        self.model_bar.setFixedWidth(140)
        self.model_bar.setAccessibleName("Server model load progress")
        self.model_bar.hide()
        self.unload_btn = _button("Unload", "mdi6.eject-outline")
        self.unload_btn.setToolTip("Free the memory now; the next request loads the model again.")
        mrow.addWidget(self.model_label, 1)
        mrow.addWidget(self.model_bar)
        mrow.addWidget(self.unload_btn)
        lay.addLayout(mrow)
        root.addWidget(frame)

        # ---- the request log
        frame, lay = _panel("Requests")
        self.log = RequestLogModel(self)
        self.log_view = QTableView()
        self.log_view.setModel(self.log)
        self.log_view.setAccessibleName("Request log")
        self.log_view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.log_view.verticalHeader().hide()
        self.log_view.setWordWrap(False)
        self.log_view.setMinimumHeight(180)
        hh = self.log_view.horizontalHeader()
        hh.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        hh.setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)  # the model's name takes what is left
        hh.setMinimumSectionSize(48)
        fm = self.fontMetrics()
        for col, sample in enumerate(("00:00:00 ", "OpenAI /v1/chat/completions", "a-model-name-q4", "9999 + 9999",
                                      "999.9", "200 OK")):
            self.log_view.setColumnWidth(col, fm.horizontalAdvance(sample) + 24)
        self.clear_log = _button("Clear", "mdi6.delete-sweep-outline")
        lay.addWidget(self.log_view, 1)
        lay.addWidget(self.clear_log, 0, Qt.AlignmentFlag.AlignRight)
        root.addWidget(frame, 1)

        self._show_settings(c.settings)
        self.switch.toggled.connect(self._on_switch)
        self.port.valueChanged.connect(self._apply)
        self.ttl.valueChanged.connect(self._apply)
        self.lan.toggled.connect(self._on_lan)
        self.key.editingFinished.connect(self._on_key_edited)
        self.new_key.clicked.connect(self.generate_key)
        self.copy_key.clicked.connect(lambda: self._copy(self.key.text(), "API key"))
        self.add_origin.clicked.connect(self._add_origin)
        self.origin_edit.returnPressed.connect(self._add_origin)
        self.remove_origin.clicked.connect(self._remove_origin)
        self.unload_btn.clicked.connect(self._unload)
        self.clear_log.clicked.connect(self.log.clear)
        c.state_changed.connect(self.refresh)
        c.model_changed.connect(self._show_model)
        c.request_logged.connect(self.log.add)
        self.refresh()

    # ------------------------------------------------------------------ settings

    def _show_settings(self, s: ServerSettings) -> None:
        for w in (self.port, self.ttl, self.lan, self.key):
            w.blockSignals(True)
        self.port.setValue(s.port)
        self.ttl.setValue(s.ttl_min)
        self.lan.setChecked(s.lan)
        self.key.setText(s.api_key)
        self.key.setCursorPosition(0)
        self.origins.clear()
        self.origins.addItems(list(s.origins))
        for w in (self.port, self.ttl, self.lan, self.key):
            w.blockSignals(False)

    def current_settings(self) -> ServerSettings:
        return ServerSettings(port=self.port.value(), lan=self.lan.isChecked(), api_key=self.key.text().strip(),
                              origins=tuple(self.origins.item(i).text() for i in range(self.origins.count())),
                              ttl_min=self.ttl.value())

    def _apply(self, *_: object) -> None:
        new, old = self.current_settings(), self.controller.settings
        new.enabled = old.enabled
        if new.values() != old.values():
            self.controller.apply(new)
        self.refresh()

    def _on_lan(self, on: bool) -> None:
        if on and not self.key.text().strip():
            self.key.setText(secrets.token_urlsafe(24))  # the local network needs a key: one nobody can guess
            self.key.setCursorPosition(0)
        self._apply()

    def _on_key_edited(self) -> None:
        if self.key.text().strip() != self.controller.settings.api_key:
            self._apply()

    def generate_key(self) -> None:
        self.key.setText(secrets.token_urlsafe(24))
        self.key.setCursorPosition(0)
        self._apply()

    def _add_origin(self) -> None:
        text = self.origin_edit.text().strip()
        if not text:
            return
        if text == "*" or "://" not in text or text.endswith("/"):
            self.controller.present(AppError(f"An allowed origin is exact, such as http://localhost:3000, not "
                                               f"{text!r}."), False)
            return
        if not self.origins.findItems(text, Qt.MatchFlag.MatchExactly):
            self.origins.addItem(text)
            self._apply()
        self.origin_edit.clear()

    def _remove_origin(self) -> None:
        row = self.origins.currentRow()
        if row >= 0:
            self.origins.takeItem(row)
            self._apply()

    # ------------------------------------------------------------------ state

    def _on_switch(self, on: bool) -> None:
        if on:
            self.controller.start(user=True)
        else:
            self.controller.stop(user=True)
        self.refresh()

    def refresh(self) -> None:
        c = self.controller
        srv = c.server
        self.switch.blockSignals(True)
        self.switch.setChecked(c.running or c.starting)
        self.switch.blockSignals(False)
        self.switch.setEnabled(not c.busy)
        if c.busy:
            self.state.setText("Starting…" if c.starting else "Stopping…")
        elif srv is not None:
            where = "this computer and the local network" if c.settings.lan else "this computer only"
            self.state.setText(f"On, port {srv.port}, for {where}.")
        else:
            self.state.setText(f"Off. {c.error}" if c.error else "Off.")
        self.copy_key.setEnabled(bool(self.key.text()))
        self._show_addresses()
        self._show_model(c.model)

    def _show_addresses(self) -> None:
        c = self.controller
        srv = c.server
        for widgets in self.addr_rows:
            for w in widgets:
                self.addr_grid.removeWidget(w)
                w.hide()
                w.deleteLater()
        self.addr_rows = []
        if srv is not None:
            base = srv.base_url
            rows = [("OpenAI base URL", base), ("Ollama URL", base.removesuffix("/v1"))]
            rows += [("Local network", u) for u in c.lan_urls]
            if c.settings.lan and not c.lan_urls:
                rows.append(("Local network", "no network address found"))
        else:
            rows = [("", "The addresses appear here while the server runs.")]
        for i, (name, url) in enumerate(rows):
            label = QLabel(name)
            value = QLabel(url)
            value.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            value.setTextFormat(Qt.TextFormat.PlainText)
            copy = _button("Copy", "mdi6.content-copy")
            copy.setAccessibleName(f"Copy the {name or 'address'}")
            copy.clicked.connect(lambda _=False, u=url, n=name: self._copy(u, n))
            if name:
                self.addr_grid.addWidget(label, i, 0)
                self.addr_grid.addWidget(value, i, 1)
            else:  # the note while off: the whole row
                value.setObjectName("muted")
                self.addr_grid.addWidget(value, i, 0, 1, 3)
            self.addr_grid.addWidget(copy, i, 2)
            copy.setVisible(bool(name) and "://" in url)  # after it has its parent: a parentless one would open
            self.addr_rows.append((label, value, copy))

    def addresses(self) -> dict[str, list[str]]:
        """What the Addresses panel shows, with a Copy button: name -> addresses."""
        out: dict[str, list[str]] = {}
        for label, value, copy in self.addr_rows:
            if not copy.isHidden():
                out.setdefault(label.text(), []).append(value.text())
        return out

    def _show_model(self, ev: ModelEvent | None) -> None:
        c = self.controller
        self.model_bar.setVisible(bool(ev and ev.state == "loading"))
        loaded = c.loaded_model
        self.unload_btn.setEnabled(loaded is not None)
        if c.server is None:
            text = "The server is off."
        elif ev is not None and ev.state == "loading":
            self.model_bar.setValue(int(ev.fraction * 100))
            text = f"Loading {ev.model}{' for embeddings' if ev.embedding else ''}…"
        elif ev is not None and ev.state == "failed":
            text = f"{ev.model} could not be loaded: {ev.error}"
        elif loaded is not None:
            mode = " (embedding mode)" if ev is not None and ev.embedding else ""
            text = (f"{loaded}{mode} is loaded; it is unloaded after {c.settings.ttl_min} min without requests.")
        else:
            text = "No model loaded. A request that names an installed model loads it."
        self.model_label.setText(text)

    def _unload(self) -> None:
        if not self.controller.unload():
            self.controller.present(AppError("A request is using the model; unload it when the request is done."),
                                    False)

    def _copy(self, text: str, what: str) -> None:
        QGuiApplication.clipboard().setText(text)
        self.copied.emit(what or "address")


class ServerBadge(QLabel):
    """The status bar's line on the server: shown while it runs, with the model it has loaded."""

    def __init__(self, controller: ServerController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.setContentsMargins(4, 0, 4, 0)
        self.setAccessibleName("Local server")
        controller.state_changed.connect(self.refresh)
        controller.model_changed.connect(self.refresh)
        self.refresh()

    def refresh(self, *_: object) -> None:
        c = self.controller
        if c.server is None:
            self.hide()
            return
        ev, loaded = c.model, c.loaded_model
        if ev is not None and ev.state == "loading":
            what = f"loading {ev.model} {ev.fraction * 100:.0f}%"
        else:
            what = f"{loaded} loaded" if loaded else "no model loaded"
        self.setText(f"Server :{c.server.port} · {what}")
        self.setToolTip(f"The local server at {c.server.base_url}")
        self.show()


__all__ = ["ServerBadge", "ServerPage"]
