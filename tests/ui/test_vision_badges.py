"""Vision models are marked: a "Vision" badge on the Models page and in the picker (an installed model with its
projector), and on the repo page's quant cards ("vision" and the projector's size when the listing pairs one)."""
from __future__ import annotations

from desktop.engine.hub.listing import QuantEntry
from desktop.ui.widgets.cards import VISION_BADGE, BadgesRole, SubtitleRole
from tests.fixtures.vision_gguf import make_projector, make_vision_lm


def _badges(model, row: int) -> list[tuple[str, str]]:
    return list(model.data(model.index(row), BadgesRole))


def test_models_page_and_picker_mark_the_vision_model(qtbot, tmp_path, llama3_ok) -> None:
    from desktop.engine.hub import hardware
    from desktop.engine.library import registry
    from desktop.engine.library.imports import import_model
    from desktop.engine.profiles import ProfileStore
    from desktop.ui.library.models_list import LibraryModel, items_of
    from desktop.ui.library.picker_model import PickerModel, entries_of

    seeing = import_model(make_vision_lm(tmp_path / "tiny-gemma3-vision-F16.gguf"),
                          mmproj=make_projector(tmp_path / "proj.gguf"))
    blind = import_model(llama3_ok.path)
    store = ProfileStore()
    installed = registry.list_installed()
    items = items_of(installed, store)
    lib = LibraryModel()
    lib.set_items(items)
    rows = {lib.items[r].profile_id: r for r in range(lib.rowCount())}
    assert VISION_BADGE in _badges(lib, rows[seeing.profile])
    assert VISION_BADGE not in _badges(lib, rows[blind.profile])

    picker = PickerModel()
    picker.set_entries(entries_of(store, hardware.detect(), installed, items))
    rows = {e.profile_id: r for r, e in enumerate(picker.entries)}
    assert _badges(picker, rows[seeing.profile])[0] == VISION_BADGE
    assert VISION_BADGE not in _badges(picker, rows[blind.profile])


def test_quant_cards_say_vision_and_the_projector_size(qtbot) -> None:
    from desktop.ui.library.quants_model import QuantsModel

    m = QuantsModel()
    m.set_entries([QuantEntry("Q4_K_M", ["model-Q4_K_M.gguf"], 2_500_000_000, [None],
                              mmproj="mmproj-model-f16.gguf", mmproj_size=851_000_000),
                   QuantEntry("Q8_0", ["model-Q8_0.gguf"], 4_100_000_000, [None])], "Q4_K_M")
    assert VISION_BADGE in _badges(m, 0) and VISION_BADGE not in _badges(m, 1)
    sub = m.data(m.index(0), SubtitleRole)
    assert "vision (+" in sub and "projector" in sub and "vision" not in m.data(m.index(1), SubtitleRole)
