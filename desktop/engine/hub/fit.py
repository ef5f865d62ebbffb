"""Will this quant run here? An estimate a user can check by hand.

total = weights (the file size) + KV cache for the context + a stated overhead, held against the free
VRAM and the available RAM. KV bytes per token = 2 (K and V) x layers x kv_heads x head_dim x bytes per
element (f16 = 2; q8_0 and q4_0 blocks are 34 and 18 bytes per 32 values). Plain Python, any thread.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from desktop.engine.hub.hardware import GiB, Hardware

KV_BYTES_PER_ELEMENT = {"f16": 2.0, "q8_0": 34 / 32, "q4_0": 18 / 32}
# Compute buffers, the CUDA/Metal context and the app's own process: measured llama.cpp runs sit
# between 0.3 and 1 GiB for 7B-70B models at batch 512, so a fixed 1 GiB is a conservative round number.
OVERHEAD_BYTES = 1 * GiB
# Leave this much VRAM free for the desktop and other programs when planning offload.
VRAM_RESERVE_BYTES = GiB // 2


@dataclass(frozen=True)
class Arch:
    layers: int
    kv_heads: int
    head_dim: int
    context_native: int | None = None
    experts: int | None = None

    @classmethod
    def from_numbers(cls, d: dict[str, Any]) -> "Arch | None":
        try:
            return cls(int(d["layers"]), int(d["kv_heads"]), int(d["head_dim"]),
                       int(d["context_native"]) if d.get("context_native") else None,
                       int(d["experts"]) if d.get("experts") else None)
        except (KeyError, TypeError, ValueError):
            return None


@dataclass(frozen=True)
class Fit:
    verdict: str  # "fits on GPU" | "partial offload: N of M layers" | "CPU only" | "won't fit"
    kind: str  # "gpu" | "partial" | "cpu" | "none" | "unknown"
    gpu_layers: int
    total_layers: int
    n_ctx: int
    kv_type: str
    weights_bytes: int
    kv_bytes: int
    kv_bytes_per_token: int
    overhead_bytes: int
    total_bytes: int
    vram_free: int
    ram_available: int
    explanation: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def kv_bytes_per_token(arch: Arch, kv_type: str = "f16") -> int:
    return int(2 * arch.layers * arch.kv_heads * arch.head_dim * KV_BYTES_PER_ELEMENT[kv_type])


def _gib(n: float) -> str:
    return f"{n / GiB:.1f} GiB"


def estimate(weights_bytes: int, arch: Arch | None, n_ctx: int, hw: Hardware, kv_type: str = "f16") -> Fit:
    """The verdict for a file of ``weights_bytes`` at context ``n_ctx`` on ``hw``."""
    if arch is None:
        total = weights_bytes + OVERHEAD_BYTES
        kind = "cpu" if total <= hw.ram_available else "none"
        return Fit("unknown (no architecture numbers)", "unknown", 0, 0, n_ctx, kv_type, weights_bytes, 0, 0,
                   OVERHEAD_BYTES, total, hw.vram_free, hw.ram_available,
                   f"weights {_gib(weights_bytes)} + overhead {_gib(OVERHEAD_BYTES)}; KV cache unknown "
                   f"({'fits' if kind == 'cpu' else 'exceeds'} {_gib(hw.ram_available)} RAM available)")
    per_tok = kv_bytes_per_token(arch, kv_type)
    kv = per_tok * n_ctx
    total = weights_bytes + kv + OVERHEAD_BYTES
    layers = arch.layers
    vram = max(0, hw.vram_free - VRAM_RESERVE_BYTES) if hw.gpus else 0
    ram = hw.ram_available
    sums = (f"weights {_gib(weights_bytes)} + KV {_gib(kv)} ({n_ctx:,} tokens x {per_tok:,} B, {kv_type}) "
            f"+ overhead {_gib(OVERHEAD_BYTES)} = {_gib(total)}")
    where = f"free VRAM {_gib(hw.vram_free)}, available RAM {_gib(ram)}"

    def fit(verdict: str, kind: str, gpu_layers: int, why: str) -> Fit:
        return Fit(verdict, kind, gpu_layers, layers, n_ctx, kv_type, weights_bytes, kv, per_tok,
                   OVERHEAD_BYTES, total, hw.vram_free, ram, f"{sums}; {where}: {why}")

    if hw.gpus and total <= vram:
        return fit("fits on GPU", "gpu", layers, "everything fits in VRAM")
    per_layer = (weights_bytes + kv) / max(layers, 1)
    # Apple silicon shares one pool between GPU and CPU, so splitting layers gains nothing there.
    if vram > OVERHEAD_BYTES and not hw.unified_memory:
        n = min(layers, int((vram - OVERHEAD_BYTES) // per_layer))
        rest = total - n * per_layer
        if n >= 1 and rest <= ram:
            return fit(f"partial offload: {n} of {layers} layers", "partial", n,
                       f"{n} layers ({_gib(n * per_layer)}) on the GPU, {_gib(rest)} in RAM")
    if total <= ram:
        why = "no usable GPU" if not hw.gpus else "too little VRAM to offload a layer"
        return fit("CPU only", "cpu", 0, f"fits in RAM ({why})")
    short = total - ram - (vram if hw.gpus else 0)
    return fit("won't fit", "none", 0, f"short by {_gib(max(short, 0))}; try a smaller quant or context")
