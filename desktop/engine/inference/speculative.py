"""Speculative decoding's proposers: a small draft model of the same tokenizer, or prompt lookup (engine process).

A proposer guesses the next few tokens cheaply; ``decode_loop.generate_tokens`` verifies the guesses with one
batched decode of the target model and keeps those the target samples itself, so the answer never depends on
the proposer (tests/engine/test_speculative.py), only the speed does: a batch of k+1 tokens costs about as much
as one token while decoding is memory-bound (GPU, big models on CPU), and the accepted guesses are tokens that
needed no step of their own.

The llama_cpp module is handed in by ``llama_backend``, the one module that imports it. Configured by a
profile's ``speculative`` section, sent as ``Load.speculative``:
``{draft: <profile id or GGUF path>, n_draft: N}`` or ``{prompt_lookup: true, n_draft: N}``.
"""
from __future__ import annotations

import os
from typing import Any, Callable

from desktop.engine.errors import AppError, ModelLoadError


class PromptLookup:
    """Prompt-lookup decoding: when the last tokens appeared earlier (in the prompt, or the answer so far),
    propose what followed them there. No second model; pays off when answers quote their input (code edits,
    summaries, extraction). llama-cpp-python's ``LlamaPromptLookupDecoding`` does the n-gram search."""

    def __init__(self, llama_cpp: Any, max_ngram: int = 3) -> None:
        self._find = llama_cpp.llama_speculative.LlamaPromptLookupDecoding.find_candidate_pred_tokens
        self.max_ngram = max_ngram

    def propose(self, history: list[int], k: int) -> list[int]:
        import numpy as np

        found = self._find(np.asarray(history, dtype=np.intc), self.max_ngram, k)
        return [int(t) for t in found]


class DraftModel:
    """A small model of the same vocabulary that proposes ``k`` tokens greedily. Its KV cache follows the
    target's history: each call keeps the common prefix, evaluates what is new, then drafts."""

    def __init__(self, llama_cpp: Any, llm: Any) -> None:
        from desktop.engine.inference.decode_loop import Sequence

        self.llm = llm
        self._lc = llama_cpp
        self._greedy = llama_cpp.llama_sampler_init_greedy()
        self._vocab = llm._model.vocab
        self._seq = Sequence(llama_cpp, llm, capacity=1)

    def propose(self, history: list[int], k: int) -> list[int]:
        llm, seq, lc = self.llm, self._seq, self._lc
        if len(history) + k >= llm.n_ctx():
            return []
        keep = 0
        for a, b in zip(llm.input_ids[: llm.n_tokens].tolist(), history):
            if a != b:
                break
            keep += 1
        keep = min(keep, len(history) - 1)  # the last history token is evaluated again for fresh logits
        seq.truncate(keep)
        llm.eval(history[keep:])
        out: list[int] = []
        for j in range(k):
            tok = int(lc.llama_sampler_sample(self._greedy, seq.ctx, -1))
            out.append(tok)
            if lc.llama_vocab_is_eog(self._vocab, tok):
                break  # nothing follows the end of the answer: guesses past it are wasted verification
            if j < k - 1:
                seq.decode([tok])
        return out

    def close(self) -> None:
        self._seq.close()
        if self._greedy is not None:
            self._lc.llama_sampler_free(self._greedy)
            self._greedy = None
        try:
            self.llm.close()
        except Exception:  # pragma: no cover - freeing must not mask why we are closing
            pass


def resolve_draft(draft: str) -> str:
    """A draft named by profile id or by path -> the GGUF path (engine process: the profile store and the
    registry are files, read here rather than on the GUI thread)."""
    if draft.endswith(".gguf") or os.sep in draft or "/" in draft:
        path = os.path.expanduser(draft)
        if not os.path.isfile(path):
            raise ModelLoadError(f"the draft model {draft} does not exist")
        return path
    from desktop.engine import profiles
    from desktop.engine.library import registry

    try:
        return str(registry.resolve_model(profiles.ProfileStore().get(draft)))
    except AppError as exc:
        raise ModelLoadError(f"the draft model {draft!r} cannot be used: {exc.message}") from exc


def load_draft(llama_cpp: Any, target: Any, path: str, n_threads: int, n_gpu_layers: int, *,
               open_model: Callable[[dict[str, Any]], Any]) -> DraftModel:
    """Load ``path`` as a draft for ``target`` (same context length and threads), checking the vocabularies
    match: drafted ids are fed to the target as they are, so a different tokenizer would only waste time.
    ``open_model(kwargs)`` builds the ``Llama`` (``llama_load.open_llama``: the file's chat template unseen)."""

    try:
        llm = open_model(dict(model_path=path, n_ctx=target.n_ctx(), n_threads=n_threads,
                              n_threads_batch=n_threads, n_gpu_layers=n_gpu_layers, verbose=False))
    except (ValueError, RuntimeError, OSError) as exc:
        raise ModelLoadError(f"llama.cpp could not load the draft model {os.path.basename(path)}: {exc}") from exc
    n_draft_vocab, n_vocab = llm.n_vocab(), target.n_vocab()
    text = llama_cpp.llama_vocab_get_text
    same = (n_draft_vocab == n_vocab and llm.token_bos() == target.token_bos()
            and llm.token_eos() == target.token_eos()
            and all(text(llm._model.vocab, t) == text(target._model.vocab, t)
                    for t in range(0, n_vocab, max(1, n_vocab // 64))))
    if not same:
        llm.close()
        raise ModelLoadError(f"the draft model {os.path.basename(path)} has another tokenizer than the model "
                             f"({n_draft_vocab} vs {n_vocab} tokens, or other token texts); a draft must come "
                             "from the same model family")
    return DraftModel(llama_cpp, llm)
