"""What memory this machine offers a model: RAM, NVIDIA VRAM, Apple unified memory.

Plain Python, no llama_cpp: the fit estimate (the caller's process: the CLI, the app's GUI-process workers) and
the GPU-layer choice (the engine process) both read it. NVIDIA numbers come from NVML (nvidia-ml-py), which is
only a thin wrapper over the driver's libnvidia-ml, so it is cheap and fails cleanly on machines without the
driver. Runs on any thread.
"""
from __future__ import annotations

import os
import platform
from dataclasses import asdict, dataclass, field
from typing import Any

import psutil

GiB = 1024 ** 3


@dataclass(frozen=True)
class GPU:
    index: int
    name: str
    vendor: str  # "nvidia" | "apple"
    vram_total: int
    vram_free: int


@dataclass(frozen=True)
class Hardware:
    ram_total: int
    ram_available: int
    cpu_count: int
    gpus: tuple[GPU, ...] = ()
    apple_silicon: bool = False
    # On Apple silicon the GPU works out of system RAM: there is no separate VRAM pool to fill first.
    unified_memory: bool = False
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def vram_free(self) -> int:
        return sum(g.vram_free for g in self.gpus)

    @property
    def vram_total(self) -> int:
        return sum(g.vram_total for g in self.gpus)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["vram_free"] = self.vram_free
        d["vram_total"] = self.vram_total
        return d


def _nvidia_gpus() -> tuple[list[GPU], str | None]:
    try:
        import pynvml  # nvidia-ml-py
    except ImportError:
        return [], "nvidia-ml-py is not installed"
    try:
        pynvml.nvmlInit()
    except Exception as exc:  # noqa: BLE001 - NVMLError_LibraryNotFound/DriverNotLoaded: no NVIDIA GPU here
        return [], f"no NVIDIA driver ({type(exc).__name__})"
    gpus: list[GPU] = []
    try:
        for i in range(pynvml.nvmlDeviceGetCount()):
            h = pynvml.nvmlDeviceGetHandleByIndex(i)
            name = pynvml.nvmlDeviceGetName(h)
            if isinstance(name, bytes):
                name = name.decode(errors="replace")
            mem = pynvml.nvmlDeviceGetMemoryInfo(h)
            gpus.append(GPU(i, str(name), "nvidia", int(mem.total), int(mem.free)))
    except Exception as exc:  # noqa: BLE001
        return gpus, f"NVML query failed ({exc})"
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception:  # noqa: BLE001
            pass
    return gpus, None


def _fake_from_env() -> Hardware | None:
    # Tests and "what if" estimates: DESKTOP_CHAT_FAKE_HW="ram=16G,vram=8G" (sizes in G/M/bytes).
    spec = os.environ.get("DESKTOP_CHAT_FAKE_HW")
    if not spec:
        return None
    vals: dict[str, int] = {}
    for part in spec.split(","):
        key, _, raw = part.partition("=")
        raw = raw.strip().upper()
        mult = {"G": GiB, "M": 1024 ** 2}.get(raw[-1:], 1)
        vals[key.strip()] = int(float(raw.rstrip("GM")) * mult)
    ram = vals.get("ram", 16 * GiB)
    vram = vals.get("vram", 0)
    gpus = (GPU(0, "simulated GPU", "nvidia", vram, vram),) if vram else ()
    return Hardware(ram, vals.get("ram_available", ram), os.cpu_count() or 1, gpus, notes=("simulated",))


def detect() -> Hardware:
    """RAM and GPUs of this machine now (VRAM free changes as other programs run, so call it fresh)."""
    fake = _fake_from_env()
    if fake:
        return fake
    vm = psutil.virtual_memory()
    apple = platform.system() == "Darwin" and platform.machine() == "arm64"
    notes: list[str] = []
    gpus: list[GPU] = []
    if apple:
        # Metal can wire about 2/3 to 3/4 of unified memory for the GPU by default; llama.cpp reports the
        # same recommendedMaxWorkingSetSize. Use 3/4 of total, capped by what is free.
        usable = int(vm.total * 0.75)
        gpus.append(GPU(0, "Apple GPU (unified memory)", "apple", usable, min(usable, int(vm.available))))
    else:
        found, note = _nvidia_gpus()
        gpus.extend(found)
        if note:
            notes.append(note)
    return Hardware(int(vm.total), int(vm.available), os.cpu_count() or 1, tuple(gpus), apple, apple, tuple(notes))
