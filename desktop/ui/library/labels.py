"""The labels every view shows for an installed file: its quant, as its own GGUF header says it.

The file's own type (``Q8_0``, ``ALL_F32``) from ``general.file_type``, with the name the repo gave the file
beside it when the two differ (:func:`quant_label`). Reading a header is disk I/O: worker threads only.
"""
from __future__ import annotations

import os
from pathlib import Path

_FILE_TYPES: dict[tuple[str, int, int], str | None] = {}  # (realpath, size, mtime_ns) -> type: headers don't change


def file_type_of(path: str | Path) -> str | None:
    """The GGUF header's ``general.file_type`` as its name (``Q8_0``, ``ALL_F32``); None when unreadable.
    Reads the file's first bytes only (cached per file version)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    key = (os.path.realpath(path), st.st_size, st.st_mtime_ns)
    if key not in _FILE_TYPES:
        from desktop.engine.gguf.header import read_file_type
        from desktop.engine.hub.listing import HEADER_PREFIX_BYTES

        _FILE_TYPES[key] = read_file_type(path, HEADER_PREFIX_BYTES)
    return _FILE_TYPES[key]


def _same_quant(file_type: str, repo_quant: str) -> bool:
    a, b = file_type.upper(), repo_quant.upper()
    return a == b or a.removeprefix("ALL_") == b


def quant_label(file_type: str | None, repo_quant: str | None) -> str | None:
    """``Q8_0``; ``ALL_F32 (repo: Q8_0)`` when the file says otherwise than its name; the repo's name alone
    while the file is not there to ask."""
    if file_type and repo_quant and not _same_quant(file_type, repo_quant):
        return f"{file_type} (repo: {repo_quant})"
    return file_type or repo_quant
