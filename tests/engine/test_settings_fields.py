"""The settings table drives the profile validator, the schema's defaults, serve's request checks, the requests'
defaults and the choice lists: each is checked against the table field by field, so a range, a default or a list
changed in the table is changed everywhere."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from desktop.engine.errors import ProfileError
from desktop.engine.server.requests import BadRequest, sampling_from
from desktop.engine.profiles import ContextSpec, LoadSpec, ProfileStore, Sampling, profile_from_dict
from desktop.engine.profiles.fields import FIELDS, Field, read

DEMO_YAML = Path("model_profiles/smollm2-135m-instruct.yaml")
NUMBERS = [f for f in FIELDS if f.kind in ("float", "int")]


def _with(key: str, value: Any) -> dict[str, Any]:
    data = yaml.safe_load(DEMO_YAML.read_text())
    section, name = key.split(".", 1)
    data[section] = {**data.get(section, {}), name: value}
    return data


def _edges(f: Field, hi: float) -> tuple[Any, Any]:
    """The values just outside the range (``None`` below a field whose minimum is its special value)."""
    step = 1 if f.kind == "int" else f.step
    below = None if f.special_value == f.lo else f.lo - step
    return below, hi + step


@pytest.mark.parametrize("f", NUMBERS, ids=lambda f: f.key)
def test_validation_takes_the_tables_range_and_names_the_key(f: Field) -> None:
    demo = profile_from_dict(yaml.safe_load(DEMO_YAML.read_text()), "demo.yaml")
    lo, hi = f.bounds(demo)
    for ok in (f.lo, hi):
        assert read(profile_from_dict(_with(f.key, ok), "demo.yaml"), f.key) == ok
    for bad in _edges(f, hi):
        if bad is None or bad in f.also:
            continue
        with pytest.raises(ProfileError) as ei:
            profile_from_dict(_with(f.key, bad), "mine.yaml")
        assert ei.value.message.startswith(f"mine.yaml: {f.key}: must be between ")
        assert getattr(ei.value, "key", None) == f.key


@pytest.mark.parametrize("f", [f for f in FIELDS if f.kind == "choice"], ids=lambda f: f.key)
def test_a_choice_outside_the_table_names_the_key(f: Field) -> None:
    for ok in f.values or f.choices:
        assert read(profile_from_dict(_with(f.key, ok), "demo.yaml"), f.key) == ok
    with pytest.raises(ProfileError) as ei:  # the type check may speak first (flash_attn also takes true/false)
        profile_from_dict(_with(f.key, "fastest"), "mine.yaml")
    assert ei.value.message.startswith(f"mine.yaml: {f.key}: ") and "'fastest'" in ei.value.message


def test_the_schema_defaults_are_the_tables() -> None:
    made = {"sampling": Sampling(), "load": LoadSpec(), "context": ContextSpec()}
    checked = [f.key for f in FIELDS if f.section in made]
    for key in checked:
        section, name = key.split(".", 1)
        assert getattr(made[section], name) == next(f.default for f in FIELDS if f.key == key), key
    assert len(checked) >= 12


SERVE = [f for f in FIELDS if f.serve]


def _body(**extra: Any) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": "hi"}], **extra}


def generate_from_body(_profile: Any, body: dict[str, Any], _rid: str) -> Any:
    """The sampling values the server takes from ``body`` (as attributes, like a Generate request's)."""
    return type("Sampling", (), sampling_from(body))


@pytest.mark.parametrize("f", SERVE, ids=lambda f: f.key)
def test_serve_accepts_the_tables_range_and_refuses_past_it_naming_the_param(f: Field) -> None:
    lo, hi = f.bounds()
    for ok in (f.lo, hi):
        assert getattr(generate_from_body(None, _body(**{f.name: ok}), "r1"), f.name) == ok
    for bad in _edges(f, hi):
        if bad is None:
            continue
        with pytest.raises(BadRequest) as ei:
            generate_from_body(None, _body(**{f.name: bad}), "r1")
        assert ei.value.param == f.name and ei.value.code == "invalid_value"
        assert f"between {lo:g} and" in ei.value.message


def test_serve_takes_every_sampling_setting_of_the_table() -> None:
    assert {f.name for f in SERVE} == {f.name for f in FIELDS if f.section == "sampling"}
    # A temperature the profile dialog saves is one serve takes too (it used to stop at 2).
    assert generate_from_body(None, _body(temperature=3.0), "r1").temperature == 3.0


def test_a_reload_tells_the_listeners(tmp_path: Path) -> None:
    store = ProfileStore(user_dir=tmp_path / "user")
    calls: list[int] = []

    def listener() -> None:
        calls.append(1)

    store.add_listener(listener)
    store.reload()
    assert calls == [1]
    store.remove_listener(listener)
    store.reload()
    assert calls == [1]


# ------------------------------------------------------------------------------------------ one place

def test_the_requests_defaults_are_the_tables() -> None:
    """A request built without a profile (``ask --model``, serve) asks for what a profile would."""
    from desktop.engine.inference.protocol import Generate, Load
    from desktop.engine.inference.sampler import SamplerSpec
    from desktop.engine.library import registry
    from desktop.engine.profiles.fields import default

    gen, spec, load = Generate(id="g"), SamplerSpec(), Load(id="l", model_path="m.gguf")
    sampling = [f for f in FIELDS if f.section == "sampling"]
    assert len(sampling) == 7
    for f in sampling:
        assert getattr(gen, f.name) == f.default, f.key
        if hasattr(spec, f.name):
            assert getattr(spec, f.name) == f.default, f.key
    assert spec.seed == -1  # random, as the table says (the engine draws it: llama_generate)
    assert (load.n_ctx, load.n_batch, load.kv_cache_type, load.flash_attn, load.n_gpu_layers, load.n_threads) == (
        default("context.default"), default("load.batch"), default("load.kv_cache_type"), default("load.flash_attn"),
        default("load.gpu_layers"), default("load.threads"))
    assert registry.load_request(None, "m.gguf", "l").n_ctx == default("context.default")


def test_every_kv_cache_type_of_the_table_has_its_bytes_and_its_ggml_type() -> None:
    from desktop.engine.hub import fit
    from desktop.engine.inference import llama_load
    from desktop.engine.profiles.fields import KV_CACHE_TYPES

    assert set(fit.KV_BYTES_PER_ELEMENT) == set(llama_load.KV_TYPES) == set(KV_CACHE_TYPES)


def test_defaults_and_choice_lists_are_read_from_the_table_everywhere() -> None:
    """Change the table (before anything else reads it) and every other place follows: none keeps its own copy."""
    import subprocess
    import sys

    code = r'''
import dataclasses, importlib.util, sys, typing
import desktop
spec = importlib.util.spec_from_file_location("desktop.engine.profiles.fields",
                                              desktop.__path__[0] + "/engine/profiles/fields.py")
F = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = F
spec.loader.exec_module(F)
F.KV_CACHE_TYPES = ("f16", "q8_0", "q5_1")
F.REASONING_EFFORTS = ("low", "high")
new = {"sampling.temperature": 0.25, "sampling.top_p": 0.5, "sampling.top_k": 7, "sampling.min_p": 0.125,
       "sampling.repeat_penalty": 1.5, "sampling.max_tokens": 99, "sampling.seed": 5, "context.default": 1234,
       "load.batch": 77, "load.kv_cache_type": "q8_0"}
for key, value in new.items():
    F.BY_KEY[key] = dataclasses.replace(F.BY_KEY[key], default=value)

from desktop.engine.inference.protocol import Generate, Load
from desktop.engine.inference.sampler import SamplerSpec
from desktop.engine.inference import reasoning
from desktop.engine.hub import fit
from desktop.engine.library import registry
from desktop.engine.profiles import schema
from desktop.cli import build_parser

gen, load, samp = Generate(id="g"), Load(id="l", model_path="m"), SamplerSpec()
for key, value in new.items():
    section, name = key.split(".")
    if section == "sampling":
        assert getattr(gen, name) == value, key
        assert getattr(schema.Sampling(), name) == value, key
        assert not hasattr(samp, name) or getattr(samp, name) == value, key
assert (load.n_ctx, load.n_batch, load.kv_cache_type) == (1234, 77, "q8_0")
assert registry.load_request(None, "m.gguf", "l").n_ctx == 1234
assert fit.KV_TYPES == typing.get_args(schema.KVCacheType) == F.KV_CACHE_TYPES
assert reasoning.EFFORTS == F.REASONING_EFFORTS and typing.get_args(schema.ReasoningEffort) == ("", "low", "high")

def takes(*argv):
    try:
        build_parser().parse_args(list(argv))
    except SystemExit:
        return False
    return True

assert takes("models", "quants", "r", "--kv-type", "q5_1") and not takes("models", "quants", "r", "--kv-type", "q4_0")
assert takes("ask", "--effort", "high", "hi") and not takes("ask", "--effort", "medium", "hi")
print("ok")
'''
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.stdout.strip() == "ok", r.stderr
