"""``--selftest`` and ``--smoke-gui``: prove an installed (or frozen) app works on this machine.

``desktop-chat --selftest`` runs headless: it starts the engine process the way the app does (the same
executable with ``--engine-worker``), loads the demo model (or, when it is not installed, a tiny *scripted*
GGUF written here at run time), streams an answer, and prints the backend, the GPU-layer choice with its
reason, and tok/s. It exits 0 only if every step worked (and, for the scripted model, the answer is exactly
the scripted one).

``desktop-chat --smoke-gui SECONDS`` opens the main window for SECONDS, processes events, and exits 0 only if
the Qt platform plugin loaded and the window was shown (and the default model loaded, when it is installed).

Runs in the caller's process, main thread. The scripted model writer is a compact copy of the idea in
``tests/fixtures/tiny_gguf.py`` (see there for why it works): blocks write zeros into the residual stream, so
only the last prompt token picks the next token, and a chain of basis vectors makes greedy decoding walk a
fixed reply. The SPM/Mistral flavour is used: the prompt ``[INST] ... [/INST]`` ends in ``]``.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# --------------------------------------------------------------------------------------------- scripted GGUF

MISTRAL_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}"
    "{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}"
    "{{ message['content'] + eos_token }}{% endif %}{% endfor %}"
)
SELFTEST_REPLY = "Self-test passed."
_SPACE = "\u2581"
_SPLIT = re.compile(r"\u2581?[^\W\d_]+|\u2581?\d|\u2581|.", re.S)
# Model shapes for the scripted file. "tiny" loads and answers in well under a second; "smollm2" has the
# demo model's shape and quant mix (Q4_1 blocks, Q8_0 embeddings), so its tok/s stands in for the demo's
# where the demo cannot be carried (the GPU machine); "1b" is TinyLlama-1.1B's shape in f16.
SHAPES: dict[str, dict[str, Any]] = {
    "tiny": dict(n_embd=32, n_layer=2, n_head=4, n_head_kv=4, n_ff=64, n_vocab=32000, quant="f16"),
    "smollm2": dict(n_embd=576, n_layer=30, n_head=9, n_head_kv=3, n_ff=1536, n_vocab=49152, quant="q4_1"),
    "1b": dict(n_embd=2048, n_layer=22, n_head=32, n_head_kv=4, n_ff=5632, n_vocab=32000, quant="f16"),
}


def _bench_reply(n_words: int) -> str:
    """A reply of ``n_words`` distinct letters-only words (each becomes one token of the chain)."""
    words = []
    letters = "abcdefghijklmnopqrstuvwxyz"
    for i in range(n_words):
        w, k = "", i + 27
        while k:
            k, r = divmod(k, 26)
            w = letters[r] + w
        words.append(w)
    return " ".join(words)


def write_scripted_model(path: str | Path, shape: str = "tiny", reply: str = SELFTEST_REPLY) -> tuple[Path, str]:
    """Write a scripted SPM GGUF at ``path``; returns (path, the exact text greedy decoding streams)."""
    import gguf
    import numpy as np

    cfg = SHAPES[shape]
    path = Path(path)
    tokens: list[str] = []
    types: list[int] = []
    index: dict[str, int] = {}

    def add(text: str, ttype: int = int(gguf.TokenType.NORMAL)) -> int:
        index[text] = len(tokens)
        tokens.append(text)
        types.append(ttype)
        return index[text]

    control, byte = int(gguf.TokenType.CONTROL), int(gguf.TokenType.BYTE)
    add("<unk>", int(gguf.TokenType.UNKNOWN))
    add("<s>", control)
    add("</s>", control)
    for b in range(256):
        add(f"<0x{b:02X}>", byte)
    add(_SPACE)
    for c in range(0x21, 0x7F):
        add(chr(c))
    entries = [index["]"], index["<0x0A>"]]
    pieces = _SPLIT.findall(reply.replace(" ", _SPACE))
    ids = []
    for p in pieces:
        for k in range(1, len(p) + 1):  # every prefix, so SPM could also build the piece
            if p[:k] not in index:
                add(p[:k])
        ids.append(index[p])
    if len(set(ids)) != len(ids) or set(ids) & set(entries):
        raise ValueError("a scripted reply needs distinct pieces and no ']' or newline")
    i = len(tokens)
    while len(tokens) < cfg["n_vocab"]:
        add(f"<dummy{i:05d}>")
        i += 1
    chain = ids + [2]  # ... then </s>
    succ = {e: chain[0] for e in entries} | dict(zip(chain, chain[1:]))
    n_embd = max(cfg["n_embd"], 32 * math.ceil(len(succ) / 32))
    n_vocab, n_layer, n_head, n_head_kv, n_ff = cfg["n_vocab"], cfg["n_layer"], cfg["n_head"], cfg["n_head_kv"], cfg["n_ff"]
    head_dim = n_embd // n_head
    embd = np.zeros((n_vocab, n_embd), np.float32)
    out = np.zeros((n_vocab, n_embd), np.float32)
    for k, (src, dst) in enumerate(succ.items()):
        embd[src, k] = 1.0
        out[dst, k] = 16.0  # logit ~16*sqrt(n_embd) for the successor, 0 for every other token

    q = cfg["quant"]
    big = gguf.GGMLQuantizationType.Q8_0 if q != "f16" else gguf.GGMLQuantizationType.F16
    small = gguf.GGMLQuantizationType.Q4_1 if q == "q4_1" else gguf.GGMLQuantizationType.F16

    w = gguf.GGUFWriter(str(path), arch="llama")

    def tensor(name: str, a: Any, qtype: Any) -> None:
        if qtype == gguf.GGMLQuantizationType.F16:
            w.add_tensor(name, a.astype(np.float16))
        else:
            w.add_tensor(name, gguf.quants.quantize(a.astype(np.float32), qtype), raw_dtype=qtype)

    w.add_name(f"desktop-chat selftest ({shape})")
    w.add_vocab_size(n_vocab)
    w.add_context_length(4096)
    w.add_embedding_length(n_embd)
    w.add_block_count(n_layer)
    w.add_feed_forward_length(n_ff)
    w.add_rope_dimension_count(head_dim)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_head_kv)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16 if q == "f16" else gguf.LlamaFileType.MOSTLY_Q4_1)
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores([-float(t) for t in range(len(tokens))])
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)
    w.add_chat_template(MISTRAL_TEMPLATE)
    tensor("token_embd.weight", embd, big)
    ones = np.ones(n_embd, np.float32)
    zeros = np.zeros
    for b in range(n_layer):
        blk = f"blk.{b}"
        w.add_tensor(f"{blk}.attn_norm.weight", ones)
        tensor(f"{blk}.attn_q.weight", zeros((n_head * head_dim, n_embd), np.float32), small)
        tensor(f"{blk}.attn_k.weight", zeros((n_head_kv * head_dim, n_embd), np.float32), small)
        tensor(f"{blk}.attn_v.weight", zeros((n_head_kv * head_dim, n_embd), np.float32), small)
        tensor(f"{blk}.attn_output.weight", zeros((n_embd, n_head * head_dim), np.float32), small)
        w.add_tensor(f"{blk}.ffn_norm.weight", ones)
        tensor(f"{blk}.ffn_gate.weight", zeros((n_ff, n_embd), np.float32), small)
        tensor(f"{blk}.ffn_down.weight", zeros((n_embd, n_ff), np.float32), small)
        tensor(f"{blk}.ffn_up.weight", zeros((n_ff, n_embd), np.float32), small)
    w.add_tensor("output_norm.weight", ones)
    tensor("output.weight", out, big)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    # Pieces stream one by one; the leading "▁" of a word is a space, and the engine strips the first one.
    return path, "".join(pieces).replace(_SPACE, " ").lstrip()


# --------------------------------------------------------------------------------------------- --selftest


def _say(line: str) -> None:
    print(line, flush=True)


def _gib(n: float) -> str:
    return f"{n / 1024 ** 3:.1f} GiB"


def _find_demo() -> tuple[Any, Path] | None:
    from desktop.engine.library import registry
    from desktop.engine.errors import AppError
    from desktop.engine.profiles import ProfileStore

    try:
        profile = ProfileStore().default()
        return profile, registry.resolve_model(profile)
    except AppError:
        return None


LAZY_STACKS = ("mcp.client.session", "mcp.client.stdio", "mcp.client.streamable_http", "pypdf")


def check_lazy_stacks() -> str:
    """Import what the app only imports inside functions (MCP tools, PDF attachments): PyInstaller cannot see
    those imports, so a bundle that lacks them would only fail when a user first attaches a PDF or calls a tool."""
    import importlib
    from importlib import metadata

    def version(dist: str) -> str:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:  # a bundle may drop the dist-info; the import is what counts
            return "?"

    for name in LAZY_STACKS:
        importlib.import_module(name)
    return f"mcp {version('mcp')}, pypdf {version('pypdf')}"


def run_selftest(argv: list[str]) -> int:
    """The ``--selftest`` entry point; returns the exit status."""
    ap = argparse.ArgumentParser(prog="desktop-chat --selftest", description=__doc__.split("\n\n")[1])
    ap.add_argument("--model", help="a GGUF to test with (default: the demo model, else a scripted one)")
    ap.add_argument("--scripted", choices=sorted(SHAPES), help="use a scripted GGUF of this shape")
    ap.add_argument("--gpu-layers", default="auto", help="'auto' (default), -1 for all, or a number")
    ap.add_argument("--ctx", type=int, default=2048)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--prompt", default="Say hello in one short sentence.")
    ap.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = ap.parse_args(argv)

    from desktop.engine.library import registry
    from desktop.engine.inference import protocol as P
    from desktop.engine.inference.client import EngineClient, new_id, worker_command
    from desktop.engine.errors import AppError

    result: dict[str, Any] = {"ok": False, "frozen": bool(getattr(sys, "frozen", False))}
    _say(f"desktop-chat self-test: {'frozen' if result['frozen'] else 'from source'}, worker: "
         f"{' '.join(worker_command())}")
    try:
        result["tools"] = check_lazy_stacks()
    except Exception as exc:  # noqa: BLE001 - reported as the failed check it is
        _say(f"selftest: FAILED: the tools stack is missing from this build ({exc})")
        return 1
    _say(f"tools: {result['tools']}")
    tmp = tempfile.TemporaryDirectory(prefix="desktop-chat-selftest-")
    expected: str | None = None
    profile = None
    try:
        if args.model:
            model_path = Path(args.model)
        elif not args.scripted and (demo := _find_demo()):
            profile, model_path = demo
        else:
            shape = args.scripted or "tiny"
            reply = SELFTEST_REPLY if shape == "tiny" else _bench_reply(min(args.max_tokens, 400))
            t0 = time.perf_counter()
            model_path, expected = write_scripted_model(Path(tmp.name) / f"scripted-{shape}.gguf", shape, reply)
            _say(f"model: scripted {shape} GGUF ({_gib(model_path.stat().st_size)}, written in "
                 f"{time.perf_counter() - t0:.1f} s)")
        if expected is None:
            _say(f"model: {model_path} ({_gib(model_path.stat().st_size)})")
        result["model"] = str(model_path)
        gpu_layers: int | str = args.gpu_layers if args.gpu_layers == "auto" else int(args.gpu_layers)
        t_start = time.perf_counter()
        with EngineClient() as client:
            for ev in client.events(P.Ping(new_id("ping")), timeout=120):
                if isinstance(ev, P.Failed):
                    raise AppError(ev.error.get("message", "the engine failed to start"))
            ready = client.ready
            if ready is None:
                raise AppError("the engine process did not start")
            _say(f"engine: pid {ready.pid}, llama-cpp-python {ready.llama_cpp_version}, ggml backends "
                 f"{', '.join(ready.backends) or '?'}, started in {time.perf_counter() - t_start:.1f} s")
            for d in ready.devices:
                _say(f"  device {d['name']} ({d['kind']}): {d['description']}, "
                     f"{_gib(d['free'])} free of {_gib(d['total'])}")
            if ready.lib_fallback:
                _say(f"  GPU library fallback: {ready.lib_fallback}")
            req = registry.load_request(profile, model_path, new_id("load"), n_ctx=args.ctx,
                                      overrides={"n_gpu_layers": gpu_layers})
            loaded = client.load(req, timeout=600)
            _say(f"backend: {loaded.backend}; gpu layers {loaded.n_gpu_layers}/{loaded.gpu_layers_total}: "
                 f"{loaded.gpu_reason}")
            _say(f"loaded in {loaded.load_s:.2f} s (context {loaded.n_ctx})")
            messages = [{"role": "user", "content": args.prompt}]
            if profile is not None:
                gen = registry.generate_request(profile, messages, new_id("gen"), temperature=0.0, seed=1,
                                              max_tokens=args.max_tokens)
            else:
                gen = P.Generate(id=new_id("gen"), messages=messages, prompt_spec={"fmt": "gguf"},
                                 temperature=0.0, seed=1, max_tokens=args.max_tokens)
            chunks = 0
            text = ""
            finished = None
            sys.stdout.write("reply: ")
            for ev in client.generate(gen, timeout=600):
                if isinstance(ev, P.TokenChunk):
                    chunks += 1
                    text += ev.text
                    sys.stdout.write(ev.text)
                    sys.stdout.flush()
                elif isinstance(ev, P.Failed):
                    sys.stdout.write("\n")
                    raise AppError(ev.error.get("message", "generation failed"))
                elif isinstance(ev, P.Finished):
                    finished = ev
            sys.stdout.write("\n")
        assert finished is not None
        st = finished.stats
        _say(f"tokens: {st.generated_tokens} in {chunks} chunks, {st.tokens_per_s:.1f} tok/s, "
             f"time to first token {st.ttft_s * 1000:.0f} ms, finish: {finished.finish_reason}")
        result.update(backend=loaded.backend, gpu_layers=loaded.n_gpu_layers, gpu_layers_total=loaded.gpu_layers_total,
                      gpu_reason=loaded.gpu_reason, tokens_per_s=st.tokens_per_s, generated_tokens=st.generated_tokens,
                      ttft_s=st.ttft_s, load_s=loaded.load_s, chunks=chunks, text=finished.text,
                      lib_fallback=ready.lib_fallback, backends=ready.backends, devices=ready.devices)
        problems = []
        if chunks == 0 or st.generated_tokens == 0 or not finished.text.strip():
            problems.append("no tokens were streamed")
        if expected is not None:
            # Stopped at </s>: the whole scripted reply; cut by max_tokens: a prefix of it.
            good = finished.text == expected if finished.finish_reason == "stop" else expected.startswith(finished.text)
            if not good:
                problems.append(f"the scripted model answered {finished.text!r}, expected {expected!r}")
        if problems:
            raise AppError("; ".join(problems))
        result["ok"] = True
        _say("selftest: OK")
        return 0
    except (AppError, OSError) as exc:
        result["error"] = getattr(exc, "message", str(exc))
        _say(f"selftest: FAILED: {result['error']}")
        return 1
    finally:
        if args.json:
            Path(args.json).write_text(json.dumps(result, indent=2, default=str))
        tmp.cleanup()


# --------------------------------------------------------------------------------------------- --smoke-gui


LOAD_WAIT_S = 60.0


def run_smoke_gui(argv: list[str]) -> int:
    """Open the main window for a few seconds and check that Qt really came up (GUI thread)."""
    seconds = float(argv[0]) if argv else 3.0
    from PySide6.QtCore import QLibraryInfo, QTimer
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([sys.argv[0]])
    platform = app.platformName()
    plugins = Path(QLibraryInfo.path(QLibraryInfo.LibraryPath.PluginsPath))
    found = sorted(p.name for p in (plugins / "platforms").glob("*")) if (plugins / "platforms").is_dir() else []
    _say(f"qt: platform {platform!r}, plugins in {plugins}: {', '.join(found) or 'none'}")
    wanted = os.environ.get("QT_QPA_PLATFORM", "").split(":")[0]
    from desktop.engine.errors import AppError
    from desktop.ui.shell.main_window import MainWindow

    try:
        win = MainWindow()
    except AppError as exc:
        _say(f"smoke-gui: FAILED: {exc.message}")
        return 1
    win.show()
    demo = _find_demo()
    if demo is not None:
        win.load_profile(demo[0])
    seen: dict[str, bool] = {}

    def check_and_quit() -> None:
        # Read before quit(): Qt 6 closes every window on quit.
        handle = win.windowHandle()
        seen.update(visible=win.isVisible(), exposed=bool(handle and handle.isExposed()),
                    painted=not win.grab().isNull())
        app.quit()

    # After SECONDS, wait on (up to LOAD_WAIT_S more) for the default model if one is loading: a busy machine
    # loads slower, and a check that flips with the load average proves nothing.
    t0 = time.monotonic()
    timer = QTimer()
    timer.setInterval(100)

    def tick() -> None:
        elapsed = time.monotonic() - t0
        waiting = demo is not None and win.loaded is None
        if elapsed >= seconds and (not waiting or elapsed >= seconds + LOAD_WAIT_S):
            timer.stop()
            check_and_quit()

    timer.timeout.connect(tick)
    timer.start()
    app.exec()
    problems = []
    if not platform or (wanted and platform != wanted):
        problems.append(f"platform plugin {wanted or '(default)'} did not load (got {platform!r})")
    if not all(seen.get(k) for k in ("visible", "exposed", "painted")):
        problems.append(f"the main window was not shown ({seen})")
    loaded = win.loaded
    if demo is not None and loaded is None:
        problems.append(f"the default model did not load within {seconds + LOAD_WAIT_S:g} s")
    if loaded is not None:
        _say(f"model: {os.path.basename(loaded.model_path)} on {loaded.backend} ({loaded.gpu_reason})")
    win.close()
    app.processEvents()
    if problems:
        _say("smoke-gui: FAILED: " + "; ".join(problems))
        return 1
    _say(f"smoke-gui: OK (window shown for {seconds:g} s)")
    return 0
