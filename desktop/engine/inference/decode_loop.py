"""The app's own token loop over llama.cpp's low-level API (engine process, main thread).

Why not ``Llama.generate``: it re-enters Python bookkeeping on every token (a sampler-params rebuild, numpy
score rows, a generator protocol that accepts pushed-back tokens) and cannot verify a batch of drafted tokens
with one decode. Here every step is one ``llama_decode`` of a batch filled in place (one token, or the pending
token plus the drafted ones), one ``llama_sampler_sample`` per output in the native chain (``sampler``), and no
logits ever cross into Python.

The KV cache is shared with the ``Llama`` object (its context, ``input_ids`` and ``n_tokens``), so prefix reuse
across turns, ``Llama.eval`` for the prompt and the context-used stat keep working on the same state. The
llama_cpp module is handed in by ``llama_backend`` (the one module that imports it). The
invariant at every ``yield``: the KV cache holds the prompt and every token yielded so far except the last one
(the "pending" token, sampled but not yet decoded), exactly as ``Llama.generate`` left it.
"""
from __future__ import annotations

import codecs
import ctypes
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Protocol

from desktop.engine.inference.sampler import NativeChain


class Proposer(Protocol):
    """Something that guesses the next tokens cheaply (a draft model, prompt lookup); see ``speculative``."""

    def propose(self, history: list[int], k: int) -> list[int]: ...


class TokenText:
    """Incremental detokenizer: ``llama_token_to_piece`` into one reused buffer, then a UTF-8 incremental
    decoder, so a multi-byte character split over tokens comes out whole and nothing is re-decoded."""

    def __init__(self, llama_cpp: Any, vocab: Any, special: bool = False) -> None:
        self._special = special  # render control tokens as their text (reasoning formats' tags)
        self._fn = llama_cpp.llama_token_to_piece
        self._vocab = vocab
        self._size = 128
        self._buf = ctypes.create_string_buffer(self._size)
        self._utf8 = codecs.getincrementaldecoder("utf-8")("replace")

    def piece(self, token: int) -> bytes:
        n = self._fn(self._vocab, token, self._buf, self._size, 0, self._special)
        if n < 0:  # the piece needs -n bytes: grow once and keep the bigger buffer
            self._size = -n
            self._buf = ctypes.create_string_buffer(self._size)
            n = self._fn(self._vocab, token, self._buf, self._size, 0, self._special)
        return self._buf.raw[:n]

    def feed(self, token: int) -> str:
        return self._utf8.decode(self.piece(token))

    def flush(self) -> str:
        return self._utf8.decode(b"", final=True)


class Batch:
    """A ``llama_batch`` of up to ``capacity`` tokens of sequence 0, refilled in place for every decode."""

    def __init__(self, llama_cpp: Any, capacity: int) -> None:
        self._lc = llama_cpp
        self.capacity = capacity
        self.batch = llama_cpp.llama_batch_init(capacity, 0, 1)
        b = self.batch
        self._tok, self._pos, self._nseq, self._seq, self._logits = b.token, b.pos, b.n_seq_id, b.seq_id, b.logits
        for i in range(capacity):
            self._nseq[i] = 1
            self._seq[i][0] = 0

    def fill(self, tokens: list[int], n_past: int, all_logits: bool) -> None:
        tok, pos, logits = self._tok, self._pos, self._logits
        last = len(tokens) - 1
        for i, t in enumerate(tokens):
            tok[i] = t
            pos[i] = n_past + i
            logits[i] = 1 if all_logits or i == last else 0
        self.batch.n_tokens = len(tokens)

    def close(self) -> None:
        if self.batch is not None:
            self._lc.llama_batch_free(self.batch)
            self.batch = None


class Sequence:
    """The ``Llama`` object's context seen as one token sequence: decode tokens at its end, or cut it back."""

    def __init__(self, llama_cpp: Any, llm: Any, capacity: int = 1) -> None:
        self.llm = llm
        self.ctx = llm._ctx.ctx
        self._decode = llama_cpp.llama_decode
        self._batch = Batch(llama_cpp, max(1, capacity))

    @property
    def n_past(self) -> int:
        return int(self.llm.n_tokens)

    def tokens(self) -> list[int]:
        return self.llm.input_ids[: self.llm.n_tokens].tolist()

    def decode(self, tokens: list[int], all_logits: bool = False) -> None:
        llm = self.llm
        n_past = llm.n_tokens
        self._batch.fill(tokens, n_past, all_logits)
        rc = self._decode(self.ctx, self._batch.batch)
        if rc != 0:
            raise RuntimeError(f"llama_decode returned {rc}")
        llm.input_ids[n_past:n_past + len(tokens)] = tokens
        llm.n_tokens = n_past + len(tokens)

    def truncate(self, n: int) -> None:
        if n < self.llm.n_tokens:
            self.llm._ctx.kv_cache_seq_rm(-1, n, -1)
            self.llm.n_tokens = n

    def close(self) -> None:
        self._batch.close()


def keep_prefix(llm: Any, tokens: list[int], whole: Iterable[tuple[int, int]] = ()) -> int:
    """Keep the longest prefix of ``tokens`` that the KV cache already holds (the previous turn) and drop the
    rest, so that the cache holds exactly ``tokens[:n]``; returns ``n``. At least the last token is left to
    evaluate, so fresh logits wait at the last output. ``whole`` lists spans ``(start, length)`` that are kept
    whole or not at all (an image's positions): a cut inside one moves back to its start. When nothing is kept,
    or the cache cannot drop the tail, the context is reset and ``n`` is 0. Shared by the text prompt
    (:func:`prefill`) and the prompt with images (``llama_vision``)."""
    reuse = 0
    for a, b in zip(llm.input_ids[: llm.n_tokens].tolist(), tokens):
        if a != b:
            break
        reuse += 1
    reuse = min(reuse, len(tokens) - 1)
    for start, length in whole:
        if start < reuse < start + length:
            reuse = start  # half an image is no image: evaluate it whole
    if reuse > 0 and llm._ctx.kv_cache_seq_rm(-1, reuse, -1):
        llm.n_tokens = reuse
    else:
        reuse = 0
        llm.reset()
    return reuse


def prefill(llm: Any, tokens: list[int]) -> int:
    """Evaluate ``tokens`` as the prompt, reusing the longest prefix already in the KV cache (:func:`keep_prefix`).
    Returns how many tokens came from the cache."""
    reuse = keep_prefix(llm, tokens)
    llm.eval(tokens[reuse:])  # batched (n_batch at a time), logits for the last token only
    return reuse


@dataclass
class LoopStats:
    drafted: int = 0  # tokens proposed by the draft model / prompt lookup
    accepted: int = 0  # of those, how many the target sampled too

    @property
    def acceptance(self) -> float | None:
        return self.accepted / self.drafted if self.drafted else None


def generate_tokens(llama_cpp: Any, llm: Any, chain: NativeChain, stats: LoopStats,
                    proposer: Proposer | None = None, n_draft: int = 0) -> Iterator[int]:
    """Yield sampled tokens after the prompt already evaluated in ``llm`` (see ``prefill``), forever: the
    caller stops (end of generation, length, cancel) by closing the generator.

    With a ``proposer``, each step decodes the pending token plus up to ``n_draft`` proposed ones in one
    batch, samples every output in order with the same chain, and keeps the proposals up to the first one
    the target did not sample itself. Each emitted token is the target chain's own sample at its position,
    given exactly the tokens before it, with one chain draw per emitted token, so the output is the plain
    loop's output (token for token with greedy; with the same seed as well where batched logits equal
    single-token ones). Only the speed depends on the proposer.

    The draft length adapts (Hugging Face's "heuristic" schedule for assisted generation): +2 after a draft
    taken whole, -1 after a rejection, between 1 and ``n_draft``, so a proposer that is often wrong costs
    short verification batches instead of long ones.
    """
    n_ctx = llm.n_ctx()
    seq = Sequence(llama_cpp, llm, capacity=1 + max(0, n_draft))
    ctx = seq.ctx
    history = seq.tokens()
    base = len(history)  # prompt length: the KV cache always holds history[:base + yielded - 1]
    yielded = 0
    k = max(0, n_draft)
    try:
        pending = chain.sample(ctx, -1)
        history.append(pending)
        yielded += 1
        yield pending
        while True:
            room = n_ctx - seq.n_past - 1  # batch positions left after the pending token
            draft: list[int] = []
            if proposer is not None and n_draft > 0 and room > 0:
                draft = [int(t) for t in proposer.propose(history, min(k, room))][:min(k, room)]
            if not draft:
                seq.decode([pending])
                pending = chain.sample(ctx, -1)
                history.append(pending)
                yielded += 1
                yield pending
                continue
            start = seq.n_past
            seq.decode([pending, *draft], all_logits=True)
            stats.drafted += len(draft)
            out: list[int] = []
            for i in range(len(draft) + 1):
                tok = chain.sample(ctx, i)
                out.append(tok)
                if i == len(draft) or tok != draft[i]:
                    break
            accepted = len(out) - 1
            stats.accepted += accepted
            k = min(n_draft, k + 2) if accepted == len(draft) else max(1, k - 1)
            # Keep the pending token and the accepted drafts; the rejected tail leaves the cache.
            seq.truncate(start + 1 + accepted)
            pending = out[-1]
            for tok in out:
                history.append(tok)
                yielded += 1
                yield tok
    finally:
        # A caller that stops in the middle of an accepted run leaves drafted tokens in the cache past the
        # last one it took: cut back to the invariant (everything yielded but the last).
        if yielded:
            seq.truncate(base + yielded - 1)
        seq.close()
