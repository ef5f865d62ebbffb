"""Hub servers that are not huggingface.co (the olah mirror's behaviour, switched on in the loopback hub):
401 on a model-info request without a revision, listings without sizes, and Range ignored."""
from __future__ import annotations

from pathlib import Path

import pytest

from desktop.engine import paths
from desktop.engine.hub import downloads
from desktop.engine.hub.events import CANNOT_RESUME, DownloadEvent
from desktop.engine.hub.quants import list_quants
from desktop.engine.hub import listing as hub
from tests.fixtures import tiny_gguf
from tests.fixtures.hub_server import HubServer

REPO = "acme/Tiny-Mistral-GGUF"
FILE = "tiny-mistral.Q4_K_M.gguf"


def _logged(get, timeout: float = 5.0) -> list:
    """The server logs a request after answering it: poll a moment for the entry."""
    import time

    deadline = time.monotonic() + timeout
    while not (found := get()) and time.monotonic() < deadline:
        time.sleep(0.02)
    return found


@pytest.fixture
def repo(hub_server: HubServer, spm_model: tiny_gguf.TinyModel) -> bytes:
    data = spm_model.path.read_bytes()
    hub_server.add(REPO, {FILE: data, "README.md": b"# card\n"})
    return data


def test_always_asks_with_an_explicit_revision(hub_server: HubServer, repo: bytes) -> None:
    hub_server.require_revision = True
    listing = hub.list_files(REPO)
    assert {f.name for f in listing.files} == {FILE, "README.md"}
    res = downloads.run_download(REPO, quant="Q4_K_M")
    assert Path(res.path).read_bytes() == repo
    info = [r for r in hub_server.log if r.path.startswith("/api/models/")]
    assert info and all(r.path.endswith("/revision/main") and r.status == 200 for r in info)


def test_sizes_missing_from_a_listing_come_from_a_head_request(hub_server: HubServer, repo: bytes) -> None:
    hub_server.no_sizes = True
    listing = hub.list_files(REPO)
    assert {f.name: f.size for f in listing.files}[FILE] == len(repo)
    assert _logged(lambda: hub_server.requests_for(FILE, "HEAD"))  # that is where the size came from
    entry = hub.pick(hub.group_quants(listing.files), "Q4_K_M")
    assert entry.size == len(repo)
    res = downloads.run_download(REPO, quant="Q4_K_M")
    assert res.size == len(repo) and Path(res.path).read_bytes() == repo


def test_a_server_that_ignores_range_restarts_the_file_and_says_so(hub_server: HubServer, repo: bytes) -> None:
    f = hub_server.repos[REPO].files[FILE]
    f.faults.drop_after = len(repo) // 2  # the first attempt leaves half a file
    hub_server.ignore_range = True
    events: list[DownloadEvent] = []
    res = downloads.run_download(REPO, quant="Q4_K_M", on_event=events.append, backoff_base=0.01, connections=1)
    assert Path(res.path).read_bytes() == repo
    gets = [q for q in hub_server.requests_for(FILE) if q.sent]
    assert len(gets) == 2 and gets[1].range == f"bytes={len(repo) // 2}-" and gets[1].status == 200
    assert gets[1].sent == len(repo)  # the whole file again, from byte 0
    told = [e for e in events if e.message == CANNOT_RESUME]
    assert told and told[0].state == "downloading"


def test_remote_header_read_stops_when_the_server_ignores_range(hub_server: HubServer, spm_model: tiny_gguf.TinyModel,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    big = spm_model.path.read_bytes() + b"\0" * (24 << 20)
    hub_server.add(REPO, {FILE: big})
    hub_server.ignore_range = True
    hub_server.repos[REPO].files[FILE].faults.throttle_bps = 40_000_000  # the client must hang up, not wait
    monkeypatch.setattr(hub, "HEADER_PREFIX_BYTES", 1 << 20)
    numbers = hub.read_remote_header(REPO, FILE)
    assert numbers["layers"] and numbers["head_dim"]
    import time

    time.sleep(0.5)  # the server logs the GET once it notices the closed connection
    got = hub_server.requests_for(FILE)
    assert len(got) == 1 and got[0].status == 200
    assert got[0].sent < len(big) // 3  # it stopped reading after the prefix, never the whole 24 MB


def test_quants_listing_works_against_a_mirror(hub_server: HubServer, repo: bytes) -> None:
    hub_server.require_revision = hub_server.no_sizes = hub_server.ignore_range = True
    res = list_quants(REPO)
    assert [e.quant for e in res.entries] == ["Q4_K_M"] and res.entries[0].size == len(repo)
    assert not list(paths.hf_hub_cache().rglob("*.gguf"))
