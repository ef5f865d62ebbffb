"""Trimming a conversation to the context (llama_generate.trim_to_context), without a model.

The tokenizer here counts words and the renderer writes one line per message, so every budget below is exact;
the demo-model test (test_engine_demo) shows the same rules through the engine process.
"""
from __future__ import annotations

import pytest

from desktop.engine.errors import ContextOverflowError
from desktop.engine.inference.llama_generate import trim_to_context
from desktop.engine.inference.protocol import Generate


def _words(text: str) -> list[int]:
    return list(range(len(text.split())))


def _render(req: Generate, messages: list[dict[str, str]]) -> str:
    return "\n".join(f"{m['role']}: {m['content']}" for m in messages)


def _msg(role: str, n_words: int) -> dict[str, str]:
    return {"role": role, "content": " ".join(["w"] * n_words)}


def test_a_conversation_that_fits_is_kept_whole() -> None:
    msgs = [_msg("system", 3), _msg("user", 3), _msg("assistant", 3), _msg("user", 3)]
    prep = trim_to_context(Generate(id="g", messages=msgs), 100, 10, _words, _render)
    assert prep.dropped == [] and len(prep.tokens) == 4 * 4  # "role:" plus 3 words per message


def test_oldest_exchanges_go_first_as_pairs_and_the_system_prompt_stays() -> None:
    msgs = [_msg("system", 4), _msg("user", 9), _msg("assistant", 9), _msg("user", 9), _msg("assistant", 9),
            _msg("user", 4)]
    # Whole: 5 + 4*10 + 5 = 50 tokens. A budget of 40 would fit without the oldest user turn alone, but its
    # answer goes with it: no conversation starts with an orphaned assistant turn.
    prep = trim_to_context(Generate(id="g", messages=msgs), 45, 5, _words, _render)
    assert prep.dropped == [1, 2] and len(prep.tokens) == 30
    # A budget of 15 needs both exchanges gone; the system prompt and the newest message are left.
    prep = trim_to_context(Generate(id="g", messages=msgs), 20, 5, _words, _render)
    assert prep.dropped == [1, 2, 3, 4] and len(prep.tokens) == 10


def test_a_lone_leading_message_goes_by_itself() -> None:
    # An assistant turn first (no user before it) is dropped alone, and so is a user turn without an answer.
    msgs = [_msg("assistant", 9), _msg("user", 9), _msg("user", 9), _msg("assistant", 2), _msg("user", 2)]
    prep = trim_to_context(Generate(id="g", messages=msgs), 20, 0, _words, _render)
    assert prep.dropped == [0, 1] and len(prep.tokens) == 10 + 3 + 3


def test_the_newest_message_alone_too_long_is_an_overflow_that_says_so() -> None:
    msgs = [_msg("user", 2), _msg("assistant", 2), _msg("user", 50)]
    with pytest.raises(ContextOverflowError, match=r"newest message needs 51 tokens but the context holds 40 "
                                                   r"\(with 8 kept"):
        trim_to_context(Generate(id="g", messages=msgs), 40, 8, _words, _render)
    with_system = [_msg("system", 2), *msgs]
    with pytest.raises(ContextOverflowError, match="with the system prompt"):
        trim_to_context(Generate(id="g", messages=with_system), 40, 8, _words, _render)


def test_a_raw_prompt_is_never_cut() -> None:
    req = Generate(id="g", prompt="a b c d e")
    assert trim_to_context(req, 10, 5, _words, _render).tokens == [0, 1, 2, 3, 4]
    with pytest.raises(ContextOverflowError, match="the prompt is 5 tokens but the context holds 9"):
        trim_to_context(req, 9, 5, _words, _render)
