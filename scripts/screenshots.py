"""Save screenshots of the main window for the docs: mid-stream, with a few chats, Markdown and code.

    .venv/bin/python scripts/screenshots.py [--out docs]

Runs under Xvfb when ``xvfb-run`` exists (real X11 rendering), else with the offscreen platform. It uses a
throw-away data and config dir, so the user's chats are never touched, and the real demo model (the
answer that is streaming in the picture is really being generated). Writes:

- ``screenshot-main.png``: light palette, mid-stream;
- ``screenshot-dark.png``: the same window under a dark system palette, answer finished;
- ``screenshot-downloads.png``: the download window over it, mid-download from a loopback Hub server.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SEED = [
    ("Trip to Lisbon", [("user", "Three things to see in Lisbon in one day?"),
                        ("assistant", "1. **Belém Tower** in the morning\n2. Tram 28 through Alfama\n"
                                      "3. Sunset at *Miradouro da Senhora do Monte*")]),
    ("SQLite WAL mode", [("user", "What does WAL mode change in SQLite?"),
                         ("assistant", "Readers no longer block the writer: changes go to a *write-ahead log* "
                                       "and are checkpointed into the database later.")]),
    ("Reverse a list in Python", [
        ("user", "How do I reverse a list in Python without changing the original?"),
        ("assistant", "Use a **slice** with a step of `-1`; it returns a new list:\n\n"
                      "```python\ndef reversed_copy(items: list) -> list:\n"
                      "    \"\"\"Return a reversed copy; `items` is left as it was.\"\"\"\n"
                      "    return items[::-1]\n\n\nprint(reversed_copy([1, 2, 3]))  # [3, 2, 1]\n```\n\n"
                      "For an iterator instead of a list, `reversed(items)` avoids the copy."),
    ]),
]
FOLLOW_UP = "Show the same thing with reversed() and a for loop, in a code block."


def _maybe_xvfb() -> None:
    if os.environ.get("DISPLAY"):
        return  # a real (or virtual) X display: render there
    if os.environ.get("_SHOTS_CHILD") or not shutil.which("xvfb-run"):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
        return
    env = {**os.environ, "_SHOTS_CHILD": "1"}
    env.pop("QT_QPA_PLATFORM", None)
    sys.exit(subprocess.call(["xvfb-run", "-a", "-s", "-screen 0 1600x1000x24", sys.executable, *sys.argv],
                             env=env))


def _dark_palette():
    from PySide6.QtGui import QColor, QPalette

    p = QPalette()
    roles = QPalette.ColorRole
    for role, c in ((roles.Window, "#2b2b2e"), (roles.WindowText, "#e6e6e6"), (roles.Base, "#1e1e20"),
                    (roles.AlternateBase, "#2a2a2e"), (roles.Text, "#e6e6e6"), (roles.Button, "#35353a"),
                    (roles.ButtonText, "#e6e6e6"), (roles.Highlight, "#3d6fb6"), (roles.HighlightedText, "#ffffff"),
                    (roles.ToolTipBase, "#3a3a40"), (roles.ToolTipText, "#f0f0f0"), (roles.PlaceholderText, "#9a9a9a"),
                    (roles.Link, "#7fb0ff"), (roles.Mid, "#444448"), (roles.Dark, "#151517"),
                    (roles.Light, "#4a4a50")):
        p.setColor(role, QColor(c))
    return p


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "docs"))
    ap.add_argument("--tokens", type=int, default=10, help="capture once this many chunks (40 ms each) have streamed")
    ap.add_argument("--seed", type=int, default=11)
    args = ap.parse_args()
    _maybe_xvfb()
    home = Path(tempfile.mkdtemp(prefix="desktop-chat-shots-"))
    for var, sub in (("XDG_DATA_HOME", "data"), ("XDG_CONFIG_HOME", "config"), ("XDG_CACHE_HOME", "cache")):
        os.environ[var] = str(home / sub)
    os.environ["HF_HUB_OFFLINE"] = "1"
    sys.path.insert(0, str(ROOT))

    from PySide6.QtCore import QEventLoop, QTimer
    from PySide6.QtWidgets import QApplication

    from desktop.engine.chats.store import ChatStore

    app = QApplication(sys.argv)
    app.setApplicationName("desktop-chat")
    app.setStyle("Fusion")  # the same look under Xvfb and offscreen
    from desktop.engine import profiles

    # A fixed seed: the same answer (and so the same picture) on every run on a given machine.
    profiles.save_override(profiles.DEFAULT_PROFILE_ID, {"sampling": {"seed": args.seed}})
    store = ChatStore()
    for title, msgs in SEED:
        cid = store.create_chat(title)
        parent = None
        for role, text in msgs:
            parent = store.add_message(cid, parent, role, text, provenance={"profile_id": "smollm2-135m-instruct"}
                                       if role == "assistant" else None)
        time.sleep(0.01)
    store.close()

    from desktop.ui.main_window import MainWindow

    def wait(cond, timeout: float) -> bool:
        end = time.monotonic() + timeout
        while not cond() and time.monotonic() < end:
            loop = QEventLoop()
            QTimer.singleShot(20, loop.quit)
            loop.exec()
        return cond()

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    win = MainWindow()
    win.resize(1180, 760)
    win.show()
    win.load_profile(win.store.default())
    wait(lambda: win.loaded is not None, 120)
    win.open_chat(win.chat_list_model.chats[0].id)
    chunks: list[str] = []
    win.adapter.token_received.connect(lambda _r, t: chunks.append(t))
    win.input.setPlainText(FOLLOW_UP)
    win.send()
    wait(lambda: len(chunks) >= args.tokens or not win._stream, 120)
    wait(lambda: False, 0.1)  # one more coalesced flush and paint
    win.grab().save(str(out / "screenshot-main.png"))
    print(f"wrote {out / 'screenshot-main.png'} ({len(chunks)} chunks streamed)")
    wait(lambda: not win._stream, 120)

    _downloads_shot(win, home, out, wait)

    app.setPalette(_dark_palette())
    win.open_chat(win.chat_id)  # rebuild the messages so code blocks pick their dark highlighting style
    wait(lambda: False, 0.2)
    win.grab().save(str(out / "screenshot-dark.png"))
    print(f"wrote {out / 'screenshot-dark.png'}")
    win.close()
    shutil.rmtree(home, ignore_errors=True)
    return 0


def _downloads_shot(win, home: Path, out: Path, wait) -> None:
    """The download window over the main window, mid-download from a loopback Hub (a broken Llama 3)."""
    from PySide6.QtGui import QGuiApplication

    from tests.fixtures import tiny_gguf
    from tests.fixtures.hub_server import HubServer

    srv = HubServer(lifetime=300)
    os.environ["HF_ENDPOINT"] = srv.url
    os.environ.pop("HF_HUB_OFFLINE", None)
    data = tiny_gguf.make_llama3(home / "l3.gguf", eos_id=128001, eot_control=False,
                                 with_eot_key=False).path.read_bytes()
    repo = "acme/Tiny-Llama-3-8B-Instruct-GGUF"
    srv.add(repo, {f"Tiny-Llama-3-8B-Instruct-{q}.gguf": data + b"\0" * i for i, q in
                   enumerate(["Q4_K_M", "Q5_K_M", "Q8_0", "IQ3_M"])})
    srv.repos[repo].files["Tiny-Llama-3-8B-Instruct-Q8_0.gguf"].faults.throttle_bps = 2_500_000
    dw = win.open_downloads(None, None)
    dw.resize(900, 520)
    dw.move(win.x() + 240, win.y() + 160)
    dw.spec.setEditText(repo)
    dw.list_quants()
    wait(lambda: dw.quants.rowCount() > 0, 30)
    for r, e in enumerate(dw.quants.entries):
        if e.quant == "Q4_K_M":
            dw.quant_view.selectRow(r)
    dw.download_selected()
    wait(lambda: any(row["state"] == "done" for row in dw.jobs.rows), 60)
    for r, e in enumerate(dw.quants.entries):
        if e.quant == "Q8_0":
            dw.quant_view.selectRow(r)
    dw.download_selected()
    wait(lambda: any(row["state"] == "downloading" and row["done"] > len(data) * 0.4 for row in dw.jobs.rows), 60)
    wait(lambda: False, 0.3)
    if QGuiApplication.platformName() == "xcb":
        QGuiApplication.primaryScreen().grabWindow(0).copy(win.frameGeometry().united(dw.frameGeometry())).save(
            str(out / "screenshot-downloads.png"))
    else:
        dw.grab().save(str(out / "screenshot-downloads.png"))
    print(f"wrote {out / 'screenshot-downloads.png'}")
    dw.controller.close()
    dw.close()
    srv.close()


if __name__ == "__main__":
    sys.exit(main())
