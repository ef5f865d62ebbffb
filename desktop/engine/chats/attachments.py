"""Attachments: text, Markdown, code and PDF files put into the prompt, whole or by retrieval, with citations.

A file is read into sections (one per PDF page, via ``pypdf``; one for a text file) and counted in tokens:
with the model's tokenizer when the caller passes one (``count_tokens``), else the documented estimate of
:data:`CHARS_PER_TOKEN` characters per token (English prose and code with the BPE vocabularies of Llama 3,
Qwen and Mistral average 3.5-4.5). When everything fits the context budget it goes in whole. When it does not,
the files are split into chunks of whole lines (about :data:`CHUNK_TOKENS` each, never across PDF pages),
ranked for the user's question by SQLite FTS5's BM25 in an in-memory database, and the best chunks that fit
are used. Every chunk carries its citation: the file and the page (PDF) or the line range (text).
:func:`fit_attachments` is the one budget rule of the chat and ``ask --attach``. Runs in the caller's process
(the CLI, or a worker thread of the app's GUI process: it reads files), never in the engine process.
"""
from __future__ import annotations

import math
import re
import sqlite3
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from desktop.engine.errors import AppError, NoRoomForAttachmentsError

CHARS_PER_TOKEN = 4.0
CHUNK_TOKENS = 256
MAX_FILE_BYTES = 32 * 2**20
TEXT_SUFFIXES = frozenset(
    ".txt .md .markdown .rst .org .tex .log .csv .tsv .json .jsonl .yaml .yml .toml .ini .cfg .conf .xml .html .htm "
    ".css .scss .js .mjs .ts .tsx .jsx .py .pyi .ipynb .rb .php .pl .lua .r .jl .go .rs .c .h .cc .cpp .hpp .cxx "
    ".java .kt .kts .scala .swift .m .mm .cs .fs .sh .bash .zsh .fish .ps1 .bat .sql .proto .graphql .vue .svelte "
    ".dart .zig .nim .hs .ml .ex .exs .erl .clj .el .vim .cmake .mk .gradle .dockerfile .env .gitignore".split())
TokenCounter = Callable[[str], int]


class AttachmentError(AppError):
    """A file cannot be attached (missing, too large, binary, an unreadable or encrypted PDF)."""

    code = "attachment_error"


def estimate_tokens(text: str) -> int:
    """The documented estimate: ceil(characters / CHARS_PER_TOKEN)."""
    return math.ceil(len(text) / CHARS_PER_TOKEN) if text else 0


def engine_token_counter(client: Any, timeout_s: float = 60.0) -> TokenCounter:
    """Count with the engine's loaded model (a ``Tokenize`` request); the estimate where it cannot (a remote
    backend, no model). Blocks while the engine finishes a running generation: call it off the GUI thread."""
    def count(text: str) -> int:
        if not text:
            return 0
        try:
            return int(client.count_tokens(text, timeout=timeout_s))
        except AppError:
            return estimate_tokens(text)

    return count


@dataclass(frozen=True)
class Citation:
    """Where a passage comes from: a PDF page, or a line range of a text file."""

    file: str
    page: int | None = None
    line_start: int | None = None
    line_end: int | None = None

    def label(self) -> str:
        if self.page is not None:
            return f"{self.file}, p. {self.page}"
        if self.line_start is not None:
            return f"{self.file}, lines {self.line_start}-{self.line_end}"
        return self.file

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "label": self.label()}


@dataclass
class Section:
    text: str
    page: int | None = None  # 1-based PDF page
    first_line: int = 1


@dataclass
class Attachment:
    path: str
    name: str
    kind: str  # "text" | "pdf"
    sections: list[Section]
    tokens: int
    size: int

    @property
    def text(self) -> str:
        return "\n\n".join(s.text for s in self.sections)


@dataclass
class Chunk:
    file: str
    text: str
    page: int | None
    line_start: int
    line_end: int
    tokens: int
    order: int = 0  # position in its file, to put retrieved chunks back in reading order

    def citation(self) -> Citation:
        if self.page is not None:
            return Citation(self.file, page=self.page)
        return Citation(self.file, line_start=self.line_start, line_end=self.line_end)


@dataclass
class AttachmentContext:
    """What goes into the prompt, and what to cite under the answer."""

    text: str
    citations: list[Citation] = field(default_factory=list)
    tokens: int = 0
    mode: str = "full"  # "full" | "retrieved"
    chunks: list[Chunk] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------- reading


def _read_pdf(path: Path) -> list[Section]:
    try:
        from pypdf import PdfReader
        from pypdf.errors import PyPdfError
    except ImportError as exc:  # pragma: no cover - a dependency
        raise AttachmentError("PDF attachments need the pypdf package") from exc
    try:
        reader = PdfReader(str(path))
        if reader.is_encrypted:
            raise AttachmentError(f"{path.name} is an encrypted PDF; decrypt it first")
        return [Section((page.extract_text() or "").strip(), page=i + 1) for i, page in enumerate(reader.pages)]
    except AttachmentError:
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, OSError) as exc:
        raise AttachmentError(f"{path.name} is not a readable PDF ({exc})") from exc


def _read_text(path: Path) -> list[Section]:
    data = path.read_bytes()
    if b"\x00" in data[:8192]:
        raise AttachmentError(f"{path.name} looks like a binary file; attach text, Markdown, code or PDF files")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        if path.suffix.lower() not in TEXT_SUFFIXES:
            raise AttachmentError(f"{path.name} is not UTF-8 text; attach text, Markdown, code or PDF files")
        text = data.decode("utf-8", errors="replace")
    return [Section(text.lstrip("\ufeff"))]


def load_attachment(path: str | Path, count_tokens: TokenCounter | None = None) -> Attachment:
    """Read one file; raises AttachmentError with one sentence."""
    p = Path(path).expanduser()
    try:
        st = p.stat()
    except OSError as exc:
        raise AttachmentError(f"cannot attach {p}: {exc.strerror or 'not found'}") from exc
    if not p.is_file():
        raise AttachmentError(f"cannot attach {p}: not a file")
    if st.st_size > MAX_FILE_BYTES:
        raise AttachmentError(f"{p.name} is {st.st_size / 2**20:.0f} MiB; attachments are limited to "
                              f"{MAX_FILE_BYTES // 2**20} MiB")
    try:
        is_pdf = p.suffix.lower() == ".pdf" or p.open("rb").read(5) == b"%PDF-"
        sections = _read_pdf(p) if is_pdf else _read_text(p)
    except OSError as exc:
        raise AttachmentError(f"cannot read {p.name}: {exc.strerror or exc}") from exc
    count = count_tokens or estimate_tokens
    tokens = sum(count(s.text) for s in sections)
    return Attachment(str(p), p.name, "pdf" if is_pdf else "text", sections, tokens, st.st_size)


# ---------------------------------------------------------------------------------------------- chunks


def chunk_attachment(att: Attachment, max_tokens: int = CHUNK_TOKENS,
                     count_tokens: TokenCounter | None = None) -> list[Chunk]:
    """Whole-line chunks of about ``max_tokens`` (a longer line is cut), never across a PDF page.

    Lines are sized with the estimate (one tokenizer round trip per line would be slow); each chunk's
    ``tokens`` is then counted with ``count_tokens`` when given.
    """
    count = count_tokens or estimate_tokens
    line_cost = estimate_tokens
    out: list[Chunk] = []
    for sec in att.sections:
        lines = sec.text.split("\n")
        buf: list[str] = []
        start = sec.first_line
        n = 0

        def flush(end_line: int) -> None:
            nonlocal buf, n
            text = "\n".join(buf).strip()
            if text:
                out.append(Chunk(att.name, text, sec.page, start, end_line, count(text), len(out)))
            buf, n = [], 0

        for i, line in enumerate(lines):
            lineno = sec.first_line + i
            cost = line_cost(line) + 1
            if buf and n + cost > max_tokens:
                flush(lineno - 1)
                start = lineno
            while cost > max_tokens:  # one enormous line: cut it by characters
                step = int(max_tokens * CHARS_PER_TOKEN)
                buf, n = [line[:step]], max_tokens
                flush(lineno)
                start = lineno
                line = line[step:]
                cost = line_cost(line) + 1
            buf.append(line)
            n += cost
        flush(sec.first_line + len(lines) - 1)
    return out


_WORD = re.compile(r"\w+", re.UNICODE)


def retrieve(chunks: list[Chunk], query: str, limit: int = 50) -> list[Chunk]:
    """``chunks`` ranked for ``query`` by FTS5 BM25 (best first); chunks without a query term come last."""
    if not chunks:
        return []
    terms = sorted({w.lower() for w in _WORD.findall(query) if len(w) > 1})
    db = sqlite3.connect(":memory:")
    try:
        db.execute("CREATE VIRTUAL TABLE c USING fts5(text, tokenize='porter unicode61')")
        db.executemany("INSERT INTO c(rowid, text) VALUES (?, ?)", ((i, ch.text) for i, ch in enumerate(chunks)))
        ranked: list[int] = []
        if terms:
            match = " OR ".join('"' + t.replace('"', '""') + '"' for t in terms)
            ranked = [r[0] for r in db.execute("SELECT rowid FROM c WHERE c MATCH ? ORDER BY bm25(c) LIMIT ?",
                                                (match, limit))]
    finally:
        db.close()
    seen = set(ranked)
    return [chunks[i] for i in ranked] + [ch for i, ch in enumerate(chunks) if i not in seen][:max(0, limit - len(ranked))]


# ---------------------------------------------------------------------------------------------- context

_HEAD = ("The user attached these files. Use them to answer, and cite the passages you use by their labels "
         "in square brackets.\n")


def _file_block(att: Attachment) -> str:
    if att.kind == "pdf":
        body = "\n\n".join(f"[{att.name}, p. {s.page}]\n{s.text}" for s in att.sections if s.text)
    else:
        body = att.text
    return f"<file name=\"{att.name}\">\n{body}\n</file>"


def _whole_citations(att: Attachment) -> list[Citation]:
    if att.kind == "pdf":
        return [Citation(att.name, page=s.page) for s in att.sections if s.text]
    n_lines = att.text.rstrip("\n").count("\n") + 1
    return [Citation(att.name, line_start=1, line_end=n_lines)]


PROMPT_SLACK_TOKENS = 256  # the chat template, system prompt and tool descriptions around the attachments
# Less room than this for the attachments: fit_attachments refuses (NoRoomForAttachmentsError) rather than cut
# them to nothing.
MIN_CONTEXT_TOKENS = 64


def answer_room(n_ctx: int, max_tokens: int | None) -> int:
    """The tokens kept for the answer: its max tokens, at most a quarter of the context (so a reasoning model's
    large max_tokens does not crowd out every file)."""
    return max(1, min(max_tokens or n_ctx // 4, n_ctx // 4))


def context_budget(n_ctx: int, max_tokens: int | None, conversation_tokens: int) -> int:
    """The tokens attachments may fill (``fit_attachments`` applies it): what the context leaves after the
    answer's room (``answer_room``), the conversation, and the prompt's own text around them."""
    return n_ctx - answer_room(n_ctx, max_tokens) - conversation_tokens - PROMPT_SLACK_TOKENS


def fit_attachments(attachments: Iterable[Attachment], messages: list[dict[str, Any]], n_ctx: int,
                    max_tokens: int | None, count_tokens: TokenCounter | None = None) -> AttachmentContext:
    """The attachments' text for the last user message of ``messages`` (the conversation so far, that message
    included), within what the context leaves them: the one budget rule of the chat and ``ask --attach``.

    ``n_ctx`` is the loaded context, ``max_tokens`` the answer's; ``count_tokens`` the model's own counter
    (``engine_token_counter``), else the estimate. Whole files when they fit, else the chunks that best match the
    question (``build_context``). Raises :class:`NoRoomForAttachmentsError` when the context leaves fewer than
    :data:`MIN_CONTEXT_TOKENS` for them: a message is not sent without the files it was given."""
    atts = list(attachments)
    if not atts:
        return AttachmentContext("")
    count = count_tokens or estimate_tokens
    used = count("\n".join(str(m.get("content") or "") for m in messages))
    budget = context_budget(n_ctx, max_tokens, used)
    if budget < MIN_CONTEXT_TOKENS:
        raise NoRoomForAttachmentsError(
            f"the context ({n_ctx} tokens) leaves no room for the attachments after the answer's "
            f"{answer_room(n_ctx, max_tokens)} tokens and the conversation's {used}; raise the context size")
    question = next((str(m.get("content") or "") for m in reversed(messages) if m.get("role") == "user"), "")
    return build_context(atts, question, budget, count)


def build_context(attachments: Iterable[Attachment], question: str, budget_tokens: int,
                  count_tokens: TokenCounter | None = None, chunk_tokens: int = CHUNK_TOKENS) -> AttachmentContext:
    """The attachments' text for the prompt within ``budget_tokens``: whole if it fits, else the best chunks."""
    atts = list(attachments)
    if not atts:
        return AttachmentContext("")
    count = count_tokens or estimate_tokens
    whole = _HEAD + "\n\n".join(_file_block(a) for a in atts)
    whole_tokens = count(whole)
    if whole_tokens <= budget_tokens:
        return AttachmentContext(whole, [c for a in atts for c in _whole_citations(a)], whole_tokens, "full")
    # Chunks are sized with the estimate and counted exactly only when considered, best first.
    chunks = [ch for a in atts for ch in chunk_attachment(a, chunk_tokens)]
    used = count(_HEAD)
    chosen: list[Chunk] = []
    for ch in retrieve(chunks, question, limit=len(chunks)):
        if budget_tokens - used < 16:
            break
        if ch.tokens + 4 > budget_tokens - used:
            continue  # clearly too big: a smaller, lower-ranked chunk may still fit
        ch.tokens = count(ch.text)
        cost = ch.tokens + estimate_tokens(ch.citation().label()) + 4
        if used + cost > budget_tokens:
            continue
        chosen.append(ch)
        used += cost
    files = [a.name for a in atts]
    chosen.sort(key=lambda c: (files.index(c.file), c.order))
    text = _HEAD + "\n\n".join(f"[{c.citation().label()}]\n{c.text}" for c in chosen)
    return AttachmentContext(text, [c.citation() for c in chosen], count(text), "retrieved", chosen)


def with_context(messages: list[dict[str, Any]], ctx: AttachmentContext) -> list[dict[str, Any]]:
    """``messages`` with the attachments' text put before the last user message."""
    if not ctx.text:
        return messages
    out = [dict(m) for m in messages]
    for m in reversed(out):
        if m.get("role") == "user":
            m["content"] = f"{ctx.text}\n\n{m.get('content', '')}"
            break
    return out


def citations_markdown(citations: Iterable[Citation]) -> str:
    """The line shown (and exported) under an answer: ``Sources: a.pdf, p. 2; b.md, lines 1-40``."""
    labels = list(dict.fromkeys(c.label() for c in citations))
    return "Sources: " + "; ".join(labels) if labels else ""
