"""The server's model pool and its hard cases, over the scripted fake engine (tests/fixtures/fake_engine.py):
models loaded on demand (requests wait for a load), one that fails to load, the idle TTL, 50 callers at once,
a caller that hangs up mid-stream, LAN mode and its key, and the request log. Each API answers in its own
error shape and the server keeps serving."""
from __future__ import annotations

import json
import socket
import threading
import time
from typing import Any, Iterator

import pytest

from desktop.engine.errors import AppError
from desktop.engine.inference.client import EngineClient
from desktop.engine.server.config import ServerConfig
from desktop.engine.server.app import LocalServer
from desktop.engine.server.pool import ModelEvent, ServedModel
from tests.engine.test_serve import Served as _Base
from tests.fixtures.fake_engine import FAKE_COMMAND

CATALOG = [ServedModel("fast", "/models/fast.gguf"), ServedModel("slow", "/models/slowload.gguf"),
           ServedModel("broken", "/models/broken.gguf")]


class Served(_Base):
    def __init__(self, **kw: Any) -> None:  # noqa: super().__init__ is replaced: another catalog, callbacks
        self.client = EngineClient(command=FAKE_COMMAND)
        self.models: list[ModelEvent] = []
        self.log: list[Any] = []
        self.server = LocalServer(self.client, ServerConfig(port=0, **kw), catalog=lambda: CATALOG,
                                  on_model=self.models.append, on_request=self.log.append)
        self.port = self.server.port
        self.server.start()

    def ask(self, model: str, content: str = "hi", path: str = "/v1/chat/completions", **body: Any) -> Any:
        return self.request("POST", path, body={"model": model, "messages": [{"role": "user", "content": content}],
                                                **body})


def wait_for(cond: Any, timeout: float = 5.0) -> None:
    """The request log is written after the answer is sent, so a caller may see the answer first."""
    deadline = time.monotonic() + timeout
    while not cond() and time.monotonic() < deadline:
        time.sleep(0.02)


@pytest.fixture
def served() -> Iterator[Served]:
    s = Served()
    yield s
    s.close()


def test_models_load_on_demand_and_requests_wait_for_the_load(served: Served) -> None:
    status, _, d = served.request("GET", "/v1/models")
    assert [m["id"] for m in d["data"]] == ["fast", "slow", "broken"] and served.server.loaded_model is None
    results: list[Any] = []
    threads = [threading.Thread(target=lambda: results.append(served.ask("slow", f"q{i}"))) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert sorted(r[0] for r in results) == [200, 200, 200]  # they waited for the 0.5 s load; none failed
    assert served.server.loaded_model == "slow"
    loads = [e for e in served.models if e.state == "loaded"]
    assert [e.model for e in loads] == ["slow"]  # loaded once, not per request
    assert any(e.state == "loading" and 0 < e.fraction < 1 for e in served.models)
    assert served.ask("fast")[0] == 200 and served.server.loaded_model == "fast"


def test_a_model_that_fails_to_load_is_an_error_in_each_apis_shape(served: Served) -> None:
    status, _, d = served.ask("broken")
    assert status == 500 and d["error"]["code"] == "model_load_error" and "broken" in d["error"]["message"]
    status, _, d = served.ask("broken", path="/api/chat")
    assert status == 500 and set(d) == {"error"} and "broken" in d["error"]
    assert served.models[-1].state == "failed" and served.server.loaded_model is None
    status, _, d = served.ask("fast")
    assert status == 200 and d["choices"][0]["message"]["content"] == "echo: hi"


def test_unknown_models_and_bad_values_in_each_apis_shape(served: Served) -> None:
    status, _, d = served.ask("nope", path="/api/chat")
    assert status == 404 and "nope" in d["error"] and "fast" in d["error"]
    status, _, d = served.ask("fast", path="/api/chat", options={"temperature": "hot"})
    assert status == 400 and "options.temperature" in d["error"]
    status, _, d = served.ask("fast", response_format={"type": "json_schema", "json_schema": {"name": "x"}})
    assert status == 400 and d["error"]["param"] == "response_format"
    status, _, d = served.ask("fast", tools=[{"type": "retrieval"}])
    assert status == 400 and d["error"]["param"] == "tools[0].type"
    status, _, d = served.ask("fast", tool_choice={"type": "function", "function": {"name": "missing"}},
                              tools=[{"type": "function", "function": {"name": "add"}}])
    assert status == 400 and d["error"]["param"] == "tool_choice"
    status, _, d = served.request("POST", "/v1/responses", body={"model": "fast", "input": "hi",
                                                                 "previous_response_id": "resp_1"})
    assert status == 400 and d["error"]["param"] == "previous_response_id"
    status, _, d = served.request("POST", "/v1/embeddings", body={"model": "fast", "input": [1, 2]})
    assert status == 400 and d["error"]["param"] == "input"


def test_an_idle_model_is_unloaded_after_the_ttl() -> None:
    s = Served(model_ttl_s=1.0)
    try:
        assert s.ask("fast")[0] == 200 and s.server.loaded_model == "fast"
        deadline = time.monotonic() + 5
        while s.models[-1].state != "unloaded" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert s.server.loaded_model is None and s.models[-1] == ModelEvent("fast", "unloaded")
        assert s.ask("fast")[0] == 200 and s.server.loaded_model == "fast"  # and loads again on demand
    finally:
        s.close()


def test_fifty_concurrent_requests_are_bounded_and_the_server_keeps_serving() -> None:
    s = Served(max_queue=8)
    try:
        results: list[int] = []
        lock = threading.Lock()

        def one(i: int) -> None:
            status = s.ask("fast", "slow:2" if i % 2 else f"q{i}")[0]
            with lock:
                results.append(status)

        threads = [threading.Thread(target=one, args=(i,)) for i in range(50)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert len(results) == 50 and set(results) <= {200, 429}
        assert results.count(200) >= 9 and results.count(429) >= 1  # one running + 8 waiting at least
        assert s.ask("fast")[0] == 200
        wait_for(lambda: len(s.log) >= 51)
        assert sum(1 for e in s.log if e.status == 429) == results.count(429)
    finally:
        s.close()


def test_an_ollama_stream_stops_the_engine_when_the_caller_hangs_up(served: Served) -> None:
    assert served.ask("fast")[0] == 200  # loaded
    body = json.dumps({"model": "fast", "messages": [{"role": "user", "content": "slow:100"}]}).encode()
    sock = socket.create_connection(("127.0.0.1", served.port), timeout=30)
    sock.sendall(b"POST /api/chat HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/json\r\n"
                 b"Content-Length: %d\r\n\r\n%s" % (served.port, len(body), body))
    head = sock.recv(4096)
    assert head.startswith(b"HTTP/1.0 200") and b"application/x-ndjson" in head
    sock.shutdown(socket.SHUT_RDWR)
    sock.close()
    t0 = time.monotonic()
    status, _, d = served.ask("fast", "next", path="/api/chat", stream=False)
    assert status == 200 and d["message"]["content"] == "echo: next" and d["done"] is True
    assert time.monotonic() - t0 < 4  # the abandoned answer (10 s of chunks) was stopped


def test_ollama_probes_and_streams(served: Served) -> None:
    status, headers, text = served.request("GET", "/")
    assert status == 200 and text == "Ollama is running"
    status, _, d = served.request("GET", "/api/version")
    assert status == 200 and d["version"].count(".") == 2
    status, headers, text = served.ask("fast", "slow:3", path="/api/chat")  # Ollama streams by default
    lines = [json.loads(x) for x in text.splitlines()]
    assert headers["content-type"] == "application/x-ndjson" and [x["done"] for x in lines] == [False] * 3 + [True]
    assert "".join(x["message"]["content"] for x in lines) == "0 1 2 " and lines[-1]["done_reason"] == "length"
    status, _, d = served.request("POST", "/api/embed", body={"model": "fast", "input": ["ab", "abcd"]})
    assert status == 200 and d["embeddings"] == [[2.0, 1.0], [4.0, 1.0]] and served.server.pool.loaded_for_embedding


def test_ollama_keep_alive_zero_unloads_the_model(served: Served) -> None:
    status, _, d = served.request("POST", "/api/generate", body={"model": "fast"})  # Ollama's "load it now"
    assert status == 200 and d["done_reason"] == "load" and served.server.loaded_model == "fast"
    status, _, d = served.ask("fast", path="/api/chat", stream=False, keep_alive=0)
    assert status == 200 and d["message"]["content"] == "echo: hi"
    wait_for(lambda: served.models[-1].state == "unloaded")  # unloaded once the answer is out
    assert served.server.loaded_model is None and served.models[-1] == ModelEvent("fast", "unloaded")


def test_lan_mode_demands_an_api_key_and_then_serves_any_host() -> None:
    with pytest.raises(AppError, match="API key"):
        ServerConfig(lan=True).check()
    with pytest.raises(AppError, match="API key"):
        ServerConfig(host="0.0.0.0").check()
    s = Served(lan=True, api_key="k3y")
    try:
        assert s.server.httpd.server_address[0] == "0.0.0.0"
        assert s.request("GET", "/api/tags", host="192.168.1.20:1234")[0] == 401
        status, _, d = s.request("GET", "/api/tags", host="192.168.1.20:1234", headers={"Authorization": "Bearer k3y"})
        assert status == 200 and [m["name"] for m in d["models"]] == ["fast", "slow", "broken"]
        status, _, d = s.request("GET", "/v1/models", headers={"Authorization": "Bearer k3y",
                                                               "Origin": "http://evil.example"})
        assert status == 403  # origins are still checked
    finally:
        s.close()


def test_the_request_log_has_model_tokens_speed_and_status(served: Served) -> None:
    served.ask("fast")
    served.ask("nope")
    wait_for(lambda: len(served.log) >= 2)
    ok, missing = served.log[-2:]
    assert (ok.api, ok.path, ok.model, ok.status, ok.prompt_tokens, ok.completion_tokens) == (
        "openai", "/v1/chat/completions", "fast", 200, 3, 1)
    assert ok.duration_s > 0 and (missing.status, missing.model) == (404, None) and "nope" in missing.error


def test_another_user_of_the_engine_takes_a_turn_and_its_load_is_noticed(served: Served) -> None:
    from desktop.engine.inference import protocol as P

    assert served.ask("fast")[0] == 200 and served.server.loaded_model == "fast"
    with served.server.engine_turn(5):  # the chat window's turn: server requests wait behind it
        served.client.load(P.Load("chat-load", "/models/other.gguf"))
        assert served.server.loaded_model is None  # the server's model is gone, and it says so
    status, _, d = served.ask("fast")
    assert status == 200 and served.server.loaded_model == "fast"  # loaded again for the request
    assert [e.state for e in served.models].count("loaded") == 2
