"""Parallel ranged downloads: several connections into one preallocated file, per-chunk progress in the
sidecar, sha256 checked before the file counts, the 128009 repair after (undoable), and the fallbacks."""
from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from desktop.engine import paths
from desktop.engine.errors import VerificationError
from desktop.engine.hub import downloads, parallel
from desktop.engine.hub.events import DownloadEvent
from desktop.engine.library import registry
from tests.fixtures import tiny_gguf
from tests.fixtures.hub_server import HubServer

REPO = "acme/Big-Mistral-GGUF"
FILE = "big-mistral.Q4_K_M.gguf"
SIZE = 10 << 20


def _big(model: tiny_gguf.TinyModel, size: int = SIZE) -> bytes:
    """A real GGUF padded past the parallel threshold (the doctor ignores bytes after the tensor data)."""
    data = model.path.read_bytes()
    return data + bytes(range(256)) * ((size - len(data)) // 256)


@pytest.fixture
def big(hub_server: HubServer, spm_model: tiny_gguf.TinyModel) -> bytes:
    data = _big(spm_model)
    assert len(data) >= parallel.PARALLEL_MIN_BYTES
    hub_server.add(REPO, {FILE: data})
    return data


def _timed(connections: int, data: bytes, target: Path) -> float:
    """Seconds to fetch and sha256-verify the file (the transfer alone: no listing, no doctor)."""
    from desktop.engine.hub import listing as hub
    from desktop.engine.hub.events import Progress
    from desktop.engine.hub.targets import FileTarget

    sha = hashlib.sha256(data).hexdigest()
    t = FileTarget(FILE, len(data), sha, sha, hub.resolve_url(REPO, FILE, "main"), target / FILE)
    target.mkdir(parents=True)
    t0 = time.monotonic()
    downloads._fetch_one(t, 1, Progress("t", len(data), 1, None), threading.Event(), repo=REPO,
                         connections=connections, stall_after=30.0, max_retries=2, backoff_base=0.1, backoff_max=1.0)
    took = time.monotonic() - t0
    assert t.final.read_bytes() == data and not t.incomplete.exists() and not t.sidecar.exists()
    return took


def test_four_connections_arrive_clearly_faster_than_one(hub_server: HubServer, spm_model: tiny_gguf.TinyModel,
                                                        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A small file under a low per-connection cap: the test machine runs many suites on 2 cores, where one
    # Python process moves only a few MB/s through its loopback server and client; the cap, not the CPU,
    # must set the pace, or four connections cannot show what they are worth. (The parallel path is the
    # same for big files: only the thresholds are lowered.)
    monkeypatch.setattr(parallel, "PARALLEL_MIN_BYTES", 1 << 20)
    monkeypatch.setattr(parallel, "MIN_CHUNK", 128 << 10)
    data = spm_model.path.read_bytes()[:3 << 20]
    hub_server.add(REPO, {FILE: data})
    hub_server.rate_cap = 750_000
    one = _timed(1, data, tmp_path / "one")
    four = _timed(4, data, tmp_path / "four")
    assert one / four >= 2.5, (one, four)
    ranged = [q for q in hub_server.requests_for(FILE) if q.range and q.sent]
    assert len(ranged) >= 4 and all(q.status == 206 for q in ranged)


def test_a_kill_refetches_at_most_one_chunk_per_connection(hub_server: HubServer, big: bytes) -> None:
    hub_server.rate_cap = 1_500_000
    code = ("from desktop.engine.hub import downloads; "
            f"downloads.run_download({REPO!r}, quant='Q4_K_M', connections=4)")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[2]), *sys.path])}
    proc = subprocess.Popen([sys.executable, "-c", code], env=env)
    sidecar = paths.download_dir() / REPO / (FILE + ".incomplete.json")
    done = 0
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                done = sum(c[2] for c in json.loads(sidecar.read_text())["chunks"])
            except (OSError, ValueError, KeyError):
                done = 0
            if done > SIZE * 0.3:
                break
            time.sleep(0.02)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert done > SIZE * 0.3, "the download never got going"
    kept = json.loads(sidecar.read_text())["chunks"]  # what the killed run had written and recorded
    persisted = sum(c[2] for c in kept)
    hub_server.rate_cap = None
    res = downloads.run_download(REPO, quant="Q4_K_M", connections=4)
    assert Path(res.path).read_bytes() == big
    assert res.fetched_bytes == len(big) - persisted  # the resume asks for exactly what the sidecar lacks
    time.sleep(0.5)  # the server logs a killed connection once it notices it
    sent = sum(q.sent for q in hub_server.requests_for(FILE))
    step = parallel.chunk_size(len(big), 4)
    assert 0 <= sent - len(big) <= 4 * step, (sent - len(big), step)  # at most one chunk per connection twice


def test_a_server_that_ignores_range_falls_back_to_one_connection(hub_server: HubServer, big: bytes) -> None:
    hub_server.ignore_range = True
    events: list[DownloadEvent] = []
    res = downloads.run_download(REPO, quant="Q4_K_M", connections=4, on_event=events.append)
    assert Path(res.path).read_bytes() == big
    assert any("one connection" in e.message for e in events)
    full = [q for q in hub_server.requests_for(FILE) if q.sent == len(big)]
    assert len(full) == 1


def test_a_corrupt_parallel_transfer_is_rejected_and_deleted(hub_server: HubServer, big: bytes) -> None:
    hub_server.repos[REPO].files[FILE].faults.corrupt = True
    with pytest.raises(VerificationError, match="corrupt"):
        downloads.run_download(REPO, quant="Q4_K_M", connections=4)
    assert not [p for p in paths.download_dir().rglob("*") if p.is_file()]
    assert registry.read_registry() == {}


def test_parallel_download_is_repaired_after_and_the_repair_can_be_undone(
        hub_server: HubServer, llama3_broken: tiny_gguf.TinyModel) -> None:
    data = _big(llama3_broken, max(SIZE, llama3_broken.path.stat().st_size + (4 << 20)))
    hub_server.add("acme/Big-Llama-3-GGUF", {"big-llama3.Q8_0.gguf": data})
    res = downloads.run_download("acme/Big-Llama-3-GGUF", quant="Q8_0", connections=4)
    path = Path(res.path)
    hub_sha = hashlib.sha256(data).hexdigest()
    assert res.source_sha256 == [hub_sha] and res.sha256 == hashlib.sha256(path.read_bytes()).hexdigest() != hub_sha
    assert any("128009" in f for f in res.fixes)
    m = next(x for x in registry.list_installed() if x.id == res.model_id)
    assert m.origin == "downloaded" and m.repaired_in_place and m.can_revert
    back = registry.revert_repair(res.model_id)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == hub_sha == back.sha256  # the Hub's bytes again
    assert all("repaired at load time" in f for f in back.fixes)
    again = downloads.run_download("acme/Big-Llama-3-GGUF", quant="Q8_0", connections=4)
    assert again.fetched_bytes == 0  # the reverted file is still a verified copy...
    assert hashlib.sha256(path.read_bytes()).hexdigest() == hub_sha  # ...and is not repaired behind the user's back
    assert all("repaired at load time" in f for f in again.fixes)


def test_a_partial_of_another_version_of_the_file_is_discarded(hub_server: HubServer, big: bytes) -> None:
    from desktop.engine.hub.targets import FileTarget, write_sidecar

    final = paths.download_dir() / REPO / FILE
    final.parent.mkdir(parents=True)
    stale = FileTarget(FILE, len(big), "0" * 64, "0" * 64, "", final)
    final.with_name(FILE + ".incomplete").write_bytes(b"old bytes" * 1000)
    write_sidecar(stale, mode="single")
    res = downloads.run_download(REPO, quant="Q4_K_M", connections=1)
    assert Path(res.path).read_bytes() == big
    assert [q.range for q in hub_server.requests_for(FILE) if q.sent] == [None]  # from byte 0, not resumed


@pytest.mark.parametrize("repo,name", [("acme/x", "../../evil.gguf"), ("acme/x", "/abs.gguf"),
                                       ("../etc", "x.gguf"), ("acme/..", "x.gguf"), ("acme", "x.gguf")])
def test_hostile_repo_ids_and_names_never_leave_the_library(tmp_path: Path, repo: str, name: str) -> None:
    from desktop.engine.errors import DownloadError
    from desktop.engine.hub.targets import library_file

    with pytest.raises(DownloadError) as ei:
        library_file(tmp_path, repo, name)
    assert ei.value.code == "hostile_name"
