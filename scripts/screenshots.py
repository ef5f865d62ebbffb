"""Render the app's screenshot gallery into docs/screenshots/ (``make screenshots``).

Under Xvfb (when ``xvfb-run`` exists and no display is set) the window is a real X11 window on a 1600x1000
screen with a window manager (openbox, when installed) and the PNGs are grabbed from the screen; otherwise the
offscreen platform renders the widgets. Everything runs over a throw-away data dir with seeded chats, so
nothing of the user's is read or written. The demo model answers the streaming shot when llama.cpp is
installed; without it the shot streams scripted text through the same model/view path.

Shots: first-start, streaming, dark, hidpi-2x (a second process at QT_SCALE_FACTOR=2, which also checks that
the window and the settings dialog fit the 800x500 logical screen with Save visible), settings-panel,
search-results, plus the ``EXTRA_SHOTS`` hook for views shot from the real window (model picker, hub, library).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "screenshots"
SCREEN = (1600, 1000)

def _until(cond: Callable[[], bool], timeout_ms: int = 20000) -> None:
    for _ in range(timeout_ms // 50):
        if cond():
            break
        _wait(50)


_HUB: list = []  # the loopback Hub the Hub shots search (kept running until the process ends)


def _shot_picker(win):  # noqa: ANN001, ANN202
    win.banner.hide()  # a notice from the streaming shot (a Stop on a busy machine) is not what these show
    win.statusBar().clearMessage()
    win.show_page("chats")
    win.picker.refresh()
    _until(lambda: bool(win.picker.model.entries))
    win.picker.open_popup()
    return None  # the window with its popup (under X11 the grab is of the screen, popup included)


def _shot_hub(win):  # noqa: ANN001, ANN202
    from scripts import gallery_views as gv
    from tests.fixtures.hub_server import HubServer

    win.picker.popup.hide()
    hub = HubServer(lifetime=300)
    hub.__enter__()
    _HUB.append(hub)
    os.environ["HF_ENDPOINT"] = hub.url
    os.environ.pop("HF_HUB_OFFLINE", None)
    for repo, dl, likes, modified, params in gv.SEARCH:
        hub.add(repo, {repo.split("/")[1].lower() + ".Q4_K_M.gguf": b"GGUF" + b"\0" * 2048},
                meta={"downloads": dl, "likes": likes, "lastModified": modified, "gguf": {"total": params}})
    win.show_page("hub")
    v = win.views
    v.hub.box.setText("qwen")
    v.hub.search("qwen")
    _until(lambda: v.hub.results.rowCount() > 0 or v.hub.error_panel.isVisible())
    return None


def _shot_quants(win):  # noqa: ANN001, ANN202
    from scripts import gallery_views as gv

    v = win.views  # a 7B repo's real quant sizes (serving gigabytes from loopback would be silly)
    v.repo.show_listing(gv._qwen_listing(), "Q4_K_M", 32768)
    v.hub_page.setCurrentWidget(v.repo)
    win.show_page("hub")
    return None


def _shot_library(win):  # noqa: ANN001, ANN202
    from scripts import gallery_views as gv

    gv._register_library(Path(os.environ["XDG_CACHE_HOME"]))  # placeholder files with real quants' sizes
    lib = win.views.library
    lib.refresh()
    _until(lambda: len(lib.model.items) > 1)
    lib.list.setCurrentIndex(lib.model.index(0, 0))
    win.show_page("models")
    return None


# The model views in the real window: the picker's popup, a Hub search, a repo's quants, the Models page.
EXTRA_SHOTS: list[tuple[str, Callable]] = [("model-picker.png", _shot_picker), ("hub-search.png", _shot_hub),
                                          ("quants.png", _shot_quants), ("models-library.png", _shot_library)]

ANSWER = """Here is a small function that **reverses** a list without changing the original:

```python
def reversed_copy(items: list) -> list:
    \"\"\"Return a new list in reverse order.\"\"\"
    return items[::-1]  # slicing makes a copy 🙂
```

A few things to know:

1. Slicing with `[::-1]` works on any sequence.
2. For very large lists, `reversed()` avoids the copy.
3. Links are only opened after you confirm: [Python docs](https://docs.python.org/3/).
"""


def _seed(store, name: str) -> int:  # noqa: ANN001 - ``name``: the demo profile's, as a real answer records it
    a = store.create_chat("Plan a weekend in Lisbon")
    u = store.add_message(a, None, "user", "Plan a relaxed weekend in Lisbon with good food.")
    store.add_message(a, u, "assistant", "Day one: Alfama in the morning, lunch at a tasca, sunset at the "
                      "Miradouro da Senhora do Monte.", provenance={"profile_name": name})
    store.create_chat("Pineapple on pizza?")
    b = store.create_chat("Reverse a list in Python")
    u = store.add_message(b, None, "user", "How do I reverse a list in Python without changing it?")
    prov = {"profile_name": name, "quant": "Q4_1"}
    first = store.add_message(b, u, "assistant", "Use slicing: `items[::-1]`.", provenance=prov)
    store.finish_message(first, "Use slicing: `items[::-1]`.", "done",
                         stats={"tokens_per_s": 81.4, "generated_tokens": 9, "ttft_s": 0.094})
    a2 = store.add_message(b, u, "assistant", "", provenance=prov)
    store.finish_message(a2, ANSWER, "done", stats={"tokens_per_s": 78.9, "generated_tokens": 142, "ttft_s": 0.11,
                                                     "context_used": 233, "context_total": 8192})
    return b


def _grab(win, path: Path) -> None:  # noqa: ANN001
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance()
    for _ in range(5):
        app.processEvents()
    pix = None
    if app.platformName() == "xcb":  # the real X11 window, decorations included
        geo = win.frameGeometry()
        pix = win.screen().grabWindow(0, geo.x(), geo.y(), geo.width(), geo.height())
    if pix is None or pix.isNull():
        pix = win.grab()
    pix.save(str(path))
    print(f"wrote {path.relative_to(ROOT)} ({pix.width()}x{pix.height()})")


def _wait(ms: int) -> None:
    from PySide6.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    QTimer.singleShot(ms, loop.quit)
    loop.exec()


def _window():  # noqa: ANN202
    from desktop.ui.shell.main_window import MainWindow

    win = MainWindow()
    win.resize(1360, 860)
    win.move(40, 40)
    win.show()
    return win


def _load_demo(win) -> bool:  # noqa: ANN001
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        return False
    done: list[bool] = []
    win.adapter.model_loaded.connect(lambda _e: done.append(True))
    win.adapter.load_failed.connect(lambda _e: done.append(False))
    win.load_profile(win.store.default())
    for _ in range(600):
        if done:
            break
        _wait(100)
    return bool(done and done[0])


def gallery() -> None:
    from PySide6.QtWidgets import QApplication

    from desktop.engine.chats.store import ChatStore
    from desktop.ui.theme import theme

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("desktop-chat")
    theme.apply("light")
    win = _window()  # a first start: no chats yet
    real = _load_demo(win)
    _wait(300)
    _grab(win, OUT / "first-start.png")
    seeded = ChatStore()  # a second connection (WAL): the window's store sees these chats
    chat = _seed(seeded, win.store.default().name)
    seeded.close()
    win.sidebar.refresh()

    # streaming: a real answer from the demo model when it loaded, caught mid-stream
    win.open_chat(chat)
    if real:
        shots: list[bool] = []

        def snap(_rid: str, _t: str) -> None:
            if not shots and len(win.session.stream.text if win.session.stream else "") > 60:
                shots.append(True)
                win.chat_page.view.set_live_rate(win.session.stream.live_rate())
                _grab(win, OUT / "streaming.png")
                win.stop()

        win.adapter.token_received.connect(snap)
        win.send("Write a short poem about the sea, in three stanzas.")
        for _ in range(600):
            if shots or not win.session.stream:
                break
            _wait(50)
        while win.session.stream:
            _wait(50)
    if not real:
        m = win.model
        m.append("user", "Write a short poem about the sea.", id=-1)
        m.append("assistant", "", "streaming", id=-2, provenance={"profile_name": win.store.default().name})
        win.chat_page.set_busy(True)
        for word in "The tide comes in with silver light,\nand gulls wheel slowly out of sight;\n\n".split(" "):
            m.append_token(word + " ")
            m.flush()
        win.chat_page.view.set_live_rate(83.2)
        _wait(200)
        _grab(win, OUT / "streaming.png")
        win.chat_page.set_busy(False)
    win.open_chat(chat)

    win.set_theme("dark")
    _wait(300)
    _grab(win, OUT / "dark.png")
    win.set_theme("light")

    win.toggle_settings_panel(True)
    _wait(300)
    _grab(win, OUT / "settings-panel.png")
    win.toggle_settings_panel(False)

    win.focus_search()
    win.search.setText("reverse")
    win.sidebar.apply_search()
    _wait(300)
    _grab(win, OUT / "search-results.png")
    win.sidebar.clear_search()

    for name, fn in EXTRA_SHOTS:
        target = fn(win)
        _wait(300)
        _grab(target or win, OUT / name)
    for hub in _HUB:
        hub.__exit__(None, None, None)
    win.close()


def hidpi() -> int:
    """At QT_SCALE_FACTOR=2 on the 1600x1000 screen: the window and the settings dialog fit; Save is visible."""
    from PySide6.QtWidgets import QApplication, QDialogButtonBox

    from desktop.ui.theme import theme

    app = QApplication.instance() or QApplication(sys.argv[:1])
    theme.apply("light")
    win = _window()
    win.resize(1360, 860)  # asks for more than fits: the window shrinks to the screen
    from desktop.ui.widgets.screens import available, fit_to_screen

    _wait(500)  # the window manager frames the window; the app then keeps the frame on the screen
    fit_to_screen(win)
    _wait(200)
    area = available(win)
    dlg = win.open_settings()
    _wait(600)
    save = dlg.buttons.button(QDialogButtonBox.StandardButton.Save)
    fits = area.contains(win.frameGeometry()) and area.contains(dlg.frameGeometry())
    save_rect = save.rect().translated(save.mapTo(dlg, save.rect().topLeft()))
    save_ok = save.isVisible() and dlg.rect().contains(save_rect)
    print(f"hidpi: screen {area.width()}x{area.height()} logical, window frame {win.frameGeometry().getRect()}, "
          f"dialog frame {dlg.frameGeometry().getRect()}, fits={fits}, save_visible={save_ok}")
    dlg.close()
    _wait(100)
    _grab(win, OUT / "hidpi-2x.png")
    win.close()
    app.processEvents()
    return 0 if fits and save_ok else 1


def _inner(mode: str) -> int:
    data = Path(tempfile.mkdtemp(prefix="desktop-chat-shots-"))
    for sub in ("data", "config", "cache"):
        (data / sub).mkdir()
    os.environ["XDG_DATA_HOME"] = str(data / "data")
    os.environ["XDG_CONFIG_HOME"] = str(data / "config")
    os.environ["XDG_CACHE_HOME"] = str(data / "cache")
    os.environ["HF_HOME"] = str(data / "cache" / "hf")  # never the user's Hugging Face cache
    os.environ.setdefault("DESKTOP_CHAT_FAKE_HW", "ram=16G,vram=8G")  # fit badges that do not depend on the box
    OUT.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(ROOT))
    try:
        if mode == "hidpi":
            return hidpi()
        gallery()
        return 0
    finally:
        shutil.rmtree(data, ignore_errors=True)


def main() -> int:
    if len(sys.argv) > 2 and sys.argv[1] == "--inner":
        return _inner(sys.argv[2])
    env = dict(os.environ)
    here = [sys.executable, str(Path(__file__).resolve()), "--inner"]
    xvfb = shutil.which("xvfb-run") and not env.get("DISPLAY") and env.get("QT_QPA_PLATFORM") != "offscreen"
    if xvfb:
        env["QT_QPA_PLATFORM"] = "xcb"
        wm = "openbox & sleep 0.5; " if shutil.which("openbox") else ""

        def run(mode: str, extra: dict[str, str]) -> int:
            cmd = f"{wm}exec {' '.join(map(_q, here + [mode]))}"
            return subprocess.call(["xvfb-run", "-a", "-s", f"-screen 0 {SCREEN[0]}x{SCREEN[1]}x24",
                                    "bash", "-c", cmd], env={**env, **extra})
    else:
        cfg = Path(tempfile.mkdtemp()) / "screens.json"
        cfg.write_text('{"screens": [{"name": "shots", "x": 0, "y": 0, "width": %d, "height": %d, '
                       '"logicalDpi": 96, "dpr": 1}]}' % SCREEN)
        env["QT_QPA_PLATFORM"] = f"offscreen:configfile={cfg}"

        def run(mode: str, extra: dict[str, str]) -> int:
            return subprocess.call(here + [mode], env={**env, **extra})
    rc = run("gallery", {})
    rc |= run("hidpi", {"QT_SCALE_FACTOR": "2"})
    print(f"screenshots in {OUT.relative_to(ROOT)} ({'Xvfb' if xvfb else 'offscreen'})")
    return rc


def _q(s: str) -> str:
    import shlex

    return shlex.quote(s)


if __name__ == "__main__":
    sys.exit(main())
