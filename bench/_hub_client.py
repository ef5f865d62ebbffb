"""The bench's side of bench/_hub_proc.py: start the loopback Hub in its own process and send it commands."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


class HubProc:
    """``with HubProc(repo, name, blob) as hub:`` -> ``hub.url``, ``hub.cmd("throttle 8000000")``."""

    def __init__(self, repo: str, name: str, blob: Path) -> None:
        self.proc = subprocess.Popen([sys.executable, str(ROOT / "bench" / "_hub_proc.py"), repo, name, str(blob)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)
        assert self.proc.stdout is not None and self.proc.stdin is not None
        self.pid = self.proc.pid
        self.url = self.proc.stdout.readline().strip()

    def cmd(self, c: str) -> Any:
        assert self.proc.stdout is not None and self.proc.stdin is not None
        self.proc.stdin.write(c + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def close(self) -> None:
        try:
            assert self.proc.stdin is not None
            self.proc.stdin.write("quit\n")
            self.proc.stdin.flush()
            self.proc.wait(10)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()

    def __enter__(self) -> "HubProc":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
