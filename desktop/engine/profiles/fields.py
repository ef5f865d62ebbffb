"""The settings table: every setting a user edits, once (plain Python, any process).

Each :class:`Field` names its dotted key in the profile YAML, its type, range, default, unit and one-line help,
and whether it needs a model reload or applies to the next message. The table drives the profile validator
(``validate``), the schema's defaults (``schema``), ``serve``'s request checks (``server/requests``),
both settings forms in the GUI (``ui/settings``) and the CLI's options (``ask --temperature`` ...): a range or
default changed here changes everywhere. The requests' dataclasses (``inference.protocol``, ``inference.sampler``)
take their defaults from here too, and the choice lists below are the only ones.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Kind = Literal["float", "int", "choice", "text", "lines"]

#: llama.cpp's KV cache types the app offers (profiles' load.kv_cache_type, Load.kv_cache_type, ``models quants
#: --kv-type``); hub.fit's bytes per element and llama_load's ggml types have a row for each.
KV_CACHE_TYPES = ("f16", "q8_0", "q4_0")
#: gpt-oss's reasoning efforts (its template's ``reasoning_effort``; ``ask --effort``); a profile's "" leaves the
#: template's own default (medium).
REASONING_EFFORTS = ("low", "medium", "high")


@dataclass(frozen=True)
class Field:
    key: str  # dotted key in the profile YAML, e.g. "sampling.temperature"
    label: str
    kind: Kind
    default: Any
    help: str
    lo: float | None = None
    hi: float | None = None  # None on a number: the bound comes from the profile (``bounds``)
    step: float = 1
    decimals: int = 0  # the fewest decimals a form shows (more when a saved value has more)
    unit: str = ""
    # A word the field takes besides its numbers ("auto"), or the text a form shows for the value ``lo``
    # ("random" for a seed of -1): ``special_value`` says which.
    special: str = ""
    special_value: Any = None
    choices: tuple[str, ...] = ()
    values: tuple[Any, ...] = ()  # the stored value of each choice, where it differs from the word shown
    also: tuple[Any, ...] = ()  # values accepted besides the range (llama.cpp's -1: all GPU layers)
    reload: bool = False  # a load setting: takes effect when the model is reloaded
    panel: bool = False  # in the chat settings panel (per chat); every field is in the profile dialog
    serve: bool = False  # an OpenAI request parameter of the same name (the key's last part)

    @property
    def section(self) -> str:
        return self.key.split(".", 1)[0]

    @property
    def name(self) -> str:
        return self.key.rsplit(".", 1)[-1]

    def shown(self, value: Any) -> str:
        """The word a form shows for a choice's stored ``value``."""
        if self.values and value in self.values:
            return self.choices[self.values.index(value)]
        return {True: "on", False: "off"}.get(value, value) if isinstance(value, bool) else str(value)

    def stored(self, word: str) -> Any:
        """The stored value of a choice's ``word``."""
        return self.values[self.choices.index(word)] if self.values and word in self.choices else word

    def bounds(self, profile: Any = None) -> tuple[float, float]:
        """The inclusive range; a field with no fixed maximum takes it from ``profile`` (the context's limit)."""
        lo = self.lo if self.lo is not None else float("-inf")
        hi = self.hi
        if hi is None:
            hi = float("inf")
            if self.key == "context.default" and profile is not None:
                hi = profile.context.max or profile.context.native
        return lo, hi

    def problem(self, value: Any, profile: Any = None) -> str | None:
        """Why ``value`` is not allowed here (a phrase that follows the key's name), or None when it is."""
        if self.special and self.special_value is not None and value == self.special_value:
            return None
        if value in self.also and not isinstance(value, bool):
            return None
        if self.kind == "choice" and self.values:
            if value not in self.values or isinstance(value, bool) != isinstance(self.values[0], bool):
                return f"must be one of {', '.join(repr(v) for v in self.values)}, not {value!r}"
            return None
        if self.kind == "choice":
            shown = {True: "on", False: "off"}.get(value, value) if isinstance(value, bool) else value
            if shown not in self.choices:
                return f"must be one of {', '.join(self.choices)}, not {value!r}"
            return None
        if self.kind in ("float", "int") and isinstance(value, (int, float)) and not isinstance(value, bool):
            lo, hi = self.bounds(profile)
            if not lo <= value <= hi:
                also = f" or {self.special_value!r}" if isinstance(self.special_value, str) else ""
                if hi == float("inf"):  # no maximum known here (a context without a profile)
                    return f"must be at least {_num(lo)}{also}, not {value!r}"
                return f"must be between {_num(lo)} and {_num(hi)}{also}, not {value!r}"
        return None


def _num(v: float) -> str:
    return f"{v:,.0f}".replace(",", "") if float(v).is_integer() else f"{v:g}"


FIELDS: tuple[Field, ...] = (
    Field("sampling.temperature", "Temperature", "float", 0.7,
          "Higher is more varied, lower more focused; 0 always picks the likeliest.",
          0.0, 5.0, 0.05, 2, panel=True, serve=True),
    Field("sampling.top_p", "Top p", "float", 0.95,
          "Sample only from the likeliest words that together make up this share.",
          0.0, 1.0, 0.05, 2, panel=True, serve=True),
    Field("sampling.top_k", "Top k", "int", 40, "Sample only from this many likeliest words (0: no limit).",
          0, 1000, 1, panel=True, serve=True),
    Field("sampling.min_p", "Min p", "float", 0.05, "Drop words less likely than this fraction of the likeliest one.",
          0.0, 1.0, 0.01, 2, panel=True, serve=True),
    Field("sampling.repeat_penalty", "Repeat penalty", "float", 1.1, "Above 1 discourages repeating recent words.",
          0.5, 3.0, 0.05, 2, panel=True, serve=True),
    Field("sampling.max_tokens", "Max tokens", "int", 1024, "The longest answer.",
          1, 1_048_576, 16, unit="tokens", panel=True, serve=True),
    Field("sampling.seed", "Seed", "int", -1, "The same seed and settings give the same answer (random: -1).",
          -1, 2**31 - 1, special="random", special_value=-1, serve=True),
    Field("prompt.system_prompt", "System prompt", "text", "",
          "Instructions the model sees before the conversation.", panel=True),
    Field("prompt.stop_strings", "Extra stop strings", "lines", (), "The answer ends at any of these (one a line)."),
    Field("reasoning.thinking", "Thinking", "choice", True,
          "Think before answering; off asks the model to answer at once, where its template allows it (Qwen3).",
          choices=("on", "off"), values=(True, False), panel=True),
    Field("reasoning.effort", "Reasoning effort", "choice", "",
          "How long gpt-oss thinks (default: the template's own, medium).",
          choices=("default", *REASONING_EFFORTS), values=("", *REASONING_EFFORTS), panel=True),
    Field("context.default", "Context", "int", 4096,
          "Tokens the model keeps in view: more remembers more and uses more memory.",
          1, None, 256, unit="tokens", reload=True, panel=True),
    Field("load.gpu_layers", "GPU layers", "int", "auto", "Layers run on the GPU (auto: as many as fit).",
          0, 999, special="auto", special_value="auto", also=(-1,), reload=True, panel=True),
    Field("load.threads", "Threads", "int", "auto", "CPU threads for generation (auto: the free cores).",
          1, 512, special="auto", special_value="auto", reload=True),
    Field("load.batch", "Batch size", "int", 512, "Prompt tokens processed at once: more is faster, uses more memory.",
          1, 16384, 64, unit="tokens", reload=True),
    Field("load.flash_attn", "Flash attention", "choice", "auto",
          "Faster attention where the backend has it (a quantized KV cache needs it).",
          choices=("auto", "on", "off"), reload=True),
    Field("load.kv_cache_type", "KV cache type", "choice", "f16", "q8_0 and q4_0 halve and quarter its memory.",
          choices=KV_CACHE_TYPES, reload=True),
)

BY_KEY: dict[str, Field] = {f.key: f for f in FIELDS}


def field(key: str) -> Field:
    return BY_KEY[key]


def default(key: str) -> Any:
    """The table's default for ``key``: the schema's dataclasses take theirs from here."""
    d = BY_KEY[key].default
    return list(d) if isinstance(d, tuple) else d


def panel_fields() -> list[Field]:
    return [f for f in FIELDS if f.panel]


def read(profile: Any, key: str) -> Any:
    """The profile's value of the dotted ``key``."""
    section, name = key.split(".", 1)
    return getattr(getattr(profile, section), name)


def nest(values: dict[str, Any]) -> dict[str, Any]:
    """``{"sampling.temperature": 3.0}`` -> ``{"sampling": {"temperature": 3.0}}`` (what save_override takes)."""
    out: dict[str, Any] = {}
    for key, v in values.items():
        section, name = key.split(".", 1)
        out.setdefault(section, {})[name] = v
    return out


__all__ = ["BY_KEY", "FIELDS", "Field", "KV_CACHE_TYPES", "REASONING_EFFORTS", "default", "field", "nest", "panel_fields",
           "read"]
