"""``ask`` is one flow: attachments (``--attach``) and tools (``--mcp``) are stages of it, so every other option
(thinking, ``--show-reasoning``, ``--stats``, ``--json``'s fields, images, the stopped-while-thinking error) works
with them as it does without; and its settings options are checked by the settings table's own rule. Through the
real CLI, engine and MCP server, on scripted GGUFs that think "Hmm" and answer "Hi there!" (Qwen3's template)."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from desktop.cli import build_parser, main
from desktop.cli.chat import ASK_FIELDS
from desktop.cli.common import field_values
from desktop.engine.profiles.fields import FIELDS, field
from tests.engine.test_vision_engine import _has_mtmd
from tests.fixtures import mcp_server, reasoning_gguf
from tests.fixtures.vision_gguf import N_IMAGE_TOKENS, make_png, make_projector, make_vision_lm

STATS_LINE = re.compile(r"^\[\d+ tokens, [\d.]+ tok/s, ttft \d+ ms, \w+, ctx \d+/\d+, stop\]$")


@pytest.fixture(scope="module")
def qwen3(tmp_path_factory: pytest.TempPathFactory) -> reasoning_gguf.TinyModel:
    return reasoning_gguf.make_qwen3(tmp_path_factory.mktemp("ask") / "qwen3.gguf")


@pytest.fixture
def stages(tmp_path: Path) -> dict[str, list[str]]:
    """The options of each stage: a Markdown file to attach, an MCP server with a calculator."""
    notes = tmp_path / "notes.md"
    notes.write_text("# Notes\nThe answer is 5.\n", encoding="utf-8")
    mcp = tmp_path / "mcp.json"
    mcp.write_text(json.dumps(mcp_server.stdio_config("calc")), encoding="utf-8")
    return {"attach": ["--attach", str(notes)], "mcp": ["--mcp", str(mcp)]}


def ask(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str, str]:
    rc = main(["ask", *args])
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.mark.parametrize("stage", ["attach", "mcp"])
def test_thinking_goes_to_stderr_and_stats_are_printed_with_every_stage(qwen3, stages, stage, capsys) -> None:
    rc, out, err = ask(capsys, "--model", str(qwen3.path), *stages[stage], "--show-reasoning", "--stats", "Say hi.")
    assert rc == 0, err
    sources = "Sources: notes.md, lines 1-2\n" if stage == "attach" else ""
    assert out == "Hi there!\n" + sources  # stdout carries only the answer (and its sources)
    lines = err.splitlines()
    assert lines[0] == "Hmm" and STATS_LINE.match(lines[-1]), err


@pytest.mark.parametrize("stage", ["attach", "mcp"])
def test_json_has_the_fields_of_a_plain_ask_with_every_stage(qwen3, stages, stage, capsys) -> None:
    rc, out, err = ask(capsys, "--model", str(qwen3.path), "--json", "Say hi.")
    assert rc == 0, err
    plain = json.loads(out)
    rc, out, err = ask(capsys, "--model", str(qwen3.path), *stages[stage], "--json", "Say hi.")
    assert rc == 0, err
    staged = json.loads(out)
    assert staged.keys() == plain.keys()
    same = ("text", "reasoning", "finish_reason", "stopped_thinking", "reasoning_format", "model", "profile",
            "backend", "dropped")
    assert {k: staged[k] for k in same} == {k: plain[k] for k in same}
    assert (staged["text"], staged["reasoning"], staged["reasoning_format"]) == ("Hi there!", "Hmm", "think")
    assert staged["stats"].keys() == plain["stats"].keys()
    assert 0 < staged["stats"]["reasoning_tokens"] < staged["stats"]["generated_tokens"]
    assert staged["stats"]["prompt_tokens"] > plain["stats"]["prompt_tokens"]  # the file, or the tools' list
    assert [c["label"] for c in staged["citations"]] == (["notes.md, lines 1-2"] if stage == "attach" else [])
    assert staged["tool_calls"] == [] and plain["tool_calls"] == [] and plain["citations"] == []


@pytest.mark.parametrize("stage", ["attach", "mcp"])
def test_thinking_off_reaches_the_template_with_every_stage(qwen3, stages, stage, capsys) -> None:
    """Qwen3's template writes an empty <think></think> into the prompt for enable_thinking=false."""
    tokens = {}
    for thinking in ("on", "off"):
        rc, out, err = ask(capsys, "--model", str(qwen3.path), *stages[stage], "--thinking", thinking, "--json",
                           "Say hi.")
        assert rc == 0, err
        tokens[thinking] = json.loads(out)["stats"]["prompt_tokens"]
    assert tokens["off"] > tokens["on"]


@pytest.mark.parametrize("stage", ["attach", "mcp"])
def test_stopped_while_thinking_is_an_error_with_every_stage(qwen3, stages, stage, capsys) -> None:
    rc, _out, err = ask(capsys, "--model", str(qwen3.path), *stages[stage], "--max-tokens", "2", "Say hi.")
    assert (rc, err) == (1, "error: stopped while thinking: raise max tokens\n")


def test_no_room_for_the_attachments_is_one_error_line(qwen3, stages, capsys) -> None:
    rc, out, err = ask(capsys, "--model", str(qwen3.path), *stages["attach"], "--ctx", "256", "Say hi.")
    assert rc == 1 and out == ""
    # A quarter of the context for the answer; "Say hi." counted by the model itself: its vocabulary is bytes with
    # a few merges, 7 tokens (the estimate would say 2).
    assert err == ("error: the context (256 tokens) leaves no room for the attachments after the answer's 64 "
                   "tokens and the conversation's 7; raise the context size\n")


@pytest.mark.skipif(not _has_mtmd(), reason="llama-cpp-python built without mtmd (-DLLAVA_BUILD=OFF)")
def test_an_image_goes_with_the_attachments(stages, tmp_path, capsys) -> None:
    """The scripted vision model answers with the picture's colour: the attachment stage keeps the image (and
    finds the projector beside the model) instead of dropping it."""
    lm = make_vision_lm(tmp_path / "tiny-gemma3-vision-F16.gguf")
    make_projector(tmp_path / "mmproj-tiny-gemma3-vision-f16.gguf")
    blue = make_png(tmp_path / "blue.png", (20, 20, 230))
    rc, out, err = ask(capsys, "--model", str(lm), "--image", str(blue), *stages["attach"], "--json",
                       "--temperature", "0", "--max-tokens", "8", "What colour?")
    assert rc == 0, err
    data = json.loads(out)
    assert data["text"] == "Blue" and data["stats"]["image_tokens"] == N_IMAGE_TOKENS
    assert [c["label"] for c in data["citations"]] == ["notes.md, lines 1-2"]
    # Tool turns of a local model are rendered as text, which carries no images: said before anything starts.
    rc, out, err = ask(capsys, "--model", str(lm), "--image", str(blue), *stages["mcp"], "What colour?")
    assert (rc, out) == (1, "")
    assert err == ("error: --image cannot be used with --mcp on a local model: its tool turns are rendered as "
                   "text, which carries no images\n")


# ------------------------------------------------------------------------------------------ the table's checks


def _edges(key: str, profile=None) -> list[float]:
    f = field(key)
    lo, hi = f.bounds(profile)
    step = 1 if f.kind == "int" else f.step
    return [v for v in (lo - step, hi + step) if v != float("inf")]


@pytest.mark.parametrize("flag,key", ASK_FIELDS, ids=[flag for flag, _ in ASK_FIELDS])
def test_every_settings_option_is_checked_by_the_tables_rule(qwen3, flag, key, capsys) -> None:
    f = field(key)
    lo, hi = f.bounds()
    for bad in _edges(key):
        shown = str(int(bad)) if f.kind == "int" else str(bad)
        rc, out, err = ask(capsys, "--model", str(qwen3.path), flag, shown, "hi")
        why = f.problem(int(bad) if f.kind == "int" else float(bad))
        assert (rc, out, err) == (1, "", f"error: {flag} {why}\n")
        assert why and ("between" in why or "at least" in why)
    args = build_parser().parse_args(["ask", flag, str(f.lo), "hi"])
    assert field_values(args, ASK_FIELDS) == {key: f.lo}  # the edge itself is allowed


def test_ask_has_an_option_for_every_sampling_setting_and_the_context() -> None:
    assert {key for _, key in ASK_FIELDS} == {f.key for f in FIELDS if f.serve} | {"context.default"}
    assert ("--temperature", "sampling.temperature") in ASK_FIELDS and ("--top-p", "sampling.top_p") in ASK_FIELDS


def test_the_context_is_checked_against_the_profiles_maximum(qwen3, capsys) -> None:
    rc, out, err = ask(capsys, "--model", str(qwen3.path), "--temperature", "7", "hi")
    assert (rc, err) == (1, "error: --temperature must be between 0 and 5, not 7.0\n")
    assert main(["models", "import", "--json", str(qwen3.path)]) == 0
    pid = json.loads(capsys.readouterr().out)["profile"]
    from desktop.engine.profiles import ProfileStore

    prof = ProfileStore().get(pid)
    top = prof.context.max or prof.context.native
    rc, out, err = ask(capsys, "--profile", pid, "--ctx", str(top + 1), "hi")
    assert (rc, err) == (1, f"error: --ctx must be between 1 and {top}, not {top + 1}\n")
    rc, out, err = ask(capsys, "--model", str(qwen3.path), "--ctx", "0", "hi")  # no profile: no maximum here
    assert (rc, err) == (1, "error: --ctx must be at least 1, not 0\n")
