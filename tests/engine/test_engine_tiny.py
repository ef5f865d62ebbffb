"""The scripted tiny GGUFs through the real engine process: stops land exactly where they must."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from desktop.engine.gguf import repair as gguf_repair
from desktop.engine.library import registry
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
    client.load(registry.load_request(profile, path, new_id("load"), n_ctx=512, **kw))
    gen = registry.generate_request(profile, [{"role": "user", "content": text}], new_id("gen"),
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
    res = gguf_repair.fix(llama3_broken.path)
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
        client.load(registry.load_request(None, mixtral_old.path, new_id("load"), n_ctx=512))


def test_a_load_reports_increasing_progress_ending_at_one(llama3_ok) -> None:
    seen: list[P.LoadProgress] = []
    c = EngineClient(on_event=lambda ev: isinstance(ev, P.LoadProgress) and seen.append(ev))
    try:
        req = registry.load_request(None, llama3_ok.path, new_id("load"), n_ctx=512)
        events = list(c.events(req, timeout=60))
    finally:
        c.close()
    assert isinstance(events[-1], P.Loaded), events[-1]
    progress = [ev for ev in events if isinstance(ev, P.LoadProgress)]
    assert progress and [ev.fraction for ev in progress] == [ev.fraction for ev in seen]  # on_event gets them too
    fractions = [ev.fraction for ev in progress]
    assert all(ev.id == req.id for ev in progress)
    assert fractions == sorted(set(fractions)) and fractions[-1] == 1.0
    assert fractions[0] < 1.0  # llama.cpp's own callback reported, not only the host's final 1.0


def test_load_progress_is_throttled_to_about_20_a_second(monkeypatch: pytest.MonkeyPatch) -> None:
    from desktop.engine.inference import host

    sent: list[P.LoadProgress] = []
    clock = [100.0]
    monkeypatch.setattr(host.time, "monotonic", lambda: clock[0])
    throttle = host._ProgressThrottle("load-1", sent.append)
    for i in range(1001):  # a callback per tensor, over one simulated second
        throttle(i / 1000)
        clock[0] += 0.001
    throttle(0.5)  # never backwards
    throttle.finish()
    fractions = [ev.fraction for ev in sent]
    assert 15 <= len(fractions) <= 22, len(fractions)
    assert fractions == sorted(set(fractions)) and fractions[-1] == 1.0
