"""``serve`` against what a browser (or a hostile page in one) sends: Host, Origin, preflight, keys, bodies,
and a queue of callers. The engine behind it is the scripted fake (tests/fixtures/fake_engine.py), so every
test takes well under a second of engine time; the real model through ``serve`` is in test_remote.py."""
from __future__ import annotations

import http.client
import json
import threading
import time
from typing import Any, Iterator

import pytest

from desktop.engine.inference.client import EngineClient
from desktop.engine.server.config import ServerConfig
from desktop.engine.server.app import LocalServer
from desktop.engine.server.pool import ServedModel
from tests.fixtures.fake_engine import FAKE_COMMAND

MODEL = "fake-model"
GOOD_ORIGIN = "http://localhost:3000"


class Served:
    def __init__(self, **kw: Any) -> None:
        self.client = EngineClient(command=FAKE_COMMAND)
        self.server = LocalServer(self.client, ServerConfig(port=0, allowed_origins=(GOOD_ORIGIN,), **kw),
                                  catalog=lambda: [ServedModel(MODEL, "/models/fake.gguf")])
        self.port = self.server.port
        self.server.start()

    def request(self, method: str, path: str = "/v1/chat/completions", body: Any = None, *,
                headers: dict[str, str] | None = None, host: str | None = None,
                raw: bytes | None = None) -> tuple[int, dict[str, str], Any]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        h = {"Host": host if host is not None else f"127.0.0.1:{self.port}"}
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        h.update(headers or {})
        # skip_host: send exactly the Host header a rebinding page would.
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        for k, v in h.items():
            conn.putheader(k, v)
        if data is not None:
            conn.putheader("Content-Length", str(len(data)))
        conn.endheaders(data)
        r = conn.getresponse()
        text = r.read().decode()
        conn.close()
        try:
            payload: Any = json.loads(text)
        except ValueError:
            payload = text
        return r.status, {k.lower(): v for k, v in r.getheaders()}, payload

    def chat(self, content: str, **body: Any) -> tuple[int, dict[str, str], Any]:
        return self.request("POST", body={"model": MODEL, "messages": [{"role": "user", "content": content}],
                                          **body})

    def close(self) -> None:
        self.server.stop()
        self.client.close()


@pytest.fixture
def served() -> Iterator[Served]:
    s = Served()
    yield s
    s.close()


def _is_openai_error(payload: Any, code: str) -> bool:
    err = payload.get("error") if isinstance(payload, dict) else None
    return isinstance(err, dict) and {"message", "type", "code"} <= set(err) and err["code"] == code


def test_a_plain_request_works(served: Served) -> None:
    status, _, d = served.chat("hi")
    assert status == 200 and d["choices"][0]["message"]["content"] == "echo: hi"
    status, _, d = served.request("GET", "/v1/models")
    assert status == 200 and [m["id"] for m in d["data"]] == [MODEL]
    for host in (f"localhost:{served.port}", f"[::1]:{served.port}", "127.0.0.1"):
        assert served.request("GET", "/v1/models", host=host)[0] == 200, host


@pytest.mark.parametrize("host", ["evil.example", "evil.example:{port}", "127.0.0.1.evil.example:{port}",
                                  "127.0.0.1:1", "", "0.0.0.0:{port}"])
def test_dns_rebinding_host_headers_are_refused(served: Served, host: str) -> None:
    host = host.format(port=served.port)
    status, _, d = served.request("GET", "/v1/models", host=host)
    assert status == 403 and _is_openai_error(d, "forbidden")
    status, _, d = served.request("POST", body={"messages": [{"role": "user", "content": "hi"}]}, host=host)
    assert status == 403


def test_a_cross_site_text_plain_post_is_refused_before_the_engine_sees_it(served: Served) -> None:
    seen: list[Any] = []
    served.client.on_event = seen.append
    body = json.dumps({"messages": [{"role": "user", "content": "hi"}]}).encode()
    # What <form enctype=text/plain> or fetch(no-cors) from a page sends: a "simple" request, no preflight.
    status, headers, d = served.request("POST", raw=body, headers={"Origin": "http://evil.example",
                                                                   "Content-Type": "text/plain"})
    assert status == 403 and _is_openai_error(d, "forbidden") and "access-control-allow-origin" not in headers
    status, _, d = served.request("POST", raw=body, headers={"Origin": "null", "Content-Type": "text/plain"})
    assert status == 403
    # Without an Origin (curl, a script) the body must still be JSON.
    status, _, d = served.request("POST", raw=body, headers={"Content-Type": "text/plain"})
    assert status == 415
    assert seen == []  # the engine was never asked


def test_cors_preflight_only_for_allowed_origins(served: Served) -> None:
    pre = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}
    status, headers, _ = served.request("OPTIONS", headers={"Origin": "http://evil.example", **pre})
    assert status == 403 and "access-control-allow-origin" not in headers
    status, headers, _ = served.request("OPTIONS", headers={"Origin": GOOD_ORIGIN, **pre})
    assert status == 204 and headers["access-control-allow-origin"] == GOOD_ORIGIN
    assert "POST" in headers["access-control-allow-methods"]
    assert "content-type" in headers["access-control-allow-headers"].lower()
    status, headers, d = served.request("POST", body={"messages": [{"role": "user", "content": "hi"}]},
                                        headers={"Origin": GOOD_ORIGIN})
    assert status == 200 and headers["access-control-allow-origin"] == GOOD_ORIGIN
    assert d["choices"][0]["message"]["content"] == "echo: hi"


def test_api_key() -> None:
    s = Served(api_key="s3cret")
    try:
        body = {"messages": [{"role": "user", "content": "hi"}]}
        status, _, d = s.request("POST", body=body)
        assert status == 401 and _is_openai_error(d, "invalid_api_key")
        assert s.request("POST", body=body, headers={"Authorization": "Bearer wrong"})[0] == 401
        assert s.request("GET", "/v1/models")[0] == 401
        status, _, d = s.request("POST", body=body, headers={"Authorization": "Bearer s3cret"})
        assert status == 200 and d["choices"][0]["message"]["content"] == "echo: hi"
    finally:
        s.close()


def test_unknown_model_is_404_in_openai_shape(served: Served) -> None:
    status, _, d = served.request("POST", body={"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]})
    assert status == 404 and _is_openai_error(d, "model_not_found") and d["error"]["param"] == "model"
    assert "gpt-4o" in d["error"]["message"] and MODEL in d["error"]["message"]


@pytest.mark.parametrize("extra, param", [
    ({"n": 2}, "n"), ({"n": True}, "n"), ({"temperature": 5.5}, "temperature"), ({"temperature": -0.1}, "temperature"),
    ({"temperature": "hot"}, "temperature"), ({"temperature": True}, "temperature"), ({"max_tokens": 0}, "max_tokens"),
    ({"max_tokens": 1.5}, "max_tokens"), ({"max_tokens": "10"}, "max_tokens"), ({"top_p": 1.5}, "top_p"),
    ({"stream": "yes"}, "stream"), ({"stop": 5}, "stop"), ({"seed": [1]}, "seed"),
])
def test_invalid_parameters_are_400(served: Served, extra: dict[str, Any], param: str) -> None:
    status, _, d = served.chat("hi", **extra)
    assert status == 400, d
    assert d["error"]["param"] == param and d["error"]["type"] == "invalid_request_error"


def test_valid_edge_values_are_accepted(served: Served) -> None:
    for extra in ({"temperature": 0}, {"temperature": 2}, {"n": 1}, {"max_tokens": 1}, {"seed": 3}):
        assert served.chat("hi", **extra)[0] == 200, extra


def _in_thread(fn: Any, results: dict[str, Any], key: str) -> threading.Thread:
    def run() -> None:
        results[key] = (fn(), time.monotonic())

    t = threading.Thread(target=run)
    t.start()
    return t


def test_requests_wait_in_a_bounded_fifo_queue() -> None:
    s = Served(max_queue=2)
    try:
        results: dict[str, Any] = {}
        threads = [_in_thread(lambda: s.chat("slow:6"), results, "first")]
        time.sleep(0.3)  # "first" generates; the next ones queue in arrival order
        for name in ("second", "third"):
            threads.append(_in_thread(lambda: s.chat("slow:2"), results, name))
            time.sleep(0.15)
        assert s.server.queue.waiting == 2
        status, headers, d = s.chat("one too many")
        assert status == 429 and int(headers["retry-after"]) >= 1 and _is_openai_error(d, "queue_full")
        for t in threads:
            t.join(30)
        assert [results[k][0][0] for k in ("first", "second", "third")] == [200, 200, 200]
        done = sorted(results, key=lambda k: results[k][1])
        assert done == ["first", "second", "third"]  # first come, first served
    finally:
        s.close()


def test_every_request_has_a_timeout() -> None:
    s = Served(request_timeout_s=0.6)
    try:
        results: dict[str, Any] = {}
        t0 = time.monotonic()
        t = _in_thread(lambda: s.chat("hang"), results, "long")  # one chunk, then silence
        time.sleep(0.2)
        status, headers, d = s.chat("waits too long")  # queued behind "long" for longer than 0.6 s
        assert status == 503 and int(headers["retry-after"]) >= 1 and _is_openai_error(d, "queue_timeout")
        t.join(10)
        status, _, d = results["long"][0]
        assert status == 504 and _is_openai_error(d, "timeout")
        assert time.monotonic() - t0 < 4  # stopped at the deadline (+ the Stop watchdog's grace), not never
        assert s.chat("hi")[0] == 200  # and the engine is free again
    finally:
        s.close()


def test_streamed_answer_and_its_timeout() -> None:
    s = Served(request_timeout_s=2.5)
    try:
        status, headers, text = s.chat("slow:3", stream=True)
        assert status == 200 and headers["content-type"] == "text/event-stream"
        events = [line[6:] for line in text.splitlines() if line.startswith("data: ")]
        assert events[-1] == "[DONE]"
        content = "".join(json.loads(e)["choices"][0]["delta"].get("content", "") for e in events[:-1])
        assert content == "0 1 2 "
        status, _, text = s.chat("slow:100", stream=True)  # 10 s of chunks, stopped at 2.5 s
        last = json.loads([line[6:] for line in text.splitlines() if line.startswith("data: ")][-1])
        assert status == 200 and last["error"]["code"] == "timeout"
    finally:
        s.close()


def test_a_caller_that_hangs_up_frees_the_engine_for_the_next(served: Served) -> None:
    import socket

    body = json.dumps({"messages": [{"role": "user", "content": "slow:100"}], "stream": True}).encode()
    sock = socket.create_connection(("127.0.0.1", served.port), timeout=30)
    sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/json\r\n"
                 b"Content-Length: %d\r\n\r\n%s" % (served.port, len(body), body))
    assert sock.recv(4096).startswith(b"HTTP/1.0 200")
    sock.shutdown(socket.SHUT_RDWR)  # hang up mid-answer (10 s of chunks left)
    sock.close()
    t0 = time.monotonic()
    status, _, d = served.chat("next")
    assert status == 200 and d["choices"][0]["message"]["content"] == "echo: next"
    assert time.monotonic() - t0 < 4  # not queued behind the abandoned answer
