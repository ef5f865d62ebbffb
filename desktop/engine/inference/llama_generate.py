"""One generation of ``llama_backend`` (engine process, main thread): the conversation trimmed to the context,
then the token stream with stop tokens and strings, Stop, and the stats.

Split out of ``llama_backend`` by job. That module stays the only one that imports ``llama_cpp`` and hands the
module object in; the token loop itself is ``decode_loop``'s, driven here with no extra per-token layer.
"""
from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Protocol

from desktop.engine.errors import ContextOverflowError, GenerationError, GrammarError
from desktop.engine.inference import decode_loop
from desktop.engine.inference.llama_load import DecodeAbort
from desktop.engine.inference.protocol import Finished, Generate, GenerationStats, Loaded, TokenChunk
from desktop.engine.inference.reasoning import ReasoningSplitter, starts_thinking
from desktop.engine.inference.sampler import NativeChain, SamplerSpec
from desktop.engine.inference.stops import StopScanner
from desktop.engine.inference.threads import ThreadGovernor

@dataclass
class Prepared:
    tokens: list[int]
    dropped: list[int]
    media: Any = None  # llama_vision.MediaPrompt when the prompt holds images


class LoadedModel(Protocol):
    """What one generation reads from the loaded model: ``llama_backend.LlamaBackend``, described here so that
    this module never imports that one back."""

    llm: Any
    loaded: Loaded | None
    eog_extra: set[int]  # end-of-generation ids llama.cpp itself does not stop on
    abort: DecodeAbort | None
    proposer: Any  # speculative.DraftModel / PromptLookup, or None
    n_draft: int
    threads: ThreadGovernor | None  # None: a fixed thread count
    last_prompt_tail: str  # the end of the last prompt rendered (a template that opened the thinking block)

    def reasoning_format(self, req: Generate) -> str: ...  # how the model thinks ("" when it does not)

    def prepare(self, req: Generate, reserve: int) -> Prepared: ...

    def prefill(self, prep: Prepared) -> int: ...  # evaluates the prompt (images too); the reused prefix


def trim_to_context(req: Generate, n_ctx: int, reserve: int, tokenize: Callable[[str], list[int]],
                    render: Callable[[Generate, list[dict[str, Any]]], str]) -> Prepared:
    """Render and tokenize; drop the oldest turns (never the system prompt) until it fits."""
    budget = n_ctx - reserve
    if req.prompt is not None:
        toks = tokenize(req.prompt)
        if len(toks) > budget:
            raise ContextOverflowError(
                f"the prompt is {len(toks)} tokens but the context holds {n_ctx} (with {reserve} kept for the "
                "answer); shorten it or raise the context length")
        return Prepared(toks, [])
    msgs = list(req.messages)
    system_prompt = req.prompt_spec.get("system_prompt", "")
    keep_first = bool(msgs) and msgs[0].get("role") == "system"
    index = list(range(len(msgs)))
    dropped: list[int] = []
    while True:
        toks = tokenize(render(req, msgs))
        if len(toks) <= budget:
            return Prepared(toks, dropped)
        start = 1 if keep_first else 0
        # Drop whole exchanges from the front; keep at least the newest message.
        if len(msgs) - start <= 1:
            if keep_first or system_prompt:
                raise ContextOverflowError(
                    f"the newest message needs {len(toks)} tokens with the system prompt, but the context holds "
                    f"{n_ctx} (with {reserve} kept for the answer); shorten it or raise the context length")
            raise ContextOverflowError(
                f"the newest message needs {len(toks)} tokens but the context holds {n_ctx} "
                f"(with {reserve} kept for the answer); shorten it or raise the context length")
        n = 1
        if msgs[start].get("role") == "user" and len(msgs) - start > 2 and msgs[start + 1].get("role") == "assistant":
            n = 2
        dropped.extend(index[start:start + n])
        del msgs[start:start + n]
        del index[start:start + n]


def stream(llama_cpp: Any, backend: LoadedModel, req: Generate,
           cancel: threading.Event, grammar: str | None = None) -> Iterator[TokenChunk | Finished]:
    """Yield one TokenChunk per visible token piece, then one Finished (``LlamaBackend.generate``); ``grammar``
    (GBNF) constrains the tokens sampled."""
    if backend.llm is None or backend.loaded is None:
        raise GenerationError("no model is loaded")
    llm = backend.llm
    n_ctx = llm.n_ctx()
    reserve = max(1, min(req.max_tokens, n_ctx // 4))
    t0 = time.perf_counter()
    prep = backend.prepare(req, reserve)
    tokens = prep.tokens
    vocab = llm._model.vocab
    is_eog = llama_cpp.llama_vocab_is_eog
    stop_ids = set(req.stop_token_ids) | backend.eog_extra
    scanner = StopScanner(req.stop_strings)
    seed = req.seed if req.seed is not None and req.seed >= 0 else int.from_bytes(os.urandom(4), "little")
    llm.set_seed(seed)  # llama-cpp-python's own calls on this Llama (e.g. a later sample()) see it too
    rfmt = backend.reasoning_format(req)
    # Reasoning formats are markup: their tags (gpt-oss's are control tokens) must be in the text to be split off.
    text = decode_loop.TokenText(llama_cpp, vocab, special=bool(rfmt))
    split = ReasoningSplitter(rfmt, thinking=starts_thinking(rfmt, backend.last_prompt_tail))
    n_thinking = 0
    started = False
    finish = "length"
    stop_token: int | None = None
    n_gen = 0
    ttft = 0.0
    t_first = 0.0
    max_new = min(req.max_tokens, n_ctx - len(tokens))
    loop_stats = decode_loop.LoopStats()
    spec = SamplerSpec(temperature=req.temperature, top_k=req.top_k, top_p=req.top_p, min_p=req.min_p,
                       repeat_penalty=req.repeat_penalty, seed=seed, last_n=int(llm.last_n_tokens_size),
                       grammar=grammar)
    cached = 0  # stays 0 when Stop aborts the prompt before prefill returns
    abort = backend.abort
    threads = backend.threads
    abort.during_prompt(True, cancel)
    try:
        try:
            chain = NativeChain(llama_cpp, spec, llm.n_vocab(), vocab)
        except ValueError as exc:
            raise GrammarError(f"the output grammar cannot be used: {exc}") from exc
        with chain:
            if threads is not None:
                threads.tick()
            cached = backend.prefill(prep)
            # Image positions hold pseudo tokens no proposer may draft: images decode plainly.
            proposer = backend.proposer if prep.media is None else None
            gen = decode_loop.generate_tokens(llama_cpp, llm, chain, loop_stats, proposer, backend.n_draft)
            try:
                for tok in gen:
                    if n_gen == 0:
                        t_first = time.perf_counter()
                        ttft = t_first - t0
                        abort.during_prompt(False)  # the prompt is in; tokens check ``cancel`` below
                    if tok in stop_ids or is_eog(vocab, tok):
                        finish, stop_token = "stop", int(tok)
                        break
                    n_gen += 1
                    piece = text.feed(tok)
                    if not started:
                        piece = piece.lstrip()
                        started = bool(piece)
                    shown = scanner.feed(piece)
                    was_thinking = split.thinking
                    thought, answer = split.feed(shown) if shown else ("", "")
                    if was_thinking or split.thinking:
                        n_thinking += 1
                    if thought or answer:
                        yield TokenChunk(req.id, answer, 1, thought)
                    if scanner.stopped:
                        finish = "stop"
                        break
                    if cancel.is_set():
                        finish = "cancelled"
                        break
                    if n_gen >= max_new or llm.n_tokens >= n_ctx:
                        finish = "length"
                        break
                    if threads is not None:
                        threads.tick()  # between two decodes: follow the cores other programs leave free
            finally:
                gen.close()  # puts the KV cache back to what was taken (drafted tokens past a stop go)
    except (RuntimeError, ValueError) as exc:
        if not cancel.is_set():
            raise GenerationError(f"generation failed in llama.cpp: {exc}") from exc
        finish = "cancelled"  # the abort callback stopped llama_decode mid-prompt (or mid-token)
    finally:
        abort.during_prompt(False)
    if not scanner.stopped:
        # The answer ended (end-of-turn token, length, cancel) with text held back as a possible
        # stop-string prefix: it is part of the answer.
        rest = scanner.rest(text.flush())
        if rest:
            thought, answer = split.feed(rest)
            if thought or answer:
                yield TokenChunk(req.id, answer, 0, thought)
    thought, answer = split.finish()
    if thought or answer:
        yield TokenChunk(req.id, answer, 0, thought)
    t_end = time.perf_counter()
    decode_s = t_end - t_first if n_gen > 1 else 0.0
    stats = GenerationStats(
        ttft_s=ttft, prompt_tokens=len(tokens), prompt_eval_tokens=len(tokens) - cached, generated_tokens=n_gen,
        tokens_per_s=((n_gen - 1) / decode_s) if decode_s > 0 else 0.0, total_s=t_end - t0,
        context_used=int(llm.n_tokens), context_total=n_ctx, backend=backend.loaded.backend,
        gpu_layers=backend.loaded.n_gpu_layers, seed=seed, draft_acceptance=loop_stats.acceptance,
        reasoning_tokens=n_thinking,
        image_tokens=prep.media.image_tokens if prep.media is not None else 0,
    )
    calls = [{"id": f"call_{i}", **c} for i, c in enumerate(split.tool_calls)]
    yield Finished(req.id, split.answer_text, finish, stats, prep.dropped, stop_token, calls,
                   reasoning=split.reasoning_text,
                   stopped_thinking=finish == "length" and split.unfinished_thinking)
