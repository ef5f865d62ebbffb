"""The main window: conversation, input, a Model menu of profiles, and a status bar. GUI thread only."""
from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import (QHBoxLayout, QLabel, QListView, QMainWindow, QPlainTextEdit, QPushButton,
                               QVBoxLayout, QWidget)

from desktop.engine import models
from desktop.engine import protocol as P
from desktop.engine.errors import AppError
from desktop.engine.profiles import Profile, ProfileStore

from .chat_model import ChatModel
from .engine_adapter import EngineAdapter
from .errors import ErrorPresenter


class _Input(QPlainTextEdit):
    """Enter sends, Shift+Enter inserts a newline, Esc stops."""

    def __init__(self, window: "MainWindow") -> None:
        super().__init__()
        self.window_ = window
        self.setPlaceholderText("Message the model. Enter sends, Shift+Enter adds a line, Esc stops.")
        self.setFixedHeight(72)

    def keyPressEvent(self, e) -> None:  # noqa: N802 - Qt's name
        if e.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and not e.modifiers() & Qt.KeyboardModifier.ShiftModifier:
            self.window_.send()
            return
        if e.key() == Qt.Key.Key_Escape:
            self.window_.adapter.stop_requested()
            return
        super().keyPressEvent(e)


class MainWindow(QMainWindow):
    def __init__(self, store: ProfileStore | None = None) -> None:
        super().__init__()
        self.setWindowTitle("Desktop Chat")
        self.resize(900, 640)
        self.store = store or ProfileStore()
        self.model = ChatModel(self)
        self.adapter = EngineAdapter(self)
        self.loaded: P.Loaded | None = None
        self.last_stats: P.GenerationStats | None = None

        self.view = QListView()
        self.view.setModel(self.model)
        self.view.setWordWrap(True)
        self.view.setUniformItemSizes(False)
        self.view.setSpacing(6)
        self.view.setAlternatingRowColors(True)
        self.input = _Input(self)
        self.send_btn = QPushButton("Send")
        self.send_btn.clicked.connect(self.send)
        self.stop_btn = QPushButton("Stop")
        self.stop_btn.clicked.connect(self.adapter.stop_requested)
        self.stop_btn.setEnabled(False)
        row = QHBoxLayout()
        row.addWidget(self.input, 1)
        col = QVBoxLayout()
        col.addWidget(self.send_btn)
        col.addWidget(self.stop_btn)
        row.addLayout(col)
        central = QWidget()
        lay = QVBoxLayout(central)
        lay.addWidget(self.view, 1)
        lay.addLayout(row)
        self.setCentralWidget(central)

        self.status_model = QLabel()
        self.status_speed = QLabel()
        for label in (self.status_speed, self.status_model):
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            label.setMinimumWidth(label.fontMetrics().horizontalAdvance("0" * 40))
            self.statusBar().addPermanentWidget(label)
        self.errors = ErrorPresenter(self, lambda t: self.statusBar().showMessage(t, 15000))

        self._build_menus()
        self.adapter.model_loaded.connect(self._on_loaded)
        self.adapter.load_failed.connect(lambda err: self.errors.present(err, modal=True))
        self.adapter.token_received.connect(lambda _rid, text: self.model.append_token(text))
        self.adapter.generation_finished.connect(self._on_finished)
        self.adapter.generation_failed.connect(self._on_failed)

    def _build_menus(self) -> None:
        chat = self.menuBar().addMenu("&Chat")
        new = QAction("&New chat", self, shortcut=QKeySequence.StandardKey.New)
        new.triggered.connect(self.new_chat)
        chat.addAction(new)
        quit_ = QAction("&Quit", self, shortcut=QKeySequence.StandardKey.Quit)
        quit_.triggered.connect(self.close)
        chat.addAction(quit_)
        self.model_menu = self.menuBar().addMenu("&Model")
        group = QActionGroup(self)
        self.profile_actions: dict[str, QAction] = {}
        for p in self.store.all():
            try:
                models.resolve_model(p)
                label = f"{p.name}"
            except AppError:
                label = f"{p.name}  (not downloaded)"
            act = QAction(label, self, checkable=True)
            act.triggered.connect(lambda _=False, prof=p: self.load_profile(prof))
            group.addAction(act)
            self.model_menu.addAction(act)
            self.profile_actions[p.id] = act

    # ------------------------------------------------------------------ actions

    def load_profile(self, profile: Profile) -> None:
        try:
            self.adapter.load_requested(profile)
        except AppError as exc:
            self.errors.present(exc, modal=True)
            return
        self.profile_actions[profile.id].setChecked(True)
        self.status_model.setText(f"Loading {profile.name}…")

    def new_chat(self) -> None:
        self.model.beginResetModel()
        self.model.messages.clear()
        self.model.endResetModel()

    def send(self) -> None:
        text = self.input.toPlainText().strip()
        if not text or self.adapter.current:
            return
        self.input.clear()
        self.model.append("user", text)
        history = self.model.history()
        self.model.append("assistant", "", state="streaming")
        self.adapter.send_requested(history)
        self.send_btn.setEnabled(False)
        self.stop_btn.setEnabled(True)

    # ------------------------------------------------------------------ engine events

    def _on_loaded(self, ev: P.Loaded) -> None:
        self.loaded = ev
        name = self.adapter.profile.name if self.adapter.profile else ev.model_path
        self.status_model.setText(f"{name} · {ev.backend} ({ev.n_gpu_layers} GPU layers) · ctx {ev.n_ctx}")

    def _on_finished(self, _rid: str, ev: P.Finished) -> None:
        self.model.finish_last("cancelled" if ev.finish_reason == "cancelled" else "done", ev.text)
        self.last_stats = s = ev.stats
        self.status_speed.setText(f"{s.tokens_per_s:.1f} tok/s · TTFT {s.ttft_s * 1000:.0f} ms · "
                                  f"context {s.context_used}/{s.context_total}")
        self._idle()

    def _on_failed(self, _rid: str, error: dict[str, Any]) -> None:
        self.model.finish_last("error")  # the partial answer stays
        self.errors.present(error)
        self._idle()

    def _idle(self) -> None:
        self.send_btn.setEnabled(True)
        self.stop_btn.setEnabled(False)

    def closeEvent(self, e) -> None:  # noqa: N802
        self.adapter.shutdown()
        super().closeEvent(e)
