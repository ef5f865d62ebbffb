"""Will this quant run here, at this context? An estimate a user can check by hand.

total = weights (the file size) + KV cache + overhead, held against the free VRAM and the available RAM.

* KV cache: for each layer, K and V cells x kv_heads x (key length + value length) x bytes per element
  (f16 = 2; q8_0 and q4_0 blocks are 34 and 18 bytes per 32 values). A layer with a sliding window holds
  min(context, window) cells (Gemma 2/3, Cohere 2: ``gguf.arch``), every other layer the whole context --
  when the profile sets ``load.swa_full: false``. llama-cpp-python's default (swa_full true) gives those
  layers the whole context too, and the app keeps it by default: with a windowed cache, re-using the cache
  for an edit further back than the window would read cells llama.cpp has already dropped.
* Overhead: the runtime (CUDA/Metal context, the app's process: 0.5 GiB) plus llama.cpp's compute buffer for
  one micro-batch: the larger of the output logits and the attention working set (the mask, n_ctx x n_ubatch x
  4 B, and WITHOUT flash attention the scores, n_ctx x n_ubatch x (heads x 4 + 4) B, which dominate at long
  contexts: 68 GiB for 1M tokens of a 32-head model at n_ubatch 512; flash attention tiles them away), plus
  the activations. Never below 1 GiB: measured llama.cpp runs of 7B-70B at batch 512 sit between 0.3 and 1 GiB.
* Flash attention "auto" is llama.cpp's default: on wherever the backend supports it (CUDA, Metal, CPU),
  so the estimate counts it as on. A quantized V cache needs flash attention (llama.cpp refuses otherwise).

Plain Python, arithmetic only: the caller's process (the CLI, the app's GUI process and its workers, the local
server's handler threads), never the engine process.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from desktop.engine.hub.hardware import GiB, Hardware
from desktop.engine.profiles.fields import KV_CACHE_TYPES

KV_BYTES_PER_ELEMENT = {"f16": 2.0, "q8_0": 34 / 32, "q4_0": 18 / 32}
KV_TYPES = KV_CACHE_TYPES  # the settings table's list; KV_BYTES_PER_ELEMENT has a row for each
#: the floor of the overhead (see the module docstring)
OVERHEAD_BYTES = 1 * GiB
RUNTIME_BYTES = GiB // 2
# Leave this much VRAM free for the desktop and other programs when planning offload.
VRAM_RESERVE_BYTES = GiB // 2
DEFAULT_UBATCH = 512
DEFAULT_VOCAB = 128_256  # when a shape gives none: a Llama-3-sized output layer, on the safe side


@dataclass(frozen=True)
class Arch:
    layers: int
    kv_heads: int
    head_dim: int  # key length
    context_native: int | None = None
    experts: int | None = None
    head_dim_v: int = 0  # value length (0: same as the key's)
    sliding_window: int = 0  # the window llama.cpp applies (0: none)
    swa_layers: int = 0  # how many layers use it
    heads: int = 0  # query heads (attention scores without flash attention); 0: kv_heads
    embd: int = 0
    vocab: int = 0

    @classmethod
    def from_numbers(cls, d: dict[str, Any]) -> "Arch | None":
        """From ``gguf.header.arch_numbers`` or ``gguf.arch.ArchNumbers.to_dict()``."""
        try:
            def opt(k: str) -> int:
                return int(d.get(k) or 0)

            return cls(int(d["layers"]), int(d["kv_heads"]), int(d["head_dim"]),
                       int(d["context_native"]) if d.get("context_native") else None,
                       int(d["experts"]) if d.get("experts") else None,
                       opt("head_dim_v"), opt("sliding_window"), opt("swa_layers"), opt("heads"), opt("embd"),
                       opt("vocab"))
        except (KeyError, TypeError, ValueError):
            return None

    @classmethod
    def from_profile(cls, profile: Any) -> "Arch | None":
        a = profile.architecture
        if not a.layers:
            return None
        head_dim = a.head_dim or (a.embd // a.heads if a.heads else 0)
        return cls(a.layers, a.kv_heads or a.heads, head_dim, profile.context.native, a.experts or None,
                   a.head_dim_v, a.sliding_window, a.swa_layers, a.heads, a.embd, a.vocab)

    def kv_cells(self, n_ctx: int, swa_full: bool = False, n_ubatch: int = DEFAULT_UBATCH) -> int:
        """KV cells over all layers. A sliding-window layer keeps min(context, window) cells: llama.cpp sizes
        that cache pad256(min(context, window + n_ubatch)) unless ``swa_full`` (llama-cpp-python's default)
        gives it the whole context."""
        swa = min(self.swa_layers, self.layers) if self.sliding_window and not swa_full else 0
        windowed = min(n_ctx, _pad256(self.sliding_window + n_ubatch)) if swa else 0
        return (self.layers - swa) * n_ctx + swa * windowed

    def kv_bytes(self, n_ctx: int, kv_type: str = "f16", swa_full: bool = False,
                 n_ubatch: int = DEFAULT_UBATCH) -> int:
        per_cell = self.kv_heads * (self.head_dim + (self.head_dim_v or self.head_dim))
        return int(self.kv_cells(n_ctx, swa_full, n_ubatch) * per_cell * KV_BYTES_PER_ELEMENT[kv_type])


def _pad256(n: int) -> int:
    return -(-n // 256) * 256


def flash_attn_on(flash_attn: bool | str) -> bool:
    """What llama.cpp will do: "auto" turns flash attention on wherever the backend supports it."""
    return flash_attn is True or flash_attn in ("auto", "on")


def compute_bytes(arch: Arch, n_ctx: int, flash_attn: bool | str = "auto", n_ubatch: int = DEFAULT_UBATCH) -> int:
    """llama.cpp's compute buffer for one micro-batch (see the module docstring).

    ggml's graph allocator reuses memory, so the peak is the larger of the output logits (4 B x n_ubatch x
    vocab) and the attention working set (per context cell and batch token: the 4 B mask, and without flash
    attention the f32 scores of every head plus 4 B more), plus the activations (4 B x n_ubatch x 4 x embd).
    Fitted to llama.cpp's logged "compute buffer size" (tests/engine/test_fit_kv_llama.py).
    """
    ub = max(1, min(n_ubatch, n_ctx))
    embd = arch.embd or (arch.heads or arch.kv_heads) * arch.head_dim
    logits = 4 * ub * (arch.vocab or DEFAULT_VOCAB)
    per_cell = 4 if flash_attn_on(flash_attn) else 4 + 4 * (arch.heads or arch.kv_heads) + 4
    return max(logits, ub * n_ctx * per_cell) + 4 * ub * 4 * embd


def overhead_bytes(arch: Arch, n_ctx: int, flash_attn: bool | str = "auto", n_ubatch: int = DEFAULT_UBATCH) -> int:
    return max(OVERHEAD_BYTES, RUNTIME_BYTES + compute_bytes(arch, n_ctx, flash_attn, n_ubatch))


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
    flash_attn: bool = True
    compute_bytes: int = 0
    projector_bytes: int = 0  # a vision model's projector: weights + encoder compute buffer (in total_bytes)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def kv_bytes_per_token(arch: Arch, kv_type: str = "f16") -> int:
    """Per token of context at full length (every layer holding it); sliding-window layers stop growing."""
    return int(arch.layers * arch.kv_heads * (arch.head_dim + (arch.head_dim_v or arch.head_dim))
               * KV_BYTES_PER_ELEMENT[kv_type])


def _gib(n: float) -> str:
    return f"{n / GiB:.1f} GiB"


#: A projector's compute buffer when its header has not been read (a SigLIP-class encoder at 896 px takes about
#: this much with llama.cpp's CPU backend); ``gguf.projector.ProjectorInfo.compute_bytes`` when it has.
PROJECTOR_COMPUTE_BYTES = 512 * 1024 * 1024


def projector_need(file_bytes: int, compute: int | None = None) -> int:
    """What a vision model's projector adds to the estimate: its weights and its encoder's compute buffer."""
    return int(file_bytes) + (PROJECTOR_COMPUTE_BYTES if compute is None else int(compute)) if file_bytes else 0


def estimate(weights_bytes: int, arch: Arch | None, n_ctx: int, hw: Hardware, kv_type: str = "f16", *,
             flash_attn: bool | str = "auto", n_ubatch: int = DEFAULT_UBATCH, swa_full: bool = True,
             projector_bytes: int = 0) -> Fit:
    """The verdict for a file of ``weights_bytes`` at context ``n_ctx`` on ``hw``; ``projector_bytes`` (see
    ``projector_need``) is a vision model's projector, counted with the weights."""
    if projector_bytes:
        fit_ = estimate(weights_bytes + projector_bytes, arch, n_ctx, hw, kv_type, flash_attn=flash_attn,
                        n_ubatch=n_ubatch, swa_full=swa_full)
        return replace(fit_, weights_bytes=weights_bytes, projector_bytes=projector_bytes,
                       explanation=fit_.explanation.replace(
            f"weights {_gib(weights_bytes + projector_bytes)}",
                           f"weights {_gib(weights_bytes)} + projector {_gib(projector_bytes)}", 1))
    fa = flash_attn_on(flash_attn)
    if arch is None:
        total = weights_bytes + OVERHEAD_BYTES
        kind = "cpu" if total <= hw.ram_available else "none"
        return Fit("unknown (no architecture numbers)", "unknown", 0, 0, n_ctx, kv_type, weights_bytes, 0, 0,
                   OVERHEAD_BYTES, total, hw.vram_free, hw.ram_available,
                   f"weights {_gib(weights_bytes)} + overhead {_gib(OVERHEAD_BYTES)}; KV cache unknown "
                   f"({'fits' if kind == 'cpu' else 'exceeds'} {_gib(hw.ram_available)} RAM available)", fa, 0)
    per_tok = kv_bytes_per_token(arch, kv_type)
    kv = arch.kv_bytes(n_ctx, kv_type, swa_full, n_ubatch)
    compute = compute_bytes(arch, n_ctx, flash_attn, n_ubatch)
    overhead = overhead_bytes(arch, n_ctx, flash_attn, n_ubatch)
    total = weights_bytes + kv + overhead
    layers = arch.layers
    vram = max(0, hw.vram_free - VRAM_RESERVE_BYTES) if hw.gpus else 0
    ram = hw.ram_available
    swa = (f", {arch.swa_layers} layers windowed to {arch.sliding_window:,}"
           if arch.sliding_window and not swa_full else "")
    sums = (f"weights {_gib(weights_bytes)} + KV {_gib(kv)} ({n_ctx:,} tokens, {kv_type}{swa}) "
            f"+ overhead {_gib(overhead)} (flash attention {'on' if fa else 'off'}) = {_gib(total)}")
    where = f"free VRAM {_gib(hw.vram_free)}, available RAM {_gib(ram)}"

    def fit(verdict: str, kind: str, gpu_layers: int, why: str) -> Fit:
        if kv_type != "f16" and not fa:
            why += "; note: llama.cpp needs flash attention for a quantized V cache"
        return Fit(verdict, kind, gpu_layers, layers, n_ctx, kv_type, weights_bytes, kv, per_tok,
                   overhead, total, hw.vram_free, ram, f"{sums}; {where}: {why}", fa, compute)

    if hw.gpus and total <= vram:
        return fit("fits on GPU", "gpu", layers, "everything fits in VRAM")
    per_layer = (weights_bytes + kv) / max(layers, 1)
    # Apple silicon shares one pool between GPU and CPU, so splitting layers gains nothing there.
    if vram > overhead and not hw.unified_memory:
        n = min(layers, int((vram - overhead) // per_layer))
        rest = total - n * per_layer
        if n >= 1 and rest <= ram:
            return fit(f"partial offload: {n} of {layers} layers", "partial", n,
                       f"{n} layers ({_gib(n * per_layer)}) on the GPU, {_gib(rest)} in RAM")
    if total <= ram:
        why = "no usable GPU" if not hw.gpus else "too little VRAM to offload a layer"
        return fit("CPU only", "cpu", 0, f"fits in RAM ({why})")
    short = total - ram - (vram if hw.gpus else 0)
    return fit("won't fit", "none", 0, f"short by {_gib(max(short, 0))}; try a smaller quant or context")


def max_context(weights_bytes: int, arch: Arch, hw: Hardware, kv_type: str = "f16", *,
                flash_attn: bool | str = "auto", n_ubatch: int = DEFAULT_UBATCH, kinds: tuple[str, ...] = ("gpu",),
                limit: int = 1 << 24) -> int:
    """The largest context (a multiple of 256, llama.cpp's KV padding) whose verdict is one of ``kinds``; 0 if none."""
    def ok(n: int) -> bool:
        return estimate(weights_bytes, arch, n, hw, kv_type, flash_attn=flash_attn, n_ubatch=n_ubatch).kind in kinds

    lo, hi = 0, max(1, limit // 256)
    if not ok(256):
        return 0
    while lo < hi:  # the memory need grows with the context, so the verdict is monotonic
        mid = (lo + hi + 1) // 2
        if ok(mid * 256):
            lo = mid
        else:
            hi = mid - 1
    return lo * 256


def advise(weights_bytes: int, arch: Arch | None, n_ctx: int, hw: Hardware, kv_type: str = "f16", *,
           flash_attn: bool | str = "auto", n_ubatch: int = DEFAULT_UBATCH) -> list[str]:
    """One line per way to run this file at (or near) ``n_ctx`` here: the request, the other KV types with
    flash attention, and the longest context that fits on the GPU / at all."""
    if arch is None:
        return []
    asked = estimate(weights_bytes, arch, n_ctx, hw, kv_type, flash_attn=flash_attn, n_ubatch=n_ubatch)
    fa_word = "flash attention " + ("on" if asked.flash_attn else "off")
    lines = [f"as asked ({n_ctx:,} tokens, {kv_type} KV, {fa_word}): {asked.verdict}, needs {_gib(asked.total_bytes)}"]
    if not asked.flash_attn:
        on = estimate(weights_bytes, arch, n_ctx, hw, kv_type, flash_attn="on", n_ubatch=n_ubatch)
        lines.append(f"with flash attention on: {on.verdict}, needs {_gib(on.total_bytes)} "
                     f"(saves {_gib(asked.overhead_bytes - on.overhead_bytes)} of attention scratch)")
    for kt in KV_TYPES:
        if kt == kv_type:
            continue
        f = estimate(weights_bytes, arch, n_ctx, hw, kt, flash_attn="on", n_ubatch=n_ubatch)
        lines.append(f"{n_ctx:,} tokens with {kt} KV + flash attention: {f.verdict} (KV {_gib(f.kv_bytes)}, "
                     f"total {_gib(f.total_bytes)})")
    if arch.sliding_window and arch.swa_layers:
        w = estimate(weights_bytes, arch, n_ctx, hw, kv_type, flash_attn=flash_attn, n_ubatch=n_ubatch,
                     swa_full=False)
        lines.append(f"with load.swa_full: false ({arch.swa_layers} layers keep {arch.sliding_window:,} tokens): "
                     f"{w.verdict}, KV {_gib(w.kv_bytes)}")
    if asked.kind != "gpu" and hw.gpus:
        for kt in KV_TYPES:
            n = max_context(weights_bytes, arch, hw, kt, flash_attn="on", n_ubatch=n_ubatch, limit=n_ctx)
            if n:
                lines.append(f"longest context fully on the GPU with {kt} KV + flash attention: {n:,} tokens")
    if asked.kind == "none":
        for kt in KV_TYPES:
            n = max_context(weights_bytes, arch, hw, kt, flash_attn="on", n_ubatch=n_ubatch,
                            kinds=("gpu", "partial", "cpu"), limit=n_ctx)
            if n:
                lines.append(f"longest context that fits at all with {kt} KV + flash attention: {n:,} tokens "
                             "(GPU + RAM)")
    return lines


# ---------------------------------------------------------------------------------------------- before a load

MIN_CONTEXT = 2048  # below this a chat model is of little use: refuse rather than shrink further
RAM_RESERVE_BYTES = GiB // 2  # the rest of the system keeps this much RAM


@dataclass(frozen=True)
class ContextPlan:
    n_ctx: int  # what to load with
    requested: int
    need_bytes: int  # at the requested context
    capacity_bytes: int
    notice: str = ""  # one sentence when the context was reduced (Loaded.notes)


def plan_context(weights_bytes: int, arch: Arch | None, n_ctx: int, hw: Hardware, kv_type: str = "f16", *,
                 flash_attn: bool | str = "auto", n_ubatch: int = DEFAULT_UBATCH, swa_full: bool = True,
                 use_gpu: bool = True) -> ContextPlan:
    """Check a context against this machine BEFORE llama.cpp allocates it (an over-large KV cache gets the
    engine OOM-killed, not an error). Reduce to the largest context that fits, with a notice; raise
    ContextTooLargeError with the numbers when not even MIN_CONTEXT fits."""
    from desktop.engine.errors import ContextTooLargeError

    if arch is None:
        return ContextPlan(n_ctx, n_ctx, weights_bytes, 0)
    vram = max(0, hw.vram_free - VRAM_RESERVE_BYTES) if (use_gpu and hw.gpus and not hw.unified_memory) else 0
    capacity = max(0, hw.ram_available - RAM_RESERVE_BYTES) + vram

    def need(n: int) -> tuple[int, int, int]:
        kv = arch.kv_bytes(n, kv_type, swa_full, n_ubatch)
        over = overhead_bytes(arch, n, flash_attn, n_ubatch)
        return weights_bytes + kv + over, kv, over

    total, kv, over = need(n_ctx)
    if total <= capacity:
        return ContextPlan(n_ctx, n_ctx, total, capacity)
    lo, hi = 0, n_ctx // 256
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if need(mid * 256)[0] <= capacity:
            lo = mid
        else:
            hi = mid - 1
    fits = lo * 256
    fa = "on" if flash_attn_on(flash_attn) else "off"
    numbers = (f"{n_ctx:,} tokens need {_gib(total)} (weights {_gib(weights_bytes)} + KV {_gib(kv)} {kv_type} + "
               f"overhead {_gib(over)} with flash attention {fa}) but this machine has {_gib(capacity)} "
               f"({_gib(vram)} of VRAM + {_gib(max(0, hw.ram_available - RAM_RESERVE_BYTES))} of RAM to spare)")
    hint = "a q8_0 or q4_0 KV cache" + ("" if fa == "on" else " with flash attention") + " or a smaller quant"
    if fits < min(MIN_CONTEXT, n_ctx):
        raise ContextTooLargeError(f"the model cannot be loaded with this context: {numbers}; not even "
                                   f"{min(MIN_CONTEXT, n_ctx):,} tokens fit; try {hint}", details=numbers)
    return ContextPlan(fits, n_ctx, total, capacity,
                       f"context reduced from {n_ctx:,} to {fits:,} tokens, the most that fits: {numbers}; "
                       f"for more, try {hint}")
