"""Speculative decoding (inference/speculative.py + decode_loop): the answer never depends on the proposer.

Scripted target + draft pairs (tests/fixtures/spec_gguf.py) set the acceptance: a draft identical to the
target (100 %), one wrong at about half the words, and prompt lookup over a prompt that holds the
answer. Greedy output must be token for token the plain loop's, and the acceptance lands in the stats.
"""
from __future__ import annotations

import threading
from pathlib import Path

import pytest

from desktop.engine.errors import ModelLoadError
from desktop.engine.inference import decode_loop, speculative
from desktop.engine.inference import protocol as P
from desktop.engine.inference.llama_backend import LlamaBackend
from desktop.engine.inference.sampler import NativeChain, SamplerSpec
from tests.fixtures import spec_gguf, tiny_gguf


@pytest.fixture(scope="module")
def pair_same(tmp_path_factory: pytest.TempPathFactory) -> spec_gguf.SpecPair:
    return spec_gguf.make_pair(tmp_path_factory.mktemp("spec"), disagree=0.0, tag="same-")


@pytest.fixture(scope="module")
def pair_half(tmp_path_factory: pytest.TempPathFactory) -> spec_gguf.SpecPair:
    return spec_gguf.make_pair(tmp_path_factory.mktemp("spec"), disagree=0.5, tag="half-")


def _backend(path: Path, speculative_cfg: dict | None) -> LlamaBackend:
    b = LlamaBackend()
    b.load(P.Load(id="l", model_path=str(path), n_ctx=512, n_threads=1, n_gpu_layers=0,
                  speculative=speculative_cfg))
    return b


def _run(b: LlamaBackend, prompt: str, **kw) -> P.Finished:
    kw.setdefault("max_tokens", 80)  # the reply is 48 tokens
    req = P.Generate(id="g", prompt=prompt, temperature=0.0, **kw)
    events = list(b.generate(req, threading.Event()))
    assert "".join(e.text for e in events[:-1]) == events[-1].text
    return events[-1]


def _tokens(b: LlamaBackend, prompt: str, n: int, proposer, n_draft: int) -> tuple[list[int], decode_loop.LoopStats]:
    llm = b.llm
    llm.reset()
    stats = decode_loop.LoopStats()
    out: list[int] = []
    import llama_cpp

    with NativeChain(llama_cpp, SamplerSpec(temperature=0.0, repeat_penalty=1.0), llm.n_vocab()) as chain:
        decode_loop.prefill(llm, b.tokenize(prompt))
        gen = decode_loop.generate_tokens(llama_cpp, llm, chain, stats, proposer, n_draft)
        for tok in gen:
            out.append(tok)
            if len(out) >= n:
                break
        gen.close()
    return out, stats


@pytest.mark.parametrize("which", ["same", "half"])
@pytest.mark.parametrize("n_draft", [1, 4, 16])
def test_draft_model_output_is_identical_to_plain_decoding(which: str, n_draft: int, pair_same, pair_half) -> None:
    pair = pair_same if which == "same" else pair_half
    b = _backend(pair.target, {"draft": str(pair.draft), "n_draft": n_draft})
    try:
        plain, plain_stats = _tokens(b, pair.prompt, len(pair.reply_ids), None, 0)
        spec, stats = _tokens(b, pair.prompt, len(pair.reply_ids), b.proposer, n_draft)
        assert plain == spec == pair.reply_ids  # the fixture's script, and the same tokens both ways
        assert plain_stats.acceptance is None
        if which == "same":
            assert stats.acceptance == 1.0
        else:
            # the half draft really goes astray; longer drafts add garbage after a wrong guess, which the
            # adaptive draft length keeps in check (a fixed 16 would propose ~9 tokens per answer token)
            assert 0.05 < stats.acceptance < 0.75
            assert stats.drafted <= 4 * len(pair.reply_ids)
        fin = _run(b, pair.prompt)  # through the engine: same text, acceptance in the stats
        assert fin.text == pair.reply and fin.stop_token == pair.reply_ids[-1]
        assert fin.stats.draft_acceptance == pytest.approx(stats.acceptance, abs=0.02)
        assert fin.stats.generated_tokens == len(pair.reply_ids) - 1
        assert fin.stats.context_used == fin.stats.prompt_tokens + fin.stats.generated_tokens
    finally:
        b.close()


def test_half_draft_acceptance_is_about_half_with_one_token_drafts(pair_half: spec_gguf.SpecPair) -> None:
    b = _backend(pair_half.target, {"draft": str(pair_half.draft), "n_draft": 1})
    try:
        _, stats = _tokens(b, pair_half.prompt, len(pair_half.reply_ids), b.proposer, 1)
        assert stats.acceptance == pytest.approx(0.5, abs=0.15)
    finally:
        b.close()


def test_prompt_lookup_output_is_identical_and_finds_the_quoted_answer(pair_same: spec_gguf.SpecPair) -> None:
    b = _backend(pair_same.target, {"prompt_lookup": True, "n_draft": 8})
    try:
        assert isinstance(b.proposer, speculative.PromptLookup)
        plain, _ = _tokens(b, pair_same.prompt, len(pair_same.reply_ids), None, 0)
        spec, stats = _tokens(b, pair_same.prompt, len(pair_same.reply_ids), b.proposer, 8)
        assert spec == plain == pair_same.reply_ids
        assert stats.acceptance is not None and stats.acceptance > 0.8  # the prompt quotes the answer
        fin = _run(b, pair_same.prompt)
        assert fin.text == pair_same.reply and fin.stats.draft_acceptance is not None
    finally:
        b.close()


def test_a_stop_in_the_middle_of_an_accepted_run_leaves_the_cache_consistent(pair_same) -> None:
    b = _backend(pair_same.target, {"draft": str(pair_same.draft), "n_draft": 16})
    try:
        words = pair_same.reply.split()
        fin = _run(b, pair_same.prompt, stop_strings=[words[5]])
        assert fin.text == " ".join(words[:5]) + " " and fin.finish_reason == "stop"
        # the KV cache holds the prompt and the tokens taken but the last, not the drafted ones past it
        assert b.llm.n_tokens == fin.stats.prompt_tokens + 5
        fin = _run(b, pair_same.prompt, max_tokens=3)
        assert fin.finish_reason == "length" and fin.stats.generated_tokens == 3
        assert b.llm.n_tokens == fin.stats.prompt_tokens + 2
        # and the next turn, reusing that cache, is still right
        assert _run(b, pair_same.prompt).text == pair_same.reply
    finally:
        b.close()


def test_an_unusable_draft_leaves_plain_decoding_and_says_why(pair_same: spec_gguf.SpecPair, tmp_path: Path,
                                                              llama3_ok: tiny_gguf.TinyModel) -> None:
    b = _backend(pair_same.target, {"draft": str(llama3_ok.path)})  # a 128k-token vocabulary, not the SPM one
    try:
        assert b.proposer is None
        assert any("speculative decoding is off" in n and "another tokenizer" in n for n in b.loaded.notes)
        fin = _run(b, pair_same.prompt)
        assert fin.text == pair_same.reply and fin.stats.draft_acceptance is None
    finally:
        b.close()
    with pytest.raises(ModelLoadError, match="does not exist"):
        speculative.resolve_draft(str(tmp_path / "nope.gguf"))
    with pytest.raises(ModelLoadError, match="'no-such-profile' cannot be used"):
        speculative.resolve_draft("no-such-profile")


def _profile(**speculative):
    from desktop.engine.profiles import profile_from_dict

    return profile_from_dict({"id": "t", "name": "T", "source": {"repo": "a/b"}, "speculative": speculative}, "t.yaml")


def test_profiles_name_a_draft_or_prompt_lookup_and_the_load_request_carries_it(tmp_path: Path) -> None:
    from desktop.engine.library import registry

    p = _profile(draft="smollm2-135m-demo", n_draft=4)
    assert p.speculative.draft == "smollm2-135m-demo" and p.speculative.n_draft == 4
    load = registry.load_request(p, tmp_path / "m.gguf", "l")
    assert load.speculative == {"draft": "smollm2-135m-demo", "n_draft": 4, "prompt_lookup": False}
    assert registry.load_request(_profile(prompt_lookup=True), tmp_path / "m.gguf", "l").speculative["prompt_lookup"]
    # off by default: a plain Load, so profiles without the section decode as before
    assert registry.load_request(_profile(), tmp_path / "m.gguf", "l").speculative is None
    # the request survives the protocol
    assert P.decode(P.encode(load)).speculative == load.speculative


@pytest.mark.parametrize(("section", "message"), [
    ({"n_draft": 0}, "speculative.n_draft: must be between 1 and 64"),
    ({"n_draft": 65}, "speculative.n_draft: must be between 1 and 64"),
    ({"draft": "x", "prompt_lookup": True}, "not both"),
    ({"draft": "t"}, "its own draft"),
    ({"drafts": "x"}, "speculative.drafts: unknown key"),
    ({"prompt_lookup": "yes"}, "speculative.prompt_lookup: must be true or false"),
])
def test_bad_speculative_sections_are_refused_with_the_key(section: dict, message: str) -> None:
    from desktop.engine.errors import ProfileError

    with pytest.raises(ProfileError, match=message.replace(".", r"\.")):
        _profile(**section)


def test_speculation_needs_the_local_backend() -> None:
    from desktop.engine.errors import ProfileError
    from desktop.engine.profiles import profile_from_dict

    with pytest.raises(ProfileError, match="only works with the local backend"):
        profile_from_dict({"id": "r", "name": "R", "backend": {"kind": "openai", "base_url": "http://h:1/v1"},
                           "speculative": {"prompt_lookup": True}}, "r.yaml")


def test_draft_acceptance_crosses_the_protocol() -> None:
    fin = P.Finished("g", "x", "stop", P.GenerationStats(draft_acceptance=0.625))
    assert P.decode(P.encode(fin)).stats.draft_acceptance == 0.625
    assert P.decode(P.encode(P.Finished("g", "x", "stop", P.GenerationStats()))).stats.draft_acceptance is None
