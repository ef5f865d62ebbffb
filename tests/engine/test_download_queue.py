"""The download queue under concurrency: saves from many threads, a job that raises, cancels that delete only
their own partial files, and a stress run of pause/resume/cancel/submit from several threads."""
from __future__ import annotations

import json
import random
import threading
import time
from pathlib import Path

import pytest

from desktop.engine import paths
from desktop.engine.hub import downloads
from desktop.engine.hub.events import DownloadEvent
from desktop.engine.hub.queue import DownloadQueue, Job
from tests.fixtures import tiny_gguf
from tests.fixtures.hub_server import HubServer

REPO = "acme/Tiny-Mistral-GGUF"
Q4 = "tiny-mistral.Q4_K_M.gguf"
Q8 = "tiny-mistral.Q8_0.gguf"


@pytest.fixture
def repo(hub_server: HubServer, spm_model: tiny_gguf.TinyModel) -> bytes:
    data = spm_model.path.read_bytes()
    hub_server.add(REPO, {Q4: data, Q8: data + b"\0" * 64, "tiny-mistral.Q5_K_M.gguf": data + b"\0" * 128,
                          "tiny-mistral.Q6_K.gguf": data + b"\0" * 192})
    return data


@pytest.fixture
def escaped(monkeypatch: pytest.MonkeyPatch) -> list[BaseException]:
    """Every exception that escapes a thread."""
    seen: list[BaseException] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: seen.append(args.exc_value))
    return seen


def test_saving_the_queue_from_many_threads_never_fails(escaped: list[BaseException]) -> None:
    mgr = downloads.DownloadManager()
    try:
        for i in range(20):
            mgr._jobs[f"j{i}"] = Job(f"j{i}", REPO, "Q4_K_M")

        def hammer() -> None:
            for _ in range(40):
                mgr._save()

        threads = [threading.Thread(target=hammer) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert escaped == []  # one shared temp file raced to FileNotFoundError before
        data = json.loads(mgr.state_path.read_text())
        assert sorted(j["id"] for j in data) == sorted(f"j{i}" for i in range(20))
        assert not list(mgr.state_path.parent.glob("*.tmp"))
    finally:
        mgr.close()


def test_the_worker_survives_a_job_that_raises(repo: bytes, escaped: list[BaseException]) -> None:
    real = downloads.run_download
    calls = {"n": 0}

    def flaky(*a, **k):
        calls["n"] += 1
        if calls["n"] == 1:
            raise KeyError("something nobody expected")
        return real(*a, **k)

    mgr = DownloadQueue(run=flaky, discard=downloads.discard_partials)
    real_save = mgr._save
    broke = threading.Event()

    def save_once_broken() -> None:  # what the shared temp file did: FileNotFoundError on the worker thread
        if threading.current_thread() is mgr._thread and not broke.is_set():
            broke.set()
            raise FileNotFoundError("downloads.json.tmp")
        real_save()

    mgr._save = save_once_broken  # type: ignore[method-assign]
    try:
        bad = mgr.submit(REPO, quant="Q4_K_M")
        good = mgr.submit(REPO, quant="Q8_0")
        assert mgr.wait(bad.id, 30).state == "failed"
        done = mgr.wait(good.id, 30)
        assert done.state == "done", done  # the next job still ran
        assert "unexpectedly" in mgr.job(bad.id).message and broke.is_set()
        assert mgr._thread.is_alive()
    finally:
        mgr.close()
    assert escaped == []


def test_cancel_deletes_only_that_jobs_partial_files(hub_server: HubServer, repo: bytes) -> None:
    for name in (Q4, Q8):
        hub_server.repos[REPO].files[name].faults.throttle_bps = 1_000_000
    moving: dict[str, threading.Event] = {}

    def on_event(ev: DownloadEvent) -> None:
        if ev.state == "downloading" and ev.file_done > 100_000 and ev.job_id in moving:
            moving[ev.job_id].set()

    mgr = downloads.DownloadManager(on_event)
    try:
        a = mgr.submit(REPO, quant="Q4_K_M")
        moving[a.id] = threading.Event()
        assert moving[a.id].wait(30)
        mgr.pause(a.id)
        assert mgr.wait(a.id, 30).state == "paused"
        kept = paths.download_dir() / REPO / (Q4 + ".incomplete")
        assert kept.is_file() and kept.stat().st_size > 0
        assert mgr.job(a.id).partials == [str(kept)]

        b = mgr.submit(REPO, quant="Q8_0")
        moving[b.id] = threading.Event()
        assert moving[b.id].wait(30)
        mgr.cancel(b.id)
        assert mgr.wait(b.id, 30).state == "cancelled"
        assert not (paths.download_dir() / REPO / (Q8 + ".incomplete")).exists()
        assert kept.is_file()  # the paused quant of the same repo keeps its partial file

        for name in (Q4, Q8):
            hub_server.repos[REPO].files[name].faults.throttle_bps = None
        mgr.resume(a.id)
        assert mgr.wait(a.id, 30).state == "done"
        assert (paths.download_dir() / REPO / Q4).read_bytes() == repo
    finally:
        mgr.close()


def test_stress_pause_resume_cancel_and_submit_from_several_threads(
        hub_server: HubServer, repo: bytes, escaped: list[BaseException]) -> None:
    for f in hub_server.repos[REPO].files.values():
        f.faults.throttle_bps = 4_000_000
    mgr = downloads.DownloadManager()
    quants = ["Q4_K_M", "Q8_0", "Q5_K_M", "Q6_K"]
    ids: list[str] = []
    lock = threading.Lock()
    stop = time.monotonic() + 4.0

    def actor(seed: int) -> None:
        rnd = random.Random(seed)
        while time.monotonic() < stop:
            with lock:
                known = list(ids)
            op = rnd.choice(["submit", "pause", "resume", "cancel", "resume", "jobs"])
            if op == "submit" or not known:
                job = mgr.submit(REPO, quant=rnd.choice(quants))
                with lock:
                    ids.append(job.id)
            elif op == "pause":
                mgr.pause(rnd.choice(known))
            elif op == "resume":
                mgr.resume(rnd.choice(known))
            elif op == "cancel":
                mgr.cancel(rnd.choice(known))
            else:
                mgr.jobs()
            json.loads(mgr.state_path.read_text())  # valid JSON at every moment
            time.sleep(rnd.uniform(0.0, 0.05))

    try:
        threads = [threading.Thread(target=actor, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for f in hub_server.repos[REPO].files.values():
            f.faults.throttle_bps = None
        for j in mgr.jobs():  # everything left over runs to the end
            mgr.resume(j.id)
        final = {j: mgr.wait(j, 60).state for j in ids}
        assert set(final.values()) <= {"done", "cancelled", "paused"}, final
        assert "done" in final.values()
        assert mgr._thread.is_alive()  # the worker never died
        on_disk = {d["id"]: d["state"] for d in json.loads(mgr.state_path.read_text())}
        assert on_disk == {j.id: j.state for j in mgr.jobs()}
    finally:
        mgr.close()
    assert escaped == []
    for j in final:
        if final[j] == "done":
            res = mgr.job(j).result
            assert res and Path(res["path"]).is_file()
