"""The app's one local server, and the engine it shares with the chat. Lives on the GUI thread.

``ServerController`` owns the ``LocalServer`` (desktop/engine/server): it builds one from the saved
``ServerSettings``, starts and stops it on a worker (binding and shutting a socket is I/O), and re-emits the
server's callbacks, which run on server threads, as queued signals. Changing a setting while it runs stops it and
starts a new one (a LocalServer's config is fixed).

The server and the chat window use the window's one EngineClient, which holds one model at a time. The chat's
model is gone from the engine once the server loaded one for a request (``client.last_load`` is no longer the
chat's Load). So a chat send first asks :meth:`chat_may_send`: when the chat's model must be loaded again it
says so (``notice``) and sends only when the user agrees; while the server runs, the chat holds the server's
engine turn (``LocalServer.engine_turn``'s queue) from before its Load until its answer ends, so no request
loads another model between the chat's Load and its Generate.
"""
from __future__ import annotations

import errno
from dataclasses import dataclass
from typing import Any, Callable

from PySide6.QtCore import QObject, QSettings, QTimer, Signal

from desktop.engine.errors import AppError
from desktop.engine.server.config import DEFAULT_PORT, RequestLog, ServerConfig
from desktop.engine.server.pool import ModelEvent, ServedModel
from desktop.ui.workers import JobKeeper

GROUP = "server"
DEFAULT_TTL_MIN = 60


@dataclass
class ServerSettings:
    """What the Server page sets; kept in QSettings under ``server/``."""

    enabled: bool = False  # on when the app last ran it: started again at app start
    port: int = DEFAULT_PORT
    lan: bool = False
    api_key: str = ""
    origins: tuple[str, ...] = ()
    ttl_min: int = DEFAULT_TTL_MIN

    @classmethod
    def load(cls) -> "ServerSettings":
        st = QSettings()
        st.beginGroup(GROUP)
        d = cls()
        origins = st.value("origins", [], type=list) or []
        return cls(enabled=st.value("enabled", d.enabled, type=bool), port=st.value("port", d.port, type=int),
                   lan=st.value("lan", d.lan, type=bool), api_key=st.value("api_key", d.api_key, type=str),
                   origins=tuple(str(o) for o in origins), ttl_min=st.value("ttl_min", d.ttl_min, type=int))

    def values(self) -> dict[str, Any]:
        return {"enabled": self.enabled, "port": self.port, "lan": self.lan, "api_key": self.api_key,
                "origins": list(self.origins), "ttl_min": self.ttl_min}

    def config(self) -> ServerConfig:
        return ServerConfig(port=self.port, lan=self.lan, api_key=self.api_key or None,
                            allowed_origins=tuple(self.origins), model_ttl_s=self.ttl_min * 60.0)


def _write_settings(values: dict[str, Any]) -> None:  # a worker: QSettings.sync writes the file
    st = QSettings()
    st.beginGroup(GROUP)
    for k, v in values.items():
        st.setValue(k, v)
    st.endGroup()
    st.sync()


def start_error(exc: BaseException, port: int) -> BaseException:
    """A bind failure in one sentence that names the port; other errors as they are."""
    cause = exc.__cause__ if isinstance(exc.__cause__, OSError) else exc if isinstance(exc, OSError) else None
    if cause is not None and cause.errno == errno.EADDRINUSE:
        return AppError(f"Port {port} is already in use by another program; choose another port for the server.")
    if cause is not None and cause.errno == errno.EACCES:
        return AppError(f"Port {port} needs administrator rights; choose a port above 1024 for the server.")
    return exc


class ServerController(QObject):
    state_changed = Signal()  # started, stopped, starting or stopping: read ``running``/``busy``/``error``
    request_logged = Signal(object)  # RequestLog, on the GUI thread
    model_changed = Signal(object)  # ModelEvent, on the GUI thread
    notice = Signal(str, str, object)  # a sentence, an action's label, the action (the window shows it)
    _request = Signal(object)
    _model = Signal(object)

    def __init__(self, adapter: Any, present: Callable[[BaseException, bool], None], parent: QObject | None = None,
                 *, catalog: Callable[[], list[ServedModel]] | None = None,
                 chat_model_name: Callable[[], str] = lambda: "", autostart: bool = True) -> None:
        super().__init__(parent)
        self.adapter, self.client, self.present, self.catalog = adapter, adapter.client, present, catalog
        self.chat_model_name = chat_model_name  # the chat's model, by its one name (the app state's)
        self.settings = ServerSettings.load()
        self.server: Any = None  # the LocalServer while it runs
        self.busy = False  # a start or stop on its way
        self.starting = False  # the start, of the two
        self.error = ""  # why the last start failed
        self.model: ModelEvent | None = None  # what the engine holds for the server
        self.lan_urls: list[str] = []  # where other machines reach the running server (LAN mode)
        self.jobs = JobKeeper(self)
        self._closed = False
        self._then: Callable[[], None] | None = None  # what runs once a stop is done (a restart)
        self._chat_load: Any = None  # the chat's last Load (P.Load) that the engine answered
        self._turn: Any = None  # the server whose engine turn the chat holds
        self._chat_streaming = False
        self._confirmed = False
        self._request.connect(self.request_logged)  # queued: this object lives on the GUI thread
        self._model.connect(self._on_model)
        adapter.model_loaded.connect(self._on_chat_loaded)
        if autostart and self.settings.enabled:
            QTimer.singleShot(0, lambda: self.start(user=False))

    # ------------------------------------------------------------------ state

    @property
    def running(self) -> bool:
        return self.server is not None

    @property
    def loaded_model(self) -> str | None:
        return self.server.loaded_model if self.server is not None else None

    def apply(self, settings: ServerSettings) -> None:
        """New settings: saved (on a worker); a running server is stopped and started again with them."""
        settings.enabled = self.settings.enabled
        self.settings = settings
        self.save()
        if self.server is not None:
            self.stop(user=False, then=lambda: self.start(user=True))

    def save(self) -> None:
        values = self.settings.values()
        self.jobs.start(lambda: _write_settings(values), lambda _r: None, lambda exc: self.present(exc, False))

    # ------------------------------------------------------------------ on and off

    def start(self, user: bool = True) -> None:
        """Listen with the current settings (``user``: asked for now, so a failure opens a dialog)."""
        if self.server is not None or self.busy or self._closed:
            return
        cfg = self.settings.config()
        try:
            cfg.check()
        except AppError as exc:
            self._failed(exc, user)
            return
        self.busy, self.starting, self.error = True, True, ""
        self.state_changed.emit()
        client, catalog, on_request, on_model = self.client, self.catalog, self._request.emit, self._model.emit

        def make() -> Any:  # a worker: binds the port, starts the server's threads
            from desktop.engine.server.app import LocalServer

            srv = LocalServer(client, cfg, catalog=catalog, on_request=on_request, on_model=on_model)
            srv.start()
            return srv, srv.lan_urls()  # the interface list is read here too, off the GUI thread

        self.jobs.start(make, self._started, lambda exc: self._failed(start_error(exc, cfg.port), user))

    def _started(self, result: tuple[Any, list[str]]) -> None:
        srv, self.lan_urls = result
        self.busy = self.starting = False
        if self._closed:
            srv.stop()
            return
        self.server = srv
        if not self.settings.enabled:
            self.settings.enabled = True
            self.save()
        self.state_changed.emit()

    def _failed(self, exc: BaseException, user: bool) -> None:
        self.busy = self.starting = False
        self.error = str(getattr(exc, "message", None) or exc)
        self.state_changed.emit()
        self.present(exc, user)

    def stop(self, user: bool = True, then: Callable[[], None] | None = None) -> None:
        """Stop listening and free the port (on a worker); the engine keeps its model until the TTL or a chat."""
        if self.server is None or self.busy:
            return
        srv, self.server = self.server, None
        if user and self.settings.enabled:
            self.settings.enabled = False
            self.save()
        self._release_turn()
        self.busy = True
        self._then = then
        self.state_changed.emit()
        self.jobs.start(srv.stop, self._stopped, self._stopped)

    def _stopped(self, _result: Any) -> None:
        self.busy = False
        self.model = None
        self.state_changed.emit()
        then, self._then = self._then, None
        if then is not None:
            then()

    def close(self) -> None:
        """The window closes: stop at once (the port is free when this returns)."""
        self._closed = True
        self._release_turn()
        srv, self.server = self.server, None
        if srv is not None:
            srv.stop()

    def unload(self) -> bool:
        """Free the server's model now, unless a request is using it."""
        return bool(self.server is not None and self.server.unload())

    # ------------------------------------------------------------------ the shared engine

    def _on_model(self, ev: ModelEvent) -> None:
        self.model = ev
        self.model_changed.emit(ev)

    def _on_chat_loaded(self, ev: Any) -> None:
        last = self.client.last_load
        if last is not None and last.id == getattr(ev, "id", None):
            self._chat_load = last
        if self.model is not None and self.model.state == "loaded" and self.loaded_model is None:
            self._on_model(ModelEvent(self.model.model, "unloaded"))  # the chat took the engine back

    def chat_needs_reload(self) -> bool:
        """Whether the engine no longer holds the chat's model (the server loaded another since)."""
        last, loading = self.client.last_load, self.adapter.loading
        if self._chat_load is None or last is self._chat_load:
            return False
        return not (loading and last is not None and last.id == loading)  # the chat's own new load

    def chat_may_send(self, retry: Callable[[], object]) -> bool:
        """Before a chat message: True to send now. False when it must wait: for the user's word that the chat's
        model is loaded again (``notice``), or for the server's request to end; ``retry`` sends it then."""
        if self._turn is not None:
            return True
        needs = self.chat_needs_reload()
        if needs and not self._confirmed:
            served = self.loaded_model  # the pool's own word: the queued model events may not be in yet
            mine = self.chat_model_name() or "the chat's model"
            text = (f"The local server has {served} loaded for its requests. Sending loads {mine} again for this "
                    f"chat; the server's next request waits for it and loads {served} again." if served else
                    f"The local server used the engine since this chat's last answer. Sending loads {mine} again.")
            self.notice.emit(text, "Load and send", lambda: self._confirm(retry))
            return False
        self._confirmed = False
        srv = self.server
        if srv is None:
            if needs:
                self._reload_chat_model()
            return True
        if not srv.queue.try_acquire():  # a request holds the engine: wait for its turn on a worker
            self.notice.emit("The local server is answering a request; the message is sent when it is done.",
                             "", None)
            self.jobs.start(lambda: srv.queue.acquire(srv.config.request_timeout_s),
                            lambda _r: self._granted(srv, retry), lambda exc: self.present(exc, False))
            return False
        self._take_turn(srv, needs)
        return True

    def _confirm(self, retry: Callable[[], object]) -> None:
        self._confirmed = True
        retry()
        self._confirmed = False

    def _granted(self, srv: Any, retry: Callable[[], object]) -> None:
        if self._closed or srv is not self.server:
            srv.queue.release()
            retry()
            return
        self._take_turn(srv, self.chat_needs_reload())
        retry()

    def _take_turn(self, srv: Any, reload: bool) -> None:
        self._turn = srv
        if reload:
            self._reload_chat_model()
        QTimer.singleShot(0, self._release_if_idle)  # the send did not start an answer after all

    def _reload_chat_model(self) -> None:
        self.adapter.reload(self._chat_load)
        self._chat_load = self.client.last_load  # the new Load (submitting one records it there)

    def chat_busy(self, busy: bool) -> None:
        """The chat's answer started or ended (``ChatSession.busy_changed``)."""
        self._chat_streaming = busy
        if not busy:
            self._release_turn()

    def _release_if_idle(self) -> None:
        if not self._chat_streaming:
            self._release_turn()

    def _release_turn(self) -> None:
        srv, self._turn = self._turn, None
        if srv is not None:
            srv.queue.release()


__all__ = ["ServerController", "ServerSettings", "RequestLog", "start_error"]
