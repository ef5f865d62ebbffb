"""The scripted tiny GGUFs through the real engine process: stops land exactly where they must."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from desktop.engine.gguf import doctor as gguf_doctor
from desktop.engine.library import registry as models
from desktop.engine.inference import protocol as P
from desktop.engine.inference.client import EngineClient, new_id
from desktop.engine.profiles import ProfileStore


@pytest.fixture
def client() -> Iterator[EngineClient]:
    c = EngineClient()
    yield c
    c.close()


def _ask(client: EngineClient, profile_id: str | None, path: Path, text: str = "hello", **kw):
    profile = ProfileStore().get(profile_id) if profile_id else None
    client.load(models.load_request(profile, path, new_id("load"), n_ctx=512, **kw))
    gen = models.generate_request(profile, [{"role": "user", "content": text}], new_id("gen"),
                                  temperature=0.0, top_k=1, max_tokens=32, seed=1)
    chunks, fin = [], None
    for ev in client.generate(gen, timeout=60):
        if isinstance(ev, P.TokenChunk):
            chunks.append(ev.text)
        elif isinstance(ev, P.Failed):
            raise AssertionError(ev.error)
        else:
            fin = ev
    assert isinstance(fin, P.Finished)
    return "".join(chunks), fin


def test_after_the_128009_fix_generation_stops_exactly_at_eot(client: EngineClient, llama3_broken) -> None:
    res = gguf_doctor.fix(llama3_broken.path)
    assert len(res.changes) == 2
    text, fin = _ask(client, "smaug-llama-3-70b-instruct", llama3_broken.path)
    assert text == fin.text == llama3_broken.expected_text == "Hi there!"
    assert fin.finish_reason == "stop" and fin.stop_token == 128009
    assert fin.stats.generated_tokens == len(llama3_broken.expected_ids) - 1
    assert "<|eot_id|>" not in text and llama3_broken.after_eot_text not in text


def test_unfixed_read_only_file_still_stops_through_load_overrides(client: EngineClient, llama3_broken) -> None:
    llama3_broken.path.chmod(0o444)
    text, fin = _ask(client, "llama-3-8b-instruct-gradient-1048k", llama3_broken.path)
    loaded = client.loaded
    assert loaded is not None and loaded.kv_overrides.get("tokenizer.ggml.eos_token_id") == 128009
    assert loaded.eot_128009_is_eog is True and 128009 in loaded.eog_ids
    assert text == "Hi there!" and fin.stop_token == 128009 and "<|eot_id|>" not in text


def test_llama31_format_on_llama3_vocab(client: EngineClient, llama3_ok) -> None:
    text, fin = _ask(client, "llama-3.1-nemotron-70b-instruct", llama3_ok.path)
    assert text == "Hi there!" and fin.stop_token == 128009


def test_mixtral_moe_with_mixtral_format(client: EngineClient, mixtral_model) -> None:
    text, fin = _ask(client, "smaug-mixtral-v0.1", mixtral_model.path)
    assert text == mixtral_model.expected_text == "Bonjour!"
    assert fin.finish_reason == "stop" and fin.stop_token == 2


def test_spm_vocab_with_upstage_format(client: EngineClient, spm_model) -> None:
    text, fin = _ask(client, "upstage-llama-65b-instruct", spm_model.path)
    assert text == spm_model.expected_text == "Hello!" and fin.stop_token == 2
    assert client.loaded is not None and client.loaded.n_ctx == 512


def test_model_file_with_its_own_template(client: EngineClient, llama3_ok) -> None:
    text, fin = _ask(client, None, llama3_ok.path)  # no profile: the GGUF's Jinja template, sandboxed
    assert text == "Hi there!" and fin.stop_token == 128009


def test_old_mixtral_layout_is_refused_with_a_reason(client: EngineClient, mixtral_old) -> None:
    from desktop.engine.errors import ModelLoadError

    with pytest.raises(ModelLoadError, match="separate tensors"):
        client.load(models.load_request(None, mixtral_old.path, new_id("load"), n_ctx=512))
