"""Projectors as part of a model (Hub listing, fit, download, import, `gguf inspect`) and images as input (checks,
scaling, data URLs), without llama.cpp. The engine side is tests/engine/test_vision_engine.py."""
from __future__ import annotations

import base64
import io
import json
import struct
import zlib
from pathlib import Path

import pytest

from desktop.engine import paths
from desktop.engine.errors import ImageError, ProjectorMismatchError
from desktop.engine.gguf import projector
from desktop.engine.hub import downloads, fit, listing
from desktop.engine.hub import quants as hub_quants
from desktop.engine.hub.hardware import GiB, Hardware
from desktop.engine.library import registry
from desktop.engine.vision import images
from tests.engine.test_downloads import run_cli
from tests.fixtures.hub_server import HubServer
from tests.fixtures.vision_gguf import make_png, make_projector, make_vision_lm

REPO = "acme/Tiny-Vision-GGUF"
MODEL = "tiny-vision-F16.gguf"
PROJ = "mmproj-tiny-vision-f16.gguf"


@pytest.fixture
def vision_pair(tmp_path: Path) -> tuple[Path, Path]:
    return make_vision_lm(tmp_path / MODEL), make_projector(tmp_path / PROJ)


# ------------------------------------------------------------------------------------------ projector files


def test_gguf_inspect_on_a_projector_says_what_it_is(vision_pair) -> None:
    _lm, pj = vision_pair
    r = run_cli("gguf", "inspect", str(pj))
    assert r.returncode == 0, r.stderr
    assert "gemma3" in r.stdout and "32 x 32" in r.stdout and "embedding size 64" in r.stdout
    info = json.loads(run_cli("gguf", "inspect", str(pj), "--json").stdout)
    assert info["projector_type"] == "gemma3" and info["image_size"] == 32 and info["n_embd_text"] == 64
    assert info["has_vision"] and info["max_side"] == 32


def test_a_projector_of_another_model_is_refused_with_both_numbers(vision_pair, tmp_path: Path) -> None:
    lm, _pj = vision_pair
    other = make_projector(tmp_path / "mmproj-big.gguf", n_embd_text=2560)
    with pytest.raises(ProjectorMismatchError) as err:
        projector.check_pair(lm, other)
    assert "2560" in err.value.message and "64" in err.value.message
    r = run_cli("models", "import", str(lm), "--mmproj", str(other))
    assert r.returncode == 1 and r.stderr.startswith("error:") and "2560" in r.stderr and "64" in r.stderr
    assert not registry.read_registry()  # nothing registered


def test_import_finds_the_projector_beside_the_model(vision_pair, tmp_path: Path) -> None:
    lm, pj = vision_pair
    make_projector(tmp_path / "mmproj-unrelated.gguf", n_embd_text=128)  # does not fit: skipped
    r = run_cli("models", "import", str(lm), "--json")
    assert r.returncode == 0, r.stderr
    m = json.loads(r.stdout)
    assert m["vision"] and m["mmproj"] == str(pj)
    assert registry.projector_for(lm) == pj
    load = registry.load_request(None, lm, "l1")
    assert load.mmproj_path == str(pj)
    listed = run_cli("models", "list")
    assert "vision" in listed.stdout
    # A projector on its own is not a model.
    r = run_cli("models", "import", str(pj))
    assert r.returncode == 1 and "projector" in r.stderr


def test_ask_with_an_image_and_no_projector_says_why(tmp_path: Path) -> None:
    lm = make_vision_lm(tmp_path / "lonely.gguf")
    png = make_png(tmp_path / "red.png", (255, 0, 0))
    r = run_cli("ask", "--model", str(lm), "--image", str(png), "what is this?")
    assert r.returncode == 1 and r.stderr.startswith("error:") and "no vision projector" in r.stderr
    assert "Traceback" not in r.stderr


# ------------------------------------------------------------------------------------------ Hub


def test_listing_pairs_each_quant_with_its_projector_and_fit_counts_it(hub_server: HubServer, vision_pair) -> None:
    lm, pj = vision_pair
    data = lm.read_bytes()
    hub_server.add(REPO, {MODEL: data, "tiny-vision-Q8_0.gguf": data + b"\0" * 64, PROJ: pj.read_bytes(),
                          "mmproj-tiny-vision-f32.gguf": pj.read_bytes() + b"\0" * 32})
    entries = listing.group_quants(listing.list_files(REPO).files)
    assert [e.quant for e in entries] == ["F16", "Q8_0"]  # the projectors are not quants of their own
    assert all(e.vision and e.mmproj == PROJ and e.mmproj_size == pj.stat().st_size for e in entries)
    hw = Hardware(ram_total=int(64 * GiB), ram_available=int(32 * GiB), cpu_count=4)
    q = hub_quants.list_quants(REPO, hw=hw)
    f = q.entries[0].fit
    assert f["projector_bytes"] == fit.projector_need(pj.stat().st_size)
    assert "projector" in f["explanation"]
    assert f["weights_bytes"] == q.entries[0].size
    assert f["total_bytes"] == f["weights_bytes"] + f["projector_bytes"] + f["kv_bytes"] + f["overhead_bytes"]
    d = q.to_dict()["entries"][0]
    assert d["vision"] is True and d["mmproj"] == PROJ


def test_download_fetches_the_projector_with_the_model(hub_server: HubServer, vision_pair) -> None:
    lm, pj = vision_pair
    hub_server.add(REPO, {MODEL: lm.read_bytes(), PROJ: pj.read_bytes()})
    res = downloads.run_download(REPO, quant="F16")
    assert res.mmproj == str(paths.download_dir() / REPO / PROJ)
    assert Path(res.mmproj).read_bytes() == pj.read_bytes()
    assert registry.projector_for(res.path) == Path(res.mmproj)
    assert hub_server.requests_for(PROJ, "GET")
    again = downloads.run_download(REPO, quant="F16")  # both verified again, neither fetched again
    assert again.fetched_bytes == 0 and again.mmproj == res.mmproj


# ------------------------------------------------------------------------------------------ images


def _png_header_only(w: int, h: int) -> bytes:
    """A PNG whose header claims w x h pixels, with a few bytes of pixel data: never decodable."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


def test_bad_images_are_clear_errors(tmp_path: Path) -> None:
    text = tmp_path / "notes.png"
    text.write_text("not a picture")
    with pytest.raises(ImageError, match="not an image"):
        images.check_image_file(text)
    good = make_png(tmp_path / "ok.png", (10, 200, 10), size=(400, 300)).read_bytes()
    with pytest.raises(ImageError, match="cut short"):
        images.prepare(good[: len(good) // 2])
    giant = _png_header_only(20_000, 20_000)
    with pytest.raises(ImageError, match="megapixels"):
        images.prepare(giant)  # refused from the header: no 1.6 GB bitmap
    big = _png_header_only(10_000, 6_000)  # under Pillow's own limit: ours says the size
    with pytest.raises(ImageError, match="10,000 x 6,000"):
        images.prepare(big)
    r = run_cli("ask", "--model", str(tmp_path / "x.gguf"), "--image", str(text), "hi")
    assert r.returncode == 1 and r.stderr.startswith("error:")


def test_images_are_scaled_down_to_what_the_projector_takes(tmp_path: Path) -> None:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGBA", (1000, 500), (0, 0, 255, 255)).save(buf, format="PNG")
    img = images.prepare(buf.getvalue(), max_side=32)
    assert (img.width, img.height) == (32, 16) and len(img.rgb) == 32 * 16 * 3
    assert img.rgb[:3] == b"\x00\x00\xff" and img.source_size == (1000, 500)
    small = images.prepare(buf.getvalue(), max_side=4096)
    assert (small.width, small.height) == (1000, 500)  # never scaled up


def test_data_urls_decode_and_remote_urls_are_refused(tmp_path: Path) -> None:
    data = make_png(tmp_path / "b.png", (0, 0, 255)).read_bytes()
    url = images.to_data_url(data)
    assert url.startswith("data:image/png;base64,")
    assert images.decode_data_url(url) == data
    with pytest.raises(ImageError, match="remote image URLs"):
        images.decode_data_url("https://example.com/cat.png")
    with pytest.raises(ImageError, match="not valid base64"):
        images.decode_data_url("data:image/png;base64,@@@@")
    with pytest.raises(ImageError, match="not an image"):
        images.decode_data_url("data:image/png;base64," + base64.b64encode(b"hello").decode())
    stored = images.store(data, tmp_path / "store")
    assert stored.name.endswith(".png") and images.store(data, tmp_path / "store") == stored


def test_remote_backends_send_images_as_image_url_data_parts(tmp_path: Path) -> None:
    from desktop.engine.inference.protocol import Generate
    from desktop.engine.inference.remote_backend import RemoteBackend

    png = make_png(tmp_path / "red.png", (255, 0, 0))
    rb = RemoteBackend()
    rb.model = "vision-model"
    endpoint, body = rb._body(Generate(id="g", prompt_spec={"system_prompt": "Be brief."}, messages=[
        {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"},
        {"role": "user", "content": "What colour?", "images": [str(png)]}]))
    assert endpoint == "chat/completions"
    msgs = body["messages"]
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user"]
    assert msgs[1]["content"] == "Hi" and "images" not in msgs[3]
    parts = msgs[3]["content"]
    assert parts[0] == {"type": "text", "text": "What colour?"}
    assert parts[1]["type"] == "image_url"
    assert images.decode_data_url(parts[1]["image_url"]["url"]) == png.read_bytes()


# ------------------------------------------------------------------------------------------ profiles

VISION_PROFILES = {  # the projector each names, as published in its repo
    "gemma-3-4b-it": ("bartowski/google_gemma-3-4b-it-GGUF", "mmproj-google_gemma-3-4b-it-f16.gguf"),
    "qwen2.5-vl-3b-instruct": ("ggml-org/Qwen2.5-VL-3B-Instruct-GGUF", "mmproj-Qwen2.5-VL-3B-Instruct-f16.gguf"),
    "smolvlm-256m-instruct": ("ggml-org/SmolVLM-256M-Instruct-GGUF", "mmproj-SmolVLM-256M-Instruct-Q8_0.gguf"),
}


@pytest.mark.parametrize("pid", sorted(VISION_PROFILES))
def test_vision_profiles_name_their_projector(pid: str) -> None:
    from desktop.engine.profiles import ProfileStore

    p = ProfileStore().get(pid)
    repo, mm = VISION_PROFILES[pid]
    assert p.source.repo == repo and p.source.mmproj == mm and projector.is_projector_name(mm)
    assert p.source.recommended_quant in p.source.quants


def test_a_profile_picks_its_projector_among_several(hub_server: HubServer, vision_pair) -> None:
    from desktop.engine.profiles import ProfileStore

    lm, pj = vision_pair
    repo, mm = VISION_PROFILES["smolvlm-256m-instruct"]
    hub_server.add(repo, {"SmolVLM-256M-Instruct-Q8_0.gguf": lm.read_bytes(), mm: pj.read_bytes(),
                          "mmproj-SmolVLM-256M-Instruct-f16.gguf": pj.read_bytes() + b"\0" * 32})
    store = ProfileStore()
    entries = hub_quants.list_quants("smolvlm-256m-instruct", store=store,
                                     hw=Hardware(int(64 * GiB), int(32 * GiB), 4)).entries
    assert [e.mmproj for e in entries] == [mm]  # the profile's Q8_0 projector, not the F16 the listing prefers
