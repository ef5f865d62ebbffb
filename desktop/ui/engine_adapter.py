"""The one QObject between the GUI and the engine process.

Requests come in as ``*_requested`` slots on the GUI thread; the engine client's reader thread hands
events to a private signal, which Qt queues onto the GUI thread, where they are re-emitted as
past-tense signals. Nothing here blocks the GUI thread: loads and generations are fire-and-forget
requests to the engine process, which runs them in order (a message sent while a model loads waits
for the load). The one exception is :meth:`cancel_load`, which kills the engine process (llama.cpp
cannot interrupt a load) and waits the few milliseconds until its death is reported.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Iterator

from PySide6.QtCore import QObject, Qt, QThread, Signal, Slot

from desktop.engine.errors import AppError
from desktop.engine.inference import protocol as P
from desktop.engine.inference.client import EngineClient, new_id
from desktop.engine.library import registry
from desktop.engine.profiles import Profile


class EngineAdapter(QObject):
    load_started = Signal(object)  # Profile
    model_loaded = Signal(object)  # P.Loaded
    load_failed = Signal(object)  # error dict
    load_cancelled = Signal(object)  # the Profile whose load was cancelled
    load_progress = Signal(float)  # 0..1, when the engine reports it (LoadProgress events)
    tokens_counted = Signal(str, int)  # request id, tokens in the chunk (emitted just before token_received)
    token_received = Signal(str, str)  # request id, text of the answer
    reasoning_received = Signal(str, str)  # request id, text of the thinking (reasoning models), never in the answer
    generation_finished = Signal(str, object)  # request id, P.Finished
    generation_failed = Signal(str, object)  # request id, error dict
    restarting = Signal(object)  # Profile: the engine died; this request starts it again and reloads the model
    _event = Signal(object)
    _restart_notice = Signal(object)  # ``restarting`` from a worker thread, queued to the GUI thread

    def __init__(self, parent: QObject | None = None, client: EngineClient | None = None) -> None:
        super().__init__(parent)
        self._event.connect(self._on_event, Qt.ConnectionType.QueuedConnection)
        self._restart_notice.connect(self.restarting, Qt.ConnectionType.QueuedConnection)
        self.client = client or EngineClient(on_event=self._event.emit)  # emit is thread-safe; delivery queued
        self.profile: Profile | None = None  # the profile loaded or loading
        self.loaded_profile: Profile | None = None  # the profile whose model is in the engine
        self.current: str | None = None  # the generation in flight
        self.loading: str | None = None  # the load in flight
        self._loads: set[str] = set()
        self._killed: set[str] = set()  # requests failed on purpose by cancel_load

    @Slot(object)
    def load_requested(self, profile: Profile, n_ctx: int | None = None,
                       overrides: dict[str, Any] | None = None) -> str:
        """Raises ModelNotFoundError (before anything is sent) when the profile's model is not installed.

        ``n_ctx``/``overrides`` are the settings panel's per-chat load settings (context, GPU layers)."""
        path = None if registry.is_remote(profile) else registry.resolve_model(profile)
        req = registry.load_request(profile, path, new_id("load"), n_ctx=n_ctx, overrides=overrides)
        self.profile = profile
        self._loads.add(req.id)
        self.loading = req.id
        self.load_started.emit(profile)
        return self.client.submit(req)

    def cancel_load(self, restore: bool = True) -> None:
        """Stop the load in flight and, with ``restore``, go back to the previously loaded model (if any)."""
        if not self.loading:
            return
        cancelled = self.profile
        self._killed |= self.client.forget_load()
        self.loading = None
        self.client.kill()
        self.profile = None
        if restore and self.loaded_profile is not None:
            try:
                self.load_requested(self.loaded_profile)
            except AppError:  # its file is gone meanwhile: nothing to go back to
                self.loaded_profile = None
        self.load_cancelled.emit(cancelled)

    def request_for(self, profile: Profile | None = None, **sampling: Any) -> P.Generate:
        """A send's one request, still without its messages: ``profile`` is the loaded one with this chat's
        changes (system prompt, thinking), default the loaded one; ``sampling`` overrides its defaults. Also
        what the next message would send, as the settings forms and a provenance preview show it."""
        return registry.generate_request(profile or self.profile, [], new_id("gen"), **sampling)

    def submit(self, req: P.Generate) -> str:
        """Send a chat's request to the engine (the answer streams back as this adapter's signals)."""
        self.current = req.id
        restart = self.client.needs_restart()  # this request starts the engine again and reloads first: say so
        rid = self.client.submit(req)
        self._restarted(restart)
        return rid

    # The engine as a send's stage uses it (the tool loop and the attachments' token counts, on a worker
    # thread): EngineClient's calls, through here, so that a restart of a dead engine by one of them is
    # announced (``restarting``, on the GUI thread) as for a plain send. The stage's Stop is the loop's own
    # ``cancel`` of its round's request, which comes here too.
    def generate(self, req: P.Generate, timeout: float | None = None) -> Iterator[Any]:
        self._restarted(self.client.needs_restart())
        yield from self.client.generate(req, timeout=timeout)

    def cancel(self, request_id: str) -> None:
        self.client.cancel(request_id)

    def count_tokens(self, text: str, timeout: float | None = 60) -> int:
        self._restarted(self.client.needs_restart())
        return self.client.count_tokens(text, timeout=timeout)

    def _restarted(self, restart: bool) -> None:
        p = self.loaded_profile or self.profile
        if not restart or p is None:
            return
        if QThread.currentThread() is self.thread():
            self.restarting.emit(p)
        else:  # a stage's worker: the receivers (the app state, the status bar) live on the GUI thread
            self._restart_notice.emit(p)

    def reload(self, load: P.Load) -> str:
        """Load the chat's model again after the local server used the engine for another: ``load`` is the chat's
        last Load, sent under a new "reload" id, which the engine's answer reports as model_loaded."""
        return self.client.submit(dataclasses.replace(load, id=new_id("reload")))

    @Slot()
    def stop_requested(self) -> None:
        # A message to the engine, checked there between tokens: never a queued slot behind the stream.
        if self.current:
            self.client.cancel(self.current)

    def shutdown(self) -> None:
        self.client.close()

    @Slot(object)
    def _on_event(self, ev: Any) -> None:
        if isinstance(ev, P.LoadProgress):
            if ev.id == self.loading:
                self.load_progress.emit(float(ev.fraction))
            return
        if isinstance(ev, P.TokenChunk):
            self.tokens_counted.emit(ev.id, ev.n_tokens)
            if ev.reasoning:
                self.reasoning_received.emit(ev.id, ev.reasoning)
            if ev.text or not ev.reasoning:
                self.token_received.emit(ev.id, ev.text)
        elif isinstance(ev, P.Finished):
            self.current = None if self.current == ev.id else self.current
            self.generation_finished.emit(ev.id, ev)
        elif isinstance(ev, P.Loaded):
            self._loads.discard(ev.id)
            # A "reload" (the engine restarted, or the chat's model back after the local server) counts unless a
            # load of another model is on its way: that one's answer is the one to report.
            if ev.id == self.loading or (ev.id.startswith("reload") and not self.loading):
                self.loading = None if ev.id == self.loading else self.loading
                self.loaded_profile = self.profile
                self.model_loaded.emit(ev)
        elif isinstance(ev, P.Failed):
            if ev.id in self._killed:
                self._killed.discard(ev.id)
                if ev.id in self._loads:
                    self._loads.discard(ev.id)
                    return
                self.current = None if self.current == ev.id else self.current
                self.generation_failed.emit(ev.id, {"code": "cancelled", "message":
                                                    "Stopped: the model load was cancelled.", "details": None})
            elif ev.id in self._loads or ev.id.startswith("reload"):
                self._loads.discard(ev.id)
                self.loading = None if ev.id == self.loading else self.loading
                self.load_failed.emit(ev.error)
            else:
                self.current = None if self.current == ev.id else self.current
                self.generation_failed.emit(ev.id, ev.error)
