"""HubView and RepoPage against the loopback Hub, driven like a user: type, press Enter, click."""
from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

from desktop.ui.widgets.cards import BadgesRole, HighlightRole, SubtitleRole
from tests.fixtures import tiny_gguf

REPO = "acme/Tiny-Llama-3-GGUF"
FILE = "tiny-llama3.Q8_0.gguf"
SPM_FILE = "tiny-llama3.Q4_K_M.gguf"


@pytest.fixture
def hub(hub_server, llama3_ok: tiny_gguf.TinyModel, spm_model: tiny_gguf.TinyModel):
    data = llama3_ok.path.read_bytes()
    hub_server.add(REPO, {FILE: data, SPM_FILE: spm_model.path.read_bytes(), "tiny-llama3.F16.gguf": data + data},
                   meta={"downloads": 1234, "likes": 7, "lastModified": "2025-03-01T00:00:00.000Z",
                         "gguf": {"total": 1_500_000_000}})
    hub_server.add("acme/Popular-7B-GGUF", {"p.Q4_K_M.gguf": b"GGUF" + b"\0" * 2000},
                   meta={"downloads": 99_000, "likes": 300})
    hub_server.add("acme/NotGGUF", {"model.safetensors": b"x" * 2000}, meta={"downloads": 10**7})
    return hub_server


@pytest.fixture
def view(qtbot):
    from desktop.ui.library.hub_page import HubView

    v = HubView()
    qtbot.addWidget(v)
    v.resize(900, 600)
    v.show()
    return v


def type_and_enter(qtbot, v, text: str) -> None:
    v.box.clear()
    qtbot.keyClicks(v.box, text)
    qtbot.keyClick(v.box, Qt.Key.Key_Return)


def test_typing_searches_after_a_pause_most_downloaded_first(qtbot, view, hub) -> None:
    with qtbot.waitSignal(view.search_finished, timeout=15000):
        qtbot.keyClicks(view.box, "acme")  # no Enter: the debounce timer fires the search
    assert [view.results.index(i).data() for i in range(view.results.rowCount())] == [
        "acme/Popular-7B-GGUF", REPO]
    searches = [r for r in hub.log if r.path == "/api/models"]
    assert len(searches) == 1  # one request for five keystrokes
    tiny = view.results.index(1)
    assert "1.2k downloads" in tiny.data(SubtitleRole) and "♥ 7" in tiny.data(SubtitleRole)
    assert "updated" in tiny.data(SubtitleRole)
    assert ("1.5B", "accent") in tiny.data(BadgesRole)
    assert view.stack.currentWidget() is view.list and "2 GGUF repositories" in view.status.text()


@pytest.mark.parametrize("text", [REPO, f"https://huggingface.co/{REPO}", f"https://huggingface.co/{REPO}/tree/main",
                                  f"https://huggingface.co/{REPO}/blob/main/{FILE}"])
def test_enter_on_a_repo_id_or_url_opens_the_repo(qtbot, view, hub, text: str) -> None:
    with qtbot.waitSignal(view.repo_opened, timeout=5000) as sig:
        type_and_enter(qtbot, view, text)
    assert sig.args == [REPO]


def test_offline_panel_retry_feedback_and_import(qtbot, view, hub, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with qtbot.waitSignal(view.search_finished, timeout=15000):
        type_and_enter(qtbot, view, "tiny")
    panel = view.error_panel
    assert panel.isVisible() and panel.headline.text() == "You are offline"
    assert "Offline mode is on" in panel.label.text()
    assert panel.import_btn.text().startswith("Import a GGUF from disk")
    with qtbot.waitSignal(view.import_requested, timeout=2000):
        qtbot.mouseClick(panel.import_btn, Qt.MouseButton.LeftButton)

    # Back online: Retry says so at once, then the results replace the panel.
    monkeypatch.delenv("HF_HUB_OFFLINE")
    with qtbot.waitSignal(view.search_finished, timeout=15000):
        qtbot.mouseClick(panel.retry_btn, Qt.MouseButton.LeftButton)
        assert panel.retry_btn.text() == "Retrying…" and not panel.retry_btn.isEnabled()
    assert not panel.isVisible()
    assert view.results.rowCount() == 1 and view.results.index(0).data() == REPO


def test_unreachable_hub_and_server_errors_show_in_the_view(qtbot, view, hub, monkeypatch) -> None:
    hub.search_status = 400
    with qtbot.waitSignal(view.search_finished, timeout=15000):
        type_and_enter(qtbot, view, "tiny")
    assert view.error_panel.headline.text() == "Something went wrong"
    assert "400" in view.error_panel.label.text()
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
    with qtbot.waitSignal(view.search_finished, timeout=15000):
        qtbot.mouseClick(view.error_panel.retry_btn, Qt.MouseButton.LeftButton)
    assert view.error_panel.headline.text() == "You are offline"
    assert "Cannot reach" in view.error_panel.label.text()
    assert view.error_panel.retry_btn.text() == "Retry" and view.error_panel.retry_btn.isEnabled()


# ------------------------------------------------------------------------------------------ repo page


@pytest.fixture
def page(qtbot, monkeypatch):
    from desktop.ui.library.repo_page import RepoPage

    # 1.03 GiB of RAM, no GPU: weights + 1 GiB overhead fit at 4k tokens; at 128k the KV cache
    # (256 B/token for the tiny SPM model: 32 MiB) tips the small quant over.
    monkeypatch.setenv("DESKTOP_CHAT_FAKE_HW", "ram=1.03G")
    p = RepoPage()
    qtbot.addWidget(p)
    p.resize(900, 600)
    p.show()
    return p


def test_repo_id_typed_and_entered_lists_quants_never_unknown_profile(qtbot, view, page, hub) -> None:
    view.repo_opened.connect(page.open_repo)
    with qtbot.waitSignal(page.listing_finished, timeout=30000):
        type_and_enter(qtbot, view, REPO)
    assert not page.error_panel.isVisible(), page.error_panel.label.text()
    assert page.listing is not None and page.listing.repo == REPO and page.listing.profile_id is None
    assert [page.quants.index(i).data() for i in range(page.quants.rowCount())] == ["Q4_K_M", "Q8_0", "F16"]
    # Recommended: the biggest quant that fits, never the full-precision file; it is selected and marked.
    rec = page.quants.recommended
    assert rec == "Q8_0" and page.selected_quant() == "Q8_0"
    row = page.quants.row_of("Q8_0")
    assert page.quants.index(row).data(HighlightRole)
    assert ("★ Recommended", "star") in page.quants.index(row).data(BadgesRole)
    assert ("Fits in RAM", "ok") in page.quants.index(row).data(BadgesRole)
    tip = page.quants.index(row).data(Qt.ItemDataRole.ToolTipRole)
    assert "KV" in tip and "overhead" in tip  # the sum behind the badge
    assert "needs" in page.quants.index(row).data(SubtitleRole)


def test_context_slider_refits_without_the_network_and_download_emits(qtbot, page, hub) -> None:
    with qtbot.waitSignal(page.listing_finished, timeout=30000):
        page.open_repo(REPO)
    before = len(hub.log)
    first = dict(page.quants.entries[0].fit)
    assert first["kind"] == "cpu" and first["n_ctx"] == 4096
    page.set_context(131072)
    assert page.ctx_label.text() == "131,072 tokens"
    after = page.quants.entries[0].fit
    assert after["n_ctx"] == 131072 and after["kv_bytes"] == first["kv_bytes_per_token"] * 131072
    assert after["kv_bytes_per_token"] == first["kv_bytes_per_token"]  # same architecture numbers
    assert after["kind"] == "none" and ("Won't fit", "bad") in page.quants.index(0).data(BadgesRole)
    page.set_context(1024)
    assert page.quants.entries[0].fit["kind"] == "cpu" and page.ctx_label.text() == "1,024 tokens"
    assert len(hub.log) == before  # not one request: the slider works from the cached listing

    page.list.setCurrentIndex(page.quants.index(0))
    with qtbot.waitSignal(page.download_requested, timeout=2000) as sig:
        qtbot.mouseClick(page.download_btn, Qt.MouseButton.LeftButton)
    assert sig.args == [REPO, "Q4_K_M"]


def test_repo_page_errors_show_a_panel_with_retry(qtbot, page, hub) -> None:
    page.open_repo(None)  # nothing to list: no request, no "Unknown profile 'None'"
    assert page.listing is None and not page.error_panel.isVisible()
    with qtbot.waitSignal(page.listing_finished, timeout=30000):
        page.open_repo("nobody/nothing-here")
    assert page.error_panel.isVisible() and "was not found" in page.error_panel.label.text()
    assert not page.download_btn.isEnabled()
    hub.add("nobody/nothing-here", {"n.Q4_0.gguf": b"GGUF" + b"\0" * 2000})
    with qtbot.waitSignal(page.listing_finished, timeout=30000):
        qtbot.mouseClick(page.error_panel.retry_btn, Qt.MouseButton.LeftButton)
    assert not page.error_panel.isVisible() and page.quants.rowCount() == 1


def test_only_the_last_of_many_searches_shows_and_every_job_is_let_go(qtbot, view, hub) -> None:
    for q in ("tiny", "popular", "nothing", "llama", "7b", "acme"):  # a user typing fast, pressing Enter each time
        type_and_enter(qtbot, view, q)
    assert len(view._jobs.jobs) >= 1
    qtbot.waitUntil(lambda: not view._jobs.jobs, timeout=15000)
    assert view.last_query == "acme"
    assert [view.results.index(i).data() for i in range(view.results.rowCount())] == ["acme/Popular-7B-GGUF", REPO]


def test_the_retry_spinner_stops_its_timer_when_the_answer_comes(qtbot) -> None:
    from PySide6.QtCore import QTimer

    from desktop.ui.widgets.error_panel import ErrorPanel

    panel = ErrorPanel()
    qtbot.addWidget(panel)
    panel.show_error({"code": "hub_offline", "message": "Offline mode is on."})
    qtbot.waitExposed(panel)
    btn = panel.retry_btn

    def spinning() -> list[QTimer]:
        return [t for t in btn.findChildren(QTimer) if t.isActive()]

    panel.set_retrying(True)
    btn.repaint()  # qtawesome starts the spinner's timer when the icon is first painted
    qtbot.waitUntil(lambda: bool(spinning()), timeout=2000)
    panel.set_retrying(False)
    assert spinning() == [] and btn.text() == "Retry" and btn.isEnabled()
    panel.set_retrying(True)  # a second retry spins again, and stops again
    btn.repaint()
    qtbot.waitUntil(lambda: bool(spinning()), timeout=2000)
    panel.show_error({"code": "hub_offline", "message": "Offline mode is on."})
    assert spinning() == []
