"""The typed messages between a caller (CLI, GUI adapter) and the engine process.

One JSON object per line, with a ``type`` tag. Requests go to the engine on its stdin; events come
back on a private pipe. Everything here is a plain dataclass so both sides stay free of llama_cpp
and of Qt. The defaults of the settings a user edits are the settings table's (``profiles.fields``), so a
request built without a profile asks for what a profile would. Runs anywhere.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar

from desktop.engine.profiles.fields import default as _default


# ---------------------------------------------------------------------------------------------- requests


@dataclass
class Load:
    """Load a model file (replacing any loaded one)."""

    TYPE: ClassVar[str] = "load"
    id: str
    model_path: str
    n_ctx: int = _default("context.default")
    n_gpu_layers: int | str = _default("load.gpu_layers")
    n_threads: int | str = _default("load.threads")
    n_batch: int = _default("load.batch")
    rope_freq_base: float | None = None
    rope_freq_scale: float | None = None
    flash_attn: bool | str = _default("load.flash_attn")  # True/False, or "auto"/"on"/"off" (profiles.LoadSpec)
    kv_cache_type: str = _default("load.kv_cache_type")  # one of fields.KV_CACHE_TYPES
    swa_full: bool = True  # full-size KV for sliding-window layers (llama-cpp-python's default)
    kv_overrides: dict[str, Any] = field(default_factory=dict)
    apply_doctor_overrides: bool = True
    # A profile's `backend` section when it runs on an OpenAI-compatible server (model_path is then
    # unused). Never holds the API key: the engine reads it from the named env var or the keyring.
    backend: dict[str, Any] | None = None
    # A profile's `speculative` section: {"draft": profile id or GGUF path, "n_draft": N} or
    # {"prompt_lookup": true, "n_draft": N}; None (or neither key) decodes plainly.
    speculative: dict[str, Any] | None = None
    # Embedding mode (``Embed`` requests; no generation): pooling is the GGUF's own (mean where it declares none).
    embedding: bool = False
    # A vision model's multimodal projector (mmproj GGUF); images in a Generate need one.
    mmproj_path: str | None = None


@dataclass
class Generate:
    """Stream an answer to ``messages`` (rendered with ``prompt_spec``), or to a raw ``prompt``.

    A message may carry ``"images": [path, ...]``: image files the engine reads itself (the app keeps pasted and
    received images in its data directory by content hash, ``vision.images.store``), placed before its text."""

    TYPE: ClassVar[str] = "generate"
    id: str
    messages: list[dict[str, Any]] = field(default_factory=list)
    prompt_spec: dict[str, Any] = field(default_factory=dict)
    prompt: str | None = None
    temperature: float = _default("sampling.temperature")
    top_p: float = _default("sampling.top_p")
    top_k: int = _default("sampling.top_k")
    min_p: float = _default("sampling.min_p")
    repeat_penalty: float = _default("sampling.repeat_penalty")
    max_tokens: int = _default("sampling.max_tokens")
    seed: int = _default("sampling.seed")  # -1: a random seed, chosen by the engine and reported in the stats
    stop_strings: list[str] = field(default_factory=list)
    stop_token_ids: list[int] = field(default_factory=list)
    # Tokens are batched into one chunk per interval, matched to the chat view's 50 ms flush, so each chunk
    # is painted as it arrives: shorter chunks only wake the GUI more often, CPU that slows llama.cpp's
    # threads on a small machine (bench/NOTES.md: 15 -> 40 -> 50 ms).
    chunk_interval_ms: float = 50.0
    # OpenAI-style function tools for a remote backend (local models get them rendered into ``prompt`` by the
    # caller's tool loop, desktop/engine/tools). Messages may then carry tool_calls / the "tool" role.
    tools: list[dict[str, Any]] | None = None
    # Constrained output: a JSON schema the answer must match (turned into a llama.cpp grammar in the engine), or
    # a GBNF grammar as text. Applied in the sampler chain, so the output always parses (unless cut by length).
    json_schema: dict[str, Any] | None = None
    grammar: str | None = None


@dataclass
class Embed:
    """Embed each of ``inputs`` with a model loaded in embedding mode; answered by Embeddings."""

    TYPE: ClassVar[str] = "embed"
    id: str
    inputs: list[str] = field(default_factory=list)
    normalize: bool = True  # unit length (what OpenAI's and Ollama's embeddings return)
    truncate: bool = True  # cut an input to the context (else one that does not fit fails)


@dataclass
class Tokenize:
    """Count ``text`` in the loaded model's tokens (attachments' token counts); answered by Tokens."""

    TYPE: ClassVar[str] = "tokenize"
    id: str
    text: str = ""


@dataclass
class Cancel:
    TYPE: ClassVar[str] = "cancel"
    id: str


@dataclass
class Unload:
    """Free the model (the server's idle unload); not answered: the next Load loads again."""

    TYPE: ClassVar[str] = "unload"
    id: str = ""


@dataclass
class Shutdown:
    TYPE: ClassVar[str] = "shutdown"
    id: str = ""


@dataclass
class Ping:
    TYPE: ClassVar[str] = "ping"
    id: str = ""


# ---------------------------------------------------------------------------------------------- events


@dataclass
class Ready:
    """The engine process is up."""

    TYPE: ClassVar[str] = "ready"
    pid: int
    llama_cpp_version: str
    system_info: str
    gpu_offload: bool
    # What the loaded library offers: ggml backends ("CUDA", "CPU"), devices (name, kind, free/total bytes),
    # and why the CPU copy of the library was loaded instead of the GPU one ("" when it was not).
    backends: list[str] = field(default_factory=list)
    devices: list[dict[str, Any]] = field(default_factory=list)
    lib_fallback: str = ""
    # Why the llama.cpp library could not be loaded at all ("" when it could). The engine then stays up and
    # answers every Load and Generate with Failed(model_load_error) carrying this reason.
    lib_error: str = ""


@dataclass
class LoadProgress:
    """How far a Load has got: llama.cpp's own progress callback, throttled to ~20 events a second; the
    last one of a successful load is 1.0."""

    TYPE: ClassVar[str] = "load_progress"
    id: str
    fraction: float


@dataclass
class Loaded:
    TYPE: ClassVar[str] = "loaded"
    id: str
    model_path: str
    n_ctx: int
    n_ctx_train: int
    n_gpu_layers: int
    backend: str
    load_s: float
    eog_ids: list[int]
    eot_128009_is_eog: bool | None
    kv_overrides: dict[str, Any]
    description: str
    notes: list[str] = field(default_factory=list)
    # Provenance the GUI records with every answer.
    llama_cpp_version: str = ""
    quant: str | None = None  # the GGUF's file type (doctor report), e.g. "Q4_1"
    # The GPU-layer choice: n_gpu_layers of gpu_layers_total (n_layer + 1) on ``backend``, and why, in one
    # line for the status bar, e.g. "CUDA: 31/31 layers, 1.2 GiB of 79.1 GiB free".
    gpu_layers_total: int = 0
    gpu_reason: str = ""
    # How the model thinks (reasoning.REASONING_FORMATS: "think", "magistral", "harmony"; "" when it does not):
    # the Models page and the chat mark reasoning models by it.
    reasoning_format: str = ""
    # A projector is loaded: the model takes images, scaled down to ``image_max_side`` on the longest side.
    vision: bool = False
    image_max_side: int = 0


@dataclass
class GenerationStats:
    ttft_s: float = 0.0
    prompt_tokens: int = 0
    prompt_eval_tokens: int = 0  # tokens actually evaluated: the rest came from the KV cache
    generated_tokens: int = 0
    tokens_per_s: float = 0.0
    total_s: float = 0.0
    context_used: int = 0
    context_total: int = 0
    backend: str = ""
    gpu_layers: int = 0
    seed: int = -1  # the seed actually used (a random one when the request asked for -1)
    # Speculative decoding: the share of proposed tokens the model sampled itself (None: none were proposed).
    draft_acceptance: float | None = None
    # Generated tokens spent thinking (part of generated_tokens), for the context meter.
    reasoning_tokens: int = 0
    # KV cells the prompt's images take (included in prompt_tokens / context_used as positions).
    image_tokens: int = 0


@dataclass
class TokenChunk:
    """New text of the answer (``text``) and of the thinking (``reasoning``, reasoning models only); either may
    be empty. Template markup is never in either."""

    TYPE: ClassVar[str] = "chunk"
    id: str
    text: str
    n_tokens: int = 1
    reasoning: str = ""


@dataclass
class Finished:
    TYPE: ClassVar[str] = "finished"
    id: str
    text: str
    finish_reason: str  # "stop", "length", "cancelled"
    stats: GenerationStats
    dropped: list[int] = field(default_factory=list)  # indices of messages that fell out of the context
    stop_token: int | None = None
    # Calls the model asked for ([{"id", "name", "arguments": JSON text}]): a remote backend's, or a local
    # harmony model's (gpt-oss); the caller runs them.
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    # The whole thinking, apart from the answer in ``text`` ("" when the model did not think).
    reasoning: str = ""
    # The generation ran out of tokens while still thinking, with no answer: not a success
    # (reasoning.STOPPED_THINKING says what to do).
    stopped_thinking: bool = False


@dataclass
class Failed:
    TYPE: ClassVar[str] = "failed"
    id: str
    error: dict[str, Any]


@dataclass
class Tokens:
    TYPE: ClassVar[str] = "tokens"
    id: str
    n_tokens: int = 0


@dataclass
class Embeddings:
    TYPE: ClassVar[str] = "embeddings"
    id: str
    vectors: list[list[float]] = field(default_factory=list)
    n_tokens: int = 0  # tokens of all inputs together (usage)
    pooling: str = ""  # how token vectors became one: the GGUF's pooling type ("mean", "cls", "last", ...)


@dataclass
class Pong:
    TYPE: ClassVar[str] = "pong"
    id: str = ""


MESSAGES: dict[str, type] = {
    cls.TYPE: cls
    for cls in (Load, Generate, Tokenize, Cancel, Unload, Shutdown, Ping, Ready, LoadProgress, Loaded, TokenChunk, Finished,
                Failed, Tokens, Pong)
}
MESSAGES.update({cls.TYPE: cls for cls in (Embed, Embeddings)})
# The requests the engine answers, and the events that end one: each answered request ends with exactly one
# terminal event (Failed included, also when the engine dies), which is what lets a caller stop waiting.
ANSWERED_REQUESTS: tuple[type, ...] = (Load, Generate, Tokenize, Ping, Embed)
TERMINAL_EVENTS: tuple[type, ...] = (Loaded, Finished, Tokens, Pong, Embeddings, Failed)


def encode(msg: Any) -> bytes:
    d = asdict(msg)
    d["type"] = msg.TYPE
    return (json.dumps(d, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")


def decode(line: bytes | str) -> Any:
    d = json.loads(line)
    cls = MESSAGES[d.pop("type")]
    names = {f.name for f in fields(cls)}
    kwargs = {k: v for k, v in d.items() if k in names}
    if cls is Finished:
        kwargs["stats"] = GenerationStats(**kwargs.get("stats", {}))
    return cls(**kwargs)
