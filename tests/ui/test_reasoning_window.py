"""Reasoning models end to end in the window, through the real engine: scripted GGUFs that carry Qwen3's and
gpt-oss's published templates think "Hmm", then answer "Hi there!". The thinking shows apart and folded, the
answer has no markup, and the saved chat keeps them apart."""
from __future__ import annotations

import pytest

from desktop.engine.library import registry
from tests.fixtures import reasoning_gguf


@pytest.mark.integration
@pytest.mark.parametrize("make, fmt", [(reasoning_gguf.make_qwen3, "think"),
                                       (reasoning_gguf.make_gpt_oss, "harmony")], ids=["qwen3", "gpt-oss"])
def test_a_reasoning_gguf_in_the_window_thinks_apart_and_answers_clean(qtbot, tmp_path, make, fmt) -> None:
    from desktop.ui.shell.main_window import MainWindow

    gguf = make(tmp_path / f"{fmt}.gguf")
    from desktop.engine.library.imports import import_model

    imported = import_model(gguf.path)  # the doctor recognises the format and makes a profile
    w = MainWindow()
    qtbot.addWidget(w)
    w.show()
    profile = w.store.get(imported.profile)
    assert profile.reasoning.format == fmt
    with qtbot.waitSignal(w.adapter.model_loaded, timeout=120000) as loaded:
        w.load_profile(profile)
    assert loaded.args[0].reasoning_format == fmt
    assert not w.settings_panel.form.rows["reasoning.thinking" if fmt == "think" else "reasoning.effort"].isHidden()
    with qtbot.waitSignal(w.adapter.generation_finished, timeout=120000):
        w.input.setPlainText("Say hi.")
        assert w.send()
    qtbot.waitUntil(lambda: w.session.stream is None, timeout=10000)
    last = w.model.messages[-1]
    assert (last.text, last.reasoning) == ("Hi there!", "Hmm")
    msg = w.view.widgets[-1]
    assert not msg.thinking.isHidden() and not msg.thinking.is_open  # folded once the answer came
    assert msg.thinking.toggle.text().startswith("Thought")
    shown = " ".join(t.toPlainText() for t in msg.findChildren(type(msg.thinking.text)) if t.isVisible())
    for markup in ("<think>", "</think>", "<|channel|>", "<|message|>", "<|end|>", "<|start|>", "analysis"):
        assert markup not in shown
    saved = w.chats.message(last.id)
    assert (saved.content, saved.reasoning, saved.provenance["reasoning_format"]) == ("Hi there!", "Hmm", fmt)
    w.close()


def test_the_models_page_and_the_picker_mark_reasoning_models(qtbot, tmp_path, llama3_ok) -> None:
    from desktop.engine.hub import hardware
    from desktop.engine.library.imports import import_model
    from desktop.engine.profiles import ProfileStore
    from desktop.ui.library.models_list import LibraryModel, items_of
    from desktop.ui.library.picker_model import PickerModel, entries_of
    from desktop.ui.widgets.cards import REASONING_BADGE, BadgesRole

    thinking = import_model(reasoning_gguf.make_qwen3(tmp_path / "qwen3.gguf").path)
    plain = import_model(llama3_ok.path)
    store = ProfileStore()
    installed = registry.list_installed()
    lib = LibraryModel()
    lib.set_items(items_of(installed, store))
    rows = {lib.items[r].profile_id: r for r in range(lib.rowCount())}
    assert REASONING_BADGE in lib.data(lib.index(rows[thinking.profile]), BadgesRole)
    assert REASONING_BADGE not in lib.data(lib.index(rows[plain.profile]), BadgesRole)
    picker = PickerModel()
    picker.set_entries(entries_of(store, hardware.detect(), installed, lib.items))
    by_id = {e.profile_id: r for r, e in enumerate(picker.entries)}
    assert REASONING_BADGE in picker.data(picker.index(by_id[thinking.profile]), BadgesRole)
    assert REASONING_BADGE in picker.data(picker.index(by_id["qwen3-1.7b"]), BadgesRole)  # a starter, not installed
    assert REASONING_BADGE not in picker.data(picker.index(by_id[plain.profile]), BadgesRole)
