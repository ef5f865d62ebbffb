"""What every CLI command shares: the one-line-error parser, JSON output and the profile store.

Runs on the main thread of the CLI process.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any, NoReturn


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, no usage dump
        sys.stderr.write(f"error: {message} (see --help)\n")
        raise SystemExit(1)


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


def _store():
    from desktop.engine.profiles import ProfileStore

    store = ProfileStore()
    for problem in store.problems:  # a broken user file is skipped, not fatal; say so once per file
        sys.stderr.write(f"warning: skipped a user profile: {problem.message}\n")
    return store
