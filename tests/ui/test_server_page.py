"""The Server page in the main window, over the scripted fake engine (tests/fixtures/fake_engine.py): turned on
from the page it serves the official `openai` package, each request shows in the log, LAN mode demands a key and
shows the addresses, a port in use is one sentence, settings survive a new window, off frees the port, and the
chat says so before it takes the engine back from the server's model."""
from __future__ import annotations

import socket
import threading
from typing import Any, Iterator

import openai
import pytest
from PySide6.QtCore import QSettings

from desktop.engine.inference import client as engine_client
from desktop.engine.server.pool import ServedModel
from desktop.ui.server.log_model import cell
from tests.fixtures.fake_engine import FAKE_COMMAND

CATALOG = [ServedModel("fast", "/models/fast.gguf"), ServedModel("slow", "/models/slowload.gguf")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


@pytest.fixture
def new_window(qtbot, monkeypatch) -> Iterator[Any]:
    """A factory: a shown main window whose one engine is the fake engine and whose server offers CATALOG."""
    monkeypatch.setattr(engine_client, "worker_command", lambda: list(FAKE_COMMAND))
    made: list[Any] = []

    def make() -> Any:
        from desktop.ui.shell.main_window import MainWindow

        w = MainWindow()
        qtbot.addWidget(w)
        w.server.catalog = lambda: CATALOG
        w.show()
        w.show_page("server")
        made.append(w)
        return w

    QSettings().remove("server")  # Qt keeps one settings file per process, whatever XDG_CONFIG_HOME says later
    yield make
    for w in made:
        qtbot.waitUntil(lambda: not w.server.jobs.jobs, timeout=10000)  # no settings written after the cleanup
        w.close()
    QSettings().remove("server")


def turn_on(qtbot, w: Any) -> Any:
    page = w.server_page
    page.switch.setChecked(True)
    qtbot.waitUntil(lambda: not w.server.busy, timeout=10000)
    return w.server.server


def test_turned_on_from_the_page_it_serves_the_openai_package_and_logs_each_request(qtbot, new_window) -> None:
    w = new_window()
    page = w.server_page
    page.port.setValue(free_port())
    srv = turn_on(qtbot, w)
    assert srv is not None and page.switch.isChecked() and "On, port" in page.state.text()
    assert page.addresses() == {"OpenAI base URL": [srv.base_url], "Ollama URL": [srv.base_url[:-3]]}

    api = openai.OpenAI(base_url=srv.base_url, api_key="unused", max_retries=0)
    assert [m.id for m in api.models.list().data] == ["fast", "slow"]
    answer = api.chat.completions.create(model="slow", messages=[{"role": "user", "content": "hi"}])
    assert answer.choices[0].message.content == "echo: hi"

    qtbot.waitUntil(lambda: page.log.rowCount() == 2, timeout=5000)
    newest = page.log.rows[0]
    assert (newest.path, newest.model, newest.status) == ("/v1/chat/completions", "slow", 200)
    assert [cell(newest, c) for c in (1, 2, 5)] == ["OpenAI /v1/chat/completions", "slow", "200 OK"]
    assert page.log.rows[1].path == "/v1/models"
    # The model the server holds, on the page and in the status bar, with the load it reported on the way.
    qtbot.waitUntil(lambda: page.model_label.text().startswith("slow is loaded"), timeout=5000)
    assert "slow loaded" in w.server_badge.text() and w.server_badge.isVisible()
    assert page.unload_btn.isEnabled()
    page.unload_btn.click()
    qtbot.waitUntil(lambda: page.model_label.text().startswith("No model loaded"), timeout=5000)


def test_the_log_is_bounded_and_newest_first(qtbot, new_window) -> None:
    from desktop.engine.server.config import RequestLog
    from desktop.ui.server.log_model import RequestLogModel

    m = RequestLogModel(limit=3)
    for i in range(5):
        m.add(RequestLog("ollama", "POST", f"/api/chat/{i}", 200))
    assert m.rowCount() == 3 and [r.path for r in m.rows] == ["/api/chat/4", "/api/chat/3", "/api/chat/2"]


def test_lan_mode_demands_a_key_and_shows_the_addresses(qtbot, new_window) -> None:
    w = new_window()
    page = w.server_page
    page.port.setValue(free_port())
    page.lan.setChecked(True)
    assert len(page.key.text()) >= 32  # the local network needs a key: one is made at once
    page.key.clear()
    page.key.editingFinished.emit()
    assert w.server.settings.lan and not w.server.settings.api_key
    page.switch.setChecked(True)
    qtbot.waitUntil(lambda: not w.server.busy, timeout=5000)
    assert w.server.server is None and not page.switch.isChecked()
    assert "needs an API key" in w.errors.last and "needs an API key" in page.state.text()
    w.errors.box.close()

    page.new_key.click()
    key = page.key.text()
    assert len(key) >= 32 and w.server.settings.api_key == key
    srv = turn_on(qtbot, w)
    assert srv is not None and srv.config.lan
    lan = page.addresses().get("Local network")
    assert lan == srv.lan_urls() and lan  # the machine has a non-loopback address (the sandbox's eth0)
    assert openai.OpenAI(base_url=lan[0], api_key=key, max_retries=0).models.list().data[0].id == "fast"
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=lan[0], api_key="wrong", max_retries=0).models.list()
    page.copy_key.click()
    assert w._clipboard().text() == key and w.statusBar().currentMessage() == "Copied the API key."


def test_a_port_in_use_is_one_sentence(qtbot, new_window) -> None:
    w = new_window()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        w.server_page.port.setValue(port)
        w.server_page.switch.setChecked(True)
        qtbot.waitUntil(lambda: not w.server.busy, timeout=5000)
    assert w.server.server is None and not w.server_page.switch.isChecked()
    assert w.errors.last == f"Port {port} is already in use by another program; choose another port for the server."
    assert w.errors.box is not None and w.errors.box.isVisible() and "Traceback" not in (w.errors.last_details or "")
    w.errors.box.close()


def test_settings_persist_the_server_starts_with_the_app_and_off_frees_the_port(qtbot, new_window) -> None:
    port = free_port()
    w = new_window()
    page = w.server_page
    page.port.setValue(port)
    page.ttl.setValue(5)
    page.origin_edit.setText("http://localhost:3000")
    page.add_origin.click()
    assert turn_on(qtbot, w).port == port
    qtbot.waitUntil(lambda: not w.server.jobs.jobs, timeout=5000)  # the settings are written on a worker
    w.close()
    assert port_is_free(port)  # closing the window stops the server

    w2 = new_window()
    page2 = w2.server_page
    assert (page2.port.value(), page2.ttl.value()) == (port, 5)
    assert [page2.origins.item(i).text() for i in range(page2.origins.count())] == ["http://localhost:3000"]
    qtbot.waitUntil(lambda: w2.server.running, timeout=10000)  # it was on: it starts with the app
    srv = w2.server.server
    assert srv.config.allowed_origins == ("http://localhost:3000",) and srv.config.model_ttl_s == 300
    assert not port_is_free(port) and page2.switch.isChecked()
    page2.switch.setChecked(False)
    qtbot.waitUntil(lambda: not w2.server.busy, timeout=5000)
    assert w2.server.server is None and port_is_free(port) and page2.state.text() == "Off."
    qtbot.waitUntil(lambda: not w2.server.jobs.jobs, timeout=5000)
    w2.close()
    w3 = new_window()
    qtbot.wait(300)
    assert not w3.server.running and not w3.server_page.switch.isChecked()  # off stays off


def test_a_chat_says_so_before_it_takes_the_engine_back_from_the_server(qtbot, new_window) -> None:
    w = new_window()
    with qtbot.waitSignal(w.adapter.model_loaded, timeout=20000):
        w.load_profile(w.store.default())
    chat_model = w.adapter.client.last_load.model_path
    w.server_page.port.setValue(free_port())
    srv = turn_on(qtbot, w)
    api = openai.OpenAI(base_url=srv.base_url, api_key="unused", max_retries=0)
    assert api.chat.completions.create(model="fast", messages=[{"role": "user", "content": "a"}]).choices
    assert srv.loaded_model == "fast"

    rows = w.model.rowCount()
    w.show_page("chats")
    assert w.send("hello") is False  # not yet: the engine holds the server's model
    assert w.banner.isVisible() and "fast" in w.banner.label.text() and w.model.rowCount() == rows
    assert w.banner.action_btn.text() == "Load and send"
    with qtbot.waitSignal(w.session.finished, timeout=20000):
        w.banner.action_btn.click()
    assert w.adapter.client.last_load.model_path == chat_model  # the chat's model came back before the answer
    assert w.model.messages[-1].text == "echo: hello"
    assert srv.loaded_model is None
    qtbot.waitUntil(lambda: w.server_page.model_label.text().startswith("No model loaded"), timeout=5000)

    # The engine holds the chat's model now: the next message goes at once. While it is answered the chat holds
    # the server's turn: a request that arrives meanwhile waits for the answer, then loads its model again.
    order: list[str] = []
    ctl = w.server
    release = ctl._release_turn

    def released() -> None:  # the chat gives the server its turn back (when its answer has ended)
        if ctl._turn is not None:
            order.append("chat")
        release()

    ctl._release_turn = released
    assert w.send("slow:8") is True
    t = threading.Thread(target=lambda: order.append(
        api.chat.completions.create(model="fast", messages=[{"role": "user", "content": "b"}]).choices[0]
        .message.content))
    t.start()
    qtbot.waitUntil(lambda: len(order) == 2, timeout=20000)
    t.join(5)
    assert order == ["chat", "echo: b"] and srv.loaded_model == "fast"
    assert w.model.messages[-1].text == "0 1 2 3 4 5 6 7 " and w.model.messages[-1].state == "done"  # all of it


def test_every_control_is_reached_with_tab(qtbot, new_window) -> None:
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QApplication

    w = new_window()
    w.activateWindow()
    qtbot.waitUntil(w.isActiveWindow, timeout=3000)
    page = w.server_page
    page.port.setValue(free_port())
    page.lan.setChecked(True)
    turn_on(qtbot, w)
    page.switch.setFocus()
    seen = []
    for _ in range(40):
        qtbot.keyClick(QApplication.focusWidget(), Qt.Key.Key_Tab)
        seen.append(QApplication.focusWidget())
    copies = [copy for _label, _value, copy in page.addr_rows]
    wanted = [page.port, page.ttl, page.lan, page.key, page.new_key, page.copy_key, page.origins, page.origin_edit,
              page.add_origin, page.remove_origin, *copies, page.log_view, page.clear_log]
    # A spin box's focus is its line edit's.
    reached = [next((x for x in wanted if x is s or x.isAncestorOf(s)), None) for s in seen]
    assert all(x in reached for x in wanted) and len(copies) == 3
    order = list(dict.fromkeys(x for x in reached if x is not None))
    assert order[:len(wanted)] == wanted  # reading order, the page's controls one after the other
