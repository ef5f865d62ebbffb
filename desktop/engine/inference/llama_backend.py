"""The only module that touches llama_cpp, and only inside functions.

It loads a model, renders and tokenizes a conversation, trims it to the context window, streams
tokens with stop handling, and reports stats. It runs inside the engine process (see ``host``), on
that process's main thread; ``cancel`` is a ``threading.Event`` set by the host's reader thread and
checked between tokens.
"""
from __future__ import annotations

import dataclasses
import os
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from desktop.engine.gguf import doctor as gguf_doctor
from desktop.engine.hub import fit
from desktop.engine.inference import decode_loop, gpu_select, prompts, speculative
from desktop.engine.inference.sampler import NativeChain, SamplerSpec
from desktop.engine.inference.stops import StopScanner
from desktop.engine.errors import ContextOverflowError, GenerationError, GGUFError, ModelLoadError
from desktop.engine.inference.protocol import Finished, Generate, GenerationStats, Load, Loaded, TokenChunk

_KV_TYPES = {"f16": 1, "q8_0": 8, "q4_0": 2}  # ggml_type ids


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
        import llama_cpp

        return llama_cpp, reason


def _devices(llama_cpp: Any) -> tuple[tuple[str, ...], tuple[gpu_select.Device, ...]]:
    """ggml's backend registry and devices, through the loaded library (llama-cpp-python binds neither)."""
    import ctypes

    lib = llama_cpp.llama_cpp._lib  # dlsym on libllama also finds the ggml symbols it links against
    try:
        vp, sz = ctypes.c_void_p, ctypes.c_size_t
        for fn, res, args in (("ggml_backend_reg_count", sz, []), ("ggml_backend_reg_get", vp, [sz]),
                              ("ggml_backend_reg_name", ctypes.c_char_p, [vp]), ("ggml_backend_dev_count", sz, []),
                              ("ggml_backend_dev_get", vp, [sz]), ("ggml_backend_dev_name", ctypes.c_char_p, [vp]),
                              ("ggml_backend_dev_description", ctypes.c_char_p, [vp]),
                              ("ggml_backend_dev_type", ctypes.c_int, [vp]),
                              ("ggml_backend_dev_memory", None, [vp, ctypes.POINTER(sz), ctypes.POINTER(sz)])):
            getattr(lib, fn).restype, getattr(lib, fn).argtypes = res, args
        regs = tuple((lib.ggml_backend_reg_name(lib.ggml_backend_reg_get(i)) or b"").decode()
                     for i in range(lib.ggml_backend_reg_count()))
        devs = []
        for i in range(lib.ggml_backend_dev_count()):
            d = lib.ggml_backend_dev_get(i)
            free, total = sz(), sz()
            lib.ggml_backend_dev_memory(d, ctypes.byref(free), ctypes.byref(total))
            devs.append(gpu_select.Device((lib.ggml_backend_dev_name(d) or b"").decode(errors="replace"),
                                          (lib.ggml_backend_dev_description(d) or b"").decode(errors="replace"),
                                          gpu_select.DEVICE_KINDS.get(lib.ggml_backend_dev_type(d), "other"),
                                          int(free.value), int(total.value)))
        return regs, tuple(devs)
    except AttributeError:  # an older libllama without the registry API: fall back to system info
        return (), ()


def library_info(refresh: bool = False) -> gpu_select.LibraryInfo:
    """What the loaded llama.cpp supports (imports it on first use). Device free memory is read fresh when
    ``refresh`` is set, because other programs change it."""
    global _LIBRARY
    if _LIBRARY is None or refresh:
        llama_cpp, fallback = _import_llama_cpp()
        if _LIBRARY is not None:
            fallback = _LIBRARY.fallback_reason
        info = llama_cpp.llama_print_system_info().decode("utf-8", "replace").strip()
        backends, devices = _devices(llama_cpp)
        pkg = gpu_select.llama_package_dir()
        lib_dir = os.environ.get("LLAMA_CPP_LIB_PATH") or (str(pkg / "lib") if pkg else "")
        _LIBRARY = gpu_select.LibraryInfo(llama_cpp.__version__, info, bool(llama_cpp.llama_supports_gpu_offload()),
                                          backends, devices, lib_dir, fallback)
    return _LIBRARY


def system_info() -> tuple[str, str, bool]:
    """(llama_cpp version, ggml system info, GPU offload supported)."""
    lib = library_info()
    return lib.version, lib.system_info, lib.gpu_offload


def backend_name(info: str, gpu_offload: bool) -> str:
    upper = info.upper()
    for key, name in (("CUDA", "CUDA"), ("METAL", "Metal"), ("VULKAN", "Vulkan"), ("HIP", "ROCm"), ("SYCL", "SYCL")):
        if key in upper and gpu_offload:
            return name
    return "CPU"


def default_threads() -> int:
    # Physical cores beat hyperthreads for token generation; leave one for the UI on big machines.
    n = os.cpu_count() or 2
    try:
        import psutil

        n = psutil.cpu_count(logical=False) or n
    except Exception:  # pragma: no cover - psutil is a dependency, but threads must never fail a load
        pass
    return max(1, n - 1) if n > 4 else n


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


def _with_load_progress(llama_cpp: Any, on_progress: Callable[[float], None] | None, kwargs: dict[str, Any]) -> Any:
    """``llama_cpp.Llama(**kwargs)`` with llama.cpp's load progress callback reporting to ``on_progress``.

    ``Llama()`` takes no progress callback, but it fills its model params from
    ``llama_cpp.llama_cpp.llama_model_default_params()``; for the length of this call that function returns
    params whose ``progress_callback`` is set (engine main thread only, restored afterwards).
    """
    if on_progress is None:
        return llama_cpp.Llama(**kwargs)
    low = llama_cpp.llama_cpp
    stock = low.llama_model_default_params

    def progress(fraction: float, _data: Any) -> bool:
        try:
            on_progress(fraction)
        except Exception:  # noqa: BLE001 - an exception cannot cross the C callback; never abort a load for it
            pass
        return True

    cb = low.llama_progress_callback(progress)

    def default_params() -> Any:
        params = stock()
        params.progress_callback = cb
        return params

    low.llama_model_default_params = default_params
    try:
        return llama_cpp.Llama(**kwargs)
    finally:
        low.llama_model_default_params = stock


@dataclass
class _Prepared:
    tokens: list[int]
    dropped: list[int]


class LlamaBackend:
    """One loaded model and its KV cache. Not thread-safe: the engine's main thread owns it."""

    def __init__(self) -> None:
        self.llm: Any = None
        self.loaded: Loaded | None = None
        self._report: gguf_doctor.Report | None = None
        self._eog_extra: set[int] = set()
        # Set by the host around a load: called with llama.cpp's load progress (0..1), on this thread.
        self.on_progress: Callable[[float], None] | None = None
        # Stop during prompt evaluation: llama.cpp calls the abort callback between graph nodes, and it reads
        # the cancel flag of the generation running now (None between generations).
        self._cancel: threading.Event | None = None
        self._abort_cb: Any = None
        self._no_abort: Any = None
        self._proposer: Any = None  # speculative.DraftModel / PromptLookup, from Load.speculative
        self._n_draft = 0
        self._abort_flag: Any = None
        self._abort_data: Any = None
        self._watch_done = threading.Event()

    # ------------------------------------------------------------------ load

    def load(self, req: Load) -> Loaded:
        import llama_cpp

        self.close()
        try:
            report = gguf_doctor.inspect(req.model_path)
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
        choice = self._choose_layers(req, lib, report)
        # A context that cannot fit is reduced (with a notice) or refused here, before llama.cpp allocates it:
        # an over-large KV cache gets the engine OOM-killed instead of failing.
        plan_notes: list[str] = []
        plan = self._plan_context(req, lib, report, use_gpu=choice.n_gpu_layers != 0)
        if plan.n_ctx != req.n_ctx:
            req = dataclasses.replace(req, n_ctx=plan.n_ctx)
            plan_notes.append(plan.notice)
            choice = self._choose_layers(req, lib, report)
        n_gpu_layers = choice.n_gpu_layers
        n_threads = default_threads() if req.n_threads == "auto" else int(req.n_threads)
        kwargs: dict[str, Any] = dict(
            model_path=req.model_path, n_ctx=req.n_ctx, n_gpu_layers=n_gpu_layers, n_threads=n_threads,
            n_threads_batch=n_threads, n_batch=min(req.n_batch, req.n_ctx), flash_attn=flash_attn,
            swa_full=req.swa_full, kv_overrides=overrides or None, verbose=False,
        )
        if req.rope_freq_base:
            kwargs["rope_freq_base"] = float(req.rope_freq_base)
        if req.rope_freq_scale:
            kwargs["rope_freq_scale"] = float(req.rope_freq_scale)
        if req.kv_cache_type != "f16":
            kwargs["type_k"] = kwargs["type_v"] = _KV_TYPES[req.kv_cache_type]
        t0 = time.perf_counter()
        try:
            llm = _with_load_progress(llama_cpp, self.on_progress, kwargs)
        except (ValueError, RuntimeError, OSError) as exc:
            if n_gpu_layers == 0:
                raise ModelLoadError(f"llama.cpp could not load {os.path.basename(req.model_path)}: {exc}") from exc
            # Out of VRAM (a wrong estimate, or another program took it): the CPU still works.
            choice = gpu_select.GpuChoice("CPU", 0, choice.total_layers,
                                          f"CPU: loading with {choice.backend} failed ({exc})")
            n_gpu_layers = kwargs["n_gpu_layers"] = 0
            try:
                llm = _with_load_progress(llama_cpp, self.on_progress, kwargs)
            except (ValueError, RuntimeError, OSError) as exc2:
                raise ModelLoadError(
                    f"llama.cpp could not load {os.path.basename(req.model_path)}: {exc2}") from exc2
        load_s = time.perf_counter() - t0
        self._install_abort_callback(llama_cpp, llm)
        self.llm = llm
        spec_note = self._load_speculative(req, n_threads, n_gpu_layers)
        self._report = report
        vocab = llm._model.vocab
        n_vocab = llm.n_vocab()
        eog = [t for t in {llm.token_eos(), llm._model.token_eot()} if 0 <= t < n_vocab]
        notes: list[str] = list(plan_notes) + ([spec_note] if spec_note else [])
        eot_ok: bool | None = None
        self._eog_extra = set()
        if report.is_llama3_vocab:
            eot_ok = bool(llama_cpp.llama_vocab_is_eog(vocab, gguf_doctor.LLAMA3_EOT_ID))
            if not eot_ok:
                # Belt and braces: stop on 128009 ourselves, and say so.
                self._eog_extra.add(gguf_doctor.LLAMA3_EOT_ID)
                notes.append("llama.cpp does not treat 128009 as end of generation; the app stops on it itself")
            eog.append(gguf_doctor.LLAMA3_EOT_ID)
        self.loaded = Loaded(
            id=req.id, model_path=req.model_path, n_ctx=llm.n_ctx(), n_ctx_train=llm._model.n_ctx_train(),
            n_gpu_layers=n_gpu_layers if n_gpu_layers >= 0 else (report.block_count or 0) + 1,
            backend=choice.backend, gpu_layers_total=choice.total_layers, gpu_reason=choice.reason, load_s=load_s,
            eog_ids=sorted(set(eog)), eot_128009_is_eog=eot_ok, kv_overrides=overrides,
            description=llm._model.desc(), notes=notes, llama_cpp_version=version, quant=report.file_type,
        )
        return self.loaded

    @staticmethod
    def _choose_layers(req: Load, lib: gpu_select.LibraryInfo, report: Any) -> gpu_select.GpuChoice:
        hw = None
        if req.n_gpu_layers == "auto" and lib.gpu_backend and not lib.gpu_devices:
            from desktop.engine.hub import hardware

            hw = hardware.detect()  # NVML / Apple numbers when ggml reports no device memory
        return gpu_select.choose_gpu_layers(req.n_gpu_layers, lib, gpu_select.ModelShape.from_report(report),
                                            req.n_ctx, req.kv_cache_type, hw, flash_attn=req.flash_attn,
                                            n_ubatch=min(req.n_batch, req.n_ctx), swa_full=req.swa_full)

    @staticmethod
    def _plan_context(req: Load, lib: gpu_select.LibraryInfo, report: Any, use_gpu: bool) -> fit.ContextPlan:
        """RAM from psutil (or DESKTOP_CHAT_FAKE_HW), VRAM from ggml's devices when it reports them."""
        from desktop.engine.hub import hardware

        hw = hardware.detect()
        devs = [d for d in lib.gpu_devices if d.total > 0]
        if devs and not hw.gpus:
            hw = dataclasses.replace(hw, gpus=tuple(hardware.GPU(i, d.description, "ggml", d.total, d.free)
                                                    for i, d in enumerate(devs)))
        shape = gpu_select.ModelShape.from_report(report)
        return fit.plan_context(shape.file_size, shape.arch(), req.n_ctx, hw, req.kv_cache_type,
                                flash_attn=req.flash_attn, n_ubatch=min(req.n_batch, req.n_ctx),
                                swa_full=req.swa_full, use_gpu=use_gpu and lib.gpu_backend is not None)

    def _install_abort_callback(self, llama_cpp: Any, llm: Any) -> None:
        """Let Stop interrupt llama_decode (a long prompt takes seconds on a CPU): llama.cpp's abort callback,
        set on the context through llama-cpp-python's low-level binding (``_abort_during_decode``), returns true
        once the stop byte is set; llama_decode then returns 2, which llama-cpp-python raises as a RuntimeError
        that ``generate`` turns into Finished("cancelled").

        The callback runs once per graph node. A Python callback there (ctypes + the GIL) made prompt
        evaluation ~1.5x slower, so where libc is at hand the callback is libc's ``strlen`` on a two-byte
        buffer: 0 while the first byte is 0, 1 (true) once it is set. A watcher thread sets that byte when
        the cancel flag is set."""
        import ctypes
        import ctypes.util

        low = llama_cpp.llama_cpp
        self._abort_flag = ctypes.create_string_buffer(2)
        self._no_abort = low.ggml_abort_callback()  # NULL: no callback
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or None)
            self._abort_cb = ctypes.cast(libc.strlen, low.ggml_abort_callback)
            self._abort_data = ctypes.addressof(self._abort_flag)
        except (OSError, AttributeError, TypeError):  # no libc to borrow: a Python callback (slower)
            flag = self._abort_flag

            def abort(_data: Any) -> bool:
                return flag.raw[0] != 0

            self._abort_cb = low.ggml_abort_callback(abort)  # kept referenced as long as the context lives
            self._abort_data = None

    def _abort_during_decode(self, on: bool) -> None:
        """Only while the prompt is evaluated: between generated tokens ``generate`` checks the flag itself."""
        if self.llm is not None and self._abort_cb is not None:
            import llama_cpp

            self._abort_flag[0] = b"\0"
            llama_cpp.llama_cpp.llama_set_abort_callback(
                self.llm._ctx.ctx, self._abort_cb if on else self._no_abort, self._abort_data if on else None)
            self._watch_done.set()
            if on and self._cancel is not None:
                cancel, done, flag = self._cancel, threading.Event(), self._abort_flag
                self._watch_done = done

                def watch() -> None:
                    while not done.is_set():
                        if cancel.wait(0.02):
                            flag[0] = b"\1"
                            return

                threading.Thread(target=watch, daemon=True, name="abort-watch").start()

    def _load_speculative(self, req: Load, n_threads: int, n_gpu_layers: int) -> str:
        """Set up the profile's proposer; a draft that cannot be used costs only the speed-up, so the model
        still loads and the returned note (for Loaded.notes) says why decoding is plain."""
        import llama_cpp

        spec = req.speculative or {}
        # A verification batch (pending token + drafts) must fit one llama_batch of the context's n_batch.
        self._n_draft = max(1, min(int(spec.get("n_draft") or 8), int(self.llm.n_batch) - 1))
        try:
            if spec.get("draft"):
                path = speculative.resolve_draft(str(spec["draft"]))
                self._proposer = speculative.load_draft(llama_cpp, self.llm, path, n_threads, n_gpu_layers)
                return (f"speculative decoding with draft {os.path.basename(path)}, up to {self._n_draft} tokens "
                        "at a time")
            if spec.get("prompt_lookup"):
                self._proposer = speculative.PromptLookup(llama_cpp)
                return f"speculative decoding by prompt lookup, up to {self._n_draft} tokens at a time"
        except ModelLoadError as exc:
            return f"speculative decoding is off: {exc.message}"
        return ""

    def close(self) -> None:
        if self._proposer is not None and hasattr(self._proposer, "close"):
            self._proposer.close()
        self._proposer = None
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

    def _render(self, req: Generate, messages: list[dict[str, str]]) -> str:
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
        return prompts.render(fmt, messages, **spec)

    def tokenize(self, text: str) -> list[int]:
        # Formats that write the BOS text themselves must not get a second BOS.
        bos_text = self._bos_text()
        add_bos = bool(self.llm._model.add_bos_token()) and not (bos_text and text.startswith(bos_text))
        return self.llm.tokenize(text.encode("utf-8"), add_bos=add_bos, special=True)

    def prepare(self, req: Generate, reserve: int) -> _Prepared:
        """Render and tokenize; drop the oldest turns (never the system prompt) until it fits."""
        n_ctx = self.llm.n_ctx()
        budget = n_ctx - reserve
        if req.prompt is not None:
            toks = self.tokenize(req.prompt)
            if len(toks) > budget:
                raise ContextOverflowError(
                    f"the prompt is {len(toks)} tokens but the context holds {n_ctx} (with {reserve} kept for the "
                    "answer); shorten it or raise the context length")
            return _Prepared(toks, [])
        msgs = list(req.messages)
        system_prompt = req.prompt_spec.get("system_prompt", "")
        keep_first = bool(msgs) and msgs[0].get("role") == "system"
        index = list(range(len(msgs)))
        dropped: list[int] = []
        while True:
            toks = self.tokenize(self._render(req, msgs))
            if len(toks) <= budget:
                return _Prepared(toks, dropped)
            start = 1 if keep_first else 0
            # Drop whole exchanges from the front; keep at least the newest message.
            if len(msgs) - start <= 1:
                if keep_first or system_prompt:
                    raise ContextOverflowError(
                        f"the newest message needs {len(toks)} tokens with the system prompt, but the context holds "
                        f"{n_ctx} (with {reserve} kept for the answer); shorten it or raise the context length")
                raise ContextOverflowError(
                    f"the newest message needs {len(toks)} tokens but the context holds {n_ctx} "
                    f"(with {reserve} kept for the answer); shorten it or raise the context length")
            n = 1
            if msgs[start].get("role") == "user" and len(msgs) - start > 2 and msgs[start + 1].get("role") == "assistant":
                n = 2
            dropped.extend(index[start:start + n])
            del msgs[start:start + n]
            del index[start:start + n]

    # ------------------------------------------------------------------ generate

    def generate(self, req: Generate, cancel: threading.Event) -> Iterator[TokenChunk | Finished]:
        """Yield one TokenChunk per visible token piece, then one Finished."""
        import llama_cpp

        if self.llm is None or self.loaded is None:
            raise GenerationError("no model is loaded")
        llm = self.llm
        n_ctx = llm.n_ctx()
        reserve = max(1, min(req.max_tokens, n_ctx // 4))
        t0 = time.perf_counter()
        prep = self.prepare(req, reserve)
        tokens = prep.tokens
        vocab = llm._model.vocab
        is_eog = llama_cpp.llama_vocab_is_eog
        stop_ids = set(req.stop_token_ids) | self._eog_extra
        scanner = StopScanner(req.stop_strings)
        seed = req.seed if req.seed is not None and req.seed >= 0 else int.from_bytes(os.urandom(4), "little")
        llm.set_seed(seed)  # llama-cpp-python's own calls on this Llama (e.g. a later sample()) see it too
        text = decode_loop.TokenText(llama_cpp, vocab)
        started = False
        finish = "length"
        stop_token: int | None = None
        n_gen = 0
        ttft = 0.0
        t_first = 0.0
        max_new = min(req.max_tokens, n_ctx - len(tokens))
        loop_stats = decode_loop.LoopStats()
        spec = SamplerSpec(temperature=req.temperature, top_k=req.top_k, top_p=req.top_p, min_p=req.min_p,
                           repeat_penalty=req.repeat_penalty, seed=seed, last_n=int(llm.last_n_tokens_size))
        cached = 0  # stays 0 when Stop aborts the prompt before prefill returns
        self._cancel = cancel
        self._abort_during_decode(True)
        try:
            with NativeChain(llama_cpp, spec, llm.n_vocab()) as chain:
                cached = decode_loop.prefill(llm, tokens)
                gen = decode_loop.generate_tokens(llama_cpp, llm, chain, loop_stats, self._proposer, self._n_draft)
                try:
                    for tok in gen:
                        if n_gen == 0:
                            t_first = time.perf_counter()
                            ttft = t_first - t0
                            self._abort_during_decode(False)  # the prompt is in; tokens check ``cancel`` below
                        if tok in stop_ids or is_eog(vocab, tok):
                            finish, stop_token = "stop", int(tok)
                            break
                        n_gen += 1
                        piece = text.feed(tok)
                        if not started:
                            piece = piece.lstrip()
                            started = bool(piece)
                        shown = scanner.feed(piece)
                        if shown:
                            yield TokenChunk(req.id, shown, 1)
                        if scanner.stopped:
                            finish = "stop"
                            break
                        if cancel.is_set():
                            finish = "cancelled"
                            break
                        if n_gen >= max_new or llm.n_tokens >= n_ctx:
                            finish = "length"
                            break
                finally:
                    gen.close()  # puts the KV cache back to what was taken (drafted tokens past a stop go)
        except (RuntimeError, ValueError) as exc:
            if not cancel.is_set():
                raise GenerationError(f"generation failed in llama.cpp: {exc}") from exc
            finish = "cancelled"  # the abort callback stopped llama_decode mid-prompt (or mid-token)
        finally:
            self._cancel = None
            self._abort_during_decode(False)
        if not scanner.stopped:
            # The answer ended (end-of-turn token, length, cancel) with text held back as a possible
            # stop-string prefix: it is part of the answer.
            rest = scanner.rest(text.flush())
            if rest:
                yield TokenChunk(req.id, rest, 0)
        t_end = time.perf_counter()
        decode_s = t_end - t_first if n_gen > 1 else 0.0
        stats = GenerationStats(
            ttft_s=ttft, prompt_tokens=len(tokens), prompt_eval_tokens=len(tokens) - cached, generated_tokens=n_gen,
            tokens_per_s=((n_gen - 1) / decode_s) if decode_s > 0 else 0.0, total_s=t_end - t0,
            context_used=int(llm.n_tokens), context_total=n_ctx, backend=self.loaded.backend,
            gpu_layers=self.loaded.n_gpu_layers, seed=seed, draft_acceptance=loop_stats.acceptance,
        )
        yield Finished(req.id, scanner.text[:scanner.emitted], finish, stats, prep.dropped, stop_token)
