"""The only module that touches llama_cpp, and only inside functions.

It loads a model, renders and tokenizes a conversation, trims it to the context window, streams
tokens with stop handling, and reports stats. It runs inside the engine process (see ``host``), on
that process's main thread; ``cancel`` is a ``threading.Event`` set by the host's reader thread and
checked between tokens.

Split by job: the load path's helpers are in ``llama_load`` and one generation (trim, token stream, stats) in
``llama_generate``; both are handed the ``llama_cpp`` module from here.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import threading
import time
from typing import Any, Callable, Iterator

from desktop.engine.errors import (
    ContextOverflowError, GenerationError, GGUFError, GrammarError, ImageError, ModelLoadError,
)
from desktop.engine.gguf import doctor as gguf_doctor
from desktop.engine.hub import fit
from desktop.engine.inference import gpu_select, prompts, reasoning
from desktop.engine.inference.llama_generate import Prepared, stream, trim_to_context
from desktop.engine.inference.llama_load import (
    KV_TYPES,
    DecodeAbort,
    choose_layers,
    default_threads,
    devices,
    load_speculative,
    open_llama,
    plan_context,
)
from desktop.engine.inference.protocol import Embed, Embeddings, Finished, Generate, Load, Loaded, TokenChunk
from desktop.engine.inference.threads import ThreadGovernor


_LIBRARY: gpu_select.LibraryInfo | None = None


def _import_llama_cpp() -> tuple[Any, str]:
    """Import llama_cpp; if its (GPU) library cannot load, import it again from the CPU copy.

    A CUDA build fails to load on a machine without the NVIDIA driver (libcuda.so.1 is missing), which
    ctypes reports as an exception, so the engine retries in-process with ``LLAMA_CPP_LIB_PATH`` pointing at
    the CPU libraries (see ``gpu_select.cpu_fallback_dir``). Returns (module, fallback reason or "").
    """
    import sys

    try:
        import llama_cpp

        return llama_cpp, ""
    except (OSError, RuntimeError) as exc:  # FileNotFoundError is an OSError
        failed = os.environ.get("LLAMA_CPP_LIB_PATH")
        cpu_dir = gpu_select.cpu_fallback_dir(failed)
        if cpu_dir is None:
            raise ModelLoadError(f"the llama.cpp library could not be loaded: {exc}") from exc
        pkg = gpu_select.llama_package_dir()
        failed_dir = str(failed or (pkg / "lib" if pkg else ""))
        # The loader's own words (e.g. "libcuda.so.1: cannot open shared object file") sit at the bottom of the
        # chain: llama_cpp and PyInstaller's ctypes hook each wrap them in a message of their own.
        root: BaseException = exc
        while (root.__cause__ or root.__context__) is not None:
            root = root.__cause__ or root.__context__  # type: ignore[assignment]
        reason = str(root)
        if failed_dir:
            reason = reason.replace(failed_dir.rstrip(os.sep) + os.sep, "").strip()
        for name in [m for m in sys.modules if m == "llama_cpp" or m.startswith("llama_cpp.")]:
            del sys.modules[name]
        os.environ["LLAMA_CPP_LIB_PATH"] = str(cpu_dir)
        if any(cpu_dir.glob("*mtmd*")):  # llama_cpp.mtmd_cpp reads its own variable
            os.environ["MTMD_CPP_LIB"] = str(cpu_dir)
        import llama_cpp

        return llama_cpp, reason


def library_info(refresh: bool = False) -> gpu_select.LibraryInfo:
    """What the loaded llama.cpp supports (imports it on first use). Device free memory is read fresh when
    ``refresh`` is set, because other programs change it."""
    global _LIBRARY
    if _LIBRARY is None or refresh:
        llama_cpp, fallback = _import_llama_cpp()
        if _LIBRARY is not None:
            fallback = _LIBRARY.fallback_reason
        info = llama_cpp.llama_print_system_info().decode("utf-8", "replace").strip()
        backends, devs = devices(llama_cpp)
        pkg = gpu_select.llama_package_dir()
        lib_dir = os.environ.get("LLAMA_CPP_LIB_PATH") or (str(pkg / "lib") if pkg else "")
        _LIBRARY = gpu_select.LibraryInfo(llama_cpp.__version__, info, bool(llama_cpp.llama_supports_gpu_offload()),
                                          backends, devs, lib_dir, fallback)
    return _LIBRARY


def token_piece(vocab: Any, token: int, special: bool = False) -> bytes:
    """The bytes of one token. (llama-cpp-python's own helper returns a NUL-padded 32-byte buffer.)"""
    import ctypes

    import llama_cpp

    size = 64
    while True:
        buf = ctypes.create_string_buffer(size)
        n = llama_cpp.llama_token_to_piece(vocab, llama_cpp.llama_token(token), buf, size, 0, special)
        if n >= 0:
            return buf.raw[:n]
        size = -n  # the piece needs this many bytes


class LlamaBackend:
    """One loaded model and its KV cache. Not thread-safe: the engine's main thread owns it."""

    def __init__(self) -> None:
        self.llm: Any = None
        self.loaded: Loaded | None = None
        self._report: gguf_doctor.Report | None = None
        self.eog_extra: set[int] = set()
        # Set by the host around a load: called with llama.cpp's load progress (0..1), on this thread.
        self.on_progress: Callable[[float], None] | None = None
        # Stop during prompt evaluation: llama.cpp calls the abort callback between graph nodes (set at load).
        self.abort: DecodeAbort | None = None
        self.proposer: Any = None  # speculative.DraftModel / PromptLookup, from Load.speculative
        self.n_draft = 0
        # Threads "auto": the count follows the cores other programs leave free, between tokens (threads.py).
        self.threads: ThreadGovernor | None = None
        # The end of the last prompt rendered: the reasoning splitter starts inside thinking when it opened a block.
        self.last_prompt_tail = ""
        self.vision: Any = None  # llama_vision.Vision, from Load.mmproj_path

    # ------------------------------------------------------------------ load

    def load(self, req: Load) -> Loaded:
        import llama_cpp

        self.close()
        try:
            report = gguf_doctor.inspect(req.model_path)
        except GGUFError as exc:
            raise ModelLoadError(exc.message) from exc
        if req.mmproj_path:  # another model's projector is refused before the weights are read
            from desktop.engine.gguf import projector as gguf_projector

            try:
                gguf_projector.check_pair(req.model_path, req.mmproj_path)
            except GGUFError as exc:
                raise ModelLoadError(exc.message) from exc
        if report.expert_layout == "separate":
            raise ModelLoadError(next(p.message for p in report.problems if p.code == "mixtral_old_expert_layout"))
        overrides = dict(gguf_doctor.load_overrides(report)) if req.apply_doctor_overrides else {}
        overrides.update(req.kv_overrides)
        lib = library_info(refresh=True)
        version = lib.version
        # llama-cpp-python takes flash_attn as a bool (ENABLED/DISABLED); "auto" is llama.cpp's default, which
        # turns it on wherever the backend supports it (CPU, CUDA, Metal), so "auto" maps to True.
        flash_attn = fit.flash_attn_on(req.flash_attn)
        if req.kv_cache_type != "f16" and not flash_attn:
            raise ModelLoadError(f"a {req.kv_cache_type} KV cache needs flash attention (llama.cpp quantizes the V "
                                 "cache only with it); set load.flash_attn to auto or on, or use an f16 KV cache")
        choice = choose_layers(req, lib, report)
        # A context that cannot fit is reduced (with a notice) or refused here, before llama.cpp allocates it:
        # an over-large KV cache gets the engine OOM-killed instead of failing.
        plan_notes: list[str] = []
        plan = plan_context(req, lib, report, use_gpu=choice.n_gpu_layers != 0)
        if plan.n_ctx != req.n_ctx:
            req = dataclasses.replace(req, n_ctx=plan.n_ctx)
            plan_notes.append(plan.notice)
            choice = choose_layers(req, lib, report)
        n_gpu_layers = choice.n_gpu_layers
        n_threads = default_threads() if req.n_threads == "auto" else int(req.n_threads)
        kwargs: dict[str, Any] = dict(
            model_path=req.model_path, n_ctx=req.n_ctx, n_gpu_layers=n_gpu_layers, n_threads=n_threads,
            n_threads_batch=n_threads, n_batch=min(req.n_batch, req.n_ctx), flash_attn=flash_attn,
            swa_full=req.swa_full, kv_overrides=overrides or None, verbose=False,
        )
        if req.embedding:
            # Pooling stays the GGUF's own (llama.cpp reads it from the file); ``embed`` means the token vectors
            # of a model that declares none.
            kwargs["embedding"] = True
            kwargs["n_ubatch"] = kwargs["n_batch"] = req.n_ctx  # one input is one batch: pooling needs it whole
        if req.rope_freq_base:
            kwargs["rope_freq_base"] = float(req.rope_freq_base)
        if req.rope_freq_scale:
            kwargs["rope_freq_scale"] = float(req.rope_freq_scale)
        if req.kv_cache_type != "f16":
            kwargs["type_k"] = kwargs["type_v"] = KV_TYPES[req.kv_cache_type]
        t0 = time.perf_counter()
        try:
            llm = open_llama(llama_cpp, kwargs, self.on_progress)
        except (ValueError, RuntimeError, OSError) as exc:
            if n_gpu_layers == 0:
                raise ModelLoadError(f"llama.cpp could not load {os.path.basename(req.model_path)}: {exc}") from exc
            # Out of VRAM (a wrong estimate, or another program took it): the CPU still works.
            choice = gpu_select.GpuChoice("CPU", 0, choice.total_layers,
                                          f"CPU: loading with {choice.backend} failed ({exc})")
            n_gpu_layers = kwargs["n_gpu_layers"] = 0
            try:
                llm = open_llama(llama_cpp, kwargs, self.on_progress)
            except (ValueError, RuntimeError, OSError) as exc2:
                raise ModelLoadError(
                    f"llama.cpp could not load {os.path.basename(req.model_path)}: {exc2}") from exc2
        load_s = time.perf_counter() - t0
        self.abort = DecodeAbort(llama_cpp, llm)
        self.llm = llm
        if req.n_threads == "auto":
            ctx = llm._ctx.ctx
            self.threads = ThreadGovernor(n_threads, lambda n: llama_cpp.llama_set_n_threads(ctx, n, n))
        self.proposer, self.n_draft, spec_note = load_speculative(llama_cpp, llm, req, n_threads, n_gpu_layers)
        if req.mmproj_path:
            self.vision = self._load_vision(req.mmproj_path, n_threads, n_gpu_layers != 0, flash_attn)
        self._report = report
        vocab = llm._model.vocab
        n_vocab = llm.n_vocab()
        eog = [t for t in {llm.token_eos(), llm._model.token_eot()} if 0 <= t < n_vocab]
        notes: list[str] = list(plan_notes) + ([spec_note] if spec_note else [])
        eot_ok: bool | None = None
        self.eog_extra = set()
        if report.is_llama3_vocab:
            eot_ok = bool(llama_cpp.llama_vocab_is_eog(vocab, gguf_doctor.LLAMA3_EOT_ID))
            if not eot_ok:
                # Belt and braces: stop on 128009 ourselves, and say so.
                self.eog_extra.add(gguf_doctor.LLAMA3_EOT_ID)
                notes.append("llama.cpp does not treat 128009 as end of generation; the app stops on it itself")
            eog.append(gguf_doctor.LLAMA3_EOT_ID)
        self.loaded = Loaded(
            id=req.id, model_path=req.model_path, n_ctx=llm.n_ctx(), n_ctx_train=llm._model.n_ctx_train(),
            n_gpu_layers=n_gpu_layers if n_gpu_layers >= 0 else (report.block_count or 0) + 1,
            backend=choice.backend, gpu_layers_total=choice.total_layers, gpu_reason=choice.reason, load_s=load_s,
            eog_ids=sorted(set(eog)), eot_128009_is_eog=eot_ok, kv_overrides=overrides,
            description=llm._model.desc(), notes=notes, llama_cpp_version=version, quant=report.file_type,
            reasoning_format=report.reasoning_format,
            vision=self.vision is not None, image_max_side=self.vision.info.max_side if self.vision else 0,
        )
        return self.loaded

    def _load_vision(self, path: str, n_threads: int, use_gpu: bool, flash_attn: bool) -> Any:
        """The projector through llama.cpp's mtmd library (built with ``-DLLAVA_BUILD=ON``)."""
        import llama_cpp

        from desktop.engine.inference.llama_vision import Vision

        try:
            import llama_cpp.mtmd_cpp as mtmd
        except (OSError, RuntimeError, FileNotFoundError) as exc:
            raise ModelLoadError("this llama.cpp build has no multimodal library (mtmd); rebuild "
                                 f"llama-cpp-python with -DLLAVA_BUILD=ON to use images: {exc}") from exc
        assert self.abort is not None
        try:
            return Vision(llama_cpp, mtmd, self.llm, path, n_threads, use_gpu, self.abort.flag, flash_attn)
        except GGUFError as exc:
            raise ModelLoadError(exc.message) from exc

    def close(self) -> None:
        if self.vision is not None:
            self.vision.close()
        self.vision = None
        if self.proposer is not None and hasattr(self.proposer, "close"):
            self.proposer.close()
        self.proposer = None
        self.threads = None
        if self.llm is not None:
            try:
                self.llm.close()
            except Exception:  # pragma: no cover - freeing must not mask the reason we are closing
                pass
        self.llm = None
        self.loaded = None

    # ------------------------------------------------------------------ prompt

    def _bos_text(self) -> str:
        llm = self.llm
        bos = llm.token_bos()
        if bos < 0:
            return ""
        return token_piece(llm._model.vocab, bos, special=True).decode("utf-8", "replace")

    def _render(self, req: Generate, messages: list[dict[str, Any]]) -> str:
        spec = dict(req.prompt_spec)
        fmt = spec.pop("fmt", "gguf")
        if fmt == "gguf" and not spec.get("chat_template") and self._report and not self._report.chat_template:
            # No template in the file: its detected family's format, or FormatUnknownError with the choices.
            from desktop.engine.library.generated import format_for

            fmt = format_for(self._report)[0]
        if fmt == "gguf" and not spec.get("chat_template"):
            spec["chat_template"] = self._report.chat_template if self._report else None
            spec["bos_token"] = spec.get("bos_token") or self._bos_text()
            eos = self.llm.token_eos()
            spec["eos_token"] = spec.get("eos_token") or (
                token_piece(self.llm._model.vocab, eos, special=True).decode("utf-8", "replace") if eos >= 0 else "")
        if self.vision is not None:  # each image's place: mtmd's marker before the message's text
            marker = self.vision.marker
            messages = [m if not m.get("images") else {
                **{k: v for k, v in m.items() if k != "images"},
                "content": marker * len(m["images"]) + "\n" + str(m.get("content") or "").replace(marker, "")}
                for m in messages]
        text = prompts.render(fmt, messages, **spec)
        self.last_prompt_tail = text[-200:]
        return text

    def reasoning_format(self, req: Generate) -> str:
        """How this request's answer thinks: the profile's choice, else recognised from the template the prompt
        is rendered with (or the hand-written format, or the file's special tokens)."""
        spec = req.prompt_spec
        if spec.get("reasoning_format") is not None:
            return str(spec["reasoning_format"])
        fmt = spec.get("fmt", "gguf")
        report = self._report
        if req.prompt is None and fmt == "gguf" and spec.get("chat_template"):
            return reasoning.detect(spec["chat_template"])
        if req.prompt is None and fmt != "gguf":
            return reasoning.detect(None, (), fmt)
        return report.reasoning_format if report is not None else ""

    def tokenize(self, text: str) -> list[int]:
        # Formats that write the BOS text themselves must not get a second BOS.
        bos_text = self._bos_text()
        add_bos = bool(self.llm._model.add_bos_token()) and not (bos_text and text.startswith(bos_text))
        return self.llm.tokenize(text.encode("utf-8"), add_bos=add_bos, special=True)

    def prepare(self, req: Generate, reserve: int) -> Prepared:
        """Render and tokenize; drop the oldest turns (never the system prompt) until it fits. With images, the
        prompt is tokenized by mtmd (``Prepared.media``) and every image counts with the positions it takes."""
        if req.prompt is not None:
            self.last_prompt_tail = req.prompt[-200:]
        if not any(m.get("images") for m in req.messages):
            return trim_to_context(req, self.llm.n_ctx(), reserve, self.tokenize, self._render)
        if self.vision is None:
            raise ImageError("this model has no vision projector, so it cannot see images; choose a vision model "
                             "(one with an mmproj file) or send the message without images")
        vision = self.vision
        kept: list[list[str]] = [[]]
        media: list[Any] = []

        def render(r: Generate, msgs: list[dict[str, Any]]) -> str:
            kept[0] = [str(p) for m in msgs for p in (m.get("images") or [])]
            return self._render(r, msgs)

        bos_text = self._bos_text()

        def tokenize(text: str) -> list[int]:
            for old in media:
                old.close()
            media[:] = [vision.tokenize(text, kept[0], not (bos_text and text.startswith(bos_text)))]
            return media[0].tokens

        try:
            prep = trim_to_context(req, self.llm.n_ctx(), reserve, tokenize, render)
        except BaseException:
            for old in media:
                old.close()
            vision.forget_images()
            raise
        prep.media = media[0]
        return prep

    def prefill(self, prep: Prepared) -> int:
        """Evaluate the prompt (``decode_loop.prefill``, or the image-aware one), returning the reused prefix."""
        if prep.media is None:
            from desktop.engine.inference import decode_loop

            return decode_loop.prefill(self.llm, prep.tokens)
        try:
            return self.vision.prefill(prep.media)
        finally:
            prep.media.close()
            self.vision.forget_images()

    # ------------------------------------------------------------------ generate

    def generate(self, req: Generate, cancel: threading.Event) -> Iterator[TokenChunk | Finished]:
        """Yield one TokenChunk per visible token piece, then one Finished (``llama_generate.stream``: the
        generator itself, so no layer is added per token)."""
        import llama_cpp

        if self.loaded is not None and self.llm is not None and self.llm.context_params.embeddings:
            raise GenerationError("this model is loaded in embedding mode; load it again to generate text")
        return stream(llama_cpp, self, req, cancel, grammar_text(req))

    # ------------------------------------------------------------------ embeddings

    def embed(self, req: Embed) -> Embeddings:
        """One vector per input, pooled as the GGUF says (mean of the token vectors where it says none)."""
        import llama_cpp

        llm = self.llm
        if llm is None or not llm.context_params.embeddings:
            raise GenerationError("no model is loaded in embedding mode")
        pooling = int(llm.pooling_type())
        names = {llama_cpp.LLAMA_POOLING_TYPE_NONE: "none", llama_cpp.LLAMA_POOLING_TYPE_MEAN: "mean",
                 llama_cpp.LLAMA_POOLING_TYPE_CLS: "cls", llama_cpp.LLAMA_POOLING_TYPE_LAST: "last",
                 llama_cpp.LLAMA_POOLING_TYPE_RANK: "rank"}
        vectors: list[list[float]] = []
        total = 0
        for text in req.inputs:
            try:
                out, n = llm.embed(text or " ", normalize=False, truncate=req.truncate, return_count=True)
            except ValueError as exc:
                raise ContextOverflowError(f"an input is too long for the context: {exc}") from exc
            total += int(n)
            if pooling == llama_cpp.LLAMA_POOLING_TYPE_NONE:  # one vector per token: their mean
                rows = out
                out = [sum(col) / len(rows) for col in zip(*rows)] if rows else []
            vec = [float(x) for x in out]
            if req.normalize:
                norm = math.sqrt(sum(x * x for x in vec)) or 1.0
                vec = [x / norm for x in vec]
            vectors.append(vec)
        name = names.get(pooling, str(pooling))
        return Embeddings(req.id, vectors, total, "mean" if name == "none" else name)


def grammar_text(req: Generate) -> str | None:
    """The GBNF grammar a Generate asks for: its own, or its JSON schema's (llama-cpp-python's converter)."""
    if req.grammar:
        return req.grammar
    if req.json_schema is None:
        return None
    from llama_cpp import llama_grammar

    try:
        return llama_grammar.json_schema_to_gbnf(json.dumps(req.json_schema))
    except Exception as exc:  # noqa: BLE001 - the converter raises whatever the schema trips (KeyError, ValueError...)
        raise GrammarError(f"the JSON schema cannot be turned into a grammar: {exc!r}") from exc
