"""Reasoning models end to end through the real engine: scripted GGUFs with the real Qwen3 and gpt-oss templates
think "Hmm", answer "Hi there!" and stop; the answer and the thinking come out apart, with no markup."""
from __future__ import annotations

import json

import pytest

from desktop.engine.inference import protocol as P
from desktop.engine.inference.client import EngineClient, new_id
from desktop.engine.library import registry
from tests.engine.test_cli import assert_one_error_line, run
from tests.fixtures import reasoning_gguf


@pytest.fixture(scope="module")
def qwen3(tmp_path_factory):
    return reasoning_gguf.make_qwen3(tmp_path_factory.mktemp("rq") / "qwen3.gguf")


@pytest.fixture(scope="module")
def gpt_oss(tmp_path_factory):
    return reasoning_gguf.make_gpt_oss(tmp_path_factory.mktemp("rg") / "gpt-oss.gguf")


@pytest.mark.parametrize("which,fmt", [("qwen3", "think"), ("gpt_oss", "harmony")])
def test_ask_json_has_the_answer_and_the_reasoning(which, fmt, request):
    m = request.getfixturevalue(which)
    r = run("ask", "--model", str(m.path), "--json", "Say hi.")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert (out["text"], out["reasoning"], out["finish_reason"]) == ("Hi there!", "Hmm", "stop")
    assert out["reasoning_format"] == fmt and out["stopped_thinking"] is False
    assert out["stats"]["generated_tokens"] == len(m.expected_ids) - 1  # every scripted token but the stop
    assert 0 < out["stats"]["reasoning_tokens"] < out["stats"]["generated_tokens"]


def test_ask_prints_only_the_answer_and_thinking_on_stderr(gpt_oss):
    r = run("ask", "--model", str(gpt_oss.path), "Say hi.")
    assert (r.returncode, r.stdout) == (0, "Hi there!\n") and "Hmm" not in r.stderr
    r = run("ask", "--model", str(gpt_oss.path), "--show-reasoning", "Say hi.")
    assert (r.returncode, r.stdout) == (0, "Hi there!\n") and "Hmm\n" in r.stderr


def test_stopped_while_thinking_is_an_error(qwen3):
    assert_one_error_line(run("ask", "--model", str(qwen3.path), "--max-tokens", "2", "Say hi."),
                          "stopped while thinking: raise max tokens")


def test_engine_events_stream_thinking_then_answer(gpt_oss):
    with EngineClient() as client:
        loaded = client.load(registry.load_request(None, gpt_oss.path, new_id("load"), n_ctx=2048))
        assert loaded.reasoning_format == "harmony"
        gen = registry.generate_request(None, [{"role": "user", "content": "Say hi."}], new_id("gen"),
                                        chunk_interval_ms=0.0, max_tokens=64)
        evs = list(client.generate(gen))
    chunks = [e for e in evs if isinstance(e, P.TokenChunk)]
    fin = evs[-1]
    assert isinstance(fin, P.Finished) and (fin.text, fin.reasoning) == ("Hi there!", "Hmm")
    assert "".join(c.reasoning for c in chunks) == "Hmm" and "".join(c.text for c in chunks) == "Hi there!"
    first_answer = next(i for i, c in enumerate(chunks) if c.text)
    assert all(not c.reasoning for c in chunks[first_answer:])  # thinking first, then the answer


def test_inspect_and_import(qwen3, gpt_oss):
    from desktop.engine.profiles import ProfileStore

    for m, fmt in ((qwen3, "think"), (gpt_oss, "harmony")):
        r = run("gguf", "inspect", "--json", str(m.path))
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["reasoning_format"] == fmt
        r = run("models", "import", "--json", str(m.path))
        assert r.returncode == 0, r.stderr
        prof = ProfileStore().get(json.loads(r.stdout)["profile"])
        assert prof.reasoning.format == fmt and prof.is_reasoning and prof.sampling.max_tokens >= 8192
    # harmony: <|end|> closes a message, not the turn; <|return|> and <|call|> end it
    prof = ProfileStore().get(json.loads(r.stdout)["profile"])
    end_id = gpt_oss.expected_ids[4]  # <|channel|> analysis <|message|> Hmm <|end|>
    assert gpt_oss.eot_id in prof.prompt.stop_tokens and end_id not in prof.prompt.stop_tokens


def test_serve_returns_reasoning_content_and_a_remote_profile_reads_it(gpt_oss):
    """The local server over the gpt-oss file, asked by the real `openai` and `ollama` clients and by the app's
    own remote backend: the thinking comes apart from the answer in each API's own field."""
    import ollama
    import openai

    from desktop.engine.server.app import LocalServer
    from desktop.engine.server.config import ServerConfig
    from desktop.engine.server.pool import ServedModel

    catalog = [ServedModel("tiny-gpt-oss", str(gpt_oss.path), None, "tiny gpt-oss")]
    with EngineClient() as local:
        server = LocalServer(local, ServerConfig(port=0, n_ctx=2048), catalog=lambda: catalog)
        server.start()
        url = server.base_url
        try:
            oa = openai.OpenAI(base_url=url, api_key="none", max_retries=0)
            msgs = [{"role": "user", "content": "Say hi."}]
            r = oa.chat.completions.create(model="tiny-gpt-oss", messages=msgs, max_tokens=64)
            msg = r.choices[0].message
            assert (msg.content, msg.model_extra.get("reasoning_content")) == ("Hi there!", "Hmm")
            stream = oa.chat.completions.create(model="tiny-gpt-oss", messages=msgs, max_tokens=64, stream=True)
            deltas = [c.choices[0].delta for c in stream if c.choices]
            assert "".join(d.content or "" for d in deltas) == "Hi there!"
            assert "".join((d.model_extra or {}).get("reasoning_content") or "" for d in deltas) == "Hmm"
            ol = ollama.Client(host=url.removesuffix("/v1"))
            whole = ol.chat(model="tiny-gpt-oss", messages=msgs, options={"num_predict": 64})
            assert (whole.message.content, whole.message.thinking) == ("Hi there!", "Hmm")
            parts = list(ol.chat(model="tiny-gpt-oss", messages=msgs, options={"num_predict": 64}, stream=True))
            assert "".join(p.message.thinking or "" for p in parts) == "Hmm"
            assert "".join(p.message.content or "" for p in parts) == "Hi there!"
            with EngineClient() as remote:
                loaded = remote.load(P.Load(id=new_id("load"), model_path="", n_ctx=2048,
                                            backend={"kind": "openai", "base_url": url, "model": "tiny-gpt-oss"}))
                gen = registry.generate_request(None, msgs, new_id("gen"), max_tokens=64)
                evs = list(remote.generate(gen))
            fin = evs[-1]
            assert loaded.backend and isinstance(fin, P.Finished), evs
            assert (fin.text, fin.reasoning) == ("Hi there!", "Hmm")
            assert "".join(e.reasoning for e in evs if isinstance(e, P.TokenChunk)) == "Hmm"
        finally:
            server.stop()
