"""Thinking controls: one table row each (profile YAML, validation, both forms), per chat in the side panel, and
the effective settings in the request and the answer's provenance."""
from __future__ import annotations

from typing import Any

import pytest

from desktop.engine import profiles
from desktop.engine.errors import ProfileError
from desktop.engine.library import registry
from desktop.engine.profiles.fields import BY_KEY


def _window(qtbot) -> Any:
    from desktop.ui.shell.main_window import MainWindow

    w = MainWindow()
    qtbot.addWidget(w)
    w.show()
    return w


def test_the_table_takes_the_thinking_values_and_names_the_key(tmp_path) -> None:
    f = BY_KEY["reasoning.thinking"]
    assert f.problem(True) is None and f.problem(False) is None and "must be one of" in f.problem("on")
    e = BY_KEY["reasoning.effort"]
    assert e.problem("") is None and e.problem("high") is None and "not 'extreme'" in e.problem("extreme")
    assert e.shown("") == "default" and e.stored("default") == "" and f.shown(False) == "off"
    assert BY_KEY["load.gpu_layers"].problem(-1) is None  # llama.cpp's "all layers", as older profiles say
    bad = tmp_path / "p.yaml"
    bad.write_text("id: x\nname: X\nprompt:\n  format: chatml\nreasoning:\n  effort: extreme\n")
    with pytest.raises(ProfileError, match="reasoning.effort"):
        profiles.load_profile_file(bad)


def test_thinking_off_in_the_panel_reaches_the_request_and_the_provenance(qtbot) -> None:
    w = _window(qtbot)
    panel = w.settings_panel
    qwen = w.store.get("qwen3-1.7b")
    w.adapter.profile = qwen
    w.toggle_settings_panel(True)
    panel.set_profile(qwen, 4096, reasoning_format="think")
    row = panel.form.rows["reasoning.thinking"]
    assert row.isVisible() and not panel.form.rows["reasoning.effort"].isVisible()
    assert row.value() is True and w.session.overrides.reasoning == {}
    row.combo.setCurrentText("off")
    assert w.session.overrides.reasoning == {"thinking": False}
    req = registry.generate_request(w.session.request_profile(), [{"role": "user", "content": "hi"}], "r1")
    assert req.prompt_spec["enable_thinking"] is False
    prov = w.session.provenance()
    assert prov["reasoning_format"] == "think" and prov["enable_thinking"] is False
    # Another model: its own settings again, and the rows follow what it can do.
    demo = w.store.get(profiles.DEFAULT_PROFILE_ID)
    w.adapter.profile = demo
    panel.set_profile(demo, 2048, reasoning_format="")
    assert w.session.overrides.reasoning == {} and not row.isVisible()
    assert "reasoning_format" not in w.session.provenance() and "enable_thinking" not in w.session.provenance()


def test_effort_for_a_harmony_model_in_the_dialog_and_the_panel(qtbot) -> None:
    w = _window(qtbot)
    oss = w.store.get("gpt-oss-20b")
    w.adapter.profile = oss
    w.toggle_settings_panel(True)
    w.settings_panel.set_profile(oss, 4096, reasoning_format="harmony")
    eff = w.settings_panel.form.rows["reasoning.effort"]
    assert eff.isVisible() and eff.combo.currentText() == (oss.reasoning.effort or "default")
    eff.combo.setCurrentText("high")
    assert w.session.overrides.reasoning == {"effort": "high"}
    req = registry.generate_request(w.session.request_profile(), [{"role": "user", "content": "hi"}], "r2")
    assert req.prompt_spec["reasoning_effort"] == "high"
    dlg = w.open_settings("gpt-oss-20b")
    dlg.form.editor("reasoning.effort").setCurrentText("low")
    assert dlg.save()
    assert w.store.get("gpt-oss-20b").reasoning.effort == "low"
