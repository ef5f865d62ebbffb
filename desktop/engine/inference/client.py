"""The caller's side of the engine process: start it, talk to it, survive its death.

Used by the CLI now and by the GUI's engine adapter. Requests are written to the process's stdin
from whatever thread calls; events are read by one reader thread and delivered to per-request
queues and to an optional ``on_event`` callback (which runs on the reader thread: the GUI adapter
re-emits it as a queued Qt signal). If the process dies, every request in flight gets a ``Failed``
event with :class:`EngineCrashedError`, and the next request starts a fresh process and reloads the
last model before running.
"""
from __future__ import annotations

import collections
import os
import queue
import signal
import subprocess
import sys
import threading
import uuid
from typing import Any, Callable, Iterator

from desktop.engine.inference import protocol as P
from desktop.engine.errors import AppError, EngineCrashedError, from_dict

EventCallback = Callable[[Any], None]


def worker_command() -> list[str]:
    """How to start the engine: the frozen executable itself, or this Python with ``-m desktop``."""
    if getattr(sys, "frozen", False):
        return [sys.executable, "--engine-worker"]
    return [sys.executable, "-m", "desktop", "--engine-worker"]


def new_id(prefix: str = "r") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def _describe_exit(rc: int | None) -> str:
    if rc is None:
        return "stopped answering"
    if rc < 0:
        try:
            return f"was killed by {signal.Signals(-rc).name}"
        except ValueError:
            return f"was killed by signal {-rc}"
    return f"exited with status {rc}"


class EngineClient:
    """A handle on one engine process at a time. Thread-safe for requests."""

    def __init__(self, on_event: EventCallback | None = None, command: list[str] | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.on_event = on_event
        self.command = command or worker_command()
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self.ready: P.Ready | None = None
        self.last_load: P.Load | None = None
        self.loaded: P.Loaded | None = None
        self._lock = threading.RLock()
        self._waiters: dict[str, queue.Queue[Any]] = {}
        self._inflight: set[str] = set()
        self._ready_evt = threading.Event()
        self._stderr_tail: collections.deque[str] = collections.deque(maxlen=40)
        self.restarts = 0

    # ------------------------------------------------------------------ process

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        with self._lock:
            if self.alive():
                return
            env = dict(os.environ if self.env is None else self.env)
            env.setdefault("PYTHONUNBUFFERED", "1")
            self._ready_evt.clear()
            self.ready = None
            try:
                self.proc = subprocess.Popen(self.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                             stderr=subprocess.PIPE, env=env, bufsize=0)
            except OSError as exc:
                raise EngineCrashedError(f"could not start the engine process: {exc}") from exc
            proc = self.proc
            self._reader = threading.Thread(target=self._read_events, args=(proc,), daemon=True,
                                            name="engine-events")
            self._reader.start()
            threading.Thread(target=self._read_stderr, args=(proc,), daemon=True, name="engine-stderr").start()

    def _read_stderr(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            text = line.decode("utf-8", "replace").rstrip()
            self._stderr_tail.append(text)
            if os.environ.get("DESKTOP_CHAT_ENGINE_STDERR"):
                sys.stderr.write(text + "\n")

    def _read_events(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            try:
                ev = P.decode(line)
            except (ValueError, KeyError, TypeError):
                continue
            self._dispatch(ev)
        rc = proc.wait()
        with self._lock:
            if proc is not self.proc:
                return
            self.loaded = None
            stranded = list(self._inflight)
            self._inflight.clear()
        reason = _describe_exit(rc)
        for rid in stranded:
            err = EngineCrashedError(
                f"The engine process {reason}. What was generated so far is kept; the next request starts a new "
                "engine.", details="\n".join(self._stderr_tail) or None)
            self._dispatch(P.Failed(rid, err.to_dict()))
        self._ready_evt.set()  # wake anyone waiting for a Ready that will never come

    def _dispatch(self, ev: Any) -> None:
        if isinstance(ev, P.Ready):
            self.ready = ev
            self._ready_evt.set()
        rid = getattr(ev, "id", None)
        if isinstance(ev, (P.Finished, P.Failed, P.Loaded, P.Pong)):
            with self._lock:
                self._inflight.discard(rid)
                if isinstance(ev, P.Loaded):
                    self.loaded = ev
        if rid is not None:
            q = self._waiters.get(rid)
            if q is not None:
                q.put(ev)
        if self.on_event is not None:
            self.on_event(ev)

    def _write(self, msg: Any) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        try:
            self.proc.stdin.write(P.encode(msg))
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError, ValueError):
            pass  # the reader thread reports the death to everyone in flight

    def _ensure(self) -> None:
        """Start the engine if needed; after a crash, reload the last model first."""
        with self._lock:
            if self.alive():
                return
            restarted = self.proc is not None
            self.start()
            if restarted:
                self.restarts += 1
                if self.last_load is not None:
                    reload = P.Load(**{**self.last_load.__dict__, "id": new_id("reload")})
                    self._inflight.add(reload.id)
                    self._write(reload)

    # ------------------------------------------------------------------ requests

    def submit(self, msg: Any) -> str:
        """Send a request without waiting. Its events arrive through ``on_event`` (and ``wait``)."""
        with self._lock:
            self._ensure()
            if isinstance(msg, P.Load):
                self.last_load = msg
            if isinstance(msg, (P.Load, P.Generate, P.Ping)):
                self._inflight.add(msg.id)
            self._write(msg)
        return getattr(msg, "id", "")

    def cancel(self, request_id: str) -> None:
        with self._lock:
            if self.alive():
                self._write(P.Cancel(request_id))

    def events(self, msg: Any, timeout: float | None = None) -> Iterator[Any]:
        """Send ``msg`` and yield its events until the terminal one (Finished, Failed, Loaded, Pong)."""
        q: queue.Queue[Any] = queue.Queue()
        self._waiters[msg.id] = q
        try:
            self.submit(msg)
            while True:
                try:
                    ev = q.get(timeout=timeout)
                except queue.Empty:
                    raise EngineCrashedError("the engine did not answer in time") from None
                yield ev
                if isinstance(ev, (P.Finished, P.Failed, P.Loaded, P.Pong)):
                    return
        finally:
            self._waiters.pop(msg.id, None)

    def load(self, req: P.Load, timeout: float | None = 600) -> P.Loaded:
        for ev in self.events(req, timeout=timeout):
            if isinstance(ev, P.Failed):
                raise from_dict(ev.error)
            if isinstance(ev, P.Loaded):
                return ev
        raise EngineCrashedError("the engine ended the load without an answer")  # pragma: no cover

    def generate(self, req: P.Generate, timeout: float | None = None) -> Iterator[Any]:
        """Yield TokenChunk events, then Finished or Failed."""
        yield from self.events(req, timeout=timeout)

    def close(self, timeout: float = 5.0) -> None:
        with self._lock:
            proc = self.proc
            if proc is None:
                return
            if proc.poll() is None:
                self._write(P.Shutdown())
                try:
                    if proc.stdin:
                        proc.stdin.close()
                except OSError:
                    pass
        if proc.poll() is None:
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def kill(self, timeout: float = 10.0) -> None:
        """Kill the engine process now and wait until its death is reported.

        This is how a load is cancelled: llama.cpp cannot interrupt one. Every request in flight gets
        Failed(engine_crashed) (delivered before this returns); the next request starts a new process and
        first reloads ``last_load`` (set it to None beforehand to skip that).
        """
        with self._lock:
            proc = self.proc
            reader = getattr(self, "_reader", None)
        if proc is None or proc.poll() is not None:
            return
        proc.kill()
        proc.wait()
        if reader is not None:
            reader.join(timeout)

    def __enter__(self) -> "EngineClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def raise_for(ev: Any) -> None:
    """Turn a Failed event into its AppError."""
    if isinstance(ev, P.Failed):
        raise from_dict(ev.error)


__all__ = ["EngineClient", "worker_command", "new_id", "raise_for", "AppError"]
