"""Fit with long contexts (issue 13 item 4, issue 16 goal 3): flash attention, KV types, compute buffers,
sliding windows, and the pre-load context plan (reduce with a notice, or refuse with the numbers)."""
from __future__ import annotations

import pytest

from desktop.engine.errors import ContextTooLargeError
from desktop.engine.hub import fit
from desktop.engine.hub.hardware import GPU, GiB, Hardware

# Llama-3-8B (the Gradient 1048k model): 32 layers, 32 query heads, 8 KV heads of 128, 128256 tokens.
L3_8B = fit.Arch(layers=32, kv_heads=8, head_dim=128, heads=32, embd=4096, vocab=128_256)
Q4_K_M = int(4.92e9)  # Meta-Llama-3-8B-Instruct Q4_K_M
M = 1_048_576


def machine(ram_gib: float, vram_bytes: float = 0, name: str = "GPU") -> Hardware:
    gpus = (GPU(0, name, "nvidia", int(vram_bytes), int(vram_bytes)),) if vram_bytes else ()
    return Hardware(int(ram_gib * GiB), int(ram_gib * GiB), 16, gpus)


H200 = machine(256, 141e9, "NVIDIA H200")  # "141 GB"
RTX4090 = machine(64, 24 * GiB, "RTX 4090")
LAPTOP = machine(16)


def test_one_million_tokens_fit_an_h200_with_flash_attention_and_q8_0():
    f = fit.estimate(Q4_K_M, L3_8B, M, H200, "q8_0", flash_attn="auto")
    assert f.kind == "gpu" and f.flash_attn
    assert f.kv_bytes == 68 * GiB  # 128 GiB of f16 x 34/64
    assert f.total_bytes < 141e9 - fit.VRAM_RESERVE_BYTES
    # f16 KV with flash attention: 128 GiB of KV + weights + buffers no longer fit beside the reserve
    f16 = fit.estimate(Q4_K_M, L3_8B, M, H200, "f16", flash_attn="on")
    assert f16.kind != "gpu" and f16.kv_bytes == 128 * GiB
    # without flash attention the scores alone are n_ctx x n_ubatch x heads x 4 B = 64 GiB
    off = fit.estimate(Q4_K_M, L3_8B, M, H200, "q8_0", flash_attn="off")
    assert off.compute_bytes - f.compute_bytes == M * 512 * (32 * 4 + 4)
    assert off.compute_bytes > 64 * GiB and off.kind != "gpu"
    assert "needs flash attention for a quantized V cache" in off.explanation


def test_compute_buffers_with_flash_attention_are_small_and_grow_without():
    act = 4 * 512 * 4 * 4096
    on = fit.compute_bytes(L3_8B, 8192, "on")
    assert on == 4 * 512 * 128_256 + act  # the logits outweigh the 16 MiB mask: the allocator reuses memory
    assert fit.compute_bytes(L3_8B, 8192, "off") == 512 * 8192 * (4 + 32 * 4 + 4) + act
    assert fit.compute_bytes(L3_8B, M, "on") == 512 * M * 4 + act
    assert fit.compute_bytes(L3_8B, 8192, "auto") == on  # llama.cpp's auto: on where supported
    # short contexts keep the measured 1 GiB floor, so short-context verdicts are unchanged
    assert fit.overhead_bytes(L3_8B, 8192, "on") == fit.OVERHEAD_BYTES
    assert fit.overhead_bytes(L3_8B, M, "off") > 64 * GiB


def test_advice_on_an_h200_says_q8_0_with_flash_attention_fits():
    lines = fit.advise(Q4_K_M, L3_8B, M, H200, "f16", flash_attn="auto")
    assert lines[0].startswith("as asked (1,048,576 tokens, f16 KV, flash attention on): partial offload")
    assert any(line.startswith("1,048,576 tokens with q8_0 KV + flash attention: fits on GPU (KV 68.0 GiB")
               for line in lines), lines


def test_advice_on_smaller_hardware_says_what_fits():
    lines = fit.advise(Q4_K_M, L3_8B, M, RTX4090, "q8_0", flash_attn="auto")
    on_gpu = {kt: int(line.rsplit(": ", 1)[1].split()[0].replace(",", ""))
              for kt in fit.KV_TYPES for line in lines
              if line.startswith(f"longest context fully on the GPU with {kt} KV")}
    assert set(on_gpu) == {"f16", "q8_0", "q4_0"}
    assert on_gpu["f16"] < on_gpu["q8_0"] < on_gpu["q4_0"] < M
    for kt, n in on_gpu.items():  # the largest, to the 256-token step llama.cpp pads the KV cache to
        assert fit.estimate(Q4_K_M, L3_8B, n, RTX4090, kt, flash_attn="on").kind == "gpu"
        assert fit.estimate(Q4_K_M, L3_8B, n + 256, RTX4090, kt, flash_attn="on").kind != "gpu"
    # 24 GiB: 23.5 usable - 4.6 weights - ~0.5 runtime - buffers, at 68 KiB/token of q8_0 KV: ~250k tokens
    assert 200_000 < on_gpu["q8_0"] < 300_000
    assert any("q4_0 KV + flash attention: partial offload" in line for line in lines), lines


def test_advice_when_nothing_fits_gives_the_longest_context_that_does():
    lines = fit.advise(Q4_K_M, L3_8B, M, LAPTOP, "f16")
    assert "won't fit" in lines[0]
    longest = [line for line in lines if line.startswith("longest context that fits at all")]
    assert longest and "f16" in longest[0]
    n = int(longest[0].split(": ")[1].split()[0].replace(",", ""))
    assert fit.estimate(Q4_K_M, L3_8B, n, LAPTOP, "f16", flash_attn="on").kind == "cpu"


def test_sliding_window_layers_hold_the_window_when_swa_full_is_off():
    g3 = fit.Arch(layers=34, kv_heads=4, head_dim=256, heads=8, embd=2560, vocab=262_144,
                  sliding_window=1024, swa_layers=29)
    full = fit.estimate(int(2.5 * GiB), g3, 131072, RTX4090, swa_full=True)
    windowed = fit.estimate(int(2.5 * GiB), g3, 131072, RTX4090, swa_full=False)
    per_cell = 4 * (256 + 256) * 2
    assert full.kv_bytes == 34 * 131072 * per_cell
    # llama.cpp sizes the windowed cache pad256(window + n_ubatch) = 1536 cells
    assert windowed.kv_bytes == (5 * 131072 + 29 * 1536) * per_cell
    assert "29 layers windowed to 1,024" in windowed.explanation
    assert any(line.startswith("with load.swa_full: false") for line in fit.advise(int(2.5 * GiB), g3, 131072,
                                                                                   RTX4090))


def test_plan_keeps_a_context_that_fits():
    plan = fit.plan_context(Q4_K_M, L3_8B, 8192, RTX4090)
    assert (plan.n_ctx, plan.notice) == (8192, "")


def test_plan_reduces_to_the_largest_context_that_fits_and_says_so():
    small = machine(8)
    plan = fit.plan_context(Q4_K_M, L3_8B, 65536, small, "f16", flash_attn="auto")
    assert 256 <= plan.n_ctx < 65536 and plan.n_ctx % 256 == 0
    cap = 8 * GiB - fit.RAM_RESERVE_BYTES
    assert plan.capacity_bytes == cap

    def need(n: int) -> int:
        return Q4_K_M + L3_8B.kv_bytes(n) + fit.overhead_bytes(L3_8B, n)

    assert need(plan.n_ctx) <= cap < need(plan.n_ctx + 256)
    assert plan.notice.startswith(f"context reduced from 65,536 to {plan.n_ctx:,} tokens, the most that fits: ")
    assert "65,536 tokens need" in plan.notice and "q8_0" in plan.notice


def test_plan_refuses_with_the_numbers_when_not_even_a_small_context_fits():
    with pytest.raises(ContextTooLargeError) as ei:
        fit.plan_context(Q4_K_M, L3_8B, M, machine(4))
    msg = ei.value.message
    assert msg.startswith("the model cannot be loaded with this context: 1,048,576 tokens need ")
    assert "KV 128.0 GiB f16" in msg and "not even 2,048 tokens fit" in msg
    assert ei.value.code == "context_too_large"


def test_plan_counts_vram_only_when_layers_go_to_the_gpu():
    gpu = machine(8, 24 * GiB)
    assert fit.plan_context(Q4_K_M, L3_8B, 131072, gpu, "q8_0").n_ctx == 131072
    assert fit.plan_context(Q4_K_M, L3_8B, 131072, gpu, "q8_0", use_gpu=False).n_ctx < 131072


# ------------------------------------------------------------------------------ through the engine process


def _load(path, n_ctx: int, monkeypatch, ram: str, **kw):
    pytest.importorskip("llama_cpp")
    from desktop.engine.inference import protocol as P
    from desktop.engine.inference.client import EngineClient, new_id

    monkeypatch.setenv("DESKTOP_CHAT_FAKE_HW", f"ram={ram}")  # the engine process reads it in hardware.detect
    c = EngineClient()
    try:
        return c.load(P.Load(id=new_id("load"), model_path=str(path), n_ctx=n_ctx, n_threads=1, **kw))
    finally:
        c.close()


def test_engine_reduces_a_context_that_cannot_fit_and_says_so(tmp_path, monkeypatch):
    from tests.fixtures import tiny_gguf

    m = tiny_gguf.make_gemma3(tmp_path / "g.gguf")  # 3 KiB of f16 KV per token, 2 KiB of attention mask
    # 2 GiB of RAM, 0.5 GiB kept for the system: 262,144 tokens need 0.5 GiB runtime + 0.75 GiB KV + 0.5 GiB
    # mask = 1.75 GiB, so the context must shrink (to about 200k tokens)
    loaded = _load(m.path, 262144, monkeypatch, "2G")
    assert 2048 <= loaded.n_ctx < 262144
    assert any(n.startswith("context reduced from 262,144 to ") for n in loaded.notes), loaded.notes


def test_engine_refuses_a_context_that_cannot_fit_with_the_numbers(tmp_path, monkeypatch):
    from desktop.engine.errors import ContextTooLargeError
    from tests.fixtures import tiny_gguf

    m = tiny_gguf.make_gemma3(tmp_path / "g.gguf")
    with pytest.raises(ContextTooLargeError) as ei:
        _load(m.path, 262144, monkeypatch, "1G")
    assert "262,144 tokens need" in ei.value.message and "not even 2,048 tokens fit" in ei.value.message


def test_engine_refuses_a_quantized_cache_without_flash_attention(tmp_path, monkeypatch):
    from desktop.engine.errors import ModelLoadError
    from tests.fixtures import tiny_gguf

    m = tiny_gguf.make_gemma3(tmp_path / "g.gguf")
    with pytest.raises(ModelLoadError, match="needs flash attention"):
        _load(m.path, 2048, monkeypatch, "16G", flash_attn="off", kv_cache_type="q8_0")
    assert _load(m.path, 2048, monkeypatch, "16G", flash_attn="auto", kv_cache_type="q8_0").n_ctx == 2048


# ------------------------------------------------------------------------------ the CLI, against the loopback hub


def test_models_quants_for_gradient_1m_on_an_h200_and_on_a_smaller_gpu(hub_server):
    from tests.engine.test_downloads import run_cli

    # a stub file: the 68 GiB of q8_0 KV and the buffers decide (the profile has the architecture)
    hub_server.add("crusoeai/Llama-3-8B-Instruct-1048k-GGUF", {
        "llama-3-8b-instruct-1048k.Q4_K_M.gguf": b"GGUF" + b"\0" * 4000})
    args = ("models", "quants", "llama-3-8b-instruct-gradient-1048k", "--ctx", "1048576", "--kv-type", "q8_0")
    r = run_cli(*args, env={"DESKTOP_CHAT_FAKE_HW": "ram=256G,vram=131G"})  # an H200: 141 GB = 131 GiB
    assert r.returncode == 0, r.stderr
    assert "fits on GPU" in r.stdout and "KV 68.0 GiB (1,048,576 tokens, q8_0)" in r.stdout
    assert "flash attention on" in r.stdout
    r = run_cli(*args, env={"DESKTOP_CHAT_FAKE_HW": "ram=64G,vram=24G"})
    assert r.returncode == 0, r.stderr
    assert "longest context fully on the GPU with q8_0 KV + flash attention: " in r.stdout
    assert "1,048,576 tokens with q4_0 KV + flash attention: " in r.stdout


def test_profiles_take_flash_attn_auto_on_off_and_yaml_booleans(tmp_path):
    from desktop.engine.errors import ProfileError
    from desktop.engine.profiles import profile_from_dict

    base = {"id": "x", "name": "X", "source": {"repo": "a/b"}}
    for value in ("auto", "on", "off", True, False):
        p = profile_from_dict({**base, "load": {"flash_attn": value, "kv_cache_type": "q8_0"}}, "x.yaml")
        assert p.load.flash_attn == value and fit.flash_attn_on(value) == (value in ("auto", "on", True))
    assert profile_from_dict(base, "x.yaml").load.flash_attn == "auto"  # llama.cpp's default
    with pytest.raises(ProfileError, match="load.flash_attn"):
        profile_from_dict({**base, "load": {"flash_attn": "sometimes"}}, "x.yaml")
