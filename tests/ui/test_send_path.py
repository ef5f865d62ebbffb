"""One send path, one request per send: the session builds the request once; its settings are the answer's
provenance, and the request the engine gets is that one with the messages on it."""
from __future__ import annotations

from desktop.engine.library import registry
from tests.ui.test_chat_thinking import _finish, _setup


def test_a_send_builds_one_request_and_records_its_settings(qtbot, tmp_path, monkeypatch) -> None:
    client, adapter, model, _view, session = _setup(qtbot, tmp_path)
    built: list[str] = []
    real = registry.generate_request
    monkeypatch.setattr(registry, "generate_request", lambda *a, **k: built.append(a[2]) or real(*a, **k))
    session.overrides.sampling = {"temperature": 0.3, "seed": 7}
    assert session.send("Hello?")
    assert len(built) == 1  # not once for provenance, once for the adapter and once for a tool stage
    (sent,) = client.sent
    assert sent.id == built[0] and sent.messages[-1]["content"] == "Hello?"
    prov = model.messages[-1].provenance
    assert prov["sampling"]["temperature"] == sent.temperature == 0.3 and prov["seed"] == sent.seed == 7
    _finish(adapter, sent.id, "Hi.", "", generated_tokens=2, tokens_per_s=10.0)
    saved = session.chats.message(model.messages[-1].id)
    assert saved.provenance["sampling"]["temperature"] == 0.3 and len(built) == 1
