"""Images through the real engine process and llama.cpp's mtmd: a scripted Gemma 3 model and projector
(tests/fixtures/vision_gguf.py) answer with the colour of the picture."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import pytest

from desktop.engine.inference import protocol as P
from desktop.engine.inference.client import EngineClient, new_id
from desktop.engine.library import registry
from tests.fixtures.engine_run import run_generation
from tests.fixtures.vision_gguf import N_IMAGE_TOKENS, make_png, make_projector, make_vision_lm


def _has_mtmd() -> bool:
    try:
        import llama_cpp.mtmd_cpp  # noqa: F401 - only the probe; the app imports it in llama_backend
    except (ImportError, OSError, RuntimeError):
        return False
    return True


pytestmark = pytest.mark.skipif(not _has_mtmd(), reason="llama-cpp-python built without mtmd (-DLLAVA_BUILD=OFF)")


@pytest.fixture(scope="module")
def vision_files(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("vision")
    return {
        "lm": make_vision_lm(d / "tiny-gemma3-vision-F16.gguf"),
        "mmproj": make_projector(d / "mmproj-tiny-gemma3-vision-f16.gguf"),
        "other": make_projector(d / "mmproj-other-model.gguf", n_embd_text=128),
        "red": make_png(d / "red.png", (230, 20, 20)),
        "blue": make_png(d / "blue.png", (20, 20, 230), size=(300, 200)),
    }


@pytest.fixture
def client() -> Iterator[EngineClient]:
    c = EngineClient()
    yield c
    c.close()


def _load(client: EngineClient, files: dict[str, Path], mmproj: str = "mmproj") -> P.Loaded:
    return client.load(registry.load_request(None, files["lm"], new_id("load"), n_ctx=512, mmproj=files[mmproj]))


def _ask(client: EngineClient, messages: list[dict]) -> tuple[str, P.Finished]:
    gen = registry.generate_request(None, messages, new_id("gen"), temperature=0.0, top_k=1, max_tokens=8, seed=1)
    chunks, fin = run_generation(client, gen, timeout=60)
    assert isinstance(fin, P.Finished), fin
    return "".join(chunks), fin


def test_the_answer_depends_on_the_image_and_a_second_question_reuses_it(client, vision_files) -> None:
    loaded = _load(client, vision_files)
    assert loaded.vision and loaded.image_max_side == 32

    text, fin = _ask(client, [{"role": "user", "content": "What colour?", "images": [str(vision_files["red"])]}])
    assert text == fin.text == "Red" and fin.finish_reason == "stop"
    assert fin.stats.image_tokens == N_IMAGE_TOKENS
    first_prompt = fin.stats.prompt_tokens
    assert first_prompt > N_IMAGE_TOKENS  # the context count includes the image's positions

    # The same picture, asked again after the answer: its positions come from the KV cache, not the projector.
    history = [{"role": "user", "content": "What colour?", "images": [str(vision_files["red"])]},
               {"role": "assistant", "content": "Red"}, {"role": "user", "content": "Sure?"}]
    text2, fin2 = _ask(client, history)
    assert text2 == "Red"  # the picture is still in the conversation (the scripted attention reads every position)
    assert fin2.stats.image_tokens == N_IMAGE_TOKENS
    assert fin2.stats.prompt_eval_tokens < fin2.stats.prompt_tokens - first_prompt + N_IMAGE_TOKENS
    assert fin2.stats.prompt_eval_tokens <= fin2.stats.prompt_tokens - first_prompt + 2

    text3, fin3 = _ask(client, [{"role": "user", "content": "What colour?", "images": [str(vision_files["blue"])]}])
    assert text3 == "Blue"
    text4, _ = _ask(client, [{"role": "user", "content": "What colour?"}])
    assert text4 == "Nothing"


def test_a_projector_of_another_model_is_refused_with_both_numbers(client, vision_files) -> None:
    with pytest.raises(Exception) as err:
        _load(client, vision_files, "other")
    msg = str(err.value)
    assert "128" in msg and "64" in msg and "another model" in msg


def test_an_image_to_a_model_without_projector_is_a_clear_error(client, vision_files) -> None:
    client.load(registry.load_request(None, vision_files["lm"], new_id("load"), n_ctx=512))
    assert not client.loaded.vision
    gen = registry.generate_request(None, [{"role": "user", "content": "hi", "images": [str(vision_files["red"])]}],
                                  new_id("gen"), temperature=0.0, max_tokens=4)
    _chunks, last = run_generation(client, gen, timeout=60)
    assert isinstance(last, P.Failed) and last.error["code"] == "image_error"
    assert "cannot see images" in last.error["message"]
    # The engine lives on: the next plain question is answered.
    text, _fin = _ask(client, [{"role": "user", "content": "hi"}])
    assert text == "Nothing"


def test_a_broken_image_fails_the_request_not_the_engine(client, vision_files, tmp_path) -> None:
    _load(client, vision_files)
    bad = tmp_path / "not-an-image.png"
    bad.write_text("hello, I am text")
    gen = registry.generate_request(None, [{"role": "user", "content": "hi", "images": [str(bad)]}], new_id("gen"),
                                  temperature=0.0, max_tokens=4)
    _chunks, last = run_generation(client, gen, timeout=60)
    assert isinstance(last, P.Failed) and last.error["code"] == "image_error"
    text, _ = _ask(client, [{"role": "user", "content": "What colour?", "images": [str(vision_files["blue"])]}])
    assert text == "Blue"


def test_cli_ask_with_images_finds_the_projector_beside_the_model(vision_files) -> None:
    from tests.engine.test_downloads import run_cli

    r = run_cli("ask", "--model", str(vision_files["lm"]), "--image", str(vision_files["blue"]), "--json",
                "--max-tokens", "8", "--temperature", "0", "What colour?")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["text"] == "Blue" and out["stats"]["image_tokens"] == N_IMAGE_TOKENS
    # Two images (repeatable --image): both are placed and counted.
    r = run_cli("ask", "--model", str(vision_files["lm"]), "--mmproj", str(vision_files["mmproj"]),
                "--image", str(vision_files["red"]), "--image", str(vision_files["red"]), "--json",
                "--max-tokens", "8", "--temperature", "0", "What colour?")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["text"] == "Red" and out["stats"]["image_tokens"] == 2 * N_IMAGE_TOKENS
    r = run_cli("ask", "--model", str(vision_files["lm"]), "--mmproj", str(vision_files["other"]),
                "--image", str(vision_files["red"]), "hi")
    assert r.returncode == 1 and r.stderr.startswith("error:") and "128" in r.stderr


@pytest.mark.integration
def test_stop_while_an_image_is_encoded_ends_the_answer_without_killing_the_engine(tmp_path: Path) -> None:
    """A projector slow enough to encode for seconds (512 px, 8 layers of width 256): Stop during the encoding
    gives Finished("cancelled") within the 2 s the app promises, from the engine itself (the projector graph looks
    at the stop byte), so the model stays loaded and the next question is answered at once."""
    import threading
    import time

    lm = make_vision_lm(tmp_path / "tiny-gemma3-vision-F16.gguf")
    proj = make_projector(tmp_path / "mmproj-slow.gguf", image_size=512, layers=8, v_embd=256, v_ff=1024)
    red = make_png(tmp_path / "red.png", (230, 20, 20), size=(512, 512))
    blue = make_png(tmp_path / "blue.png", (20, 20, 230), size=(512, 512))  # not in the cache: encoded again
    messages = [{"role": "user", "content": "What colour?", "images": [str(red)]}]
    with EngineClient(stop_grace_s=10.0) as c:  # a kill would not count: the engine must stop by itself
        c.load(registry.load_request(None, lm, new_id("load"), n_ctx=2048, mmproj=proj))
        pid = c.pid
        t0 = time.monotonic()
        text, fin = _ask(c, messages)
        full_s = time.monotonic() - t0
        assert text == "Red" and full_s > 1.5, full_s  # encoding takes long enough to stop in the middle
        cancel_at = min(0.5, full_s / 4)
        gen = registry.generate_request(None, [{"role": "user", "content": "And now?", "images": [str(blue)]}],
                                      new_id("gen"), max_tokens=8)
        timer = threading.Timer(cancel_at, c.cancel, (gen.id,))
        t1 = time.monotonic()
        timer.start()
        chunks, last = run_generation(c, gen, timeout=60)
        took = time.monotonic() - t1
        assert isinstance(last, P.Finished) and last.finish_reason == "cancelled", last
        assert took - cancel_at < 2.0 and took < full_s, (took, cancel_at, full_s)
        assert chunks == [] or "".join(chunks) == ""  # stopped before any answer token
        assert c.pid == pid  # not killed: the model is still loaded
        text2, _ = _ask(c, [{"role": "user", "content": "What colour?"}])
        assert text2 == "Nothing"
