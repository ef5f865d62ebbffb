"""Pictures in the chat: pasted (Ctrl+V), dropped or picked as files, shown as chips before sending, inside the
sent message after, and again when the chat is reopened; the scripted vision model (tests/fixtures/vision_gguf.py)
answers "Red" for a pasted red picture through the real engine. Bad pictures and models without vision are refused
with one sentence, and nothing typed is lost."""
from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import QMimeData, Qt, QUrl
from PySide6.QtGui import QColor, QGuiApplication, QImage

from desktop.engine import paths
from desktop.ui.chat.message_model import ChatModel
from desktop.ui.chat.page import ChatPage
from tests.engine.test_vision_library import _png_header_only
from tests.fixtures.vision_gguf import make_png, make_projector, make_vision_lm


def _red(w: int = 64, h: int = 48) -> QImage:
    img = QImage(w, h, QImage.Format.Format_RGB32)
    img.fill(QColor(230, 20, 20))
    return img


def _paste(qtbot, box, image: QImage) -> None:
    QGuiApplication.clipboard().setImage(image)
    box.setFocus()
    qtbot.keyClick(box, Qt.Key.Key_V, Qt.KeyboardModifier.ControlModifier)


@pytest.fixture
def page(qtbot) -> ChatPage:
    p = ChatPage(ChatModel())
    qtbot.addWidget(p)
    p.show()
    return p


def test_a_pasted_picture_becomes_a_chip_scaled_and_stored_by_hash(qtbot, page) -> None:
    page.set_vision(True, "", 32)  # the scripted projector takes 32 x 32
    page.input.setPlainText("What colour?")
    _paste(qtbot, page.input, _red())
    assert page.input.toPlainText() == "What colour?"  # the picture did not go into the text
    (chip,) = page.chips.image_chips.values()
    qtbot.waitUntil(lambda: chip.picture is not None, timeout=10000)
    (img,) = page.chips.images()
    assert (img["width"], img["height"]) == (32, 24)  # scaled down to the projector's side on a worker
    stored = Path(img["path"])
    assert stored.parent == paths.data_dir() / "images" and stored.stem == img["sha256"] and stored.is_file()
    assert chip.thumb.pixmap() is not None and not chip.thumb.pixmap().isNull()
    assert "32 × 24" in chip.label.text() and "64 × 48" in chip.toolTip()
    assert page.chips.pending() == 0
    qtbot.mouseClick(chip.remove_button, Qt.MouseButton.LeftButton)
    assert page.chips.images() == [] and not page.chips.image_chips


def test_image_files_come_by_drop_and_paste_of_copied_files(qtbot, page, tmp_path) -> None:
    blue = make_png(tmp_path / "blue.png", (20, 20, 230))
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(blue))])
    page.input.insertFromMimeData(mime)  # a file copied in a file manager, then Ctrl+V
    qtbot.waitUntil(lambda: len(page.chips.images()) == 1, timeout=10000)
    assert page.chips.images()[0]["name"] == "blue.png"
    page.chips.add_paths([str(blue)])  # the same file again (a drop): one chip
    assert len(page.chips.image_chips) == 1


@pytest.mark.parametrize("bad, words", [
    ("text", "not an image"), ("truncated", "cut short"), ("huge", "larger than the 50 megapixels")])
def test_a_bad_picture_is_refused_with_one_sentence(qtbot, page, tmp_path, bad, words) -> None:
    if bad == "text":
        path = tmp_path / "notes.png"
        path.write_text("I am words, not pixels")
    elif bad == "truncated":
        whole = make_png(tmp_path / "whole.png", (230, 20, 20), size=(300, 200)).read_bytes()
        path = tmp_path / "cut.png"
        path.write_bytes(whole[: len(whole) // 2])
    else:
        path = tmp_path / "huge.png"  # 20,000 x 20,000, says its header
        path.write_bytes(_png_header_only(20_000, 20_000))
    page.input.setPlainText("keep me")
    with qtbot.waitSignal(page.chips.failed, timeout=10000) as blocker:
        page.chips.add_paths([str(path)])
    msg = blocker.args[0]
    assert words in msg and msg.count(". ") == 0 and "Traceback" not in msg
    assert not page.chips.image_chips and page.input.toPlainText() == "keep me"


def test_without_vision_images_are_refused_and_the_paperclip_says_why(qtbot, page) -> None:
    assert "image" in page.attach_btn.toolTip().lower()  # nothing loaded yet: pictures may come
    page.set_vision(False, "Tiny Llama 3 has no vision projector (mmproj), so it cannot see images.")
    assert "Images are off: Tiny Llama 3 has no vision projector" in page.attach_btn.toolTip()
    page.input.setPlainText("typed words")
    with qtbot.waitSignal(page.chips.failed, timeout=3000) as blocker:
        _paste(qtbot, page.input, _red())
    assert blocker.args[0].startswith("Tiny Llama 3 has no vision projector")
    assert not page.chips.image_chips and page.input.toPlainText() == "typed words"


def test_an_image_sent_to_a_text_only_model_keeps_the_message(qtbot, make_window, tiny_profiles, tmp_path) -> None:
    w = make_window(tiny_profiles[0])  # a scripted text model: no projector
    assert w.loaded.vision is False and "cannot see images" in w.chat_page.attach_btn.toolTip()
    # A picture attached before the switch to this model (the chips take it; the send refuses it).
    w.chat_page.chips.set_vision(None)
    w.chat_page.chips.add_paths([str(make_png(tmp_path / "red.png", (230, 20, 20)))])
    qtbot.waitUntil(lambda: len(w.chat_page.chips.images()) == 1, timeout=10000)
    w.input.setPlainText("What colour?")
    shown: list[str] = []
    w.errors.present = lambda err, **_k: shown.append(err["message"])
    assert not w.send()
    assert shown == ["Tiny Llama 3 cannot see images, so the message was not sent; it is still in the box."]
    assert w.input.toPlainText() == "What colour?" and len(w.chat_page.chips.images()) == 1
    assert w.chats.chats() == []  # nothing saved


def test_pasted_red_picture_gets_red_through_the_real_engine_and_comes_back(qtbot, make_window, tmp_path) -> None:
    from desktop.engine import profiles
    from desktop.engine.library.imports import import_model
    from tests.engine.test_vision_engine import _has_mtmd

    if not _has_mtmd():
        pytest.skip("llama-cpp-python built without mtmd")
    lm = make_vision_lm(tmp_path / "tiny-gemma3-vision-F16.gguf")
    installed = import_model(lm, mmproj=make_projector(tmp_path / "proj.gguf"))
    assert installed.vision and installed.profile
    profiles.save_override(installed.profile, {"sampling": {"temperature": 0.0, "top_k": 1, "max_tokens": 8}})
    w = make_window(installed.profile)
    assert w.loaded.vision and w.loaded.image_max_side == 32
    assert "paste an image" in w.chat_page.attach_btn.toolTip()

    _paste(qtbot, w.input, _red())
    chips = w.chat_page.chips
    qtbot.waitUntil(lambda: len(chips.images()) == 1, timeout=10000)
    (pic,) = chips.images()
    w.input.setPlainText("What colour?")
    with qtbot.waitSignal(w.adapter.generation_finished, timeout=120000) as blocker:
        assert w.send()
    fin = blocker.args[1]
    assert fin.text == "Red" and fin.stats.image_tokens == 4
    assert not chips.image_chips and w.input.toPlainText() == ""  # sent: the chip and the text are gone
    qtbot.waitUntil(lambda: not w._stream, timeout=5000)

    def user_widget():
        return w.view.widgets[0]

    qtbot.waitUntil(lambda: bool(user_widget().images.thumbs) and user_widget().images.thumbs[0].loaded,
                    timeout=10000)
    thumb = user_widget().images.thumbs[0]
    assert thumb.path == pic["path"] and not thumb.icon().isNull()
    (chat,) = w.chats.chats()
    saved = w.chats.thread(chat.id)
    assert saved[0].images == [pic] and saved[1].content == "Red"

    # A click opens it larger (read on a worker).
    viewer = thumb.open_larger()
    qtbot.waitUntil(lambda: w and viewer.picture.pixmap() is not None and not viewer.picture.pixmap().isNull(),
                    timeout=10000)
    viewer.close()

    # Reopened, the picture is in the message again; a follow-up still sees it (history carries it).
    w.new_chat()
    assert w.model.rowCount() == 0
    w.open_chat(chat.id)
    qtbot.waitUntil(lambda: bool(user_widget().images.thumbs) and user_widget().images.thumbs[0].loaded,
                    timeout=10000)
    assert user_widget().images.thumbs[0].path == pic["path"]
    with qtbot.waitSignal(w.adapter.generation_finished, timeout=120000) as blocker:
        w.input.setPlainText("Sure?")
        assert w.send()
    assert blocker.args[1].text == "Red"

    md = w.export_chat(chat.id, "md", str(tmp_path / "out.md"))
    assert f"out_files/{pic['sha256']}.png" in md.read_text()
    assert (tmp_path / "out_files" / f"{pic['sha256']}.png").is_file()
