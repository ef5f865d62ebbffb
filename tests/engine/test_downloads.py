"""Downloads against a loopback server that speaks the Hub's protocol, with injected faults.

The server (tests/fixtures/hub_server.py) serves real GGUFs built by tests/fixtures/tiny_gguf.py;
huggingface_hub talks to it through HF_ENDPOINT exactly as it talks to huggingface.co.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from desktop.engine import paths
from desktop.engine.hub import downloads
from desktop.engine.hub.events import DownloadEvent
from desktop.engine.hub.quants import list_quants
from desktop.engine.hub import fetch
from desktop.engine.hub import fit
from desktop.engine.gguf import doctor as gguf_doctor
from desktop.engine.hub import listing as hub
from desktop.engine.library import registry
from desktop.engine.errors import DiskSpaceError, DownloadCancelled, DownloadError
from desktop.engine.hub.hardware import GPU, GiB, Hardware
from tests.fixtures import tiny_gguf
from tests.fixtures.hub_server import HubServer

REPO = "acme/Tiny-Llama-3-GGUF"
SPM_REPO = "acme/Tiny-Mistral-GGUF"
LLAMA3_FILE = "tiny-llama3.Q8_0.gguf"
SPM_FILE = "tiny-mistral.Q4_K_M.gguf"


@pytest.fixture
def spm_repo(hub_server: HubServer, spm_model: tiny_gguf.TinyModel) -> bytes:
    data = spm_model.path.read_bytes()
    hub_server.add(SPM_REPO, {SPM_FILE: data, "tiny-mistral.Q8_0.gguf": data + b"\0" * 64, "README.md": b"# card\n"})
    return data


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "desktop", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=240)


def gets(srv: HubServer, name: str) -> list:
    return srv.requests_for(name, "GET")


def settled_gets(srv: HubServer, name: str, timeout: float = 10.0) -> list:
    """The GETs of ``name`` once the server has logged them: a GET the client abandoned is logged when the
    server's handler notices the closed connection, a moment after the client gave up."""
    import time

    deadline = time.monotonic() + timeout
    while not gets(srv, name) and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.2)
    return gets(srv, name)


# ------------------------------------------------------------------------------------------ listing


def test_listing_groups_shards_and_parts_and_rejects_hostile_names(hub_server: HubServer) -> None:
    blob = b"GGUF" + b"\0" * 2000
    hub_server.add("acme/Big-GGUF", {
        "big.Q4_K_M.gguf": blob,
        "Q8_0/big-Q8_0-00001-of-00002.gguf": blob, "Q8_0/big-Q8_0-00002-of-00002.gguf": blob + b"x",
        "big.F16.gguf.part1of2": blob, "big.F16.gguf.part2of2": blob,
        "big.IQ2_XS-00001-of-00003.gguf": blob,  # shards 2 and 3 missing
        "mmproj-big-f16.gguf": blob, "README.md": b"card",
    }, extra_listing=["../../escape.gguf", "/etc/passwd.gguf"])
    listing = hub.list_files("acme/Big-GGUF")
    assert sorted(listing.rejected) == ["../../escape.gguf", "/etc/passwd.gguf"]
    entries = {e.quant: e for e in hub.group_quants(listing.files)}
    assert set(entries) == {"Q4_K_M", "Q8_0", "F16", "IQ2_XS"}
    q8 = entries["Q8_0"]
    assert q8.files == ["Q8_0/big-Q8_0-00001-of-00002.gguf", "Q8_0/big-Q8_0-00002-of-00002.gguf"]
    assert q8.split == "shards" and q8.size == 2 * len(blob) + 1 and q8.complete
    assert entries["F16"].split == "parts" and len(entries["F16"].files) == 2
    assert not entries["IQ2_XS"].complete
    import hashlib
    assert entries["Q4_K_M"].sha256 == [hashlib.sha256(blob).hexdigest()]


@pytest.mark.parametrize("name", ["../x.gguf", "a/../../x.gguf", "/abs.gguf", "a\\b.gguf", "C:x.gguf", "./x.gguf"])
def test_hostile_names_are_unsafe(name: str) -> None:
    assert hub.safe_relpath(name) is None
    assert hub.safe_relpath("sub/dir/x.gguf") == "sub/dir/x.gguf"


# ------------------------------------------------------------------------------------------ fit


def hw(ram_gib: float, vram_gib: float = 0, unified: bool = False) -> Hardware:
    gpus = (GPU(0, "test", "nvidia", int(vram_gib * GiB), int(vram_gib * GiB)),) if vram_gib else ()
    return Hardware(int(ram_gib * GiB), int(ram_gib * GiB), 8, gpus, unified, unified)


LLAMA3_8B = fit.Arch(layers=32, kv_heads=8, head_dim=128)
LLAMA_70B = fit.Arch(layers=80, kv_heads=8, head_dim=128)


def test_fit_kv_cost_of_one_million_tokens_is_128_gib() -> None:
    f = fit.estimate(int(4.9 * GiB), LLAMA3_8B, 1_048_576, hw(64, 24))
    assert f.kv_bytes_per_token == 2 * 32 * 8 * 128 * 2
    assert f.kv_bytes == 128 * GiB
    assert f.verdict == "won't fit" and "128.0 GiB" in f.explanation
    q8 = fit.estimate(int(4.9 * GiB), LLAMA3_8B, 1_048_576, hw(64, 24), "q8_0")
    assert q8.kv_bytes == int(128 * GiB * 34 / 64)


def test_fit_verdicts() -> None:
    size = int(4.9 * GiB)
    assert fit.estimate(size, LLAMA3_8B, 8192, hw(32, 24)).verdict == "fits on GPU"
    cpu = fit.estimate(size, LLAMA3_8B, 8192, hw(32))
    assert cpu.verdict == "CPU only" and cpu.gpu_layers == 0 and "no usable GPU" in cpu.explanation
    part = fit.estimate(int(42.5 * GiB), LLAMA_70B, 8192, hw(64, 24))
    assert part.kind == "partial" and part.verdict == f"partial offload: {part.gpu_layers} of 80 layers"
    per_layer = (part.weights_bytes + part.kv_bytes) / 80
    assert part.gpu_layers == int((24 * GiB - fit.VRAM_RESERVE_BYTES - fit.OVERHEAD_BYTES) // per_layer)
    assert fit.estimate(int(42.5 * GiB), LLAMA_70B, 8192, hw(16, 8)).verdict == "won't fit"
    assert fit.estimate(size, LLAMA3_8B, 8192, hw(32, 32 * 0.75, unified=True)).verdict == "fits on GPU"
    total = fit.estimate(size, LLAMA3_8B, 8192, hw(32, 24))
    assert total.total_bytes == size + 8192 * total.kv_bytes_per_token + fit.OVERHEAD_BYTES


def test_quants_cli_reads_architecture_from_a_ranged_header_read(hub_server: HubServer, spm_repo: bytes,
                                                                spm_model: tiny_gguf.TinyModel) -> None:
    r = run_cli("models", "quants", SPM_REPO, "--ctx", "2048", "--json",
                env={"DESKTOP_CHAT_FAKE_HW": "ram=8G,vram=0"})
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert [row["quant"] for row in rows] == ["Q4_K_M", "Q8_0"]
    row = rows[0]
    assert row["files"] == [SPM_FILE] and row["size"] == len(spm_repo)
    assert row["fit"]["verdict"] == "CPU only" and row["fit"]["n_ctx"] == 2048
    rep = gguf_doctor.inspect(spm_model.path)
    assert row["fit"]["kv_bytes_per_token"] == (2 * rep.block_count * rep.head_count_kv
                                                * (rep.embedding_length // rep.head_count) * 2)
    ranged = [q for q in gets(hub_server, SPM_FILE) if q.range]
    assert ranged and ranged[0].range.startswith("bytes=0-")

    # Once a copy is on disk, its own header is read instead: no network read of the header.
    downloads.run_download(SPM_REPO, quant="Q4_K_M")
    n = len(gets(hub_server, SPM_FILE))
    listing = list_quants(SPM_REPO, n_ctx=2048)
    assert listing.arch_source == "downloaded gguf header"
    assert listing.entries[0].fit["kv_bytes_per_token"] == row["fit"]["kv_bytes_per_token"]
    assert len(gets(hub_server, SPM_FILE)) == n


def test_quants_for_a_profile_use_its_architecture(hub_server: HubServer) -> None:
    hub_server.add("crusoeai/Llama-3-8B-Instruct-1048k-GGUF", {
        "llama-3-8b-instruct-1048k.Q4_K_M.gguf": b"GGUF" + b"\0" * 4000})
    r = run_cli("models", "quants", "llama-3-8b-instruct-gradient-1048k", "--ctx", "1048576", "--json",
                env={"DESKTOP_CHAT_FAKE_HW": "ram=64G,vram=24G"})
    assert r.returncode == 0, r.stderr
    row = json.loads(r.stdout)[0]
    assert row["fit"]["kv_bytes"] == 128 * GiB and row["fit"]["verdict"] == "won't fit"
    assert not [q for q in gets(hub_server, "llama-3-8b-instruct-1048k.Q4_K_M.gguf")]  # no header read needed


# ------------------------------------------------------------------------------------------ the whole path


def test_broken_llama3_arrives_fixed_registered_and_usable(hub_server: HubServer,
                                                           llama3_broken: tiny_gguf.TinyModel) -> None:
    data = llama3_broken.path.read_bytes()
    hub_server.add(REPO, {LLAMA3_FILE: data})
    assert gguf_doctor.inspect(llama3_broken.path).problems  # it really is broken at the source
    r = run_cli("models", "download", REPO, "--quant", "Q8_0", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    path = Path(out["path"])
    assert path == paths.download_dir() / REPO / LLAMA3_FILE and path.is_file()  # the app's library
    assert not list(paths.hf_hub_cache().rglob("*.gguf"))  # the shared cache is not written
    assert any("end-of-turn token 128009 was not the EOS token" in f for f in out["fixes"])
    import hashlib
    assert out["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert out["source_sha256"] == [hashlib.sha256(data).hexdigest()]
    rep = gguf_doctor.inspect(path, use_cache=False)
    assert not [p for p in rep.problems if p.code.startswith("eot_128009")]
    assert rep.eos.id == 128009

    listed = json.loads(run_cli("models", "list", "--json").stdout)
    entry = next(m for m in listed if m["path"] == str(path))
    assert entry["status"] == "fixed" and entry["profile"] == out["profile"] and entry["origin"] == "downloaded"
    assert entry["repaired_in_place"] and entry["can_revert"]

    # Usable: the profile made from its metadata answers and stops exactly at <|eot_id|>.
    r = run_cli("ask", "--profile", out["profile"], "--max-tokens", "16", "--json", "hi")
    assert r.returncode == 0, r.stderr
    ans = json.loads(r.stdout)
    assert ans["text"] == llama3_broken.expected_text and ans["finish_reason"] == "stop"

    # A second download reuses the verified (and repaired) file without fetching it again.
    before = len(gets(hub_server, LLAMA3_FILE))
    r = run_cli("models", "download", REPO, "--quant", "Q8_0", "--json")
    assert r.returncode == 0, r.stderr
    again = json.loads(r.stdout.strip().splitlines()[-1])
    assert again["path"] == out["path"] and again["fetched_bytes"] == 0 and again["fixes"] == []
    assert len(gets(hub_server, LLAMA3_FILE)) == before


def test_dropped_connection_resumes_without_refetching(hub_server: HubServer, spm_repo: bytes) -> None:
    f = hub_server.repos[SPM_REPO].files[SPM_FILE]
    f.faults.drop_after = len(spm_repo) // 2
    events: list[DownloadEvent] = []
    res = downloads.run_download(SPM_REPO, quant="Q4_K_M", on_event=events.append, backoff_base=0.05)
    body = [q for q in gets(hub_server, SPM_FILE) if q.sent]
    assert len(body) == 2
    assert body[0].sent == len(spm_repo) // 2
    assert body[1].range == f"bytes={body[0].sent}-"  # resumed at the byte it stopped, nothing refetched
    assert sum(q.sent for q in body) == len(spm_repo)
    assert "retrying" in {e.state for e in events}
    assert Path(res.path).read_bytes() == spm_repo


def test_interrupted_job_resumes_after_restart(hub_server: HubServer, spm_repo: bytes) -> None:
    f = hub_server.repos[SPM_REPO].files[SPM_FILE]
    f.faults.throttle_bps = 2_000_000
    cancel = threading.Event()

    events: list[DownloadEvent] = []

    def on_event(ev: DownloadEvent) -> None:
        events.append(ev)
        if ev.state == "downloading" and ev.file_done > len(spm_repo) // 2:
            cancel.set()

    with pytest.raises(DownloadCancelled):
        downloads.run_download(SPM_REPO, quant="Q4_K_M", on_event=on_event, cancel=cancel)
    # Progress carries bytes for the file and the job, a speed and an ETA.
    moving = [e for e in events if e.state == "downloading" and e.speed > 0]
    assert moving and moving[-1].eta is not None and moving[-1].eta > 0
    assert 1_000_000 < moving[-1].speed < 4_000_000  # the server sends 2 MB/s
    assert moving[-1].file_total == moving[-1].total == len(spm_repo) and moving[-1].n_files == 1
    partial = list(paths.download_dir().rglob("*.incomplete"))
    assert len(partial) == 1
    side = json.loads(partial[0].with_name(partial[0].name + ".json").read_text())
    assert side["size"] == len(spm_repo) and side["sha256"] == hashlib.sha256(spm_repo).hexdigest()
    have = partial[0].stat().st_size
    assert 0 < have < len(spm_repo)
    assert registry.read_registry() == {}  # a partial file is never a model

    f.faults.throttle_bps = None
    res = downloads.run_download(SPM_REPO, quant="Q4_K_M")  # a new run, as after an app restart
    last = gets(hub_server, SPM_FILE)[-1]
    assert last.range == f"bytes={have}-" and last.sent == len(spm_repo) - have
    assert res.fetched_bytes == len(spm_repo) - have
    assert Path(res.path).read_bytes() == spm_repo


def test_corrupted_transfer_is_rejected_and_not_registered(hub_server: HubServer, spm_repo: bytes) -> None:
    hub_server.repos[SPM_REPO].files[SPM_FILE].faults.corrupt = True
    r = run_cli("models", "download", SPM_REPO, "--quant", "Q4_K_M", "--json")
    assert r.returncode == 1 and r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "corrupt" in lines[0]
    assert "Traceback" not in r.stderr
    assert registry.read_registry() == {}
    lib = paths.download_dir()
    assert not [p for p in lib.rglob("*") if p.is_file()]  # nothing kept: no partial, no sidecar
    assert not list(paths.hf_hub_cache().rglob(SPM_FILE))


def test_stall_is_reported_then_recovers(hub_server: HubServer, spm_repo: bytes) -> None:
    hub_server.repos[SPM_REPO].files[SPM_FILE].faults.stall_after = len(spm_repo) // 2
    hub_server.repos[SPM_REPO].files[SPM_FILE].faults.stall_seconds = 4.0
    events: list[DownloadEvent] = []
    res = downloads.run_download(SPM_REPO, quant="Q4_K_M", on_event=events.append, stall_after=1.0,
                                 backoff_base=0.05)
    stalled = [e for e in events if e.state == "stalled"]
    assert stalled and "no data for 1 s" in stalled[0].message
    assert Path(res.path).read_bytes() == spm_repo


def test_disk_space_shortfall_refuses_before_fetching(hub_server: HubServer, spm_repo: bytes,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(downloads, "free_disk_bytes", lambda p: 100 << 20)
    with pytest.raises(DiskSpaceError) as ei:
        downloads.run_download(SPM_REPO, quant="Q4_K_M")
    assert "not enough disk space" in ei.value.message
    assert not gets(hub_server, SPM_FILE)


@pytest.mark.parametrize("kind,code,needle", [
    ("gated", "hub_gated", "hf auth login"),
    ("private", "hub_not_found", "HF_TOKEN"),
    ("forbidden", "hub_forbidden", "403"),
    ("missing_repo", "hub_not_found", "not found"),
])
def test_hub_errors_say_what_to_do(hub_server: HubServer, spm_model: tiny_gguf.TinyModel, kind: str, code: str,
                                   needle: str) -> None:
    if kind != "missing_repo":
        hub_server.add(SPM_REPO, {SPM_FILE: spm_model.path.read_bytes()}, **{kind: True})
    with pytest.raises(DownloadError) as ei:
        downloads.run_download(SPM_REPO, quant="Q4_K_M")
    assert ei.value.code == code and needle in ei.value.message


def test_token_from_env_unlocks_a_gated_repo(hub_server: HubServer, spm_model: tiny_gguf.TinyModel,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    repo = hub_server.add(SPM_REPO, {SPM_FILE: spm_model.path.read_bytes()}, gated=True)
    monkeypatch.setenv("HF_TOKEN", repo.token)
    res = downloads.run_download(SPM_REPO, quant="Q4_K_M")
    assert Path(res.path).is_file()
    assert all(q.auth == f"Bearer {repo.token}" for q in gets(hub_server, SPM_FILE))


def test_cli_unknown_file_and_hostile_name_are_one_line_errors(hub_server: HubServer, spm_repo: bytes) -> None:
    hub_server.repos[SPM_REPO].extra_listing.append("../../evil.gguf")
    for args, needle in [(("--file", "nope.gguf"), "nope.gguf"), (("--file", "../../evil.gguf"), "evil.gguf"),
                         (("--quant", "Q2_K"), "no Q2_K quant")]:
        r = run_cli("models", "download", SPM_REPO, *args)
        assert r.returncode == 1, r.stdout
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], r.stderr
    assert not list(paths.hf_home().rglob("evil.gguf"))
    assert not list(Path(paths.hf_home()).parent.rglob("evil.gguf"))


def test_files_other_tools_fetched_are_reused(hub_server: HubServer, spm_repo: bytes) -> None:
    from huggingface_hub import hf_hub_download

    hub.sync_hf_env()
    other = hf_hub_download(SPM_REPO, SPM_FILE, cache_dir=str(paths.hf_hub_cache()))
    n = len(gets(hub_server, SPM_FILE))
    res = downloads.run_download(SPM_REPO, quant="Q4_K_M")
    assert res.fetched_bytes == 0 and res.reused_bytes == len(spm_repo)
    assert res.path == other and res.origin == "hf-cache"  # used where it is
    assert len(gets(hub_server, SPM_FILE)) == n
    assert not list(paths.download_dir().rglob("*.gguf*"))


def test_byte_split_parts_are_joined(hub_server: HubServer, spm_model: tiny_gguf.TinyModel) -> None:
    data = spm_model.path.read_bytes()
    half = len(data) // 2
    hub_server.add(SPM_REPO, {"tiny.Q8_0.gguf.part1of2": data[:half], "tiny.Q8_0.gguf.part2of2": data[half:]})
    res = downloads.run_download(SPM_REPO, quant="Q8_0")
    assert Path(res.path).name == "tiny.Q8_0.gguf" and Path(res.path).read_bytes() == data
    assert Path(res.path) == paths.download_dir() / SPM_REPO / "tiny.Q8_0.gguf"
    assert not list(paths.download_dir().rglob("*.part1of2"))  # parts deleted after joining
    assert gguf_doctor.inspect(res.path).vocab_size == 32000
    assert registry.read_registry()[res.model_id]["path"] == res.path


# ------------------------------------------------------------------------------------------ the queue


def test_manager_pause_restart_resume_and_cancel(hub_server: HubServer, spm_repo: bytes) -> None:
    f = hub_server.repos[SPM_REPO].files[SPM_FILE]
    f.faults.throttle_bps = 3_000_000
    seen = threading.Event()

    def on_event(ev: DownloadEvent) -> None:
        if ev.state == "downloading" and ev.done > len(spm_repo) // 4:
            seen.set()

    mgr = downloads.DownloadManager(on_event)
    job = mgr.submit(SPM_REPO, quant="Q4_K_M")
    assert seen.wait(30)
    mgr.pause(job.id)
    assert mgr.wait(job.id, 30).state == "paused"
    mgr.close()
    partial = list(paths.download_dir().rglob("*.incomplete"))
    assert len(partial) == 1
    have = partial[0].stat().st_size

    # "Restart the app": a new manager finds the job in its persisted queue.
    f.faults.throttle_bps = None
    events: list[DownloadEvent] = []
    mgr2 = downloads.DownloadManager(events.append)
    jobs = mgr2.jobs()
    assert [j.id for j in jobs] == [job.id] and jobs[0].state == "paused"
    assert mgr2.resume_interrupted() == 0  # the user paused it: it stays paused until asked
    mgr2.resume(job.id)
    done = mgr2.wait(job.id, 60)
    assert done.state == "done", done
    assert done.result and done.result["fetched_bytes"] == len(spm_repo) - have
    assert any(e.state == "done" for e in events)

    # Cancel removes the partial file; the job ends as cancelled.
    hub_server.repos[SPM_REPO].files["tiny-mistral.Q8_0.gguf"].faults.throttle_bps = 1_000_000
    seen.clear()
    job2 = mgr2.submit(SPM_REPO, quant="Q8_0")
    mgr2.on_event = lambda ev: seen.set() if ev.state == "downloading" and ev.done > 200_000 else None
    assert seen.wait(30)
    mgr2.cancel(job2.id)
    assert mgr2.wait(job2.id, 30).state == "cancelled"
    assert not list(paths.download_dir().rglob("*.incomplete*"))
    mgr2.close()


# ------------------------------------------------------------------------------------------ local files


def test_import_list_remove(llama3_broken: tiny_gguf.TinyModel, tmp_path: Path) -> None:
    r = run_cli("models", "import", str(llama3_broken.path), "--json")
    assert r.returncode == 0, r.stderr
    m = json.loads(r.stdout)
    assert m["status"] == "fixed" and m["origin"] == "imported" and not m["repaired_in_place"]
    assert any("128009" in f and "repaired at load time; the file is unchanged" in f for f in m["fixes"])
    assert (paths.user_profiles_dir() / f"{m['profile_id']}.yaml").is_file()
    listed = json.loads(run_cli("models", "list", "--json").stdout)
    assert any(x["path"] == m["path"] for x in listed)
    assert any(x["origin"] == "bundled" for x in listed)

    r = run_cli("models", "import", str(llama3_broken.path), "--profile", "smaug-llama-3-70b-instruct")
    assert r.returncode == 0, r.stderr
    r = run_cli("models", "remove", m["id"])
    assert r.returncode == 0 and "file kept" in r.stdout
    assert llama3_broken.path.is_file()  # an imported file is the user's: never deleted
    assert not any(x["id"] == m["id"] for x in json.loads(run_cli("models", "list", "--json").stdout))
    r = run_cli("models", "remove", "no-such-model")
    assert r.returncode == 1 and r.stderr.startswith("error: no installed model")


def test_remove_deletes_downloaded_files(hub_server: HubServer, spm_repo: bytes) -> None:
    res = downloads.run_download(SPM_REPO, quant="Q4_K_M")
    blob = Path(res.path).resolve()
    assert blob.is_file()
    registry.remove_model(res.model_id)
    assert not Path(res.path).exists() and not blob.exists()
    assert registry.read_registry() == {}


def test_token_saved_by_hf_auth_login_and_offline_mode(hub_server: HubServer, spm_model: tiny_gguf.TinyModel
                                                       ) -> None:
    repo = hub_server.add(SPM_REPO, {SPM_FILE: spm_model.path.read_bytes()}, private=True)
    r = run_cli("models", "download", SPM_REPO, "--quant", "Q4_K_M")
    assert r.returncode == 1 and "hf auth login" in r.stderr
    (paths.hf_home() / "token").write_text(repo.token)  # what `hf auth login` writes
    r = run_cli("models", "download", SPM_REPO, "--quant", "Q4_K_M", "--json")
    assert r.returncode == 0, r.stderr
    assert all(q.auth == f"Bearer {repo.token}" for q in gets(hub_server, SPM_FILE))
    r = run_cli("models", "quants", SPM_REPO, env={"HF_HUB_OFFLINE": "1"})
    assert r.returncode == 1 and r.stderr.startswith("error: offline mode is on (HF_HUB_OFFLINE=1)")


def test_models_directory_instead_of_the_cache(hub_server: HubServer, spm_repo: bytes, tmp_path: Path) -> None:
    target = tmp_path / "my-models"
    hub_server.repos[SPM_REPO].files[SPM_FILE].faults.drop_after = len(spm_repo) // 3
    r = run_cli("models", "download", SPM_REPO, "--quant", "Q4_K_M", "--dir", str(target), "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert Path(out["path"]) == target / "acme" / "Tiny-Mistral-GGUF" / SPM_FILE
    assert Path(out["path"]).read_bytes() == spm_repo and not list(target.rglob("*.incomplete"))
    assert not list(paths.hf_hub_cache().rglob(SPM_FILE)) and not list(paths.download_dir().rglob(SPM_FILE))
    assert sum(q.sent for q in gets(hub_server, SPM_FILE)) == len(spm_repo)


def test_header_prefix_parser_reports_truncation_and_rejects_non_gguf(spm_model: tiny_gguf.TinyModel) -> None:
    from desktop.engine.gguf import header as gguf_header
    from desktop.engine.errors import GGUFError

    data = spm_model.path.read_bytes()
    full = gguf_header.parse_prefix(data)
    assert "GGUF.truncated" not in full and full["general.architecture"] == "llama"
    cut = gguf_header.parse_prefix(data[:200])
    assert cut["GGUF.truncated"] is True and cut["general.architecture"] == "llama"
    for bad in (b"GG", b"NOPE" + b"\0" * 40):
        with pytest.raises(GGUFError):
            gguf_header.parse_prefix(bad)


# ------------------------------------------------------------------------------------ the writer thread


def test_disk_writer_writes_and_hashes_blocks_in_order(tmp_path: Path) -> None:
    import hashlib
    import io

    out = io.BytesIO()
    running = fetch._RunningHash("sha256", 0)
    w = fetch._DiskWriter(out, running)
    blocks = [[os.urandom(1000 + i), os.urandom(70_000)] for i in range(3 * fetch.WRITE_DEPTH)]
    for b in blocks:
        w.put(b)
    assert w.close() == sum(len(p) for b in blocks for p in b) == w.queued
    data = b"".join(p for b in blocks for p in b)
    assert out.getvalue() == data
    assert running.h.hexdigest() == hashlib.sha256(data).hexdigest() and running.n == len(data)
    assert not w.thread.is_alive() and not w.hasher.is_alive()


def test_disk_writer_hashes_on_a_thread_of_its_own_after_each_write() -> None:
    """The hash must not share a thread with the writes (that serialised them and capped throughput), and a
    block is hashed only once it is in the file."""
    import hashlib

    seen: list[tuple[str, str, int]] = []

    class Out:
        size = 0

        def write(self, data) -> int:
            seen.append(("write", threading.current_thread().name, self.size + len(data)))
            self.size += len(data)
            return len(data)

        def flush(self) -> None:
            pass

    out = Out()

    class Running(fetch._RunningHash):
        def update(self, data: bytes) -> None:
            seen.append(("hash", threading.current_thread().name, self.n + len(data)))
            assert self.n + len(data) <= out.size  # never ahead of the file
            super().update(data)

    running = Running("sha256", 0)
    w = fetch._DiskWriter(out, running)
    blocks = [[os.urandom(5000)] for _ in range(4 * fetch.WRITE_DEPTH)]
    for b in blocks:
        w.put(b)
    assert w.close() == running.n == out.size == 20_000 * fetch.WRITE_DEPTH
    assert running.h.hexdigest() == hashlib.sha256(b"".join(b[0] for b in blocks)).hexdigest()
    assert {name for kind, name, _ in seen if kind == "write"} == {"download-writer"}
    assert {name for kind, name, _ in seen if kind == "hash"} == {"download-hasher"}


def test_disk_writer_hands_a_write_error_to_the_reader_without_blocking_it() -> None:
    import errno

    class Full:
        n = 0

        def write(self, data: bytes) -> int:
            if self.n:
                raise OSError(errno.ENOSPC, "No space left on device")
            self.n += len(data)
            return len(data)

        def flush(self) -> None:
            pass

    out = Full()
    w = fetch._DiskWriter(out, fetch._RunningHash("sha256", 0), "m.gguf", 500, 10_000)
    raised = 0
    for _ in range(10 * fetch.WRITE_DEPTH):  # far more than the queue holds: must not deadlock
        try:
            w.put([b"x" * 1000])
        except DiskSpaceError:
            raised += 1
    running = w.running
    with pytest.raises(DiskSpaceError, match="m.gguf: the disk filled up at byte 1,500 of 10,000"):
        w.close()
    assert raised > 0 and w.written == 1000 and not w.thread.is_alive() and not w.hasher.is_alive()
    assert running.n == 1000  # what reached the file is hashed, nothing more


def test_disk_writer_hands_a_hash_error_to_the_reader_without_blocking_it(tmp_path: Path) -> None:
    class Broken(fetch._RunningHash):
        def update(self, data: bytes) -> None:
            if self.n:
                raise MemoryError("hash state lost")
            super().update(data)

    with (tmp_path / "f").open("wb", buffering=0) as out:
        w = fetch._DiskWriter(out, Broken("sha256", 0), "m.gguf", 0, 10_000)
        raised = 0
        for _ in range(10 * fetch.WRITE_DEPTH):
            try:
                w.put([b"x" * 1000])
            except MemoryError:
                raised += 1
        with pytest.raises(MemoryError):
            w.close()
    assert raised > 0 and not w.thread.is_alive() and not w.hasher.is_alive()
    assert w.running.n == 1000 and (tmp_path / "f").stat().st_size == w.written >= 1000


def _writer_failing_past(limit: int, err: int) -> type:
    """The real ``_DiskWriter`` over a file that takes ``limit`` bytes, then fails with ``err``."""

    class Failing(fetch._DiskWriter):
        def __init__(self, out, running, *rest) -> None:
            class Out:
                def write(self, data) -> int:
                    if os.fstat(out.fileno()).st_size + len(data) > limit:
                        raise OSError(err, os.strerror(err))
                    return out.write(data)

                def flush(self) -> None:
                    out.flush()

            super().__init__(Out(), running, *rest)

    return Failing


def test_disk_filling_up_mid_download_stops_at_once_and_keeps_the_partial(
        hub_server: HubServer, spm_repo: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    limit = 128 * 1024
    monkeypatch.setattr(fetch, "WRITE_BYTES", 32 * 1024)
    monkeypatch.setattr(fetch, "_DiskWriter", _writer_failing_past(limit, errno.ENOSPC))
    events: list[DownloadEvent] = []
    with pytest.raises(DiskSpaceError) as ei:
        downloads.run_download(SPM_REPO, quant="Q4_K_M", on_event=events.append, backoff_base=5.0)
    assert "disk filled up" in ei.value.message
    assert "retrying" not in {e.state for e in events}  # no backoff loop against a full disk
    assert len([q for q in settled_gets(hub_server, SPM_FILE) if q.sent]) == 1
    partial = list(paths.download_dir().rglob("*.incomplete"))
    assert len(partial) == 1 and partial[0].read_bytes() == spm_repo[:partial[0].stat().st_size]
    assert 0 < partial[0].stat().st_size <= limit


def test_a_write_error_no_retry_can_fix_ends_the_download(hub_server: HubServer, spm_repo: bytes,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """EFBIG (FAT32's 4 GiB limit), EIO, EROFS: fetching again writes to the same disk, so no retry loop."""
    import errno

    monkeypatch.setattr(fetch, "WRITE_BYTES", 16 * 1024)
    monkeypatch.setattr(fetch, "_DiskWriter", _writer_failing_past(64 * 1024, errno.EFBIG))
    events: list[DownloadEvent] = []
    with pytest.raises(DownloadError) as ei:
        downloads.run_download(SPM_REPO, quant="Q4_K_M", on_event=events.append, backoff_base=0.001, max_retries=3)
    assert ei.value.code == "disk_write" and "DESKTOP_CHAT_MODELS_DIR" in ei.value.message
    assert "retrying" not in {e.state for e in events}
    assert len([q for q in settled_gets(hub_server, SPM_FILE) if q.sent]) == 1


def test_more_bytes_than_listed_is_an_error_not_a_loop(hub_server: HubServer, spm_repo: bytes,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fetch, "WRITE_BYTES", 16 * 1024)
    listed = downloads.build_targets

    def smaller(*a, **k):  # the file grew on the Hub after it was listed
        ts = listed(*a, **k)
        for t in ts:
            t.size -= 100_000
        return ts

    monkeypatch.setattr(downloads, "build_targets", smaller)
    with pytest.raises(DownloadError) as ei:
        downloads.run_download(SPM_REPO, quant="Q4_K_M", backoff_base=0.001, max_retries=1)
    assert ei.value.code == "size_mismatch"
    assert not list(paths.download_dir().rglob("*.incomplete"))
