"""Entry point: no arguments starts the GUI; subcommands run the CLI; ``--engine-worker`` is the engine.

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
    from desktop.cli import main as cli_main

    return cli_main(args)


if __name__ == "__main__":
    if getattr(sys, "frozen", False):
        import multiprocessing

        multiprocessing.freeze_support()
    sys.exit(main())
