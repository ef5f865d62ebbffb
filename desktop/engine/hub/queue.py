"""The download queue: jobs run one at a time on a worker thread; the queue is persisted as JSON.

Runs in the caller's process (the app's GUI process; the CLI downloads without it): the worker is a thread of that
process, and public methods may be called from any of its threads. The worker survives any exception of one job
(the job ends ``failed``), the queue file is written whole under a lock of its own (never a temp file shared by
two threads), and cancelling a job deletes only that job's ``.incomplete`` files, never another paused quant's.
The queue is handed the function that runs one download and the one that deletes a job's partial files
(downloads.py binds its own as ``DownloadManager``), so it never imports the downloader back. No Qt, no llama_cpp.
"""
from __future__ import annotations

import dataclasses
import json
import os
import queue
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from desktop.engine import paths
from desktop.engine.errors import AppError, DownloadCancelled, DownloadError
from desktop.engine.hub.events import DownloadEvent
from desktop.engine.hub.targets import resolve_spec
from desktop.engine.profiles import ProfileStore

ACTIVE_STATES = {"queued", "starting", "downloading", "stalled", "retrying", "verifying", "joining", "repairing"}
FINAL_STATES = {"done", "failed", "cancelled", "paused"}
# The message of a job the app's quit (or a crash) stopped, as opposed to one the user paused.
INTERRUPTED = "interrupted; resume to continue"


@dataclass
class Job:
    """A persisted download request and where it stands."""

    id: str
    repo: str
    quant: str | None = None
    filename: str | None = None
    profile_id: str | None = None
    target_dir: str | None = None
    state: str = "queued"
    message: str = ""
    error: dict[str, Any] | None = None
    result: dict[str, Any] | None = None
    done: int = 0
    total: int = 0
    files: list[str] = field(default_factory=list)
    partials: list[str] = field(default_factory=list)  # this job's own .incomplete files (what cancel deletes)
    created: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class DownloadQueue:
    """Download jobs run one at a time on a worker thread; the queue is persisted as JSON.

    ``run(spec, *, quant, filename, target_dir, job_id, on_event, cancel, store, **run_kwargs)`` downloads one
    job and returns its result (``.to_dict()``, ``.files``, ``.size``, ``.fixes``); ``discard(spec, store, *,
    quant, filename, keep)`` deletes the partial files of a job that recorded none. ``on_event`` is called on the worker thread: a GUI must hand events to its own thread (the Qt
    adapter does that with a queued signal). Public methods may be called from any thread.
    """

    def __init__(self, on_event: Callable[[DownloadEvent], None] | None = None, *, run: Callable[..., Any],
                 discard: Callable[..., Any], state_path: Path | None = None, store: ProfileStore | None = None,
                 **run_kwargs: Any) -> None:
        self.on_event = on_event
        self._run_download = run
        self._discard_partials = discard
        self.state_path = state_path or paths.data_dir() / "downloads.json"
        self.store = store or ProfileStore()
        self.run_kwargs = run_kwargs
        self._lock = threading.RLock()
        self._save_lock = threading.Lock()  # one writer of the queue file at a time
        self._jobs: dict[str, Job] = {}
        self._cancel: dict[str, threading.Event] = {}
        self._discard: set[str] = set()
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._idle = threading.Condition(self._lock)
        self._closing = False
        self._load()
        self._thread = threading.Thread(target=self._worker, name="downloads", daemon=True)
        self._thread.start()

    # persistence -----------------------------------------------------------------------------
    def _load(self) -> None:
        try:
            raw = json.loads(self.state_path.read_text())
        except (OSError, ValueError):
            raw = []
        for d in raw if isinstance(raw, list) else []:
            try:
                job = Job(**{k: v for k, v in d.items() if k in Job.__dataclass_fields__})
            except TypeError:
                continue
            if job.state in ACTIVE_STATES:
                # The app stopped mid-download; the partial file on disk is where it resumes from.
                job.state, job.message = "paused", INTERRUPTED
            self._jobs[job.id] = job

    def _save(self) -> None:
        # Any thread saves (the worker, and callers of pause/cancel/submit). The snapshot is taken inside the
        # save lock, so the last file written is never older than the last change that asked for a save.
        with self._save_lock:
            with self._lock:
                data = [j.to_dict() for j in self._jobs.values()]
            try:
                self.state_path.parent.mkdir(parents=True, exist_ok=True)
                tmp = self.state_path.with_name(f"{self.state_path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
                tmp.write_text(json.dumps(data, indent=1))
                tmp.replace(self.state_path)
            except OSError:
                pass  # a full or read-only data dir loses the queue's persistence, not the downloads

    # API -------------------------------------------------------------------------------------
    def jobs(self) -> list[Job]:
        with self._lock:
            return [dataclasses.replace(j) for j in self._jobs.values()]

    def job(self, job_id: str) -> Job:
        with self._lock:
            return dataclasses.replace(self._jobs[job_id])

    def submit(self, repo_or_profile: str, *, quant: str | None = None, filename: str | None = None,
               target_dir: str | None = None) -> Job:
        repo, prof = resolve_spec(repo_or_profile, self.store)
        job = Job(uuid.uuid4().hex[:12], repo, quant, filename, prof.id if prof else None, target_dir)
        with self._lock:
            self._jobs[job.id] = job
        self._save()
        self._queue.put(job.id)
        return dataclasses.replace(job)

    def resume(self, job_id: str) -> None:
        with self._lock:
            job = self._jobs[job_id]
            if job.state not in {"paused", "failed", "cancelled"}:
                return
            job.state, job.message, job.error = "queued", "", None
        self._save()
        self._event(DownloadEvent(job_id, "queued", done=job.done, total=job.total))
        self._queue.put(job_id)

    def resume_interrupted(self) -> int:
        """Resume the jobs a quit or crash interrupted (not those the user paused); returns how many."""
        n = 0
        for j in self.jobs():
            if j.state == "paused" and j.message == INTERRUPTED:
                self.resume(j.id)
                n += 1
        return n

    def pause(self, job_id: str) -> None:
        self._stop(job_id, discard=False)

    def cancel(self, job_id: str) -> None:
        self._stop(job_id, discard=True)

    def remove(self, job_id: str) -> None:
        self.cancel(job_id)
        with self._lock:
            self._jobs.pop(job_id, None)
        self._save()

    def wait(self, job_id: str, timeout: float = 60.0) -> Job:
        deadline = time.monotonic() + timeout
        with self._idle:
            while job_id in self._jobs and self._jobs[job_id].state not in FINAL_STATES:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._idle.wait(left)
            return dataclasses.replace(self._jobs[job_id])

    def close(self) -> None:
        """Stop the worker; a running job is left resumable and marked interrupted (app quit)."""
        self._closing = True
        with self._lock:
            events = list(self._cancel.values())
        for ev in events:
            ev.set()
        self._queue.put(None)
        self._thread.join(timeout=10)

    # worker ------------------------------------------------------------------------------------
    def _stop(self, job_id: str, *, discard: bool) -> None:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                return
            ev = self._cancel.get(job_id)
            if discard:
                self._discard.add(job_id)
            if ev is not None:
                ev.set()  # the worker notices between chunks and settles the state
                return
            if job.state in {"queued", "paused", "failed"}:
                job.state = "cancelled" if discard else "paused"
                self._idle.notify_all()
        if discard:
            self._discard_files(job)
        self._save()
        self._event(DownloadEvent(job_id, job.state, done=job.done, total=job.total))

    def _discard_files(self, job: Job) -> None:
        """Delete this job's partial files only (another job may be a paused quant of the same repo)."""
        with self._lock:
            own = list(job.partials)
            busy = {p for j in self._jobs.values() if j.id != job.id and j.state not in {"done", "cancelled"}
                    for p in j.partials}
        try:
            if own:
                for p in own:
                    if p not in busy:
                        for f in (Path(p), Path(p + ".json")):
                            f.unlink(missing_ok=True)
            elif job.quant or job.filename:
                self._discard_partials(job.profile_id or job.repo, self.store, quant=job.quant, filename=job.filename,
                                 keep=busy)
        except (AppError, OSError):
            pass

    def _event(self, ev: DownloadEvent) -> None:
        with self._lock:
            job = self._jobs.get(ev.job_id)
            if job is not None:
                if ev.partials:
                    job.partials = list(ev.partials)
                job.state = ev.state
                job.done, job.total = ev.done or job.done, ev.total or job.total
                if ev.message:
                    job.message = ev.message
        if self.on_event:
            try:
                self.on_event(ev)
            except Exception:  # noqa: BLE001 - a broken listener must not kill the download thread
                pass

    def _worker(self) -> None:
        while True:
            job_id = self._queue.get()
            if job_id is None:
                return
            try:
                with self._lock:
                    job = self._jobs.get(job_id)
                    if job is None or job.state != "queued":
                        continue
                    cancel = self._cancel[job_id] = threading.Event()
                self._run(job, cancel)
            except BaseException as exc:  # noqa: BLE001 - one job's failure must never stop the queue
                self._settle_crash(job_id, exc)

    def _settle_crash(self, job_id: str, exc: BaseException) -> None:
        err = DownloadError(f"download failed unexpectedly: {exc}", details=repr(exc))
        with self._lock:
            self._cancel.pop(job_id, None)
            self._discard.discard(job_id)
            job = self._jobs.get(job_id)
            if job is not None and job.state not in FINAL_STATES:
                job.state, job.message, job.error = "failed", err.message, err.to_dict()
            self._idle.notify_all()
        try:
            self._save()
        except Exception:  # noqa: BLE001
            pass

    def _run(self, job: Job, cancel: threading.Event) -> None:
        final: DownloadEvent
        try:
            res = self._run_download(job.profile_id or job.repo, quant=job.quant, filename=job.filename,
                                     target_dir=job.target_dir, job_id=job.id, on_event=self._event, cancel=cancel,
                                     store=self.store, **self.run_kwargs)
            with self._lock:
                job.result, job.files = res.to_dict(), res.files
            final = DownloadEvent(job.id, "done", done=res.size, total=res.size, message="; ".join(res.fixes),
                                  result=res.to_dict())
        except DownloadCancelled:
            discard = job.id in self._discard
            if discard:
                self._discard_files(job)
            msg = ("cancelled" if discard else
                   INTERRUPTED if self._closing else "paused; resume to continue")
            final = DownloadEvent(job.id, "cancelled" if discard else "paused", done=job.done, total=job.total,
                                  message=msg)
        except AppError as exc:
            with self._lock:
                job.error = exc.to_dict()
            final = DownloadEvent(job.id, "failed", done=job.done, total=job.total, message=exc.message,
                                  error=exc.to_dict())
        except Exception as exc:  # noqa: BLE001 - never let the worker die; report it as a failed job
            err = DownloadError(f"download failed unexpectedly: {exc}", details=repr(exc))
            with self._lock:
                job.error = err.to_dict()
            final = DownloadEvent(job.id, "failed", message=err.message, error=err.to_dict())
        with self._lock:
            self._cancel.pop(job.id, None)
            self._discard.discard(job.id)
        self._event(final)
        self._save()
        with self._idle:
            self._idle.notify_all()
