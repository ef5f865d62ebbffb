"""The profile settings dialog: override YAML with only the changed keys, reset, reload notice."""
from __future__ import annotations

from typing import Any

import yaml

from desktop.engine import paths, profiles
from desktop.engine.profiles import ProfileStore
from desktop.ui.settings.dialog import SettingsDialog

DEMO = profiles.DEFAULT_PROFILE_ID


def _ed(dlg: SettingsDialog, key: str) -> Any:
    return dlg.form.editor(key)


def test_save_writes_only_changed_keys_and_reset_restores(qtbot) -> None:
    store = ProfileStore()
    loaded = store.get(DEMO)
    dlg = SettingsDialog(store, DEMO, loaded)
    qtbot.addWidget(dlg)
    assert _ed(dlg, "sampling.temperature").value() == 0.2 and _ed(dlg, "sampling.max_tokens").value() == 512
    assert _ed(dlg, "sampling.seed").text() == "random"
    assert not dlg.reset_btn.isEnabled() and not dlg.reload_note.isVisibleTo(dlg)
    _ed(dlg, "sampling.temperature").setValue(0.65)
    _ed(dlg, "sampling.seed").setValue(42)
    _ed(dlg, "prompt.stop_strings").setPlainText(_ed(dlg, "prompt.stop_strings").toPlainText() + "\nEND")
    assert not dlg.needs_reload()
    saved: list[tuple[str, bool]] = []
    dlg.saved.connect(lambda pid, reload: saved.append((pid, reload)))
    assert dlg.save()
    assert saved == [(DEMO, False)]
    path = paths.user_profiles_dir() / f"{DEMO}.yaml"
    data = yaml.safe_load(path.read_text())
    assert data == {"id": DEMO, "sampling": {"temperature": 0.65, "seed": 42},
                    "prompt": {"stop_strings": ["<|im_end|>", "<|endoftext|>", "END"]}}
    p = ProfileStore().get(DEMO)
    assert p.sampling.temperature == 0.65 and p.overridden_by == str(path)

    dlg2 = SettingsDialog(ProfileStore(), DEMO, loaded)
    qtbot.addWidget(dlg2)
    assert _ed(dlg2, "sampling.temperature").value() == 0.65 and dlg2.reset_btn.isEnabled()
    assert "saved in" in dlg2.override_note.text()
    dlg2.reset_btn.click()
    assert not path.exists()
    assert _ed(dlg2, "sampling.temperature").value() == 0.2 and _ed(dlg2, "sampling.seed").value() == -1
    assert not dlg2.reset_btn.isEnabled()
    assert ProfileStore().get(DEMO).sampling.temperature == 0.2


def test_load_settings_say_they_need_a_reload(qtbot) -> None:
    store = ProfileStore()
    dlg = SettingsDialog(store, DEMO, store.get(DEMO))
    qtbot.addWidget(dlg)
    dlg.show()
    _ed(dlg, "context.default").setValue(2048)
    assert dlg.needs_reload() and dlg.reload_note.isVisible()
    _ed(dlg, "context.default").setValue(4096)
    assert not dlg.reload_note.isVisible()
    _ed(dlg, "load.kv_cache_type").setCurrentText("q8_0")
    _ed(dlg, "load.gpu_layers").setValue(10)
    assert dlg.reload_note.isVisible()
    saved: list[bool] = []
    dlg.saved.connect(lambda _pid, reload: saved.append(reload))
    assert dlg.save() and saved == [True]
    data = yaml.safe_load((paths.user_profiles_dir() / f"{DEMO}.yaml").read_text())
    assert data == {"id": DEMO, "load": {"gpu_layers": 10, "kv_cache_type": "q8_0"}}


def test_invalid_values_are_refused_and_nothing_is_written(qtbot) -> None:
    store = ProfileStore()
    dlg = SettingsDialog(store, DEMO, None)
    qtbot.addWidget(dlg)
    _ed(dlg, "context.default").setMaximum(100000)
    _ed(dlg, "context.default").setValue(100000)  # beyond the profile's context.max
    assert not dlg.save()
    assert "context.default" in (dlg.errors.last or "")
    assert not (paths.user_profiles_dir() / f"{DEMO}.yaml").exists()


def test_settings_apply_to_the_next_message_and_offer_a_reload(qtbot, make_window, short_demo) -> None:
    w = make_window()
    dlg = w.open_settings()
    assert isinstance(dlg, SettingsDialog) and dlg.profile_id == DEMO
    _ed(dlg, "sampling.max_tokens").setValue(5)
    dlg.save()
    assert w.adapter.profile.sampling.max_tokens == 5  # no reload needed
    assert w.adapter.request_for().max_tokens == 5
    with qtbot.waitSignal(w.adapter.generation_finished, timeout=60000) as blocker:
        w.input.setPlainText("Tell me a long story.")
        w.send()
    assert blocker.args[1].stats.generated_tokens <= 5
    dlg = w.open_settings()
    _ed(dlg, "context.default").setValue(2048)
    dlg.save()
    assert w.banner.isVisibleTo(w) and w.banner.action_btn.text() == "Reload now"
    with qtbot.waitSignal(w.adapter.model_loaded, timeout=60000) as loaded:
        w.banner.action_btn.click()
    assert loaded.args[0].n_ctx == 2048 and "/2,048" in w.status_ctx.text()


def test_save_override_for_a_user_profile_edits_its_own_file(tiny_profiles) -> None:
    path = profiles.save_override("tiny-llama3", {"sampling": {"temperature": 0.5}})
    assert path == paths.user_profiles_dir() / "tiny-llama3.yaml"
    data = yaml.safe_load(path.read_text())
    assert data["sampling"]["temperature"] == 0.5 and data["prompt"]["format"] == "llama3"
    try:
        profiles.reset_override("tiny-llama3")
    except profiles.ProfileError as exc:
        assert "no bundled defaults" in exc.message
    else:  # pragma: no cover
        raise AssertionError("reset of a user-only profile must be refused")
