"""The GGUF doctor: inspect a file's metadata without llama.cpp, diagnose known defects, repair them.

A GGUF is untrusted input: every read is bounded by the file size and every parse failure becomes a
:class:`GGUFError`. Reading goes through gguf-py's ``GGUFReader``. Repairs (repair.py) are same-size
in-place edits with an undo journal of the original bytes; files the app may not change are repaired at
load time instead (``load_overrides``). Runs on any thread, in any process.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from desktop.engine.errors import GGUFError

LLAMA3_EOT_ID = 128009
LLAMA3_EOT_TEXT = "<|eot_id|>"
LLAMA3_VOCAB = 128256
TOKEN_TYPE_NAMES = {1: "NORMAL", 2: "UNKNOWN", 3: "CONTROL", 4: "USER_DEFINED", 5: "UNUSED", 6: "BYTE"}
CONTROL = 3
_SPLIT_RE = re.compile(r"-(\d{5})-of-(\d{5})\.gguf$")
_OLD_EXPERT_RE = re.compile(r"^blk\.\d+\.ffn_(gate|down|up)\.\d+\.weight$")
_NEW_EXPERT_RE = re.compile(r"^blk\.\d+\.ffn_(gate|down|up)_exps\.weight$")


@dataclass(frozen=True)
class Problem:
    code: str
    message: str
    fixable: bool = False


@dataclass(frozen=True)
class TokenInfo:
    id: int
    text: str | None
    type: str | None


@dataclass
class Report:
    """What the doctor found in one file."""

    path: str
    file_size: int
    version: int
    architecture: str | None
    name: str | None
    file_type: str | None
    context_length: int | None
    rope_freq_base: float | None
    rope_scaling: str | None
    rope_scaling_factor: float | None
    block_count: int | None
    embedding_length: int | None
    head_count: int | None
    head_count_kv: int | None
    tokenizer_model: str | None
    pre_tokenizer: str | None
    vocab_size: int
    bos: TokenInfo | None
    eos: TokenInfo | None
    eot: TokenInfo | None
    has_chat_template: bool
    chat_template: str | None
    expert_count: int
    expert_used_count: int
    expert_layout: str | None  # "merged", "separate" (old Mixtral layout) or None
    split_index: int | None  # 1-based shard number when the file is one shard of a split
    split_count: int | None
    tensor_count: int
    problems: list[Problem] = field(default_factory=list)
    # gguf.arch: head sizes, sliding window, experts (ArchNumbers.to_dict(); {} without a block count), the ids
    # of the special tokens found by text, where the EOT came from, and the format detected for a file
    # without a template ({"format", "reason"}, or {} when unknown).
    numbers: dict[str, Any] = field(default_factory=dict)
    specials: dict[str, int] = field(default_factory=dict)
    eot_source: str | None = None  # "metadata" | "text" | None
    detected: dict[str, str] = field(default_factory=dict)
    # How the model thinks (inference.reasoning: "think", "magistral", "harmony"), "" when it does not.
    reasoning_format: str = ""

    @property
    def is_llama3_vocab(self) -> bool:
        return self.vocab_size >= LLAMA3_VOCAB and self._tok128009 == LLAMA3_EOT_TEXT

    _tok128009: str | None = None
    # Where the repairable values sit: name -> (absolute offset, current bytes, numpy dtype name). Taken
    # while the reader is open, so a repair does not parse the 128k-token vocabulary a second time.
    patch_slots: dict[str, tuple[int, bytes, str]] = field(default_factory=dict, repr=False)

    def to_dict(self, *, include_template: bool = False) -> dict[str, Any]:
        d = asdict(self)
        d.pop("_tok128009", None)
        d.pop("patch_slots", None)
        if not include_template:
            d.pop("chat_template", None)
        d["is_llama3_vocab"] = self.is_llama3_vocab
        return d


# ----------------------------------------------------------------------------------------------
# reading


_READER: Any = None



# What a file is, from its first bytes, for the one sentence that says it is not a GGUF (never raw bytes).
_MAGICS = ((b"PK\x03\x04", "a ZIP archive"), (b"\x89PNG", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"),
           (b"%PDF", "a PDF document"), (b"GGML", "an old GGML model"), (b"lmgg", "an old GGML model"),
           (b"tjgg", "an old GGJT model (convert it to GGUF)"), (b"\x7fELF", "a program"),
           (b"\x1f\x8b", "a gzip archive"), (b"7z\xbc\xaf", "a 7-Zip archive"))


def what_file(head: bytes) -> str:
    """A few words on what a file that is not a GGUF looks like."""
    for magic, what in _MAGICS:
        if head.startswith(magic):
            return f"it is {what}"
    if len(head) >= 9 and head[8:9] == b"{":
        return "it looks like a safetensors file (convert it to GGUF with llama.cpp's converter)"
    if head and all(32 <= c < 127 or c in (9, 10, 13) for c in head):
        return "it is a text file"
    return "it does not start with the GGUF signature"


def _reader_class() -> Any:
    """gguf-py's ``GGUFReader``, holding the file as a plain ndarray view of its ``np.memmap``.

    Every slice of an ``np.memmap`` runs the subclass's Python ``__array_finalize__``, and the reader slices
    twice per vocabulary string: a 49k-token vocab took 1.7 s to read, 0.5 s through a plain view (bench/NOTES.md,
    change 10). Same mapping, same bytes, same offsets; the view keeps the map alive. The doctor never writes
    through the map (repairs are file writes), so losing ``memmap.flush`` costs nothing.
    """
    global _READER
    if _READER is None:
        import numpy as np
        from gguf import GGUFReader

        class PlainReader(GGUFReader):  # type: ignore[misc, valid-type]
            @property  # type: ignore[override]
            def data(self) -> Any:
                return self._plain

            @data.setter
            def data(self, value: Any) -> None:  # GGUFReader.__init__ assigns its memmap here
                self._plain = value.view(np.ndarray) if isinstance(value, np.memmap) else value

        _READER = PlainReader
    return _READER


def open_reader(path: str | Path, mode: str = "r"):
    """A gguf-py ``GGUFReader`` over ``path`` (``mode`` is the reader's), after checking the file: it exists, is a
    regular file, starts with the GGUF magic, parses, and no tensor ends past its end. Every failure is a
    :class:`GGUFError` naming the file; the other GGUF readers (``projector``) open files through this."""
    GGUFReader = _reader_class()  # noqa: N806 - gguf-py's class, minus the memmap overhead

    p = Path(path)
    if not p.exists():
        raise GGUFError(f"{p}: no such file")
    if not p.is_file():
        raise GGUFError(f"{p}: not a regular file")
    size = p.stat().st_size
    if size < 24:
        raise GGUFError(f"{p}: not a GGUF file (only {size} bytes)")
    with p.open("rb") as fh:
        head = fh.read(16)
    if head[:4] != b"GGUF":
        raise GGUFError(f"{p}: not a GGUF file ({what_file(head)})")
    try:
        reader = GGUFReader(p, mode)  # type: ignore[arg-type]
    except (ValueError, IndexError, KeyError, OverflowError, UnicodeDecodeError, MemoryError, TypeError) as exc:
        raise GGUFError(f"{p}: the GGUF header is truncated or corrupt ({exc})") from exc
    except OSError as exc:
        raise GGUFError(f"{p}: cannot read the file ({exc.strerror or exc})") from exc
    for t in reader.tensors:
        end = int(t.data_offset) + int(t.n_bytes)  # data_offset is absolute
        if end > size:
            raise GGUFError(f"{p}: the file is truncated (tensor {t.name} ends at byte {end}, file has {size})")
    return reader


def scalar(reader, key: str) -> Any:
    """The value of metadata key ``key`` in an :func:`open_reader` reader (a string, number or list), or None when
    the file has no such key or its value cannot be decoded."""
    f = reader.get_field(key)
    if f is None:
        return None
    try:
        return f.contents()
    except (ValueError, IndexError, UnicodeDecodeError):
        return None


def _arch_key(reader, arch: str | None, suffix: str) -> Any:
    return scalar(reader, f"{arch}.{suffix}") if arch else None


def _token_info(reader, tid: Any, n_vocab: int) -> TokenInfo | None:
    if tid is None or not isinstance(tid, int):
        return None
    text = typ = None
    if 0 <= tid < n_vocab:
        tokens = reader.get_field("tokenizer.ggml.tokens")
        types = reader.get_field("tokenizer.ggml.token_type")
        try:
            text = tokens.contents(tid) if tokens is not None else None
        except (IndexError, UnicodeDecodeError):
            text = None
        if types is not None and tid < len(types.data):
            typ = TOKEN_TYPE_NAMES.get(int(types.parts[types.data[tid]][0]), "?")
    return TokenInfo(tid, text, typ)


_CACHE: dict[tuple[str, int, int], Report] = {}


def inspect(path: str | Path, *, use_cache: bool = True) -> Report:
    """Read a GGUF's metadata and diagnose it. Raises GGUFError for anything that is not a sound GGUF.

    gguf-py parses every vocab entry in Python (seconds for a 128k vocab), so reports are cached per
    (path, size, mtime); a repair changes the mtime, and ``fix`` reads uncached anyway.
    """
    p = Path(path)
    try:
        st = p.stat()
        key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    except OSError:
        key = None
    if use_cache and key in _CACHE:
        return _CACHE[key]
    rep = _disk_get(key) if use_cache and key is not None else None
    if rep is None:
        rep = _inspect(p)
        if key is not None:
            _disk_put(key, rep)
    if key is not None:
        if len(_CACHE) > 32:
            _CACHE.clear()
        _CACHE[key] = rep
    return rep


# Reports also persist on disk, keyed the same way: every engine start and every model switch asks the
# doctor about the file, and gguf-py takes 1.7 s (more under load) on a 49k vocabulary (bench/NOTES.md).
_DISK_VERSION = 2  # 2: numbers, specials, eot_source, detected (gguf.arch)


def _disk_path(key: tuple[str, int, int]) -> Path:
    import hashlib

    from desktop.engine import paths

    return paths.data_dir() / "doctor-cache" / (hashlib.sha1(key[0].encode()).hexdigest() + ".json")


def _disk_get(key: tuple[str, int, int]) -> Report | None:
    try:
        d = json.loads(_disk_path(key).read_text())
        if d.pop("_key") != [key[0], key[1], key[2], _DISK_VERSION]:
            return None
        slots = {k: (int(o), bytes.fromhex(b), str(t)) for k, (o, b, t) in d.pop("_slots").items()}
        tok = d.pop("_tok128009")
        for k in ("bos", "eos", "eot"):
            d[k] = TokenInfo(**d[k]) if d[k] else None
        problems = [Problem(**pr) for pr in d.pop("problems")]
        rep = Report(**d, problems=problems, _tok128009=tok)
        rep.patch_slots = slots
        return rep
    except (OSError, ValueError, KeyError, TypeError):
        return None  # absent, stale or unreadable: read the file again


def _disk_put(key: tuple[str, int, int], rep: Report) -> None:
    d = asdict(rep)
    d.pop("patch_slots")
    d["_key"] = [key[0], key[1], key[2], _DISK_VERSION]
    d["_slots"] = {k: [o, b.hex(), t] for k, (o, b, t) in rep.patch_slots.items()}
    try:
        target = _disk_path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(d))
        tmp.replace(target)
    except OSError:
        pass  # a read-only data dir only costs speed


def _inspect(p: Path) -> Report:
    reader = open_reader(p)
    arch = scalar(reader, "general.architecture")
    tokens = reader.get_field("tokenizer.ggml.tokens")
    n_vocab = len(tokens.data) if tokens is not None else 0
    tok128009 = None
    if tokens is not None and n_vocab > LLAMA3_EOT_ID:
        try:
            tok128009 = tokens.contents(LLAMA3_EOT_ID)
        except (IndexError, UnicodeDecodeError):
            tok128009 = None
    names = [t.name for t in reader.tensors]
    if any(_OLD_EXPERT_RE.match(n) for n in names):
        layout = "separate"
    elif any(_NEW_EXPERT_RE.match(n) for n in names):
        layout = "merged"
    else:
        layout = None
    split_count = scalar(reader, "split.count")
    split_no = scalar(reader, "split.no")
    m = _SPLIT_RE.search(p.name)
    if split_count is None and m:
        split_no, split_count = int(m.group(1)) - 1, int(m.group(2))
    template = scalar(reader, "tokenizer.chat_template")
    from desktop.engine.gguf import arch as gguf_arch
    from desktop.engine.gguf.header import file_type_name
    from desktop.engine.inference import reasoning

    specials = gguf_arch.find_specials(tokens)
    eot = _token_info(reader, scalar(reader, "tokenizer.ggml.eot_token_id"), n_vocab)
    eot_source = "metadata" if eot else None
    by_text = gguf_arch.eot_by_text(specials) if eot is None else None
    if by_text:
        eot, eot_source = _token_info(reader, by_text[0], n_vocab), "text"
    nums = gguf_arch.numbers(lambda k: scalar(reader, k), n_vocab)
    det = gguf_arch.detect_format(arch, scalar(reader, "tokenizer.ggml.model"), specials,
                                  scalar(reader, "general.name"))
    rep = Report(
        path=str(p),
        file_size=p.stat().st_size,
        version=int(scalar(reader, "GGUF.version") or 0),
        architecture=arch,
        name=scalar(reader, "general.name"),
        file_type=file_type_name(scalar(reader, "general.file_type")),
        context_length=_arch_key(reader, arch, "context_length"),
        rope_freq_base=_arch_key(reader, arch, "rope.freq_base"),
        rope_scaling=_arch_key(reader, arch, "rope.scaling.type"),
        rope_scaling_factor=_arch_key(reader, arch, "rope.scaling.factor"),
        block_count=_arch_key(reader, arch, "block_count"),
        embedding_length=_arch_key(reader, arch, "embedding_length"),
        head_count=_arch_key(reader, arch, "attention.head_count"),
        head_count_kv=_arch_key(reader, arch, "attention.head_count_kv"),
        tokenizer_model=scalar(reader, "tokenizer.ggml.model"),
        pre_tokenizer=scalar(reader, "tokenizer.ggml.pre"),
        vocab_size=n_vocab,
        bos=_token_info(reader, scalar(reader, "tokenizer.ggml.bos_token_id"), n_vocab),
        eos=_token_info(reader, scalar(reader, "tokenizer.ggml.eos_token_id"), n_vocab),
        eot=eot,
        has_chat_template=bool(template),
        chat_template=template if isinstance(template, str) else None,
        expert_count=int(_arch_key(reader, arch, "expert_count") or 0),
        expert_used_count=int(_arch_key(reader, arch, "expert_used_count") or 0),
        expert_layout=layout,
        split_index=(int(split_no) + 1) if split_count and int(split_count) > 1 and split_no is not None else None,
        split_count=int(split_count) if split_count and int(split_count) > 1 else None,
        tensor_count=len(reader.tensors),
        numbers=nums.to_dict() if nums else {},
        specials=specials,
        eot_source=eot_source,
        detected={"format": det.format, "reason": det.reason} if det else {},
        reasoning_format=reasoning.detect(template if isinstance(template, str) else None, specials,
                                          det.format if det and not template else "gguf"),
        _tok128009=tok128009,
    )
    rep.problems = _diagnose(rep, reader)
    rep.patch_slots = _patch_slots(reader, n_vocab)
    return rep


def _part_offset(field, part_index: int) -> int:
    return int(field.offset) + sum(int(field.parts[i].nbytes) for i in range(part_index))


def _patch_slots(reader, n_vocab: int) -> dict[str, tuple[int, bytes, str]]:
    slots: dict[str, tuple[int, bytes, str]] = {}
    f = reader.get_field("tokenizer.ggml.eos_token_id")
    if f is not None and f.data:
        part = f.parts[f.data[0]]
        slots["eos"] = (_part_offset(f, f.data[0]), part.tobytes(), part.dtype.str)
    f = reader.get_field("tokenizer.ggml.token_type")
    if f is not None and n_vocab > LLAMA3_EOT_ID and len(f.data) > LLAMA3_EOT_ID:
        idx = f.data[LLAMA3_EOT_ID]
        part = f.parts[idx]
        slots["tt128009"] = (_part_offset(f, idx), part.tobytes(), part.dtype.str)
    return slots


def _diagnose(rep: Report, reader) -> list[Problem]:
    probs: list[Problem] = []
    if rep.is_llama3_vocab:
        if rep.eos is None or rep.eos.id != LLAMA3_EOT_ID:
            got = f"{rep.eos.id} ({rep.eos.text})" if rep.eos else "missing"
            probs.append(Problem(
                "eot_128009_not_eos",
                f"Llama-3 end-of-turn token 128009 <|eot_id|> is not the EOS token (EOS is {got}); "
                "generation would run past the end of the answer.",
                fixable=True,
            ))
        tinfo = _token_info(reader, LLAMA3_EOT_ID, rep.vocab_size)
        if tinfo is not None and tinfo.type != "CONTROL":
            probs.append(Problem(
                "eot_128009_not_control",
                f"Llama-3 token 128009 <|eot_id|> is typed {tinfo.type}, not CONTROL; it would be printed "
                "as text instead of ending the turn.",
                fixable=True,
            ))
    if rep.tokenizer_model == "gpt2" and not rep.pre_tokenizer:
        probs.append(Problem(
            "missing_pre_tokenizer",
            "The file has no tokenizer.ggml.pre (pre-tokenizer); llama.cpp falls back to a default that "
            "tokenizes Llama-3 text incorrectly. The app passes it at load time.",
        ))
    if not rep.has_chat_template:
        probs.append(Problem(
            "missing_chat_template",
            "The file has no chat template; use a profile with an explicit prompt format.",
        ))
    if rep.expert_layout == "separate":
        probs.append(Problem(
            "mixtral_old_expert_layout",
            "This Mixtral-style file stores each expert as separate tensors (the pre-2024 layout), which "
            "current llama.cpp cannot load; download a newer conversion of the model.",
        ))
    if rep.split_count:
        probs.append(Problem(
            "split_shard",
            f"This file is shard {rep.split_index} of {rep.split_count}; load the first shard with all "
            "shards in the same folder.",
        ))
    return probs


def load_overrides(rep: Report) -> dict[str, Any]:
    """kv_overrides for llama.cpp that cover keys the file lacks or gets wrong (for read-only files)."""
    ov: dict[str, Any] = {}
    if rep.is_llama3_vocab:
        if rep.eos is None or rep.eos.id != LLAMA3_EOT_ID:
            ov["tokenizer.ggml.eos_token_id"] = LLAMA3_EOT_ID
        if rep.eot is None or rep.eot.id != LLAMA3_EOT_ID:
            ov["tokenizer.ggml.eot_token_id"] = LLAMA3_EOT_ID
        if not rep.pre_tokenizer:
            ov["tokenizer.ggml.pre"] = "llama-bpe"
    return ov
