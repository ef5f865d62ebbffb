"""The app's one list of installed models: scanned on a worker, announced to every view that shows it.

The picker, the Models page, the Model menu's installed flags and the welcome page all read this object
instead of scanning on their own. :meth:`InstalledModels.refresh` runs one :func:`scan.scan` on the thread
pool (a refresh asked for while one runs is folded into one more scan after it) and ``changed`` fires on the
GUI thread when the answer is in. Whoever changes what is installed (a finished download, an import, a
rename, a removal, saved settings) calls :meth:`refresh`. No disk I/O on the GUI thread.
"""
from __future__ import annotations

from typing import Any, Callable

from PySide6.QtCore import QObject, Signal

from desktop.ui.library import scan as scan_module
from desktop.ui.library.scan import Library
from desktop.ui.workers import JobKeeper


class InstalledModels(QObject):
    changed = Signal()  # a scan's answer is in (``library`` is the new one)
    failed = Signal(object)  # a scan failed (the exception); ``library`` stays as it was

    def __init__(self, store: Any = None, hw: Any = None, parent: QObject | None = None,
                 scan_fn: Callable[[Any, Any], Library] | None = None) -> None:
        super().__init__(parent)
        self.store, self.hw = store, hw
        self.library = Library()
        self.scanned = False  # True once the first answer is in
        self._scan = scan_fn
        self._jobs = JobKeeper(self)
        self._running = False
        self._again = False

    def refresh(self) -> None:
        if self._running:
            self._again = True  # one more scan after this one, for what changed meanwhile
            return
        self._running = True
        store, hw, fn = self.store, self.hw, self._scan or scan_module.scan
        self._jobs.start(lambda: fn(store, hw), self._done, self._failed)

    def _rescanned(self) -> bool:
        """A scan ended: True when another was asked for meanwhile (it starts now; this answer is stale)."""
        self._running = False
        if not self._again:
            return False
        self._again = False
        self.refresh()
        return True

    def _done(self, lib: Library) -> None:
        if not self._rescanned():
            self.library, self.scanned = lib, True
            self.changed.emit()

    def _failed(self, exc: BaseException) -> None:
        if not self._rescanned():
            self.failed.emit(exc)

    # -- reading the last answer (GUI thread, no I/O) --------------------------------------------
    @property
    def entries(self) -> list[Any]:
        return self.library.entries

    @property
    def items(self) -> list[Any]:
        return self.library.items

    def entry(self, profile_id: str | None) -> Any:
        return self.library.entry(profile_id)

    def installed(self, profile_id: str) -> bool | None:
        """Whether the profile's model is installed (None: not scanned yet, or an unknown profile)."""
        e = self.entry(profile_id) if self.scanned else None
        return e.installed if e is not None else None

    def name_of(self, profile_id: str | None, fallback: str = "") -> str:
        """The one name of a profile's model (its installed file's name, which follows a rename)."""
        e = self.entry(profile_id)
        return e.name if e is not None else fallback

    def describe(self, profile_id: str | None, model_path: str | None, file_type: str | None,
                 fallback: str = "") -> tuple[str, str | None]:
        """(name, quant label) of a loaded model: the installed file's name, and its own type with the repo's
        name beside it when they differ."""
        from desktop.ui.library.labels import quant_label

        item = self.library.item_by_path(model_path)
        if item is not None:
            return item.name, quant_label(file_type or item.file_type, item.quant)
        return self.name_of(profile_id, fallback), file_type
