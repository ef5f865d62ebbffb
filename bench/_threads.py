"""Decoding on a busy machine (bench/run.py, section "threads"; also `python bench/_threads.py [MODEL]`).

Two LlamaBackends of the same file in this process: one with a fixed thread count (the bench's 2, what the
app used before threads "auto" adapted), one with threads "auto" (inference/threads.py: the count follows the
cores other programs leave free, between tokens). Each is measured idle and with one core kept busy by a plain
``while True: pass`` process, in alternating pairs (the order flips every pair); medians. The goals: with one
core busy, "auto" keeps at least half its idle speed; idle, it loses nothing against the fixed count.
A machine shared with other work makes every number noisy: the pairs are listed so the spread shows.
"""
from __future__ import annotations

import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

PROMPT = ("<|im_start|>user\nWrite a very long, detailed essay about the history of the Roman Empire.<|im_end|>\n"
          "<|im_start|>assistant\n")


def _tok_s(b: Any, tokens: int) -> tuple[float, int]:
    from desktop.engine.inference import protocol as P

    b.llm.reset()
    req = P.Generate(id="g", prompt=PROMPT, temperature=0.7, seed=42, max_tokens=tokens)
    fin = list(b.generate(req, threading.Event()))[-1]
    return fin.stats.tokens_per_s, (b.threads.n if b.threads is not None else b.llm.n_threads)


class BusyCore:
    """One core kept busy by a plain loop in another process, for the length of a ``with``."""

    def __enter__(self) -> "BusyCore":
        self.proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        time.sleep(0.5)  # running, and seen by a load sample
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.kill()
        self.proc.wait()


def bench_threads(model_path: Path, res: dict[str, Any], *, pairs: int = 3, tokens: int = 128,
                  threads: int = 2) -> None:
    from desktop.engine.inference import protocol as P
    from desktop.engine.inference.llama_backend import LlamaBackend
    from desktop.engine.inference.llama_load import default_threads

    backends = {}
    for mode, n in (("fixed", threads), ("auto", "auto")):
        b = LlamaBackend()
        b.load(P.Load(id=mode, model_path=str(model_path), n_ctx=2048, n_threads=n, n_gpu_layers=0))
        _tok_s(b, 16)  # warm-up
        backends[mode] = b
    runs: dict[str, list[float]] = {f"{m}_{c}": [] for m in backends for c in ("idle", "busy")}
    used: dict[str, list[int]] = {k: [] for k in runs}
    try:
        for i in range(pairs):
            order = ["fixed", "auto"] if i % 2 == 0 else ["auto", "fixed"]
            for cond in ("idle", "busy"):
                for mode in order:
                    if cond == "busy":
                        with BusyCore():
                            rate, n = _tok_s(backends[mode], tokens)
                    else:
                        rate, n = _tok_s(backends[mode], tokens)
                    runs[f"{mode}_{cond}"].append(rate)
                    used[f"{mode}_{cond}"].append(n)
    finally:
        for b in backends.values():
            b.close()
    m = {k: statistics.median(v) for k, v in runs.items()}
    out = {
        "pairs": pairs, "tokens": tokens, "fixed_threads": threads, "auto_ceiling": default_threads(),
        "tok_s": m, "runs": runs, "threads_used": used,
        "auto_busy_vs_idle": m["auto_busy"] / m["auto_idle"],
        "fixed_busy_vs_idle": m["fixed_busy"] / m["fixed_idle"],
        "auto_vs_fixed_idle": m["auto_idle"] / m["fixed_idle"],
        "auto_vs_fixed_busy": m["auto_busy"] / m["fixed_busy"],
    }
    res["threads"] = out
    print(f"  threads: idle fixed {m['fixed_idle']:.1f} / auto {m['auto_idle']:.1f} tok/s; one core busy: fixed "
          f"{m['fixed_busy']:.1f} ({out['fixed_busy_vs_idle']:.2f} of idle) / auto {m['auto_busy']:.1f} "
          f"({out['auto_busy_vs_idle']:.2f} of idle); auto threads used when busy {used['auto_busy']}", flush=True)


if __name__ == "__main__":
    import json
    import os

    if len(sys.argv) > 1:
        path = Path(sys.argv[1])
    else:
        from desktop.engine.library import registry
        from desktop.engine.profiles import ProfileStore

        path = Path(registry.resolve_model(ProfileStore().default()))
    result: dict[str, Any] = {}
    bench_threads(path, result, pairs=int(os.environ.get("BENCH_PAIRS", "3")),
                  tokens=int(os.environ.get("BENCH_TOKENS", "128")))
    print(json.dumps(result["threads"], indent=1))
