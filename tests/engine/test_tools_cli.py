"""``ask --mcp FILE [--allow-tools] [--json]`` and ``ask --attach FILE`` through the real CLI, engine and MCP."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from desktop.cli import main
from tests.fixtures import mcp_server, tool_gguf


@pytest.fixture(scope="module")
def hermes(tmp_path_factory: pytest.TempPathFactory) -> tool_gguf.ToolModel:
    return tool_gguf.make_hermes(tmp_path_factory.mktemp("cli") / "hermes.gguf")


@pytest.fixture
def mcp_file(tmp_path: Path) -> Path:
    p = tmp_path / "mcp.json"
    p.write_text(json.dumps(mcp_server.stdio_config("calc")), encoding="utf-8")
    return p


def test_ask_runs_allowed_tools(hermes: tool_gguf.ToolModel, mcp_file: Path, capsys: pytest.CaptureFixture) -> None:
    rc = main(["ask", "--model", str(hermes.path), "--mcp", str(mcp_file), "--allow-tools", "--json",
               "--temperature", "0", "What is 2 + 3?"])
    out = capsys.readouterr()
    assert rc == 0, out.err
    data = json.loads(out.out)
    assert data["text"] == tool_gguf.ANSWER
    assert data["tool_calls"] == [{"server": "calc", "name": "add", "arguments": {"a": 2, "b": 3}, "result": "5",
                                   "status": "ok"}]


def test_ask_refuses_tools_without_allow(hermes: tool_gguf.ToolModel, mcp_file: Path,
                                         capsys: pytest.CaptureFixture) -> None:
    rc = main(["ask", "--model", str(hermes.path), "--mcp", str(mcp_file), "--temperature", "0", "What is 2 + 3?"])
    out = capsys.readouterr()
    assert rc == 0, out.err
    assert 'tool call refused: calc.add({"a": 2, "b": 3}) - pass --allow-tools' in out.err
    assert "[tool calc.add: denied]" in out.err
    assert out.out.strip() == tool_gguf.ANSWER  # streamed, without the raw call


def test_ask_bad_mcp_file_is_one_error_line(hermes: tool_gguf.ToolModel, tmp_path: Path,
                                            capsys: pytest.CaptureFixture) -> None:
    bad = tmp_path / "mcp.json"
    bad.write_text('{"mcpServers": {"x": {"command": 5}}}', encoding="utf-8")
    assert main(["ask", "--model", str(hermes.path), "--mcp", str(bad), "hi"]) == 1
    err = capsys.readouterr().err
    assert err == f"error: {bad}: mcpServers.x.command must be a non-empty string\n"


def test_ask_with_attachments_returns_citations(hermes: tool_gguf.ToolModel, tmp_path: Path,
                                               capsys: pytest.CaptureFixture) -> None:
    a = tmp_path / "a.md"
    a.write_text("# Notes\nThe answer is 5.\n", encoding="utf-8")
    b = tmp_path / "b.txt"
    b.write_text("unrelated\n", encoding="utf-8")
    rc = main(["ask", "--model", str(hermes.path), "--attach", str(a), "--attach", str(b), "--json",
               "--temperature", "0", "What is the answer?"])
    out = capsys.readouterr()
    assert rc == 0, out.err
    data = json.loads(out.out)
    assert [c["label"] for c in data["citations"]] == ["a.md, lines 1-2", "b.txt, lines 1-1"]
    assert data["tool_calls"] == []
    rc = main(["ask", "--model", str(hermes.path), "--attach", str(tmp_path / "nope.pdf"), "hi"])
    assert rc == 1 and capsys.readouterr().err.startswith("error: cannot attach ")


def test_tools_list(mcp_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    cfg = json.loads(mcp_file.read_text())
    cfg["mcpServers"]["broken"] = {"command": str(tmp_path / "no-such-server")}
    cfg["mcpServers"]["off"] = {"command": "x", "disabled": True}
    mcp_file.write_text(json.dumps(cfg))
    assert main(["tools", "list", "--mcp", str(mcp_file), "--json"]) == 0
    rows = {r["server"]: r for r in json.loads(capsys.readouterr().out)}
    assert {t["name"] for t in rows["calc"]["tools"]} == {"add", "echo", "slow", "fail"}
    assert rows["calc"]["error"] is None and rows["off"]["disabled"] and rows["off"]["tools"] == []
    assert "could not be started" in rows["broken"]["error"]
    assert main(["tools", "list"]) == 0  # the config dir's mcp.json: none yet
    assert "no MCP servers configured" in capsys.readouterr().out
