"""The Model menu: switching profiles (tiny scripted GGUFs), cancelling a load, downloads, import."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import Qt

from desktop.engine.library import registry
from tests.ui.conftest import TINY_LLAMA3, TINY_SPM, _write_profile


def _menu_action(qtbot, w, profile_id: str):
    # The installed flags are scanned on a worker (no disk I/O when the menu opens): wait for a fresh scan.
    with qtbot.waitSignal(w.state.installed.changed, timeout=10000):
        w.state.installed.refresh()
    w.model_menu.menu.aboutToShow.emit()  # what opening the menu does
    return w.profile_actions[profile_id]


def _ask(qtbot, w, text: str) -> str:
    with qtbot.waitSignal(w.adapter.generation_finished, timeout=60000) as blocker:
        w.input.setPlainText(text)
        assert w.send()
    qtbot.waitUntil(lambda: not w._stream, timeout=5000)
    return blocker.args[1].text


def test_switching_profiles_from_the_menu_updates_the_status_bar(qtbot, make_window, tiny_profiles) -> None:
    w = make_window(TINY_LLAMA3)
    assert w.status_model.text().startswith("Tiny Llama 3")
    # No answer in this chat yet: the context use is not known, so it is not shown (no stale "0/512").
    assert w.status_backend.text() == "CPU" and not w.status_ctx.isVisibleTo(w)
    assert _ask(qtbot, w, "hello") == "Hi there!"
    assert "tok/s" in w.status_speed.text()
    act = _menu_action(qtbot, w, TINY_SPM)
    assert act.text() == "Tiny SPM" and act.property("installed")
    with qtbot.waitSignal(w.adapter.model_loaded, timeout=60000):
        act.trigger()
        assert w.load_label.isVisibleTo(w) and "Loading Tiny SPM" in w.load_label.text()
        assert w.input.isEnabled() and w.view.isEnabled()  # the chat stays usable while loading
    assert not w.load_label.isVisibleTo(w)
    assert w.status_model.text().startswith("Tiny SPM") and w.status_speed.text() == ""
    assert w.profile_actions[TINY_SPM].isChecked()
    # Same chat, the other model answers now; provenance says which one.
    assert _ask(qtbot, w, "hello again") == "Hello!"
    msgs = w.chats.thread(w.chat_id)
    assert [m.provenance.get("profile_id") for m in msgs if m.role == "assistant"] == [TINY_LLAMA3, TINY_SPM]
    assert msgs[-1].provenance["model_file"] == "spm.gguf"


def test_cancelling_a_load_goes_back_to_the_previous_model(qtbot, make_window, tiny_profiles) -> None:
    w = make_window(TINY_LLAMA3)
    old_pid = w.adapter.client.pid
    with qtbot.waitSignal(w.adapter.load_cancelled, timeout=10000):
        w.load_profile(w.store.get(TINY_SPM))
        assert w.load_cancel.isVisibleTo(w)
        with qtbot.waitSignal(w.adapter.model_loaded, timeout=60000) as back:
            w.load_cancel.click()
    assert w.adapter.client.pid != old_pid  # the engine was stopped: llama.cpp cannot interrupt a load
    assert back.args[0].model_path.endswith("llama3-ok.gguf")
    assert w.status_model.text().startswith("Tiny Llama 3") and not w.load_label.isVisibleTo(w)
    assert _ask(qtbot, w, "still there?") == "Hi there!"


def test_not_downloaded_profile_opens_its_repo_page_with_the_recommended_quant(qtbot, make_window) -> None:
    w = make_window()
    act = _menu_action(qtbot, w, "smaug-mixtral-v0.1")
    assert act.text().endswith("(not downloaded)") and not act.property("installed")
    prof = w.store.get("smaug-mixtral-v0.1")
    with qtbot.waitSignal(w.views.repo.listing_finished, timeout=30000):  # offline here: the listing fails
        act.trigger()
    # The one quant picker: the repo page in the Hub, on that profile, wanting its recommended quant.
    assert w.pages.currentWidget() is w.views.hub_scroll and w.views.hub_page.currentWidget() is w.views.repo
    assert w.views.repo.spec == "smaug-mixtral-v0.1" and w.views.repo.error_panel.isVisible()
    assert prof.source.recommended_quant
    assert w.profile_actions["smollm2-135m-instruct"].isChecked()  # nothing was unloaded
    # The Downloads page is one page of the rail (Ctrl+4), not a window.
    qtbot.keyClick(w, Qt.Key.Key_4, Qt.KeyboardModifier.ControlModifier)
    assert w.pages.currentWidget() is w.views.downloads_scroll


@dataclass
class _Imported:
    profile_id: str
    path: Path
    fixes: list[str]


def test_import_gguf_runs_off_the_gui_thread_and_offers_the_new_profile(qtbot, make_window, monkeypatch,
                                                                         tiny_profiles, llama3_ok) -> None:
    import threading



    seen_threads: list[bool] = []

    def fake_import(path, profile_id=None):
        seen_threads.append(threading.current_thread() is threading.main_thread())
        _write_profile("imported-llama3", "Imported Llama 3", "llama3", 128009)
        registry.register_model("imported-llama3", path)
        return _Imported("imported-llama3", Path(path), ["eot-128009"])

    monkeypatch.setattr(registry, "import_model", fake_import, raising=False)
    w = make_window()
    w.import_gguf(str(llama3_ok.path))
    qtbot.waitUntil(lambda: w.import_action.isEnabled(), timeout=10000)
    assert seen_threads == [False]
    assert "“Imported Llama 3”" in w.banner.label.text() and "eot-128009" in w.banner.label.text()
    assert "imported-llama3" in w.store.ids() and len(w.model_menu.rows()) == len(w.store.ids())
    assert w.banner.isVisibleTo(w) and w.banner.action_btn.text() == "Load it"
    # Loaded another way (not the banner's button): the offer is done, and the banner goes.
    with qtbot.waitSignal(w.adapter.model_loaded, timeout=60000):
        w.load_profile(w.store.get("imported-llama3"))
    assert w.status_model.text().startswith("Imported Llama 3")
    assert not w.banner.isVisibleTo(w)


def test_import_failure_is_presented_once(qtbot, make_window, monkeypatch) -> None:
    from desktop.engine.errors import GGUFError

    def bad(path, profile_id=None):
        raise GGUFError(f"{path} is not a GGUF file")

    monkeypatch.setattr(registry, "import_model", bad, raising=False)
    w = make_window(load=False)
    w.import_gguf("/tmp/nope.bin")
    qtbot.waitUntil(lambda: w.import_action.isEnabled(), timeout=10000)
    assert w.errors.last == "/tmp/nope.bin is not a GGUF file" and w.errors.box is not None


def test_real_import_of_a_broken_llama3_lists_the_fix(qtbot, make_window, llama3_broken) -> None:
    w = make_window(load=False)
    w.import_gguf(str(llama3_broken.path))
    qtbot.waitUntil(lambda: w.import_action.isEnabled(), timeout=60000)
    text = w.banner.label.text()
    assert "Imported llama3-broken.gguf" in text and "128009" in text, text
    pid = text.split("“")[1].split("”")[0]
    assert pid in w.store.ids()
    assert _menu_action(qtbot, w, pid).property("installed")


def test_the_menu_lists_the_one_scan_installed_first_under_each_models_one_name(qtbot, make_window,
                                                                              tiny_profiles) -> None:
    """The Model menu reads the app's one installed-model scan: no list of its own, and no disk access on opening."""
    w = make_window(load=False)
    _menu_action(qtbot, w, TINY_LLAMA3)
    rows = [(a.data(), a.property("installed"), a.text()) for a in w.model_menu.menu.actions() if a.data()]
    installed = [r for r in rows if r[1]]
    assert {r[0] for r in installed} == {"smollm2-135m-instruct", TINY_LLAMA3, TINY_SPM}
    assert rows[:3] == installed  # installed first
    assert dict((r[0], r[2]) for r in rows)["smaug-mixtral-v0.1"].endswith("(not downloaded)")
    assert [r[0] for r in rows] == [e.profile_id for e in w.state.installed.entries]
    # A rename reaches the menu with the next scan.
    item = next(i for i in w.state.installed.items if i.profile_id == TINY_LLAMA3)
    registry.rename_model(item.id, "Renamed Llama")
    w.model_menu.menu.aboutToShow.emit()
    assert w.profile_actions[TINY_LLAMA3].text() == "Tiny Llama 3"  # opening the menu read nothing
    assert _menu_action(qtbot, w, TINY_LLAMA3).text() == "Renamed Llama"
