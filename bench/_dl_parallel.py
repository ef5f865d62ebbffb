"""Parallel downloads against a per-connection cap (bench/run.py, section "parallel"; issue 16, goal 2).

A real CDN caps each connection; the app should not be capped with it. A loopback hub in its own process
(bench/_hub_proc.py) caps every GET at ``cap`` bytes/s; the app's whole verified download (listing, ranged
connections, sha256, cache link) of a ``mb`` MB GGUF runs with one connection and with N, alternating. The target
compares N connections with what one connection allows (size / cap), and the measured one-connection time shows
that the cap, not the machine, sets that pace.
"""
from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path
from typing import Any, Callable

from bench._hub_client import HubProc


def bench_parallel(tmp: Path, make_blob: Callable[[Path, int], Path], res: dict[str, Any], *, mb: int = 65,
                   cap: int = 8_000_000, counts: tuple[int, ...] = (4, 8), pairs: int = 2) -> None:
    import huggingface_hub.constants as hc

    from desktop.engine.hub import downloads

    repo, name = "bench/capped-GGUF", "capped.Q4_1.gguf"
    blob = make_blob(tmp / "capped.gguf", mb)
    size = blob.stat().st_size
    srv = HubProc(repo, name, blob)
    saved = {k: os.environ.get(k) for k in ("HF_ENDPOINT", "HF_HUB_OFFLINE", "HF_HUB_CACHE", "HF_HOME",
                                            "XDG_DATA_HOME")}
    saved_hc = (hc.HF_HUB_CACHE, hc.ENDPOINT)
    try:
        url, cmd = srv.url, srv.cmd
        os.environ["HF_ENDPOINT"] = url
        os.environ.pop("HF_HUB_OFFLINE", None)
        hc.ENDPOINT = url
        cmd(f"throttle {cap}")

        def once(tag: str, conns: int) -> float:
            """Seconds to the file verified and linked in the cache, over ``conns`` connections."""
            home = tmp / f"cap-{tag}"
            for sub in ("hf/hub", "data"):
                (home / sub).mkdir(parents=True, exist_ok=True)
            os.environ.update(HF_HOME=str(home / "hf"), HF_HUB_CACHE=str(home / "hf" / "hub"),
                              XDG_DATA_HOME=str(home / "data"))
            hc.HF_HUB_CACHE = str(home / "hf" / "hub")
            marks: dict[str, float] = {}

            def on_event(ev: Any) -> None:
                if ev.state == "repairing" and "end" not in marks:  # right after the verified cache link
                    marks["end"] = time.perf_counter()

            cmd("clear")
            t0 = time.perf_counter()
            downloads.run_download(repo, quant="Q4_1", on_event=on_event, cancel=threading.Event(),
                                   connections=conns)
            t = marks.get("end", time.perf_counter()) - t0
            gets = cmd(f"log {name}")
            shutil.rmtree(home, ignore_errors=True)
            assert sum(g["sent"] for g in gets) == size, "every byte once"
            return t

        single: list[float] = []
        multi: dict[int, list[float]] = {n: [] for n in counts}
        for i in range(pairs):
            order = [1, *counts] if i % 2 == 0 else [*counts, 1]
            for n in order:
                t = once(f"{i}-{n}", n)
                (single if n == 1 else multi[n]).append(t)
                print(f"  capped at {cap / 1e6:.0f} MB/s per connection: {n} connection(s) {size / t / 1e6:.1f} MB/s "
                      f"({t:.2f} s)", flush=True)
        allowed_s = size / cap
        res["parallel"] = {
            "size_mb": size / 1e6, "cap_mb_s": cap / 1e6, "one_allows_s": allowed_s,
            "single_s": sorted(single)[len(single) // 2],
            "by_connections": {str(n): {"s": sorted(v)[len(v) // 2], "runs": v,
                                        "speedup_vs_allowed": allowed_s / (sorted(v)[len(v) // 2])}
                               for n, v in multi.items()},
            "default_connections": _default_connections(),
        }
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        hc.HF_HUB_CACHE, hc.ENDPOINT = saved_hc
        srv.close()


def _default_connections() -> int:
    from desktop.engine import paths

    return paths.download_connections()
