"""The one log file: a rotating file in the data dir that every process of the app writes to.

Unhandled exceptions (main thread and worker threads), the engine process's stderr and Qt's own messages all end
up here, so a user who hits a problem has one file to attach. Plain Python (no Qt): the GUI installs its Qt message
handler on top of this. Runs in every process; each process tags its lines with its role.
"""
from __future__ import annotations

import logging
import logging.handlers
import sys
import threading
from pathlib import Path
from types import TracebackType
from typing import Callable

from desktop.engine import paths

LOGGER_NAME = "desktop_chat"
MAX_BYTES = 2 << 20  # 2 MiB a file, 3 old files kept: enough for a bug report, never a disk hog
BACKUPS = 3

_lock = threading.Lock()
_handler: logging.Handler | None = None

ExceptionSink = Callable[[BaseException], None]


def log_path() -> Path:
    return paths.data_dir() / "logs" / "desktop-chat.log"


def get_logger(name: str = "") -> logging.Logger:
    return logging.getLogger(f"{LOGGER_NAME}.{name}" if name else LOGGER_NAME)


def setup_logging(role: str) -> Path:
    """Point the app's logger at the rotating log file (idempotent per process). Returns the file's path.

    A data dir that cannot be written (read-only home, full disk) must not stop the app: logging then goes to
    stderr only.
    """
    global _handler
    path = log_path()
    with _lock:
        logger = get_logger()
        logger.setLevel(logging.INFO)
        logger.propagate = False
        if _handler is not None and getattr(_handler, "baseFilename", None) == str(path):
            return path
        if _handler is not None:
            logger.removeHandler(_handler)
            _handler.close()
            _handler = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            handler: logging.Handler = logging.handlers.RotatingFileHandler(
                path, maxBytes=MAX_BYTES, backupCount=BACKUPS, encoding="utf-8", delay=True)
        except OSError:
            handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(f"%(asctime)s {role}[%(process)d] %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
        _handler = handler
    return path


def log_exception(exc: BaseException, where: str = "") -> None:
    get_logger("crash").error("unhandled exception%s", f" in {where}" if where else "",
                              exc_info=(type(exc), exc, exc.__traceback__))


def install_excepthooks(sink: ExceptionSink | None = None) -> None:
    """Send unhandled exceptions of the main thread and of every other thread to the log (and to ``sink``).

    ``sink`` is how the GUI shows one sentence through its error presenter; it must be safe to call from any
    thread (the GUI passes a function that only emits a queued signal). KeyboardInterrupt keeps its default.
    """

    def _hook(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        if issubclass(exc_type, KeyboardInterrupt):
            sys.__excepthook__(exc_type, exc, tb)
            return
        if exc.__traceback__ is None and tb is not None:
            exc = exc.with_traceback(tb)
        log_exception(exc, "main thread")
        if sink is not None:
            sink(exc)

    def _thread_hook(args: threading.ExceptHookArgs) -> None:
        if args.exc_value is None or issubclass(args.exc_type, SystemExit):
            return
        log_exception(args.exc_value, f"thread {args.thread.name if args.thread else '?'}")
        if sink is not None:
            sink(args.exc_value)

    sys.excepthook = _hook
    threading.excepthook = _thread_hook
