"""The one QObject between the GUI and the engine process.

Requests come in as ``*_requested`` slots on the GUI thread; the engine client's reader thread hands
events to a private signal, which Qt queues onto the GUI thread, where they are re-emitted as
past-tense signals. Nothing here blocks the GUI thread: loads and generations are fire-and-forget
requests to the engine process, which runs them in order.
"""
from __future__ import annotations

from typing import Any

from PySide6.QtCore import QObject, Qt, Signal, Slot

from desktop.engine import models
from desktop.engine import protocol as P
from desktop.engine.client import EngineClient, new_id
from desktop.engine.profiles import Profile


class EngineAdapter(QObject):
    model_loaded = Signal(object)  # P.Loaded
    load_failed = Signal(object)  # error dict
    token_received = Signal(str, str)  # request id, text
    generation_finished = Signal(str, object)  # request id, P.Finished
    generation_failed = Signal(str, object)  # request id, error dict
    _event = Signal(object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._event.connect(self._on_event, Qt.ConnectionType.QueuedConnection)
        self.client = EngineClient(on_event=self._event.emit)  # emit is thread-safe; delivery is queued
        self.profile: Profile | None = None
        self.current: str | None = None
        self._loads: set[str] = set()

    @Slot(object)
    def load_requested(self, profile: Profile) -> str:
        self.profile = profile
        req = models.load_request(profile, models.resolve_model(profile), new_id("load"))
        self._loads.add(req.id)
        return self.client.submit(req)

    @Slot(list)
    def send_requested(self, messages: list[dict[str, str]]) -> str:
        req = models.generate_request(self.profile, messages, new_id("gen"))
        self.current = req.id
        return self.client.submit(req)

    @Slot()
    def stop_requested(self) -> None:
        # A message to the engine, checked there between tokens: never a queued slot behind the stream.
        if self.current:
            self.client.cancel(self.current)

    def shutdown(self) -> None:
        self.client.close()

    @Slot(object)
    def _on_event(self, ev: Any) -> None:
        if isinstance(ev, P.TokenChunk):
            self.token_received.emit(ev.id, ev.text)
        elif isinstance(ev, P.Finished):
            self.current = None if self.current == ev.id else self.current
            self.generation_finished.emit(ev.id, ev)
        elif isinstance(ev, P.Loaded):
            self.model_loaded.emit(ev)
        elif isinstance(ev, P.Failed):
            if ev.id in self._loads or ev.id.startswith("reload"):
                self._loads.discard(ev.id)
                self.load_failed.emit(ev.error)
            else:
                self.current = None if self.current == ev.id else self.current
                self.generation_failed.emit(ev.id, ev.error)
