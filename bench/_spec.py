"""Speculative decoding on scripted models (bench/run.py, section "spec"; also `python bench/_spec.py`).

A heavier scripted target (zero weights, real matmuls) and a one-layer draft of the same vocabulary
(tests/fixtures/spec_gguf.py), so the acceptance is set by construction: a draft that agrees everywhere, one
wrong at one word in five (about half of its drafted tokens accepted), and prompt lookup over a prompt that quotes the answer. Each mode runs through
the engine's LlamaBackend, interleaved with plain decoding (plain, mode, plain, mode, ...); the ratio is
mode tok/s ÷ plain tok/s of the same pair. Small and CPU-only: the numbers say which way and roughly how far,
not what a 7B model on a GPU gains.
"""
from __future__ import annotations

import statistics
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _tok_s(path: Path, prompt: str, spec: dict[str, Any] | None, threads: int) -> tuple[float, float | None, str]:
    from desktop.engine.inference import protocol as P
    from desktop.engine.inference.llama_backend import LlamaBackend

    b = LlamaBackend()
    b.load(P.Load(id="l", model_path=str(path), n_ctx=1024, n_threads=threads, n_gpu_layers=0, speculative=spec))
    try:
        req = P.Generate(id="g", prompt=prompt, temperature=0.0, max_tokens=400)
        list(b.generate(req, threading.Event()))  # warm-up; the next run re-evaluates only the last prompt token
        b.llm.reset()
        fin = list(b.generate(req, threading.Event()))[-1]
        return fin.stats.tokens_per_s, fin.stats.draft_acceptance, fin.text
    finally:
        b.close()


def bench_spec(res: dict[str, Any], *, pairs: int = 3, threads: int = 2, n_words: int = 160,
               target_layers: int = 8, target_ff: int = 2048, n_draft: int = 8) -> None:
    from tests.fixtures import spec_gguf

    with tempfile.TemporaryDirectory(prefix="bench-spec-") as tmp:
        same = spec_gguf.make_pair(tmp, n_words=n_words, target_layers=target_layers, target_ff=target_ff,
                                   tag="same-")
        # Wrong at one word in five: with n_draft 8 that gives about half of the drafted tokens accepted (49 %
        # measured), since a miss also wastes the rest of its draft. (disagree=0.5 gave 30 %.)
        half = spec_gguf.make_pair(tmp, n_words=n_words, disagree=0.2, target_layers=target_layers,
                                   target_ff=target_ff, tag="half-")
        modes = {"draft_100": (same, {"draft": str(same.draft), "n_draft": n_draft}),
                 "draft_50": (half, {"draft": str(half.draft), "n_draft": n_draft}),
                 "prompt_lookup": (same, {"prompt_lookup": True, "n_draft": n_draft})}
        out: dict[str, Any] = {"n_draft": n_draft, "threads": threads, "target": f"{target_layers} layers, "
                               f"n_ff {target_ff}", "tokens": len(same.reply_ids) - 1}
        for name, (pair, spec) in modes.items():
            ratios, acc = [], None
            for _ in range(pairs):
                plain, _, plain_text = _tok_s(pair.target, pair.prompt, None, threads)
                fast, acc, text = _tok_s(pair.target, pair.prompt, spec, threads)
                if text != plain_text:
                    raise AssertionError(f"{name}: speculative text differs from plain decoding")
                ratios.append(fast / plain)
            out[name] = {"ratio": statistics.median(ratios), "ratios": ratios, "acceptance": acc}
            print(f"  spec {name}: {statistics.median(ratios):.2f}x plain (pairs "
                  + ", ".join(f"{r:.2f}" for r in ratios) + f"), acceptance {acc}", flush=True)
        res["spec"] = out


if __name__ == "__main__":
    import json
    import os

    result: dict[str, Any] = {}
    bench_spec(result, pairs=int(os.environ.get("BENCH_PAIRS", "3")))
    print(json.dumps(result["spec"], indent=1))
