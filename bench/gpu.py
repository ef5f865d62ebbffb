"""`make bench-gpu`: app decode tok/s ÷ raw llama-cpp-python with full GPU offload (issue 6, GPU ratio).

Runs on a machine with a GPU build of llama-cpp-python (``scripts/build_llama.sh cuda --install``). No Qt is
needed: the app side is everything between llama.cpp and the GUI adapter, i.e. the engine process
(``LlamaBackend.generate``, stop handling, 50 ms chunking), the message protocol and ``EngineClient``'s reader
thread, timed where the client receives the events. The GUI's own cost per chunk does not depend on the token
rate (20 flushes/s) and is measured on CPU by ``make bench`` (section 1).

Both sides get the same GGUF, the same load settings (all layers offloaded, n_ctx, n_batch, threads, flash
attention off), the same prompt tokens and the same sampler chain (the app's defaults, greedy at temperature
0, repeat penalty 1.1), and both count the same way: tokens sampled after the first one, end-of-turn token
included, divided by the time from the first token to the last. Pairs alternate raw/app and app/raw;
medians are reported. The models are the scripted GGUFs from ``desktop/selftest.py`` (shaped like the demo
model, SmolLM2-135M Q4_1, and like TinyLlama-1.1B in f16), so greedy decoding walks a known reply of
``--words`` tokens and ends in ``</s>``: both sides must stream exactly that text.

Writes ``bench/results-gpu.json`` (``--out``); ``make bench`` puts its numbers into bench/RESULTS.md. Like
bench/run.py, this is a place outside llama_backend.py that imports llama_cpp: the raw baseline.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from desktop.engine.inference.sampler import penalty_prefilter_k  # noqa: E402 - after the path set-up

PROMPT = "<s>[INST] Say hello. [/INST]"


def gpu_name() -> str:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20).stdout.strip()
        return out.splitlines()[0] if out else "?"
    except (OSError, subprocess.SubprocessError):
        return "?"


def install_penalty_prefilter(llm: Any) -> bool:
    """The raw baseline with the app's chain (what ``sampler.NativeChain`` builds): make ``llm.generate`` build
    its sampler chain with the top-k prefilter of ``penalty_prefilter_k`` in
    front (engine process, main thread, at load). The chain itself stays llama-cpp-python's own: its samplers
    are moved, in order, into a new chain that starts with the prefilter. Returns False (and changes nothing)
    where this llama-cpp-python lacks what that needs."""
    import weakref

    import llama_cpp

    needed = ("llama_sampler_chain_n", "llama_sampler_chain_remove", "llama_sampler_chain_add")
    stock = getattr(type(llm), "_init_sampler", None)
    if stock is None or not all(hasattr(llama_cpp, f) for f in needed):
        return False
    last_n, n_vocab = int(llm.last_n_tokens_size), int(llm.n_vocab())
    # A weak reference: the closure lives in llm.__dict__, and a strong one would keep the Llama (and its
    # vocabulary-sized buffers) alive until the cycle collector runs.
    ref = weakref.ref(llm)

    def init_sampler(**kw: Any) -> Any:
        chain = stock(ref(), **kw)
        k = None
        if kw.get("grammar") is None and kw.get("logits_processor") is None:
            k = penalty_prefilter_k(kw.get("top_k", 40), kw.get("temp", 0.8), kw.get("repeat_penalty", 1.0),
                                    kw.get("frequency_penalty", 0.0), kw.get("presence_penalty", 0.0),
                                    last_n, kw.get("mirostat_mode", 0), n_vocab)
        if k is None or getattr(chain, "custom_samplers", None):
            return chain
        try:
            fast = type(chain)()
            fast.add_top_k(k)
        except Exception:  # noqa: BLE001 - another llama-cpp-python's sampler class: keep its own chain
            return chain
        for _ in range(llama_cpp.llama_sampler_chain_n(chain.sampler)):
            llama_cpp.llama_sampler_chain_add(fast.sampler, llama_cpp.llama_sampler_chain_remove(chain.sampler, 0))
        chain.close()
        return fast

    llm._init_sampler = init_sampler
    return True


class RawSide:
    """llama-cpp-python alone, in this process, loaded exactly as the engine loads the file."""

    def __init__(self, path: str, n_ctx: int, threads: int, n_batch: int, prefilter: bool = False) -> None:
        import llama_cpp

        self.llama_cpp = llama_cpp
        self.llm = llama_cpp.Llama(model_path=path, n_gpu_layers=-1, n_ctx=n_ctx, n_threads=threads,
                                   n_threads_batch=threads, n_batch=n_batch, flash_attn=False, verbose=False)
        if prefilter:  # the app's sampler chain on raw llama-cpp-python: isolates the pipeline's own cost
            install_penalty_prefilter(self.llm)

    def run(self, sampling: dict[str, Any], max_tokens: int) -> dict[str, Any]:
        llm = self.llm
        tokens = llm.tokenize(PROMPT.encode(), add_bos=False, special=True)
        llm.reset()
        llm.set_seed(1)
        vocab = llm._model.vocab
        out: list[bytes] = []
        n = 0
        t0 = time.perf_counter()
        t_first = t_last = t0
        for tok in llm.generate(tokens, temp=sampling["temperature"], top_k=sampling["top_k"],
                                top_p=sampling["top_p"], min_p=sampling["min_p"],
                                repeat_penalty=sampling["repeat_penalty"]):
            t_last = time.perf_counter()
            if n == 0:
                t_first = t_last
            n += 1
            if self.llama_cpp.llama_vocab_is_eog(vocab, tok):
                break
            out.append(llm.detokenize([tok]))  # a streaming consumer needs the text too
            if n >= max_tokens:
                break
        return {"sampled": n, "tok_s": (n - 1) / (t_last - t_first) if n > 1 else 0.0, "ttft_s": t_first - t0,
                "text": b"".join(out).decode("utf-8", "replace").strip()}

    def close(self) -> None:
        self.llm.close()


class AppSide:
    """The engine process, protocol and client, timed where the client receives the events."""

    def __init__(self, path: str, n_ctx: int, threads: int, n_batch: int) -> None:
        from desktop.engine.inference import protocol as P
        from desktop.engine.inference.client import EngineClient, new_id

        self.P, self.new_id = P, new_id
        self.client = EngineClient()
        self.loaded = self.client.load(P.Load(id=new_id("load"), model_path=path, n_ctx=n_ctx, n_gpu_layers=-1,
                                              n_threads=threads, n_batch=n_batch, flash_attn=False), timeout=600)

    def run(self, sampling: dict[str, Any], max_tokens: int) -> dict[str, Any]:
        P = self.P
        req = P.Generate(id=self.new_id("gen"), prompt=PROMPT, max_tokens=max_tokens, seed=1, **sampling)
        text: list[str] = []
        t0 = time.perf_counter()
        t_first = 0.0
        fin = None
        for ev in self.client.generate(req, timeout=600):
            if isinstance(ev, P.TokenChunk):
                if not t_first:
                    t_first = time.perf_counter()
                text.append(ev.text)
            elif isinstance(ev, P.Finished):
                fin = ev
            elif isinstance(ev, P.Failed):
                raise RuntimeError(ev.error.get("message", "generation failed"))
        t_last = time.perf_counter()
        assert fin is not None
        st = fin.stats
        n = st.generated_tokens + (1 if fin.stop_token is not None else 0)  # count the end-of-turn token too
        return {"sampled": n, "tok_s": (n - 1) / (t_last - t_first) if n > 1 else 0.0, "ttft_s": t_first - t0,
                "engine_tok_s": st.tokens_per_s, "text": "".join(text).strip(), "finish": fin.finish_reason}

    def close(self) -> None:
        self.client.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shapes", default="smollm2,1b", help="scripted model shapes (desktop/selftest.py SHAPES)")
    ap.add_argument("--words", type=int, default=500, help="tokens in the scripted reply")
    ap.add_argument("--pairs", type=int, default=6)
    ap.add_argument("--ctx", type=int, default=2048)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results-gpu.json"))
    ap.add_argument("--allow-cpu", action="store_true", help="run on a CPU build too (to check this script)")
    ap.add_argument("--native-shapes", default="llama32-1b,llama3-8b",
                    help="random-weight shapes (bench/_random_gguf.py) to run against llama.cpp's own llama-completion "
                         "and llama-bench, all layers offloaded; needs LLAMA_TOOLS_BIN (a CUDA build of the tools: "
                         "scripts/gpu_bench_device.sh); empty: skip")
    ap.add_argument("--native-tokens", type=int, default=256)
    args = ap.parse_args()

    import llama_cpp

    from desktop.engine.inference import protocol as P
    from desktop.engine.inference.llama_backend import default_threads
    from desktop.selftest import _bench_reply, write_scripted_model

    if not llama_cpp.llama_supports_gpu_offload() and not args.allow_cpu:
        print("bench-gpu: this llama-cpp-python has no GPU offload (build one: scripts/build_llama.sh cuda --install)",
              file=sys.stderr)
        return 2
    threads = default_threads()
    d = P.Generate(id="defaults")
    sampling = dict(temperature=0.0, top_k=d.top_k, top_p=d.top_p, min_p=d.min_p, repeat_penalty=d.repeat_penalty)
    res: dict[str, Any] = {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "gpu": gpu_name(),
        "cpu": platform.processor() or platform.machine(), "python": platform.python_version(),
        "llama_cpp_python": llama_cpp.__version__, "threads": threads, "n_ctx": args.ctx, "n_batch": args.batch,
        "sampling": sampling, "pairs": args.pairs, "models": {},
    }
    tmp = tempfile.TemporaryDirectory(prefix="bench-gpu-")
    for shape in [s for s in args.shapes.split(",") if s]:
        path, expected = write_scripted_model(Path(tmp.name) / f"{shape}.gguf", shape, _bench_reply(args.words))
        size_mb = path.stat().st_size / 1e6
        raw = RawSide(str(path), args.ctx, threads, args.batch)
        rawpf = RawSide(str(path), args.ctx, threads, args.batch, prefilter=True)
        app = AppSide(str(path), args.ctx, threads, args.batch)
        print(f"{shape}: {size_mb:.0f} MB, app backend {app.loaded.backend}, {app.loaded.n_gpu_layers}/"
              f"{app.loaded.gpu_layers_total} layers on the GPU ({app.loaded.gpu_reason})", flush=True)
        try:
            for side in (raw, rawpf, app):
                side.run(sampling, args.words + 8)  # warm-up: CUDA graphs, allocations
            # The penalty-free chain too: what the repeat penalty costs per token in llama.cpp's stock sampler.
            nopen = dict(sampling, repeat_penalty=1.0)
            sides = {"raw": (raw, sampling), "app": (app, sampling), "raw_prefilter": (rawpf, sampling),
                     "raw_nopenalty": (raw, nopen)}
            pairs = []
            for i in range(args.pairs):
                order = ["raw", "app", "raw_prefilter", "raw_nopenalty"]
                if i % 2:
                    order.reverse()
                got = {name: sides[name][0].run(sides[name][1], args.words + 8) for name in order}
                r, a, rp = got["raw"], got["app"], got["raw_prefilter"]
                pairs.append({**got, "ratio": a["tok_s"] / r["tok_s"], "ratio_same_chain": a["tok_s"] / rp["tok_s"]})
                print(f"  pair {i + 1}: raw {r['tok_s']:.1f}, app {a['tok_s']:.1f} (engine {a['engine_tok_s']:.1f}) "
                      f"tok/s -> {pairs[-1]['ratio']:.3f}; raw with the app's chain {rp['tok_s']:.1f} -> "
                      f"{pairs[-1]['ratio_same_chain']:.3f}; raw without the repeat penalty "
                      f"{got['raw_nopenalty']['tok_s']:.1f}; {a['sampled']} / {r['sampled']} tokens", flush=True)
            same = all(p[k]["text"] == expected for p in pairs for k in ("raw", "app", "raw_prefilter"))
            res["models"][shape] = {
                "size_mb": round(size_mb, 1), "backend": app.loaded.backend,
                "gpu_layers": f"{app.loaded.n_gpu_layers}/{app.loaded.gpu_layers_total}",
                "tokens": pairs[0]["app"]["sampled"], "ratio": statistics.median(p["ratio"] for p in pairs),
                "ratios": [round(p["ratio"], 4) for p in pairs],
                "raw_tok_s": statistics.median(p["raw"]["tok_s"] for p in pairs),
                "app_tok_s": statistics.median(p["app"]["tok_s"] for p in pairs),
                "engine_tok_s": statistics.median(p["app"]["engine_tok_s"] for p in pairs),
                "raw_nopenalty_tok_s": statistics.median(p["raw_nopenalty"]["tok_s"] for p in pairs),
                "raw_prefilter_tok_s": statistics.median(p["raw_prefilter"]["tok_s"] for p in pairs),
                "ratio_same_chain": statistics.median(p["ratio_same_chain"] for p in pairs),
                "ratios_same_chain": [round(p["ratio_same_chain"], 4) for p in pairs],
                "same_text": same,
            }
            m = res["models"][shape]
            print(f"  {shape}: ratio {m['ratio']:.3f} (app {m['app_tok_s']:.1f} / raw {m['raw_tok_s']:.1f} tok/s), "
                  f"with the same sampler chain {m['ratio_same_chain']:.3f}; exact scripted text: {same}", flush=True)
        finally:
            app.close()
            raw.close()
            rawpf.close()
    native_shapes = [s for s in args.native_shapes.split(",") if s]
    if native_shapes and os.environ.get("LLAMA_TOOLS_BIN"):
        from bench._llama_tools import bench_native
        from bench._random_gguf import write_random_llama3

        # Shared with bench/_ctx1m.py (the 8B file is 4.3 GB): written once per machine.
        models = Path(os.environ.get("BENCH_MODELS_DIR", tmp.name))
        models.mkdir(parents=True, exist_ok=True)
        targets = []
        for shape in native_shapes:
            path = models / f"random-{shape}.gguf"
            if not path.exists():
                write_random_llama3(path, shape)
            targets.append((shape, path, "Write a long story about a dragon."))
        bench_native(targets, res, pairs=max(2, args.pairs // 2), n=args.native_tokens, threads=threads,
                     seed=42, n_ctx=args.ctx, build=False, ngl=999)
    elif native_shapes:
        print("bench-gpu: LLAMA_TOOLS_BIN is not set: no llama-completion / llama-bench comparison", flush=True)
    Path(args.out).write_text(json.dumps(res, indent=1))
    print(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
