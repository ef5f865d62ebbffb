"""LibraryView over a real registry: a download from the loopback Hub, an import from disk, the bundled
demo. Load, reveal, remove (a downloaded file is deleted, an imported one never), rename and undo repair."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from PySide6.QtCore import QObject, Qt, QUrl, Slot
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QMessageBox

from desktop.engine.hub import downloads
from desktop.engine.library import registry
from desktop.engine.profiles import ProfileStore
from desktop.ui.library.installed import InstalledModels
from desktop.ui.widgets.cards import BadgesRole

REPO = "acme/Tiny-Llama-3-GGUF"
FILE = "tiny-llama3.Q8_0.gguf"


class UrlCatcher(QObject):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[QUrl] = []

    @Slot(QUrl)
    def open(self, url: QUrl) -> None:
        self.urls.append(url)


@pytest.fixture
def library(qtbot, spm_model, tmp_path: Path):
    """An imported model and the bundled demo (the download is added by the tests that need it: it is slow)."""
    from desktop.ui.library.models_page import LibraryView

    mine = tmp_path / "my-own" / "mine.gguf"
    mine.parent.mkdir()
    shutil.copyfile(spm_model.path, mine)
    imported = registry.import_model(mine)
    v = LibraryView(InstalledModels(ProfileStore()))
    qtbot.addWidget(v)
    v.resize(1000, 600)
    v.show()
    with qtbot.waitSignal(v.refreshed, timeout=15000):
        v.refresh()
    v.imported, v.mine = imported, mine
    return v


@pytest.fixture
def downloaded(qtbot, library, hub_server, llama3_broken):
    """The broken Llama-3 GGUF downloaded from the loopback Hub (fixed on arrival), then listed."""
    hub_server.add(REPO, {FILE: llama3_broken.path.read_bytes()})
    library.downloaded = downloads.run_download(REPO, quant="Q8_0")
    with qtbot.waitSignal(library.refreshed, timeout=15000):
        library.refresh()
    return library


def names(v) -> list[str]:
    return [i.id for i in v.model.items]


def confirm(qtbot, v, what: str = "removed") -> str:
    box = v.confirm_box
    assert box is not None and box.isVisible()
    text = box.text()
    remove = next(b for b in box.buttons() if box.buttonRole(b) == QMessageBox.ButtonRole.DestructiveRole)
    with qtbot.waitSignal(v.refreshed, timeout=15000):
        with qtbot.waitSignal(v.action_finished, timeout=15000) as sig:
            qtbot.mouseClick(remove, Qt.MouseButton.LeftButton)
    assert sig.args == [what]
    return text


def test_lists_origin_provenance_and_fixes_and_removes_a_download(qtbot, downloaded, demo_model) -> None:
    v = downloaded
    assert set(names(v)) == {v.downloaded.model_id, v.imported.id, "smollm2-135m-instruct"}
    assert v.model.items[-1].origin == "Bundled demo"  # the demo goes last
    v.select(v.downloaded.model_id)
    f = v.fields
    assert f["Origin"].text() == "Downloaded" and f["Source"].text() == REPO
    sha = v.downloaded.sha256
    assert f["SHA-256"].toolTip() == sha and f["SHA-256"].text() == f"{sha[:16]}…{sha[-16:]}"
    assert f["Quant"].text() == "F16 (repo: Q8_0)"  # the file's own type first, the repo's name beside it
    assert "128009" in f["Repairs"].text()  # the broken Llama-3 GGUF was fixed on arrival
    badges = v.model.index(v.model.row_of(v.downloaded.model_id)).data(BadgesRole)
    assert ("Downloaded", "ok") in badges and any(t in {"Repaired", "Fixed at load"} for t, _ in badges)
    v.select("smollm2-135m-instruct")
    assert not v.remove_btn.isEnabled()  # the bundled demo is part of the app

    v.select(v.downloaded.model_id)
    path = Path(v.downloaded.path)
    assert path.exists()
    qtbot.mouseClick(v.remove_btn, Qt.MouseButton.LeftButton)
    assert "deletes the downloaded file" in confirm(qtbot, v)
    assert not path.exists() and v.downloaded.model_id not in names(v)


def test_load_and_reveal(qtbot, library) -> None:
    v = library
    v.select(v.imported.id)
    with qtbot.waitSignal(v.load_requested, timeout=2000) as sig:
        qtbot.mouseClick(v.load_btn, Qt.MouseButton.LeftButton)
    assert sig.args == [v.imported.profile_id]
    catcher = UrlCatcher()
    QDesktopServices.setUrlHandler("file", catcher, "open")
    try:
        qtbot.mouseClick(v.reveal_btn, Qt.MouseButton.LeftButton)
    finally:
        QDesktopServices.unsetUrlHandler("file")
    assert [Path(u.toLocalFile()) for u in catcher.urls] == [v.mine.parent]


def test_remove_keeps_imported_files(qtbot, library) -> None:
    v = library
    v.select(v.imported.id)
    qtbot.mouseClick(v.remove_btn, Qt.MouseButton.LeftButton)
    text = confirm(qtbot, v)
    assert "stays where it is" in text
    assert v.mine.is_file()  # the user's file is never deleted
    assert v.imported.id not in names(v) and v.imported.id not in registry.read_registry()


def test_cancel_in_the_confirmation_removes_nothing(qtbot, library) -> None:
    v = library
    v.select(v.imported.id)
    qtbot.mouseClick(v.remove_btn, Qt.MouseButton.LeftButton)
    v.confirm_box.button(QMessageBox.StandardButton.Cancel).click()
    qtbot.wait(100)
    assert v.imported.id in registry.read_registry()


def test_remove_asks_with_cancel_as_the_default_and_focus_then_stays_on_the_list(qtbot, library, llama3_ok,
                                                                               tmp_path: Path) -> None:
    v = library
    other = tmp_path / "other" / "other.gguf"
    other.parent.mkdir()
    shutil.copyfile(llama3_ok.path, other)
    second = registry.import_model(other)
    with qtbot.waitSignal(v.refreshed, timeout=15000):
        v.refresh()
    v.activateWindow()
    v.select(v.imported.id)
    v.remove_btn.setFocus()
    qtbot.keyClick(v.remove_btn, Qt.Key.Key_Space)
    box = v.confirm_box
    assert box.defaultButton() is box.button(QMessageBox.StandardButton.Cancel)
    qtbot.keyClick(box, Qt.Key.Key_Return)  # Enter answers the default: nothing is removed
    qtbot.waitUntil(lambda: not box.isVisible(), timeout=2000)
    assert v.imported.id in registry.read_registry()
    v.select(v.imported.id)
    qtbot.keyClick(v.remove_btn, Qt.Key.Key_Space)
    confirm(qtbot, v)
    # The next model is selected now; focus is on the list, not on that model's Remove button.
    assert v.selected() is not None and v.selected().id in {second.id, "smollm2-135m-instruct"}
    qtbot.waitUntil(lambda: v.focusWidget() is v.list, timeout=2000)


def test_rename_through_the_dialog(qtbot, library) -> None:
    v = library
    v.select(v.imported.id)
    qtbot.mouseClick(v.rename_btn, Qt.MouseButton.LeftButton)
    dlg = v.rename_dialog
    assert dlg is not None and dlg.isVisible()
    dlg.setTextValue("My favourite model")
    with qtbot.waitSignal(v.refreshed, timeout=15000):
        dlg.accept()
    v.select(v.imported.id)
    assert v.name.text() == "My favourite model"


def test_undo_repair(qtbot, downloaded) -> None:
    v = downloaded
    v.select(v.downloaded.model_id)
    assert v.selected().can_revert and v.revert_btn.isVisibleTo(v)
    with qtbot.waitSignal(v.refreshed, timeout=15000):
        qtbot.mouseClick(v.revert_btn, Qt.MouseButton.LeftButton)
    v.select(v.downloaded.model_id)
    assert not v.selected().can_revert


def test_a_narrow_page_puts_the_details_under_the_list_instead_of_scrolling_sideways(qtbot, library) -> None:
    """Fault 4: at QT_SCALE_FACTOR=2 the Models page was wider than the window (a horizontal scroll bar)."""
    from PySide6.QtWidgets import QBoxLayout

    v = library
    v.select(v.imported.id)
    v.resize(1000, 600)
    qtbot.waitUntil(lambda: v.body.direction() == QBoxLayout.Direction.LeftToRight, timeout=2000)
    v.resize(560, 700)  # a 1120-pixel-wide page at 2x
    qtbot.waitUntil(lambda: v.body.direction() == QBoxLayout.Direction.TopToBottom, timeout=2000)
    assert v.minimumSizeHint().width() <= 560
    qtbot.wait(50)  # the layout takes its new minimum
    v.resize(560, 700)  # what the page's scroll area does once the minimum shrank
    qtbot.wait(50)
    assert v.width() == 560, v.width()
    assert v.details.geometry().top() > v.list.geometry().bottom(), (v.list.geometry(), v.details.geometry())
    assert v.details.geometry().right() <= v.width()
    # The file's long path wraps or is cut inside the panel; it never widens the page.
    assert v.fields["File"].geometry().right() <= v.details.width()
