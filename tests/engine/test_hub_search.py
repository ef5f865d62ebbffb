"""Hub search against the loopback Hub: typed summaries, most downloaded first, errors as sentences,
offline as its own error, repo ids from typed text and pasted URLs, and the ``models search`` CLI."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from desktop.engine.errors import AppError, DownloadError
from desktop.engine.hub import search
from tests.fixtures.hub_server import HubServer

GGUF = b"GGUF" + b"\0" * 2000


def seed(hub: HubServer) -> None:
    hub.add("Qwen/Qwen2.5-0.5B-Instruct-GGUF", {"qwen2.5-0.5b-instruct-q4_k_m.gguf": GGUF},
            meta={"downloads": 90_000, "likes": 120, "lastModified": "2025-01-02T03:04:05.000Z",
                  "gguf": {"total": 494_032_768, "architecture": "qwen2"}})
    hub.add("bartowski/Qwen2.5-7B-Instruct-GGUF", {"Qwen2.5-7B-Instruct-Q4_K_M.gguf": GGUF},
            meta={"downloads": 250_000, "likes": 300, "lastModified": "2025-02-01T00:00:00.000Z"})
    hub.add("Qwen/Qwen2.5-7B-Instruct", {"model.safetensors": GGUF},  # not a GGUF repo: filtered out
            meta={"downloads": 9_000_000})
    hub.add("acme/gated-qwen-GGUF", {"m.Q8_0.gguf": GGUF}, gated=True, meta={"downloads": 5})
    hub.add("other/llama-GGUF", {"l.Q8_0.gguf": GGUF}, meta={"downloads": 1_000_000})


def test_search_returns_typed_summaries_most_downloaded_first(hub_server: HubServer) -> None:
    seed(hub_server)
    rows = search.search("qwen", limit=10)
    assert [r.repo_id for r in rows] == ["bartowski/Qwen2.5-7B-Instruct-GGUF", "Qwen/Qwen2.5-0.5B-Instruct-GGUF",
                                         "acme/gated-qwen-GGUF"]
    small = rows[1]
    assert (small.downloads, small.likes, small.params) == (90_000, 120, 494_032_768)
    assert small.last_modified and small.last_modified.startswith("2025-01-02")
    assert rows[0].params is None and not rows[0].gated
    assert rows[2].gated
    # The request carried the filter, the sort and the limit to the Hub.
    req = [r for r in hub_server.log if r.path == "/api/models"]
    assert req and req[-1].status == 200
    assert search.search("qwen", limit=1)[0].repo_id == "bartowski/Qwen2.5-7B-Instruct-GGUF"
    assert search.search("no-such-thing") == []


def test_expand_fields_are_ones_this_huggingface_hub_accepts() -> None:
    from typing import get_args

    from huggingface_hub.hf_api import ExpandModelProperty_T

    fields = search._expand()
    assert {"downloads", "likes", "lastModified"} <= set(fields)
    assert set(fields) <= set(get_args(ExpandModelProperty_T))


def test_offline_mode_is_a_specific_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(search.HubOfflineError) as ei:
        search.search("qwen")
    assert isinstance(ei.value, DownloadError) and ei.value.code == "hub_offline"
    assert "offline mode is on" in ei.value.message


def test_unreachable_endpoint_is_offline_too(monkeypatch: pytest.MonkeyPatch) -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with pytest.raises(search.HubOfflineError) as ei:
        search.search("qwen")
    assert "cannot reach" in ei.value.message


def test_server_error_is_one_sentence(hub_server: HubServer) -> None:
    # 400: huggingface_hub does not retry it (5xx answers are retried with backoff for ~23 s).
    hub_server.search_status = 400
    with pytest.raises(AppError) as ei:
        search.search("qwen")
    assert not isinstance(ei.value, search.HubOfflineError)
    assert "400" in ei.value.message and "try again later" in ei.value.message


@pytest.mark.parametrize("text,repo", [
    ("Qwen/Qwen2.5-0.5B-Instruct-GGUF", "Qwen/Qwen2.5-0.5B-Instruct-GGUF"),
    ("  bartowski/Llama-3.2-1B-Instruct-GGUF ", "bartowski/Llama-3.2-1B-Instruct-GGUF"),
    ("https://huggingface.co/Qwen/Qwen2.5-0.5B-Instruct-GGUF", "Qwen/Qwen2.5-0.5B-Instruct-GGUF"),
    ("https://huggingface.co/Qwen/Qwen2.5-0.5B-Instruct-GGUF/tree/main", "Qwen/Qwen2.5-0.5B-Instruct-GGUF"),
    ("https://huggingface.co/Qwen/Q-GGUF/blob/main/q-q4_k_m.gguf", "Qwen/Q-GGUF"),
    ("hf.co/owner/repo", "owner/repo"),
    ("qwen", None),
    ("qwen 7b", None),
    ("https://example.com/owner/repo", None),
    ("https://huggingface.co/datasets/owner/data", None),
    ("../etc/passwd", None),
])
def test_repo_id_from_text(text: str, repo: str | None) -> None:
    assert search.repo_id_from_text(text) == repo


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "desktop", "models", "search", *args], capture_output=True,
                          text=True, env=dict(os.environ), timeout=120)


def test_cli_search_json_and_text(hub_server: HubServer) -> None:
    seed(hub_server)
    r = _cli("qwen", "--limit", "2", "--json")
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert [x["repo_id"] for x in rows] == ["bartowski/Qwen2.5-7B-Instruct-GGUF", "Qwen/Qwen2.5-0.5B-Instruct-GGUF"]
    assert rows[1]["params"] == 494_032_768
    r = _cli("qwen")
    assert r.returncode == 0 and "0.5B" in r.stdout and "250,000 downloads" in r.stdout


def test_cli_search_offline_prints_one_error_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    r = _cli("qwen")
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: offline mode is on"), r.stderr
