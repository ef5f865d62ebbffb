"""The app state (desktop/ui/state.py): one widget-free owner of the current model and its load state, the installed
models, the downloads and the open chat, which the window's views only subscribe to.

The engine is a stand-in client here: the adapter's events are the engine's typed events, fed in as the reader
thread would, so each step of a load, a crash and a rename is exact.
"""
from __future__ import annotations

import subprocess
import sys
import threading
from typing import Any

import pytest

from desktop.engine.inference import protocol as P
from desktop.ui.engine_adapter import EngineAdapter
from desktop.ui.library.installed import InstalledModels
from desktop.ui.library.models_list import LibraryItem
from desktop.ui.library.picker_model import PickerEntry
from desktop.ui.library.scan import Library
from desktop.ui.state import AppState, CurrentModel

PATH = "/models/tiny.gguf"


class _Client:
    """What the adapter asks of the engine client, recorded; nothing runs."""

    def __init__(self) -> None:
        self._inflight: dict[str, Any] = {}
        self.last_load = None
        self.sent: list[Any] = []
        self.dead = False  # the engine died: the next request starts it again

    def submit(self, req: Any) -> str:
        self.sent.append(req)
        return req.id

    def needs_restart(self) -> bool:
        return self.dead

    def count_tokens(self, text: str, timeout: float | None = None) -> int:
        self.dead = False
        return len(text.split())

    def cancel(self, rid: str) -> None: ...

    def kill(self) -> None: ...

    def forget_load(self) -> set[str]:
        self.last_load = None
        return set(self._inflight)

    def close(self) -> None: ...


def _loaded(rid: str, quant: str = "Q4_K") -> P.Loaded:
    return P.Loaded(rid, PATH, 2048, 4096, 0, "CPU", 0.1, [2], None, {}, "tiny", quant=quant,
                    llama_cpp_version="0.3")


class _Scans:
    """The installed-model scan's answers, one name at a time (a rename is a new name in the next scan)."""

    def __init__(self, profile_id: str, name: str) -> None:
        self.profile_id, self.name = profile_id, name

    def __call__(self, _store: Any, _hw: Any) -> Library:
        entry = PickerEntry(self.profile_id, self.name, "Q4_K_M", 1, False, True, False, None)
        item = LibraryItem("m1", self.name, self.profile_id, PATH, 1, "Q4_K_M", "Imported", file_type="Q4_K")
        return Library([entry], [item])


@pytest.fixture
def state(qtbot) -> AppState:
    from desktop.engine.profiles import ProfileStore

    store = ProfileStore()
    pid = store.default().id
    scans = _Scans(pid, "My Model")
    st = AppState(store, adapter=EngineAdapter(client=_Client()),
                  installed=InstalledModels(store, scan_fn=scans))
    st.scans = scans  # type: ignore[attr-defined]
    with qtbot.waitSignal(st.installed.changed, timeout=10000):
        st.installed.refresh()
    yield st
    st.close()


def _record(st: AppState) -> list[CurrentModel]:
    seen: list[CurrentModel] = []
    st.model_changed.connect(seen.append)
    return seen


def test_a_load_and_a_rename_are_one_current_model_that_the_session_follows(qtbot, state: AppState) -> None:
    st, a = state, state.adapter
    p = st.store.default()
    seen = _record(st)
    loads: list[CurrentModel] = []
    st.model_loaded.connect(loads.append)
    a.load_requested(p)
    assert st.current.phase == "loading" and st.current.loading_name == "My Model"
    a._on_event(P.LoadProgress(a.loading, 0.5))
    ev = _loaded(a.loading)
    a._on_event(ev)
    assert [c.phase for c in seen] == ["loading", "loaded"] and loads == [st.current]
    c = st.current
    # The installed file's one name and its own quant type, with the repo's name beside it when they differ.
    assert (c.profile, c.name, c.quant, c.info) == (p, "My Model", "Q4_K (repo: Q4_K_M)", ev)
    assert st.session.loaded is ev and st.session.model_name == "My Model"
    # A rename is a new scan: the state announces the new name once, and the next answer's header uses it.
    st.scans.name = "Renamed"  # type: ignore[attr-defined]
    with qtbot.waitSignal(st.model_changed, timeout=10000):
        st.installed.refresh()
    assert st.current.name == "Renamed" and st.current.info is ev and st.session.model_name == "Renamed"
    assert st.session.provenance()["profile_name"] == "Renamed"
    n = len(seen)
    with qtbot.waitSignal(st.installed.changed, timeout=10000):
        st.installed.refresh()  # nothing changed: nothing announced
    assert len(seen) == n and loads == [loads[0]]


def test_a_crash_a_restart_a_failure_and_a_cancel(qtbot, state: AppState) -> None:
    st, a = state, state.adapter
    p = st.store.default()
    a.load_requested(p)
    a._on_event(_loaded(a.loading))
    seen = _record(st)
    # The engine dies under an answer: the model comes back with the next message.
    a.generation_failed.emit("gen-1", {"code": "engine_crashed", "message": "The engine stopped."})
    assert st.current.phase == "stopped" and st.current.profile == p
    a.restarting.emit(p)
    assert st.current.phase == "restarting" and st.current.loading == p
    a._on_event(_loaded("reload-1"))
    assert st.current.phase == "loaded" and not st.current.stopped
    assert [c.phase for c in seen] == ["stopped", "restarting", "loaded"]
    # A failed load leaves no model, and says why once.
    failures: list[Any] = []
    st.load_failed.connect(failures.append)
    rid = a.load_requested(p)
    a._on_event(P.Failed(rid, {"code": "load_failed", "message": "bad file", "details": None}))
    assert st.current == CurrentModel() and st.session.loaded is None and [f["message"] for f in failures] == [
        "bad file"]
    # A cancelled load with a model to go back to loads that one again.
    a.load_requested(p)
    a._on_event(_loaded(a.loading))
    other = st.store.get(next(i for i in st.store.ids() if i != p.id))
    cancels: list[tuple[Any, Any]] = []
    st.load_cancelled.connect(lambda what, back: cancels.append((what, back)))
    a.profile, a.loading = other, "load-other"  # as load_requested does, for a model with no file here
    a.load_started.emit(other)
    a.cancel_load()
    assert cancels == [(other, p)] and st.current.phase == "loading" and st.current.loading == p
    a._on_event(_loaded(a.loading))
    assert st.current.phase == "loaded" and st.current.profile == p


def test_the_window_shows_only_what_the_state_says(qtbot, state: AppState) -> None:
    """The status bar, the picker, the chat's model line and the welcome headline all render the state."""
    from desktop.ui.shell.main_window import MainWindow

    w = MainWindow(state=state)
    qtbot.addWidget(w)
    w.show()
    w.new_chat()
    a = state.adapter
    a.load_requested(state.store.default())
    assert w.status.loading and not w.views.picker.button.isEnabled()
    assert w.welcome.headline.text() == "Loading My Model…"
    a._on_event(_loaded(a.loading))
    assert not w.status.loading and w.views.picker.button.isEnabled()
    assert w.status_model.text() == "My Model · Q4_K (repo: Q4_K_M)" and w.loaded is state.current.info
    assert w.welcome.headline.text() == "My Model is ready to chat"
    state.scans.name = "Renamed"  # type: ignore[attr-defined]
    with qtbot.waitSignal(state.model_changed, timeout=10000):
        state.installed.refresh()
    assert w.status_model.text().startswith("Renamed")
    assert w.views.picker.button.text().startswith("Renamed") and w.welcome.headline.text() == "Renamed is ready to chat"
    a.generation_failed.emit("gen-1", {"code": "engine_crashed", "message": "The engine stopped."})
    assert w.status_model.text() == "Engine stopped; it restarts with the next message"


def test_the_state_imports_no_widgets() -> None:
    code = "import sys, desktop.ui.state; print(sorted(m for m in sys.modules if m.startswith('PySide6.')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    mods = eval(out.stdout)  # noqa: S307 - our own print of a list of names
    assert "PySide6.QtCore" in mods and "PySide6.QtWidgets" not in mods and "PySide6.QtGui" not in mods


def test_a_saved_profile_is_the_current_one_from_the_next_message(qtbot, state: AppState) -> None:
    from desktop.engine import profiles

    st, a = state, state.adapter
    p = st.store.default()
    a.load_requested(p)
    a._on_event(_loaded(a.loading))
    profiles.save_override(p.id, {"sampling": {"temperature": 1.7}})
    st.store.reload()
    with qtbot.waitSignal(st.model_changed, timeout=1000):
        st.profile_saved(p.id)
    assert st.current.profile.sampling.temperature == 1.7 and st.current.info is not None
    assert a.profile.sampling.temperature == 1.7 and a.request_for().temperature == 1.7
    seen = _record(st)
    st.profile_saved("some-other-profile")  # not the current model's: nothing changes
    assert seen == []


def test_the_local_server_offers_the_one_scans_models_under_their_one_names(qtbot, state: AppState) -> None:
    (m,) = state.served_models()
    assert (m.id, m.name, m.path, m.quant, m.profile) == ("m1", "My Model", PATH, "Q4_K_M", state.store.default())
    state.scans.name = "Renamed"  # type: ignore[attr-defined]
    with qtbot.waitSignal(state.installed.changed, timeout=10000):
        state.installed.refresh()
    assert [s.name for s in state.served_models()] == ["Renamed"]


def test_a_stage_that_restarts_the_engine_is_announced_on_the_gui_thread(qtbot, state: AppState) -> None:
    """The tool stage asks the engine from a worker thread: the restart notice reaches the state on the GUI thread."""
    from PySide6.QtCore import QThread

    st, a = state, state.adapter
    a.load_requested(st.store.default())
    a._on_event(_loaded(a.loading))
    a._on_event(P.Failed("gen-1", {"code": "engine_crashed", "message": "The engine stopped.", "details": None}))
    assert st.current.phase == "stopped"
    seen: list[tuple[str, bool]] = []
    gui = QThread.currentThread()
    st.model_changed.connect(lambda c: seen.append((c.phase, QThread.currentThread() is gui)))
    a.client.dead = True
    worker = threading.Thread(target=lambda: a.count_tokens("how many tokens"))
    worker.start()
    worker.join(5)
    qtbot.waitUntil(lambda: bool(seen), timeout=2000)
    assert seen == [("restarting", True)]
