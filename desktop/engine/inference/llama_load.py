"""The load path of ``llama_backend`` (engine process, main thread): what the library offers, the GPU-layer
and context plan, llama.cpp's load-progress and abort callbacks, and the speculative proposer.

Split out of ``llama_backend`` by job. That module stays the only one that imports ``llama_cpp``: every function
here that needs it is handed the module object.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import dataclasses
import os
import threading
from typing import Any, Callable

from desktop.engine.errors import ModelLoadError
from desktop.engine.hub import fit
from desktop.engine.inference import gpu_select, speculative
from desktop.engine.inference.protocol import Load

KV_TYPES = {"f16": 1, "q8_0": 8, "q4_0": 2}  # ggml_type ids


def devices(llama_cpp: Any) -> tuple[tuple[str, ...], tuple[gpu_select.Device, ...]]:
    """ggml's backend registry and devices, through the loaded library (llama-cpp-python binds neither)."""
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


def default_threads() -> int:
    # Physical cores beat hyperthreads for token generation; leave one for the UI on big machines. Never more
    # than the cores this process may run on (taskset, a container's cpuset).
    n = os.cpu_count() or 2
    try:
        import psutil

        n = psutil.cpu_count(logical=False) or n
    except Exception:  # pragma: no cover - psutil is a dependency, but threads must never fail a load
        pass
    try:
        n = min(n, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        pass
    return max(1, n - 1) if n > 4 else n


def open_llama(llama_cpp: Any, kwargs: dict[str, Any], on_progress: Callable[[float], None] | None = None) -> Any:
    """``llama_cpp.Llama(**kwargs)``, with the file's chat templates kept from it and load progress reported.

    ``Llama()`` compiles every ``tokenizer.chat_template*`` value of the file's metadata in a Jinja environment
    with no budgets, and Jinja folds constant expressions while compiling: ``{{ 99999999**99999999 }}`` in a
    downloaded GGUF would run for hours inside the load. The app renders the template itself, in
    ``template_sandbox`` (read by the GGUF doctor), so for the length of this call the model's metadata is read
    without those keys. ``Llama()`` also takes no progress callback, but it fills its model params from
    ``llama_cpp.llama_cpp.llama_model_default_params()``; for the length of this call that function returns
    params whose ``progress_callback`` is set. Both are restored afterwards (engine main thread only).
    """
    model_cls = llama_cpp._internals.LlamaModel
    stock_metadata = model_cls.metadata

    def metadata(model: Any) -> dict[str, str]:
        return {k: v for k, v in stock_metadata(model).items() if not k.startswith("tokenizer.chat_template")}

    low = llama_cpp.llama_cpp
    stock_params = low.llama_model_default_params
    cb = None
    if on_progress is not None:
        def progress(fraction: float, _data: Any) -> bool:
            try:
                on_progress(fraction)
            except Exception:  # noqa: BLE001 - an exception cannot cross the C callback; never abort a load for it
                pass
            return True

        cb = low.llama_progress_callback(progress)

        def default_params() -> Any:
            params = stock_params()
            params.progress_callback = cb
            return params

        low.llama_model_default_params = default_params
    model_cls.metadata = metadata
    try:
        return llama_cpp.Llama(**kwargs)
    finally:
        model_cls.metadata = stock_metadata
        low.llama_model_default_params = stock_params


def choose_layers(req: Load, lib: gpu_select.LibraryInfo, report: Any) -> gpu_select.GpuChoice:
    hw = None
    if req.n_gpu_layers == "auto" and lib.gpu_backend and not lib.gpu_devices:
        from desktop.engine.hub import hardware

        hw = hardware.detect()  # NVML / Apple numbers when ggml reports no device memory
    return gpu_select.choose_gpu_layers(req.n_gpu_layers, lib, gpu_select.ModelShape.from_report(report),
                                        req.n_ctx, req.kv_cache_type, hw, flash_attn=req.flash_attn,
                                        n_ubatch=min(req.n_batch, req.n_ctx), swa_full=req.swa_full)


def plan_context(req: Load, lib: gpu_select.LibraryInfo, report: Any, use_gpu: bool) -> fit.ContextPlan:
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


class DecodeAbort:
    """Let Stop interrupt llama_decode (a long prompt takes seconds on a CPU): llama.cpp's abort callback,
    set on the context through llama-cpp-python's low-level binding (``during_prompt``), returns true once the
    stop byte is set; llama_decode then returns 2, which llama-cpp-python raises as a RuntimeError that
    ``generate`` turns into Finished("cancelled").

    The callback runs once per graph node. A Python callback there (ctypes + the GIL) made prompt
    evaluation ~1.5x slower, so where libc is at hand the callback is libc's ``strlen`` on a two-byte
    buffer: 0 while the first byte is 0, 1 (true) once it is set. A watcher thread sets that byte when
    the cancel flag is set."""

    def __init__(self, llama_cpp: Any, llm: Any) -> None:
        low = self._low = llama_cpp.llama_cpp
        self._ctx = llm._ctx.ctx
        self._abort_flag = self.flag = ctypes.create_string_buffer(2)  # also read by the projector (llama_vision)
        self._no_abort = low.ggml_abort_callback()  # NULL: no callback
        self._watch_done = threading.Event()
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or None)
            self._abort_cb = ctypes.cast(libc.strlen, low.ggml_abort_callback)
            self._abort_data: Any = ctypes.addressof(self._abort_flag)
        except (OSError, AttributeError, TypeError):  # no libc to borrow: a Python callback (slower)
            flag = self._abort_flag

            def abort(_data: Any) -> bool:
                return flag.raw[0] != 0

            self._abort_cb = low.ggml_abort_callback(abort)  # kept referenced as long as the context lives
            self._abort_data = None

    def during_prompt(self, on: bool, cancel: threading.Event | None = None) -> None:
        """Only while the prompt is evaluated (``on``, watching ``cancel``): between generated tokens
        ``generate`` checks the flag itself."""
        self._abort_flag[0] = b"\0"
        self._low.llama_set_abort_callback(
            self._ctx, self._abort_cb if on else self._no_abort, self._abort_data if on else None)
        self._watch_done.set()
        if on and cancel is not None:
            done, flag = threading.Event(), self._abort_flag
            self._watch_done = done

            def watch() -> None:
                while not done.is_set():
                    if cancel.wait(0.02):
                        flag[0] = b"\1"
                        return

            threading.Thread(target=watch, daemon=True, name="abort-watch").start()


def load_speculative(llama_cpp: Any, llm: Any, req: Load, n_threads: int,
                     n_gpu_layers: int) -> tuple[speculative.DraftModel | speculative.PromptLookup | None, int, str]:
    """The profile's proposer, the most tokens it drafts at a time, and a note for Loaded.notes. A draft that
    cannot be used costs only the speed-up, so the model still loads and the note says why decoding is plain."""
    spec = req.speculative or {}
    # A verification batch (pending token + drafts) must fit one llama_batch of the context's n_batch.
    n_draft = max(1, min(int(spec.get("n_draft") or 8), int(llm.n_batch) - 1))
    try:
        if spec.get("draft"):
            path = speculative.resolve_draft(str(spec["draft"]))
            proposer = speculative.load_draft(llama_cpp, llm, path, n_threads, n_gpu_layers,
                                               open_model=lambda kw: open_llama(llama_cpp, kw))
            return proposer, n_draft, (f"speculative decoding with draft {os.path.basename(path)}, up to "
                                       f"{n_draft} tokens at a time")
        if spec.get("prompt_lookup"):
            return (speculative.PromptLookup(llama_cpp), n_draft,
                    f"speculative decoding by prompt lookup, up to {n_draft} tokens at a time")
    except ModelLoadError as exc:
        return None, n_draft, f"speculative decoding is off: {exc.message}"
    return None, n_draft, ""
