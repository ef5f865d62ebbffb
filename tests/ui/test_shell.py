"""The window's shell: pages on the rail, the picker slot, the settings panel, restart state, screen fit,
profile problems, load progress, and the marker where a chat switched registry."""
from __future__ import annotations

from dataclasses import dataclass

import yaml
from PySide6.QtCore import QSettings, Qt
from PySide6.QtWidgets import QLabel

from desktop.engine import paths
from desktop.engine.chats.store import ChatStore


def _window(qtbot, **kw):
    from desktop.ui.shell.main_window import MainWindow

    w = MainWindow(**kw)
    qtbot.addWidget(w)
    w.show()
    w.activateWindow()
    qtbot.waitUntil(w.isActiveWindow, timeout=3000)  # shortcuts go to the active window
    return w


def test_add_page_is_one_call_and_the_picker_slot_takes_one_picker(qtbot) -> None:
    w = _window(qtbot)
    page = QLabel("hub page")
    btn = w.add_page("extra", "mdi6.magnify", page, "Hub")  # "hub" is the real Hub page
    assert btn.accessibleName() == "Hub" and not btn.icon().isNull()
    btn.click()
    assert w.pages.currentWidget() is page
    qtbot.keyClick(w, Qt.Key.Key_1, Qt.KeyboardModifier.ControlModifier)
    assert w.pages.currentWidget() is w.splitter
    picker = QLabel("picker")
    w.chat_page.set_model_picker(picker)
    assert picker.parent() is w.chat_page.top_bar
    w.chat_page.set_model_picker(other := QLabel("picker 2"))
    assert other.parent() is w.chat_page.top_bar and w.chat_page.picker is other


def test_settings_panel_toggles_and_changes_apply_to_this_chat(qtbot) -> None:
    w = _window(qtbot)
    assert not w.settings_panel.isVisible()
    w.settings_action.trigger()  # Ctrl+,
    assert w.settings_panel.isVisible() and w.chat_page.settings_btn.isChecked()
    w.adapter.profile = w.store.default()
    w.settings_panel.set_profile(w.adapter.profile)
    w.settings_panel.params["temperature"].spin.setValue(1.3)
    w.settings_panel.params["max_tokens"].spin.setValue(64)
    w.settings_panel.system.setPlainText("Answer like a pirate.")
    assert w.session.overrides.sampling == {"temperature": 1.3, "max_tokens": 64}  # only what changed
    preview = w.adapter.request_for(**w.session.overrides.sampling)
    assert preview.temperature == 1.3 and preview.max_tokens == 64
    assert w.session.request_profile().prompt.system_prompt == "Answer like a pirate."
    assert w.store.default().prompt.system_prompt != "Answer like a pirate."  # nothing written
    # Every parameter says what it does.
    assert all(p.hint.text() for p in w.settings_panel.params.values())
    w.settings_action.trigger()
    assert not w.settings_panel.isVisible()


def test_settings_panel_saves_the_minimal_override_and_offers_a_reload(qtbot) -> None:
    w = _window(qtbot)
    p = w.store.default()
    panel = w.settings_panel
    panel.set_profile(p, n_ctx=p.context.default)
    panel.params["temperature"].spin.setValue(0.9)
    assert not panel.reload_btn.isVisibleTo(panel)
    panel.ctx.spin.setValue(1024)
    assert panel.reload_note.isVisibleTo(panel) and panel.reload_btn.isVisibleTo(panel)
    with qtbot.waitSignal(panel.saved, timeout=10000) as saved:
        panel.save_default()
    assert saved.args == [p.id, True]
    data = yaml.safe_load((paths.user_profiles_dir() / f"{p.id}.yaml").read_text())
    assert data == {"id": p.id, "sampling": {"temperature": 0.9}, "context": {"default": 1024}}
    reloads: list[tuple] = []
    panel.reload_requested.connect(lambda n, g: reloads.append((n, g)))
    panel.reload_btn.click()
    assert reloads == [(1024, "auto")] and not panel.reload_btn.isVisibleTo(panel)


def test_restart_restores_geometry_and_the_last_open_chat(qtbot) -> None:
    s = ChatStore()
    first = s.create_chat("first")
    s.add_message(first, None, "user", "one")
    second = s.create_chat("second")
    s.add_message(second, None, "user", "two")
    s.close()
    w = _window(qtbot)
    assert w.chat_id == second
    w.open_chat(first)
    w.resize(700, 480)
    w.close()
    w2 = _window(qtbot)
    assert w2.chat_id == first and [m.text for m in w2.model.messages] == ["one"]
    assert (w2.width(), w2.height()) == (700, 480)
    w2.close()
    QSettings().remove("window")


def test_the_window_never_exceeds_the_screen(qtbot) -> None:
    from desktop.ui.widgets.screens import available, fit_to_screen

    w = _window(qtbot)
    area = available(w)
    w.resize(area.width() + 500, area.height() + 500)
    fit_to_screen(w)
    assert w.width() <= area.width() and w.height() <= area.height()
    dlg = w.open_settings()
    assert dlg.width() <= area.width() and dlg.height() <= area.height()
    dlg.close()


@dataclass
class _Problem:
    path: str
    key: str
    message: str


def test_a_malformed_profile_is_a_banner_naming_file_and_key(qtbot) -> None:
    from desktop.engine.profiles import ProfileStore

    store = ProfileStore()
    store.problems = [_Problem("/home/u/.config/desktop-chat/profiles/broken.yaml", "sampling.temperature",
                               "must be a number")]
    w = _window(qtbot, store=store)
    banner = w.chat_page.problems
    assert banner.isVisibleTo(w)
    assert "broken.yaml" in banner.label.text() and "sampling.temperature" in banner.label.text()
    assert "Traceback" not in banner.label.text()


def test_load_progress_is_a_percentage_with_cancel(qtbot) -> None:
    from desktop.engine.inference import protocol as P

    w = _window(qtbot)
    p = w.store.default()
    w.adapter.profile = p
    w.adapter.loading = "load-1"
    w.adapter.load_started.emit(p)  # the app state follows, and the status bar shows its load
    assert w.state.current.phase == "loading"
    assert w.status.load_cancel.isVisibleTo(w) and w.input.isEnabled()

    ev = P.LoadProgress("load-1", 0.42)
    w.adapter._on_event(ev)
    assert "42%" in w.status.load_label.text() and w.status.load_bar.value() == 42
    w.adapter._on_event(ev.__class__("other-load", 0.9))  # another request's progress is not ours
    assert "42%" in w.status.load_label.text()
    w.adapter.loading = None
    w.status.load_ended()


def test_switching_models_mid_chat_leaves_a_marker(qtbot) -> None:
    s = ChatStore()
    c = s.create_chat("switch")
    u = s.add_message(c, None, "user", "q1")
    a = s.add_message(c, u, "assistant", "a1", provenance={"profile_name": "Model A"})
    u2 = s.add_message(c, a, "user", "q2")
    s.add_message(c, u2, "assistant", "a2", provenance={"profile_name": "Model B"})
    s.close()
    w = _window(qtbot)
    w.open_chat(c)
    roles = [m.role for m in w.model.messages]
    assert roles == ["user", "assistant", "user", "marker", "assistant"]
    assert w.model.messages[3].text == "Switched to Model B"
    assert "Switched to Model B" in w.view.widgets[3].findChild(QLabel, "Marker").text()
    history = [m for m in w.model.messages if m.role in ("user", "assistant")]
    assert len(history) == 4  # the marker is never sent to the model


def test_deleting_the_open_chat_clears_its_numbers(qtbot) -> None:
    s = ChatStore()
    c = s.create_chat("numbers")
    u = s.add_message(c, None, "user", "q")
    a = s.add_message(c, u, "assistant", "")
    s.finish_message(a, "answer", "done", stats={"tokens_per_s": 50.0, "ttft_s": 0.1, "context_used": 40,
                                                   "context_total": 512, "dropped_ids": []})
    s.close()
    w = _window(qtbot)
    assert w.chat_id == c and "40/512" in w.status_ctx.text()  # recomputed from the chat, after a restart
    w.delete_chat(c, confirm=False)
    assert not w.status_ctx.isVisibleTo(w) and not w.status_speed.isVisibleTo(w)


def test_theme_choice_is_applied_and_remembered(qtbot) -> None:
    from PySide6.QtWidgets import QApplication

    from desktop.ui import theme as T

    w = _window(qtbot)
    try:
        w.theme_actions["dark"].trigger()
        assert QSettings().value(T.SETTINGS_KEY) == "dark"
        pal = QApplication.instance().palette()
        assert pal.color(pal.ColorRole.Base).name() == T.DARK.bg
        assert T.DARK.bg in QApplication.instance().styleSheet()
        assert T.theme.icon("mdi6.content-copy").isNull() is False
        w.theme_actions["light"].trigger()
        assert QApplication.instance().palette().color(pal.ColorRole.Base).name() == T.LIGHT.bg
    finally:
        T.theme.set_mode("system")
        QSettings().remove(T.SETTINGS_KEY)


def test_opening_the_model_menu_touches_no_disk_on_the_gui_thread(qtbot, monkeypatch) -> None:
    import threading

    from desktop.engine.library import registry

    calls: list[bool] = []
    real = registry.resolve_model

    def spy(profile):  # noqa: ANN001, ANN202
        calls.append(threading.current_thread() is threading.main_thread())
        return real(profile)

    monkeypatch.setattr(registry, "resolve_model", spy)
    w = _window(qtbot)
    qtbot.waitUntil(lambda: bool(calls) and w.model_menu.installed.scanned, timeout=10000)  # the start-up scan
    assert calls and not any(calls)  # it ran on a worker
    calls.clear()
    for _ in range(3):
        w.model_menu.menu.aboutToShow.emit()  # what opening the menu does
    assert calls == [] and w.profile_actions  # listed from the cache
