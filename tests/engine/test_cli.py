"""The CLI's contract: exact forms, JSON shapes, one ``error:`` line and exit 1 for bad input."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


from tests.fixtures import tiny_gguf


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "desktop", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=120)


def assert_one_error_line(r: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert r.returncode == 1, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    assert "Traceback" not in r.stderr
    for n in needles:
        assert n in lines[0]


def test_profiles_list_json() -> None:
    r = run("profiles", "list", "--json")
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    from desktop.engine import paths

    assert len(rows) == len(list(paths.bundled_profiles_dir().glob("*.yaml")))  # every bundled profile
    for row in rows:
        assert {"id", "name", "repo", "prompt_format"} <= set(row)
    demo = next(x for x in rows if x["id"] == "smollm2-135m-instruct")
    assert demo["installed"] and demo["default"]


def test_profiles_show_json_has_stop_tokens() -> None:
    r = run("profiles", "show", "smaug-llama-3-70b-instruct", "--json")
    d = json.loads(r.stdout)
    assert d["prompt"]["stop_tokens"] == [128001, 128009] and d["prompt"]["format"] == "llama3"


def test_gguf_inspect_and_fix_json(llama3_broken) -> None:
    r = run("gguf", "inspect", str(llama3_broken.path), "--json")
    d = json.loads(r.stdout)
    assert {"eot_128009_not_eos", "eot_128009_not_control"} <= {p["code"] for p in d["problems"]}
    r = run("gguf", "fix", str(llama3_broken.path), "--dry-run", "--json")
    assert len(json.loads(r.stdout)["changes"]) == 2
    r = run("gguf", "fix", str(llama3_broken.path))
    assert r.returncode == 0 and "fixed: end-of-turn token 128009 was not the EOS token" in r.stdout
    r = run("gguf", "fix", str(llama3_broken.path), "--json")
    assert json.loads(r.stdout)["changes"] == []


def test_missing_file(tmp_path: Path) -> None:
    assert_one_error_line(run("gguf", "inspect", str(tmp_path / "nope.gguf")), "no such file")


def test_non_gguf(tmp_path: Path) -> None:
    assert_one_error_line(run("gguf", "inspect", str(tiny_gguf.make_non_gguf(tmp_path / "j.gguf"))), "not a GGUF")


def test_truncated(tmp_path: Path, llama3_ok) -> None:
    p = tiny_gguf.make_truncated(tmp_path / "t.gguf", llama3_ok.path)
    assert_one_error_line(run("gguf", "inspect", str(p)), "truncated")
    assert_one_error_line(run("ask", "--model", str(p), "hi"), "truncated")


def test_unknown_profile() -> None:
    assert_one_error_line(run("ask", "--profile", "no-such-model", "hi"), "unknown profile")
    assert_one_error_line(run("profiles", "show", "no-such-model"), "unknown profile")


def test_bad_yaml_in_user_profiles(tmp_path: Path) -> None:
    d = tmp_path / "profiles"
    d.mkdir()
    (d / "mine.yaml").write_text("id: mine\nname: [oops\n")
    # Skipped with one warning (ProfileStore.problems), not fatal: the other profiles still list.
    r = run("profiles", "list", env={"DESKTOP_CHAT_USER_PROFILES": str(d)})
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 0 and len(lines) == 1 and lines[0].startswith("warning: skipped a user profile: ")
    assert "mine.yaml" in lines[0] and "YAML" in lines[0] and "smollm2-135m-instruct" in r.stdout


def test_messages_file_errors(tmp_path: Path) -> None:
    f = tmp_path / "m.json"
    f.write_text("{not json")
    assert_one_error_line(run("prompt", "--profile", "smaug-mixtral-v0.1", "--messages", str(f)), "JSON")


def test_malicious_chat_template_is_refused_without_running(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    evil = ("{{ cycler.__init__.__globals__.os.system('touch " + str(marker) + "') }}"
            "{{ ''.__class__.__mro__[1].__subclasses__() }}")
    m = tiny_gguf.make_llama3(tmp_path / "evil.gguf", chat_template=evil)
    msgs = tmp_path / "m.json"
    msgs.write_text(json.dumps([{"role": "user", "content": "hi"}]))
    assert_one_error_line(run("prompt", "--model", str(m.path), "--messages", str(msgs)), "template")
    assert_one_error_line(run("ask", "--model", str(m.path), "--max-tokens", "4", "hi"), "template")
    assert not marker.exists()
