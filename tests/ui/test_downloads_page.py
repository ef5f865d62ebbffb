"""The Downloads page and the repo page against the loopback Hub server: a quant chosen on the repo page
downloads with progress on its card and in the queue, pause/resume/cancel, the 128009 fix listed on arrival,
and a failed download says Failed with its reason and offers Retry, also after a restart."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from desktop.engine import paths
from desktop.engine.hub import downloads
from desktop.engine.hub.queue import INTERRUPTED
from desktop.engine.profiles import ProfileStore
from desktop.ui.widgets.cards import BadgesRole
from tests.fixtures import tiny_gguf

REPO = "acme/Tiny-Llama-3-GGUF"
FILE = "tiny-llama3.Q8_0.gguf"
SPM_FILE = "tiny-llama3.Q4_K_M.gguf"


@pytest.fixture
def pages(qtbot, hub_server, llama3_broken: tiny_gguf.TinyModel, spm_model: tiny_gguf.TinyModel):
    """A repo page and the Downloads page over one controller and one installed-model scan."""
    from desktop.ui.library.download_queue import DownloadsController
    from desktop.ui.library.downloads_page import DownloadsPanel
    from desktop.ui.library.installed import InstalledModels
    from desktop.ui.library.repo_page import RepoPage

    hub_server.add(REPO, {FILE: llama3_broken.path.read_bytes(), SPM_FILE: spm_model.path.read_bytes(),
                          "README.md": b"card"})
    store = ProfileStore()
    ctrl = DownloadsController(store=store, backoff_base=0.05, connections=1)  # exact resume ranges below
    source = InstalledModels(store)
    ctrl.model_installed.connect(lambda _pid: source.refresh())
    repo = RepoPage(store=store)
    repo.attach(ctrl, source)
    repo.download_requested.connect(lambda spec, q: panel.show_job(ctrl.manager.submit(spec, quant=q).id))
    panel = DownloadsPanel(ctrl)
    for w in (repo, panel):
        qtbot.addWidget(w)
        w.resize(900, 600)
        w.show()
    with qtbot.waitSignal(repo.listing_finished, timeout=30000):
        repo.open_repo(REPO)
    yield repo, panel, ctrl
    ctrl.close()


def select(repo, quant: str) -> None:
    repo.list.setCurrentIndex(repo.quants.index(repo.quants.row_of(quant)))


def badges(repo, quant: str) -> list[tuple[str, str]]:
    return repo.quants.index(repo.quants.row_of(quant)).data(BadgesRole)


def download(qtbot, repo, panel, quant: str) -> str:
    select(repo, quant)
    n = panel.jobs.rowCount()
    qtbot.mouseClick(repo.download_btn, Qt.MouseButton.LeftButton)
    assert panel.jobs.rowCount() == n + 1
    return panel.jobs.rows[-1]["id"]


def test_download_shows_progress_on_the_quant_and_in_the_queue_and_lists_the_fix(qtbot, qtmodeltester, pages,
                                                                              hub_server) -> None:
    repo, panel, ctrl = pages
    assert [e.quant for e in repo.quants.entries] == ["Q4_K_M", "Q8_0"]
    hub_server.repos[REPO].files[FILE].faults.throttle_bps = 8_000_000
    seen: set[str] = set()
    ctrl.event_received.connect(lambda ev: seen.add(ev.state))
    job = download(qtbot, repo, panel, "Q8_0")
    qtbot.waitUntil(lambda: panel.job_row(job)["state"] == "downloading" and panel.job_row(job)["done"] > 0,
                    timeout=30000)
    # The repo page shows the progress on the quant's card, and its button does not queue it twice.
    assert any(t.startswith("Downloading") for t, _tone in badges(repo, "Q8_0"))
    assert repo.download_btn.text() == "Downloading…" and not repo.download_btn.isEnabled()
    qtbot.waitUntil(lambda: panel.job_row(job)["state"] == "done", timeout=60000)
    assert {"downloading", "verifying", "repairing", "done"} <= seen
    assert "end-of-turn token 128009 was not the EOS token" in panel.jobs.index(0, 5).data()
    # Installed, once the one scan has it: on the card; the button now starts a chat with its profile.
    qtbot.waitUntil(lambda: ("Installed", "ok") in badges(repo, "Q8_0"), timeout=15000)
    assert repo.download_btn.text() == "Chat with it" and repo.download_btn.isEnabled()
    pid = ctrl.manager.job(job).result["profile_id"]
    assert repo.installed_profile("Q8_0") == pid
    with qtbot.waitSignal(repo.chat_requested, timeout=2000) as sig:
        qtbot.mouseClick(repo.download_btn, Qt.MouseButton.LeftButton)
    assert sig.args == [pid] and panel.jobs.rowCount() == 1  # nothing queued again
    assert not any(t in {"Installed"} for t, _ in badges(repo, "Q4_K_M"))
    select(repo, "Q4_K_M")
    assert repo.download_btn.text() == "Download"
    qtmodeltester.check(panel.jobs)
    if os.environ.get("DESKTOP_CHAT_SHOTS"):
        panel.grab().save(str(Path(os.environ["DESKTOP_CHAT_SHOTS"]) / "downloads.png"))


def test_pause_resume_and_cancel(qtbot, pages, hub_server, llama3_broken) -> None:
    repo, panel, _ctrl = pages
    size = len(llama3_broken.path.read_bytes())
    hub_server.repos[REPO].files[FILE].faults.throttle_bps = 4_000_000
    job = download(qtbot, repo, panel, "Q8_0")
    assert panel.selected_job() == job
    qtbot.waitUntil(lambda: panel.job_row(job)["done"] > size // 4, timeout=30000)
    assert panel.pause_btn.isEnabled()
    panel.pause_btn.click()
    qtbot.waitUntil(lambda: panel.job_row(job)["state"] == "paused", timeout=30000)
    assert panel.resume_btn.isEnabled() and repo.download_btn.text() == "Resume"
    partial = list(paths.download_dir().rglob("*.incomplete"))
    assert len(partial) == 1
    have = partial[0].stat().st_size

    hub_server.repos[REPO].files[FILE].faults.throttle_bps = None
    panel.resume_btn.click()
    qtbot.waitUntil(lambda: panel.job_row(job)["state"] == "done", timeout=60000)
    resumed = hub_server.requests_for(FILE)[-1]
    assert resumed.range == f"bytes={have}-" and resumed.sent == size - have

    # Cancel a second job mid-way: the partial file goes away.
    hub_server.repos[REPO].files[SPM_FILE].faults.throttle_bps = 1_000_000
    job2 = download(qtbot, repo, panel, "Q4_K_M")
    qtbot.waitUntil(lambda: panel.job_row(job2)["done"] > 100_000, timeout=30000)
    panel.cancel_btn.click()
    qtbot.waitUntil(lambda: panel.job_row(job2)["state"] == "cancelled", timeout=30000)
    assert not list(paths.download_dir().rglob("*.incomplete"))


def test_a_failed_download_says_failed_with_the_reason_and_retries_also_after_a_restart(qtbot, monkeypatch
                                                                                       ) -> None:
    """Fault 3: with the Hub unreachable, Download on the welcome page failed in the queue file while the window
    said Queued. The page and the card read the queue's own state, and offer Retry."""
    from desktop.ui.shell.main_window import MainWindow

    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there: "cannot reach"
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    w = MainWindow()
    qtbot.addWidget(w)
    w.show()
    w.new_chat()
    qtbot.waitUntil(lambda: bool(w.welcome.cards), timeout=15000)
    card = w.welcome.cards[0]
    pid = card.entry.profile_id
    qtbot.mouseClick(card.download_btn, Qt.MouseButton.LeftButton)
    queue = paths.data_dir() / "downloads.json"
    qtbot.waitUntil(lambda: queue.is_file() and json.loads(queue.read_text())[0]["state"] == "failed", timeout=30000)
    assert "cannot reach" in json.loads(queue.read_text())[0]["message"]
    panel = w.views.downloads_panel
    (row,) = panel.jobs.rows
    qtbot.waitUntil(lambda: panel.job_row(row["id"])["state"] == "failed", timeout=5000)
    assert panel.jobs.index(0, 1).data() == "Failed" and "cannot reach" in panel.jobs.index(0, 5).data()
    assert panel.retry_btn.isVisibleTo(panel) and panel.retry_btn.isEnabled()
    assert card.download_btn.text() == "Retry" and card.state.text().startswith("Failed: cannot reach")
    # The card's Download downloads on the repo page (the one place that downloads), its quant selected; the
    # Downloads page (Ctrl+4) opened nothing on its own.
    assert w.pages.currentWidget() is w.views.hub_scroll and w.views.repo.spec == pid
    repo = w.views.repo
    qtbot.waitUntil(lambda: repo.error_panel.isVisibleTo(repo), timeout=30000)  # it cannot list the repo either
    assert "reach" in repo.error_panel.label.text() and repo.error_panel.retry_btn.isVisibleTo(repo)
    qtbot.keyClick(w, Qt.Key.Key_4, Qt.KeyboardModifier.ControlModifier)
    assert w.pages.currentWidget() is w.views.downloads_scroll
    # Retry runs the same job again (no second job), and it fails the same way.
    retried: list[str] = []
    w.views.downloads.event_received.connect(lambda ev: retried.append(ev.state))
    qtbot.mouseClick(panel.retry_btn, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "failed" in retried, timeout=30000)
    assert retried[0] == "queued" and panel.jobs.rowCount() == 1 and len(w.views.downloads.manager.jobs()) == 1
    assert panel.job_row(row["id"])["state"] == "failed"
    w.close()
    w.views.downloads.close()

    # A restart reads the state from the queue: Failed with the reason, Retry; on the welcome card too.
    w2 = MainWindow()
    qtbot.addWidget(w2)
    w2.show()
    w2.new_chat()
    panel2 = w2.views.downloads_panel
    assert [r["state"] for r in panel2.jobs.rows] == ["failed"]
    assert panel2.jobs.index(0, 1).data() == "Failed" and "cannot reach" in panel2.jobs.index(0, 5).data()
    assert panel2.retry_btn.isEnabled()
    qtbot.waitUntil(lambda: any(c.entry.profile_id == pid for c in w2.welcome.cards), timeout=15000)
    card2 = next(c for c in w2.welcome.cards if c.entry.profile_id == pid)
    assert card2.download_btn.text() == "Retry" and "cannot reach" in card2.state.text()
    w2.close()


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
    assert first.job(job.id).state == "paused" and first.job(job.id).message == INTERRUPTED
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
