"""Tools with reasoning models: gpt-oss's harmony calls and Qwen3's <tool_call> after or inside its thinking, through
the tool loop (permission asked, tool run, result fed back as the template writes it), with the real templates.

The engine's side (the splitter that reads harmony calls into ``Finished.tool_calls``) is tested in
test_reasoning*.py; here a scripted client plays those events, and the prompts of later rounds are checked."""
from __future__ import annotations

from typing import Any, Iterator

from desktop.engine.inference import protocol as P
from desktop.engine.tools import formats
from desktop.engine.tools.loop import LocalTurns, ToolBox, ToolLoop
from desktop.engine.tools.mcp_client import ToolInfo, ToolResult
from desktop.engine.tools.permissions import ALLOW_ONCE, PermissionPolicy, PermissionRequest
from tests.fixtures.reasoning_gguf import GPT_OSS_TEMPLATE, QWEN3_TEMPLATE

WEATHER = ToolInfo("wx", "get_weather", "The weather in a city.",
                   {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})


class WeatherBox(ToolBox):
    def __init__(self) -> None:
        super().__init__([WEATHER])
        self.runs: list[dict] = []

    def run(self, tool: ToolInfo, arguments: dict[str, Any]) -> ToolResult:
        self.runs.append(arguments)
        return ToolResult("sunny, 21 C")


class ScriptedClient:
    """Plays one list of engine events per round and keeps each round's request."""

    def __init__(self, rounds: list[list[Any]]) -> None:
        self.rounds = rounds
        self.requests: list[P.Generate] = []

    def generate(self, gen: P.Generate, timeout: float | None = None) -> Iterator[Any]:
        self.requests.append(gen)
        for ev in self.rounds[len(self.requests) - 1]:
            yield ev

    def cancel(self, _rid: str) -> None:
        pass


def _fin(text: str, reasoning: str = "", calls: list[dict] | None = None) -> P.Finished:
    return P.Finished("r", text, "stop", P.GenerationStats(), tool_calls=calls or [], reasoning=reasoning)


def _run(template: str, rounds: list[list[Any]]) -> tuple[Any, ScriptedClient, WeatherBox, list, list]:
    base = P.Generate(id="base", max_tokens=256, prompt_spec={"reasoning_effort": "low"})
    turns = LocalTurns(base, "gguf", chat_template=template)
    client = ScriptedClient(rounds)
    box = WeatherBox()
    asked: list[PermissionRequest] = []
    thoughts: list[str] = []

    def ask(req: PermissionRequest) -> str:
        asked.append(req)
        return ALLOW_ONCE

    loop = ToolLoop(client, turns, box, ask=ask, policy=PermissionPolicy(persist=False),
                    on_reasoning=thoughts.append)
    res = loop.run([{"role": "user", "content": "Weather in Paris?"}])
    return res, client, box, asked, thoughts


def test_formats_are_recognised_from_the_real_templates() -> None:
    assert formats.format_for("gguf", GPT_OSS_TEMPLATE) == "harmony"
    assert formats.format_for("gguf", QWEN3_TEMPLATE) == "hermes"
    assert formats.call_text("harmony", [{"name": "get_weather", "arguments": {"city": "Paris"}}]) == (
        '<|start|>assistant to=functions.get_weather<|channel|>commentary json<|message|>{"city": "Paris"}<|call|>')


def test_gpt_oss_calls_through_the_loop_and_gets_the_result_as_a_functions_message() -> None:
    rounds = [
        [P.TokenChunk("r", "", 1, reasoning="Need the weather tool."),
         _fin("", "Need the weather tool.", [{"id": "c1", "name": "get_weather", "arguments": '{"city": "Paris"}'}])],
        [P.TokenChunk("r", "", 1, reasoning="It is sunny."), P.TokenChunk("r", "Sunny, 21 C in Paris.", 5),
         _fin("Sunny, 21 C in Paris.", "It is sunny.")],
    ]
    res, client, box, asked, thoughts = _run(GPT_OSS_TEMPLATE, rounds)
    assert [(a.server, a.tool, a.arguments) for a in asked] == [("wx", "get_weather", {"city": "Paris"})]
    assert box.runs == [{"city": "Paris"}]
    assert res.text == "Sunny, 21 C in Paris." and res.reasoning == "Need the weather tool.\n\nIt is sunny."
    assert thoughts == ["Need the weather tool.", "It is sunny."]
    first, second = (r.prompt for r in client.requests)
    assert "Reasoning: low" in first and "get_weather" in first  # effort and the tools reach the template
    # The second round: the thinking before the call, the call, and the result as the tool's own message.
    assert ("<|start|>assistant<|channel|>analysis<|message|>Need the weather tool.<|end|>"
            "<|start|>assistant to=functions.get_weather<|channel|>commentary json<|message|>"
            '{"city": "Paris"}<|call|>') in second
    assert '<|start|>functions.get_weather to=assistant<|channel|>commentary<|message|>"sunny, 21 C"<|end|>' in second
    assert second.endswith("<|start|>assistant")


def test_qwen3_tool_call_after_its_thinking() -> None:
    call = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'
    rounds = [
        [P.TokenChunk("r", "", 1, reasoning="I should look it up."), P.TokenChunk("r", call, 9),
         _fin(call, "I should look it up.")],
        [P.TokenChunk("r", "Sunny.", 2), _fin("Sunny.", "")],
    ]
    res, client, box, asked, _ = _run(QWEN3_TEMPLATE, rounds)
    assert box.runs == [{"city": "Paris"}] and res.text == "Sunny." and "<tool_call>" not in res.text
    second = client.requests[1].prompt
    assert "<tool_response>\nsunny, 21 C\n</tool_response>" in second
    # Qwen3's template keeps the thinking of an answer inside the current tool turn.
    assert "<think>\nI should look it up.\n</think>" in second


def test_qwen3_tool_call_inside_its_thinking() -> None:
    thought = 'Let me check. <tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>'
    rounds = [
        [P.TokenChunk("r", "", 1, reasoning=thought), _fin("", thought)],
        [P.TokenChunk("r", "Sunny.", 2), _fin("Sunny.", "")],
    ]
    res, client, box, asked, _ = _run(QWEN3_TEMPLATE, rounds)
    assert [a.tool for a in asked] == ["get_weather"] and box.runs == [{"city": "Paris"}]
    assert res.text == "Sunny." and res.reasoning == "Let me check."  # the call is not left in the thinking
