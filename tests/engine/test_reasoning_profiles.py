"""Reasoning profiles: the thinking controls reach the prompt, reasoning models get room to think, gpt-oss fits."""
from __future__ import annotations

from pathlib import Path

import pytest

from desktop.engine.hub import fit
from desktop.engine.hub.hardware import GPU, GiB, Hardware
from desktop.engine.hub.listing import quant_of
from desktop.engine.library import registry
from desktop.engine.profiles import REASONING_MAX_TOKENS, ProfileStore, profile_from_dict

TEMPLATES = Path(__file__).parents[1] / "fixtures" / "chat_templates"
MSGS = [{"role": "user", "content": "Say hi."}]


@pytest.fixture()
def store() -> ProfileStore:
    return ProfileStore()


def test_every_reasoning_profile_has_room_to_think(store: ProfileStore):
    reasoning = [store.get(pid) for pid in store.ids() if store.get(pid).is_reasoning]
    assert {p.id for p in reasoning} >= {"qwen3-1.7b", "qwen3-4b", "gpt-oss-20b"}
    assert all(p.sampling.max_tokens >= REASONING_MAX_TOKENS for p in reasoning)
    assert not store.get("qwen2.5-1.5b-instruct").is_reasoning


def test_thinking_off_reaches_the_qwen3_template(store: ProfileStore):
    p = store.get("qwen3-4b")
    gen = registry.generate_request(p, MSGS, "g")
    assert gen.prompt_spec["reasoning_format"] == "think" and gen.prompt_spec["enable_thinking"] is None
    off = profile_from_dict({**_raw(p), "reasoning": {"format": "think", "thinking": False}}, "<test>")
    text = registry.render_for_profile(off, MSGS, (TEMPLATES / "qwen3.jinja").read_text("utf-8"))
    assert text.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    assert registry.generate_request(off, MSGS, "g").prompt_spec["enable_thinking"] is False


def test_effort_reaches_the_gpt_oss_template(store: ProfileStore):
    p = store.get("gpt-oss-20b")
    assert registry.generate_request(p, MSGS, "g").prompt_spec["reasoning_effort"] == "medium"
    high = profile_from_dict({**_raw(p), "reasoning": {"format": "harmony", "effort": "high"}}, "<test>")
    text = registry.render_for_profile(high, MSGS, (TEMPLATES / "gpt-oss.jinja").read_text("utf-8"))
    assert "\nReasoning: high\n" in text and text.endswith("<|start|>user<|message|>Say hi.<|end|><|start|>assistant")


def test_bad_effort_is_refused(store: ProfileStore):
    from desktop.engine.errors import ProfileError

    with pytest.raises(ProfileError, match="reasoning.effort"):
        profile_from_dict({**_raw(store.get("gpt-oss-20b")), "reasoning": {"effort": "extreme"}}, "<test>")


def test_gpt_oss_20b_profile(store: ProfileStore):
    p = store.get("gpt-oss-20b")
    assert p.source.repo == "ggml-org/gpt-oss-20b-GGUF" and quant_of("gpt-oss-20b-mxfp4.gguf") == "MXFP4"
    assert p.source.recommended_quant == "MXFP4" and 11 < p.approx_size_gb < 13
    assert 200007 not in p.prompt.stop_tokens  # <|end|> closes a message, not the turn
    a = fit.Arch.from_profile(p)
    assert (a.experts, a.sliding_window, a.swa_layers) == (32, 128, 12)
    size = int(p.approx_size_gb * 1e9)
    gpu = fit.estimate(size, a, p.context.default, Hardware(32 * GiB, 24 * GiB, 16, (GPU(0, "RTX 4090", "nvidia", 24 * GiB, 23 * GiB),)), p.load.kv_cache_type,
                       flash_attn=p.load.flash_attn, swa_full=p.load.swa_full)
    assert gpu.kind == "gpu", gpu.explanation  # a 24 GB card holds it whole
    small = fit.estimate(size, a, p.context.default, Hardware(8 * GiB, 0, 8), p.load.kv_cache_type,
                         flash_attn=p.load.flash_attn, swa_full=p.load.swa_full)
    assert small.kind != "gpu" and small.kind != "cpu", small.explanation  # 8 GB of RAM is not enough


def _raw(p) -> dict:
    d = p.to_dict()
    for k in ("origin", "overridden_by"):
        d.pop(k, None)
    return d
