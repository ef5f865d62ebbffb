"""Reasoning models' real published templates: recognised, rendered with their thinking controls, and given back
only the thinking they ask for (three-turn chats, golden text)."""
from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from desktop.engine.inference import prompts
from desktop.engine.inference.reasoning import detect, split_text, starts_thinking

TEMPLATES = Path(__file__).parents[1] / "fixtures" / "chat_templates"


def tpl(name: str) -> str:
    return (TEMPLATES / name).read_text(encoding="utf-8")


THREE_TURNS = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Say hi."},
    {"role": "assistant", "content": "Hi there!", "reasoning": "Hmm, a greeting."},
    {"role": "user", "content": "Again."},
    {"role": "assistant", "content": "Hello!", "reasoning": "Once more."},
    {"role": "user", "content": "Bye."},
]


@pytest.mark.parametrize("name,fmt", [
    ("qwen3.jinja", "think"), ("gpt-oss.jinja", "harmony"), ("ministral-3-reasoning.jinja", "magistral"),
    ("deepseek-r1-distill-qwen-32b.jinja", "think"), ("deepseek-r1.jinja", "think"),
    ("gemma-3-it.jinja", ""), ("mistral-small-3.1-24b-2503.jinja", ""), ("phi-4-mini.jinja", ""),
])
def test_format_recognised_from_the_template(name: str, fmt: str):
    assert detect(tpl(name)) == fmt


def test_qwen3_three_turns_drop_earlier_thinking():
    text = prompts.render("gguf", THREE_TURNS, chat_template=tpl("qwen3.jinja"))
    assert text == (
        "<|im_start|>system\nBe brief.<|im_end|>\n"
        "<|im_start|>user\nSay hi.<|im_end|>\n"
        "<|im_start|>assistant\nHi there!<|im_end|>\n"
        "<|im_start|>user\nAgain.<|im_end|>\n"
        "<|im_start|>assistant\nHello!<|im_end|>\n"
        "<|im_start|>user\nBye.<|im_end|>\n"
        "<|im_start|>assistant\n")
    assert not starts_thinking("think", text)


def test_qwen3_thinking_off():
    text = prompts.render("gguf", THREE_TURNS[:2], chat_template=tpl("qwen3.jinja"), enable_thinking=False)
    assert text.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    assert not starts_thinking("think", text)
    # on (or unset) leaves the template's default: the model opens <think> itself
    on = prompts.render("gguf", THREE_TURNS[:2], chat_template=tpl("qwen3.jinja"), enable_thinking=True)
    assert on.endswith("<|im_start|>assistant\n") and on == prompts.render(
        "gguf", THREE_TURNS[:2], chat_template=tpl("qwen3.jinja"))


def test_qwen3_thinking_of_a_tool_step_goes_back():
    # after the last user query (a multi-step tool turn) the template asks for the thinking
    msgs = [{"role": "user", "content": "Say hi."},
            {"role": "assistant", "content": "Checking.", "reasoning": "Need a tool."}]
    text = prompts.render("gguf", msgs, chat_template=tpl("qwen3.jinja"), add_generation_prompt=False)
    assert text == ("<|im_start|>user\nSay hi.<|im_end|>\n"
                    "<|im_start|>assistant\n<think>\nNeed a tool.\n</think>\n\nChecking.<|im_end|>\n")


def test_gpt_oss_three_turns_effort_and_date():
    today = datetime.now().strftime("%Y-%m-%d")
    text = prompts.render("gguf", THREE_TURNS, chat_template=tpl("gpt-oss.jinja"), reasoning_effort="high")
    if datetime.now().strftime("%Y-%m-%d") != today:  # rendered across midnight
        today = datetime.now().strftime("%Y-%m-%d")
    assert text == (
        "<|start|>system<|message|>You are ChatGPT, a large language model trained by OpenAI.\n"
        "Knowledge cutoff: 2024-06\n"
        f"Current date: {today}\n\n"
        "Reasoning: high\n\n"
        "# Valid channels: analysis, commentary, final. Channel must be included for every message.<|end|>"
        "<|start|>developer<|message|># Instructions\n\nBe brief.\n\n<|end|>"
        "<|start|>user<|message|>Say hi.<|end|>"
        "<|start|>assistant<|channel|>final<|message|>Hi there!<|end|>"
        "<|start|>user<|message|>Again.<|end|>"
        "<|start|>assistant<|channel|>final<|message|>Hello!<|end|>"
        "<|start|>user<|message|>Bye.<|end|>"
        "<|start|>assistant")
    default = prompts.render("gguf", THREE_TURNS[1:2], chat_template=tpl("gpt-oss.jinja"))
    assert "Reasoning: medium\n\n" in default and "<|start|>developer" not in default


def test_gpt_oss_keeps_the_analysis_before_a_tool_call():
    msgs = [{"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": "", "thinking": "Need the tool.",
             "tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}]},
            {"role": "tool", "content": "sunny"}]
    text = prompts.render_jinja(tpl("gpt-oss.jinja"), msgs)
    assert text.endswith(
        "<|start|>user<|message|>Weather in Paris?<|end|>"
        "<|start|>assistant<|channel|>analysis<|message|>Need the tool.<|end|>"
        "<|start|>assistant to=functions.get_weather<|channel|>commentary json<|message|>{\"city\": \"Paris\"}<|call|>"
        "<|start|>functions.get_weather to=assistant<|channel|>commentary<|message|>\"sunny\"<|end|>"
        "<|start|>assistant")


def test_magistral_three_turns_and_split():
    text = prompts.render("gguf", THREE_TURNS, chat_template=tpl("ministral-3-reasoning.jinja"), bos_token="<s>",
                          eos_token="</s>")
    assert text == ("<s>[SYSTEM_PROMPT]Be brief.[/SYSTEM_PROMPT][INST]Say hi.[/INST]Hi there!</s>"
                    "[INST]Again.[/INST]Hello!</s>[INST]Bye.[/INST]")
    assert split_text("magistral", "[THINK]Hmm.[/THINK]Hi there!") == ("Hmm.", "Hi there!")


def test_r1_distill_prompt_opens_thinking():
    text = prompts.render("gguf", THREE_TURNS[1:], chat_template=tpl("deepseek-r1-distill-qwen-32b.jinja"),
                          bos_token="<｜begin▁of▁sentence｜>")
    assert starts_thinking("think", text)
    assert "Hmm, a greeting" not in text  # earlier thinking never goes back
    assert split_text("think", "Hmm\n</think>\n\nHi there!", prompt=text) == ("Hmm", "Hi there!")


def test_hand_formats_never_send_thinking_back():
    for fmt in ("chatml", "deepseek_r1", "llama3"):
        text = prompts.render(fmt, THREE_TURNS)
        assert "Hmm" not in text and "Once more" not in text and "Hi there!" in text
