"""The decode thread count follows the cores other programs leave free (inference/threads.py), between tokens."""
from __future__ import annotations

import threading
from pathlib import Path

import pytest

from desktop.engine.inference import threads
from desktop.engine.inference.client import new_id
from desktop.engine.inference.llama_backend import LlamaBackend
from desktop.engine.inference.llama_load import default_threads
from desktop.engine.inference.protocol import Finished, Generate, Load
from tests.fixtures import tiny_gguf


def _governor(load: list[float], ceiling: int = 2, n_cpus: int = 2) -> tuple[threads.ThreadGovernor, list[int]]:
    applied: list[int] = []
    g = threads.ThreadGovernor(ceiling, applied.append, interval_s=0.0, others=lambda: load[0], n_cpus=n_cpus)
    return g, applied


def test_one_busy_core_leaves_one_thread_and_an_idle_machine_all_of_them() -> None:
    load = [0.05]  # an idle desktop's background
    g, applied = _governor(load)
    assert g.tick() == 2 and applied == []  # idle: nothing changes, nothing is lost
    load[0] = 1.0  # a plain busy loop elsewhere
    assert g.tick() == 1 and applied == [1]
    assert g.tick() == 1 and applied == [1]  # told once
    load[0] = 0.1  # the loop ended
    assert g.tick() == 2 and applied == [1, 2]


def test_a_core_counts_as_free_only_when_most_of_it_is_left() -> None:
    g, _ = _governor([0.0], ceiling=8, n_cpus=8)
    assert [g.target(x) for x in (0.0, 0.25, 0.35, 1.0, 2.5, 7.9, 12.0)] == [8, 8, 7, 7, 5, 1, 1]


def test_the_load_is_sampled_at_most_once_per_interval() -> None:
    calls = []

    def others() -> float:
        calls.append(1)
        return 0.0

    g = threads.ThreadGovernor(2, lambda n: None, interval_s=60.0, others=others, n_cpus=2)
    for _ in range(1000):
        g.tick()
    assert len(calls) == 1  # the first tick (before the prompt); the next one a minute later


def test_the_sampler_counts_other_programs_and_leaves_out_the_engines_own_time(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Per-CPU busy time minus this process's CPU time, over the wall time between two samples."""
    from collections import namedtuple

    cpu = namedtuple("cpu", "user nice system idle iowait")
    proc = namedtuple("proc", "user system")
    state = {"t": 100.0, "busy": [0.0, 0.0], "own": 0.0}
    monkeypatch.setattr(threads.time, "monotonic", lambda: state["t"])
    monkeypatch.setattr(threads.psutil, "cpu_times",
                        lambda percpu: [cpu(b, 0.0, 0.0, 1000.0 - b, 5.0) for b in state["busy"]])
    monkeypatch.setattr(threads.psutil.Process, "cpu_times", lambda self: proc(state["own"], 0.0))
    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda pid: {0, 1})
    s = threads.CpuSampler()
    # One second: both cores fully busy, 1.2 cores of it the engine's own threads.
    state["t"] += 1.0
    state["busy"] = [1.0, 1.0]
    state["own"] = 1.2
    assert s.others() == pytest.approx(0.8)
    # The next second: only the engine (1 core) runs.
    state["t"] += 1.0
    state["busy"] = [2.0, 1.0]
    state["own"] = 2.2
    assert s.others() == pytest.approx(0.0)


@pytest.mark.skipif(default_threads() < 2, reason="one core: there is no thread count to adapt")
def test_the_engine_decodes_on_the_free_cores_between_tokens(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import llama_cpp

    busy = [0.0]
    monkeypatch.setattr(threads.CpuSampler, "others", lambda self: busy[0])
    model = tiny_gguf.make_llama3(tmp_path / "m.gguf", reply="one two three four five six seven eight")
    b = LlamaBackend()
    try:
        b.load(Load(id=new_id("load"), model_path=str(model.path), n_ctx=512, n_threads="auto"))
        assert b.threads is not None and b.threads.n == default_threads()
        ctx = b.llm._ctx.ctx
        b.threads.interval_s = 0.0  # decide before every token

        seen: list[int] = []
        req = Generate(id=new_id("gen"), messages=[{"role": "user", "content": "hi"}], max_tokens=8, temperature=0)
        for i, ev in enumerate(b.generate(req, threading.Event())):
            seen.append(int(llama_cpp.llama_n_threads(ctx)))
            if i == 1:
                busy[0] = b.threads.n_cpus - 1.0  # all cores but one busy elsewhere
            if isinstance(ev, Finished):
                break
        assert seen[0] == default_threads()  # idle: the load-time count, nothing lost
        assert seen[-1] == 1 and b.threads.changes == 1  # changed mid-answer, between tokens
    finally:
        b.close()

    b2 = LlamaBackend()
    try:
        b2.load(Load(id=new_id("load"), model_path=str(model.path), n_ctx=512, n_threads=1))
        assert b2.threads is None  # a fixed count is the user's: not adapted
    finally:
        b2.close()


def test_the_default_count_never_exceeds_the_cores_this_process_may_use(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(threads.psutil, "cpu_count", lambda logical=True: 16)
    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda pid: {0, 1})  # e.g. taskset -c 0,1
    assert default_threads() == 2
    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda pid: set(range(16)))
    assert default_threads() == 15  # one left for the UI on a big machine
