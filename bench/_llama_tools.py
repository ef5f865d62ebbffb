"""llama.cpp's own tools beside the app: `llama-completion` and `llama-bench` tg (bench/run.py, section "native").

The tools come from scripts/build_llama_tools.sh: the llama.cpp that llama-cpp-python vendors, built with the
Makefile's CPU flags, cached outside the repo. The app side is the engine's LlamaBackend in this process (the
same decode loop the engine process runs, minus the pipe), on the same file, threads, prompt and sampling.
Pairs alternate (tool, app, tool, app, ...) so a noisy machine hits both sides alike.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
_EVAL = re.compile(r"(?<!prompt )eval time\s*=\s*([\d.]+) ms\s*/\s*(\d+) (?:runs|tokens)")
# "sampling time = 2.62 ms" (no run count in this llama.cpp), not the "samplers time" line below it
_SAMPLE = re.compile(r"(?<!samplers )sampling time\s*=\s*([\d.]+) ms")


def tools_dir(build: bool) -> Path | None:
    """The folder with llama-bench and llama-completion: $LLAMA_TOOLS_BIN, or what the build script has cached
    (building it when ``build``, which takes several minutes)."""
    env = os.environ.get("LLAMA_TOOLS_BIN")
    if env:
        return Path(env)
    script = ROOT / "scripts" / "build_llama_tools.sh"
    env2 = dict(os.environ)
    if os.environ.get("BENCH_CMAKE_ARGS", "").startswith("-D"):
        env2["LLAMA_CMAKE_ARGS"] = os.environ["BENCH_CMAKE_ARGS"]
    try:
        out = subprocess.run(["bash", str(script)] + ([] if build else ["--check"]), capture_output=True, text=True,
                             env=env2, timeout=None if build else 60)
    except (OSError, subprocess.SubprocessError):
        return None
    path = Path(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 and out.stdout.strip() else None
    return path if path and (path / "llama-bench").exists() else None


def completion_tok_s(bin_dir: Path, model: str, prompt: str, n: int, threads: int, sampling: dict[str, Any],
                     seed: int, n_ctx: int, ngl: int = 0) -> dict[str, float]:
    """One llama-completion run: decode tok/s (eval only) and with its sampling time added."""
    cmd = [str(bin_dir / "llama-completion"), "-m", model, "-p", prompt, "-n", str(n), "-t", str(threads),
           "-tb", str(threads), "-c", str(n_ctx), "-s", str(seed), "--temp", str(sampling["temperature"]),
           "--top-k", str(sampling["top_k"]), "--top-p", str(sampling["top_p"]), "--min-p", str(sampling["min_p"]),
           "--repeat-penalty", str(sampling["repeat_penalty"]), "-no-cnv", "--ignore-eos", "-ngl", str(ngl), "-fa", "off"]
    out = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=600)
    log = out.stdout + out.stderr
    m, s = _EVAL.search(log), _SAMPLE.search(log)
    if out.returncode != 0 or not m:
        raise RuntimeError(f"llama-completion failed ({out.returncode}): {log[-400:]}")
    eval_ms, runs = float(m.group(1)), int(m.group(2))
    sample_ms = float(s.group(1)) if s else 0.0
    return {"tok_s": runs / (eval_ms / 1e3), "tok_s_with_sampling": runs / ((eval_ms + sample_ms) / 1e3),
            "tokens": runs}


def bench_tg(bin_dir: Path, model: str, n: int, threads: int, reps: int = 3, ngl: int = 0) -> float:
    """llama-bench's tg<n> (decode only, no sampling, empty context): the library's ceiling on this machine."""
    cmd = [str(bin_dir / "llama-bench"), "-m", model, "-p", "0", "-n", str(n), "-t", str(threads), "-r", str(reps),
           "-ngl", str(ngl), "-fa", "off", "-o", "json"]
    out = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=600)
    if out.returncode != 0:
        raise RuntimeError(f"llama-bench failed ({out.returncode}): {out.stderr[-400:]}")
    rows = json.loads(out.stdout)
    return float(rows[0]["avg_ts"])


def app_tok_s(model: str, prompt: str, n: int, threads: int, sampling: dict[str, Any], seed: int,
              n_ctx: int, ngl: int = 0) -> dict[str, float]:
    """The engine's LlamaBackend on a raw prompt (n tokens, or fewer if the model ends its answer)."""
    from desktop.engine.inference import protocol as P
    from desktop.engine.inference.llama_backend import LlamaBackend

    b = LlamaBackend()
    b.load(P.Load(id="l", model_path=model, n_ctx=n_ctx, n_threads=threads, n_gpu_layers=ngl, flash_attn="off"))
    try:
        req = P.Generate(id="g", prompt=prompt, max_tokens=n, seed=seed, **sampling)
        fin = list(b.generate(req, threading.Event()))[-1]
        return {"tok_s": fin.stats.tokens_per_s, "tokens": fin.stats.generated_tokens}
    finally:
        b.close()


def bench_native(targets: list[tuple[str, Path, str]], res: dict[str, Any], *, pairs: int, n: int, threads: int,
                 seed: int, n_ctx: int = 2048, build: bool = True, ngl: int = 0) -> None:
    """``targets``: (label, GGUF, raw prompt). Per target: app vs llama-completion in alternating pairs, then
    llama-bench tg once; ``res["native"][label]`` gets the medians."""
    bin_dir = tools_dir(build)
    if bin_dir is None:
        print("  no llama.cpp tools (scripts/build_llama_tools.sh failed or was skipped)", flush=True)
        return
    sampling = dict(temperature=0.7, top_k=40, top_p=0.95, min_p=0.05, repeat_penalty=1.1)
    out = res.setdefault("native", {})
    for label, model_path, prompt in targets:
        model = str(model_path)
        comp, app = [], []
        t0 = time.perf_counter()
        for i in range(pairs):
            # Alternate which side goes first, so a drift in the machine's speed hits both alike.
            first_app = i % 2 == 1
            a = app_tok_s(model, prompt, n, threads, sampling, seed, n_ctx, ngl) if first_app else None
            c = completion_tok_s(bin_dir, model, prompt, n, threads, sampling, seed, n_ctx, ngl)
            a = a or app_tok_s(model, prompt, n, threads, sampling, seed, n_ctx, ngl)
            comp.append(c)
            app.append(a)
            print(f"  {label} pair {i + 1}: app {a['tok_s']:.2f} tok/s ({a['tokens']} tok), llama-completion "
                  f"{c['tok_s']:.2f} decode only, {c['tok_s_with_sampling']:.2f} with sampling -> "
                  f"{a['tok_s'] / c['tok_s_with_sampling']:.3f}", flush=True)
        tg = bench_tg(bin_dir, model, n, threads, ngl=ngl)
        ratios = [a["tok_s"] / c["tok_s_with_sampling"] for a, c in zip(app, comp)]
        ratios_d = [a["tok_s"] / c["tok_s"] for a, c in zip(app, comp)]
        app_med = _med([a["tok_s"] for a in app])
        out[label] = {"bin": str(bin_dir), "ratios": ratios, "ratio": _med(ratios),
                      "ratio_decode_only": _med(ratios_d), "app_tok_s": app_med,
                      "completion_tok_s": _med([c["tok_s_with_sampling"] for c in comp]),
                      "completion_decode_tok_s": _med([c["tok_s"] for c in comp]),
                      "app_tokens": [a["tokens"] for a in app],
                      "bench_tg_tok_s": tg, "ratio_tg": app_med / tg, "tokens": n, "threads": threads, "ngl": ngl,
                      "size_mb": model_path.stat().st_size / 1e6, "elapsed_s": time.perf_counter() - t0}
        print(f"  {label}: app / llama-completion {out[label]['ratio']:.3f}, app / llama-bench tg "
              f"{out[label]['ratio_tg']:.3f} (tg {tg:.2f} tok/s)", flush=True)


def _med(xs: list[float]) -> float:
    ys = sorted(xs)
    k = len(ys) // 2
    return ys[k] if len(ys) % 2 else (ys[k - 1] + ys[k]) / 2
