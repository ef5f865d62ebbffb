"""Read the scalar metadata of a GGUF from its first bytes, without the rest of the file.

gguf-py's GGUFReader needs the whole file (it memory-maps the tensor data), so it cannot read a header
fetched with one ranged HTTP request before a 40 GB download. This parser walks the key/value section
of a byte prefix and keeps the scalar values (architecture numbers, context length, RoPE, token ids);
arrays (the vocabulary) are skipped. The bytes are untrusted: every length is bounded by the buffer.
Runs on any thread of the caller's process (the CLI, or the app's GUI-process workers: remote headers, installed
models' labels).
"""
from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

from gguf import GGUFValueType

from desktop.engine.errors import GGUFError

_SCALARS: dict[int, str] = {
    GGUFValueType.UINT8: "<B", GGUFValueType.INT8: "<b", GGUFValueType.UINT16: "<H", GGUFValueType.INT16: "<h",
    GGUFValueType.UINT32: "<I", GGUFValueType.INT32: "<i", GGUFValueType.FLOAT32: "<f", GGUFValueType.BOOL: "<?",
    GGUFValueType.UINT64: "<Q", GGUFValueType.INT64: "<q", GGUFValueType.FLOAT64: "<d",
}
# Guards against a hostile header that claims absurd counts.
_MAX_KV = 1 << 20
_MAX_STR = 1 << 26


class NeedMoreBytes(Exception):
    """The prefix ended inside the metadata (internal: parse_prefix reports it as truncated)."""


class _Cursor:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise NeedMoreBytes
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def unpack(self, fmt: str) -> Any:
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]

    def string(self) -> str:
        n = self.unpack("<Q")
        if n > _MAX_STR:
            raise GGUFError(f"GGUF header has a string of {n} bytes; the file is corrupt or hostile")
        return self.take(n).decode("utf-8", errors="replace")


def _skip_value(cur: _Cursor, vtype: int) -> None:
    if vtype in _SCALARS:
        cur.take(struct.calcsize(_SCALARS[vtype]))
    elif vtype == GGUFValueType.STRING:
        n = cur.unpack("<Q")
        cur.take(n)
    elif vtype == GGUFValueType.ARRAY:
        etype = cur.unpack("<I")
        count = cur.unpack("<Q")
        if etype in _SCALARS:
            cur.take(count * struct.calcsize(_SCALARS[etype]))
        else:
            for _ in range(count):
                _skip_value(cur, etype)
    else:
        raise GGUFError(f"GGUF header has an unknown value type {vtype}")


def parse_prefix(data: bytes) -> dict[str, Any]:
    """Scalar and string metadata from a GGUF prefix: all of it, or what precedes the end of ``data``
    (then ``"GGUF.truncated": True``). Raises GGUFError if it is not a GGUF."""
    cur = _Cursor(data)
    try:
        magic = cur.take(4)
        if magic != b"GGUF":
            raise GGUFError("not a GGUF file (bad magic)")
        version = cur.unpack("<I")
        cur.unpack("<Q")  # tensor count
        kv_count = cur.unpack("<Q")
    except NeedMoreBytes as exc:
        raise GGUFError(f"not a GGUF file (only {len(data)} bytes)") from exc
    if version < 2:
        raise GGUFError(f"GGUF version {version} is too old")
    if kv_count > _MAX_KV:
        raise GGUFError(f"GGUF header claims {kv_count} metadata keys; the file is corrupt or hostile")
    out: dict[str, Any] = {"GGUF.version": version}
    try:
        for _ in range(kv_count):
            key = cur.string()
            vtype = cur.unpack("<I")
            if vtype in _SCALARS:
                out[key] = cur.unpack(_SCALARS[vtype])
            elif vtype == GGUFValueType.STRING:
                out[key] = cur.string()
            else:
                _skip_value(cur, vtype)
    except NeedMoreBytes:
        out["GGUF.truncated"] = True
    return out


def arch_numbers(meta: dict[str, Any]) -> dict[str, Any]:
    """The numbers the fit estimate needs, from parsed metadata (missing ones are None)."""
    arch = meta.get("general.architecture", "llama")

    def get(suffix: str) -> Any:
        return meta.get(f"{arch}.{suffix}")

    heads = get("attention.head_count")
    embd = get("embedding_length")
    head_dim = get("attention.key_length") or (embd // heads if embd and heads else None)
    from desktop.engine.gguf import arch as gguf_arch

    nums = gguf_arch.numbers(meta)  # value length and llama.cpp's sliding window (Gemma 2/3)
    return {
        "head_dim_v": nums.head_dim_v if nums else None,
        "sliding_window": nums.sliding_window if nums else 0,
        "swa_layers": nums.swa_layers if nums else 0,
        "architecture": arch,
        "layers": get("block_count"),
        "embd": embd,
        "heads": heads,
        "kv_heads": get("attention.head_count_kv") or heads,
        "head_dim": head_dim,
        "context_native": get("context_length"),
        "experts": get("expert_count"),
        "experts_used": get("expert_used_count"),
        "rope_freq_base": get("rope.freq_base"),
        "name": meta.get("general.name"),
        "file_type": meta.get("general.file_type"),
        "eos_token_id": meta.get("tokenizer.ggml.eos_token_id"),
        "bos_token_id": meta.get("tokenizer.ggml.bos_token_id"),
    }


def file_type_name(value: Any) -> str | None:
    """A ``general.file_type`` number as llama.cpp names it (``Q8_0``, ``ALL_F32``: gguf-py's ``LlamaFileType``
    without ``MOSTLY_``), ``type N`` for a number gguf-py does not know, None for a file that declares none. The one
    reading of the key: the doctor's report, a projector's info and the views' quant labels all use it."""
    if value is None:
        return None
    from gguf import LlamaFileType

    try:
        return LlamaFileType(int(value)).name.removeprefix("MOSTLY_")
    except (TypeError, ValueError):
        return f"type {value}"


def read_file_type(path: str | Path, prefix_bytes: int) -> str | None:
    """The file type a GGUF on disk declares (:func:`file_type_name`), read from its first ``prefix_bytes`` only;
    None when the file cannot be read, is not a GGUF or declares none."""
    try:
        with open(path, "rb") as f:
            meta = parse_prefix(f.read(prefix_bytes))
    except (OSError, GGUFError, ValueError):
        return None
    return file_type_name(meta.get("general.file_type"))
