"""The engine process: reads requests on stdin, runs ``llama_backend``, writes events.

Started by ``client`` as ``<python> -m desktop --engine-worker`` (or ``<frozen-exe> --engine-worker``),
so the same code path works when frozen by PyInstaller. A native crash here (abort, OOM) kills only
this process; the caller turns that into an error event. Events go out on a private duplicate of the
original stdout, and fd 1 is pointed at stderr, so nothing llama.cpp prints can corrupt the protocol.

Threads: the main thread owns the model and runs requests in order; a reader thread parses stdin
and sets the cancel flag between tokens, which is how Stop works while a generation runs.
"""
from __future__ import annotations

import os
import queue
import sys
import threading
import time
import traceback
from typing import Any, BinaryIO

from desktop.engine.inference import protocol as P
from desktop.engine.errors import AppError, GenerationError


class _Host:
    def __init__(self, out: BinaryIO) -> None:
        from desktop.engine.inference.llama_backend import LlamaBackend

        self.out = out
        self.backend = LlamaBackend()
        self.inbox: queue.Queue[Any] = queue.Queue()
        self.cancelled: set[str] = set()
        self.current: str | None = None
        self.cancel_event = threading.Event()
        self.lock = threading.Lock()
        self.last_load_error: AppError | None = None

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
            err = GenerationError(f"the engine hit an internal error: {exc}", details=traceback.format_exc())
        self.send(P.Failed(rid, err.to_dict()))

    def run(self) -> None:
        from desktop.engine.inference.llama_backend import library_info

        lib = library_info()
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
                        self.send(self._backend_for(msg).load(msg))
                        self.last_load_error = None
                    except AppError as exc:
                        self.last_load_error = exc
                        raise
                elif isinstance(msg, P.Unload):
                    self.backend.close()
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

        remote = bool(req.backend) and req.backend.get("kind", "local") != "local"
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
    host = _Host(out)
    reader = threading.Thread(target=host.read_loop, args=(sys.stdin.buffer,), daemon=True, name="engine-stdin")
    reader.start()
    host.run()
    return 0
