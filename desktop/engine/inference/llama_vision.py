"""Images in a local model's prompt through llama.cpp's ``mtmd`` (engine process, main thread).

Split out of ``llama_backend`` by job; that module stays the only one that imports ``llama_cpp`` and hands in both
``llama_cpp`` and ``llama_cpp.mtmd_cpp``.

How an image travels: a Generate message carries ``"images": [path, ...]``. The rendered prompt holds mtmd's media
marker where each image goes (before the message's text), and ``mtmd_tokenize`` splits it into text chunks and
image chunks (adding the projector's own begin/end-of-image tokens). The prompt is then one token list in which
each image occupies its positions with a *pseudo token*, a negative id derived from the image's content hash, so
the app's prefix reuse (``decode_loop.prefill``) works unchanged: a second question about the same picture finds
the picture's positions already in the KV cache and evaluates only what is new. Image chunks are encoded by the
projector (``mtmd_encode_chunk``) and decoded into the context (``mtmd_helper_decode_image_chunk``).

Stop during the encoding: the projector's graph runs on ggml's scheduler, which has no abort callback but an eval
callback; it asks for every 32nd node's result, and once the stop byte of ``DecodeAbort`` is set it answers
"stop", which ends the graph early. The decode that follows is not started, and the stop byte also aborts any
``llama_decode`` in flight.
"""
from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass, field
from typing import Any

from desktop.engine.errors import ImageError, ModelLoadError
from desktop.engine.gguf import projector as gguf_projector
from desktop.engine.inference import decode_loop
from desktop.engine.vision import images as vision_images

_EVAL_EVERY = 32  # projector graph nodes between two looks at the stop byte


@dataclass
class MediaPrompt:
    """A tokenized prompt with images: ``tokens`` (pseudo tokens at image positions) and, by start position, the
    image chunks to evaluate there. Owns the mtmd chunk list until ``close``."""

    tokens: list[int]
    images: dict[int, tuple[Any, int]] = field(default_factory=dict)  # start -> (chunk, n_pos)
    image_tokens: int = 0  # KV cells the images take
    chunks: Any = None
    _free: Any = None

    def close(self) -> None:
        if self.chunks is not None and self._free is not None:
            self._free(self.chunks)
        self.chunks = None


def _pseudo_id(sha256: str) -> int:
    return -1 - int(sha256[:7], 16)


class Vision:
    """One loaded projector bound to one loaded language model."""

    def __init__(self, llama_cpp: Any, mtmd: Any, llm: Any, path: str, n_threads: int, use_gpu: bool,
                 abort_flag: Any, flash_attn: bool) -> None:
        self._lc, self._mtmd, self.llm = llama_cpp, mtmd, llm
        self.info = gguf_projector.check_pair(llm.model_path, path)
        self._flag = abort_flag
        self._seen = 0
        self._bitmaps: dict[str, Any] = {}  # sha256 -> (mtmd bitmap, prepared image), one generation's worth

        def on_node(_tensor: Any, ask: bool, _data: Any) -> bool:
            if ask:
                self._seen += 1
                return self._seen % _EVAL_EVERY == 0 or self._flag.raw[0] != 0
            return self._flag.raw[0] == 0  # false: the scheduler stops computing this graph

        self._on_node = llama_cpp.llama_cpp.ggml_backend_sched_eval_callback(on_node)  # kept alive with self
        params = mtmd.mtmd_context_params_default()
        params.use_gpu = use_gpu
        params.print_timings = False
        params.n_threads = n_threads
        params.warmup = True
        params.flash_attn_type = (llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED if flash_attn
                                  else llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED)
        params.cb_eval = self._on_node
        params.cb_eval_user_data = None
        self.ctx = mtmd.mtmd_init_from_file(path.encode(), llm.model, params)
        if not self.ctx:
            raise ModelLoadError(f"llama.cpp could not load the projector {os.path.basename(path)} "
                                 f"({self.info.summary()})")
        if not mtmd.mtmd_support_vision(self.ctx):
            self.close()
            raise ModelLoadError(f"{os.path.basename(path)} has no vision encoder")
        self.marker = (mtmd.mtmd_get_marker(self.ctx) or mtmd.mtmd_default_marker()).decode("utf-8")

    def close(self) -> None:
        self.forget_images()
        if getattr(self, "ctx", None):
            self._mtmd.mtmd_free(self.ctx)
        self.ctx = None

    # ------------------------------------------------------------------ images

    def bitmap(self, path: str) -> tuple[Any, vision_images.PreparedImage]:
        data = vision_images.read_image_file(path)
        import hashlib

        sha = hashlib.sha256(data).hexdigest()
        if sha in self._bitmaps:
            return self._bitmaps[sha]
        img = vision_images.prepare(data, self.info.max_side, os.path.basename(path))
        buf = (ctypes.c_uint8 * len(img.rgb)).from_buffer_copy(img.rgb)
        bmp = self._mtmd.mtmd_bitmap_init(img.width, img.height, buf)
        if not bmp:
            raise ImageError(f"llama.cpp could not take {os.path.basename(path)}")
        self._mtmd.mtmd_bitmap_set_id(bmp, sha.encode())
        self._bitmaps[sha] = (bmp, img)
        return bmp, img

    def forget_images(self) -> None:
        for bmp, _img in self._bitmaps.values():
            self._mtmd.mtmd_bitmap_free(bmp)
        self._bitmaps.clear()

    # ------------------------------------------------------------------ prompt

    def tokenize(self, text: str, paths: list[str], add_special: bool = True) -> MediaPrompt:
        """Split ``text`` (one marker per path, in order) into text and image chunks; ``add_special``: let the
        model's BOS be added (not when the rendered text already starts with it)."""
        mtmd = self._mtmd
        if text.count(self.marker) != len(paths):
            raise ImageError(f"the prompt has {text.count(self.marker)} image places for {len(paths)} images")
        loaded = [self.bitmap(p) for p in paths]
        inp = mtmd.mtmd_input_text()
        raw = text.encode("utf-8")
        inp.text, inp.text_len, inp.add_special, inp.parse_special = raw, len(raw), add_special, True
        chunks = mtmd.mtmd_input_chunks_init()
        prompt = MediaPrompt([], chunks=chunks, _free=mtmd.mtmd_input_chunks_free)
        try:
            arr = (mtmd.mtmd_bitmap_p_ctypes * max(1, len(loaded)))(*[b for b, _ in loaded])
            rc = mtmd.mtmd_tokenize(self.ctx, chunks, ctypes.byref(inp), arr, len(loaded))
            if rc != 0:
                raise ImageError(f"llama.cpp could not place the images in the prompt (mtmd_tokenize: {rc})")
            for i in range(mtmd.mtmd_input_chunks_size(chunks)):
                chunk = mtmd.mtmd_input_chunks_get(chunks, i)
                kind = mtmd.mtmd_input_chunk_get_type(chunk)
                if kind == mtmd.MTMD_INPUT_CHUNK_TYPE_TEXT:
                    n = ctypes.c_size_t()
                    ptr = mtmd.mtmd_input_chunk_get_tokens_text(chunk, ctypes.byref(n))
                    prompt.tokens.extend(int(ptr[j]) for j in range(n.value))
                    continue
                n_pos = int(mtmd.mtmd_input_chunk_get_n_pos(chunk))
                cid = (mtmd.mtmd_input_chunk_get_id(chunk) or b"").decode("ascii", "replace")
                prompt.images[len(prompt.tokens)] = (chunk, n_pos)
                prompt.image_tokens += int(mtmd.mtmd_input_chunk_get_n_tokens(chunk))
                prompt.tokens.extend([_pseudo_id(cid or "0" * 7)] * n_pos)
        except BaseException:
            prompt.close()
            raise
        return prompt

    def prefill(self, prompt: MediaPrompt) -> int:
        """Evaluate ``prompt`` into the context, reusing the longest prefix already there, never part of an image
        (``decode_loop.keep_prefix``). Returns how many positions came from the cache, as ``decode_loop.prefill``
        does."""
        llm, tokens = self.llm, prompt.tokens
        reuse = decode_loop.keep_prefix(llm, tokens, [(start, n_pos) for start, (_c, n_pos) in prompt.images.items()])
        pos = reuse
        starts = sorted(s for s in prompt.images if s >= reuse)
        for start in starts + [len(tokens)]:
            if pos < start:
                llm.eval(tokens[pos:start])
                pos = start
            if start == len(tokens):
                break
            chunk, n_pos = prompt.images[start]
            self._eval_image(chunk)
            llm.input_ids[start:start + n_pos] = tokens[start:start + n_pos]
            pos = start + n_pos
        return reuse

    def _eval_image(self, chunk: Any) -> None:
        mtmd, llm, lc = self._mtmd, self.llm, self._lc
        self._seen = 0
        if mtmd.mtmd_encode_chunk(self.ctx, chunk) != 0:
            raise RuntimeError("the projector could not encode the image")
        if self._flag.raw[0] != 0:
            raise RuntimeError("stopped while encoding an image")
        embd = mtmd.mtmd_get_output_embd(self.ctx)
        new_n_past = lc.llama_pos(0)
        rc = mtmd.mtmd_helper_decode_image_chunk(
            self.ctx, llm._ctx.ctx, chunk, embd, lc.llama_pos(llm.n_tokens), lc.llama_seq_id(0), llm.n_batch,
            ctypes.byref(new_n_past), mtmd.mtmd_helper_post_decode_callback(), None)
        if rc != 0:
            raise RuntimeError(f"decoding the image into the context failed ({rc})")
        llm.n_tokens = int(new_n_past.value)
