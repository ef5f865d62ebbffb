"""The app's own work around a model load ÷ llama-cpp-python's ``Llama()`` of the same file (issue 16, goal 4).

The app's share is everything ``LlamaBackend.load`` does besides constructing ``Llama``: the GGUF doctor's
report (cold: parsed by gguf-py; warm: from the memory/disk cache keyed by path + size + mtime), the library
and device query (``library_info(refresh=True)``) and the GPU-layer choice. Pairs alternate (app work, Llama())
in one process, a few runs, medians. Usage: python bench/_load_overhead.py [MODEL] [--pairs N]
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


def app_work(path: str, cold: bool) -> dict[str, float]:
    from desktop.engine.gguf import doctor
    from desktop.engine.inference import llama_backend as lb
    from desktop.engine.inference.protocol import Load

    t0 = time.perf_counter()
    if cold:
        doctor._CACHE.clear()
        report = doctor.inspect(path, use_cache=False)
    else:
        report = doctor.inspect(path)
    t1 = time.perf_counter()
    lib = lb.library_info(refresh=True)
    t2 = time.perf_counter()
    lb.choose_layers(Load(id="x", model_path=path), lib, report)
    t3 = time.perf_counter()
    return {"doctor_s": t1 - t0, "library_s": t2 - t1, "choose_s": t3 - t2, "total_s": t3 - t0}


def llama_load(path: str, threads: int) -> float:
    import llama_cpp

    t0 = time.perf_counter()
    llm = llama_cpp.Llama(model_path=path, n_ctx=4096, n_threads=threads, n_gpu_layers=0, verbose=False)
    t = time.perf_counter() - t0
    llm.close()
    return t


def measure(path: str, pairs: int = 3, threads: int = 2) -> dict[str, Any]:
    from desktop.engine.gguf import doctor

    doctor.inspect(path)  # fill the caches once, as the first load of a file does
    llama_load(path, threads)  # and the page cache
    rows: dict[str, list[float]] = {"cold": [], "warm": [], "llama": [], "doctor_warm": [], "library": []}
    for _ in range(pairs):
        c = app_work(path, cold=True)
        rows["llama"].append(llama_load(path, threads))
        w = app_work(path, cold=False)
        rows["cold"].append(c["total_s"])
        rows["warm"].append(w["total_s"])
        rows["doctor_warm"].append(w["doctor_s"])
        rows["library"].append(w["library_s"])
    m = {k: statistics.median(v) for k, v in rows.items()}
    return {"pairs": pairs, "llama_s": m["llama"], "app_cold_s": m["cold"], "app_warm_s": m["warm"],
            "doctor_warm_s": m["doctor_warm"], "library_s": m["library"],
            "ratio_cold": m["cold"] / m["llama"], "ratio_warm": m["warm"] / m["llama"]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", nargs="?")
    ap.add_argument("--pairs", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        import os

        os.environ.setdefault("XDG_DATA_HOME", tmp)  # the doctor's disk cache goes to a throwaway dir
        path = args.model
        if path is None:
            from desktop.engine.library import registry
            from desktop.engine.profiles import ProfileStore

            path = str(registry.resolve_model(ProfileStore().default()))
        print(json.dumps(measure(path, args.pairs), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
