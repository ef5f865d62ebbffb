"""The profile dialog of a remote (OpenAI-compatible) profile: server fields and the connection check,
against a real llama_cpp.server serving the demo model."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from desktop.engine import paths
from desktop.engine.profiles import ProfileStore
from tests.fixtures.openai_server import free_port, start_llama_server

pytestmark = pytest.mark.integration


def test_remote_profile_dialog_checks_the_connection_and_saves_the_server(qtbot, demo_model: Path,
                                                                          tmp_path: Path) -> None:
    from desktop.ui.settings.dialog import SettingsDialog

    srv = start_llama_server(demo_model, tmp_path / "server.log", alias="demo")
    try:
        d = paths.user_profiles_dir()
        d.mkdir(parents=True, exist_ok=True)
        (d / "remote-demo.yaml").write_text(json.dumps({
            "id": "remote-demo", "name": "Remote demo",
            "backend": {"kind": "openai", "base_url": f"http://127.0.0.1:{free_port()}", "model": "demo",
                        "timeout_s": 10}}))
        store = ProfileStore()
        dlg = SettingsDialog(store, "remote-demo")
        qtbot.addWidget(dlg)
        dlg.show()
        assert dlg.check_btn.isVisible() and not dlg.form.editor("context.default").isVisible()  # load settings do not apply remotely

        dlg.check_btn.click()  # nothing listens on that port
        qtbot.waitUntil(lambda: dlg.check_btn.isEnabled(), timeout=20000)
        assert "refused" in dlg.check_result.text()

        dlg.base_url.setText(srv.base_url)
        dlg.check_btn.click()
        qtbot.waitUntil(lambda: dlg.check_btn.isEnabled(), timeout=20000)
        assert dlg.check_result.text().startswith("Connected in") and "demo" in dlg.check_result.text()

        dlg.api_key_env.setText("MY_SERVER_KEY")
        assert dlg.save()
        saved = yaml.safe_load((d / "remote-demo.yaml").read_text())
        assert saved["backend"]["base_url"] == srv.base_url
        assert saved["backend"]["api_key_env"] == "MY_SERVER_KEY"
        assert "api_key" not in saved["backend"]
        assert ProfileStore().get("remote-demo").backend.base_url == srv.base_url
    finally:
        srv.stop()
