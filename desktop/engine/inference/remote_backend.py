"""The remote backend: a profile's chat runs on an existing OpenAI-compatible server.

llama.cpp's ``llama-server``, vLLM, Ollama and llama-cpp-python's own server all speak
``/v1/models`` and ``/v1/chat/completions`` with ``stream: true`` (server-sent events). This module
maps a :class:`~desktop.engine.inference.protocol.Generate` onto that API and the stream back onto the same
TokenChunk/Finished events the local backend yields, so stop, stats, crash handling and everything
downstream are unchanged.

:class:`RemoteBackend` runs inside the engine process (``host`` picks it when a Load carries a
``backend`` section), on that process's main thread; ``cancel`` is checked between stream chunks.
:func:`check_connection` is a plain function that runs on the caller's thread (CLI, or a GUI worker
thread: it blocks for up to the profile's timeout). No llama_cpp, no Qt.

The API key is never in a profile or in the protocol: it is read here from the environment variable
the profile names, or from the system keyring when the optional ``keyring`` package is installed.
"""
from __future__ import annotations

import json
import os
import socket
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Iterator
from urllib.parse import urlsplit

import httpx

from desktop.engine.inference import prompts
from desktop.engine.errors import (
    AppError,
    GenerationError,
    RemoteAuthError,
    RemoteConnectionError,
    RemoteError,
    RemoteModelError,
    RemoteStreamError,
    RemoteTimeoutError,
)
from desktop.engine.profiles import BackendSpec, Profile
from desktop.engine.inference.protocol import Finished, Generate, GenerationStats, Load, Loaded, TokenChunk
from desktop.engine.inference.stops import StopScanner

BACKEND_NAME = "remote"
KEYRING_USER = "api_key"  # the keyring entry: keyring.get_password(backend.keyring_service, "api_key")


# ---------------------------------------------------------------------------------------------- settings


def spec_from(obj: Profile | BackendSpec | dict[str, Any]) -> BackendSpec:
    """The BackendSpec of a profile, or one rebuilt from the dict a Load carries."""
    if isinstance(obj, Profile):
        return obj.backend
    if isinstance(obj, BackendSpec):
        return obj
    return BackendSpec(**{k: v for k, v in obj.items() if k in BackendSpec.__dataclass_fields__})


def api_root(base_url: str) -> str:
    """``base_url`` without a trailing slash; a bare ``http://host:port`` gets the usual ``/v1``."""
    url = base_url.strip().rstrip("/")
    if urlsplit(url).path in ("", "/"):
        url += "/v1"
    return url


def api_key(spec: BackendSpec) -> str | None:
    """The key from ``api_key_env``, else from the keyring (only if the package is importable)."""
    if spec.api_key_env:
        value = os.environ.get(spec.api_key_env, "").strip()
        if value:
            return value
    if spec.keyring_service:
        try:
            import keyring  # optional: never a dependency
        except ImportError:
            return None
        try:
            return keyring.get_password(spec.keyring_service, KEYRING_USER) or None
        except Exception:  # noqa: BLE001 - a locked or absent keyring backend means "no key", not a crash
            return None
    return None


def _headers(spec: BackendSpec) -> dict[str, str]:
    h = {"Accept": "application/json"}
    key = api_key(spec)
    if key:
        h["Authorization"] = f"Bearer {key}"
    return h


def _client(spec: BackendSpec) -> httpx.Client:
    # Connecting should be quick even when answers are slow; the read timeout is the gap allowed
    # between two bytes, so a long answer that keeps streaming never times out.
    t = float(spec.timeout_s)
    return httpx.Client(timeout=httpx.Timeout(t, connect=min(t, 10.0)), headers=_headers(spec),
                        follow_redirects=True, trust_env=False)


# ---------------------------------------------------------------------------------------------- errors


def _auth_hint(spec: BackendSpec) -> str:
    if spec.api_key_env and os.environ.get(spec.api_key_env, "").strip():
        return f"the key in the environment variable {spec.api_key_env} was refused; set it to a valid key"
    if spec.api_key_env:
        return f"set the environment variable {spec.api_key_env} to its API key"
    if spec.keyring_service:
        return (f"store its API key with `keyring set {spec.keyring_service} {KEYRING_USER}` (the keyring package "
                "must be installed), or name an environment variable in backend.api_key_env")
    return "name an environment variable holding its API key in the profile's backend.api_key_env"


def _translate(exc: httpx.HTTPError, spec: BackendSpec, root: str) -> RemoteError:
    """One sentence for a transport failure (the caller raises it ``from exc``)."""
    if isinstance(exc, httpx.TimeoutException):
        phase = "connect" if isinstance(exc, httpx.ConnectTimeout) else "answer"
        return RemoteTimeoutError(f"the server at {root} did not {phase} within {spec.timeout_s:g} s "
                                  "(backend.timeout_s)")
    if isinstance(exc, httpx.ConnectError):
        text = str(exc)
        why = "connection refused; is the server running there?" if "refused" in text.lower() else text
        return RemoteConnectionError(f"could not connect to {root}: {why}")
    return RemoteError(f"talking to {root} failed: {exc}")


def _server_message(resp: httpx.Response) -> str:
    try:
        resp.read()
    except httpx.HTTPError:
        return ""
    try:
        data = resp.json()
    except ValueError:
        return resp.text[:200].strip()
    err = data.get("error", data.get("detail", data)) if isinstance(data, dict) else data
    if isinstance(err, dict):
        err = err.get("message", err)
    return str(err)[:300]


def _raise_for_status(resp: httpx.Response, spec: BackendSpec, root: str, model: str = "") -> None:
    if resp.status_code < 400:
        return
    msg = _server_message(resp)
    if resp.status_code in (401, 403):
        raise RemoteAuthError(f"the server at {root} rejected the request ({resp.status_code}): {_auth_hint(spec)}")
    if resp.status_code == 404 and model and "model" in msg.lower():
        raise RemoteModelError(f"the server at {root} has no model {model!r}: {msg}")
    raise RemoteError(f"the server at {root} answered {resp.status_code} {resp.reason_phrase}"
                      + (f": {msg}" if msg else ""))


def list_models(client: httpx.Client, spec: BackendSpec) -> list[str] | None:
    """The ids ``/models`` lists, or None when the server has no such endpoint."""
    root = api_root(spec.base_url)
    try:
        resp = client.get(f"{root}/models")
    except httpx.HTTPError as exc:
        raise _translate(exc, spec, root) from exc
    if resp.status_code in (404, 405):
        return None
    _raise_for_status(resp, spec, root)
    try:
        data = resp.json()
        return [str(m["id"]) for m in data.get("data", [])]
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise RemoteError(f"the server at {root} is not OpenAI-compatible: /models returned no model list") from exc


def _pick_model(spec: BackendSpec, available: list[str] | None, root: str) -> str:
    if available is None:
        if not spec.model:
            raise RemoteModelError(f"the server at {root} lists no models; set backend.model in the profile")
        return spec.model
    if not spec.model:
        if not available:
            raise RemoteModelError(f"the server at {root} serves no model")
        return available[0]
    if spec.model not in available:
        have = ", ".join(available) if available else "none"
        raise RemoteModelError(f"the server at {root} has no model {spec.model!r} (it has: {have})")
    return spec.model


# ---------------------------------------------------------------------------------------------- check


@dataclass
class RemoteCheck:
    """The outcome of :func:`check_connection`; ``error`` is one sentence when ``ok`` is False."""

    ok: bool
    base_url: str
    model: str
    models: list[str] = field(default_factory=list)
    latency_ms: float | None = None
    error: str | None = None
    error_code: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_connection(profile: Profile | BackendSpec) -> RemoteCheck:
    """List the server's models and time it. Never raises for a server problem: it is reported.

    Runs on the caller's thread and blocks for up to the profile's ``timeout_s``.
    """
    spec = spec_from(profile)
    root = api_root(spec.base_url)
    result = RemoteCheck(ok=False, base_url=root, model=spec.model)
    try:
        with _client(spec) as client:
            t0 = time.perf_counter()
            available = list_models(client, spec)
            result.latency_ms = round((time.perf_counter() - t0) * 1000.0, 1)
        result.models = available or []
        result.model = _pick_model(spec, available, root)
        result.ok = True
    except AppError as exc:
        result.error, result.error_code = exc.message, exc.code
    return result


# ---------------------------------------------------------------------------------------------- backend


def _with_image_parts(msgs: list[dict[str, Any]], source: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Messages whose source carries ``images`` get OpenAI content parts: the text, then one ``image_url`` data
    URL per image (the server decides whether its model can see; a text-only one answers with its own error)."""
    if not any(m.get("images") for m in source):
        return msgs
    from desktop.engine.vision import images

    offset = len(msgs) - len(source)  # a default system prompt may have been put in front
    out = []
    for i, m in enumerate(msgs):
        src = source[i - offset] if i >= offset else {}
        m = {k: v for k, v in m.items() if k != "images"}
        if src.get("images"):
            parts: list[dict[str, Any]] = [{"type": "text", "text": str(m.get("content") or "")}]
            for path in src["images"]:
                url = images.to_data_url(images.read_image_file(path))
                parts.append({"type": "image_url", "image_url": {"url": url}})
            m["content"] = parts
        out.append(m)
    return out


def _sse_data(lines: Iterator[str]) -> Iterator[str | None]:
    """The ``data:`` payloads of an event stream; None for comments/keep-alives (a chance to cancel)."""
    for line in lines:
        if line.startswith("data:"):
            yield line[5:].strip()
        else:
            yield None


class _StopOnCancel:
    """Stop while the server is silent: the read is blocked in the socket, where the cancel flag is never
    looked at. A watcher thread shuts the socket down when the flag is set, so the read returns at once and
    the answer ends "cancelled" (the client's kill-after-1.5 s watchdog stays the last resort)."""

    def __init__(self, cancel: threading.Event) -> None:
        self.cancel = cancel
        self.fired = False
        self._done = threading.Event()

    def watch(self, resp: httpx.Response) -> None:
        try:
            sock = resp.extensions["network_stream"].get_extra_info("socket")
        except Exception:  # noqa: BLE001 - another transport: only the watchdog then
            return
        if not isinstance(sock, socket.socket):
            return

        def run() -> None:
            while not self._done.wait(0.05):
                if self.cancel.is_set():
                    self.fired = True
                    try:
                        sock.shutdown(socket.SHUT_RDWR)  # close() alone does not wake a blocked recv on Linux
                    except OSError:
                        pass
                    return

        threading.Thread(target=run, daemon=True, name="remote-stop").start()

    def close(self) -> None:
        self._done.set()


class RemoteBackend:
    """One server + model. Same surface as ``LlamaBackend`` (load, generate, close, loaded).

    Not thread-safe: the engine's main thread owns it; ``cancel`` is set by the host's reader thread.
    """

    def __init__(self) -> None:
        self.spec: BackendSpec | None = None
        self.model = ""
        self.root = ""
        self.loaded: Loaded | None = None
        self._client: httpx.Client | None = None
        # The host's load progress sink (same surface as LlamaBackend); a server check has no fractions, so
        # the host only sends the final 1.0. A silent server during Stop is ended by the client's watchdog.
        self.on_progress: Any = None

    def load(self, req: Load) -> Loaded:
        """Check the server answers and serves the model; nothing is transferred."""
        self.close()
        spec = spec_from(req.backend or {})
        root = api_root(spec.base_url)
        client = _client(spec)
        t0 = time.perf_counter()
        try:
            model = _pick_model(spec, list_models(client, spec), root)
        except BaseException:
            client.close()
            raise
        self.spec, self.root, self.model, self._client = spec, root, model, client
        self.loaded = Loaded(
            id=req.id, model_path="", n_ctx=req.n_ctx, n_ctx_train=0, n_gpu_layers=0, backend=BACKEND_NAME,
            load_s=time.perf_counter() - t0, eog_ids=[], eot_128009_is_eog=None, kv_overrides={},
            description=f"{model} at {root}",
            notes=["the server applies its own chat template; the profile's prompt format and stop tokens "
                   "are not used, its system prompt, sampling and stop strings are"],
        )
        return self.loaded

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
        self._client = None
        self.loaded = None

    def _body(self, req: Generate) -> tuple[str, dict[str, Any]]:
        body: dict[str, Any] = {
            "model": self.model, "stream": True, "stream_options": {"include_usage": True},
            "temperature": req.temperature, "top_p": req.top_p, "max_tokens": req.max_tokens,
            # Not in OpenAI's API, but llama.cpp servers (and vLLM for top_k/min_p) take them; others ignore them.
            "top_k": req.top_k, "min_p": req.min_p, "repeat_penalty": req.repeat_penalty,
        }
        if req.seed is not None and req.seed >= 0:
            body["seed"] = req.seed
        stops = [s for s in req.stop_strings if s]
        if stops:
            body["stop"] = stops
        if req.prompt is not None:
            body["prompt"] = req.prompt
            return "completions", body
        if req.tools or any(m.get("role") == "tool" or m.get("tool_calls") for m in req.messages):
            # A tool exchange (desktop/engine/tools): the messages already have the Chat Completions shape.
            msgs = prompts.with_default_system([dict(m) for m in req.messages], req.prompt_spec.get("system_prompt", ""))
            if req.tools:
                body["tools"] = req.tools
        else:
            msgs = prompts.with_default_system(prompts.checked_messages(req.messages), req.prompt_spec.get("system_prompt", ""))
        body["messages"] = _with_image_parts(msgs, req.messages)
        return "chat/completions", body

    def generate(self, req: Generate, cancel: threading.Event) -> Iterator[TokenChunk | Finished]:
        """Yield one TokenChunk per streamed delta, then one Finished; raise RemoteError on failure.

        Every chunk is yielded as soon as it arrives, so when the stream breaks the caller already
        holds all the text received (the host flushes it before the Failed event).
        """
        if self._client is None or self.spec is None or self.loaded is None:
            raise GenerationError("no model is loaded")
        spec, root = self.spec, self.root
        endpoint, body = self._body(req)
        # The server applies the stop strings too; applying them here as well ends the answer the same
        # way the local backend does, whatever the server's own rules.
        scanner = StopScanner(body.get("stop", []))
        t0 = time.perf_counter()
        n_gen, ttft, t_first = 0, 0.0, 0.0
        finish: str | None = None
        usage: dict[str, Any] = {}
        done = False
        stopper = _StopOnCancel(cancel)
        calls: dict[int, dict[str, str]] = {}  # streamed tool_call deltas, by index
        thought: list[str] = []  # the thinking a server parsed out (llama-server, vLLM, Ollama)
        try:
            with self._client.stream("POST", f"{root}/{endpoint}", json=body) as resp:
                _raise_for_status(resp, spec, root, self.model)
                stopper.watch(resp)
                for data in _sse_data(resp.iter_lines()):
                    if cancel.is_set():
                        finish = "cancelled"
                        break  # leaving the block closes the connection: the server stops generating
                    if data is None:
                        continue
                    if data == "[DONE]":
                        done = True
                        break
                    try:
                        obj = json.loads(data)
                    except ValueError:
                        continue
                    if obj.get("error"):
                        err = obj["error"]
                        raise RemoteError(f"the server at {root} failed mid-answer: "
                                          f"{err.get('message', err) if isinstance(err, dict) else err}")
                    if obj.get("usage"):
                        usage = obj["usage"]
                    choices = obj.get("choices") or []
                    if not choices:
                        continue
                    ch = choices[0]
                    for tc in (ch.get("delta") or {}).get("tool_calls") or []:
                        slot = calls.setdefault(int(tc.get("index", len(calls))), {"id": "", "name": "", "arguments": ""})
                        fn = tc.get("function") or {}
                        slot["id"] = tc.get("id") or slot["id"]
                        slot["name"] += fn.get("name") or ""
                        slot["arguments"] += fn.get("arguments") or ""
                    delta = ch.get("delta") or {}
                    # llama-server and DeepSeek send the thinking as reasoning_content, vLLM and Ollama as reasoning
                    r_piece = delta.get("reasoning_content") or delta.get("reasoning")
                    if isinstance(r_piece, str) and r_piece:
                        if n_gen == 0:
                            t_first = time.perf_counter()
                            ttft = t_first - t0
                        n_gen += 1
                        thought.append(r_piece)
                        yield TokenChunk(req.id, "", 1, r_piece)
                    piece = delta.get("content") if endpoint == "chat/completions" else ch.get("text")
                    if piece:
                        if n_gen == 0:
                            t_first = time.perf_counter()
                            ttft = t_first - t0
                        n_gen += 1
                        shown = scanner.feed(piece)
                        if shown:
                            yield TokenChunk(req.id, shown, 1)
                        if scanner.stopped:
                            finish = "stop"
                            break
                    if ch.get("finish_reason"):
                        finish = "length" if ch["finish_reason"] == "length" else "stop"
                        # keep reading: a usage chunk and [DONE] may follow
        except httpx.HTTPError as exc:
            if stopper.fired:
                finish = "cancelled"  # Stop shut the socket of a server that had gone quiet
            elif n_gen or isinstance(exc, (httpx.RemoteProtocolError, httpx.ReadError)):
                if isinstance(exc, httpx.TimeoutException):
                    raise RemoteTimeoutError(
                        f"the server at {root} stopped sending for {spec.timeout_s:g} s (backend.timeout_s) after "
                        f"{n_gen} chunks; the partial answer is kept") from exc
                if not n_gen:
                    raise RemoteStreamError(f"the server at {root} closed the connection before answering "
                                            f"({type(exc).__name__})") from exc
                raise RemoteStreamError(f"the server at {root} cut the answer off after {n_gen} chunks "
                                        f"({type(exc).__name__}); the partial answer is kept") from exc
            else:
                raise _translate(exc, spec, root) from exc
        finally:
            stopper.close()
        if finish is None and stopper.fired:
            finish = "cancelled"  # the shut-down socket read as the end of the body
        if finish is None:
            if not done:
                raise RemoteStreamError(f"the server at {root} ended the stream mid-answer after {n_gen} chunks; "
                                        "the partial answer is kept")
            finish = "stop"
        if not scanner.stopped:
            rest = scanner.rest()  # held back as a possible stop-string prefix, never completed
            if rest:
                yield TokenChunk(req.id, rest, 0)
        t_end = time.perf_counter()
        decode_s = t_end - t_first if n_gen > 1 else 0.0
        generated = int(usage.get("completion_tokens") or n_gen) if finish != "cancelled" else n_gen
        prompt_tokens = int(usage.get("prompt_tokens") or 0)
        stats = GenerationStats(
            ttft_s=ttft, prompt_tokens=prompt_tokens, prompt_eval_tokens=prompt_tokens, generated_tokens=generated,
            tokens_per_s=((generated - 1) / decode_s) if decode_s > 0 and generated > 1 else 0.0,
            total_s=t_end - t0, context_used=prompt_tokens + generated, context_total=self.loaded.n_ctx,
            backend=BACKEND_NAME, gpu_layers=0, seed=body.get("seed", -1),  # -1: the server picked one
        )
        answer = scanner.text[:scanner.emitted]
        reasoning = "".join(thought).strip()
        yield Finished(req.id, answer, finish, stats, [], None,
                       [calls[i] for i in sorted(calls) if calls[i]["name"]], reasoning=reasoning,
                       stopped_thinking=finish == "length" and bool(reasoning) and not answer.strip())


__all__ = ["RemoteBackend", "RemoteCheck", "check_connection", "api_root", "api_key", "list_models", "spec_from"]
