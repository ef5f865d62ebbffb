"""MCP client against a real FastMCP server (tests/fixtures/mcp_server.py) over stdio and streamable HTTP,
plus mcp.json validation and the per-chat server choice."""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

from desktop.engine.tools import config as mcp_config
from desktop.engine.tools.config import ChatServerChoice, load_config, parse_config
from desktop.engine.tools.errors import McpConfigError, McpServerError, ToolTimeoutError
from desktop.engine.tools.mcp_client import McpManager
from tests.fixtures import mcp_server



# ---------------------------------------------------------------------------------------------- config


def test_parse_config_both_kinds() -> None:
    servers = parse_config({"mcpServers": {
        "calc": {"command": "python", "args": ["-m", "calc"], "env": {"A": "1"}, "timeout_s": 5},
        "web": {"url": "http://127.0.0.1:9/mcp", "headers": {"Authorization": "Bearer x"}},
    }})
    assert servers["calc"].kind == "stdio" and servers["calc"].args == ("-m", "calc")
    assert servers["calc"].env == {"A": "1"} and servers["calc"].timeout_s == 5.0
    assert servers["web"].kind == "http" and servers["web"].headers == {"Authorization": "Bearer x"}
    # round trip through the standard shape
    assert parse_config({"mcpServers": {s.name: s.to_json() for s in servers.values()}}) == servers


@pytest.mark.parametrize("data, fragment", [
    ({"servers": {}}, "servers is not a known key"),
    ({"mcpServers": []}, "expected an object"),
    ({"mcpServers": {"x": {"command": "a", "url": "http://h"}}}, "mcpServers.x needs exactly one of"),
    ({"mcpServers": {"x": {}}}, "mcpServers.x needs exactly one of"),
    ({"mcpServers": {"x": {"command": "a", "args": "b"}}}, "mcpServers.x.args must be a list of strings"),
    ({"mcpServers": {"x": {"command": "a", "env": {"A": 1}}}}, "mcpServers.x.env must be an object of strings"),
    ({"mcpServers": {"x": {"url": "ftp://h"}}}, "mcpServers.x.url must be an http"),
    ({"mcpServers": {"x": {"url": "http://h", "command2": 1}}}, "mcpServers.x.command2 is not a known key"),
    ({"mcpServers": {"x": {"command": "a", "timeout_s": 0}}}, "mcpServers.x.timeout_s must be"),
])
def test_parse_config_errors_name_the_key(data: dict, fragment: str) -> None:
    with pytest.raises(McpConfigError) as ei:
        parse_config(data, "/cfg/mcp.json")
    assert ei.value.message.startswith("/cfg/mcp.json: ")
    assert fragment in ei.value.message


def test_config_file_in_config_dir(tmp_path: Path) -> None:
    assert load_config() == {}  # no file yet: no servers
    assert mcp_config.config_path().parent.name == "desktop-chat"
    assert str(mcp_config.config_path()).startswith(str(tmp_path))  # the isolated XDG_CONFIG_HOME
    mcp_config.save_config(parse_config(mcp_server.stdio_config()).values())
    assert list(load_config()) == ["calc"]
    mcp_config.config_path().write_text("{not json", encoding="utf-8")
    with pytest.raises(McpConfigError, match="not valid JSON"):
        load_config()
    with pytest.raises(McpConfigError, match="no such file"):
        load_config(tmp_path / "missing.json")


def test_chat_server_choice_is_per_chat() -> None:
    servers = parse_config({"mcpServers": {"a": {"command": "x"}, "b": {"command": "y"},
                                           "off": {"command": "z", "disabled": True}}})
    choice = ChatServerChoice()
    assert choice.enabled(1, servers) == ["a", "b"]  # default: every enabled server
    choice.set_enabled(1, ["b"])
    assert ChatServerChoice().enabled(1, servers) == ["b"]  # persisted
    assert ChatServerChoice().enabled(2, servers) == ["a", "b"]
    choice.set_enabled(2, [])
    assert choice.enabled(2, servers) == []
    choice.forget(1)
    assert choice.enabled(1, servers) == ["a", "b"]


# ---------------------------------------------------------------------------------------------- servers


@pytest.fixture
def stdio_manager() -> McpManager:
    m = McpManager(parse_config(mcp_server.stdio_config("calc")))
    yield m
    m.close()


def test_stdio_server_lists_and_runs_tools(stdio_manager: McpManager) -> None:
    assert stdio_manager.running() == []  # lazy: nothing started yet
    tools = {t.name: t for t in stdio_manager.list_tools("calc")}
    assert set(tools) == {"add", "echo", "slow", "fail"}
    assert tools["add"].description == "Add two integers."
    assert set(tools["add"].input_schema["properties"]) == {"a", "b"}
    assert stdio_manager.running() == ["calc"]
    res = stdio_manager.call_tool("calc", "add", {"a": 2, "b": 3})
    assert res.text == "5" and not res.is_error
    assert stdio_manager.call_tool("calc", "echo", {"text": "héllo"}).text == "héllo"
    failed = stdio_manager.call_tool("calc", "fail", {})
    assert failed.is_error and "always fails" in failed.text


def test_hanging_tool_times_out_and_the_server_stays_usable(stdio_manager: McpManager) -> None:
    stdio_manager.list_tools("calc")
    t0 = time.monotonic()
    with pytest.raises(ToolTimeoutError, match=r"calc\.slow did not answer within 1 s"):
        stdio_manager.call_tool("calc", "slow", {"seconds": 30}, timeout_s=1.0)
    assert time.monotonic() - t0 < 5.0
    assert stdio_manager.call_tool("calc", "add", {"a": 1, "b": 1}).text == "2"


def test_server_that_cannot_start_is_one_sentence() -> None:
    m = McpManager(parse_config({"mcpServers": {"nope": {"command": "/definitely/not/here-mcp"}}}))
    try:
        with pytest.raises(McpServerError) as ei:
            m.list_tools("nope")
        assert "the MCP server 'nope'" in ei.value.message and "could not be started" in ei.value.message
        tools, errors = m.tools()
        assert tools == [] and "nope" in errors
        with pytest.raises(McpServerError, match="no MCP server named 'other'"):
            m.list_tools("other")
    finally:
        m.close()


def test_streamable_http_server() -> None:
    srv = mcp_server.start_http()
    try:
        m = McpManager(parse_config({"mcpServers": {"web": {"url": srv.url, "headers": {"X-Test": "1"}}}}))
        try:
            assert {t.name for t in m.list_tools("web")} == {"add", "echo", "slow", "fail"}
            assert m.call_tool("web", "add", {"a": 20, "b": 22}).text == "42"
            with pytest.raises(ToolTimeoutError):
                m.call_tool("web", "slow", {"seconds": 30}, timeout_s=1.0)
            assert m.call_tool("web", "echo", {"text": "still here"}).text == "still here"
        finally:
            m.close()
    finally:
        srv.stop()


def test_stdio_config_passes_env(tmp_path: Path) -> None:
    script = tmp_path / "envserver.py"
    script.write_text(
        "import os\nfrom mcp.server.fastmcp import FastMCP\ns = FastMCP('env')\n"
        "@s.tool()\ndef env(name: str) -> str:\n    return os.environ.get(name, '')\n"
        "s.run('stdio')\n", encoding="utf-8")
    cfg = {"mcpServers": {"env": {"command": sys.executable, "args": [str(script)], "env": {"MCP_TEST_VAR": "42"}}}}
    (tmp_path / "mcp.json").write_text(json.dumps(cfg), encoding="utf-8")
    with McpManager(load_config(tmp_path / "mcp.json")) as m:
        assert m.call_tool("env", "env", {"name": "MCP_TEST_VAR"}).text == "42"
