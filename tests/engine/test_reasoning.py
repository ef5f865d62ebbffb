"""The reasoning splitter: thinking and answer apart, whatever way the tags are cut across streamed pieces."""
from __future__ import annotations

import pytest

from desktop.engine.inference.reasoning import ReasoningSplitter, detect, split_text, starts_thinking

QWEN3 = "<think>\nHmm, the user says hi.\n</think>\n\nHi there!"
MAGISTRAL = "[THINK]Hmm, a greeting.[/THINK]Hi there!"
HARMONY = ("<|channel|>analysis<|message|>Hmm, a greeting.<|end|><|start|>assistant<|channel|>final<|message|>"
           "Hi there!")
HARMONY_CALL = ("<|channel|>analysis<|message|>Need weather.<|end|><|start|>assistant to=functions.get_weather"
                "<|channel|>commentary json<|message|>{\"city\": \"Paris\"}")
MARKUP = ("<think>", "</think>", "[THINK]", "[/THINK]", "<|channel|>", "<|message|>", "<|end|>", "<|start|>",
          "analysis", "final<|")


def run(fmt: str, pieces: list[str], thinking: bool = False) -> tuple[str, str, list[tuple[str, str]], ReasoningSplitter]:
    sp = ReasoningSplitter(fmt, thinking=thinking)
    events = [sp.feed(p) for p in pieces]
    events.append(sp.finish())
    reasoning = "".join(r for r, _ in events)
    answer = "".join(a for _, a in events)
    return reasoning, answer, events, sp


def cuts(text: str) -> list[list[str]]:
    """The text cut once at every position, and cut into single characters."""
    return [[text[:i], text[i:]] for i in range(len(text) + 1)] + [list(text)]


@pytest.mark.parametrize("fmt,text,reasoning", [
    ("think", QWEN3, "Hmm, the user says hi."),
    ("magistral", MAGISTRAL, "Hmm, a greeting."),
    ("harmony", HARMONY, "Hmm, a greeting."),
])
def test_every_cut_gives_the_same_two_streams(fmt: str, text: str, reasoning: str):
    for pieces in cuts(text):
        r, a, events, sp = run(fmt, pieces)
        assert (r, a) == (reasoning, "Hi there!"), pieces
        assert (sp.reasoning_text, sp.answer_text) == (reasoning, "Hi there!")
        for er, ea in events:  # no piece of markup in either stream, at any moment
            assert not any(m in er or m in ea for m in ("<", "[", "|"))


def test_every_double_cut_of_the_tags():
    # two cuts, so a tag can be split in three
    for i in range(len(QWEN3) + 1):
        for j in range(i, len(QWEN3) + 1):
            r, a, _, _ = run("think", [QWEN3[:i], QWEN3[i:j], QWEN3[j:]])
            assert (r, a) == ("Hmm, the user says hi.", "Hi there!")


def test_answer_streams_before_the_end_and_thinking_while_it_is_written():
    sp = ReasoningSplitter("think")
    assert sp.feed("<think>\nHmm") == ("Hmm", "")
    assert sp.thinking
    assert sp.feed(" more\n") == (" more", "")  # the trailing newline waits: it may be the block's end
    assert sp.feed("</think>\n\nHi") == ("", "Hi")
    assert not sp.thinking
    assert sp.feed(" there!") == ("", " there!")


def test_r1_prompt_opens_the_thinking():
    prompt = "<｜User｜>Say hi.<｜Assistant｜><think>\n"
    assert starts_thinking("think", prompt)
    assert not starts_thinking("think", "<|im_start|>assistant\n<think>\n\n</think>\n\n")  # Qwen3, thinking off
    assert split_text("think", "Hmm\n</think>\n\nHi there!", prompt=prompt) == ("Hmm", "Hi there!")
    assert split_text("think", "Hi there!") == ("", "Hi there!")  # no thinking at all


def test_cut_off_while_thinking():
    sp = ReasoningSplitter("think")
    sp.feed("<think>Hmm, let me think about th")
    sp.finish()
    assert sp.unfinished_thinking and sp.reasoning_text == "Hmm, let me think about th" and sp.answer_text == ""
    sp = ReasoningSplitter("harmony")
    sp.feed("<|channel|>analysis<|message|>Hmm")
    sp.finish()
    assert sp.unfinished_thinking


def test_harmony_tool_call_after_analysis():
    for pieces in cuts(HARMONY_CALL):
        r, a, _, sp = run("harmony", pieces)
        assert (r, a) == ("Need weather.", "")
        assert sp.tool_calls == [{"name": "get_weather", "arguments": '{"city": "Paris"}'}]
    # the recipient may also follow the channel, with a <|constrain|> tag
    text = ("<|channel|>commentary to=functions.add <|constrain|>json<|message|>{\"a\": 1}<|call|>")
    r, a, _, sp = run("harmony", [text])
    assert (r, a) == ("", "") and sp.tool_calls == [{"name": "add", "arguments": '{"a": 1}'}]


def test_harmony_commentary_preamble_is_shown_and_second_analysis_joins():
    text = ("<|channel|>analysis<|message|>One.<|end|><|start|>assistant<|channel|>commentary<|message|>Looking."
            "<|end|><|start|>assistant<|channel|>analysis<|message|>Two.<|end|>"
            "<|start|>assistant<|channel|>final<|message|> Done.")
    assert split_text("harmony", text) == ("One.\n\nTwo.", "Looking.\n\nDone.")


def test_harmony_text_without_markup_is_the_answer():
    assert split_text("harmony", "Just an answer.") == ("", "Just an answer.")


def test_stray_tags_never_reach_the_answer():
    assert split_text("think", "Hi</think> there") == ("", "Hi there")
    assert split_text("think", "A <think>x</think>B") == ("x", "A B")  # interleaved thinking
    assert split_text("", "<think>x</think>") == ("", "<think>x</think>")  # not a reasoning model: untouched


@pytest.mark.parametrize("template,tokens,fmt", [
    ("{{ '<|start|>assistant<|channel|>final<|message|>' }}", (), "harmony"),
    ("{{- '[THINK]' + block['thinking'] + '[/THINK]' }}", (), "magistral"),
    ("{% if '</think>' in message.content %}", (), "think"),
    ("{{ '<|im_start|>' }}", ("<think>", "</think>"), ""),  # the template decides when there is one
    (None, ("<think>", "</think>"), "think"),
    (None, ("<|channel|>", "<|message|>"), "harmony"),
    (None, ("[THINK]", "[/THINK]"), "magistral"),
    (None, ("<s>",), ""),
])
def test_detect(template, tokens, fmt):
    assert detect(template, tokens) == fmt


def test_detect_hand_format():
    assert detect(None, (), "deepseek_r1") == "think" and detect(None, (), "chatml") == ""
