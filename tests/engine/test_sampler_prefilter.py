"""The repetition-penalty prefilter (sampler.penalty_prefilter_k), the top-k that NativeChain puts in front.

The prefilter must never change what is sampled: here its bound is checked on hand-made candidates (and shown
to be tight); tests/engine/test_native_sampler.py decodes the real demo model with llama-cpp-python's stock
chain and with the app's prefiltered native chain, from the same seed, and compares the tokens.
"""
from __future__ import annotations

import pytest

from desktop.engine.inference.sampler import penalty_prefilter_k


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
