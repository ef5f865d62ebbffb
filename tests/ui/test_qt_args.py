"""Qt's own command-line arguments start the GUI and reach Qt; only real subcommands go to the CLI parser."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import desktop.__main__ as entry

ROOT = Path(__file__).resolve().parents[2]


def test_qt_arguments_go_to_the_gui_and_commands_to_the_cli(monkeypatch) -> None:
    calls: list[tuple[str, list[str]]] = []
    import desktop.cli
    import desktop.ui.app

    monkeypatch.setattr(desktop.ui.app, "run_gui", lambda args=None: calls.append(("gui", list(args or []))) or 0)
    monkeypatch.setattr(desktop.cli, "main", lambda args=None: calls.append(("cli", list(args or []))) or 0)
    for argv in (["-platform", "xcb"], ["-style", "Fusion"], ["-style=Fusion", "-reverse"], []):
        entry.main(argv)
    entry.main(["profiles", "list"])
    entry.main(["--help"])
    entry.main(["no-such-command"])  # the CLI says it is not a command (one error line)
    assert calls == [("gui", ["-platform", "xcb"]), ("gui", ["-style", "Fusion"]),
                     ("gui", ["-style=Fusion", "-reverse"]), ("gui", []), ("cli", ["profiles", "list"]),
                     ("cli", ["--help"]), ("cli", ["no-such-command"])]


@pytest.mark.timeout(60)
def test_platform_and_style_arguments_start_the_real_gui(isolated_dirs) -> None:
    env = {**os.environ, "DESKTOP_CHAT_EXIT_AFTER_S": "1", "PYTHONPATH": str(ROOT)}
    env.pop("QT_QPA_PLATFORM", None)  # the platform comes from the argument only
    res = subprocess.run([sys.executable, "-m", "desktop", "-platform", "offscreen", "-style", "Windows"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=50)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "gui: platform=offscreen style=windows visible=True" in res.stdout, (res.stdout, res.stderr[-2000:])
    assert "Traceback" not in res.stderr
