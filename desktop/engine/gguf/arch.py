"""Architecture numbers, end-of-turn token and prompt-format family of a GGUF, from its metadata alone.

* Numbers: head sizes from ``{arch}.attention.key_length`` / ``value_length`` (Gemma 3 uses 256, not
  embedding / heads), sliding-window attention (which layers use it and the window), MoE experts. llama.cpp
  applies a sliding window only for some architectures, with a fixed layer pattern per architecture (or one
  the file states); the KV estimate (``hub.fit``) gives those layers min(context, window) cells.
* End of turn: llama.cpp takes ``tokenizer.ggml.eot_token_id`` when present, otherwise the first token whose
  TEXT is one of :data:`EOT_TEXTS` (llama-vocab.cpp, "auto-detect special tokens by text"); this does the same,
  in a fixed order where llama.cpp walks a hash map (files hold one of these in practice).
* Family: when a file has no chat template, the format follows from ``general.architecture``, the tokenizer
  and the special tokens present; :func:`detect_format` returns None when it cannot tell, and the caller
  asks the user (``FormatUnknownError``), never a silent ChatML.

Plain Python over gguf-py's reader (or a parsed header dict); any thread of any process: the caller's (the CLI,
the app's GUI-process workers, fit estimates and generated profiles) and the engine process (the GPU-layer choice).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Callable, Mapping

# llama-vocab.cpp: texts it accepts as end of turn when the metadata names none (checked in this order).
EOT_TEXTS = ("<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|end_of_text|>", "<EOT>",
             "_<EOT>", "<｜end▁of▁sentence｜>", "<end_of_utterance>")
# Texts that end a turn besides EOS/EOT (llama.cpp's end-of-generation texts, plus Command R's turn end, which
# llama.cpp learns from the file's metadata); a generated profile stops on those present.
EOG_TEXTS = (*EOT_TEXTS, "<|eom_id|>", "</s>", "<|END_OF_TURN_TOKEN|>")
# Special tokens that tell families apart (looked up by text, like the EOT ones).
MARKER_TEXTS = ("<|start_header_id|>", "<|eom_id|>", "<|im_start|>", "<|im_sep|>", "[INST]", "[SYSTEM_PROMPT]",
                "<start_of_turn>", "<|system|>", "<|user|>", "<｜User｜>", "<think>",
                "<|START_OF_TURN_TOKEN|>", "<|CHATBOT_TOKEN|>",
                # reasoning formats (inference.reasoning.detect): a file without a template is judged by these
                "</think>", "[THINK]", "[/THINK]", "<|channel|>", "<|message|>", "<|return|>", "<|call|>")
SPECIAL_TEXTS = tuple(dict.fromkeys((*EOG_TEXTS, *MARKER_TEXTS)))

# llama.cpp's sliding-window layer pattern per architecture (llama-model.cpp, set_swa_pattern(n)): within each
# group of n layers the first n-1 use the window and the last one attends to everything. Architectures absent
# here get no sliding window in llama.cpp even if the file states one (e.g. Mistral 7B v0.1's 4096 under "llama").
SWA_PATTERN = {"gemma2": 2, "gemma3": 6, "gemma3n": 5, "cohere2": 4, "exaone4": 4}


@dataclass(frozen=True)
class ArchNumbers:
    architecture: str
    layers: int
    embd: int
    heads: int
    kv_heads: int
    head_dim: int  # key length
    head_dim_v: int  # value length
    context_native: int | None
    vocab: int = 0
    experts: int = 0
    experts_used: int = 0
    sliding_window: int = 0  # the window llama.cpp applies (0: none)
    swa_layers: int = 0  # how many layers use it
    stated_window: int = 0  # what the file states, applied or not

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def kv_cells(self, n_ctx: int) -> int:
        """KV cells over all layers: full layers hold the context, sliding-window layers min(context, window)."""
        swa = self.swa_layers if self.sliding_window else 0
        return (self.layers - swa) * n_ctx + swa * min(n_ctx, self.sliding_window)

    def kv_bytes(self, n_ctx: int, bytes_per_element: float) -> int:
        return int(self.kv_cells(n_ctx) * self.kv_heads * (self.head_dim + self.head_dim_v) * bytes_per_element)


def _int(v: Any) -> int:
    try:
        if isinstance(v, (list, tuple)):  # per-layer arrays (e.g. head_count_kv in some files): the largest
            return max((int(x) for x in v), default=0)
        return int(v or 0)
    except (TypeError, ValueError):
        return 0


def swa_layers(arch: str, layers: int, pattern: Any = None) -> int:
    """How many of ``layers`` use the sliding window: from the file's pattern (an int n or per-layer bools)
    or llama.cpp's built-in pattern for ``arch``; 0 when llama.cpp uses none."""
    if isinstance(pattern, (list, tuple)) and pattern:
        return sum(1 for p in pattern[:layers] if bool(p))
    n = _int(pattern) or SWA_PATTERN.get(arch, 0)
    if n <= 0:
        return 0
    if n == 1:
        return layers  # every layer windowed (llama.cpp's pattern 1)
    return sum(1 for il in range(layers) if il % n < n - 1)


def numbers(meta: Mapping[str, Any] | Callable[[str], Any], n_vocab: int = 0) -> ArchNumbers | None:
    """The numbers from metadata (a key -> value mapping, or a getter); None without a block count."""
    get = meta.get if isinstance(meta, Mapping) else meta
    arch = str(get("general.architecture") or "llama")

    def a(suffix: str) -> Any:
        return get(f"{arch}.{suffix}")

    layers = _int(a("block_count"))
    if layers <= 0:
        return None
    embd, heads = _int(a("embedding_length")), _int(a("attention.head_count"))
    kv_heads = _int(a("attention.head_count_kv")) or heads
    head_k = _int(a("attention.key_length")) or (embd // heads if heads else 0)
    head_v = _int(a("attention.value_length")) or head_k
    stated = _int(a("attention.sliding_window"))
    swa = swa_layers(arch, layers, a("attention.sliding_window_pattern")) if stated else 0
    return ArchNumbers(arch, layers, embd, heads, kv_heads, head_k, head_v, _int(a("context_length")) or None,
                       n_vocab, _int(a("expert_count")), _int(a("expert_used_count")),
                       stated if swa else 0, swa, stated)


def find_specials(tokens_field: Any, texts: tuple[str, ...] = SPECIAL_TEXTS) -> dict[str, int]:
    """Ids of the tokens whose text is one of ``texts`` (first occurrence), from gguf-py's tokens field.

    Compares raw bytes, so a 256k vocabulary costs one pass without decoding every string.
    """
    if tokens_field is None:
        return {}
    wanted = {t.encode("utf-8"): t for t in texts}
    sizes = {len(b) for b in wanted}
    found: dict[str, int] = {}
    parts, data = tokens_field.parts, tokens_field.data
    for tid, idx in enumerate(data):
        part = parts[idx]
        if part.nbytes in sizes:
            text = wanted.get(part.tobytes())
            if text is not None and text not in found:
                found[text] = tid
                if len(found) == len(wanted):
                    break
    return found


def eot_by_text(specials: Mapping[str, int]) -> tuple[int, str] | None:
    """llama.cpp's fallback end-of-turn token: the first of :data:`EOT_TEXTS` the vocabulary holds."""
    for text in EOT_TEXTS:
        if text in specials:
            return specials[text], text
    return None


@dataclass(frozen=True)
class Detection:
    format: str
    reason: str  # for profile notes and `profiles show`, e.g. "detected (gemma, from general.architecture)"


_BY_ARCH = {"gemma": "gemma", "gemma2": "gemma", "gemma3": "gemma", "gemma3n": "gemma",
            "qwen2": "chatml", "qwen3": "chatml", "qwen2moe": "chatml", "qwen3moe": "chatml", "qwen2vl": "chatml",
            "command-r": "command_r", "cohere2": "command_r", "mistral3": "mistral_v7", "phimoe": "phi3"}


def detect_format(arch: str | None, tokenizer_model: str | None, specials: Mapping[str, int],
                  name: str | None = None) -> Detection | None:
    """The prompt format for a template-less file, or None when metadata cannot tell (the caller asks the user)."""
    arch = arch or ""
    has = specials.__contains__

    def found(fmt: str, why: str) -> Detection:
        return Detection(fmt, f"detected ({fmt}, from {why})")

    # DeepSeek's markers come first: its distilled models carry a Qwen or Llama architecture.
    if has("<｜User｜>"):
        r1 = "r1" in (name or "").lower() or (has("<think>") and arch != "deepseek2")
        return found("deepseek_r1" if r1 else "deepseek3", "the <｜User｜> token" + (" and the name" if r1 else ""))
    if arch == "deepseek2":
        return found("deepseek2", "general.architecture 'deepseek2'")
    if arch == "phi3":
        if has("<|im_sep|>"):
            return None  # Phi-4 (14B) speaks a ChatML variant with <|im_sep|> that has no hand-written format
        fmt = "phi4mini" if tokenizer_model == "gpt2" else "phi3"
        return found(fmt, f"general.architecture 'phi3' and the {tokenizer_model or 'llama'} tokenizer")
    if arch in _BY_ARCH:
        return found(_BY_ARCH[arch], f"general.architecture '{arch}'")
    # "llama" and its many relatives: the special tokens tell.
    if has("<|start_header_id|>") and has("<|eot_id|>"):
        fmt = "llama31" if has("<|eom_id|>") else "llama3"
        return found(fmt, "the <|start_header_id|> and <|eot_id|> tokens")
    if has("<|im_start|>") and has("<|im_end|>"):
        return found("chatml", "the <|im_start|> and <|im_end|> tokens")
    if has("<start_of_turn>") and has("<end_of_turn>"):
        return found("gemma", "the <start_of_turn> token")
    if has("<|START_OF_TURN_TOKEN|>"):
        return found("command_r", "the <|START_OF_TURN_TOKEN|> token")
    if has("[INST]"):  # Mistral's control tokens (v0.3 on): v7 adds [SYSTEM_PROMPT], tekken is a BPE vocab
        if has("[SYSTEM_PROMPT]"):
            return found("mistral_v7", "the [SYSTEM_PROMPT] token")
        fmt = "mistral_tekken" if tokenizer_model == "gpt2" else "mistral_v3"
        return found(fmt, f"the [INST] token and the {tokenizer_model or 'llama'} tokenizer")
    if has("<|user|>") and has("<|end|>"):
        return found("phi3", "the <|user|> and <|end|> tokens")
    return None
