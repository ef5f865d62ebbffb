"""How many threads llama.cpp decodes with: as many as there are cores other programs leave free, re-decided
between tokens (engine process, main thread).

llama.cpp's threads meet at a barrier after every graph step, so one thread that shares its core with another
program holds all the others up: with both cores of a two-core machine in use and one of them also busy with a
compile, two threads decode far slower than one thread on the free core. ``ThreadGovernor`` reads the per-CPU
load (psutil), takes the engine's own share out of it, and hands llama.cpp (``llama_set_n_threads``, through
the ``apply`` callback ``llama_backend`` builds) the number of cores that are mostly free, never more than the
load-time count and never fewer than one. A sample costs two reads of /proc; one is taken at most every
``interval_s``, so a token pays a clock read.
"""
from __future__ import annotations

import os
import time
from typing import Callable

import psutil

# A core counts as free when at least this much of it is left by other programs: a busy loop elsewhere uses
# ~1.0 of a core, an idle desktop's background a few hundredths. Decoding threads wait for each other after
# every step, so a core that is a third busy already slows all of them.
FREE_ABOVE = 0.7


class CpuSampler:
    """The CPU time other programs used since the last call, in cores (1.0: one core fully busy)."""

    def __init__(self) -> None:
        try:
            self.cpus = sorted(os.sched_getaffinity(0))  # the cores this process may run on
        except (AttributeError, OSError):  # pragma: no cover - not Linux
            self.cpus = list(range(psutil.cpu_count() or 1))
        self._proc = psutil.Process()
        self._last = self._read()

    def _read(self) -> tuple[float, float, float]:
        """(monotonic time, busy CPU seconds of this process's cores, CPU seconds of this process)."""
        per_cpu = psutil.cpu_times(percpu=True)
        busy = 0.0
        for i in self.cpus:
            if i < len(per_cpu):
                t = per_cpu[i]
                busy += sum(t) - t.idle - getattr(t, "iowait", 0.0)
        own = self._proc.cpu_times()
        return time.monotonic(), busy, own.user + own.system

    def others(self) -> float:
        now, busy, own = self._read()
        t0, busy0, own0 = self._last
        self._last = (now, busy, own)
        wall = now - t0
        if wall <= 0:
            return 0.0
        return max(0.0, ((busy - busy0) - (own - own0)) / wall)


class ThreadGovernor:
    """Decides the decode thread count between tokens; calls ``apply(n)`` when it changes.

    ``others`` returns the cores other programs used since its last call (``CpuSampler.others``); ``n_cpus`` is
    how many cores this process may use.
    """

    def __init__(self, ceiling: int, apply: Callable[[int], None], *, interval_s: float = 0.25,
                 sampler: CpuSampler | None = None, others: Callable[[], float] | None = None,
                 n_cpus: int | None = None) -> None:
        if others is None:
            sampler = sampler or CpuSampler()
            others = sampler.others
            n_cpus = n_cpus or len(sampler.cpus)
        self.ceiling = max(1, ceiling)
        self.apply = apply
        self.interval_s = interval_s
        self._others = others
        self.n_cpus = n_cpus or (psutil.cpu_count() or 1)
        self.n = self.ceiling  # what llama.cpp was loaded with
        self._next = 0.0  # the first tick decides at once (before the first prompt)
        self.changes = 0

    def target(self, others: float) -> int:
        """Threads for ``others`` cores' worth of work elsewhere: the cores left at least ``FREE_ABOVE`` free."""
        free = self.n_cpus - others
        return max(1, min(self.ceiling, int(free + (1.0 - FREE_ABOVE))))

    def tick(self) -> int:
        """Between two decodes: re-decide at most every ``interval_s``. Returns the thread count now in use."""
        now = time.monotonic()
        if now < self._next:
            return self.n
        self._next = now + self.interval_s
        n = self.target(self._others())
        if n != self.n:
            self.n = n
            self.changes += 1
            self.apply(n)
        return self.n
