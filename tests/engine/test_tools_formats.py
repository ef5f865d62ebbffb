"""Tool-call formats: rendering tools and tool turns, parsing calls, and the streaming hold-back."""
from __future__ import annotations

import json

import pytest

from desktop.engine.tools import formats
from desktop.engine.tools.formats import StreamingToolParser, parse_tool_calls
from tests.fixtures.tool_gguf import HERMES_TEMPLATE

SPECS = [formats.tool_spec("add", "Add two integers.", {"properties": {"a": {"type": "integer"},
                                                                       "b": {"type": "integer"}}})]
CALL = {"id": "call_1", "name": "add", "arguments": {"a": 2, "b": 3}}
CONVO = [
    {"role": "user", "content": "What is 2+3?"},
    {"role": "assistant", "content": "", "tool_calls": [CALL]},
    {"role": "tool", "tool_call_id": "call_1", "name": "add", "content": "5"},
]


@pytest.mark.parametrize("fmt, text", [
    ("hermes", 'Let me add.\n<tool_call>\n{"name": "add", "arguments": {"a": 2, "b": 3}}\n</tool_call>'),
    ("hermes", '<tool_call>{"name": "add", "arguments": {"a": 2, "b": 3}}'),  # stopped before the closing tag
    ("llama31", '<|python_tag|>{"name": "add", "parameters": {"a": 2, "b": 3}}'),
    ("llama31", '{"name": "add", "parameters": {"a": 2, "b": 3}}'),  # the tag is a hidden control token
    ("mistral", '[TOOL_CALLS][{"name": "add", "arguments": {"a": 2, "b": 3}}]'),
    ("mistral", '[{"name": "add", "arguments": {"a": 2, "b": 3}}]'),
])
def test_parse_each_format(fmt: str, text: str) -> None:
    content, calls = parse_tool_calls(fmt, text)
    assert [(c.name, c.arguments) for c in calls] == [("add", {"a": 2, "b": 3})]
    assert "{" not in content and "tool_call" not in content


def test_parse_several_calls_and_plain_text() -> None:
    text = ('<tool_call>{"name": "add", "arguments": {"a": 1, "b": 2}}</tool_call>\n'
            '<tool_call>{"name": "echo", "arguments": "{\\"text\\": \\"x\\"}"}</tool_call>')
    _, calls = parse_tool_calls("hermes", text)
    assert [(c.name, c.arguments) for c in calls] == [("add", {"a": 1, "b": 2}), ("echo", {"text": "x"})]
    _, calls = parse_tool_calls("llama31", '{"name": "a", "parameters": {}}; {"name": "b", "parameters": {}}')
    assert [c.name for c in calls] == ["a", "b"]
    for fmt in formats.TOOL_FORMATS:
        assert parse_tool_calls(fmt, "Just an answer.") == ("Just an answer.", [])
    # JSON that is not a call stays text
    assert parse_tool_calls("llama31", '{"x": 1}') == ('{"x": 1}', [])
    assert parse_tool_calls("hermes", "<tool_call>not json</tool_call>")[1] == []


@pytest.mark.parametrize("fmt, text, visible", [
    ("hermes", 'Sure.\n<tool_call>\n{"name": "add", "arguments": {"a": 2, "b": 3}}\n</tool_call>', "Sure."),
    ("llama31", '{"name": "add", "parameters": {"a": 2, "b": 3}}', ""),
    ("mistral", '[{"name": "add", "arguments": {"a": 2, "b": 3}}]', ""),
    ("mistral", 'Checking. [TOOL_CALLS][{"name": "add", "arguments": {"a": 2, "b": 3}}]', "Checking."),
])
def test_streaming_parser_never_shows_call_text(fmt: str, text: str, visible: str) -> None:
    p = StreamingToolParser(fmt)
    shown = "".join(p.feed(ch) for ch in text)  # one character at a time: the worst case
    for piece in ("{", "<tool", "[TOOL", "[{"):
        assert piece not in shown, shown
    rest, calls = p.finish()
    assert (shown + rest).strip() == visible
    assert [c.name for c in calls] == ["add"]


@pytest.mark.parametrize("fmt", formats.TOOL_FORMATS)
def test_streaming_parser_passes_plain_text_through(fmt: str) -> None:
    text = "Here is [a link](x) and {braces} and <b>tags</b>, done < almost"
    p = StreamingToolParser(fmt)
    shown = [p.feed(t) for t in text.split(" ")]
    assert "".join(shown) != ""  # text streams before the end
    rest, calls = p.finish()
    assert "".join(shown) + rest == text.replace(" ", "") and calls == []
    # an answer that starts like JSON but is not a call is released at the end
    p = StreamingToolParser(fmt)
    shown2 = p.feed('{"not": "a call"}')
    rest2, calls2 = p.finish()
    assert shown2 + rest2 == '{"not": "a call"}' and calls2 == []


def test_render_llama31_native() -> None:
    text = formats.render("llama31", CONVO, SPECS, system_prompt="Be brief.")
    assert text.startswith("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge")
    assert "Be brief.\n\nGiven the following functions" in text
    assert json.dumps(SPECS[0]) in text
    assert ('<|start_header_id|>assistant<|end_header_id|>\n\n<|python_tag|>{"name": "add", "parameters": '
            '{"a": 2, "b": 3}}<|eom_id|>') in text
    assert "<|start_header_id|>ipython<|end_header_id|>\n\n5<|eot_id|>" in text
    assert text.endswith("<|start_header_id|>assistant<|end_header_id|>\n\n")


def test_render_hermes_native_and_through_the_template() -> None:
    native = formats.render("chatml", CONVO, SPECS)
    via_template = formats.render("gguf", CONVO, SPECS, chat_template=HERMES_TEMPLATE)
    for text in (native, via_template):
        tools = text.split("<tools>\n", 1)[1].split("\n</tools>", 1)[0]
        assert json.loads(tools) == SPECS[0]  # (Jinja's tojson sorts the keys)
        assert '<tool_call>\n{"name": "add", "arguments": {"a": 2, "b": 3}}\n</tool_call><|im_end|>' in text
        assert "<|im_start|>user\n<tool_response>\n5\n</tool_response><|im_end|>\n" in text
        assert text.endswith("<|im_start|>assistant\n")
    assert formats.format_for("gguf", HERMES_TEMPLATE) == "hermes"


def test_render_mistral_native() -> None:
    text = formats.render("mixtral", CONVO, SPECS, system_prompt="Sys")
    assert text == ("<s>[AVAILABLE_TOOLS]" + json.dumps(SPECS) + "[/AVAILABLE_TOOLS][INST] Sys\n\nWhat is 2+3? [/INST]"
                    '[TOOL_CALLS][{"name": "add", "arguments": {"a": 2, "b": 3}}]</s>'
                    '[TOOL_RESULTS]{"content": "5", "call_id": "call_1"}[/TOOL_RESULTS]')


def test_formats_without_tool_syntax_get_a_system_block() -> None:
    text = formats.render("upstage", CONVO, SPECS)
    assert text.startswith("### System:\n# Tools")
    assert "### User:\n<tool_response>\n5\n</tool_response>" in text
    assert text.endswith("### Assistant:\n")
    # a template that does not know `tools`: the block goes into its system message
    tmpl = ("{% for m in messages %}<{{ m.role }}>{{ m.content }}</{{ m.role }}>{% endfor %}"
            "{% if add_generation_prompt %}<assistant>{% endif %}")
    assert not formats.template_knows_tools(tmpl)
    text = formats.render("gguf", CONVO, SPECS, chat_template=tmpl)
    assert text.startswith("<system># Tools") and "<user><tool_response>\n5\n</tool_response></user>" in text
