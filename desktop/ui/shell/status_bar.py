"""The status bar: the current model (from the app state), backend and GPU layers, speed, context use, and load progress. GUI thread.

Fields hide while they have nothing true to say: after a restart the context use is unknown until the next
answer (no "0/512" next to messages dimmed by an earlier answer), and deleting a chat clears its numbers.
Load progress is a real percentage when the engine reports it (LoadProgress events), else a busy bar
with the elapsed time; Cancel stops the load.
"""
from __future__ import annotations

import time

from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import (
    QFrame,
    QProgressBar,
    QPushButton,
    QStatusBar,
    QWidget,
)

from desktop.engine.inference import protocol as P
from desktop.ui.state import CurrentModel
from desktop.ui.widgets.elided import ElidedLabel


class Field(ElidedLabel):
    """A status bar field that hides itself (and its separator) while empty."""

    sep: QFrame | None = None

    def setText(self, text: str) -> None:  # noqa: N802 - Qt's name
        super().setText(text)
        self.setVisible(bool(text))
        if self.sep is not None:
            self.sep.setVisible(bool(text))


class StatusBar(QStatusBar):
    cancel_load_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = Field("No model loaded")
        self.model.setAccessibleName("Loaded model")
        self.backend = Field()
        self.speed = Field()
        self.ctx = Field()
        self.load_label = ElidedLabel()
        self.load_bar = QProgressBar()
        self.load_bar.setRange(0, 0)
        self.load_bar.setFixedWidth(120)
        self.load_bar.setAccessibleName("Load progress")
        self.load_cancel = QPushButton("Cancel")
        self.load_cancel.setAccessibleName("Cancel loading")
        self.load_cancel.clicked.connect(self.cancel_load_requested)
        self._load_widgets = (self.load_label, self.load_bar, self.load_cancel)
        for w in self._load_widgets:
            self.addPermanentWidget(w)
            w.hide()
        for i, label in enumerate((self.model, self.backend, self.speed, self.ctx)):
            if i:
                label.sep = QFrame()
                label.sep.setObjectName("StatusSep")
                label.sep.setFixedWidth(1)
                self.addPermanentWidget(label.sep)
            label.setText(label.text())
            label.setContentsMargins(4, 0, 4, 0)
            self.addPermanentWidget(label)
        self._t0 = 0.0
        self._load_key: tuple[str, bool] | None = None  # the load the bar shows
        self._name = ""
        self._fraction: float | None = None
        self._timer = QTimer(self, interval=500)
        self._timer.timeout.connect(self._tick)

    # ---------------------------------------------------------------- loading

    def load_started(self, name: str) -> None:
        self._t0 = time.monotonic()
        self._name = name
        self._fraction = None
        self.load_bar.setRange(0, 0)
        for w in self._load_widgets:
            w.show()
        self._tick()
        self._timer.start()

    def load_progress(self, fraction: float) -> None:
        self._fraction = max(0.0, min(1.0, fraction))
        self.load_bar.setRange(0, 100)
        self.load_bar.setValue(int(self._fraction * 100))
        self._tick()

    def _tick(self) -> None:
        pct = f" {self._fraction * 100:.0f}%" if self._fraction is not None else ""
        self.load_label.setText(f"Loading {self._name}…{pct} · {time.monotonic() - self._t0:.0f} s")

    def load_ended(self) -> None:
        self._timer.stop()
        for w in self._load_widgets:
            w.hide()

    @property
    def loading(self) -> bool:
        return self.load_label.isVisibleTo(self)

    # ---------------------------------------------------------------- model and answers

    def show_current(self, current: CurrentModel) -> None:
        """The app state's current model (ui/state.py): its name, quant label and backend, and the load bar
        while one loads (started once per load, so its clock runs from the load's start)."""
        key = (current.loading.id, current.restarting) if current.loading is not None else None
        if key != self._load_key:
            self._load_key = key
            if key is None:
                self.load_ended()
            else:
                self.load_started(current.loading_name + (" (restarting the engine)" if current.restarting else ""))
                # A restart's reload is the engine coming back for the next message: nothing to cancel there.
                self.load_cancel.setVisible(not current.restarting)
        ev = current.info
        if current.stopped:
            self.no_model("Engine stopped; it restarts with the next message")
        elif ev is None:
            self.no_model()
        else:
            self.model.setText(f"{current.name} · {current.quant}" if current.quant else current.name)
            self.model.setToolTip(f"{ev.model_path}\nllama.cpp {ev.llama_cpp_version}\n" + "\n".join(ev.notes))
            layers = (f"{ev.n_gpu_layers}/{ev.gpu_layers_total} GPU layers" if ev.gpu_layers_total
                      else f"{ev.n_gpu_layers} GPU layers")
            self.backend.setText(f"{ev.backend} · {layers}" if ev.backend not in ("CPU", "remote") else ev.backend)
            # The engine's one-line reason for its GPU-layer choice (free VRAM, model size, context).
            self.backend.setToolTip(ev.gpu_reason or ev.description)

    def no_model(self, text: str = "No model loaded") -> None:
        self.model.setText(text)
        self.backend.setText("")

    def answer_finished(self, stats: P.GenerationStats, dropped: int) -> None:
        self.speed.setText(f"{stats.tokens_per_s:.1f} tok/s · first token {stats.ttft_s * 1000:.0f} ms")
        self.show_context(stats.context_used, stats.context_total, dropped, stats.reasoning_tokens)

    def show_context(self, used: int | None, total: int | None, dropped: int = 0, thinking: int | None = 0) -> None:
        """Context use after the last answer; ``thinking``: how many of its tokens were a reasoning model's
        thinking (in the context now, though the template may drop them from the next prompt)."""
        if not used or not total:
            self.ctx.setText("")
            return
        of_it = f", {thinking:,} thinking" if thinking else ""
        left_out = f" · {dropped} earlier messages not in context" if dropped else ""
        self.ctx.setText(f"context {used:,}/{total:,}{of_it}{left_out}")

    def clear_chat_numbers(self) -> None:
        self.speed.setText("")
        self.ctx.setText("")
