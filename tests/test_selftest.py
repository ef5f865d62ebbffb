"""``--selftest`` and ``--smoke-gui`` from source (``make dist-check`` runs the same flags on the frozen bundle)."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from desktop import selftest
from desktop.engine.gguf import doctor as gguf_doctor

ROOT = Path(__file__).resolve().parent.parent


def _run(*args: str, env: dict[str, str] | None = None, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "desktop", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


def test_scripted_model_is_a_valid_gguf_of_the_asked_shape(tmp_path: Path) -> None:
    path, expected = selftest.write_scripted_model(tmp_path / "t.gguf", "tiny")
    assert expected == selftest.SELFTEST_REPLY
    report = gguf_doctor.inspect(path)
    assert (report.architecture, report.block_count, report.vocab_size) == ("llama", 2, 32000)
    assert report.has_chat_template and not report.problems
    reply = selftest._bench_reply(300)
    words = reply.split()
    assert len(words) == len(set(words)) == 300 and all(w.isalpha() for w in words)


def test_selftest_streams_the_scripted_answer_and_reports_backend_and_speed(tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    r = _run("--selftest", "--scripted", "tiny", "--json", str(out))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "reply: Self-test passed." in r.stdout
    assert re.search(r"^backend: (\w+); gpu layers \d/3: \1: .+$", r.stdout, re.M), r.stdout
    assert "tok/s" in r.stdout and r.stdout.rstrip().endswith("selftest: OK")
    res = json.loads(out.read_text())
    assert res["ok"] is True and res["text"] == "Self-test passed." and res["generated_tokens"] == 5
    assert res["gpu_reason"].startswith(res["backend"] + ": ") and res["tokens_per_s"] > 0


def test_selftest_uses_the_demo_model_when_installed(demo_model: Path) -> None:
    r = _run("--selftest", "--max-tokens", "8")
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"model: {demo_model}" in r.stdout and "selftest: OK" in r.stdout


def test_selftest_fails_with_exit_1_when_the_model_cannot_load(tmp_path: Path) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + b"\0" * 64)
    r = _run("--selftest", "--model", str(bad))
    assert r.returncode == 1
    assert "selftest: FAILED: " in r.stdout


def test_smoke_gui_opens_the_window_on_the_offscreen_plugin() -> None:
    r = _run("--smoke-gui", "2", env={"QT_QPA_PLATFORM": "offscreen"})
    assert r.returncode == 0, r.stdout + r.stderr
    assert "qt: platform 'offscreen'" in r.stdout and "smoke-gui: OK" in r.stdout


def test_smoke_gui_fails_when_the_platform_plugin_is_missing() -> None:
    r = _run("--smoke-gui", "1", env={"QT_QPA_PLATFORM": "no-such-platform"}, timeout=60)
    assert r.returncode != 0
    assert "smoke-gui: OK" not in r.stdout
    assert "no-such-platform" in r.stderr


def test_selftest_checks_the_lazily_imported_tool_stacks(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bundle without the MCP SDK or pypdf must fail its self-test, not the user's first tool call."""
    assert "mcp" in selftest.check_lazy_stacks() and "pypdf" in selftest.check_lazy_stacks()
    monkeypatch.setitem(sys.modules, "pypdf", None)  # what a bundle without it looks like to an import
    with pytest.raises(ImportError):
        selftest.check_lazy_stacks()
