"""The engine process: reads requests on stdin, runs ``llama_backend``, writes events.

Started by ``client`` as ``<python> -m desktop --engine-worker`` (or ``<frozen-exe> --engine-worker``),
so the same code path works when frozen by PyInstaller. A native crash here (abort, OOM) kills only
this process; the caller turns that into an error event. Events go out on a private duplicate of the
original stdout, and fd 1 is pointed at stderr, so nothing llama.cpp prints can corrupt the protocol.

Threads: the main thread owns the model and runs requests in order; a reader thread parses stdin
and sets the cancel flag between tokens, which is how Stop works while a generation runs.
"""
from __future__ import annotations

import logging
import os
import queue
import sys
import threading
import time
import traceback
from typing import Any, BinaryIO

from desktop.engine import logs
from desktop.engine.inference import protocol as P
from desktop.engine.inference import template_sandbox
from desktop.engine.errors import AppError, GenerationError, ModelLoadError

PROGRESS_INTERVAL_S = 0.05  # LoadProgress at most ~20 times a second: the GUI only needs a smooth bar


class _ProgressThrottle:
    """Turns llama.cpp's load progress callback into LoadProgress events: increasing, at most one per
    ``PROGRESS_INTERVAL_S``, and always the final 1.0."""

    def __init__(self, rid: str, send: Any) -> None:
        self.rid, self.send = rid, send
        self.last = -1.0
        self.last_t = 0.0

    def __call__(self, fraction: float) -> None:
        f = min(1.0, max(0.0, float(fraction)))
        now = time.monotonic()
        if f <= self.last or (f < 1.0 and now - self.last_t < PROGRESS_INTERVAL_S):
            return
        self.last, self.last_t = f, now
        self.send(P.LoadProgress(self.rid, f))

    def finish(self) -> None:
        self(1.0)


def _is_remote(req: P.Load) -> bool:
    return bool(req.backend) and (req.backend or {}).get("kind", "local") != "local"


class _Host:
    def __init__(self, out: BinaryIO) -> None:
        from desktop.engine.inference.llama_backend import LlamaBackend

        self.out = out
        self.backend = LlamaBackend()
        self.inbox: queue.Queue[Any] = queue.Queue()
        self.cancelled: set[str] = set()
        self.current: str | None = None
        self.cancel_event = threading.Event()
        template_sandbox.stop_flag = self.cancel_event  # Stop also ends a chat template being rendered
        self.lock = threading.Lock()
        self.last_load_error: AppError | None = None
        self.lib_error: ModelLoadError | None = None
        self.log = logs.get_logger("engine")

    def send(self, msg: Any) -> None:
        self.out.write(P.encode(msg))
        self.out.flush()

    def read_loop(self, inp: BinaryIO) -> None:
        for line in inp:
            if not line.strip():
                continue
            try:
                msg = P.decode(line)
            except (ValueError, KeyError, TypeError):
                continue  # a malformed line from a caller is dropped, not fatal
            if isinstance(msg, P.Cancel):
                with self.lock:
                    self.cancelled.add(msg.id)
                    if self.current == msg.id:
                        self.cancel_event.set()
                continue
            self.inbox.put(msg)
        self.inbox.put(P.Shutdown())

    def fail(self, rid: str, exc: BaseException) -> None:
        if isinstance(exc, AppError):
            err = exc
        else:
            logs.log_exception(exc, f"request {rid}")
            err = GenerationError(f"the engine hit an internal error: {exc}", details=traceback.format_exc())
        self.send(P.Failed(rid, err.to_dict()))

    def run(self) -> None:
        from desktop.engine.inference.llama_backend import library_info

        try:
            lib = library_info()
        except (AppError, OSError, RuntimeError, ImportError) as exc:
            # A llama.cpp library that will not load (garbage file, missing symbol, no CPU copy to fall back
            # to, no llama_cpp package): stay up and give every request the reason, rather than die and look
            # like a crash.
            msg = exc.message if isinstance(exc, AppError) else f"the llama.cpp library could not be loaded: {exc}"
            self.lib_error = ModelLoadError(msg)
            self.log.error("%s", msg)
            self.send(P.Ready(os.getpid(), "", "", False, lib_error=msg))
        else:
            self.send(P.Ready(os.getpid(), lib.version, lib.system_info, lib.gpu_offload, list(lib.backends),
                              [d.__dict__ for d in lib.devices], lib.fallback_reason))
        while True:
            msg = self.inbox.get()
            if isinstance(msg, P.Shutdown):
                break
            try:
                if isinstance(msg, P.Ping):
                    self.send(P.Pong(msg.id))
                elif isinstance(msg, P.Load):
                    try:
                        if self.lib_error is not None and not _is_remote(msg):
                            raise ModelLoadError(self.lib_error.message)
                        backend = self._backend_for(msg)
                        progress = _ProgressThrottle(msg.id, self.send)
                        backend.on_progress = progress
                        try:
                            loaded = backend.load(msg)
                        finally:
                            backend.on_progress = None
                        progress.finish()
                        self.send(loaded)
                        self.last_load_error = None
                    except AppError as exc:
                        self.last_load_error = exc
                        raise
                elif isinstance(msg, P.Generate):
                    self.generate(msg)
                elif isinstance(msg, P.Tokenize):
                    if self.backend.loaded is None or not hasattr(self.backend, "tokenize"):
                        raise GenerationError("this engine cannot count tokens (no local model is loaded)")
                    self.send(P.Tokens(msg.id, len(self.backend.tokenize(msg.text))))
            except Exception as exc:  # noqa: BLE001 - every failure becomes an event; the host lives on
                self.fail(getattr(msg, "id", ""), exc)
        self.backend.close()

    def _backend_for(self, req: P.Load) -> Any:
        """The backend a Load asks for: a profile with a remote ``backend`` runs on its server."""
        from desktop.engine.inference.llama_backend import LlamaBackend
        from desktop.engine.inference.remote_backend import RemoteBackend

        remote = _is_remote(req)
        if remote != isinstance(self.backend, RemoteBackend):
            self.backend.close()  # frees the local model's memory before talking to a server, and back
            self.backend = RemoteBackend() if remote else LlamaBackend()
        return self.backend

    def generate(self, req: P.Generate) -> None:
        if self.backend.loaded is None and self.last_load_error is not None:
            raise type(self.last_load_error)(self.last_load_error.message)
        with self.lock:
            self.current = req.id
            self.cancel_event.clear()
            if req.id in self.cancelled:
                self.cancel_event.set()
        interval = max(0.0, req.chunk_interval_ms / 1000.0)
        pending: list[str] = []
        n_pending = 0
        last = 0.0
        first = True
        try:
            for ev in self.backend.generate(req, self.cancel_event):
                if isinstance(ev, P.TokenChunk):
                    pending.append(ev.text)
                    n_pending += ev.n_tokens
                    now = time.perf_counter()
                    # The first chunk goes out at once (time to first token); then one per interval.
                    if first or now - last >= interval:
                        self.send(P.TokenChunk(req.id, "".join(pending), n_pending))
                        pending.clear()
                        n_pending = 0
                        last = now
                        first = False
                else:
                    if pending:
                        self.send(P.TokenChunk(req.id, "".join(pending), n_pending))
                    self.send(ev)
        except template_sandbox.RenderStopped:
            self.send(P.Finished(req.id, "", "cancelled", P.GenerationStats()))  # Stop during rendering
        except BaseException:
            # Text generated before a failure (a stream cut mid-answer) reaches the caller ahead of the Failed.
            if pending:
                self.send(P.TokenChunk(req.id, "".join(pending), n_pending))
            raise
        finally:
            with self.lock:
                self.current = None
                self.cancelled.discard(req.id)


def main() -> int:
    """Entry point of the engine process."""
    out_fd = os.dup(1)
    os.dup2(2, 1)  # stray native prints go to stderr, not into the protocol
    out = os.fdopen(out_fd, "wb", buffering=0)
    sys.stdout = sys.stderr
    logs.setup_logging("engine")
    logs.install_excepthooks()
    rc = 0
    try:
        host = _Host(out)
        reader = threading.Thread(target=host.read_loop, args=(sys.stdin.buffer,), daemon=True,
                                  name="engine-stdin")
        reader.start()
        host.run()
    except BaseException as exc:  # noqa: BLE001 - the log keeps why the engine died; the client reports it
        logs.log_exception(exc, "engine main thread")
        traceback.print_exc()
        rc = 1
    # Leave without the interpreter's shutdown: the stdin reader is a daemon thread that may hold stdin's
    # buffer lock, and finalizing then aborts ("could not acquire lock for <stdin> ... daemon threads").
    logging.shutdown()
    sys.stderr.flush()
    os._exit(rc)
