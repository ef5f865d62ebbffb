"""The one log file: unhandled exceptions of any thread land in the rotating file in the data dir."""
from __future__ import annotations

import sys
import threading

import pytest

from desktop.engine import logs


def test_unhandled_exceptions_of_main_and_worker_threads_reach_the_log_and_the_sink(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)
    monkeypatch.setattr(threading, "excepthook", threading.excepthook)
    seen: list[BaseException] = []
    path = logs.setup_logging("test")
    logs.install_excepthooks(seen.append)

    try:
        raise ValueError("boom in main")
    except ValueError as exc:
        sys.excepthook(type(exc), exc, exc.__traceback__)

    def worker() -> None:
        raise RuntimeError("boom in worker")

    t = threading.Thread(target=worker, name="worker-x")
    t.start()
    t.join()

    for h in logs.get_logger().handlers:
        h.flush()
    text = path.read_text()
    assert "boom in main" in text and "boom in worker" in text and "thread worker-x" in text
    assert "Traceback" in text  # the log keeps the traceback the user never sees
    assert [str(e) for e in seen] == ["boom in main", "boom in worker"]
    assert str(path).startswith(str(logs.paths.data_dir()))
