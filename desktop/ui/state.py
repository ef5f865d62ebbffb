"""The app's state, without widgets: the current model and its load state, the installed models, the downloads
and the open chat. GUI thread (QObjects whose signals the views subscribe to).

Compare napari's ``ViewerModel`` and its Qt views: the window and its pages only subscribe to this object and
call its parts; none of them keeps a copy of what it says. :class:`AppState` owns one of each part:

- ``adapter`` (:class:`EngineAdapter`): requests to the engine process, its events as signals;
- ``installed`` (:class:`InstalledModels`): the one scan of installed models, announced in ``changed``;
- ``downloads`` (:class:`DownloadsController`): the one download queue, announced in ``event_received``;
- ``session`` (:class:`ChatSession`) over ``messages`` (:class:`ChatModel`): the open chat and the answer
  being written, announced in ``chat_changed``, ``busy_changed`` and the model's row signals.

What none of the parts knows alone, the state adds: the current model as one value (:class:`CurrentModel`),
with its one name and quant label (the installed file's, so a rename reaches every view), announced in
``model_changed`` whenever a load starts, ends, fails or is cancelled, the engine restarts, or a scan renames
it. Nothing here imports QtWidgets (a test imports this module in a fresh interpreter to prove it).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from PySide6.QtCore import QObject, Signal

from desktop.engine.chats.store import ChatStore
from desktop.engine.inference import protocol as P
from desktop.engine.library import registry
from desktop.engine.profiles import Profile, ProfileStore
from desktop.engine.server.pool import ServedModel, installed_models
from desktop.ui.chat.message_model import ChatModel
from desktop.ui.chat.session import ChatSession
from desktop.ui.engine_adapter import EngineAdapter
from desktop.ui.library.download_queue import DownloadsController
from desktop.ui.library.installed import InstalledModels


@dataclass(frozen=True)
class CurrentModel:
    """The model the next message goes to, as every view shows it."""

    profile: Profile | None = None  # the profile whose model is in the engine (None: none is)
    name: str = ""  # its one name: the installed file's, which follows a rename
    quant: str | None = None  # its quant label: the file's own type, with the repo's name beside it when they differ
    info: P.Loaded | None = None  # the engine's report on it (backend, context, vision, path)
    loading: Profile | None = None  # a profile being loaded (it replaces ``profile`` once in)
    loading_name: str = ""
    restarting: bool = False  # the engine died: ``loading`` is the model it loads again
    stopped: bool = False  # the engine died: ``profile``'s model loads again with the next message

    @property
    def target(self) -> Profile | None:
        """The profile the next message goes to: the one loading, else the one loaded."""
        return self.loading or self.profile

    @property
    def phase(self) -> str:
        """"restarting", "loading", "stopped", "loaded" or "none"."""
        if self.loading is not None:
            return "restarting" if self.restarting else "loading"
        if self.stopped:
            return "stopped"
        return "loaded" if self.profile is not None else "none"


class AppState(QObject):
    model_changed = Signal(object)  # CurrentModel, after any change of it (load state, name, quant)
    model_loaded = Signal(object)  # CurrentModel, once per finished load (after model_changed)
    load_progress = Signal(float)  # 0..1 of the load in flight, when the engine reports it
    load_failed = Signal(object)  # error dict of a failed load (the state is then "none")
    load_cancelled = Signal(object, object)  # the Profile whose load stopped, the Profile going back in (or None)

    def __init__(self, store: ProfileStore | None = None, chats: ChatStore | None = None,
                 parent: QObject | None = None, *, adapter: EngineAdapter | None = None,
                 downloads: DownloadsController | None = None, installed: InstalledModels | None = None) -> None:
        super().__init__(parent)
        self.store = store or ProfileStore()
        self.chats = chats or ChatStore()
        self.adapter = adapter or EngineAdapter(self)
        self.installed = installed or InstalledModels(self.store, parent=self)
        self.downloads = downloads or DownloadsController(self, self.store)
        self.chats.mark_interrupted()  # answers a crash left "streaming" are shown as interrupted
        self.messages = ChatModel(self)
        self.session = ChatSession(self.adapter, self.chats, self.messages, self)
        self.current = CurrentModel()
        e = self.adapter
        e.load_started.connect(lambda p: self._loading(p, restarting=False))
        e.restarting.connect(lambda p: self._loading(p, restarting=True))
        e.load_progress.connect(self.load_progress)
        e.model_loaded.connect(self._on_loaded)
        e.load_failed.connect(self._on_load_failed)
        e.load_cancelled.connect(self._on_load_cancelled)
        e.generation_failed.connect(self._on_generation_failed)
        self.installed.changed.connect(self._rename)
        self.installed.refresh()  # the first scan, on a worker: the views fill when it is in

    # ---------------------------------------------------------------- the current model

    def describe(self, profile: Profile | None, info: P.Loaded | None = None) -> tuple[str, str | None]:
        """(name, quant label) of ``profile``'s model as the last scan knows it (no I/O)."""
        path = getattr(info, "model_path", None)
        fallback = profile.name if profile else (path or "")
        return self.installed.describe(profile.id if profile else None, path, getattr(info, "quant", None), fallback)

    def _set(self, current: CurrentModel) -> None:
        self.current = current
        if current.loading is not None and not current.restarting:
            # Another model is on its way: a message sent meanwhile is answered by it, so its provenance, the
            # vision check and the attachments' budget must not use the outgoing model's report.
            self.session.loaded, self.session.model_name = None, current.loading_name or None
        else:
            self.session.loaded, self.session.model_name = current.info, current.name or None
        self.model_changed.emit(current)

    def _loading(self, profile: Profile, restarting: bool) -> None:
        name = self.installed.name_of(profile.id, profile.name)
        self._set(replace(self.current, loading=profile, loading_name=name, restarting=restarting))

    def _on_loaded(self, ev: P.Loaded) -> None:
        p = self.adapter.loaded_profile
        name, quant = self.describe(p, ev)
        self._set(CurrentModel(profile=p, name=name, quant=quant, info=ev))
        if ev.model_path and not registry.is_remote(p):
            self.session.hash_later(ev.model_path)  # the answers' provenance names the file by its hash
        self.model_loaded.emit(self.current)

    def _on_load_failed(self, error: dict[str, Any]) -> None:
        self._set(CurrentModel())  # the engine let the old model go before it tried the new one
        self.load_failed.emit(error)

    def _on_load_cancelled(self, profile: Profile | None) -> None:
        back = self.adapter.profile if self.adapter.loading else None  # the previous model, loading again
        if back is None:
            self._set(CurrentModel())
        self.load_cancelled.emit(profile, back)

    def profile_saved(self, profile_id: str) -> None:
        """A profile's settings were saved: the current model's profile is the saved one from now on (its
        sampling, system prompt and stops apply to the next message; load settings wait for a reload)."""
        c, a = self.current, self.adapter
        if profile_id not in self.store.ids() or profile_id not in {p.id for p in (c.profile, c.loading) if p}:
            return
        saved = self.store.get(profile_id)
        if a.profile is not None and a.profile.id == profile_id:
            a.profile = saved
        if a.loaded_profile is not None and a.loaded_profile.id == profile_id:
            a.loaded_profile = saved
        self._set(replace(c, profile=saved if c.profile and c.profile.id == profile_id else c.profile,
                          loading=saved if c.loading and c.loading.id == profile_id else c.loading))

    def _on_generation_failed(self, _rid: str, error: dict[str, Any]) -> None:
        if error.get("code") == "engine_crashed" and self.current.loading is None:
            self._set(replace(self.current, stopped=True))

    def _rename(self) -> None:
        """A scan is in: a rename, a removal or an import may have changed the names shown."""
        c = self.current
        name, quant = self.describe(c.profile, c.info) if c.profile is not None else ("", None)
        loading_name = self.installed.name_of(c.loading.id, c.loading.name) if c.loading is not None else ""
        if (name, quant, loading_name) != (c.name, c.quant, c.loading_name):
            self._set(replace(c, name=name, quant=quant, loading_name=loading_name))

    # ---------------------------------------------------------------- the local server

    def served_models(self) -> list[ServedModel]:
        """What the local server offers: the installed models of the one scan, each with its profile and its one
        name. Called on the server's threads: it reads the last answer (replaced whole on the GUI thread); before
        the first answer is in, the server lists the library itself."""
        if not self.installed.scanned:
            return installed_models(self.store)
        profiles = {p.id: p for p in self.store.all()}
        return [ServedModel(i.id, i.path, profiles.get(i.profile_id or ""), i.name, i.size, i.quant)
                for i in self.installed.library.items if i.status != "missing"]

    # ---------------------------------------------------------------- the end

    def close(self) -> None:
        """On quit: the answer in flight is saved as it stands, the running download is left resumable, and the
        engine process ends."""
        self.session.finish_on_close()
        self.downloads.close()
        self.adapter.shutdown()
