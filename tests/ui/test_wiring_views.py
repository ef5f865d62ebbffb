"""The model views inside the real main window: the picker loads, the Hub, Models and Downloads pages are
reachable (and by keyboard), a Hub download becomes a DownloadManager job shown on the repo page and refreshes
the views, the welcome view fills an empty chat and says "ready" only for the loaded model, a rename reaches
every view, and an import whose prompt format is unknown asks and retries."""
from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

from desktop.engine.errors import FormatUnknownError
from desktop.engine.library import registry
from desktop.ui.widgets.cards import BadgesRole
from tests.fixtures import tiny_gguf

REPO = "acme/Tiny-Llama-3-GGUF"
FILE = "tiny-llama3.Q8_0.gguf"


def test_picker_is_on_the_chat_and_choosing_loads_the_profile(qtbot, make_window, tiny_profiles, monkeypatch
                                                               ) -> None:
    w = make_window()
    picker = w.picker
    assert w.chat_page.picker is picker and picker.isVisibleTo(w)
    assert picker.current == w.store.default().id  # in sync with what the window loaded
    qtbot.waitUntil(lambda: picker.entry("tiny-spm") is not None, timeout=15000)
    seen: list[str] = []
    w.adapter.load_started.connect(lambda _p: seen.append(picker.button.text()))
    qtbot.mouseClick(picker.button, Qt.MouseButton.LeftButton)
    qtbot.keyClicks(picker.popup.search, "tiny spm")
    with qtbot.waitSignal(w.adapter.model_loaded, timeout=30000):
        qtbot.keyClick(picker.popup.search, Qt.Key.Key_Return)
    assert w.adapter.loaded_profile.id == "tiny-spm"
    assert seen == ["Loading Tiny SPM… 0%"]  # the picker said so while it ran
    assert picker.current == "tiny-spm" and picker.button.isEnabled()
    # One quant label everywhere: the file's own type, in the picker and the status bar alike.
    assert picker.button.text() == "Tiny SPM  ·  F16  ▾" and w.status_model.text() == "Tiny SPM · F16"
    # Progress from the engine reaches the picker's button; the one bar and Cancel are the status bar's.
    w.adapter.load_progress.emit(0.4)
    assert picker.button.text().endswith("40%")
    # A model that is not downloaded opens its repo page (the one quant picker) with that quant.
    picker.download_requested.emit("gemma-3-4b-it", "Q4_K_M")
    assert w.pages.currentWidget() is w.views.hub_scroll and w.views.repo.spec == "gemma-3-4b-it"


def test_hub_and_models_pages_by_keyboard_and_rail(qtbot, make_window) -> None:
    w = make_window(load=False)
    assert w.views.hub_scroll.widget() is w.views.hub_page and w.views.library_scroll.widget() is w.views.library
    # The pages scroll rather than make the window bigger than a small screen (800x500 logical at 2x).
    assert w.minimumSizeHint().height() < 400 and w.minimumSizeHint().width() < 760
    assert list(w.page_buttons) == ["chats", "hub", "models", "downloads", "server"]
    assert all(not b.icon().isNull() for b in w.page_buttons.values())
    w.input.setFocus()
    qtbot.keyClick(w.input, Qt.Key.Key_2, Qt.KeyboardModifier.ControlModifier)
    assert w.pages.currentWidget() is w.views.hub_scroll and w.page_buttons["hub"].isChecked()
    qtbot.waitUntil(lambda: w.views.hub.box.hasFocus(), timeout=2000)  # Ctrl+2 lands in the search box
    qtbot.keyClick(w.focusWidget() or w, Qt.Key.Key_3, Qt.KeyboardModifier.ControlModifier)
    assert w.pages.currentWidget() is w.views.library_scroll
    qtbot.keyClick(w.focusWidget() or w, Qt.Key.Key_4, Qt.KeyboardModifier.ControlModifier)
    assert w.pages.currentWidget() is w.views.downloads_scroll
    qtbot.mouseClick(w.page_buttons["hub"], Qt.MouseButton.LeftButton)
    assert w.pages.currentWidget() is w.views.hub_scroll
    qtbot.mouseClick(w.page_buttons["chats"], Qt.MouseButton.LeftButton)
    assert w.pages.currentWidget() is w.splitter
    # Loading from the library goes back to the chat.
    qtbot.mouseClick(w.page_buttons["models"], Qt.MouseButton.LeftButton)
    chosen: list[str] = []
    w.model_menu.choose_profile = chosen.append  # the instance attribute wins over the method
    w.views.library.load_requested.emit("smollm2-135m-instruct")
    assert chosen == ["smollm2-135m-instruct"] and w.pages.currentWidget() is w.splitter


def test_ctrl_2_focuses_the_hub_search_and_down_moves_into_the_results(qtbot, make_window, hub) -> None:
    w = make_window(load=False)
    w.input.setFocus()
    qtbot.keyClick(w.input, Qt.Key.Key_2, Qt.KeyboardModifier.ControlModifier)
    box = w.views.hub.box
    qtbot.waitUntil(box.hasFocus, timeout=2000)
    with qtbot.waitSignal(w.views.hub.search_finished, timeout=30000):
        qtbot.keyClicks(box, "tiny")
        qtbot.keyClick(box, Qt.Key.Key_Return)
    assert w.views.hub.results.rowCount() >= 1
    qtbot.keyClick(box, Qt.Key.Key_Down)
    assert w.views.hub.list.hasFocus() and w.views.hub.list.currentIndex().row() == 0


@pytest.fixture
def hub(hub_server, llama3_ok: tiny_gguf.TinyModel):
    hub_server.add(REPO, {FILE: llama3_ok.path.read_bytes()},
                   meta={"downloads": 1234, "likes": 7, "gguf": {"total": 1_500_000_000}})
    return hub_server


def test_repo_page_download_is_a_job_and_the_views_refresh(qtbot, make_window, hub, monkeypatch) -> None:
    monkeypatch.setenv("DESKTOP_CHAT_FAKE_HW", "ram=16G")
    w = make_window()
    v = w.views
    w.show_page("hub")
    with qtbot.waitSignal(v.repo.listing_finished, timeout=30000):
        v.hub.box.setText(REPO)
        qtbot.keyClick(v.hub.box, Qt.Key.Key_Return)
    assert v.hub_page.currentWidget() is v.repo and v.repo.selected_quant() == "Q8_0"
    ctrl = v.downloads
    with qtbot.waitSignal(ctrl.model_installed, timeout=30000) as done:
        qtbot.mouseClick(v.repo.download_btn, Qt.MouseButton.LeftButton)
        (job,) = ctrl.manager.jobs()
        assert job.repo == REPO and job.quant == "Q8_0"
    pid = done.args[0]
    # Nothing opened: the job is on the Downloads page; the repo page marks the quant installed; the library
    # and the picker list the new model, under one name.
    assert w.pages.currentWidget() is w.views.hub_scroll
    assert v.downloads_panel.jobs.row_of(job.id) >= 0
    qtbot.waitUntil(lambda: ("Installed", "ok") in v.repo.quants.index(v.repo.quants.row_of("Q8_0")).data(
        BadgesRole), timeout=15000)
    qtbot.waitUntil(lambda: any(it.profile_id == pid for it in v.library.model.items), timeout=15000)
    qtbot.waitUntil(lambda: (e := v.picker.entry(pid)) is not None and e.installed, timeout=15000)
    item = next(it for it in v.library.model.items if it.profile_id == pid)
    assert v.picker.entry(pid).name == item.name
    # One quant label: the file's own type (an F16 file named Q8_0 by its repo), the repo's name beside it.
    assert item.quant_label == v.picker.entry(pid).quant_label == "F16 (repo: Q8_0)"
    qtbot.waitUntil(lambda: item.name in w.banner.label.text(), timeout=15000)  # "… is downloaded and ready"
    # A rename on the Models page reaches the picker, the Models page and the job's name on the Downloads page.
    v.library.select(item.id)
    v.library.rename_selected("My Tiny Llama")
    qtbot.waitUntil(lambda: v.picker.entry(pid).name == "My Tiny Llama", timeout=15000)
    assert v.library.selected().name == "My Tiny Llama" and v.library.name.text() == "My Tiny Llama"
    w.model_menu.menu.aboutToShow.emit()
    assert w.profile_actions[pid].text() == "My Tiny Llama"  # the Model menu too
    assert v.downloads_panel.job_row(job.id)["name"] == "My Tiny Llama Q8_0"
    assert v.repo.title.text() == f"My Tiny Llama  ·  {REPO}"  # the repo page names it the same way
    # Back returns to the search results.
    qtbot.mouseClick(v.repo.back_btn, Qt.MouseButton.LeftButton)
    assert v.hub_page.currentWidget() is v.hub


def test_welcome_view_on_an_empty_chat_and_start_chatting_focuses_the_input(qtbot, make_window) -> None:
    w = make_window()
    w.new_chat()
    assert w.stack.currentWidget() is w.chat_page.empty_page
    assert w.welcome.isVisibleTo(w.chat_page.empty_page) and "SmolLM2" in w.empty.text()
    qtbot.waitUntil(lambda: bool(w.welcome.cards), timeout=15000)
    w.show_page("models")
    w.show_page("chats")
    w.sidebar.search.setFocus()
    qtbot.mouseClick(w.welcome.start_btn, Qt.MouseButton.LeftButton)
    assert w.input.hasFocus()
    # A suggestion's Download queues that profile's download.
    card = w.welcome.cards[0]
    submitted: list[tuple] = []
    ctrl = w.views.downloads
    monkeypatch_submit = ctrl.manager.submit

    def submit(spec, quant=None, **kw):
        submitted.append((spec, quant))
        return monkeypatch_submit(spec, quant=quant, **kw)

    ctrl.manager.submit = submit
    qtbot.mouseClick(card.download_btn, Qt.MouseButton.LeftButton)
    assert submitted == [(card.entry.profile_id, card.entry.quant)]
    for j in ctrl.manager.jobs():  # no network in this test: stop it before it tries
        ctrl.manager.cancel(j.id)


def test_welcome_says_ready_only_for_the_loaded_model_with_one_progress_bar(qtbot, make_window, tiny_profiles
                                                                            ) -> None:
    """Fault 6: the card said the demo "is ready" while another model was loaded, or while the demo was still
    loading, and a load showed two progress bars with two Cancel buttons."""
    from PySide6.QtWidgets import QProgressBar, QPushButton

    w = make_window("tiny-llama3")
    w.new_chat()
    qtbot.waitUntil(lambda: w.welcome.headline.text() == "Tiny Llama 3 is ready to chat", timeout=15000)
    demo = w.store.default()
    bars: list[int] = []
    cancels: list[int] = []
    headlines: list[str] = []

    def during_load(_p) -> None:
        headlines.append(w.welcome.headline.text())
        bars.append(len([b for b in w.findChildren(QProgressBar) if b.isVisibleTo(w)]))
        cancels.append(len([b for b in w.findChildren(QPushButton) if b.isVisibleTo(w) and b.text() == "Cancel"]))

    w.adapter.load_started.connect(during_load, Qt.ConnectionType.QueuedConnection)  # after every view updated
    with qtbot.waitSignal(w.adapter.model_loaded, timeout=60000):
        w.load_profile(demo)
    assert headlines == [f"Loading {demo.name}…"] and bars == [1] and cancels == [1]  # the status bar's only
    qtbot.waitUntil(lambda: w.welcome.headline.text() == f"{demo.name} is ready to chat", timeout=5000)
    assert "is ready" not in w.welcome.blurb.text()


def test_one_scan_feeds_every_view_and_a_rename_reaches_the_status_bar(qtbot, make_window, tiny_profiles,
                                                                       monkeypatch) -> None:
    import threading

    from desktop.ui.library import scan

    scans: list[bool] = []
    real = scan.scan

    def counted(*a, **kw):
        scans.append(threading.current_thread() is threading.main_thread())
        return real(*a, **kw)

    monkeypatch.setattr(scan, "scan", counted)
    w = make_window("tiny-llama3")
    v = w.views
    qtbot.waitUntil(lambda: v.installed.scanned and bool(v.library.model.items) and bool(v.picker.model.entries)
                    and w.state.installed.installed("tiny-llama3") is True, timeout=15000)
    w.new_chat()
    qtbot.waitUntil(lambda: bool(w.welcome.cards), timeout=5000)
    # The picker, the Models page, the Model menu's flags and the welcome page: one scan, on a worker.
    assert scans == [False]
    assert w.status_model.text() == "Tiny Llama 3 · F16" and "Tiny Llama 3" in w.welcome.headline.text()
    item = next(i for i in v.library.model.items if i.profile_id == "tiny-llama3")
    v.library.select(item.id)
    v.library.rename_selected("Renamed Llama")
    qtbot.waitUntil(lambda: w.status_model.text() == "Renamed Llama · F16", timeout=15000)
    assert v.picker.button.text().startswith("Renamed Llama") and "Renamed Llama" in w.welcome.headline.text()
    assert len(scans) == 2 and not any(scans)  # the rename asked for one more
    # The next answer's header (its provenance) names the model the same way.
    assert w.session.provenance()["profile_name"] == "Renamed Llama"


def test_a_missing_model_and_the_welcome_page_open_the_repo_page(qtbot, make_window) -> None:
    w = make_window()
    with qtbot.waitSignal(w.views.repo.listing_finished, timeout=30000):
        w.load_profile(w.store.get("smaug-mixtral-v0.1"))  # not downloaded: ModelNotFoundError on load
    assert w.pages.currentWidget() is w.views.hub_scroll and w.views.repo.spec == "smaug-mixtral-v0.1"
    assert w.adapter.loaded_profile.id == w.store.default().id  # the loaded model stays
    w.show_page("chats")
    w.new_chat()
    qtbot.waitUntil(lambda: bool(w.welcome.cards), timeout=15000)
    card = w.welcome.cards[1]
    with qtbot.waitSignal(w.views.repo.listing_finished, timeout=30000):
        qtbot.mouseClick(card.quants_btn, Qt.MouseButton.LeftButton)
    assert w.pages.currentWidget() is w.views.hub_scroll and w.views.repo.spec == card.entry.profile_id


def test_unknown_prompt_format_asks_and_retries_with_the_choice(qtbot, make_window, monkeypatch, llama3_ok
                                                                ) -> None:
    from desktop.ui.shell import model_menu

    w = make_window(load=False)
    real_import = registry.import_model
    calls: list[tuple] = []

    def import_model(path, prompt_format=None):
        calls.append((path, prompt_format))
        if prompt_format is None:
            raise FormatUnknownError("No chat template and an unknown family.", choices=["chatml", "llama3"])
        return real_import(path, prompt_format=prompt_format)

    asked: list[list[str]] = []
    path = str(llama3_ok.path)
    monkeypatch.setattr(registry, "import_model", import_model, raising=False)
    monkeypatch.setattr(model_menu.QFileDialog, "getOpenFileName", staticmethod(lambda *a, **k: (path, "")))
    monkeypatch.setattr(w.model_menu, "ask_prompt_format", lambda name, choices: asked.append(choices) or "llama3")
    qtbot.mouseClick(w.welcome.import_btn, Qt.MouseButton.LeftButton)  # the welcome view's Import button
    qtbot.waitUntil(lambda: "Imported" in w.banner.label.text(), timeout=30000)
    assert asked == [["chatml", "llama3"]] and calls == [(path, None), (path, "llama3")]
    # Cancelling the question imports nothing.
    monkeypatch.setattr(w.model_menu, "ask_prompt_format", lambda name, choices: None)
    calls.clear()
    qtbot.mouseClick(w.welcome.import_btn, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: w.import_action.isEnabled() and calls == [(path, None)], timeout=15000)
    qtbot.wait(200)
    assert calls == [(path, None)]
