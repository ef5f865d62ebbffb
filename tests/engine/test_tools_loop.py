"""The tool loop end to end: a real engine process, real MCP tools (FastMCP over stdio), and

* scripted local GGUFs (tests/fixtures/tool_gguf.py) that emit a tool call in each supported format, then
  answer once the result is in their context: parse -> permission -> MCP tool -> result fed back -> answer;
* a remote OpenAI-compatible server that streams ``tool_calls`` deltas (tests/fixtures/openai_server.py);
* permission denied, a tool that hangs past its timeout, and the round limit.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from desktop.engine.inference import protocol as P
from desktop.engine.inference.client import EngineClient, new_id
from desktop.engine.tools.config import parse_config
from desktop.engine.tools.loop import (LocalTurns, RemoteTurns, ToolBox, ToolCallFinished, ToolCallStarted,
                                       ToolLoop, turns_for)
from desktop.engine.tools.mcp_client import McpManager
from desktop.engine.tools.permissions import (ALLOW_ALWAYS, ALLOW_ONCE, DENY, PermissionPolicy, PermissionRequest,
                                              allow_all, deny_all)
from tests.fixtures import mcp_server, tool_gguf
from tests.fixtures.openai_server import ToolAskingServer

QUESTION = [{"role": "user", "content": "What is 2 + 3? Use the tool."}]


@pytest.fixture(scope="module")
def calc() -> Iterator[McpManager]:
    cfg = mcp_server.stdio_config("calc")
    cfg["mcpServers"]["calc"]["timeout_s"] = 1.5  # slow() sleeps far longer
    m = McpManager(parse_config(cfg))
    m.list_tools("calc")  # start the server here, not inside the first test
    yield m
    m.close()


@pytest.fixture(scope="module")
def engine() -> Iterator[EngineClient]:
    c = EngineClient()
    assert isinstance(next(c.events(P.Ping(new_id("ping")), timeout=120)), P.Pong)  # the process is up
    yield c
    c.close()


class CountingToolBox(ToolBox):
    """The real ToolBox, counting the calls that reach the MCP server."""

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.runs: list[tuple[str, dict]] = []

    def run(self, tool: Any, arguments: dict) -> Any:
        self.runs.append((tool.name, arguments))
        return super().run(tool, arguments)


def _toolbox(calc: McpManager) -> CountingToolBox:
    return CountingToolBox(calc.list_tools("calc"), calc)


def _local(engine: EngineClient, tm: tool_gguf.ToolModel) -> LocalTurns:
    engine.load(P.Load(id=new_id("load"), model_path=str(tm.path), n_ctx=2048, n_threads=2))
    base = P.Generate(id="base", temperature=0.0, max_tokens=64, seed=1, stop_token_ids=list(tm.stop_token_ids))
    turns = turns_for(None, tm.path, base) if tm.prompt_format == "gguf" else LocalTurns(base, tm.prompt_format)
    assert turns.fmt == tm.fmt
    return turns


@pytest.mark.parametrize("maker", [tool_gguf.make_hermes, tool_gguf.make_llama31, tool_gguf.make_mistral],
                         ids=["hermes", "llama31", "mistral"])
def test_local_model_calls_the_tool_and_answers(maker: Callable[[Path], tool_gguf.ToolModel], tmp_path: Path,
                                                engine: EngineClient, calc: McpManager) -> None:
    tm = maker(tmp_path / "tools.gguf")
    turns = _local(engine, tm)
    asked: list[PermissionRequest] = []
    shown: list[str] = []
    events: list[Any] = []
    box = _toolbox(calc)

    def ask(req: PermissionRequest) -> str:
        asked.append(req)
        return ALLOW_ONCE

    loop = ToolLoop(engine, turns, box, ask=ask, on_text=shown.append, on_event=events.append, timeout_s=60)
    res = loop.run(QUESTION)
    assert res.text == tool_gguf.ANSWER == "".join(shown)  # the raw call never reached the user
    assert [(r.server, r.name, r.arguments, r.result, r.status) for r in res.tool_calls] == [
        ("calc", "add", tool_gguf.CALL_ARGS, "5", "ok")]
    assert [(q.server, q.tool, q.arguments) for q in asked] == [("calc", "add", tool_gguf.CALL_ARGS)]
    assert box.runs == [("add", tool_gguf.CALL_ARGS)]
    assert [type(e) for e in events] == [ToolCallStarted, ToolCallFinished]
    assert res.rounds == 1 and res.finish_reason == "stop"
    # the exchange, as the next turn's history: the call and its result are in it
    roles = [m["role"] for m in res.messages]
    assert roles == ["user", "assistant", "tool", "assistant"]
    assert res.messages[2]["content"] == "5" and res.messages[-1]["content"] == tool_gguf.ANSWER


def test_denied_call_is_not_run_and_the_model_is_told(tmp_path: Path, engine: EngineClient,
                                                      calc: McpManager) -> None:
    turns = _local(engine, tool_gguf.make_hermes(tmp_path / "h.gguf"))
    box = _toolbox(calc)
    res = ToolLoop(engine, turns, box, ask=deny_all).run(QUESTION)
    assert box.runs == []
    assert res.tool_calls[0].status == "denied"
    assert "denied" in res.messages[2]["content"]
    assert res.text == tool_gguf.ANSWER  # the model continued after being told


def test_always_allow_is_remembered(tmp_path: Path, engine: EngineClient, calc: McpManager) -> None:
    turns = _local(engine, tool_gguf.make_llama31(tmp_path / "l.gguf"))
    policy = PermissionPolicy()
    asked: list[PermissionRequest] = []

    def ask(req: PermissionRequest) -> str:
        asked.append(req)
        return ALLOW_ALWAYS

    ToolLoop(engine, turns, _toolbox(calc), ask=ask, policy=policy).run(QUESTION)
    res = ToolLoop(engine, turns, _toolbox(calc), ask=lambda r: DENY, policy=PermissionPolicy()).run(QUESTION)
    assert len(asked) == 1  # the second run (a fresh policy read from disk) did not ask
    assert res.tool_calls[0].status == "ok"


@pytest.fixture
def remote(engine: EngineClient) -> Callable[..., tuple[ToolAskingServer, RemoteTurns]]:
    servers: list[ToolAskingServer] = []

    def make(**kw: Any) -> tuple[ToolAskingServer, RemoteTurns]:
        srv = ToolAskingServer(**kw)
        servers.append(srv)
        engine.load(P.Load(id=new_id("load"), model_path="", n_ctx=2048,
                           backend={"kind": "openai", "base_url": srv.base_url, "model": srv.model, "timeout_s": 20}))
        return srv, RemoteTurns(P.Generate(id="base", max_tokens=64))

    yield make
    for s in servers:
        s.close()


def test_remote_streamed_tool_call_deltas(remote: Callable[..., Any], engine: EngineClient,
                                          calc: McpManager) -> None:
    srv, turns = remote()
    shown: list[str] = []
    res = ToolLoop(engine, turns, _toolbox(calc), ask=allow_all, on_text=shown.append).run(QUESTION)
    assert res.text == "The sum is 5." == "".join(shown)
    assert [(r.name, r.arguments, r.result) for r in res.tool_calls] == [("add", {"a": 2, "b": 3}, "5")]
    first, second = srv.requests
    assert {t["function"]["name"] for t in first["tools"]} == {"add", "echo", "slow", "fail"}
    call = second["messages"][1]["tool_calls"][0]
    assert call["function"] == {"name": "add", "arguments": '{"a": 2, "b": 3}'} and call["id"] == "call_1"
    assert second["messages"][2] == {"role": "tool", "tool_call_id": "call_1", "content": "5"}


def test_hanging_tool_times_out_and_the_chat_goes_on(remote: Callable[..., Any], engine: EngineClient,
                                                     calc: McpManager) -> None:
    _srv, turns = remote(tool_name="slow", arguments={"seconds": 60})
    t0 = time.monotonic()
    res = ToolLoop(engine, turns, _toolbox(calc), ask=allow_all).run(QUESTION)
    assert time.monotonic() - t0 < 15
    assert res.tool_calls[0].status == "timeout"
    assert "did not answer in time" in res.tool_calls[0].result
    assert res.text.startswith("The sum is The tool did not answer in time")  # the model got the note


def test_round_limit_stops_a_loop(remote: Callable[..., Any], engine: EngineClient, calc: McpManager) -> None:
    srv, turns = remote(always_call=True)
    box = _toolbox(calc)
    res = ToolLoop(engine, turns, box, ask=allow_all, max_rounds=2).run(QUESTION)
    assert res.finish_reason == "tool_limit" and res.rounds == 2
    assert [r.status for r in res.tool_calls] == ["ok", "ok", "round_limit"]
    assert len(box.runs) == 2 and len(srv.requests) == 3


def test_unknown_tool_is_reported_to_the_model(remote: Callable[..., Any], engine: EngineClient,
                                               calc: McpManager) -> None:
    _srv, turns = remote(tool_name="no_such_tool")
    res = ToolLoop(engine, turns, _toolbox(calc), ask=allow_all).run(QUESTION)
    assert res.tool_calls[0].status == "unknown_tool"
    assert "There is no tool named 'no_such_tool'" in res.text


def test_a_remote_tool_loop_sends_the_questions_pictures(remote: Callable[..., Any], engine: EngineClient,
                                                        calc: McpManager, tmp_path: Path) -> None:
    """``ask --mcp --image`` on a server's model: every round's request carries the picture with the question."""
    from tests.fixtures.vision_gguf import make_png

    srv, turns = remote()
    png = make_png(tmp_path / "red.png", (230, 20, 20))
    res = ToolLoop(engine, turns, _toolbox(calc), ask=allow_all).run([{**QUESTION[0], "images": [str(png)]}])
    assert res.text == "The sum is 5." and len(srv.requests) == 2
    for body in srv.requests:
        text, picture = body["messages"][0]["content"]
        assert text == {"type": "text", "text": QUESTION[0]["content"]}
        assert picture["type"] == "image_url" and picture["image_url"]["url"].startswith("data:image/png;base64,")


def test_tool_calls_are_saved_with_the_answer_and_exported(tmp_path: Path) -> None:
    """The chats store's existing API keeps the calls in the answer's provenance; both exports show them."""
    from desktop.engine.chats.store import ChatStore
    from desktop.engine.tools.loop import ToolCallRecord, records_markdown

    rec = ToolCallRecord("call_1", "calc", "add", {"a": 2, "b": 3}, "5", "ok", 0.1)
    store = ChatStore(tmp_path / "chats.sqlite3")
    chat = store.create_chat("t")
    q = store.add_message(chat, None, "user", "2+3?")
    a = store.add_message(chat, q, "assistant", "", state="streaming")
    store.finish_message(a, "The sum is 5.", "done", provenance={"profile": "p", "tool_calls": [rec.to_dict()]})
    exported = store.export_json(chat)["messages"][1]["provenance"]["tool_calls"]
    assert [ToolCallRecord.from_dict(d) for d in exported] == [rec]
    assert "<details><summary>Tool calc.add — ok</summary>" in store.export_markdown(chat)  # collapsed block
    md = records_markdown(exported)
    assert md.startswith("<details><summary>Tool calc.add — ok</summary>") and '{"a": 2, "b": 3}' in md


def test_attachment_tokens_are_counted_with_the_models_tokenizer(tmp_path: Path, engine: EngineClient,
                                                                 remote: Callable[..., Any]) -> None:
    from desktop.engine.chats.attachments import engine_token_counter, estimate_tokens

    _local(engine, tool_gguf.make_hermes(tmp_path / "h.gguf"))
    count = engine_token_counter(engine)
    # the scripted vocabulary has no merges: one token per byte, where the estimate says 4 characters per token
    assert count("hello world") == 11 and estimate_tokens("hello world") == 3
    remote()  # a remote backend has no tokenizer here: the estimate
    assert count("hello world") == 3
