"""Render the model views with realistic data, for the docs and for looking at them.

    .venv/bin/python scripts/gallery_views.py [--out docs/gallery] [--scale 2]

``render_gallery(out_dir)`` writes model-picker.png, hub-search.png, hub-offline.png, quants.png,
models-library.png and welcome.png. It uses a throw-away data dir (the user's registry is never touched), a loopback Hub server
it starts itself (search results come from a real ``HfApi.list_models`` call against it), and a simulated
machine (16 GiB RAM, an 8 GiB GPU) so the fit badges do not depend on where it runs. The quants page
shows a listing of Qwen2.5-7B's real file sizes (serving 40 GiB of bytes from loopback would be silly);
its verdicts come from the real ``fit.estimate``. Library entries are registered placeholder files with
the sizes real quants have. Runs with the offscreen platform unless QT_QPA_PLATFORM says otherwise.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

GiB = 1024 ** 3
SEARCH = [  # repo, downloads, likes, last modified, parameters
    ("bartowski/Qwen2.5-7B-Instruct-GGUF", 412_345, 389, "2025-09-18T10:00:00.000Z", 7_615_616_512),
    ("Qwen/Qwen2.5-0.5B-Instruct-GGUF", 268_120, 212, "2025-07-02T10:00:00.000Z", 494_032_768),
    ("unsloth/Qwen3-8B-GGUF", 198_877, 451, "2025-10-30T10:00:00.000Z", 8_190_735_360),
    ("Qwen/Qwen2.5-Coder-7B-Instruct-GGUF", 154_002, 301, "2025-05-11T10:00:00.000Z", 7_615_616_512),
    ("lmstudio-community/Qwen2.5-14B-Instruct-GGUF", 88_410, 97, "2025-03-21T10:00:00.000Z", 14_770_033_664),
    ("mradermacher/Qwen2.5-72B-Instruct-i1-GGUF", 23_514, 41, "2025-01-09T10:00:00.000Z", 72_706_203_648),
]
QWEN7B_QUANTS = [("Q2_K", 3.02), ("Q3_K_M", 3.81), ("Q4_K_M", 4.68), ("Q5_K_M", 5.44), ("Q6_K", 6.25),
                 ("Q8_0", 8.10), ("F16", 15.24)]


def _isolate(tmp: Path) -> None:
    for sub in ("data", "config", "cache", "hf"):
        (tmp / sub).mkdir(parents=True, exist_ok=True)
    os.environ.update({"XDG_DATA_HOME": str(tmp / "data"), "XDG_CONFIG_HOME": str(tmp / "config"),
                       "XDG_CACHE_HOME": str(tmp / "cache"), "HF_HOME": str(tmp / "hf"),
                       "HF_HUB_CACHE": str(tmp / "hf" / "hub"), "DESKTOP_CHAT_FAKE_HW": "ram=16G,vram=8G"})
    os.environ.pop("HF_HUB_OFFLINE", None)
    os.environ.pop("DESKTOP_CHAT_USER_PROFILES", None)


def _wait(app, cond, timeout: float = 20.0) -> None:
    import time

    end = time.monotonic() + timeout
    while not cond() and time.monotonic() < end:
        app.processEvents()
        time.sleep(0.01)
    app.processEvents()


def _qwen_listing():
    from desktop.engine.hub import fit, hardware
    from desktop.engine.hub.quants import QuantListing
    from desktop.engine.hub.listing import QuantEntry

    hw = hardware.detect()  # the simulated 16 GiB + 8 GiB machine
    arch = fit.Arch(28, 4, 128, 32768)  # Qwen2.5-7B: 28 layers, 4 KV heads of 128
    entries = []
    for quant, gib in QWEN7B_QUANTS:
        size = int(gib * GiB)
        name = f"Qwen2.5-7B-Instruct-{quant}.gguf"
        entries.append(QuantEntry(quant, [name], size, [None], [size],
                                  fit=fit.estimate(size, arch, 8192, hw).to_dict()))
    return QuantListing("bartowski/Qwen2.5-7B-Instruct-GGUF", None, 8192, "f16", "gguf header", entries, [],
                        hw.to_dict())


def _register_library(tmp: Path) -> None:
    from desktop.engine.library import registry

    folder = tmp / "models"
    folder.mkdir(exist_ok=True)
    for pid, name, quant, gib, origin, repo, fixes in [
        ("llama-3-8b-instruct-gradient-1048k", "Llama-3-8B-Instruct-Gradient-1048k-Q4_K_M.gguf", "Q4_K_M", 4.58,
         "download", "crusoeai/Llama-3-8B-Instruct-1048k-GGUF",
         ["end-of-turn token 128009 was not the EOS token: set tokenizer.ggml.eos_token_id = 128009"]),
        ("qwen2.5-7b-instruct", "qwen2.5-7b-instruct-q5_k_m.gguf", "Q5_K_M", 5.44, "import", None, []),
        ("smaug-mixtral-v0.1", "Smaug-Mixtral-v0.1.Q3_K_M.gguf", "Q3_K_M", 20.95, "download",
         "mradermacher/Smaug-Mixtral-v0.1-GGUF", []),
    ]:
        path = folder / name
        path.write_bytes(b"GGUF")  # a placeholder: the size shown is the registered one
        registry.register_model(pid, path, quant=quant, size=int(gib * GiB), origin=origin, repo=repo,
                                fixes=fixes, sha256="9f2c" + "0" * 56 if origin == "download" else None)


def _dark_palette():
    from PySide6.QtGui import QColor, QPalette

    p = QPalette()
    for role, colour in ((QPalette.ColorRole.Window, "#1f2024"), (QPalette.ColorRole.WindowText, "#e6e6ea"),
                         (QPalette.ColorRole.Base, "#2a2b30"), (QPalette.ColorRole.AlternateBase, "#303137"),
                         (QPalette.ColorRole.Text, "#e6e6ea"), (QPalette.ColorRole.Button, "#2d2e33"),
                         (QPalette.ColorRole.ButtonText, "#e6e6ea"), (QPalette.ColorRole.Mid, "#4a4b52"),
                         (QPalette.ColorRole.PlaceholderText, "#9a9ba3"), (QPalette.ColorRole.Highlight, "#6b52e0"),
                         (QPalette.ColorRole.HighlightedText, "#ffffff")):
        p.setColor(role, QColor(colour))
    return p


def render_gallery(out_dir: Path, dark: bool = False) -> list[Path]:
    """Render each model view into ``out_dir`` (under a dark palette with ``dark``); returns the files
    written. The environment and the application palette are restored."""
    saved = dict(os.environ)
    app = None
    old = None
    try:
        if dark:
            from PySide6.QtWidgets import QApplication

            app = QApplication.instance() or QApplication(sys.argv[:1])
            old = app.palette()
            app.setPalette(_dark_palette())
        return _render(Path(out_dir))
    finally:
        if app is not None and old is not None:
            app.setPalette(old)
        os.environ.clear()
        os.environ.update(saved)


def _render(out_dir: Path) -> list[Path]:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="gallery-views-"))
    _isolate(tmp)

    from PySide6.QtWidgets import QApplication

    from tests.fixtures.hub_server import HubServer

    app = QApplication.instance() or QApplication(sys.argv[:1])
    from desktop.engine.profiles import ProfileStore
    from desktop.ui.chat.welcome import WelcomeView
    from desktop.ui.library.hub_page import HubView
    from desktop.ui.library.installed import InstalledModels
    from desktop.ui.library.models_page import LibraryView
    from desktop.ui.library.picker import ModelPicker
    from desktop.ui.library.repo_page import RepoPage

    written: list[Path] = []

    def save(widget, name: str) -> None:
        path = out_dir / name
        widget.grab().save(str(path))
        written.append(path)

    with HubServer(lifetime=120) as hub:
        os.environ["HF_ENDPOINT"] = hub.url
        for repo, dl, likes, modified, params in SEARCH:
            hub.add(repo, {repo.split("/")[1].lower() + ".Q4_K_M.gguf": b"GGUF" + b"\0" * 2048},
                    meta={"downloads": dl, "likes": likes, "lastModified": modified, "gguf": {"total": params}})
        view = HubView()
        view.resize(860, 620)
        view.show()
        view.search("qwen")
        _wait(app, lambda: view.results.rowCount() > 0 or view.error_panel.isVisible())
        save(view, "hub-search.png")

        os.environ["HF_HUB_OFFLINE"] = "1"  # the same view when the network is off: the panel, not a dialog
        offline = HubView()
        offline.resize(860, 420)
        offline.show()
        offline.search("qwen")
        _wait(app, lambda: offline.error_panel.isVisible())
        save(offline, "hub-offline.png")
        del os.environ["HF_HUB_OFFLINE"]

    page = RepoPage()
    page.resize(860, 620)
    page.show()
    page.show_listing(_qwen_listing(), "Q4_K_M", 32768)
    app.processEvents()
    save(page, "quants.png")

    store = ProfileStore()
    picker = ModelPicker(InstalledModels(store))
    picker.resize(520, 48)
    picker.show()
    picker.refresh()
    _wait(app, lambda: bool(picker.model.entries))
    picker.set_current("smollm2-135m-instruct", "Q4_1")
    picker.open_popup()
    _wait(app, lambda: picker.popup.isVisible())
    save(picker.popup, "model-picker.png")
    picker.popup.hide()

    welcome = WelcomeView(InstalledModels(ProfileStore()))  # before anything is installed: every suggestion shows
    welcome.resize(860, 640)
    welcome.show()
    welcome.refresh()
    _wait(app, lambda: bool(welcome.cards))
    save(welcome, "welcome.png")

    _register_library(tmp)
    lib = LibraryView(InstalledModels(ProfileStore()))
    lib.resize(1000, 560)
    lib.show()
    lib.refresh()
    _wait(app, lambda: bool(lib.model.items))
    save(lib, "models-library.png")
    return written


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="docs/gallery")
    ap.add_argument("--scale", help="QT_SCALE_FACTOR, e.g. 2 for a HiDPI check")
    ap.add_argument("--dark", action="store_true", help="render under a dark palette")
    a = ap.parse_args()
    if a.scale:
        os.environ["QT_SCALE_FACTOR"] = a.scale
    for p in render_gallery(Path(a.out), dark=a.dark):
        print(p)
    return 0


if __name__ == "__main__":
    sys.exit(main())
