"""Per-token cost of the app's decode loop (decode_loop + NativeChain) vs llama-cpp-python's ``Llama.generate``.

Same model, prompt, sampler settings and seed, alternating runs in one process, medians; the tokens are checked
equal. On a scripted model (tests/fixtures/spec_gguf.py, decode ~0.1 ms) the difference is the Python work per
token; on the demo model it is that work beside a real decode. Usage:
    python bench/_loop_overhead.py [MODEL] [--tokens 400] [--pairs 5] [--threads 1]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# The app's defaults on a real model. On a scripted one every logit past the script's end is 0: greedy without
# penalties, so no top-k has to break a tie among thousands of equal logits (the prefilter may break such ties
# differently from the stock chain: sampler.penalty_prefilter_k) and the tokens can be compared.
REAL = dict(temperature=0.7, top_k=40, top_p=0.95, min_p=0.05, repeat_penalty=1.1)
SCRIPTED = dict(temperature=0.0, top_k=40, top_p=0.95, min_p=0.05, repeat_penalty=1.0)
SAMPLING = dict(REAL)


def stock(llm: Any, prompt: list[int], n: int) -> tuple[float, list[int]]:
    llm.reset()
    llm.set_seed(3)
    out: list[int] = []
    t0 = time.perf_counter()
    s = SAMPLING
    for tok in llm.generate(prompt, top_k=s["top_k"], top_p=s["top_p"], min_p=s["min_p"], temp=s["temperature"],
                            repeat_penalty=s["repeat_penalty"]):
        if not out:
            t0 = time.perf_counter()
        out.append(tok)
        if len(out) >= n:
            break
    return (time.perf_counter() - t0) / (n - 1), out


def app(llm: Any, prompt: list[int], n: int) -> tuple[float, list[int]]:
    import llama_cpp

    from desktop.engine.inference import decode_loop
    from desktop.engine.inference.sampler import NativeChain, SamplerSpec

    llm.reset()
    out: list[int] = []
    with NativeChain(llama_cpp, SamplerSpec(seed=3, **SAMPLING), llm.n_vocab()) as chain:
        decode_loop.prefill(llm, prompt)
        gen = decode_loop.generate_tokens(llama_cpp, llm, chain, decode_loop.LoopStats())
        t0 = time.perf_counter()
        for tok in gen:
            if not out:
                t0 = time.perf_counter()
            out.append(tok)
            if len(out) >= n:
                break
        dt = (time.perf_counter() - t0) / (n - 1)
        gen.close()
    return dt, out


def measure(model: str, prompt_text: str, n: int, pairs: int, threads: int) -> dict[str, Any]:
    import llama_cpp

    llm = llama_cpp.Llama(model, n_ctx=max(1024, 2 * n), n_threads=threads, verbose=False)
    try:
        prompt = llm.tokenize(prompt_text.encode(), add_bos=False, special=True)
        s_ms, a_ms, same = [], [], True
        for _ in range(pairs):
            ts, ta = stock(llm, prompt, n), app(llm, prompt, n)
            s_ms.append(ts[0] * 1e3)
            a_ms.append(ta[0] * 1e3)
            same = same and ts[1] == ta[1]
        s, a = statistics.median(s_ms), statistics.median(a_ms)
        return {"model": Path(model).name, "tokens": n, "pairs": pairs, "stock_ms_per_tok": s, "app_ms_per_tok": a,
                "saved_us_per_tok": (s - a) * 1e3, "speedup": s / a, "same_tokens": same}
    finally:
        llm.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", nargs="?")
    ap.add_argument("--tokens", type=int, default=400)
    ap.add_argument("--pairs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    if args.model:
        prompt = "<|im_start|>user\nWrite a long story about a dragon.<|im_end|>\n<|im_start|>assistant\n"
        print(json.dumps(measure(args.model, prompt, args.tokens, args.pairs, args.threads), indent=1))
        return 0
    from tests.fixtures import spec_gguf

    SAMPLING.update(SCRIPTED)
    with tempfile.TemporaryDirectory() as tmp:
        pair = spec_gguf.make_pair(tmp, n_words=48)
        print(json.dumps(measure(str(pair.target), pair.prompt, args.tokens, args.pairs, args.threads), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
