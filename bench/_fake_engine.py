"""The real engine host (desktop/engine/inference/host.py: protocol, chunk batching, pipes) over a scripted backend.

The backend emits one token of text every 1/FAKE_TOK_S seconds (sleeping in between, like a decode that
runs on other cores), so the pipeline's own CPU cost (host batching, JSON, pipe, client thread, GUI) can be
measured at a fixed token rate, free of the noise of a shared machine. Started by bench/run.py as the
MainWindow's engine command. Bench-only code.
"""
from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from desktop.engine.inference import host
from desktop.engine.inference import protocol as P

WORDS = "the Roman Empire grew from a city state into one of the largest empires of the ancient world ".split()


class ScriptedBackend:
    def __init__(self) -> None:
        self.loaded: P.Loaded | None = None

    def load(self, req: P.Load) -> P.Loaded:
        self.loaded = P.Loaded(id=req.id, model_path=req.model_path, n_ctx=req.n_ctx, n_ctx_train=req.n_ctx,
                               n_gpu_layers=0, backend="CPU", load_s=0.0, eog_ids=[], eot_128009_is_eog=None,
                               kv_overrides={}, description="scripted", llama_cpp_version="scripted")
        return self.loaded

    def close(self) -> None:
        self.loaded = None

    def generate(self, req: P.Generate, cancel: threading.Event) -> Iterator[Any]:
        rate = float(os.environ.get("FAKE_TOK_S", "90"))
        t0 = time.perf_counter()
        nxt = t0
        text = []
        for i in range(req.max_tokens):
            nxt += 1 / rate
            time.sleep(max(0.0, nxt - time.perf_counter()))
            piece = ("" if i == 0 else " ") + WORDS[i % len(WORDS)]
            text.append(piece)
            yield P.TokenChunk(req.id, piece, 1)
            if cancel.is_set():
                break
        total = time.perf_counter() - t0
        yield P.Finished(req.id, "".join(text), "length",
                         P.GenerationStats(ttft_s=1 / rate, prompt_tokens=1, prompt_eval_tokens=1,
                                           generated_tokens=len(text), tokens_per_s=len(text) / total,
                                           total_s=total, backend="CPU"))


def main() -> int:
    out_fd = os.dup(1)
    os.dup2(2, 1)
    out = os.fdopen(out_fd, "wb", buffering=0)
    sys.stdout = sys.stderr
    h = host._Host(out)
    h.backend = ScriptedBackend()
    h._backend_for = lambda _req: h.backend  # type: ignore[method-assign]
    threading.Thread(target=h.read_loop, args=(sys.stdin.buffer,), daemon=True).start()
    h.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
