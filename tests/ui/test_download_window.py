"""The download window against the loopback Hub server: quants with fit, progress, pause/resume,
cancel, and the 128009 fix listed on arrival."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from desktop.engine import paths
from desktop.engine.hub import downloads
from desktop.engine.profiles import ProfileStore
from tests.fixtures import tiny_gguf

REPO = "acme/Tiny-Llama-3-GGUF"
FILE = "tiny-llama3.Q8_0.gguf"
SPM_FILE = "tiny-llama3.Q4_K_M.gguf"


@pytest.fixture
def window(qtbot, hub_server, llama3_broken: tiny_gguf.TinyModel, spm_model: tiny_gguf.TinyModel):
    from desktop.ui.library.download_window import DownloadsController, DownloadWindow

    hub_server.add(REPO, {FILE: llama3_broken.path.read_bytes(), SPM_FILE: spm_model.path.read_bytes(),
                          "README.md": b"card"})
    ctrl = DownloadsController(store=ProfileStore(), backoff_base=0.05, connections=1)  # exact resume ranges below
    w = DownloadWindow(controller=ctrl)
    qtbot.addWidget(w)
    w.show()
    yield w
    ctrl.close()


def list_repo(qtbot, w, spec: str) -> None:
    w.spec.setEditText(spec)
    with qtbot.waitSignal(w.listing_finished, timeout=30000):
        w.list_quants()


def select(w, quant: str) -> None:
    for r, e in enumerate(w.quants.entries):
        if e.quant == quant:
            w.quant_view.selectRow(r)
            return
    raise AssertionError(quant)


def test_download_shows_progress_and_lists_the_fix(qtbot, qtmodeltester, window, hub_server) -> None:
    list_repo(qtbot, window, REPO)
    assert [e.quant for e in window.quants.entries] == ["Q4_K_M", "Q8_0"]
    verdict = window.quants.index(1, 4).data()
    assert verdict in {"fits on GPU", "CPU only"} or verdict.startswith("partial offload")
    assert "KV" in window.quants.index(1, 4).data(Qt.ItemDataRole.ToolTipRole)  # the sum behind the verdict
    assert window.quants.index(1, 3).data().endswith("GiB")  # 18.8 MiB of weights + 1 GiB overhead
    qtmodeltester.check(window.quants)

    hub_server.repos[REPO].files[FILE].faults.throttle_bps = 8_000_000
    select(window, "Q8_0")
    seen: set[str] = set()
    window.controller.event_received.connect(lambda ev: seen.add(ev.state))
    job = window.download_selected()
    assert job is not None
    qtbot.waitUntil(lambda: window.job_row(job.id)["state"] == "downloading"
                    and window.job_row(job.id)["done"] > 0, timeout=30000)
    row = window.jobs.rows[window.jobs._row(job.id)]
    assert 0 < row["done"] < row["total"]
    qtbot.waitUntil(lambda: window.job_row(job.id)["state"] == "done", timeout=60000)
    assert {"downloading", "verifying", "repairing", "done"} <= seen
    details = window.jobs.index(window.jobs._row(job.id), 5).data()
    assert "end-of-turn token 128009 was not the EOS token" in details
    assert "128009" in window.status.text()
    qtmodeltester.check(window.jobs)
    if os.environ.get("DESKTOP_CHAT_SHOTS"):
        window.grab().save(str(Path(os.environ["DESKTOP_CHAT_SHOTS"]) / "downloads.png"))


def test_pause_resume_and_cancel(qtbot, window, hub_server, llama3_broken) -> None:
    size = len(llama3_broken.path.read_bytes())
    hub_server.repos[REPO].files[FILE].faults.throttle_bps = 4_000_000
    list_repo(qtbot, window, REPO)
    select(window, "Q8_0")
    job = window.download_selected()
    window.job_view.selectRow(window.jobs._row(job.id))
    qtbot.waitUntil(lambda: window.job_row(job.id)["done"] > size // 4, timeout=30000)
    assert window.pause_btn.isEnabled()
    window.pause_btn.click()
    qtbot.waitUntil(lambda: window.job_row(job.id)["state"] == "paused", timeout=30000)
    assert window.resume_btn.isEnabled()
    partial = list(paths.download_dir().rglob("*.incomplete"))
    assert len(partial) == 1
    have = partial[0].stat().st_size

    hub_server.repos[REPO].files[FILE].faults.throttle_bps = None
    window.resume_btn.click()
    qtbot.waitUntil(lambda: window.job_row(job.id)["state"] == "done", timeout=60000)
    resumed = hub_server.requests_for(FILE)[-1]
    assert resumed.range == f"bytes={have}-" and resumed.sent == size - have

    # Cancel a second job mid-way: the partial file goes away.
    hub_server.repos[REPO].files[SPM_FILE].faults.throttle_bps = 1_000_000
    select(window, "Q4_K_M")
    job2 = window.download_selected()
    window.job_view.selectRow(window.jobs._row(job2.id))
    qtbot.waitUntil(lambda: window.job_row(job2.id)["done"] > 100_000, timeout=30000)
    window.cancel_btn.click()
    qtbot.waitUntil(lambda: window.job_row(job2.id)["state"] == "cancelled", timeout=30000)
    assert not list(paths.download_dir().rglob("*.incomplete"))


def test_profile_opens_with_recommended_quant_and_errors_are_presented(qtbot, window, hub_server) -> None:
    blob = b"GGUF" + b"\0" * 4000
    hub_server.add("mradermacher/Smaug-Llama-3-70B-Instruct-GGUF", {
        "Smaug-Llama-3-70B-Instruct.Q2_K.gguf": blob, "Smaug-Llama-3-70B-Instruct.Q4_K_M.gguf": blob + b"1",
        "Smaug-Llama-3-70B-Instruct.Q8_0.gguf.part1of2": blob, "Smaug-Llama-3-70B-Instruct.Q8_0.gguf.part2of2": blob})
    with qtbot.waitSignal(window.listing_finished, timeout=30000):
        window.show_for("smaug-llama-3-70b-instruct", None)
    assert window.selected_quant() == "Q4_K_M"
    assert "recommended" in window.quants.index(1, 0).data()
    assert window.listing and window.listing.arch_source == "profile"

    list_repo(qtbot, window, "nobody/nothing-here")
    assert "was not found" in (window.errors.last or "")


def test_interrupted_download_resumes_when_the_app_starts(qtbot, hub_server, spm_model) -> None:
    from desktop.ui.shell.main_window import MainWindow

    data = spm_model.path.read_bytes()
    hub_server.add(REPO, {SPM_FILE: data})
    f = hub_server.repos[REPO].files[SPM_FILE]
    f.faults.throttle_bps = 2_000_000
    first = downloads.DownloadManager(backoff_base=0.05)
    job = first.submit(REPO, quant="Q4_K_M")
    qtbot.waitUntil(lambda: first.job(job.id).done > len(data) // 3, timeout=30000)
    first.close()  # the app quits mid-download
    assert first.job(job.id).state == "paused" and first.job(job.id).message == downloads.INTERRUPTED
    have = next(paths.download_dir().rglob("*.incomplete")).stat().st_size

    f.faults.throttle_bps = None
    w = MainWindow()
    qtbot.addWidget(w)
    assert w.resume_downloads() == 1
    assert "Resuming 1 interrupted download" in w.statusBar().currentMessage()
    qtbot.waitUntil(lambda: "is downloaded and ready" in w.banner.label.text(), timeout=60000)
    last = hub_server.requests_for(SPM_FILE)[-1]
    assert last.range == f"bytes={have}-" and last.sent == len(data) - have
    w.close()


def test_typed_repo_and_enter_twice_never_reads_a_profile_none(qtbot, window) -> None:
    """Regression: an editable combo inserted the typed text as an item with no data, read as 'None'."""
    edit = window.spec.lineEdit()
    edit.clear()
    for _ in range(2):  # the second Enter used to hit the inserted, data-less item
        with qtbot.waitSignal(window.listing_finished, timeout=30000):
            qtbot.keyClicks(edit, "" if edit.text() else REPO)
            qtbot.keyClick(edit, Qt.Key.Key_Return)
        assert window.errors.last is None, window.errors.last
        assert window.listing is not None and window.listing.repo == REPO
    # One listing per Enter: the key reaches the window twice, and a second request left running against the
    # Hub server once the test is over held a thread of the shared pool for 30 s (the next test timed out).
    assert len(window._jobs) == 2
    assert window.spec.findText(REPO) == -1  # nothing was inserted
    edit.setText(f"https://huggingface.co/{REPO}/tree/main")  # a pasted URL lists its repo
    assert window.spec_text() == REPO


def test_offline_shows_a_panel_with_retry_feedback_and_import(qtbot, window, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    list_repo(qtbot, window, REPO)
    panel = window.error_panel
    assert panel.isVisible() and "Offline mode is on" in panel.label.text()
    assert window.quants.rowCount() == 0 and not window.download_btn.isEnabled()
    with qtbot.waitSignal(window.import_requested, timeout=2000):
        qtbot.mouseClick(panel.import_btn, Qt.MouseButton.LeftButton)
    monkeypatch.delenv("HF_HUB_OFFLINE")
    with qtbot.waitSignal(window.listing_finished, timeout=30000):
        qtbot.mouseClick(panel.retry_btn, Qt.MouseButton.LeftButton)
        assert panel.retry_btn.text() == "Retrying…"
    assert not panel.isVisible() and [e.quant for e in window.quants.entries] == ["Q4_K_M", "Q8_0"]


def test_window_opens_fully_on_screen(qtbot, window) -> None:
    avail = window.screen().availableGeometry()
    window.move(avail.right() - 50, avail.bottom() - 50)  # as if the main window sat in a corner
    window.show_for(None, None)
    assert avail.contains(window.frameGeometry()), (avail, window.frameGeometry())
