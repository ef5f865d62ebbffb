"""Raw llama-cpp-python decode speed, to set beside the app's own numbers (``desktop-chat --selftest``).

Loads a GGUF straight through ``llama_cpp.Llama`` (no engine process, no app code), decodes greedily and
reports tok/s the way the app does: tokens after the first one, divided by the time since the first one.
Usage: python scripts/bench_raw.py MODEL [--gpu-layers -1] [--tokens 256] [--ctx 2048] [--prompt TEXT]
"""
from __future__ import annotations

import argparse
import json
import time


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model")
    ap.add_argument("--gpu-layers", type=int, default=-1)
    ap.add_argument("--tokens", type=int, default=256)
    ap.add_argument("--ctx", type=int, default=2048)
    ap.add_argument("--threads", type=int, default=None)
    # The app's sampler defaults (protocol.Generate), so the number sits beside `--selftest`'s: llama-cpp-python's
    # own default repeat penalty is 1.0, and the penalty costs ~0.15 ms per token (bench/NOTES.md, change 7).
    ap.add_argument("--repeat-penalty", type=float, default=1.1)
    ap.add_argument("--prompt", default="<s>[INST] Say hello. [/INST]",
                    help="raw prompt text, special tokens parsed (the default suits the scripted selftest GGUFs)")
    args = ap.parse_args()
    import llama_cpp

    t0 = time.perf_counter()
    llm = llama_cpp.Llama(model_path=args.model, n_gpu_layers=args.gpu_layers, n_ctx=args.ctx,
                          n_threads=args.threads, verbose=False)
    load_s = time.perf_counter() - t0
    prompt = llm.tokenize(args.prompt.encode(), add_bos=not args.prompt.startswith("<s>"), special=True)
    n = 0
    t_first = t_end = time.perf_counter()
    for tok in llm.generate(prompt, temp=0.0, top_k=40, top_p=0.95, min_p=0.05, repeat_penalty=args.repeat_penalty):
        if n == 0:
            t_first = time.perf_counter()
        n += 1
        t_end = time.perf_counter()
        if llama_cpp.llama_vocab_is_eog(llm._model.vocab, tok) or n >= args.tokens:
            break
    tps = (n - 1) / (t_end - t_first) if n > 1 and t_end > t_first else 0.0
    print(json.dumps({"model": args.model, "gpu_layers": args.gpu_layers, "tokens": n, "tokens_per_s": round(tps, 1),
                      "load_s": round(load_s, 2), "llama_cpp": llama_cpp.__version__,
                      "gpu_offload": bool(llama_cpp.llama_supports_gpu_offload())}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
