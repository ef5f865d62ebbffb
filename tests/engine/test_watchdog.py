"""Every request ends, with Finished or Failed: across engine restarts, and within 2 s of Stop.

The client-side cases use the scripted fake engine (tests/fixtures/fake_engine.py); Stop during a long prompt
and during a silent remote server use the real engine.
"""
from __future__ import annotations

import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

import pytest

from desktop.engine import logs
from desktop.engine.errors import EngineCrashedError, ModelLoadError
from desktop.engine.inference import protocol as P
from desktop.engine.inference.client import EngineClient, new_id
from desktop.engine.library import registry
from desktop.engine.profiles import ProfileStore, profile_from_dict
from tests.fixtures.fake_engine import FAKE_COMMAND


def _gen(text: str, rid: str | None = None) -> P.Generate:
    return P.Generate(id=rid or new_id("gen"), messages=[{"role": "user", "content": text}])


def _wait_for(pred: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


@pytest.fixture
def fake() -> Iterator[EngineClient]:
    c = EngineClient(command=FAKE_COMMAND)
    yield c
    c.close()


# ---------------------------------------------------------------------------------------------- restart race


def _race(settle_s: float | None) -> tuple[list[Any], EngineClient]:
    """A request in flight on an engine that dies while the event reader is busy (its on_event blocks); a new
    request restarts the engine before the reader can report the death."""
    order: list[Any] = []
    gate, blocked = threading.Event(), threading.Event()

    def on_event(ev: Any) -> None:
        order.append(ev)
        if isinstance(ev, P.TokenChunk) and not gate.is_set():
            blocked.set()
            gate.wait(20)

    c = EngineClient(on_event=on_event, command=FAKE_COMMAND)
    c.submit(_gen("hang", "a"))
    assert blocked.wait(10)
    old = c.proc
    assert old is not None
    old.kill()
    old.wait()
    if settle_s is not None:
        threading.Timer(settle_s, gate.set).start()
    c.submit(P.Ping("p"))  # restarts the engine
    gate.set()
    _wait_for(lambda: any(isinstance(e, P.Pong) for e in order))
    return order, c


@pytest.mark.parametrize("reader_busy_s", [0.3, 3.0])  # the reader catches up in time / is stuck past the wait
def test_requests_in_flight_fail_before_a_restart(reader_busy_s: float) -> None:
    order, c = _race(reader_busy_s)
    try:
        time.sleep(0.2)  # a stale reader must not add a second ending
        failed = [e for e in order if isinstance(e, P.Failed) and e.id == "a"]
        assert len(failed) == 1 and failed[0].error["code"] == EngineCrashedError.code
        readies = [i for i, e in enumerate(order) if isinstance(e, P.Ready)]
        assert len(readies) == 2 and order.index(failed[0]) < readies[1]  # failed before the new engine was up
        assert c.restarts == 1 and "a" not in c._inflight
    finally:
        c.close()


def test_an_engine_crash_during_a_token_count_fails_the_count_at_once(fake: EngineClient) -> None:
    """A Tokenize is in flight like any request: the engine's death fails it, instead of the wait running out."""
    fake.start()
    assert fake._ready_evt.wait(10)
    proc = fake.proc
    assert proc is not None
    threading.Timer(0.5, proc.kill).start()  # the fake engine never answers a count: it is still running
    t0 = time.monotonic()
    with pytest.raises(EngineCrashedError) as err:
        fake.count_tokens("hello world", timeout=60)
    took = time.monotonic() - t0
    assert took < 5, took
    assert "engine process" in err.value.message and not fake._inflight
    # The client stays usable: the next request starts a new engine.
    assert [e.text for e in fake.generate(_gen("again"), timeout=10) if isinstance(e, P.Finished)] == ["echo: again"]


# ---------------------------------------------------------------------------------------------- Stop watchdog


def test_stop_kills_an_engine_that_does_not_confirm_and_keeps_the_partial_text(fake: EngineClient) -> None:
    gen = _gen("hang")
    chunks: list[str] = []
    t_stop = 0.0
    last: Any = None
    for ev in fake.generate(gen, timeout=10):
        if isinstance(ev, P.TokenChunk):
            chunks.append(ev.text)
            pid = fake.pid
            t_stop = time.monotonic()
            fake.cancel(gen.id)
        last = ev
    took = time.monotonic() - t_stop
    assert isinstance(last, P.Failed) and last.error["code"] == "cancelled", last
    assert "stopped by force" in last.error["message"]
    assert chunks == ["partial "]
    assert 1.2 < took < 2.0, took
    # The next request starts a new engine.
    text = [e.text for e in fake.generate(_gen("again"), timeout=10) if isinstance(e, P.Finished)]
    assert text == ["echo: again"] and fake.pid != pid and fake.restarts == 1


def test_an_engine_that_confirms_is_not_killed(fake: EngineClient) -> None:
    gen = _gen("slow:50")
    evs = []
    pid = None
    for ev in fake.generate(gen, timeout=10):
        evs.append(ev)
        if len(evs) == 2:
            pid = fake.pid
            fake.cancel(gen.id)
    assert isinstance(evs[-1], P.Finished) and evs[-1].finish_reason == "cancelled"
    time.sleep(fake.stop_grace_s + 0.3)  # the watchdog's moment has passed
    assert fake.alive() and fake.pid == pid and fake.restarts == 0


# ---------------------------------------------------------------------------------------------- logs


def test_engine_stderr_and_crashes_reach_the_log_file(fake: EngineClient) -> None:
    path = logs.setup_logging("test")
    list(fake.generate(_gen("stderr:the fake engine says hello"), timeout=10))
    pid = fake.pid
    fake.kill()
    _wait_for(lambda: "says hello" in path.read_text() if path.exists() else False)
    for h in logs.get_logger().handlers:
        h.flush()
    text = path.read_text()
    assert f"[pid {pid}] the fake engine says hello" in text


def test_cli_bug_is_one_error_line_and_a_traceback_in_the_log(monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    import sys

    from desktop import cli
    from desktop.cli import profiles

    monkeypatch.setattr(sys, "excepthook", sys.excepthook)
    monkeypatch.setattr(threading, "excepthook", threading.excepthook)

    def broken(_args: Any) -> int:
        raise KeyError("a bug in a command")

    monkeypatch.setattr(profiles, "cmd_profiles_list", broken)
    assert cli.main(["profiles", "list"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: internal error (KeyError") and err.count("\n") == 1 and "Traceback" not in err
    assert threading.excepthook.__name__ == "_thread_hook" and sys.excepthook.__name__ == "_hook"
    for h in logs.get_logger().handlers:
        h.flush()
    text = logs.log_path().read_text()
    assert "a bug in a command" in text and "Traceback" in text and " cli[" in text


# ---------------------------------------------------------------------------------------------- broken library


def test_a_llama_library_that_cannot_load_is_reported_and_the_engine_exits_cleanly(tmp_path: Path) -> None:
    broken, broken_cpu = tmp_path / "lib", tmp_path / "lib-cpu"
    for d in (broken, broken_cpu):
        d.mkdir()
        (d / "libllama.so").write_bytes(b"this is not an ELF file\n" * 10)
    env = dict(os.environ, LLAMA_CPP_LIB_PATH=str(broken), DESKTOP_CHAT_CPU_LIB_PATH=str(broken_cpu))
    c = EngineClient(env=env)
    try:
        with pytest.raises(ModelLoadError, match="llama.cpp library could not be loaded") as ei:
            c.load(P.Load(new_id("load"), "/nonexistent.gguf"))
        assert "libllama.so" in ei.value.message  # the loader's own reason, not "killed by SIGABRT"
        assert c.ready is not None and c.ready.lib_error
        assert c.alive()  # the engine stays up and answers with the reason
        gen = [e for e in c.generate(_gen("hi"), timeout=20)]
        assert isinstance(gen[-1], P.Failed) and gen[-1].error["code"] == ModelLoadError.code
        proc = c.proc
    finally:
        c.close()
    assert proc is not None and proc.returncode == 0, proc.returncode
    assert not any("could not acquire lock" in line for line in c._stderr_tail), list(c._stderr_tail)
    assert "could not be loaded" in logs.log_path().read_text()  # the engine logged why


# ---------------------------------------------------------------------------------------------- real engine


@pytest.mark.integration
def test_stop_during_a_long_prompt_returns_within_2_s(demo_model: Path) -> None:
    profile = ProfileStore().default()
    c = EngineClient()
    try:
        c.load(registry.load_request(profile, demo_model, new_id("load"), n_ctx=4096, overrides={"n_threads": 2}))
        pid = c.pid
        words = " ".join(f"item{i}" for i in range(800))  # ~3,100 tokens of prompt to evaluate
        gen = registry.generate_request(profile, [{"role": "user", "content": words}], new_id("gen"), max_tokens=8)
        events: list[Any] = []
        t_stop = 0.0

        def stop_soon() -> None:
            nonlocal t_stop
            time.sleep(0.5)  # well inside the prompt evaluation (several seconds on a CPU)
            t_stop = time.monotonic()
            c.cancel(gen.id)

        threading.Thread(target=stop_soon).start()
        for ev in c.generate(gen, timeout=60):
            events.append(ev)
        took = time.monotonic() - t_stop
        fin = events[-1]
        assert isinstance(fin, P.Finished), fin
        assert fin.finish_reason == "cancelled" and fin.stats.generated_tokens == 0
        assert took < 2.0, took
        assert c.pid == pid and c.restarts == 0  # stopped by the abort callback, not by the watchdog's kill
        # The context is still usable: the next request answers.
        gen2 = registry.generate_request(profile, [{"role": "user", "content": "Say hi."}], new_id("gen"),
                                       max_tokens=4, temperature=0.0)
        assert isinstance(list(c.generate(gen2, timeout=60))[-1], P.Finished)
    finally:
        c.close()


def test_stop_during_template_rendering_ends_the_render(tmp_path: Path) -> None:
    from tests.fixtures import tiny_gguf

    slow = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
    model = tiny_gguf.make_spm(tmp_path / "slow-template.gguf", chat_template=slow)
    c = EngineClient()
    try:
        c.load(registry.load_request(None, model.path, new_id("load"), n_ctx=512))
        pid = c.pid
        gen = registry.generate_request(None, [{"role": "user", "content": "hi"}], new_id("gen"), max_tokens=4)
        t_stop = 0.0

        def stop_soon() -> None:
            nonlocal t_stop
            time.sleep(0.5)  # the render runs for 2 s (its time budget) unless stopped
            t_stop = time.monotonic()
            c.cancel(gen.id)

        threading.Thread(target=stop_soon).start()
        last = list(c.generate(gen, timeout=30))[-1]
        assert time.monotonic() - t_stop < 1.0
        assert isinstance(last, P.Finished) and last.finish_reason == "cancelled", last
        assert c.pid == pid and c.restarts == 0  # the render saw Stop; no kill was needed
    finally:
        c.close()


class _StallingServer(ThreadingHTTPServer):
    """An OpenAI-compatible server that lists its model, sends one chunk of an answer and then goes silent."""

    daemon_threads = True

    def __init__(self) -> None:
        self.release = threading.Event()

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, *a: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                raw = json.dumps({"object": "list", "data": [{"id": "demo", "object": "model"}]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def do_POST(self) -> None:  # noqa: N802
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                chunk = {"choices": [{"index": 0, "delta": {"content": "Once"}, "finish_reason": None}]}
                self.wfile.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
                self.wfile.flush()
                srv.release.wait(30)

        srv = self
        super().__init__(("127.0.0.1", 0), H)
        threading.Thread(target=self.serve_forever, daemon=True).start()


def test_stop_while_a_remote_server_is_silent_returns_within_2_s() -> None:
    srv = _StallingServer()
    c = EngineClient()
    try:
        prof = profile_from_dict({"id": "stall", "name": "Stall", "prompt": {"format": "chatml"},
                                  "backend": {"kind": "openai", "timeout_s": 30, "model": "demo",
                                              "base_url": f"http://127.0.0.1:{srv.server_address[1]}/v1"}}, "x")
        c.load(registry.load_request(prof, None, new_id("load")))
        pid = c.pid
        gen = registry.generate_request(prof, [{"role": "user", "content": "Tell a story."}], new_id("gen"))
        chunks: list[str] = []
        last: Any = None
        t_stop = 0.0
        for ev in c.generate(gen, timeout=30):
            if isinstance(ev, P.TokenChunk):
                chunks.append(ev.text)
                time.sleep(0.5)  # the engine is now blocked reading a silent socket
                t_stop = time.monotonic()
                c.cancel(gen.id)
            last = ev
        assert time.monotonic() - t_stop < 1.0
        # The remote backend shut the silent socket itself: a clean "cancelled", no kill needed.
        assert isinstance(last, P.Finished) and last.finish_reason == "cancelled", last
        assert "".join(chunks) == last.text == "Once"  # the partial answer stays with the caller
        assert c.pid == pid and c.restarts == 0
    finally:
        srv.release.set()
        c.close()
        srv.shutdown()
        srv.server_close()


def test_a_load_after_a_crash_does_not_first_load_the_old_model_again() -> None:
    """Choosing another model after a crash: the restart's reload of the last model would be a whole load in vain
    (and its answer reported as if it were the new model's)."""
    seen: list[Any] = []
    c = EngineClient(on_event=seen.append, command=FAKE_COMMAND)
    try:
        old = c.load(P.Load(new_id("load"), "/models/old.gguf"))
        assert old.model_path == "/models/old.gguf"
        assert c.proc is not None
        c.proc.kill()
        c.proc.wait()
        assert c.needs_restart()
        new = c.load(P.Load(new_id("load"), "/models/new.gguf"))
        assert new.model_path == "/models/new.gguf" and c.restarts == 1
        loads = [e.model_path for e in seen if isinstance(e, P.Loaded)]
        assert loads == ["/models/old.gguf", "/models/new.gguf"]  # no reload of old.gguf in between
        # Any other request after a crash still reloads the last model first.
        c.proc.kill()
        c.proc.wait()
        c.submit(P.Ping(new_id("ping")))
        _wait_for(lambda: sum(isinstance(e, P.Loaded) for e in seen) == 3)
        last = [e for e in seen if isinstance(e, P.Loaded)][-1]
        assert last.id.startswith("reload") and last.model_path == "/models/new.gguf"
    finally:
        c.close()
