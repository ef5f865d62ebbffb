"""Remote engines: a profile whose ``backend`` is an OpenAI-compatible server.

Everything runs against a real server: llama-cpp-python's own (``python -m llama_cpp.server``)
serving the demo model on loopback, started once per session. An auth-demanding reverse proxy, a
socket that never answers, and a closed port stand in for the deployment failures.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from desktop.engine.library import registry
from desktop.engine.inference import protocol as P
from desktop.engine.inference.client import EngineClient, new_id
from desktop.engine.errors import (
    ProfileError,
    RemoteAuthError,
    RemoteConnectionError,
    RemoteModelError,
    RemoteTimeoutError,
)
from desktop.engine.profiles import Profile, ProfileStore, profile_from_dict
from desktop.engine.inference.remote_backend import api_root, check_connection
from tests.fixtures.openai_server import AuthProxy, LlamaServer, SilentServer, free_port, start_llama_server
from tests.fixtures.engine_run import run_generation as _run

pytestmark = pytest.mark.integration

KEY_ENV = "DESKTOP_CHAT_TEST_REMOTE_KEY"
SYSTEM = "You are a pirate. Always answer like a pirate."
QUESTION = [{"role": "user", "content": "What is the capital of France?"}]
LONG = [{"role": "user", "content": "Count from 1 to 300, one number per line."}]


# ---------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def server(demo_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    srv = start_llama_server(demo_model, tmp_path_factory.mktemp("llama-server") / "server.log")
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def profiles_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = tmp_path / "profiles"
    d.mkdir()
    monkeypatch.setenv("DESKTOP_CHAT_USER_PROFILES", str(d))
    return d


@pytest.fixture
def make_profile(profiles_dir: Path) -> Callable[..., Profile]:
    """Write a user profile whose backend is ``backend`` and return it as the store loads it."""

    def make(pid: str = "remote-demo", *, sampling: dict[str, Any] | None = None,
             prompt: dict[str, Any] | None = None, **backend: Any) -> Profile:
        data = {"id": pid, "name": f"Remote {pid}", "backend": {"kind": "openai", "timeout_s": 30, **backend},
                "prompt": {"format": "chatml", "system_prompt": SYSTEM, **(prompt or {})},
                "sampling": {"temperature": 0.0, "seed": 1, "max_tokens": 40, **(sampling or {})}}
        (profiles_dir / f"{pid}.yaml").write_text(json.dumps(data))  # JSON is YAML
        return ProfileStore().get(pid)

    return make


@pytest.fixture
def client() -> Iterator[EngineClient]:
    c = EngineClient()
    try:
        yield c
    finally:
        c.close()


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "desktop", *args], capture_output=True, text=True,
                          env=dict(os.environ), timeout=120)


# ---------------------------------------------------------------------------------------------- profiles


def _remote(**backend: Any) -> dict[str, Any]:
    return {"id": "r", "name": "R", "backend": {"kind": "openai", "base_url": "http://gpu-box:8080/v1", **backend}}


def test_backend_section_is_validated_strictly_and_needs_no_local_model() -> None:
    p = profile_from_dict(_remote(model="llama-70b", api_key_env="MY_KEY", timeout_s=5), "r.yaml")
    assert (p.backend.kind, p.backend.model, p.backend.api_key_env, p.backend.timeout_s) == \
        ("openai", "llama-70b", "MY_KEY", 5.0)
    assert registry.is_remote(p)
    load = registry.load_request(p, None, "l1")  # no GGUF to resolve
    assert load.backend["base_url"] == "http://gpu-box:8080/v1" and load.model_path == ""
    assert not registry.is_remote(profile_from_dict({"id": "l", "name": "L", "source": {"repo": "a/b"}}, "l.yaml"))

    with pytest.raises(ProfileError, match=r"r.yaml: backend.api_key: API keys are never stored .*api_key_env"):
        profile_from_dict(_remote(api_key="sk-123"), "r.yaml")
    with pytest.raises(ProfileError, match=r"backend.base_url: must be an http"):
        profile_from_dict(_remote(base_url="gpu-box:8080"), "r.yaml")
    with pytest.raises(ProfileError, match=r"backend.kind: must be one of 'local', 'openai'"):
        profile_from_dict(_remote(kind="grpc"), "r.yaml")
    with pytest.raises(ProfileError, match=r"backend.bogus: unknown key"):
        profile_from_dict(_remote(bogus=1), "r.yaml")
    with pytest.raises(ProfileError, match=r"backend.api_key_env: 'not a name'"):
        profile_from_dict(_remote(api_key_env="not a name"), "r.yaml")
    with pytest.raises(ProfileError, match=r"source: needs a hub repo"):  # a local profile still needs weights
        profile_from_dict({"id": "l", "name": "L"}, "l.yaml")


def test_api_root_adds_v1_only_to_a_bare_server_url() -> None:
    assert api_root("http://h:8080") == "http://h:8080/v1"
    assert api_root("http://h:8080/") == "http://h:8080/v1"
    assert api_root("http://h:8080/v1/") == "http://h:8080/v1"
    assert api_root("https://h/api/openai/v1") == "https://h/api/openai/v1"


# ---------------------------------------------------------------------------------------------- chat


def test_remote_chat_streams_the_same_answer_as_the_local_engine(server, make_profile, client, demo_model,
                                                                  profiles_dir) -> None:
    prof = make_profile(base_url=server.base_url, model="demo")
    loaded = client.load(registry.load_request(prof, None, new_id("load")))
    assert loaded.backend == "remote" and server.base_url in loaded.description

    chunks, fin = _run(client, registry.generate_request(prof, QUESTION, new_id("gen")))
    assert isinstance(fin, P.Finished), fin
    assert fin.finish_reason == "stop" and len(chunks) > 1
    assert "".join(chunks) == fin.text and "Paris" in fin.text
    s = fin.stats
    assert s.backend == "remote" and s.generated_tokens >= len(chunks) and 0 < s.ttft_s < s.total_s
    assert s.tokens_per_s > 0

    # Same model, same system prompt, same sampling, greedy: the local engine must say exactly the same
    # thing, which proves the prompt and sampling were mapped, not just that some text came back.
    (profiles_dir / "demo-override.yaml").write_text(json.dumps({"id": "smollm2-135m-instruct",
                                                                 "prompt": {"system_prompt": SYSTEM}}))
    local = ProfileStore().default()
    assert local.prompt.system_prompt == SYSTEM
    client.load(registry.load_request(local, demo_model, new_id("load"), n_ctx=2048, overrides={"n_threads": 2}))
    _, local_fin = _run(client, registry.generate_request(local, QUESTION, new_id("gen"), temperature=0.0, seed=1,
                                                        max_tokens=40))
    assert local_fin.text == fin.text

    # Back to the server in the same engine, now with a stop string inside that answer.
    stop_prof = make_profile("remote-stop", base_url=server.base_url, model="demo", prompt={"stop_strings": ["Paris"]})
    client.load(registry.load_request(stop_prof, None, new_id("load")))
    chunks, fin2 = _run(client, registry.generate_request(stop_prof, QUESTION, new_id("gen")))
    assert fin2.finish_reason == "stop" and fin2.text == fin.text[:fin.text.index("Paris")]
    assert "".join(chunks) == fin2.text


def test_stop_mid_stream_keeps_the_partial_answer_and_the_server_stays_usable(server, make_profile, client) -> None:
    prof = make_profile(base_url=server.base_url, model="demo", sampling={"max_tokens": 400})
    client.load(registry.load_request(prof, None, new_id("load")))
    gen = registry.generate_request(prof, LONG, new_id("gen"))
    chunks, fin = _run(client, gen, on_chunk=lambda n: client.cancel(gen.id) if n == 2 else None)
    assert isinstance(fin, P.Finished), fin
    assert fin.finish_reason == "cancelled"
    assert fin.text == "".join(chunks) and fin.text
    assert fin.stats.generated_tokens < 100

    chunks, fin = _run(client, registry.generate_request(prof, QUESTION, new_id("gen")))
    assert isinstance(fin, P.Finished) and "Paris" in fin.text


def test_server_killed_mid_answer_keeps_the_partial_answer_with_a_clear_error(
        demo_model, tmp_path, make_profile, client) -> None:
    for attempt in range(3):
        srv = start_llama_server(demo_model, tmp_path / f"doomed-{attempt}.log")
        try:
            prof = make_profile(base_url=srv.base_url, model="demo", sampling={"max_tokens": 400})
            client.load(registry.load_request(prof, None, new_id("load")))
            gen = registry.generate_request(prof, LONG, new_id("gen"))
            # After the first chunk the engine holds text back for 60 s: whatever it received when the
            # server dies must still reach the caller, ahead of the Failed event.
            gen.chunk_interval_ms = 60_000
            chunks: list[P.TokenChunk] = []
            last = None
            for ev in client.generate(gen, timeout=120):
                if isinstance(ev, P.TokenChunk):
                    chunks.append(ev)
                    if len(chunks) == 1:
                        time.sleep(1.0)  # let more tokens arrive in the engine
                        srv.kill()
                last = ev
        finally:
            srv.stop()
        # The case needs the server to have sent more than the first token before it died. On a starved machine
        # it may not have (the engine then reports 1 chunk): that run says nothing, so it is run again.
        got = re.search(r"after (\d+) chunks", last.error["message"]) if isinstance(last, P.Failed) else None
        if not (got and got.group(1) == "1"):
            break
    assert isinstance(last, P.Failed), last
    assert last.error["code"] == "remote_stream_cut"
    msg = last.error["message"]
    assert re.fullmatch(r"the server at http://127.0.0.1:\d+/v1 cut the answer off after (\d+) chunks \(\w+\); "
                        r"the partial answer is kept", msg), msg
    assert len(chunks) == 2  # the first chunk, then the flush of everything held back
    # Everything the server sent before it died reached the caller, the held-back part in the flush.
    assert sum(c.n_tokens for c in chunks) == int(re.search(r"after (\d+) chunks", msg).group(1)) >= 2
    assert "".join(c.text for c in chunks).strip()
    assert client.alive()  # a dead server is not a dead engine

    # The next request finds nobody listening there.
    _, last = _run(client, registry.generate_request(prof, QUESTION, new_id("gen")))
    assert isinstance(last, P.Failed) and last.error["code"] == "remote_unreachable"
    assert "connection refused" in last.error["message"]


# ---------------------------------------------------------------------------------------------- failures


def test_wrong_model_name_lists_what_the_server_has(server, make_profile, client) -> None:
    prof = make_profile(base_url=server.base_url, model="llama-3-70b")
    with pytest.raises(RemoteModelError, match=r"has no model 'llama-3-70b' \(it has: demo\)"):
        client.load(registry.load_request(prof, None, new_id("load")))
    res = check_connection(prof)
    assert not res.ok and res.error_code == "remote_model_not_found" and res.models == ["demo"]
    assert "it has: demo" in res.error
    # With no model named, the server's first model is used.
    assert check_connection(make_profile("any-model", base_url=server.base_url)).model == "demo"


def test_connection_refused(make_profile, client) -> None:
    prof = make_profile(base_url=f"http://127.0.0.1:{free_port()}/v1", model="demo")
    with pytest.raises(RemoteConnectionError, match=r"could not connect to http://127.0.0.1:\d+/v1: connection refused"):
        client.load(registry.load_request(prof, None, new_id("load")))
    res = check_connection(prof)
    assert (res.ok, res.error_code, res.latency_ms) == (False, "remote_unreachable", None)


def test_timeout_is_bounded_and_named(make_profile, client) -> None:
    silent = SilentServer()
    try:
        prof = make_profile(base_url=silent.base_url, model="demo", timeout_s=1)
        t0 = time.monotonic()
        with pytest.raises(RemoteTimeoutError, match=r"did not answer within 1 s \(backend.timeout_s\)"):
            client.load(registry.load_request(prof, None, new_id("load")))
        res = check_connection(prof)
    finally:
        silent.close()
    assert time.monotonic() - t0 < 20
    assert not res.ok and res.error_code == "remote_timeout"


def test_auth_failure_names_the_env_var_and_the_key_from_it_works(server, make_profile, monkeypatch) -> None:
    proxy = AuthProxy(server.port, "sekrit")
    try:
        prof = make_profile(base_url=proxy.base_url, model="demo", api_key_env=KEY_ENV)
        monkeypatch.delenv(KEY_ENV, raising=False)
        res = check_connection(prof)
        assert not res.ok and res.error_code == "remote_auth"
        assert res.error == (f"the server at {proxy.base_url} rejected the request (401): set the environment "
                             f"variable {KEY_ENV} to its API key")

        monkeypatch.setenv(KEY_ENV, "wrong")
        with EngineClient() as c:  # the engine reads the key from its own environment
            with pytest.raises(RemoteAuthError, match=f"the key in the environment variable {KEY_ENV} was refused"):
                c.load(registry.load_request(prof, None, new_id("load")))

        monkeypatch.setenv(KEY_ENV, "sekrit")
        assert check_connection(prof).ok
        load = registry.load_request(prof, None, new_id("load"))
        assert b"sekrit" not in P.encode(load)  # the key never crosses the protocol
        with EngineClient() as c:
            c.load(load)
            chunks, fin = _run(c, registry.generate_request(prof, QUESTION, new_id("gen")))
        assert isinstance(fin, P.Finished) and "Paris" in fin.text and "".join(chunks) == fin.text
        assert "Bearer sekrit" in proxy.seen_auth and "Bearer wrong" in proxy.seen_auth
    finally:
        proxy.close()


# ---------------------------------------------------------------------------------------------- CLI


def test_cli_remote_check_and_ask(server, make_profile) -> None:
    make_profile(base_url=server.base_url, model="demo")
    make_profile("remote-down", base_url=f"http://127.0.0.1:{free_port()}/v1", model="demo")

    r = _cli("remote", "check", "remote-demo")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"ok: {server.base_url} answered in ") and "model demo" in r.stdout

    r = _cli("remote", "check", "remote-demo", "--json")
    d = json.loads(r.stdout)
    assert r.returncode == 0 and d["ok"] and d["models"] == ["demo"] and d["latency_ms"] >= 0 and d["error"] is None

    r = _cli("remote", "check", "remote-down")
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("error: could not connect to ")
    assert "connection refused" in r.stderr and "Traceback" not in r.stderr

    r = _cli("remote", "check", "remote-down", "--json")
    d = json.loads(r.stdout)
    assert r.returncode == 1 and not d["ok"] and d["error_code"] == "remote_unreachable"

    r = _cli("remote", "check", "smollm2-135m-instruct")
    assert r.returncode == 1 and r.stderr == ("error: profile 'smollm2-135m-instruct' runs locally (backend.kind: "
                                              "local); there is no server to check\n")

    r = _cli("ask", "--profile", "remote-demo", "--json", "What is the capital of France?")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["backend"] == "remote" and "Paris" in d["text"] and d["stats"]["generated_tokens"] > 0
    assert d["profile"] == "remote-demo" and server.base_url in d["model"]

    r = _cli("ask", "--profile", "remote-down", "hi")
    assert r.returncode == 1 and r.stderr.startswith("error: could not connect to ") and r.stderr.count("\n") == 1

    r = _cli("profiles", "list", "--json")
    rows = {row["id"]: row for row in json.loads(r.stdout)}
    assert rows["remote-demo"]["backend"] == "openai" and rows["smollm2-135m-instruct"]["backend"] == "local"


# ---------------------------------------------------------------------------------------------- serve


@pytest.fixture
def served(tmp_path: Path) -> Iterator[str]:
    """``desktop-chat serve`` on the demo profile, on a free loopback port; always stopped."""
    port = free_port()
    base = f"http://127.0.0.1:{port}/v1"
    log = tmp_path / "serve.log"
    with open(log, "wb") as f:
        proc = subprocess.Popen([sys.executable, "-m", "desktop", "serve", "--port", str(port), "--ctx", "2048"],
                                stdout=f, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                with urllib.request.urlopen(f"{base}/models", timeout=2):
                    break
            except OSError:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.25)
        yield base
    finally:
        proc.send_signal(signal.SIGINT)  # the CLI's clean exit: closes the server and the engine
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _post(url: str, body: Any) -> tuple[int, dict[str, Any]]:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


def test_serve_exposes_the_local_engine_as_an_openai_endpoint(served, server, make_profile, client) -> None:
    with urllib.request.urlopen(f"{served}/models", timeout=10) as r:
        assert [m["id"] for m in json.load(r)["data"]] == ["smollm2-135m-instruct"]

    # Our remote backend against `serve` says what it says against llama-cpp-python's server (the
    # same model, greedy): the request was mapped into the engine and the stream back out correctly.
    texts = []
    for prof in (make_profile("via-serve", base_url=served, model="smollm2-135m-instruct"),
                 make_profile("via-llama-cpp", base_url=server.base_url, model="demo")):
        client.load(registry.load_request(prof, None, new_id("load")))
        chunks, fin = _run(client, registry.generate_request(prof, QUESTION, new_id("gen")))
        assert isinstance(fin, P.Finished) and fin.finish_reason == "stop" and "".join(chunks) == fin.text, fin
        texts.append(fin.text)
    assert texts[0] == texts[1] and "Paris" in texts[0]

    # A plain, non-streamed request.
    status, d = _post(f"{served}/chat/completions", {
        "model": "smollm2-135m-instruct", "messages": [{"role": "system", "content": SYSTEM}, *QUESTION],
        "temperature": 0, "seed": 1, "max_tokens": 40})
    assert status == 200, d
    assert d["choices"][0]["message"] == {"role": "assistant", "content": texts[0]}
    assert d["choices"][0]["finish_reason"] == "stop" and d["usage"]["completion_tokens"] > 0

    # Stop from the other side: hanging up cancels the engine's generation, and the next one runs.
    prof = make_profile("via-serve-long", base_url=served, model="smollm2-135m-instruct", sampling={"max_tokens": 400})
    client.load(registry.load_request(prof, None, new_id("load")))
    gen = registry.generate_request(prof, LONG, new_id("gen"))
    _, fin = _run(client, gen, on_chunk=lambda n: client.cancel(gen.id) if n == 2 else None)
    assert fin.finish_reason == "cancelled"
    t0 = time.monotonic()
    status, d = _post(f"{served}/chat/completions", {"messages": QUESTION, "max_tokens": 5})
    assert status == 200 and d["usage"]["completion_tokens"] <= 5
    assert time.monotonic() - t0 < 15  # not queued behind ~400 tokens of an abandoned answer (about a minute here)

    status, d = _post(f"{served}/chat/completions", {"messages": []})
    assert status == 400 and "non-empty 'messages'" in d["error"]["message"]
    status, d = _post(f"{served}/chat/completions", {"messages": [{"role": "wizard", "content": "hi"}]})
    assert status == 400 and "unknown role 'wizard'" in d["error"]["message"]


def test_serve_refuses_a_non_loopback_address_without_an_api_key() -> None:
    r = _cli("serve", "--host", "0.0.0.0", "--port", str(free_port()))
    assert r.returncode == 1 and r.stderr.startswith("error: serving on '0.0.0.0' makes the server reachable from "
                                                     "other machines, so it needs an API key")
    assert r.stderr.count("\n") == 1
    r = _cli("serve", "--lan", "--port", str(free_port()))
    assert r.returncode == 1 and r.stderr == "error: serving on the local network needs an API key (--api-key-env or " \
        "--api-key)\n"
