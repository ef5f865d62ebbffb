"""How a file gets its format: its template, else the family detected from metadata, else the user's choice
(FormatUnknownError with the choices; never a silent ChatML). Generated profiles are unique and say where
their format came from."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from desktop.engine import paths
from desktop.engine.errors import FormatUnknownError, from_dict
from desktop.engine.gguf import doctor as gguf_doctor
from desktop.engine.inference import prompts
from desktop.engine.library import generated
from desktop.engine.library import registry
from desktop.engine.profiles import ProfileStore
from tests.fixtures import tiny_gguf


@pytest.fixture()
def gemma(tmp_path: Path) -> tiny_gguf.TinyModel:
    return tiny_gguf.make_gemma3(tmp_path / "tiny-gemma3.gguf")


@pytest.fixture()
def bare_spm(tmp_path: Path) -> tiny_gguf.TinyModel:
    # a Llama-2-style SPM vocabulary without a template: Llama 2 chat? Mistral v0.1? Vicuna? Nobody can tell.
    return tiny_gguf.make_spm(tmp_path / "mystery.gguf", chat_template=None)


def test_template_comes_first(tmp_path: Path):
    m = tiny_gguf.make_gemma3(tmp_path / "with-template.gguf", chat_template=tiny_gguf.MISTRAL_TEMPLATE)
    assert generated.format_for(gguf_doctor.inspect(m.path)) == ("gguf", "template")


def test_detected_family_when_there_is_no_template(gemma):
    rep = gguf_doctor.inspect(gemma.path)
    assert generated.format_for(rep) == ("gemma", "detected (gemma, from general.architecture 'gemma3')")


def test_unknown_family_asks_with_the_choices(bare_spm):
    rep = gguf_doctor.inspect(bare_spm.path)
    with pytest.raises(FormatUnknownError) as ei:
        generated.format_for(rep)
    err = ei.value
    assert "has no chat template" in err.message and "choose one of" in err.message
    assert set(err.choices) == set(prompts.HAND_FORMATS) and "chatml" in err.choices and "gguf" not in err.choices
    # the choices survive the trip across the engine process boundary
    again = from_dict(err.to_dict())
    assert isinstance(again, FormatUnknownError) and again.choices == err.choices
    assert generated.format_for(rep, "llama2") == ("llama2", "user choice")


def test_generated_profile_notes_say_where_the_format_came_from(gemma):
    prof = generated.profile_from_report(gguf_doctor.inspect(gemma.path))
    assert prof.prompt.format == "gemma"
    assert prof.notes.startswith("prompt format: detected (gemma, from general.architecture 'gemma3'); ")
    assert "<end_of_turn>" in prof.notes and "from its text" in prof.notes
    assert gemma.eot_id in prof.prompt.stop_tokens  # found by text, as llama.cpp finds it
    assert prof.architecture.head_dim == 64  # key_length, not embd / heads
    saved = yaml.safe_load((paths.user_profiles_dir() / f"{prof.id}.yaml").read_text())
    assert saved["notes"] == prof.notes and saved["source"]["local_file"] == str(gemma.path.absolute())


def test_user_choice_is_recorded(bare_spm):
    rep = gguf_doctor.inspect(bare_spm.path)
    with pytest.raises(FormatUnknownError):
        generated.profile_from_report(rep)
    assert not (paths.user_profiles_dir().is_dir() and list(paths.user_profiles_dir().glob("*.yaml")))
    prof = generated.profile_from_report(rep, prompt_format="mistral_v3")
    assert prof.prompt.format == "mistral_v3" and prof.notes.startswith("prompt format: user choice; ")
    # the same file again keeps its profile and the choice, without asking
    assert generated.profile_from_report(rep).prompt.format == "mistral_v3"


def test_generated_ids_are_unique_per_file(tmp_path: Path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = tiny_gguf.make_gemma3(tmp_path / "a" / "model.gguf")  # two files with the same model name
    b = tiny_gguf.make_gemma3(tmp_path / "b" / "model.gguf")
    pa = generated.profile_from_report(gguf_doctor.inspect(a.path))
    pb = generated.profile_from_report(gguf_doctor.inspect(b.path))
    assert pa.id == "tiny-gemma3" and pb.id == "tiny-gemma3-2"
    assert generated.profile_from_report(gguf_doctor.inspect(a.path)).id == pa.id  # same file: same profile
    store = ProfileStore()
    assert {pa.id, pb.id} <= set(store.ids())
    assert store.get(pb.id).source.local_file == str(b.path.absolute())


def test_generated_id_never_takes_a_bundled_id(tmp_path: Path):
    m = tiny_gguf.make_gemma3(tmp_path / "x.gguf", name="smollm2-135m-instruct")
    prof = generated.profile_from_report(gguf_doctor.inspect(m.path))
    assert prof.id == "smollm2-135m-instruct-2"
    assert ProfileStore().get("smollm2-135m-instruct").source.bundled  # the bundled one is untouched


def test_import_of_a_template_less_gemma_uses_the_detected_format(gemma):
    m = registry.import_model(gemma.path)
    prof = ProfileStore().get(m.profile_id)
    assert prof.prompt.format == "gemma" and "detected (gemma" in prof.notes


def test_import_of_an_unknown_family_needs_a_format(bare_spm):
    with pytest.raises(FormatUnknownError):
        registry.import_model(bare_spm.path)
    m = registry.import_model(bare_spm.path, prompt_format="llama2")
    assert ProfileStore().get(m.profile_id).prompt.format == "llama2"


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "desktop", *args], capture_output=True, text=True, timeout=120)


def test_cli_profiles_show_and_prompt_and_import(gemma, bare_spm, tmp_path: Path):
    msgs = tmp_path / "m.json"
    msgs.write_text('[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]')
    r = _cli("prompt", "--messages", str(msgs), "--model", str(gemma.path))
    assert r.returncode == 0, r.stderr
    assert r.stdout == "<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\n"
    r = _cli("prompt", "--messages", str(msgs), "--model", str(bare_spm.path))
    assert r.returncode == 1 and r.stderr.startswith("error: ") and "choose one of" in r.stderr
    assert "Traceback" not in r.stderr
    r = _cli("models", "import", str(bare_spm.path), "--format", "llama2")
    assert r.returncode == 0, r.stderr
    pid = r.stdout.strip().rsplit("(profile ", 1)[1].rstrip(")")
    r = _cli("profiles", "show", pid)
    assert r.returncode == 0 and "prompt format: user choice" in r.stdout and "format: llama2" in r.stdout


def test_ask_with_a_template_less_gemma_file_uses_the_detected_format(gemma):
    pytest.importorskip("llama_cpp")
    r = _cli("ask", "--model", str(gemma.path), "--max-tokens", "16", "--temperature", "0", "--json", "hello")
    assert r.returncode == 0, r.stderr
    import json

    out = json.loads(r.stdout)
    # the scripted model answers only after Gemma's "<start_of_turn>model\n": the detected format was used
    assert out["text"] == gemma.expected_text and out["finish_reason"] == "stop"
    assert "<end_of_turn>" not in out["text"] and "<start_of_turn>" not in out["text"]


def test_ask_with_an_unknown_family_asks_for_a_format(bare_spm):
    pytest.importorskip("llama_cpp")
    r = _cli("ask", "--model", str(bare_spm.path), "--max-tokens", "8", "hello")
    assert r.returncode == 1 and r.stderr.startswith("error: ") and "choose one of" in r.stderr
    assert "Traceback" not in r.stderr
