"""Entry point: no arguments starts the GUI; subcommands run the CLI; ``--engine-worker`` is the engine.

Arguments that start with ``-`` (other than ``-h``/``--help``) are Qt's (``-platform xcb``, ``-style Fusion``):
they start the GUI and go to QApplication. Anything else is a CLI command (an unknown one is a CLI error).

The worker flag is checked before anything heavy is imported, so the engine process starts fast and
works the same from source and from a PyInstaller bundle.
"""
from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["--engine-worker"]:
        from desktop.engine.inference.host import main as engine_main

        return engine_main()
    if args[:1] in (["--selftest"], ["--smoke-gui"]):
        # Checks of an installed or frozen build (make dist-check): see desktop/selftest.py.
        from desktop import selftest

        return selftest.run_selftest(args[1:]) if args[0] == "--selftest" else selftest.run_smoke_gui(args[1:])
    if not args or (args[0].startswith("-") and args[0] not in ("-h", "--help")):
        # The GUI, with Qt's own arguments (-platform xcb, -style Fusion, -reverse…) passed through to Qt.
        from desktop.ui.app import run_gui

        return run_gui(args)
    from desktop.cli import main as cli_main

    return cli_main(args)


if __name__ == "__main__":
    if getattr(sys, "frozen", False):
        import multiprocessing

        multiprocessing.freeze_support()
    sys.exit(main())
