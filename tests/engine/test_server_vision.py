"""``serve`` takes images from the clients people use: OpenAI ``image_url`` content parts (data URLs) through the
``openai`` package, and Ollama's ``images`` through the ``ollama`` package, answered by the scripted vision model
(tests/fixtures/vision_gguf.py: "Red" for a red picture, "Blue" for a blue one) through the real engine."""
from __future__ import annotations

import base64
from pathlib import Path
from typing import Iterator

import pytest

pytest.importorskip("openai")
pytest.importorskip("ollama")

import ollama  # noqa: E402
import openai  # noqa: E402

from desktop.engine.inference.client import EngineClient  # noqa: E402
from desktop.engine.server.app import LocalServer  # noqa: E402
from desktop.engine.server.config import ServerConfig  # noqa: E402
from desktop.engine.server.pool import ServedModel  # noqa: E402
from tests.engine.test_vision_engine import _has_mtmd  # noqa: E402
from tests.fixtures.vision_gguf import make_png, make_projector, make_vision_lm  # noqa: E402

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not _has_mtmd(), reason="llama-cpp-python built without mtmd")]


class Served:
    def __init__(self, server: LocalServer, files: dict[str, Path], home: Path) -> None:
        self.server, self.files, self.home = server, files, home
        self.openai = openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0, timeout=120)
        self.ollama = ollama.Client(host=server.base_url.removesuffix("/v1"), timeout=120)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:

    mp = pytest.MonkeyPatch()
    home = tmp_path_factory.mktemp("server-home")
    for var in ("XDG_DATA_HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME"):
        mp.setenv(var, str(home / var.lower()))
    d = tmp_path_factory.mktemp("vision")
    files = {"lm": make_vision_lm(d / "tiny-gemma3-vision-F16.gguf"),
             "mmproj": make_projector(d / "proj.gguf"),  # not beside-named: the import records it
             "red": make_png(d / "red.png", (230, 20, 20)),
             "blue": make_png(d / "blue.png", (20, 20, 230), size=(300, 200))}
    catalog = [ServedModel("vision", str(files["lm"]), None, "tiny vision")]
    client = EngineClient()
    server = LocalServer(client, ServerConfig(port=0, n_ctx=512), catalog=lambda: catalog)
    server.start()
    yield Served(server, files, home)
    server.stop()
    client.close()
    mp.undo()


@pytest.fixture(autouse=True)
def registered(served: Served) -> None:
    """The model imported with its projector in this test's data dir: the pool's Load finds the projector there."""
    from desktop.engine.library.imports import import_model

    import_model(served.files["lm"], mmproj=served.files["mmproj"])


def _data_url(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


def _ask_openai(s: Served, picture: Path, stream: bool = False) -> str:
    messages = [{"role": "user", "content": [{"type": "text", "text": "What colour?"},
                                             {"type": "image_url", "image_url": {"url": _data_url(picture)}}]}]
    if stream:
        chunks = s.openai.chat.completions.create(model="vision", messages=messages, max_tokens=8, temperature=0,
                                                  stream=True)
        return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    r = s.openai.chat.completions.create(model="vision", messages=messages, max_tokens=8, temperature=0)
    return r.choices[0].message.content


def test_openai_image_url_parts_reach_the_model(served: Served, isolated_dirs: Path) -> None:
    assert _ask_openai(served, served.files["red"]) == "Red"
    assert _ask_openai(served, served.files["blue"], stream=True) == "Blue"
    # The pictures were kept in the data dir by content hash (the path the engine was handed).
    import hashlib

    stored = sorted(p.name for p in (isolated_dirs / "data").rglob("images/*.png"))
    want = sorted(hashlib.sha256(served.files[k].read_bytes()).hexdigest() + ".png" for k in ("red", "blue"))
    assert stored == want


def test_openai_remote_urls_and_non_images_are_refused_naming_the_field(served: Served) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        served.openai.chat.completions.create(model="vision", max_tokens=4, messages=[{"role": "user", "content": [
            {"type": "text", "text": "hi"}, {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]}])
    body = err.value.body
    assert body["param"] == "messages[0].content[1].image_url.url" and "remote image URLs" in body["message"]
    truncated = served.files["red"].read_bytes()[:40]
    with pytest.raises(openai.BadRequestError) as err:
        served.openai.chat.completions.create(model="vision", max_tokens=4, messages=[{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/png;base64," + base64.b64encode(b"hello").decode()}},
            {"type": "text", "text": "hi"}]}])
    assert err.value.body["param"] == "messages[0].content[0].image_url.url"
    assert "not an image" in err.value.body["message"]
    with pytest.raises(openai.BadRequestError):  # a PNG cut short: refused at the engine's decode, still a 400
        served.openai.chat.completions.create(model="vision", max_tokens=4, messages=[{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/png;base64," + base64.b64encode(truncated).decode()}},
            {"type": "text", "text": "hi"}]}])
    assert _ask_openai(served, served.files["red"]) == "Red"  # the server and engine are fine


def test_ollama_images_reach_the_model(served: Served) -> None:
    r = served.ollama.chat(model="vision", options={"temperature": 0, "num_predict": 8},
                           messages=[{"role": "user", "content": "What colour?", "images": [served.files["blue"]]}])
    assert r.message.content == "Blue"
    r = served.ollama.chat(model="vision", options={"temperature": 0, "num_predict": 8},
                           messages=[{"role": "user", "content": "What colour?",
                                      "images": [served.files["red"].read_bytes()]}])
    assert r.message.content == "Red"
    with pytest.raises(ollama.ResponseError) as err:
        served.ollama.chat(model="vision", messages=[{"role": "user", "content": "hi",
                                                      "images": [base64.b64encode(b"not a picture").decode()]}])
    assert err.value.status_code == 400 and "messages[0].images[0]" in str(err.value)
