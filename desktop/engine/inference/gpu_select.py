"""How many layers go to the GPU, and why: the "auto" choice the engine makes at load time.

Inputs are what the loaded llama.cpp library can do (:class:`LibraryInfo`, read by ``llama_backend`` through
ggml's backend registry), what the machine has (:class:`hardware.Hardware`: NVML VRAM, Apple unified memory)
and the model's shape (from the GGUF header). The arithmetic is the same as ``fit.estimate``'s, so the
repo page's fit verdict and the engine's choice agree:

    per layer  = file size / (n_layer + 1)          (the +1 is the output layer, which llama.cpp offloads last)
               + the KV cache / (n_layer + 1)       (``fit.Arch.kv_bytes``: sliding-window layers hold less)
    budget     = free VRAM - a reserve for the desktop - the overhead (``fit.overhead_bytes``: compute
                 buffers, larger without flash attention)
    gpu layers = min(n_layer + 1, budget // per layer)

Also here: where the llama.cpp libraries live (the primary one, and the CPU-only copy a GPU bundle ships
beside it for machines where the GPU library cannot load). Plain Python, no llama_cpp import; runs in the
engine process (and in tests).
"""
from __future__ import annotations

import importlib.util
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from desktop.engine.hub.fit import (DEFAULT_UBATCH, KV_BYTES_PER_ELEMENT, OVERHEAD_BYTES, VRAM_RESERVE_BYTES, Arch,
                                    overhead_bytes)
from desktop.engine.hub.hardware import GiB, Hardware

DEVICE_KINDS = {0: "cpu", 1: "gpu", 2: "igpu", 3: "accel", 4: "meta"}  # enum ggml_backend_dev_type
# ggml's backend registry names -> what the status bar says.
_GPU_BACKENDS = {"CUDA": "CUDA", "METAL": "Metal", "MTL": "Metal", "VULKAN": "Vulkan", "ROCM": "ROCm",
                 "HIP": "ROCm", "SYCL": "SYCL", "MUSA": "MUSA", "OPENCL": "OpenCL", "CANN": "CANN"}


@dataclass(frozen=True)
class Device:
    """One ggml backend device as the loaded library reports it (memory in bytes)."""

    name: str
    description: str
    kind: str  # "cpu" | "gpu" | "igpu" | "accel"
    free: int
    total: int


@dataclass(frozen=True)
class LibraryInfo:
    """What the llama.cpp library loaded in this process supports."""

    version: str
    system_info: str
    gpu_offload: bool  # llama_supports_gpu_offload()
    backends: tuple[str, ...] = ()  # ggml backend registry names, e.g. ("CUDA", "CPU")
    devices: tuple[Device, ...] = ()
    lib_dir: str = ""
    # Why the primary (GPU) library was not used, when the CPU copy was loaded instead.
    fallback_reason: str = ""

    @property
    def gpu_backend(self) -> str | None:
        """The GPU backend compiled into the library ("CUDA", "Metal", ...), or None for a CPU build."""
        for name in self.backends:
            found = _GPU_BACKENDS.get(name.upper())
            if found:
                return found
        upper = self.system_info.upper()
        for key, name in _GPU_BACKENDS.items():
            if f"{key} :" in upper or f"{key}:" in upper:
                return name
        return None

    @property
    def gpu_devices(self) -> tuple[Device, ...]:
        return tuple(d for d in self.devices if d.kind in ("gpu", "igpu"))

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "gpu_offload": self.gpu_offload, "backends": list(self.backends),
                "devices": [d.__dict__ for d in self.devices], "lib_dir": self.lib_dir,
                "fallback_reason": self.fallback_reason, "gpu_backend": self.gpu_backend}


@dataclass(frozen=True)
class ModelShape:
    file_size: int
    n_layer: int
    n_embd: int = 0
    n_head: int = 0
    n_head_kv: int = 0
    head_dim: int = 0  # key length from the file (Gemma 3: 256); 0: n_embd / n_head
    head_dim_v: int = 0
    sliding_window: int = 0
    swa_layers: int = 0
    n_vocab: int = 0

    @classmethod
    def from_report(cls, report: Any) -> "ModelShape":
        """From a ``gguf_doctor.Report``; a shard of a split model stands for all of its shards."""
        size = int(report.file_size) * max(1, int(report.split_count or 1))
        n = report.numbers
        return cls(size, int(report.block_count or 0), int(report.embedding_length or 0),
                   int(report.head_count or 0), int(report.head_count_kv or report.head_count or 0),
                   int(n.get("head_dim") or 0), int(n.get("head_dim_v") or 0), int(n.get("sliding_window") or 0),
                   int(n.get("swa_layers") or 0), int(report.vocab_size or 0))

    def arch(self) -> Arch | None:
        """The shape as ``fit.Arch``, so the engine's choice and the repo page's fit verdict agree."""
        if not (self.n_layer and self.n_head_kv and (self.head_dim or (self.n_embd and self.n_head))):
            return None
        head_dim = self.head_dim or self.n_embd // self.n_head
        return Arch(self.n_layer, self.n_head_kv, head_dim, None, None, self.head_dim_v, self.sliding_window,
                    self.swa_layers, self.n_head, self.n_embd, self.n_vocab)

    def kv_bytes(self, n_ctx: int, kv_type: str = "f16", swa_full: bool = True) -> int:
        a = self.arch()
        return a.kv_bytes(n_ctx, kv_type if kv_type in KV_BYTES_PER_ELEMENT else "f16", swa_full) if a else 0

    def kv_bytes_per_layer(self, n_ctx: int, kv_type: str = "f16", swa_full: bool = True) -> int:
        """The average over layers (sliding-window layers hold fewer cells than the others)."""
        return self.kv_bytes(n_ctx, kv_type, swa_full) // self.n_layer if self.n_layer else 0

    def overhead(self, n_ctx: int, flash_attn: bool | str = "auto", n_ubatch: int = DEFAULT_UBATCH) -> int:
        a = self.arch()
        return overhead_bytes(a, n_ctx, flash_attn, n_ubatch) if a else OVERHEAD_BYTES


@dataclass(frozen=True)
class GpuChoice:
    backend: str  # "CPU" or the GPU backend's name
    n_gpu_layers: int  # what llama.cpp is given
    total_layers: int  # n_layer + 1 (the output layer counts)
    reason: str  # one line for the status bar and --selftest
    details: dict[str, Any] = field(default_factory=dict)


def gib(n: float) -> str:
    return f"{n / GiB:.1f} GiB"


def _memory(lib: LibraryInfo, hw: Hardware | None) -> tuple[int, int] | None:
    """(free, total) VRAM the GPU backend can use, from ggml's own devices first, else from NVML/Apple."""
    devs = [d for d in lib.gpu_devices if d.total > 0]
    if devs:
        return sum(d.free for d in devs), sum(d.total for d in devs)
    if hw is not None and hw.gpus:
        return hw.vram_free, hw.vram_total
    return None


def choose_gpu_layers(requested: int | str, lib: LibraryInfo, shape: ModelShape, n_ctx: int,
                      kv_type: str = "f16", hw: Hardware | None = None, *, flash_attn: bool | str = "auto",
                      n_ubatch: int = DEFAULT_UBATCH, swa_full: bool = True) -> GpuChoice:
    """The layer count for ``requested`` ("auto", -1 for all, or a number) and the reason, in one line."""
    choice = _choose(requested, lib, shape, n_ctx, kv_type, hw, shape.overhead(n_ctx, flash_attn, n_ubatch),
                     swa_full)
    if not lib.fallback_reason:
        return choice
    if choice.backend == "CPU":
        return GpuChoice("CPU", 0, choice.total_layers, "CPU: the GPU library failed to load, using the CPU build "
                         f"({lib.fallback_reason})", choice.details)
    return GpuChoice(choice.backend, choice.n_gpu_layers, choice.total_layers,
                     f"{choice.reason} (the first library failed to load: {lib.fallback_reason})", choice.details)


def _choose(requested: int | str, lib: LibraryInfo, shape: ModelShape, n_ctx: int, kv_type: str,
            hw: Hardware | None, overhead: int = OVERHEAD_BYTES, swa_full: bool = True) -> GpuChoice:
    total = shape.n_layer + 1 if shape.n_layer > 0 else 0
    name = lib.gpu_backend

    def cpu(why: str, **details: Any) -> GpuChoice:
        return GpuChoice("CPU", 0, total, f"CPU: {why}", details)

    if name is None:
        return cpu("this llama.cpp build has no GPU offload")
    if not lib.gpu_offload or (lib.devices and not lib.gpu_devices):
        return cpu(f"the {name} library found no usable GPU")
    if requested != "auto":
        n = int(requested)
        if n == 0:
            return cpu("GPU offload is off (gpu_layers: 0)")
        n = total if n < 0 or (total and n > total) else n
        return GpuChoice(name, n if total else -1, total,
                         f"{name}: {n}/{total} layers (set by the profile)" if total else f"{name}: all layers (set)")
    if total == 0:
        return GpuChoice(name, -1, 0, f"{name}: all layers (the file does not say how many)")
    mem = _memory(lib, hw)
    if mem is None:
        return GpuChoice(name, total, total, f"{name}: {total}/{total} layers (free VRAM unknown)")
    free, vram_total = mem
    per_layer_w = shape.file_size / total
    kv_all = shape.kv_bytes(n_ctx, kv_type, swa_full)
    per_layer = per_layer_w + kv_all / total  # the output layer holds no KV
    need_all = shape.file_size + kv_all + overhead
    budget = free - VRAM_RESERVE_BYTES - overhead
    details = dict(free=free, total=vram_total, per_layer=int(per_layer), need_all=int(need_all))
    if need_all <= free - VRAM_RESERVE_BYTES:
        return GpuChoice(name, total, total, f"{name}: {total}/{total} layers, {gib(need_all)} of "
                         f"{gib(free)} free", details)
    n = max(0, min(total, int(budget // per_layer))) if per_layer > 0 else 0
    if n == 0:
        return cpu(f"{gib(free)} of VRAM free, too little for one layer ({gib(per_layer)}) plus "
                   f"{gib(overhead + VRAM_RESERVE_BYTES)} reserve", **details)
    return GpuChoice(name, n, total, f"{name}: {n}/{total} layers ({gib(need_all)} needed, {gib(free)} free); "
                     "the rest on the CPU", details)


# ---------------------------------------------------------------------------------------------- libraries


def llama_package_dir() -> Path | None:
    """llama_cpp's package folder, found without importing it (frozen: under sys._MEIPASS)."""
    meipass = getattr(sys, "_MEIPASS", None)
    if meipass and (Path(meipass) / "llama_cpp").is_dir():
        return Path(meipass) / "llama_cpp"
    spec = importlib.util.find_spec("llama_cpp")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def _has_llama(d: Path) -> bool:
    return any((d / n).exists() for n in ("libllama.so", "libllama.dylib", "llama.dll"))


def cpu_fallback_dir(failed: str | os.PathLike[str] | None) -> Path | None:
    """Where to load llama.cpp from when the library in ``failed`` (None: the default) would not load.

    In order: ``DESKTOP_CHAT_CPU_LIB_PATH``; ``llama_cpp/lib-cpu`` (the CPU copy a GPU bundle ships beside the
    GPU libraries); the package's own ``llama_cpp/lib`` when an explicit ``LLAMA_CPP_LIB_PATH`` failed.
    """
    pkg = llama_package_dir()
    failed_dir = Path(failed).resolve() if failed else (pkg / "lib").resolve() if pkg else None
    candidates: list[Path] = []
    env = os.environ.get("DESKTOP_CHAT_CPU_LIB_PATH")
    if env:
        candidates.append(Path(env))
    if pkg is not None:
        candidates += [pkg / "lib-cpu", pkg / "lib"]
    for c in candidates:
        if c.is_dir() and _has_llama(c) and c.resolve() != failed_dir:
            return c
    return None
