"""The sampler chain, built directly in llama.cpp's native sampler API (engine process only).

The chain is the one llama-cpp-python's ``Llama._init_sampler`` builds (penalties, then greedy, or top-k ->
typical(1.0) -> top-p -> min-p -> temp -> dist(seed)), with one addition in front: the repetition-penalty
prefilter of :func:`penalty_prefilter_k`; and, for constrained output, a grammar sampler ahead of everything. Same samplers, same order, same seed: it samples exactly what
``Llama.generate`` samples (tests/engine/test_native_sampler.py decodes the demo model both ways), but the app's
own decode loop (``decode_loop``) drives it without llama-cpp-python's per-token bookkeeping.

The llama_cpp module is handed in by ``llama_backend`` (the one module that imports it): ``penalty_prefilter_k``
and ``chain_names`` are plain arithmetic that tests and the caller side use without loading the library.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from desktop.engine.profiles.fields import default as _default

#: llama-cpp-python's default ``last_n_tokens_size``: how many recent tokens the penalties look at.
PENALTY_LAST_N = 64


def penalty_prefilter_k(top_k: int, temp: float, repeat_penalty: float, frequency_penalty: float = 0.0,
                        presence_penalty: float = 0.0, last_n: int = PENALTY_LAST_N, mirostat_mode: int = 0,
                        n_vocab: int | None = None) -> int | None:
    """How many top candidates a sampler chain that starts with repetition penalties can keep up front without
    changing what it samples, or None when that shortcut does not apply.

    llama.cpp's penalties sampler looks up every vocabulary entry in a hash map on every token (49k-128k
    lookups: about 0.2 ms on a desktop core, ~12 % of a small model's step on a GPU; bench/NOTES.md, change 7).
    Penalties only ever *lower* logits (repeat > 1 divides positive and multiplies negative ones; frequency and
    presence subtract), and at most ``last_n`` distinct tokens are penalized. So a token in the top k after
    the penalties was in the top ``k + last_n`` before them: a ``top_k(k + last_n)`` in front of the chain
    leaves the result of ``penalties -> top_k(k)`` (or ``penalties -> greedy``, k = 1) unchanged, and the
    penalties then touch ~100 candidates instead of the whole vocabulary.

    One difference remains, among logits that are exactly equal: the stock greedy sampler takes the lowest
    token id of a tie, the prefiltered chain whichever the (unstable) top-k sort put first. Both are argmaxes;
    with float logits from a real model such ties are vanishingly rare.
    """
    active = last_n != 0 and (repeat_penalty != 1.0 or frequency_penalty != 0.0 or presence_penalty != 0.0)
    never_raises = repeat_penalty >= 1.0 and frequency_penalty >= 0.0 and presence_penalty >= 0.0
    if not active or not never_raises or mirostat_mode != 0 or last_n < 0:
        return None
    if temp == 0.0:
        k = 1 + last_n  # greedy
    elif temp > 0.0 and top_k > 0:
        k = top_k + last_n
    else:
        return None  # top_k off, or temp < 0 (plain dist over the whole vocabulary): every logit matters
    if n_vocab is not None and k >= n_vocab:
        return None  # nothing to cut (and no int32 overflow from an absurd top_k)
    return k


@dataclass(frozen=True)
class SamplerSpec:
    """What a Generate asks of the sampler (the fields of ``protocol.Generate`` that matter here); the defaults are
    the settings table's, as Generate's are."""

    temperature: float = _default("sampling.temperature")
    top_k: int = _default("sampling.top_k")
    top_p: float = _default("sampling.top_p")
    min_p: float = _default("sampling.min_p")
    repeat_penalty: float = _default("sampling.repeat_penalty")
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    # -1 is llama.cpp's LLAMA_DEFAULT_SEED (0xFFFFFFFF as the uint32 it takes): its dist sampler then seeds itself
    # at random. The engine never relies on that: it draws a -1 request's seed itself (llama_generate) and passes
    # it here, so the seed it reports is the one used.
    seed: int = _default("sampling.seed")
    last_n: int = PENALTY_LAST_N
    # A GBNF grammar the output must match (``Generate.json_schema``/``grammar``); None: unconstrained.
    grammar: str | None = None


def chain_names(spec: SamplerSpec, n_vocab: int) -> list[str]:
    """The samplers of the chain :class:`NativeChain` builds for ``spec``, in order (llama.cpp's names)."""
    names = ["grammar"] if spec.grammar else []
    if penalty_prefilter_k(spec.top_k, spec.temperature, spec.repeat_penalty, spec.frequency_penalty,
                           spec.presence_penalty, spec.last_n, 0, n_vocab) is not None:
        names.append("top-k")
    names.append("penalties")
    if spec.temperature < 0.0:
        names.append("dist")
    elif spec.temperature == 0.0:
        names.append("greedy")
    else:
        names += ["top-k", "typical", "top-p", "min-p", "temp", "dist"]
    return names


class NativeChain:
    """One llama.cpp sampler chain for one generation. ``sample`` samples the ``idx``-th output of the last
    decode and accepts the token into the chain (penalty history, RNG state), as ``llama_sampler_sample`` does.
    Not thread-safe; free it with ``close`` (or a ``with`` block)."""

    def __init__(self, llama_cpp: Any, spec: SamplerSpec, n_vocab: int, vocab: Any = None) -> None:
        self._lc = llama_cpp
        self.spec = spec
        self.chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
        add = self._add
        if spec.grammar:
            # First in the chain: it masks every token the grammar forbids (to -inf) over the whole vocabulary,
            # so the prefilter and top-k below only ever choose among allowed tokens; the chain's accept advances
            # the grammar with each sampled token. (``vocab`` is needed only here.)
            grammar = llama_cpp.llama_sampler_init_grammar(vocab, spec.grammar.encode("utf-8"), b"root")
            if not grammar:
                self.close()
                raise ValueError("llama.cpp could not parse the grammar")
            add(grammar)
        k = penalty_prefilter_k(spec.top_k, spec.temperature, spec.repeat_penalty, spec.frequency_penalty,
                                spec.presence_penalty, spec.last_n, 0, n_vocab)
        if k is not None:
            add(llama_cpp.llama_sampler_init_top_k(k))
        pen = (spec.last_n, spec.repeat_penalty, spec.frequency_penalty, spec.presence_penalty)
        if len(llama_cpp.llama_sampler_init_penalties.argtypes) == 5:  # this llama.cpp also takes n_vocab first
            pen = (n_vocab, *pen)
        add(llama_cpp.llama_sampler_init_penalties(*pen))
        if spec.temperature < 0.0:
            add(llama_cpp.llama_sampler_init_dist(spec.seed))
        elif spec.temperature == 0.0:
            add(llama_cpp.llama_sampler_init_greedy())
        else:
            # min_keep 1 and typical 1.0 (off) exactly as llama-cpp-python adds them, so the chains match.
            add(llama_cpp.llama_sampler_init_top_k(spec.top_k))
            add(llama_cpp.llama_sampler_init_typical(1.0, 1))
            add(llama_cpp.llama_sampler_init_top_p(spec.top_p, 1))
            add(llama_cpp.llama_sampler_init_min_p(spec.min_p, 1))
            add(llama_cpp.llama_sampler_init_temp(spec.temperature))
            add(llama_cpp.llama_sampler_init_dist(spec.seed))
        self._sample = llama_cpp.llama_sampler_sample

    def _add(self, smpl: Any) -> None:
        self._lc.llama_sampler_chain_add(self.chain, smpl)  # the chain owns (and frees) it from here on

    def sample(self, ctx: Any, idx: int = -1) -> int:
        return int(self._sample(self.chain, ctx, idx))

    def names(self) -> list[str]:
        lc = self._lc
        return [lc.llama_sampler_name(lc.llama_sampler_chain_get(self.chain, i)).decode()
                for i in range(lc.llama_sampler_chain_n(self.chain))]

    def close(self) -> None:
        if self.chain is not None:
            self._lc.llama_sampler_free(self.chain)
            self.chain = None

    def __enter__(self) -> NativeChain:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
