"""The repetition-penalty prefilter (llama_backend.penalty_prefilter_k / install_penalty_prefilter).

The prefilter must never change what is sampled: the integration tests decode the real demo model with
llama-cpp-python's stock chain and with the prefiltered one, from the same seed, and compare the tokens.
"""
from __future__ import annotations

import threading
from pathlib import Path

import pytest

from desktop.engine.inference import protocol as P
from desktop.engine.inference.llama_backend import LlamaBackend, install_penalty_prefilter, penalty_prefilter_k


@pytest.mark.parametrize(("args", "expected"), [
    (dict(top_k=40, temp=0.7, repeat_penalty=1.1), 104),
    (dict(top_k=40, temp=0.0, repeat_penalty=1.1), 65),  # greedy: only the best one matters
    (dict(top_k=10, temp=1.0, repeat_penalty=1.0, frequency_penalty=0.5), 74),
    (dict(top_k=10, temp=1.0, repeat_penalty=1.0, presence_penalty=0.2, last_n=16), 26),
    (dict(top_k=40, temp=0.7, repeat_penalty=1.0), None),  # penalties off: nothing to save
    (dict(top_k=40, temp=0.7, repeat_penalty=0.9), None),  # < 1 raises logits: a low token can climb in
    (dict(top_k=40, temp=0.7, repeat_penalty=1.1, frequency_penalty=-0.5), None),
    (dict(top_k=0, temp=0.7, repeat_penalty=1.1), None),  # top-k off: the whole vocabulary counts
    (dict(top_k=40, temp=-1.0, repeat_penalty=1.1), None),
    (dict(top_k=40, temp=0.7, repeat_penalty=1.1, last_n=0), None),
    (dict(top_k=40, temp=0.7, repeat_penalty=1.1, mirostat_mode=2), None),
    (dict(top_k=0, temp=0.0, repeat_penalty=1.1), 65),  # greedy ignores top_k
    (dict(top_k=49_100, temp=0.7, repeat_penalty=1.1, n_vocab=49_152), None),  # nothing to cut
    (dict(top_k=2**32 - 10, temp=0.7, repeat_penalty=1.1, n_vocab=49_152), None),  # no int32 wraparound
])
def test_prefilter_size(args: dict, expected: int | None) -> None:
    assert penalty_prefilter_k(**args) == expected


def _kept_after(pre: int | None, k: int | None, n: int = 1000, last_n: int = 64) -> list[int] | int:
    """Run ``[top_k(pre)] -> penalties -> top_k(k)`` (greedy when k is None) over ``n`` hand-made candidates
    whose ``last_n`` best tokens were all just generated (so all are penalized, hard): the kept ids, sorted,
    or the greedy pick."""
    import ctypes

    import llama_cpp

    chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
    try:
        if pre is not None:
            llama_cpp.llama_sampler_chain_add(chain, llama_cpp.llama_sampler_init_top_k(pre))
        args = (last_n, 10.0, 0.0, 0.0)
        if len(llama_cpp.llama_sampler_init_penalties.argtypes) == 5:  # this llama.cpp also takes n_vocab first
            args = (n, *args)
        llama_cpp.llama_sampler_chain_add(chain, llama_cpp.llama_sampler_init_penalties(*args))
        llama_cpp.llama_sampler_chain_add(chain, llama_cpp.llama_sampler_init_top_k(k) if k is not None
                                          else llama_cpp.llama_sampler_init_greedy())
        logits = [float(2 * n - i) for i in range(n)]  # token i has rank i; all positive, all distinct
        for t in range(last_n):
            llama_cpp.llama_sampler_accept(chain, t)
        data = (llama_cpp.llama_token_data * n)(*[llama_cpp.llama_token_data(i, logits[i], 0.0) for i in range(n)])
        cur = llama_cpp.llama_token_data_array(data, n, -1, False)
        llama_cpp.llama_sampler_apply(chain, ctypes.byref(cur))
        if k is None:
            return int(data[cur.selected].id)
        return sorted(int(data[i].id) for i in range(cur.size))
    finally:
        llama_cpp.llama_sampler_free(chain)


def test_the_prefilter_bound_is_tight() -> None:
    """The worst case: the last_n best candidates are exactly the penalized ones. k + last_n keeps the result
    of the stock chain, k + last_n - 1 does not (so a smaller bound would change what is sampled)."""
    k, last_n = 40, 64
    stock = _kept_after(None, k)
    assert stock == list(range(last_n, last_n + k))  # the penalized 64 fell below the next 40
    assert _kept_after(penalty_prefilter_k(k, 0.7, 10.0, last_n=last_n), k) == stock
    assert _kept_after(k + last_n - 1, k) != stock
    greedy = _kept_after(None, None)
    assert greedy == last_n
    assert _kept_after(penalty_prefilter_k(k, 0.0, 10.0, last_n=last_n), None) == greedy
    assert _kept_after(last_n, None) != greedy


def _names(llama_cpp, chain) -> list[str]:
    return [llama_cpp.llama_sampler_name(llama_cpp.llama_sampler_chain_get(chain.sampler, i)).decode()
            for i in range(llama_cpp.llama_sampler_chain_n(chain.sampler))]


def _decode(llm, prompt: list[int], n: int, **kw) -> list[int]:
    llm.reset()
    llm.set_seed(11)
    out: list[int] = []
    for tok in llm.generate(prompt, **kw):
        out.append(tok)
        if len(out) >= n:
            break
    return out


@pytest.mark.integration
def test_prefilter_samples_exactly_what_the_stock_chain_samples(demo_model: Path) -> None:
    import llama_cpp

    stock = llama_cpp.Llama(str(demo_model), n_ctx=1024, n_threads=2, verbose=False)
    fast = llama_cpp.Llama(str(demo_model), n_ctx=1024, n_threads=2, verbose=False)
    try:
        assert install_penalty_prefilter(fast)
        chain = fast._init_sampler(top_k=40, top_p=0.95, min_p=0.05, temp=0.7, repeat_penalty=1.1)
        stock_chain = stock._init_sampler(top_k=40, top_p=0.95, min_p=0.05, temp=0.7, repeat_penalty=1.1)
        # llama-cpp-python's own chain, in its own order, behind one top-k of 40 + 64.
        assert _names(llama_cpp, chain) == ["top-k"] + _names(llama_cpp, stock_chain)
        assert _names(llama_cpp, chain)[1] == "penalties"
        assert _names(llama_cpp, fast._init_sampler(temp=0.7, repeat_penalty=1.0)) == \
            _names(llama_cpp, stock._init_sampler(temp=0.7, repeat_penalty=1.0))
        prompt = stock.tokenize(b"<|im_start|>user\nWrite a long story about a dragon and a small town.<|im_end|>\n"
                                b"<|im_start|>assistant\n", add_bos=False, special=True)
        for kw in (dict(temp=0.0, repeat_penalty=1.1),
                   dict(temp=0.7, top_k=40, top_p=0.95, min_p=0.05, repeat_penalty=1.1),
                   dict(temp=1.2, top_k=8, top_p=1.0, min_p=0.0, repeat_penalty=1.3, frequency_penalty=0.4,
                        presence_penalty=0.4)):
            # 120 tokens: past the 64-token penalty window, so the history is full and slides.
            a, b = _decode(stock, prompt, 120, **kw), _decode(fast, prompt, 120, **kw)
            assert len(a) == 120 and a == b, kw
    finally:
        stock.close()
        fast.close()


@pytest.mark.integration
def test_the_engine_loads_models_with_the_prefilter(demo_model: Path) -> None:
    import llama_cpp

    b = LlamaBackend()
    b.load(P.Load(id="l", model_path=str(demo_model), n_ctx=512, n_threads=2, n_gpu_layers=0))
    try:
        chain = b.llm._init_sampler(top_k=40, temp=0.7, repeat_penalty=1.1)
        assert _names(llama_cpp, chain)[:2] == ["top-k", "penalties"]
        req = P.Generate(id="g", messages=[{"role": "user", "content": "Count to five."}],
                         prompt_spec={"fmt": "gguf"}, temperature=0.0, max_tokens=8, seed=1)
        events = list(b.generate(req, threading.Event()))
        assert isinstance(events[-1], P.Finished) and events[-1].stats.generated_tokens > 0
    finally:
        b.close()
