"""One settings form for the side panel and the profile dialog, built from the settings table: both show the
saved value as it is (no clamping), a save in one shows in the other at once, and the wheel scrolls the panel
instead of changing the setting under the pointer."""
from __future__ import annotations

from typing import Any

import pytest
import yaml
from PySide6.QtCore import QPoint, QPointF
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from desktop.engine import paths, profiles
from desktop.engine.profiles import ProfileStore
from desktop.engine.profiles.fields import FIELDS, Field, panel_fields
from desktop.ui.settings.dialog import SettingsDialog
from desktop.ui.settings.form import SettingsForm
from desktop.ui.settings.panel import SettingsPanel

DEMO = profiles.DEFAULT_PROFILE_ID


def _window(qtbot) -> Any:
    from desktop.ui.shell.main_window import MainWindow

    w = MainWindow()
    qtbot.addWidget(w)
    w.show()
    return w


def test_a_temperature_saved_in_the_dialog_shows_in_the_panel_and_is_never_rewritten(qtbot) -> None:
    w = _window(qtbot)
    panel = w.settings_panel
    w.adapter.profile = w.store.get(DEMO)
    w.adapter.load_started.emit(w.adapter.profile)  # as a load does: the app state follows
    w.toggle_settings_panel(True)
    temp, top_k = panel.params["temperature"], panel.params["top_k"]
    dlg = w.open_settings(DEMO)
    dlg.form.editor("sampling.temperature").setValue(3.0)
    assert dlg.save()
    # At once, without a reload: the store's reload reaches the open panel.
    assert temp.spin.value() == 3.0 and temp.spin.text() == "3.00" and temp.value() == 3.0
    assert w.session.overrides.sampling == {}
    # What a model load shows (MainWindow._on_loaded): the saved value, not clamped to an older 2.0 limit.
    p = w.store.get(DEMO)
    panel.set_profile(p, p.context.default)
    assert temp.value() == 3.0
    top_k.spin.setValue(7)  # change only Top k
    assert w.session.overrides.sampling == {"top_k": 7}
    gen = w.adapter.request_for(**w.session.overrides.sampling)
    assert gen.temperature == 3.0 and gen.top_k == 7
    with qtbot.waitSignal(panel.saved, timeout=10000):
        panel.save_default()
    data = yaml.safe_load((paths.user_profiles_dir() / f"{DEMO}.yaml").read_text())
    assert data["sampling"] == {"temperature": 3.0, "top_k": 7}
    assert w.store.get(DEMO).sampling.temperature == 3.0


def test_a_chats_own_changes_survive_a_profile_saved_elsewhere(qtbot) -> None:
    store = ProfileStore()
    panel = SettingsPanel(store)
    qtbot.addWidget(panel)
    panel.set_profile(store.get(DEMO))
    sent: list[dict] = []
    panel.sampling_changed.connect(sent.append)
    panel.params["min_p"].spin.setValue(0.2)
    profiles.save_override(DEMO, {"sampling": {"temperature": 1.5, "min_p": 0.1}}, store=store)
    store.reload()
    assert panel.params["temperature"].value() == 1.5 and panel.params["min_p"].value() == 0.2
    assert sent[-1] == {"min_p": 0.2}


def _form_bounds(row: Any) -> tuple[float, float]:
    lo, hi = row.spin.minimum(), row.spin.maximum()
    return (lo + 1 if isinstance(row.field.special_value, str) else lo), hi


@pytest.mark.parametrize("f", [f for f in FIELDS if f.kind in ("float", "int")], ids=lambda f: f.key)
def test_both_forms_take_the_tables_range_and_show_its_edges_as_saved(qtbot, f: Field) -> None:
    store = ProfileStore()
    p = store.get(DEMO)
    dlg = SettingsDialog(store, DEMO)
    qtbot.addWidget(dlg)
    panel = SettingsPanel(store)
    qtbot.addWidget(panel)
    panel.set_profile(p)
    rows = [dlg.form.rows[f.key]] + ([panel.form.rows[f.key]] if f.panel else [])
    lo, hi = f.bounds(p)
    for row in rows:
        assert _form_bounds(row) == (lo, hi), f.key
        for v in (f.lo, hi):
            row.set_value(v)
            assert row.value() == v and row.spin.value() == v
        if f.special:
            row.set_value(f.special_value)
            assert row.spin.text() == f.special and row.value() == f.special_value
    assert {r.field.key for r in panel.form.rows.values()} == {f.key for f in panel_fields()}
    assert set(dlg.form.rows) == {f.key for f in FIELDS}


def test_a_value_is_shown_with_all_its_decimals_and_outside_the_range_unclamped(qtbot) -> None:
    form = SettingsForm([("", list(FIELDS))], sliders=True)
    qtbot.addWidget(form)
    form.fill({"sampling.temperature": 0.725, "sampling.top_k": 5000, "load.flash_attn": True})
    assert form.editor("sampling.temperature").text() == "0.725"
    assert form.values()["sampling.temperature"] == 0.725
    # Outside the table's range (validation refuses it when saved, naming the key): shown as it is.
    assert form.editor("sampling.top_k").value() == 5000 and form.value("sampling.top_k") == 5000
    assert form.editor("load.flash_attn").currentText() == "on" and form.value("load.flash_attn") is True
    form.editor("sampling.temperature").setValue(0.5)
    assert form.value("sampling.temperature") == 0.5


def test_saving_a_value_outside_the_table_names_the_key(qtbot) -> None:
    store = ProfileStore()
    dlg = SettingsDialog(store, DEMO)
    qtbot.addWidget(dlg)
    dlg.form.rows["sampling.top_k"].set_value(5000)
    dlg.form.editor("sampling.top_k").setValue(4000)
    assert not dlg.save()
    assert "sampling.top_k" in (dlg.errors.last or "")
    assert not (paths.user_profiles_dir() / f"{DEMO}.yaml").exists()


def _wheel(widget: Any, notches: int) -> None:
    """Mouse-wheel notches over ``widget``, through the window system as a real wheel's arrive (Qt passes an
    ignored wheel event on to the parent widget only when it is spontaneous)."""
    win = widget.window()
    pos = QPointF(widget.mapTo(win, widget.rect().center()))
    for _ in range(notches):
        QTest.wheelEvent(win.windowHandle(), pos, QPoint(0, -120))
        QApplication.processEvents()


def test_the_wheel_scrolls_the_panel_and_leaves_the_settings_alone(qtbot) -> None:
    store = ProfileStore()
    panel = SettingsPanel(store)
    qtbot.addWidget(panel)
    panel.set_profile(store.get(DEMO))
    panel.resize(320, 300)
    panel.show()
    qtbot.waitExposed(panel)
    bar = panel.scroll.verticalScrollBar()
    assert bar.maximum() > 0
    for key in ("repeat_penalty", "temperature"):
        row = panel.params[key]
        panel.scroll.ensureWidgetVisible(row.spin)
        before, scrolled = row.spin.value(), bar.value()
        for w in (row.spin, row.slider):
            _wheel(w, 10)
        assert row.spin.value() == before, key
        assert bar.value() > scrolled, key
    combo = SettingsForm([("", [f for f in FIELDS if f.kind == "choice"])])
    qtbot.addWidget(combo)
    combo.show()
    qtbot.waitExposed(combo)
    box = combo.editor("load.kv_cache_type")
    _wheel(box, 10)
    assert box.currentText() == "f16"
    # With the focus (a click or Tab), the wheel does step the value.
    row = panel.params["repeat_penalty"]
    panel.scroll.ensureWidgetVisible(row.spin)
    panel.activateWindow()
    qtbot.waitUntil(panel.isActiveWindow, timeout=3000)
    row.spin.setFocus()
    qtbot.waitUntil(row.spin.hasFocus, timeout=2000)
    before = row.spin.value()
    _wheel(row.spin, 2)
    assert row.spin.value() < before
