"""The local server as a program part: ``LocalServer`` listens, serves both APIs over the one engine, unloads an
idle model, and reports each request and each model change. What a Server page (or ``serve``) drives. Runs in
the caller's process (the CLI, or the app): the HTTP server and the idle unloader are its own threads.
"""
from __future__ import annotations

import contextlib
import socket
import threading
from http.server import ThreadingHTTPServer
from typing import Callable, Iterator

from desktop.engine.errors import AppError
from desktop.engine.inference.client import EngineClient
from desktop.engine.server.config import RequestLog, ServerConfig
from desktop.engine.server.front import Handler, Route
from desktop.engine.server.pool import ModelEvent, ModelPool, ServedModel
from desktop.engine.server.requests import RequestQueue


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    # The listen backlog: socketserver's 5 resets a burst of callers before the queue can answer them 429.
    request_queue_size = 128
    app: "LocalServer"


class _HTTPServer6(_HTTPServer):
    address_family = socket.AF_INET6


class LocalServer:
    """The server: ``start``/``stop`` it on a thread (the app) or ``serve_forever`` (the CLI).

    ``client`` is the one engine, shared with whoever else uses it. ``pinned`` is a model offered besides the
    installed ones (``serve --model FILE``) and used when a request names none. ``catalog`` lists what is offered
    (default: every installed model). ``on_request`` gets a :class:`RequestLog` after every request and
    ``on_model`` a :class:`ModelEvent` whenever the loaded model changes; both run on server threads.
    """

    def __init__(self, client: EngineClient, config: ServerConfig | None = None, *,
                 catalog: Callable[[], list[ServedModel]] | None = None, pinned: ServedModel | None = None,
                 on_request: Callable[[RequestLog], None] | None = None,
                 on_model: Callable[[ModelEvent], None] | None = None) -> None:
        from desktop.engine.server import ollama_routes, openai_routes, responses_api

        self.config = config or ServerConfig()
        self.config.check()
        self.client = client
        self.on_request = on_request
        if catalog is None:
            from desktop.engine.profiles import ProfileStore
            from desktop.engine.server.pool import installed_models

            store = ProfileStore()
            catalog = lambda: installed_models(store)  # noqa: E731
        self.queue = RequestQueue(self.config.max_queue)
        self.pool = ModelPool(client, catalog, pinned=pinned, ttl_s=self.config.model_ttl_s, n_ctx=self.config.n_ctx,
                              on_model=on_model, load_timeout_s=self.config.request_timeout_s)
        self.routes: dict[tuple[str, str], Route] = {
            **openai_routes.ROUTES, **responses_api.ROUTES, **ollama_routes.ROUTES}
        host = self.config.bind_host
        try:
            self.httpd = (_HTTPServer6 if ":" in host else _HTTPServer)((host, self.config.port), Handler)
        except OSError as exc:
            raise AppError(f"cannot listen on {host}:{self.config.port}: {exc.strerror or exc}") from exc
        self.httpd.app = self
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._ttl = threading.Thread(target=self._unload_idle, daemon=True, name="server-ttl")
        self._ttl.start()

    # ------------------------------------------------------------------ where

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    @property
    def base_url(self) -> str:
        """The OpenAI base URL for this machine (``http://127.0.0.1:PORT/v1``); Ollama clients use it without /v1."""
        host = self.httpd.server_address[0]
        if host in ("0.0.0.0", "::"):
            host = "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}/v1"

    def lan_urls(self) -> list[str]:
        """Where other machines reach it (serving the local network): one base URL per IPv4 address."""
        if not self.config.lan:
            return []
        addrs: set[str] = set()
        try:
            import psutil

            for nics in psutil.net_if_addrs().values():
                addrs.update(a.address for a in nics if a.family == socket.AF_INET and not a.address.startswith("127."))
        except Exception:  # noqa: BLE001 - no interface list: nothing to show
            pass
        return [f"http://{a}:{self.port}/v1" for a in sorted(addrs)]

    # ------------------------------------------------------------------ running

    def serve_forever(self) -> None:
        self.httpd.serve_forever()

    def start(self) -> None:
        """Serve on a background thread (returns at once; the socket already listens)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True, name="server-http")
            self._thread.start()

    def stop(self) -> None:
        """Stop serving and free the port; the engine's model stays loaded (``unload`` frees it)."""
        self._stop.set()
        if self._thread is not None:
            self.httpd.shutdown()
            self._thread.join(10)
            self._thread = None
        self.httpd.server_close()

    def shutdown(self) -> None:  # the http.server name, for callers that run serve_forever on their own thread
        self.httpd.shutdown()

    def server_close(self) -> None:
        self._stop.set()
        self.httpd.server_close()

    @contextlib.contextmanager
    def engine_turn(self, timeout_s: float | None = None) -> Iterator[None]:
        """Hold the engine between server requests (the app's chat window, when it shares the engine): waits in
        the same FIFO as requests. QueueFull/QueueTimeout when it cannot get a turn."""
        self.queue.acquire(self.config.request_timeout_s if timeout_s is None else timeout_s)
        try:
            yield
        finally:
            self.queue.release()

    @property
    def loaded_model(self) -> str | None:
        """The id of the model the engine holds for the server, or None."""
        return self.pool.loaded

    def unload(self) -> bool:
        """Unload the server's model now if the engine is free; False when a request holds it."""
        if not self.queue.try_acquire():
            return False
        try:
            self.pool.unload()
        finally:
            self.queue.release()
        return True

    def _unload_idle(self) -> None:
        ttl = self.config.model_ttl_s
        while not self._stop.wait(min(5.0, max(0.05, ttl / 4))):
            if self.pool.loaded is not None and self.pool.idle_s() >= ttl:
                self.unload()


__all__ = ["LocalServer"]
