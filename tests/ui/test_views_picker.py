"""ModelPicker and WelcomeView over the real profiles: installed first, filter by typing, Enter chooses,
not-downloaded entries ask for a download, fit badges for a (simulated) machine, data gathered off the
GUI thread."""
from __future__ import annotations

import threading

import pytest
from PySide6.QtCore import Qt

from desktop.engine.profiles import ProfileStore
from desktop.ui.library.installed import InstalledModels
from desktop.ui.library.picker_model import InstalledRole
from desktop.ui.widgets.cards import BadgesRole, HighlightRole, SubtitleRole


@pytest.fixture
def picker(qtbot, tiny_profiles, monkeypatch):
    from desktop.ui.library import picker as model_picker
    from desktop.ui.library import scan

    monkeypatch.setenv("DESKTOP_CHAT_FAKE_HW", "ram=16G")
    threads: list[threading.Thread] = []
    real = scan.scan

    def scan_and_record(*a, **kw):
        threads.append(threading.current_thread())
        return real(*a, **kw)

    monkeypatch.setattr(scan, "scan", scan_and_record)
    p = model_picker.ModelPicker(InstalledModels(ProfileStore()))
    p.threads = threads
    qtbot.addWidget(p)
    p.show()
    with qtbot.waitSignal(p.refreshed, timeout=15000):
        p.refresh()
    return p


def rows(p) -> list[str]:
    return [p.proxy.index(i, 0).data() for i in range(p.proxy.rowCount())]


def test_popup_lists_installed_first_with_quant_size_and_fit(qtbot, picker) -> None:
    assert picker.threads and all(t is not threading.main_thread() for t in picker.threads)
    qtbot.mouseClick(picker.button, Qt.MouseButton.LeftButton)
    assert picker.popup.isVisible() and picker.popup.search.hasFocus()
    installed = [picker.proxy.index(i, 0).data(InstalledRole) for i in range(picker.proxy.rowCount())]
    assert installed == sorted(installed, reverse=True) and installed[0] and not installed[-1]
    names = rows(picker)
    assert {"Tiny Llama 3", "Tiny SPM"} <= set(names[:installed.count(True)])
    tiny = picker.proxy.index(names.index("Tiny SPM"), 0)
    # The file's own type from its GGUF header (the profile's recommended F32 is only what the repo offered).
    assert tiny.data(SubtitleRole).startswith("F16  ·  ") and "installed" in tiny.data(SubtitleRole)
    assert tiny.data(BadgesRole)[0][0] in {"Fits", "Fits in RAM"}
    nemo = picker.proxy.index(names.index("Llama 3.1 Nemotron 70B Instruct"), 0)
    assert "~" in nemo.data(SubtitleRole) and "not downloaded" in nemo.data(SubtitleRole)
    assert ("Won't fit", "bad") in nemo.data(BadgesRole)  # ~40 GiB on a 16 GiB machine
    assert ("Download", "muted") in nemo.data(BadgesRole)


def test_typing_filters_and_enter_chooses(qtbot, picker) -> None:
    qtbot.mouseClick(picker.button, Qt.MouseButton.LeftButton)
    qtbot.keyClicks(picker.popup.search, "tiny spm")
    assert rows(picker) == ["Tiny SPM"]
    with qtbot.waitSignal(picker.profile_chosen, timeout=2000) as sig:
        qtbot.keyClick(picker.popup.search, Qt.Key.Key_Return)
    assert sig.args == ["tiny-spm"]
    assert not picker.popup.isVisible()
    assert "Tiny SPM" in picker.button.text() and "F16" in picker.button.text()
    assert picker.model.index(picker.model.entries.index(picker.entry("tiny-spm"))).data(HighlightRole)

    # A model that is not downloaded asks for its download instead of being chosen.
    qtbot.mouseClick(picker.button, Qt.MouseButton.LeftButton)
    qtbot.keyClicks(picker.popup.search, "nemotron")
    assert rows(picker) == ["Llama 3.1 Nemotron 70B Instruct"]
    with qtbot.waitSignal(picker.download_requested, timeout=2000) as sig:
        qtbot.keyClick(picker.popup.search, Qt.Key.Key_Return)
    assert sig.args == ["llama-3.1-nemotron-70b-instruct", "Q4_K_M"]
    assert picker.current == "tiny-spm"

    qtbot.mouseClick(picker.button, Qt.MouseButton.LeftButton)
    qtbot.keyClicks(picker.popup.search, "no such model at all")
    assert rows(picker) == [] and picker.popup.empty.isVisible()


def test_arrow_keys_and_click_choose(qtbot, picker) -> None:
    qtbot.mouseClick(picker.button, Qt.MouseButton.LeftButton)
    qtbot.keyClicks(picker.popup.search, "tiny")
    assert rows(picker) == ["Tiny Llama 3", "Tiny SPM"]
    qtbot.keyClick(picker.popup.search, Qt.Key.Key_Down)
    with qtbot.waitSignal(picker.profile_chosen, timeout=2000) as sig:
        qtbot.keyClick(picker.popup.search, Qt.Key.Key_Return)
    assert sig.args == ["tiny-spm"]
    qtbot.mouseClick(picker.button, Qt.MouseButton.LeftButton)
    qtbot.keyClicks(picker.popup.search, "tiny llama")
    rect = picker.popup.list.visualRect(picker.proxy.index(0, 0))
    with qtbot.waitSignal(picker.profile_chosen, timeout=2000) as sig:
        qtbot.mouseClick(picker.popup.list.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert sig.args == ["tiny-llama3"]


def test_loading_shows_on_the_button_and_leaves_the_bar_and_cancel_to_the_status_bar(qtbot, picker) -> None:
    from PySide6.QtWidgets import QProgressBar, QPushButton

    picker.set_current("tiny-llama3", "F32")
    assert picker.button.text().startswith("Tiny Llama 3  ·  F32")
    picker.set_loading(0.42)
    assert picker.button.text() == "Loading Tiny Llama 3… 42%" and not picker.button.isEnabled()
    # One progress bar and one Cancel in the window: the status bar's. The picker draws neither.
    assert not picker.findChildren(QProgressBar)
    assert [b for b in picker.findChildren(QPushButton) if b.isVisibleTo(picker)] == [picker.button]
    picker.set_loading(None)
    assert picker.button.isEnabled() and picker.button.text().startswith("Tiny Llama 3  ·  F32")


# ------------------------------------------------------------------------------------------ welcome


def test_welcome_suggests_small_models_first_with_fit_and_download(qtbot, monkeypatch) -> None:
    from desktop.ui.chat.welcome import WelcomeView

    monkeypatch.setenv("DESKTOP_CHAT_FAKE_HW", "ram=16G")
    w = WelcomeView(InstalledModels(ProfileStore()))
    qtbot.addWidget(w)
    w.show()
    with qtbot.waitSignal(w.refreshed, timeout=15000):
        w.refresh()
    names = [c.entry.name for c in w.cards]
    starters = [c for c in w.cards if c.entry.starter]
    # The bundled starter profiles come first, smallest first; then the seed models, smallest first.
    assert len(starters) >= 4 and w.cards[:len(starters)] == starters
    assert names[0] == "Llama 3.2 1B Instruct"
    assert all(c.starter.isVisibleTo(c) for c in starters)
    assert not any(c.starter.isVisibleTo(c) for c in w.cards[len(starters):])
    for group in (w.cards[:len(starters)], w.cards[len(starters):]):
        sizes = [c.entry.size for c in group]
        assert sizes == sorted(sizes)
    # Every profile that is not installed and not the bundled demo: a downloadable suggestion.
    offered = [p for p in ProfileStore().all() if not p.source.bundled and p.source.repo and p.backend.kind != "openai"]
    assert "Llama 3 8B Instruct Gradient 1048k" in names[len(starters):] and len(w.cards) == len(offered)
    assert w.cards[0].badge.text() in {"Fits in RAM", "Fits"}  # ~0.8 GiB on 16 GiB
    assert w.cards[-1].badge.text() == "Won't fit"
    assert "KV" in w.cards[0].badge.toolTip()
    with qtbot.waitSignal(w.download_requested, timeout=2000) as sig:
        qtbot.mouseClick(w.cards[0].download_btn, Qt.MouseButton.LeftButton)
    assert sig.args == [w.cards[0].entry.profile_id, "Q4_K_M"]
    with qtbot.waitSignal(w.start_chat, timeout=2000):
        qtbot.mouseClick(w.start_btn, Qt.MouseButton.LeftButton)
    with qtbot.waitSignal(w.import_requested, timeout=2000):
        qtbot.mouseClick(w.import_btn, Qt.MouseButton.LeftButton)


def test_the_welcome_headline_says_where_the_model_runs(qtbot) -> None:
    from desktop.ui.chat.welcome import WelcomeView

    w = WelcomeView(InstalledModels(ProfileStore()))
    qtbot.addWidget(w)
    w.set_model("Tiny", None)
    assert w.headline.text() == "Tiny is ready to chat" and "on this computer, offline" in w.blurb.text()
    w.set_model("Cloud model", None, remote=True)  # a remote profile answers through its server, not offline
    assert "through its server" in w.blurb.text() and "offline." not in w.blurb.text().split(".")[0]
    w.set_model(None, "Tiny")
    assert w.headline.text() == "Loading Tiny…"
