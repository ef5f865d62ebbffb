"""Golden tests: each hand-written family format renders byte-identical text to the model's own published
chat template (tests/fixtures/chat_templates/, sources in SOURCES.md), rendered by our Jinja sandbox."""
from __future__ import annotations

from pathlib import Path

import pytest

from desktop.engine.errors import TemplateError
from desktop.engine.inference import prompts

TEMPLATES = Path(__file__).parent.parent / "fixtures" / "chat_templates"

SYS = {"role": "system", "content": "You are a helpful assistant"}
# llama.cpp's test conversation (tests/test-chat-template.cpp): note the padded answer, which some
# templates trim and others keep.
TURNS = [
    {"role": "user", "content": "Hello"},
    {"role": "assistant", "content": "Hi there"},
    {"role": "user", "content": "Who are you"},
    {"role": "assistant", "content": "   I am an assistant   "},
    {"role": "user", "content": "Another question"},
]
ONE = [{"role": "user", "content": " What is 2+2?\n"}]
CONVERSATIONS = {
    "system+multi": [SYS, *TURNS],
    "multi": TURNS,
    "system+one": [SYS, *ONE],
    "one": ONE,
    "ends-with-answer": [SYS, *TURNS[:2]],
}


def template(name: str) -> str:
    return (TEMPLATES / f"{name}.jinja").read_text(encoding="utf-8")


def jinja(name: str, msgs: list[dict[str, str]], bos: str, eos: str, gen: bool = True) -> str:
    if name == "phi-4-mini":
        # llama.cpp's copy tests `tools is defined` and llama.cpp leaves `tools` undefined when there are none;
        # our sandbox passes tools=None (as transformers does), so render it the way llama.cpp does.
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        return env.from_string(template(name)).render(messages=msgs, bos_token=bos, eos_token=eos,
                                                      add_generation_prompt=gen)
    return prompts.render_jinja(template(name), msgs, bos_token=bos, eos_token=eos, add_generation_prompt=gen)


# (format, template file, bos_token, eos_token, conversations it supports, generation prompts to check)
CASES = [
    ("gemma", "gemma-3-it", "<bos>", "<eos>", list(CONVERSATIONS), (True, False)),
    ("mistral_v3", "mistral-v3-large-2407", "<s>", "</s>", list(CONVERSATIONS), (True, False)),
    ("mistral_tekken", "mistral-v3-tekken-nemo-2407", "<s>", "</s>", list(CONVERSATIONS), (True, False)),
    # v7 writes its own dated default system prompt when there is none: compare with a system message only
    ("mistral_v7", "mistral-small-3.1-24b-2503", "<s>", "</s>", ["system+multi", "system+one", "ends-with-answer"],
     (True, False)),
    ("phi3", "phi-3-mini-4k", "", "<|endoftext|>", list(CONVERSATIONS), (True, False)),
    ("phi3", "phi-3.5-mini", "", "<|endoftext|>", list(CONVERSATIONS), (True, False)),
    ("phi3", "phi-3-small", "", "<|endoftext|>", list(CONVERSATIONS), (True, False)),
    ("phi4mini", "phi-4-mini", "", "<|endoftext|>", list(CONVERSATIONS), (True, False)),
    ("llama2", "llama-2-chat", "<s>", "</s>", list(CONVERSATIONS), (True, False)),
    ("deepseek2", "deepseek-v2", "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", list(CONVERSATIONS),
     (True, False)),
    ("deepseek_r1", "deepseek-r1", "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", list(CONVERSATIONS),
     (True, False)),
    ("deepseek_r1", "deepseek-r1-distill-qwen-32b", "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>",
     list(CONVERSATIONS), (True, False)),
    # V3 differs from R1 only in the generation prompt ("<｜Assistant｜>" without "<think>\n")
    ("deepseek3", "deepseek-r1", "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", list(CONVERSATIONS), (False,)),
    ("command_r", "command-r-plus", "<BOS_TOKEN>", "<|END_OF_TURN_TOKEN|>", list(CONVERSATIONS), (True, False)),
]


@pytest.mark.parametrize("fmt,tmpl,bos,eos,convs,gens", CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_format_matches_published_template(fmt, tmpl, bos, eos, convs, gens):
    for conv in convs:
        for gen in gens:
            msgs = CONVERSATIONS[conv]
            ours = prompts.render(fmt, msgs, add_generation_prompt=gen)
            theirs = jinja(tmpl, msgs, bos, eos, gen)
            assert ours == theirs, f"{fmt} vs {tmpl}, conversation {conv!r}, add_generation_prompt={gen}"


def test_gemma2_template_without_system_matches_gemma_format():
    # Gemma 2's (and gemma-7b-it's) template refuses a system role; with none it equals Gemma 3's, after BOS.
    for conv in ("multi", "one"):
        msgs = CONVERSATIONS[conv]
        assert prompts.render("gemma", msgs) == "<bos>" + jinja("gemma-7b-it", msgs, "", "<eos>")
    with pytest.raises(TemplateError):
        jinja("gemma-7b-it", CONVERSATIONS["system+one"], "", "<eos>")


def test_llama_cpp_expected_outputs():
    # The texts llama.cpp's own test expects from these templates (tests/test-chat-template.cpp,
    # expected_output_jinja), which also checks our copies of the templates.
    conv = CONVERSATIONS["system+multi"]
    assert prompts.render("mistral_tekken", conv)[3:] == (
        "[INST]Hello[/INST]Hi there</s>[INST]Who are you[/INST]   I am an assistant   </s>"
        "[INST]You are a helpful assistant\n\nAnother question[/INST]")
    assert prompts.render("mistral_v3", conv)[3:] == (
        "[INST] Hello[/INST] Hi there</s>[INST] Who are you[/INST] I am an assistant</s>"
        "[INST] You are a helpful assistant\n\nAnother question[/INST]")
    assert prompts.render("command_r", conv).removeprefix("<BOS_TOKEN>") == (
        "<|START_OF_TURN_TOKEN|><|SYSTEM_TOKEN|>You are a helpful assistant<|END_OF_TURN_TOKEN|>"
        "<|START_OF_TURN_TOKEN|><|USER_TOKEN|>Hello<|END_OF_TURN_TOKEN|><|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>Hi there"
        "<|END_OF_TURN_TOKEN|><|START_OF_TURN_TOKEN|><|USER_TOKEN|>Who are you<|END_OF_TURN_TOKEN|>"
        "<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>I am an assistant<|END_OF_TURN_TOKEN|>"
        "<|START_OF_TURN_TOKEN|><|USER_TOKEN|>Another question<|END_OF_TURN_TOKEN|>"
        "<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>")
    assert prompts.render("deepseek2", conv).removeprefix("<｜begin▁of▁sentence｜>") == (
        "You are a helpful assistant\n\nUser: Hello\n\nAssistant: Hi there<｜end▁of▁sentence｜>User: Who are you\n\n"
        "Assistant:    I am an assistant   <｜end▁of▁sentence｜>User: Another question\n\nAssistant:")


def test_gemma_system_opens_first_user_turn():
    text = prompts.render("gemma", [SYS, {"role": "user", "content": "Hi"}])
    assert text == ("<bos><start_of_turn>user\nYou are a helpful assistant\n\nHi<end_of_turn>\n"
                    "<start_of_turn>model\n")
    assert "system" not in text


def test_profile_system_prompt_fills_in():
    text = prompts.render("gemma", ONE, system_prompt="Be brief.")
    assert text.startswith("<bos><start_of_turn>user\nBe brief.\n\nWhat is 2+2?<end_of_turn>")


@pytest.mark.parametrize("fmt", ["gemma", "mistral_v3", "mistral_tekken", "mistral_v7", "llama2", "command_r"])
def test_alternation_enforced(fmt):
    with pytest.raises(TemplateError):
        prompts.render(fmt, [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}])
    with pytest.raises(TemplateError):
        prompts.render(fmt, [{"role": "assistant", "content": "a"}])


@pytest.mark.parametrize("fmt,stop", [
    ("gemma", "<end_of_turn>"), ("mistral_v3", "</s>"), ("mistral_v7", "</s>"), ("phi3", "<|end|>"),
    ("phi4mini", "<|end|>"), ("llama2", "</s>"), ("deepseek3", "<｜end▁of▁sentence｜>"),
    ("deepseek_r1", "<｜end▁of▁sentence｜>"), ("command_r", "<|END_OF_TURN_TOKEN|>"),
])
def test_stop_strings(fmt, stop):
    info = prompts.format_info(fmt)
    assert stop in info.stop_strings
    assert prompts.render(fmt, ONE).startswith(info.bos_text)


def test_every_format_is_a_profile_format():
    import typing

    from desktop.engine.profiles import PromptFormat

    assert set(prompts.FORMATS) == set(typing.get_args(PromptFormat))
