"""One scan of what is installed, and the labels every view shows for it: a model's one name and its quant.

:func:`scan` reads the registry, the shared Hugging Face cache and each profile's file once (disk I/O: a
worker thread calls it, see ``installed.InstalledModels``), and answers both shapes the views need: per
profile (``PickerEntry``: the picker, the welcome page, the Model menu) and per installed file
(``LibraryItem``: the Models page, the repo page's "installed" marks). No widgets here.

Names: an installed model is called by its registry name (what Rename changes); a profile whose file is
installed takes that file's name, so the picker, the Models page and the download message agree and follow
a rename. Quants: labels.py.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Library:
    """One scan's answer."""

    entries: list[Any] = field(default_factory=list)  # PickerEntry per profile, installed first
    items: list[Any] = field(default_factory=list)  # LibraryItem per installed file

    def entry(self, profile_id: str | None) -> Any:
        return next((e for e in self.entries if e.profile_id == profile_id), None)

    def item_by_path(self, path: str | Path | None) -> Any:
        real = os.path.realpath(path) if path else None
        return next((i for i in self.items if real and os.path.realpath(i.path) == real), None)


def profile_installed(profile: Any) -> bool:
    """Whether one profile's model is there to load (a server-backed profile always is). A file lookup, never a
    hash; for the one check at start-up, before the first scan is in."""
    from desktop.engine.errors import AppError
    from desktop.engine.library import registry

    if registry.is_remote(profile):
        return True
    try:
        registry.resolve_model(profile)
        return True
    except AppError:
        return False


def scan(store: Any = None, hw: Any = None) -> Library:
    """Worker thread: the registry and HF cache read once, every installed file's header type, every profile."""
    from desktop.engine.library import registry
    from desktop.engine.profiles import ProfileStore
    from desktop.ui.library.models_list import items_of
    from desktop.ui.library.picker_model import entries_of

    store = store or ProfileStore()
    installed = registry.list_installed(store)
    items = items_of(installed, store)
    return Library(entries_of(store, hw, installed, items), items)
