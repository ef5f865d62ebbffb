"""Which model the server runs: every installed model by name, loaded on demand into the one engine, unloaded
after an idle TTL. Plain Python; runs in the server's process (CLI or GUI), on HTTP handler threads and one TTL
thread.

The engine holds one model at a time. A request names a model; the pool loads it (or reloads it in embedding
mode for embeddings) while the request holds the engine's turn (``requests.RequestQueue``), so requests wait for a
load and never race one. The engine may be shared with the app's chat window: a Load sent by anyone else
(``EngineClient.last_load`` is no longer the pool's) means the pool's model is gone, and the next request loads it
again. ``on_model`` reports every change (loading with progress, loaded, unloaded, failed) for a status line.
"""
from __future__ import annotations

import dataclasses
import os
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from desktop.engine.errors import AppError, ModelNotFoundError, from_dict
from desktop.engine.inference import protocol as P
from desktop.engine.inference.client import EngineClient, new_id
from desktop.engine.library import registry
from desktop.engine.profiles import Profile

DEFAULT_TTL_S = 3600.0
EMBEDDING_CTX = 2048  # tokens per input in embedding mode (each input is evaluated as one batch)


@dataclass(frozen=True)
class ServedModel:
    """A model the server offers: its id (what ``models list`` shows), its GGUF and the profile it runs with."""

    id: str
    path: str
    profile: Profile | None = None
    name: str = ""
    size: int = 0
    quant: str | None = None
    modified: float = 0.0

    def __post_init__(self) -> None:
        # Listings show the file's size and date; a caller that did not give them gets the file's own.
        if self.path and (not self.size or not self.modified):
            try:
                st = os.stat(self.path)
            except OSError:
                return
            object.__setattr__(self, "size", self.size or st.st_size)
            object.__setattr__(self, "modified", self.modified or st.st_mtime)


@dataclass(frozen=True)
class ModelEvent:
    """What the engine holds for the server: ``state`` is loading (with ``fraction``), loaded, unloaded or
    failed (with ``error``)."""

    model: str | None
    state: str
    fraction: float = 0.0
    embedding: bool = False
    error: str = ""


def installed_models(store: Any) -> list[ServedModel]:
    """Every installed model (``registry.list_installed``), with the profile it runs with where one exists."""
    profiles = {p.id: p for p in store.all()} if store is not None else {}
    out = []
    for m in registry.list_installed(store):
        if m.status == "missing":
            continue
        out.append(ServedModel(m.id, m.path, profiles.get(m.profile or ""), m.name, m.size, m.quant))
    return out


class ModelPool:
    """The models on offer (``catalog``, plus a ``pinned`` one such as ``serve --model``) and the one loaded."""

    def __init__(self, client: EngineClient, catalog: Callable[[], list[ServedModel]], *,
                 pinned: ServedModel | None = None, ttl_s: float = DEFAULT_TTL_S, n_ctx: int | None = None,
                 on_model: Callable[[ModelEvent], None] | None = None, load_timeout_s: float = 600.0) -> None:
        self.client, self.catalog, self.pinned = client, catalog, pinned
        self.ttl_s, self.n_ctx, self.on_model, self.load_timeout_s = ttl_s, n_ctx, on_model, load_timeout_s
        self._current: tuple[str, bool] | None = None
        self._load_msg: P.Load | None = None
        self._last_used = time.monotonic()
        self._lock = threading.Lock()
        self._listing: tuple[float, list[ServedModel]] = (0.0, [])

    # ------------------------------------------------------------------ what is offered

    def models(self) -> list[ServedModel]:
        """The pinned model first, then the catalog; the catalog is read at most once a second (it scans disk)."""
        now = time.monotonic()
        with self._lock:
            stamp, listing = self._listing
            if now - stamp > 1.0:
                listing = list(self.catalog())
                self._listing = (now, listing)
        out = [self.pinned] if self.pinned else []
        return out + [m for m in listing if not self.pinned or m.id != self.pinned.id]

    def find(self, name: Any) -> ServedModel:
        """The model a request names: its id (Ollama clients may add ``:latest``); without a name the pinned or
        loaded one, else the first. ModelNotFoundError lists what there is."""
        models = self.models()
        if name is None or name == "":
            loaded = self.loaded
            pick = self.pinned or next((m for m in models if m.id == loaded), None) or (models[0] if models else None)
            if pick is None:
                raise ModelNotFoundError("no model is installed; download one with `desktop-chat models download`")
            return pick
        if isinstance(name, str):
            for candidate in (name, name.removesuffix(":latest")):
                for m in models:
                    if m.id == candidate:
                        return m
        known = ", ".join(m.id for m in models) or "none installed"
        raise ModelNotFoundError(f"the model {name!r} does not exist; this server has: {known}")

    # ------------------------------------------------------------------ what is loaded

    @property
    def loaded(self) -> str | None:
        """The id of the model the engine holds for the server (None: none, or the chat window took the engine)."""
        cur = self._current
        if cur is None or self.client.last_load is not self._load_msg:
            return None
        return cur[0]

    @property
    def loaded_for_embedding(self) -> bool:
        return self.loaded is not None and bool(self._current and self._current[1])

    def ensure(self, model: ServedModel, embedding: bool = False) -> None:
        """Have ``model`` loaded (in embedding mode or not). The caller holds the engine's turn. Raises the load's
        AppError (the engine stays usable for the next request)."""
        self._last_used = time.monotonic()
        if self.loaded == model.id and self._current == (model.id, embedding):
            return
        if model.profile is not None and registry.is_remote(model.profile):
            msg = registry.load_request(model.profile, None, new_id("load"), n_ctx=self.n_ctx)
        else:
            msg = registry.load_request(model.profile, model.path, new_id("load"), n_ctx=self.n_ctx)
        if embedding:
            msg = dataclasses.replace(msg, embedding=True, n_ctx=min(msg.n_ctx, EMBEDDING_CTX), speculative=None)
        self._current, self._load_msg = None, None
        self._emit(ModelEvent(model.id, "loading", 0.0, embedding))
        try:
            for ev in self.client.events(msg, timeout=self.load_timeout_s):
                if isinstance(ev, P.LoadProgress):
                    self._emit(ModelEvent(model.id, "loading", ev.fraction, embedding))
                elif isinstance(ev, P.Failed):
                    raise from_dict(ev.error)
        except AppError as exc:
            if self.client.last_load is msg:
                self.client.last_load = None  # a restarted engine must not reload the model that failed
            self._emit(ModelEvent(model.id, "failed", 0.0, embedding, exc.message))
            raise
        self._current, self._load_msg = (model.id, embedding), msg
        self._last_used = time.monotonic()
        self._emit(ModelEvent(model.id, "loaded", 1.0, embedding))

    def touch(self) -> None:
        self._last_used = time.monotonic()

    def idle_s(self) -> float:
        return time.monotonic() - self._last_used

    def unload(self) -> None:
        """Free the engine's model (the caller holds the engine's turn). Not when someone else loaded it."""
        if self.loaded is None:
            return
        model = self._current[0] if self._current else None
        self._current, self._load_msg = None, None
        if self.client.alive():
            self.client.last_load = None
            self.client.submit(P.Unload(new_id("unload")))
        self._emit(ModelEvent(model, "unloaded"))

    def _emit(self, ev: ModelEvent) -> None:
        if self.on_model is not None:
            try:
                self.on_model(ev)
            except Exception:  # noqa: BLE001 - a status display must not break a request
                pass


__all__ = ["DEFAULT_TTL_S", "ModelEvent", "ModelPool", "ServedModel", "installed_models"]
