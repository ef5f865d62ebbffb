"""Starter profiles: small, widely used instruct models a newcomer can run on a laptop, listed first."""
from __future__ import annotations

from pathlib import Path

import pytest

from desktop.engine.hub import fit
from desktop.engine.hub.hardware import GiB, Hardware
from desktop.engine.hub.listing import quant_of
from desktop.engine.inference import prompts
from desktop.engine.profiles import ProfileStore

# The public GGUF repos and the recommended file in each (names confirmed in public code that downloads them).
STARTERS = {
    "llama-3.2-1b-instruct": ("bartowski/Llama-3.2-1B-Instruct-GGUF", "Llama-3.2-1B-Instruct-Q4_K_M.gguf", "llama31"),
    "llama-3.2-3b-instruct": ("bartowski/Llama-3.2-3B-Instruct-GGUF", "Llama-3.2-3B-Instruct-Q4_K_M.gguf", "llama31"),
    "qwen2.5-1.5b-instruct": ("Qwen/Qwen2.5-1.5B-Instruct-GGUF", "qwen2.5-1.5b-instruct-q4_k_m.gguf", "chatml"),
    "gemma-3-4b-it": ("bartowski/google_gemma-3-4b-it-GGUF", "google_gemma-3-4b-it-Q4_K_M.gguf", "gemma"),
    "phi-4-mini-instruct": ("bartowski/microsoft_Phi-4-mini-instruct-GGUF",
                            "microsoft_Phi-4-mini-instruct-Q4_K_M.gguf", "phi4mini"),
    "mistral-7b-instruct-v0.3": ("bartowski/Mistral-7B-Instruct-v0.3-GGUF", "Mistral-7B-Instruct-v0.3-Q4_K_M.gguf",
                                 "mistral_v3"),
    # reasoning models: their own template (enable_thinking, earlier thinking dropped)
    "qwen3-1.7b": ("unsloth/Qwen3-1.7B-GGUF", "Qwen3-1.7B-Q4_K_M.gguf", "gguf"),
    "qwen3-4b": ("Qwen/Qwen3-4B-GGUF", "Qwen3-4B-Q4_K_M.gguf", "gguf"),
}
QWEN3_TEMPLATE = (Path(__file__).parents[1] / "fixtures" / "chat_templates" / "qwen3.jinja").read_text("utf-8")
# the end-of-turn text each family's answers end with
EOT = {"llama31": "<|eot_id|>", "chatml": "<|im_end|>", "gemma": "<end_of_turn>", "phi4mini": "<|end|>",
       "mistral_v3": "</s>", "gguf": "<|im_end|>"}
LAPTOP_16G = Hardware(16 * GiB, 12 * GiB, 8)


@pytest.fixture()
def store() -> ProfileStore:
    return ProfileStore()


def test_the_starters_are_bundled_and_listed_first(store: ProfileStore):
    ids = store.ids()
    starters = [pid for pid in ids if store.get(pid).starter]
    assert set(starters) == set(STARTERS)
    assert ids[: len(starters)] == starters  # first, in file order
    rest = [pid for pid in ids[len(starters):] if not store.get(pid).overridden_by]
    assert "smollm2-135m-instruct" in rest and "llama-3-8b-instruct-gradient-1048k" in rest
    bundled = [pid for pid in rest if Path(store.get(pid).origin).parent == store.bundled_dir]
    assert bundled == sorted(bundled, key=lambda pid: store.get(pid).origin)  # the seed profiles keep their order


@pytest.mark.parametrize("pid", sorted(STARTERS))
def test_starter_profile(store: ProfileStore, pid: str):
    repo, filename, fmt = STARTERS[pid]
    p = store.get(pid)
    assert p.source.repo == repo and p.source.recommended_quant == "Q4_K_M" == quant_of(filename)
    assert p.prompt.format == fmt and p.prompt.stop_tokens
    assert EOT[fmt] in (*prompts.format_info(fmt).stop_strings, *p.prompt.stop_strings)
    a = p.architecture
    assert 1.0 <= a.params_b <= 8 and 0.5 < p.approx_size_gb < 5
    assert a.layers and a.embd and a.heads and a.kv_heads and a.head_dim and a.vocab
    assert p.load.flash_attn == "auto" and p.context.default <= p.context.native
    # a newcomer's 16 GB laptop runs it at the default context, on the CPU alone
    f = fit.estimate(int(p.approx_size_gb * 1e9), fit.Arch.from_profile(p), p.context.default, LAPTOP_16G,
                     p.load.kv_cache_type, flash_attn=p.load.flash_attn, swa_full=p.load.swa_full)
    assert f.kind == "cpu", f.explanation
    assert "Starter model" in p.notes


def test_gemma_starter_carries_its_head_size_and_sliding_window(store: ProfileStore):
    p = store.get("gemma-3-4b-it")
    a = fit.Arch.from_profile(p)
    assert a.head_dim == 256 != p.architecture.embd // p.architecture.heads
    assert (a.sliding_window, a.swa_layers) == (1024, 29)
    assert a.kv_bytes(131072, swa_full=False) < a.kv_bytes(131072, swa_full=True) / 5


def test_starter_prompts_render(store: ProfileStore):
    msgs = [{"role": "user", "content": "Hello"}]
    for pid in STARTERS:
        p = store.get(pid)
        template = QWEN3_TEMPLATE if p.prompt.format == "gguf" else None
        text = prompts.render(p.prompt.format, msgs, system_prompt=p.prompt.system_prompt,
                              date_string=p.prompt.date_string, chat_template=template)
        assert "Hello" in text and text.startswith(prompts.format_info(p.prompt.format).bos_text)
