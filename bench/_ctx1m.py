"""One million tokens of context on one GPU (issue 16, goal 3), for a GPU session (scripts/gpu_bench_device.sh).

A Llama-3-8B-shaped GGUF with random Q4_0 weights (bench/_random_gguf.py) at n_ctx 1,048,576, flash attention on
and a q8_0 KV cache: first the app's estimate (hub/fit.py, the numbers the download dialog shows), then a load
through the engine's LlamaBackend (the context plan, GPU-layer choice and llama.cpp's own allocation), then a
short answer, timed. Writes a JSON summary (``--out``). Runs on a CPU too (``--n-ctx`` smaller) to check the
script; the million-token load needs about 75 GiB of GPU memory.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-ctx", type=int, default=1_048_576)
    ap.add_argument("--kv", default="q8_0")
    ap.add_argument("--shape", default="llama3-8b")
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--out", default="ctx1m.json")
    a = ap.parse_args()

    from bench._random_gguf import write_random_llama3
    from desktop.engine.gguf import doctor
    from desktop.engine.hub import fit, hardware
    from desktop.engine.inference import protocol as P
    from desktop.engine.inference.gpu_select import ModelShape
    from desktop.engine.inference.llama_backend import LlamaBackend

    models = Path(os.environ.get("BENCH_MODELS_DIR", "/tmp/bench-models"))
    models.mkdir(parents=True, exist_ok=True)
    path = models / f"random-{a.shape}.gguf"
    t0 = time.perf_counter()
    if not path.exists():
        write_random_llama3(path, a.shape)
    res: dict = {"model": path.name, "size_gb": path.stat().st_size / 1e9, "write_s": time.perf_counter() - t0,
                 "n_ctx": a.n_ctx, "kv": a.kv}
    shape = ModelShape.from_report(doctor.inspect(str(path)))
    est = fit.estimate(shape.file_size, shape.arch(), a.n_ctx, hardware.detect(), a.kv, flash_attn="on")
    res["estimate"] = {"verdict": est.verdict, "kv_gib": est.kv_bytes / 2**30, "total_gib": est.total_bytes / 2**30,
                       "explanation": est.explanation}
    print("estimate:", est.verdict, "-", est.explanation, flush=True)
    b = LlamaBackend()
    t1 = time.perf_counter()
    try:
        loaded = b.load(P.Load(id="l", model_path=str(path), n_ctx=a.n_ctx, n_gpu_layers=-1, flash_attn="on",
                               kv_cache_type=a.kv))
        res["load_s"] = time.perf_counter() - t1
        res["loaded"] = {"n_ctx": loaded.n_ctx, "backend": loaded.backend, "gpu_layers":
                         f"{loaded.n_gpu_layers}/{loaded.gpu_layers_total}", "notes": loaded.notes}
        print("loaded:", res["loaded"], f"in {res['load_s']:.1f} s", flush=True)
        req = P.Generate(id="g", prompt="Write a long story about a dragon.", max_tokens=a.tokens, temperature=0.0)
        fin = list(b.generate(req, threading.Event()))[-1]
        res["decode"] = {"tokens": fin.stats.generated_tokens, "tok_s": fin.stats.tokens_per_s,
                         "context_total": fin.stats.context_total}
        print("decoded:", res["decode"], flush=True)
    except Exception as exc:  # noqa: BLE001 - the summary says what failed, for the notes
        res["error"] = f"{type(exc).__name__}: {exc}"
        print("failed:", res["error"], flush=True)
    finally:
        b.close()
    Path(a.out).write_text(json.dumps(res, indent=1))
    return 0 if "error" not in res else 1


if __name__ == "__main__":
    sys.exit(main())
