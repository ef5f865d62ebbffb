"""The local server against the official clients people point at it: the ``openai`` and ``ollama`` packages.

One server over one real engine offers the demo model (SmolLM2-135M) and a scripted GGUF whose answers are
exact (tests/fixtures/tool_gguf.py: round 1 calls ``add(a=2, b=3)``, round 2 answers "The sum is 5."), so tool
calls are checked to the character. The clients parse every answer into their own typed objects, so a field that
is missing or misnamed fails here.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

pytest.importorskip("openai")
pytest.importorskip("ollama")

import ollama  # noqa: E402
import openai  # noqa: E402
from pydantic import BaseModel  # noqa: E402

from desktop.engine.inference.client import EngineClient  # noqa: E402
from desktop.engine.server.config import ServerConfig  # noqa: E402
from desktop.engine.server.app import LocalServer  # noqa: E402
from desktop.engine.server.pool import ServedModel  # noqa: E402
from tests.fixtures import tool_gguf  # noqa: E402

pytestmark = pytest.mark.integration

ADD_TOOL = {"type": "function", "function": {"name": "add", "description": "Add two integers.", "parameters": {
    "type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}, "required": ["a", "b"]}}}


class Served:
    def __init__(self, server: LocalServer, log: list[Any]) -> None:
        self.server, self.log = server, log
        self.openai = openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0, timeout=120)
        self.ollama = ollama.Client(host=server.base_url.removesuffix("/v1"), timeout=120)


@pytest.fixture(scope="module")
def served(demo_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    from desktop.engine.profiles import ProfileStore

    mp = pytest.MonkeyPatch()
    home = tmp_path_factory.mktemp("server-home")
    for var in ("XDG_DATA_HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME"):
        mp.setenv(var, str(home / var.lower()))
    hermes = tool_gguf.make_hermes(tmp_path_factory.mktemp("tools") / "hermes.gguf")
    catalog = [ServedModel("demo", str(demo_model), ProfileStore().default(), "SmolLM2 demo"),
               ServedModel("tools", str(hermes.path), None, "tiny hermes")]
    log: list[Any] = []
    client = EngineClient()
    server = LocalServer(client, ServerConfig(port=0, n_ctx=2048), catalog=lambda: catalog, on_request=log.append)
    server.start()
    yield Served(server, log)
    server.stop()
    client.close()
    mp.undo()


# ---------------------------------------------------------------------------------------------- openai


def test_openai_lists_models_and_chats(served: Served) -> None:
    assert [m.id for m in served.openai.models.list().data] == ["demo", "tools"]
    r = served.openai.chat.completions.create(model="demo", messages=[{"role": "user", "content": "Say hi."}],
                                              max_tokens=12, temperature=0)
    assert r.object == "chat.completion" and r.model == "demo"
    assert r.choices[0].message.role == "assistant" and r.choices[0].message.content.strip()
    assert r.choices[0].finish_reason in ("stop", "length")
    assert r.usage.prompt_tokens > 0 and 0 < r.usage.completion_tokens <= 12
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    deadline = time.monotonic() + 5  # the log is written just after the answer is sent
    while not (served.log and served.log[-1].path == "/v1/chat/completions") and time.monotonic() < deadline:
        time.sleep(0.02)
    entry = served.log[-1]
    assert (entry.api, entry.path, entry.status, entry.model) == ("openai", "/v1/chat/completions", 200, "demo")
    assert entry.completion_tokens == r.usage.completion_tokens and entry.tokens_per_s > 0
    assert served.server.loaded_model == "demo"


def test_openai_stream_with_usage(served: Served) -> None:
    stream = served.openai.chat.completions.create(
        model="demo", messages=[{"role": "user", "content": "Count to five."}], max_tokens=16, temperature=0,
        stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip()
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] in ("stop", "length")
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0  # the usage chunk comes last
    whole = served.openai.chat.completions.create(model="demo", messages=[{"role": "user", "content": "Count to five."}],
                                                  max_tokens=16, temperature=0)
    assert whole.choices[0].message.content == text  # greedy: streamed and whole agree


class City(BaseModel):
    name: str
    population: int


def test_openai_parse_enforces_the_schema(served: Served) -> None:
    r = served.openai.chat.completions.parse(
        model="demo", messages=[{"role": "user", "content": "Describe Paris as JSON."}], response_format=City,
        max_tokens=80, temperature=0)
    city = r.choices[0].message.parsed
    assert isinstance(city, City) and city.name
    obj = served.openai.chat.completions.create(
        model="demo", messages=[{"role": "user", "content": "Give me a JSON object."}],
        response_format={"type": "json_object"}, max_tokens=60, temperature=0)
    assert isinstance(json.loads(obj.choices[0].message.content), dict)


def test_openai_tools_answer_tool_calls_in_the_models_own_format(served: Served) -> None:
    msgs: list[Any] = [{"role": "user", "content": "What is 2 + 3?"}]
    r = served.openai.chat.completions.create(model="tools", messages=msgs, tools=[ADD_TOOL], temperature=0)
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls" and not choice.message.content
    (call,) = choice.message.tool_calls
    assert call.type == "function" and call.function.name == "add"
    assert json.loads(call.function.arguments) == tool_gguf.CALL_ARGS and call.id
    msgs += [choice.message.model_dump(exclude_none=True),
             {"role": "tool", "tool_call_id": call.id, "content": "5"}]
    r2 = served.openai.chat.completions.create(model="tools", messages=msgs, tools=[ADD_TOOL], temperature=0)
    assert r2.choices[0].message.content == tool_gguf.ANSWER and r2.choices[0].finish_reason == "stop"
    # Streamed: no call text leaks into content; the call arrives as a tool_calls delta.
    chunks = list(served.openai.chat.completions.create(model="tools", messages=msgs[:1], tools=[ADD_TOOL],
                                                        temperature=0, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == ""
    deltas = [tc for c in chunks for tc in (c.choices[0].delta.tool_calls or [])]
    assert [d.function.name for d in deltas] == ["add"] and json.loads(deltas[0].function.arguments) == {"a": 2, "b": 3}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_openai_completions_and_embeddings(served: Served) -> None:
    c = served.openai.completions.create(model="demo", prompt="The capital of France is", max_tokens=5, temperature=0)
    assert c.object == "text_completion" and c.choices[0].text and c.usage.completion_tokens <= 5
    e = served.openai.embeddings.create(model="demo", input=["hello world", "a cat"])  # base64 by default
    vecs = [d.embedding for d in e.data]
    assert [d.index for d in e.data] == [0, 1] and len(vecs[0]) == 576 == len(vecs[1])  # SmolLM2-135M: n_embd 576
    assert abs(sum(x * x for x in vecs[0]) - 1.0) < 1e-3 and vecs[0] != vecs[1]
    assert e.usage.prompt_tokens > 0 and served.server.pool.loaded_for_embedding
    again = served.openai.embeddings.create(model="demo", input="hello world", encoding_format="float")
    assert max(abs(a - b) for a, b in zip(again.data[0].embedding, vecs[0])) < 1e-4
    # Back to generating: the model is loaded again for text.
    r = served.openai.chat.completions.create(model="demo", messages=[{"role": "user", "content": "hi"}], max_tokens=4)
    assert r.choices[0].message.content is not None and not served.server.pool.loaded_for_embedding


def test_openai_responses_text_stream_and_function_tools(served: Served) -> None:
    r = served.openai.responses.create(model="demo", input="Say hello.", instructions="Be brief.",
                                       max_output_tokens=10, temperature=0)
    assert r.object == "response" and r.status in ("completed", "incomplete") and r.output_text.strip()
    assert r.usage.output_tokens > 0 and r.output[0].type == "message"
    events = list(served.openai.responses.create(model="demo", input="Say hello.", instructions="Be brief.",
                                                 max_output_tokens=10, temperature=0, stream=True))
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"] and kinds[-1] in (
        "response.completed", "response.incomplete")
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert deltas == r.output_text == events[-1].response.output_text
    tool = {"type": "function", "name": "add", "description": "Add two integers.",
            "parameters": ADD_TOOL["function"]["parameters"]}
    r = served.openai.responses.create(model="tools", input="What is 2 + 3?", tools=[tool], temperature=0)
    (call,) = [o for o in r.output if o.type == "function_call"]
    assert call.name == "add" and json.loads(call.arguments) == tool_gguf.CALL_ARGS and call.call_id
    r2 = served.openai.responses.create(model="tools", tools=[tool], temperature=0, input=[
        {"role": "user", "content": "What is 2 + 3?"},
        {"type": "function_call", "call_id": call.call_id, "name": "add", "arguments": call.arguments},
        {"type": "function_call_output", "call_id": call.call_id, "output": "5"}])
    assert r2.output_text == tool_gguf.ANSWER
    events = list(served.openai.responses.create(model="tools", input="What is 2 + 3?", tools=[tool], temperature=0,
                                                 stream=True))
    done = [e for e in events if e.type == "response.function_call_arguments.done"]
    assert len(done) == 1 and json.loads(done[0].arguments) == tool_gguf.CALL_ARGS
    assert not [e for e in events if e.type == "response.output_text.delta"]  # no call text leaks as text
    final = events[-1].response
    assert events[-1].type == "response.completed" and [o.type for o in final.output] == ["function_call"]


def test_openai_errors_name_the_field(served: Served) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        served.openai.chat.completions.create(model="demo", messages=[{"role": "user", "content": "hi"}],
                                              response_format={"type": "xml"})
    assert info.value.body["param"] == "response_format"
    with pytest.raises(openai.NotFoundError):
        served.openai.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.BadRequestError) as info:
        served.openai.chat.completions.create(model="demo", messages=[{"role": "user", "content": "hi"}],
                                              tools=[{"type": "function", "function": {"description": "no name"}}])
    assert info.value.body["param"] == "tools[0].name"
    # Unknown fields are ignored, as OpenAI does.
    r = served.openai.chat.completions.create(model="demo", messages=[{"role": "user", "content": "hi"}],
                                              max_tokens=3, extra_body={"frobnicate": 1, "logit_bias": {}})
    assert r.choices[0].message.content is not None


# ---------------------------------------------------------------------------------------------- ollama


def test_ollama_list_chat_generate_embed(served: Served) -> None:
    listed = served.ollama.list()
    assert [m.model for m in listed.models] == ["demo", "tools"] and listed.models[0].size > 0
    assert listed.models[0].details.format == "gguf"
    parts = list(served.ollama.chat(model="demo", messages=[{"role": "user", "content": "Say hi."}], stream=True,
                                    options={"temperature": 0, "num_predict": 12}))
    assert all(p.message.role == "assistant" for p in parts) and parts[-1].done and not any(p.done for p in parts[:-1])
    text = "".join(p.message.content for p in parts)
    assert text.strip() and parts[-1].eval_count > 0 and parts[-1].prompt_eval_count > 0
    assert parts[-1].done_reason in ("stop", "length")
    whole = served.ollama.chat(model="demo:latest", messages=[{"role": "user", "content": "Say hi."}],
                               options={"temperature": 0, "num_predict": 12})
    assert whole.message.content == text and whole.done
    g = served.ollama.generate(model="demo", prompt="The capital of France is", options={"num_predict": 6,
                                                                                        "temperature": 0})
    assert g.response and g.done and g.eval_count <= 6
    streamed = "".join(p.response for p in served.ollama.generate(
        model="demo", prompt="The capital of France is", options={"num_predict": 6, "temperature": 0}, stream=True))
    assert streamed == g.response
    e = served.ollama.embed(model="demo", input=["hello world", "a cat"])
    assert len(e.embeddings) == 2 and len(e.embeddings[0]) == 576 and e.prompt_eval_count > 0


def test_ollama_tools_and_format(served: Served) -> None:
    r = served.ollama.chat(model="tools", messages=[{"role": "user", "content": "What is 2 + 3?"}], tools=[ADD_TOOL],
                           options={"temperature": 0})
    (call,) = r.message.tool_calls
    assert call.function.name == "add" and dict(call.function.arguments) == tool_gguf.CALL_ARGS
    r2 = served.ollama.chat(model="tools", tools=[ADD_TOOL], options={"temperature": 0}, messages=[
        {"role": "user", "content": "What is 2 + 3?"}, r.message, {"role": "tool", "content": "5", "tool_name": "add"}])
    assert r2.message.content == tool_gguf.ANSWER and not r2.message.tool_calls
    r = served.ollama.chat(model="demo", messages=[{"role": "user", "content": "Describe Paris."}],
                           format=City.model_json_schema(), options={"temperature": 0, "num_predict": 80})
    assert City.model_validate_json(r.message.content).name
    with pytest.raises(ollama.ResponseError) as info:
        served.ollama.chat(model="nope", messages=[{"role": "user", "content": "hi"}])
    assert info.value.status_code == 404 and "nope" in info.value.error


def test_bad_input_gets_each_apis_error_and_the_server_keeps_serving(served: Served) -> None:
    bad_schema = {"type": "object", "properties": {"a": {"type": "string", "pattern": "(unclosed"}}}
    with pytest.raises(openai.BadRequestError) as info:
        served.openai.chat.completions.create(
            model="demo", messages=[{"role": "user", "content": "hi"}], max_tokens=5,
            response_format={"type": "json_schema", "json_schema": {"name": "bad", "schema": bad_schema}})
    assert info.value.body["param"] == "response_format" and info.value.body["code"] == "invalid_grammar"
    with pytest.raises(ollama.ResponseError) as oinfo:
        served.ollama.chat(model="demo", messages=[{"role": "user", "content": "hi"}], format=bad_schema)
    assert oinfo.value.status_code == 400 and "grammar" in oinfo.value.error
    huge = "word " * 200_000  # 1 MB, far beyond the 2048-token context
    with pytest.raises(openai.BadRequestError) as info:
        served.openai.chat.completions.create(model="demo", messages=[{"role": "user", "content": huge}], max_tokens=5)
    assert info.value.body["code"] in ("context_overflow", "template_error")
    with pytest.raises(ollama.ResponseError) as oinfo:
        served.ollama.generate(model="demo", prompt=huge, options={"num_predict": 5})
    assert oinfo.value.status_code == 400
    r = served.openai.chat.completions.create(model="demo", messages=[{"role": "user", "content": "hi"}], max_tokens=4)
    assert r.choices[0].message.content is not None
