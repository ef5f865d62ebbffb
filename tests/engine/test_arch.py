"""gguf.arch: architecture numbers, the end-of-turn token llama.cpp would pick, and family detection."""
from __future__ import annotations

from pathlib import Path

import pytest

from desktop.engine.gguf import arch
from desktop.engine.gguf import doctor as gguf_doctor
from desktop.engine.gguf import header as gguf_header
from tests.fixtures import tiny_gguf


def meta(architecture: str, **kv) -> dict:
    d = {"general.architecture": architecture}
    d.update({f"{architecture}.{k.replace('__', '.')}": v for k, v in kv.items()})
    return d


def test_gemma3_head_size_comes_from_key_length_not_embd_over_heads():
    # Gemma 3 4B: 2560 / 8 = 320, but its heads are 256 wide
    n = arch.numbers(meta("gemma3", block_count=34, embedding_length=2560, attention__head_count=8,
                          attention__head_count_kv=4, attention__key_length=256, attention__value_length=256,
                          attention__sliding_window=1024, context_length=131072))
    assert (n.head_dim, n.head_dim_v) == (256, 256)
    # llama.cpp's Gemma 3 pattern: in each group of 6 layers the first 5 are windowed
    assert (n.sliding_window, n.swa_layers) == (1024, 29)


def test_sliding_window_patterns():
    assert arch.swa_layers("gemma2", 42) == 21  # every other layer
    assert arch.swa_layers("gemma3", 26) == 22
    assert arch.swa_layers("cohere2", 8) == 6
    assert arch.swa_layers("llama", 32) == 0
    # a pattern the file states wins: an int n, or one bool per layer
    assert arch.swa_layers("llama4", 8, 4) == 6
    assert arch.swa_layers("whatever", 4, [True, False, True, False]) == 2


def test_a_stated_window_llama_cpp_ignores_is_not_applied():
    # Mistral 7B v0.1 states sliding_window 4096 under "llama"; llama.cpp attends to the whole context
    n = arch.numbers(meta("llama", block_count=32, embedding_length=4096, attention__head_count=32,
                          attention__head_count_kv=8, attention__sliding_window=4096))
    assert (n.sliding_window, n.swa_layers, n.stated_window, n.head_dim) == (0, 0, 4096, 128)


def test_moe_numbers():
    n = arch.numbers(meta("llama", block_count=32, embedding_length=4096, attention__head_count=32,
                          expert_count=8, expert_used_count=2))
    assert (n.experts, n.experts_used, n.kv_heads) == (8, 2, 32)


def test_kv_cells_window_only_when_windowed():
    n = arch.ArchNumbers("gemma3", 6, 32, 4, 2, 64, 64, 32768, sliding_window=256, swa_layers=5)
    assert n.kv_cells(8192) == 1 * 8192 + 5 * 256
    assert n.kv_cells(100) == 6 * 100
    assert n.kv_bytes(8192, 2.0) == (8192 + 5 * 256) * 2 * (64 + 64) * 2


def test_eot_by_text_follows_llama_cpp_list_order():
    assert arch.eot_by_text({"<|im_end|>": 2, "<|endoftext|>": 0}) == (2, "<|im_end|>")
    assert arch.eot_by_text({"<end_of_turn>": 106}) == (106, "<end_of_turn>")
    assert arch.eot_by_text({"<｜end▁of▁sentence｜>": 1}) == (1, "<｜end▁of▁sentence｜>")
    assert arch.eot_by_text({"[INST]": 3}) is None


@pytest.mark.parametrize("architecture,tok,specials,expected", [
    ("gemma3", "llama", {}, "gemma"),
    ("gemma2", "llama", {}, "gemma"),
    ("gemma", "llama", {}, "gemma"),
    ("qwen2", "gpt2", {}, "chatml"),
    ("qwen3", "gpt2", {}, "chatml"),
    ("phi3", "llama", {}, "phi3"),
    ("phi3", "gpt2", {}, "phi4mini"),
    ("command-r", "gpt2", {}, "command_r"),
    ("deepseek2", "gpt2", {}, "deepseek2"),
    ("deepseek2", "gpt2", {"<｜User｜>": 1}, "deepseek3"),
    ("qwen2", "gpt2", {"<｜User｜>": 1, "<think>": 2}, "deepseek_r1"),  # R1-Distill-Qwen
    ("llama", "gpt2", {"<|start_header_id|>": 1, "<|eot_id|>": 2}, "llama3"),
    ("llama", "gpt2", {"<|start_header_id|>": 1, "<|eot_id|>": 2, "<|eom_id|>": 3}, "llama31"),
    ("llama", "gpt2", {"<|im_start|>": 1, "<|im_end|>": 2}, "chatml"),  # SmolLM2 & co
    ("llama", "llama", {"[INST]": 3}, "mistral_v3"),
    ("llama", "gpt2", {"[INST]": 3}, "mistral_tekken"),
    ("llama", "gpt2", {"[INST]": 3, "[SYSTEM_PROMPT]": 17}, "mistral_v7"),
])
def test_detect_format(architecture, tok, specials, expected):
    det = arch.detect_format(architecture, tok, specials)
    assert det is not None and det.format == expected
    assert det.reason.startswith(f"detected ({expected}, from ")


@pytest.mark.parametrize("architecture,tok,specials", [
    ("llama", "llama", {}),  # a plain Llama-2-style vocabulary: Llama 2 chat? Vicuna? Mistral v0.1? ask
    ("phi3", "gpt2", {"<|im_sep|>": 1}),  # Phi-4 14B
    ("granite", "gpt2", {}),
    (None, None, {}),
])
def test_unknown_families_are_not_guessed(architecture, tok, specials):
    assert arch.detect_format(architecture, tok, specials) is None


def test_doctor_reports_numbers_eot_and_detection_for_a_template_less_gemma(tmp_path: Path):
    m = tiny_gguf.make_gemma3(tmp_path / "g.gguf")
    rep = gguf_doctor.inspect(m.path)
    assert not rep.has_chat_template
    assert (rep.eot.id, rep.eot.text, rep.eot_source) == (m.eot_id, "<end_of_turn>", "text")
    assert rep.detected == {"format": "gemma", "reason": "detected (gemma, from general.architecture 'gemma3')"}
    assert rep.numbers["head_dim"] == 64 and rep.numbers["embd"] // rep.numbers["heads"] == 8
    assert (rep.numbers["sliding_window"], rep.numbers["swa_layers"]) == (256, 5)
    # the same numbers from a ranged header read (what `models quants` sees before a download)
    head = gguf_header.arch_numbers(gguf_header.parse_prefix(m.path.read_bytes()[:65536]))
    assert (head["head_dim"], head["sliding_window"], head["swa_layers"]) == (64, 256, 5)


def test_doctor_eot_from_metadata_wins(tmp_path: Path):
    m = tiny_gguf.make_llama3(tmp_path / "l.gguf")
    rep = gguf_doctor.inspect(m.path)
    assert rep.eot_source == "metadata"
    assert rep.eot.id == 128009
    assert rep.specials["<|start_header_id|>"] > 0 and rep.detected["format"] == "llama3"


def test_cli_inspect_prints_eot_source_and_head_size(tmp_path: Path):
    import subprocess
    import sys

    m = tiny_gguf.make_gemma3(tmp_path / "g.gguf")
    r = subprocess.run([sys.executable, "-m", "desktop", "gguf", "inspect", str(m.path)], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "<end_of_turn>" in r.stdout and "found by its text" in r.stdout
    assert "head size     k 64 / v 64   sliding window 5 layers x 256" in r.stdout
    assert "detected (gemma, from general.architecture 'gemma3')" in r.stdout
