"""The command-line front end: the same engine calls the GUI makes, printed to a terminal.

User errors print one ``error: ...`` line on stderr and exit 1, never a traceback. Runs on the main
thread of the CLI process; generation happens in the engine process.
"""
from __future__ import annotations

import argparse
import sys

from desktop.cli import chat, gguf, models, profiles, serve, tools
from desktop.cli.common import Parser
from desktop.engine.errors import AppError


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="desktop-chat", description="Chat with local GGUF models. Without a command, opens the app.")
    sub = p.add_subparsers(dest="cmd", parser_class=Parser)

    profiles.add_parser(sub)
    chat.add_parser(sub)
    serve.add_parser(sub)
    models.add_parser(sub)
    tools.add_parser(sub)
    gguf.add_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not getattr(args, "cmd", None):
        from desktop.ui.app import run_gui

        return run_gui()
    from desktop.engine import logs

    log_file = logs.setup_logging("cli")
    logs.install_excepthooks()  # other threads' crashes go to the log file, not to the terminal
    try:
        return int(args.fn(args) or 0)
    except AppError as exc:
        sys.stderr.write(f"error: {exc.message}\n")
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:  # noqa: BLE001 - a bug: one line for the user, the traceback in the log
        logs.log_exception(exc, f"cli {args.cmd}")
        sys.stderr.write(f"error: internal error ({type(exc).__name__}: {exc}); details are in {log_file}\n")
        return 1


__all__ = ["main", "build_parser"]
