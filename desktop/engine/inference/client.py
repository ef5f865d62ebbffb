"""The caller's side of the engine process: start it, talk to it, survive its death.

Runs in the caller's process: the CLI, the local server, and the app's GUI process (through its engine adapter). Requests are written to the process's stdin
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
import weakref
from typing import Any, Callable, Iterable, Iterator

from desktop.engine.inference import protocol as P
from desktop.engine.errors import AppError, EngineCrashedError, from_dict
from desktop.engine.logs import get_logger

EventCallback = Callable[[Any], None]


def run_to_finish(events: Iterable[Any], on_chunk: Callable[[P.TokenChunk], None]) -> P.Finished:
    """Drive a generation's events to its end, the one way every caller that waits does it (``ask``, the tool
    loop): each TokenChunk to ``on_chunk``, the Finished returned, a Failed raised as its AppError (and an end
    with neither as one too)."""
    finished: P.Finished | None = None
    for ev in events:
        if isinstance(ev, P.TokenChunk):
            on_chunk(ev)
        elif isinstance(ev, P.Failed):
            raise from_dict(ev.error)
        elif isinstance(ev, P.Finished):
            finished = ev
    if finished is None:
        raise AppError("the engine ended the answer without finishing it")
    return finished


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


# Stop must end a request within 2 s: the engine gets this long to confirm a Cancel (Finished "cancelled")
# before the client kills it. llama.cpp checks the flag between tokens and, through its abort callback, while
# it evaluates a prompt; a template render or a silent remote server only end through the kill.
STOP_GRACE_S = 1.5
# How long a new request waits for a dead engine's reader thread to report the requests that died with it.
_SETTLE_S = 2.0


class EngineClient:
    """A handle on one engine process at a time. Thread-safe for requests."""

    def __init__(self, on_event: EventCallback | None = None, command: list[str] | None = None,
                 env: dict[str, str] | None = None, stop_grace_s: float = STOP_GRACE_S) -> None:
        self.on_event = on_event
        self.command = command or worker_command()
        self.env = env
        self.stop_grace_s = stop_grace_s
        self.proc: subprocess.Popen[bytes] | None = None
        self.ready: P.Ready | None = None
        self.last_load: P.Load | None = None
        self.loaded: P.Loaded | None = None
        self._lock = threading.RLock()
        self._waiters: dict[str, queue.Queue[Any]] = {}
        # Each request in flight, with the process it was sent to: a request belongs to one process, and
        # that process's death (reported once, see _strand) fails it, whatever process runs by then.
        self._inflight: dict[str, subprocess.Popen[bytes]] = {}
        self._reported: weakref.WeakSet[subprocess.Popen[bytes]] = weakref.WeakSet()  # deaths already reported
        self._stop_killed: set[str] = set()  # requests whose engine was killed because Stop went unanswered
        self._reader: threading.Thread | None = None
        self._ready_evt = threading.Event()
        self._stderr_tail: collections.deque[str] = collections.deque(maxlen=40)
        self._log = get_logger("engine")
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
            # The log file keeps what llama.cpp and Python printed, for a bug report; users never see it.
            self._log.info("[pid %d] %s", proc.pid, text)
            if os.environ.get("DESKTOP_CHAT_ENGINE_STDERR"):
                sys.stderr.write(text + "\n")

    def _read_events(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            try:
                ev = P.decode(line)
            except (ValueError, KeyError, TypeError):
                continue
            with self._lock:
                if proc in self._reported:
                    continue  # a new request already reported this process dead: its requests have ended
            self._dispatch(ev)
        rc = proc.wait()
        self._strand(proc, rc)
        self._ready_evt.set()  # wake anyone waiting for a Ready that will never come

    def _strand(self, proc: subprocess.Popen[bytes], rc: int | None) -> None:
        """Fail every request that was in flight on the dead ``proc`` (once per process)."""
        with self._lock:
            if proc in self._reported:
                return
            self._reported.add(proc)
            if proc is self.proc:
                self.loaded = None
            stranded = [rid for rid, p in self._inflight.items() if p is proc]
            for rid in stranded:
                del self._inflight[rid]
            reason = _describe_exit(rc)
            details = "\n".join(self._stderr_tail) or None
            for rid in stranded:
                if rid in self._stop_killed:
                    self._stop_killed.discard(rid)
                    err = EngineCrashedError(
                        f"The engine did not stop within {self.stop_grace_s:g} s, so it was stopped by force. What "
                        "was generated so far is kept; the next request starts a new engine.",
                        details=details, code="cancelled")
                else:
                    err = EngineCrashedError(
                        f"The engine process {reason}. What was generated so far is kept; the next request starts "
                        "a new engine.", details=details)
                    self._log.error("engine pid %d %s with request %s in flight", proc.pid, reason, rid)
                # Dispatched under the lock, so no request can start a new engine before these are out.
                self._dispatch(P.Failed(rid, err.to_dict()))

    def _dispatch(self, ev: Any) -> None:
        if isinstance(ev, P.Ready):
            self.ready = ev
            self._ready_evt.set()
        rid = getattr(ev, "id", None)
        if isinstance(ev, P.TERMINAL_EVENTS):
            with self._lock:
                self._inflight.pop(rid, None)
                self._stop_killed.discard(rid)
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

    def _settle(self) -> None:
        """Before a restart: let the dead engine's reader drain its last events and fail what was in flight.

        Runs without the lock (the reader takes it to report). If the reader is stuck (its on_event callback
        blocks), ``_ensure`` reports the death itself, so a restart never strands a request.
        """
        proc, reader = self.proc, self._reader
        if proc is None or proc.poll() is None or reader is None or reader is threading.current_thread():
            return
        reader.join(_SETTLE_S)

    def needs_restart(self) -> bool:
        """The engine died: the next request starts it again and reloads the last model before answering."""
        return self.proc is not None and not self.alive() and self.last_load is not None

    def _ensure(self, reload: bool = True) -> None:
        """Start the engine if needed; after a crash, reload the last model first (``reload`` False: the request
        about to be sent is itself a Load, so the last model is not loaded in vain before it)."""
        with self._lock:
            if self.alive():
                return
            old = self.proc
            if old is not None:
                self._strand(old, old.poll())  # no-op when the reader already reported it
            self.start()
            if old is not None:
                self.restarts += 1
                if self.last_load is not None and reload:
                    again = P.Load(**{**self.last_load.__dict__, "id": new_id("reload")})
                    self._inflight[again.id] = self.proc  # type: ignore[assignment]
                    self._write(again)

    # ------------------------------------------------------------------ requests

    def submit(self, msg: Any) -> str:
        """Send a request without waiting. Its events arrive through ``on_event`` (and ``wait``)."""
        self._settle()
        with self._lock:
            self._ensure(reload=not isinstance(msg, P.Load))
            if isinstance(msg, P.Load):
                self.last_load = msg
            if isinstance(msg, P.ANSWERED_REQUESTS):
                self._inflight[msg.id] = self.proc  # type: ignore[assignment]
            self._write(msg)
        return getattr(msg, "id", "")

    def cancel(self, request_id: str) -> None:
        """Stop a request. The engine confirms with Finished("cancelled"); if it has not within
        ``stop_grace_s``, the engine is killed and the request ends Failed (code "cancelled"), its partial text
        kept by the caller. The next request restarts the engine and reloads the model."""
        with self._lock:
            proc = self.proc
            if not self.alive() or proc is None:
                return
            self._write(P.Cancel(request_id))
            if self._inflight.get(request_id) is not proc:
                return
        timer = threading.Timer(self.stop_grace_s, self._stop_overdue, (request_id, proc))
        timer.daemon = True
        timer.name = "engine-stop-watchdog"
        timer.start()

    def _stop_overdue(self, request_id: str, proc: subprocess.Popen[bytes]) -> None:
        with self._lock:
            if self._inflight.get(request_id) is not proc or proc.poll() is not None:
                return  # it ended in time (or the engine died anyway)
            self._stop_killed.add(request_id)
            self._log.warning("engine pid %d did not confirm Stop of %s within %.1f s: killing it", proc.pid,
                              request_id, self.stop_grace_s)
            proc.kill()

    def events(self, msg: Any, timeout: float | None = None) -> Iterator[Any]:
        """Send ``msg`` and yield its events until the terminal one (``protocol.TERMINAL_EVENTS``)."""
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
                if isinstance(ev, P.TERMINAL_EVENTS):
                    return
        finally:
            self._waiters.pop(msg.id, None)

    def load(self, req: P.Load, timeout: float | None = 600) -> P.Loaded:
        """Load a model; LoadProgress events go to ``on_event`` (and to ``events``) on the way."""
        for ev in self.events(req, timeout=timeout):
            if isinstance(ev, P.Failed):
                raise from_dict(ev.error)
            if isinstance(ev, P.Loaded):
                return ev
        raise EngineCrashedError("the engine ended the load without an answer")  # pragma: no cover

    def count_tokens(self, text: str, timeout: float | None = 60) -> int:
        """``text``'s length in the loaded model's tokens; the engine's error (engine_crashed when it dies
        meanwhile) as an AppError."""
        for ev in self.events(P.Tokenize(new_id("tok"), text), timeout=timeout):
            if isinstance(ev, P.Failed):
                raise from_dict(ev.error)
            if isinstance(ev, P.Tokens):
                return ev.n_tokens
        raise EngineCrashedError("the engine ended the count without an answer")  # pragma: no cover

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

    def forget_load(self) -> set[str]:
        """Before a kill that cancels a load: the restart that follows must not redo that load. Returns the ids
        of the requests in flight now (each of them is answered Failed(engine_crashed) by the kill)."""
        with self._lock:
            self.last_load = None
            return set(self._inflight)

    def kill(self, timeout: float = 10.0) -> None:
        """Kill the engine process now and wait until its death is reported.

        This is how a load is cancelled: llama.cpp cannot interrupt one. Every request in flight gets
        Failed(engine_crashed) (delivered before this returns); the next request starts a new process and
        first reloads ``last_load`` (set it to None beforehand to skip that).
        """
        with self._lock:
            proc = self.proc
            reader = self._reader
        if proc is None or proc.poll() is not None:
            return
        proc.kill()
        proc.wait()
        if reader is not None and reader is not threading.current_thread():
            reader.join(timeout)
        self._strand(proc, proc.returncode)

    def __enter__(self) -> "EngineClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["EngineClient", "worker_command", "new_id"]
