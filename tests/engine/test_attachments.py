"""Attachments: reading text/code/PDF, token counts, whole-file context within the budget, and BM25
retrieval of the right chunks with their citations when the files are larger than the budget."""
from __future__ import annotations

from pathlib import Path

import pytest

from desktop.engine.chats import attachments as att
from desktop.engine.chats.attachments import AttachmentError, Citation


def make_pdf(path: Path, pages: list[str]) -> Path:
    """A small, valid PDF with one line of Helvetica text per page (written by hand: xref offsets and all)."""
    objs: list[bytes] = []
    n = len(pages)
    kids = " ".join(f"{4 + 2 * i} 0 R" for i in range(n))
    objs.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    objs.append(f"<< /Type /Pages /Kids [{kids}] /Count {n} >>".encode())
    objs.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    for i, text in enumerate(pages):
        esc = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
        stream = f"BT /F1 12 Tf 72 720 Td ({esc}) Tj ET".encode()
        objs.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> "
                    f"/Contents {5 + 2 * i} 0 R >>".encode())
        objs.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for k, body in enumerate(objs, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % k + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)
    path.write_bytes(bytes(out))
    return path


FILLER = [f"Line {i}: the quarterly report discusses logistics, shipping routes and warehouse staffing." for i in
          range(1, 400)]


@pytest.fixture
def long_text(tmp_path: Path) -> Path:
    lines = list(FILLER)
    lines[250] = "Line 251: the secret launch codename is AURORA-PELICAN, approved by the board."
    p = tmp_path / "notes.md"
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return p


def test_text_and_code_files_are_read_and_counted(tmp_path: Path) -> None:
    p = tmp_path / "hello.py"
    p.write_text("def hello():\n    return 'hi'\n", encoding="utf-8")
    a = att.load_attachment(p)
    assert (a.name, a.kind) == ("hello.py", "text")
    assert a.tokens == att.estimate_tokens(p.read_text()) == 8  # 30 characters / 4, rounded up
    assert att.load_attachment(p, count_tokens=lambda s: 123).tokens == 123  # the model's tokenizer, when given


def test_pdf_pages_are_read(tmp_path: Path) -> None:
    pdf = make_pdf(tmp_path / "paper.pdf", ["Introduction to widgets", "Widgets are blue", "Conclusion"])
    a = att.load_attachment(pdf)
    assert a.kind == "pdf" and [s.page for s in a.sections] == [1, 2, 3]
    assert "Widgets are blue" in a.sections[1].text
    assert a.tokens > 0


@pytest.mark.parametrize("content, suffix, fragment", [
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00", ".png", "looks like a binary file"),
    (b"%PDF-1.4\ngarbage", ".pdf", "not a readable PDF"),
])
def test_unusable_files_are_refused(tmp_path: Path, content: bytes, suffix: str, fragment: str) -> None:
    p = tmp_path / f"file{suffix}"
    p.write_bytes(content)
    with pytest.raises(AttachmentError, match=fragment):
        att.load_attachment(p)
    with pytest.raises(AttachmentError, match="not found|No such file"):
        att.load_attachment(tmp_path / "missing.txt")


def test_small_files_go_in_whole(tmp_path: Path) -> None:
    a = tmp_path / "a.txt"
    a.write_text("alpha\nbeta\ngamma\n", encoding="utf-8")
    pdf = make_pdf(tmp_path / "b.pdf", ["page one text", "page two text"])
    files = [att.load_attachment(a), att.load_attachment(pdf)]
    ctx = att.build_context(files, "what is beta?", budget_tokens=2000)
    assert ctx.mode == "full" and ctx.tokens <= 2000
    assert "alpha\nbeta\ngamma" in ctx.text and "[b.pdf, p. 2]\npage two text" in ctx.text
    assert [c.label() for c in ctx.citations] == ["a.txt, lines 1-3", "b.pdf, p. 1", "b.pdf, p. 2"]
    msgs = att.with_context([{"role": "system", "content": "s"}, {"role": "user", "content": "what is beta?"}], ctx)
    assert msgs[0]["content"] == "s"
    assert msgs[1]["content"].startswith(att._HEAD) and msgs[1]["content"].endswith("\n\nwhat is beta?")


def test_large_text_is_retrieved_by_bm25_with_line_citations(long_text: Path) -> None:
    a = att.load_attachment(long_text)
    assert a.tokens > 5000
    ctx = att.build_context([a], "What is the launch codename?", budget_tokens=600)
    assert ctx.mode == "retrieved" and ctx.tokens <= 600
    assert "AURORA-PELICAN" in ctx.text
    best = ctx.chunks[[c.text for c in ctx.chunks].index(next(c.text for c in ctx.chunks if "AURORA" in c.text))]
    assert best.line_start <= 251 <= best.line_end
    assert Citation("notes.md", line_start=best.line_start, line_end=best.line_end) in ctx.citations
    # the label in the prompt is the one cited
    assert f"[notes.md, lines {best.line_start}-{best.line_end}]" in ctx.text
    # what retrieval ranks first really is the chunk with the answer
    chunks = att.chunk_attachment(a)
    assert "AURORA-PELICAN" in att.retrieve(chunks, "launch codename")[0].text


def test_large_pdf_is_retrieved_with_page_citations(tmp_path: Path) -> None:
    pages = [f"Page {i} covers routine maintenance schedules for the fleet." for i in range(1, 40)]
    pages[16] = "Page 17 states that the reactor coolant must be replaced every nine hundred hours."
    a = att.load_attachment(make_pdf(tmp_path / "manual.pdf", pages))
    ctx = att.build_context([a], "How often is the reactor coolant replaced?", budget_tokens=120)
    assert ctx.mode == "retrieved"
    assert ctx.citations[0] == Citation("manual.pdf", page=17) or Citation("manual.pdf", page=17) in ctx.citations
    assert "nine hundred hours" in ctx.text
    assert att.citations_markdown(ctx.citations).startswith("Sources: manual.pdf, p. ")


def test_chunks_cover_every_line_once(long_text: Path) -> None:
    chunks = att.chunk_attachment(att.load_attachment(long_text), max_tokens=100)
    covered = [n for c in chunks for n in range(c.line_start, c.line_end + 1)]
    assert covered == sorted(set(covered)) and covered[0] == 1 and covered[-1] >= 399
    assert all(c.tokens <= 100 for c in chunks)


def test_one_attachment_budget_for_the_chat_and_the_cli() -> None:
    from desktop.engine.chats import attachments as att

    # The answer's room is its max tokens, at most a quarter of the context; then the conversation and the
    # prompt's own text. The same numbers wherever attachments are fitted (fit_attachments; ui/chat/tool_send.py).
    assert att.context_budget(4096, 512, 100) == 4096 - 512 - 100 - att.PROMPT_SLACK_TOKENS
    assert att.context_budget(4096, 8192, 100) == 4096 - 1024 - 100 - att.PROMPT_SLACK_TOKENS  # a reasoning model
    assert att.context_budget(512, 256, 300) < att.MIN_CONTEXT_TOKENS  # no room: fit_attachments refuses


def test_fit_attachments_uses_the_budget_and_the_last_question(long_text: Path, tmp_path: Path) -> None:
    small = tmp_path / "small.md"
    small.write_text("# Notes\nThe answer is 5.\n", encoding="utf-8")
    history = [{"role": "user", "content": "hello"}, {"role": "assistant", "content": "hi"},
               {"role": "user", "content": "What is the secret launch codename?"}]
    whole = att.fit_attachments([att.load_attachment(small)], history, 4096, 512)
    assert whole.mode == "full" and "The answer is 5." in whole.text
    # Too big for what the context leaves: the chunks that match the *last* user message, within the budget.
    budget = att.context_budget(2048, 256, att.estimate_tokens("\n".join(m["content"] for m in history)))
    got = att.fit_attachments([att.load_attachment(long_text)], history, 2048, 256)
    assert got.mode == "retrieved" and "AURORA-PELICAN" in got.text
    assert 0 < got.tokens <= budget
    assert att.fit_attachments([], history, 64, 512).text == ""  # nothing attached: nothing to fit


def test_fit_attachments_refuses_when_the_context_leaves_no_room(tmp_path: Path) -> None:
    from desktop.engine.errors import ContextOverflowError, NoRoomForAttachmentsError, from_dict

    small = tmp_path / "small.md"
    small.write_text("The answer is 5.\n", encoding="utf-8")
    question = [{"role": "user", "content": "x" * 400}]  # 100 tokens by the estimate
    with pytest.raises(NoRoomForAttachmentsError) as caught:
        att.fit_attachments([att.load_attachment(small)], question, 512, 256)
    err = caught.value
    assert isinstance(err, ContextOverflowError) and err.code == "attachments_no_room"
    assert err.message == ("the context (512 tokens) leaves no room for the attachments after the answer's 128 "
                           "tokens and the conversation's 100; raise the context size")
    assert type(from_dict(err.to_dict())) is NoRoomForAttachmentsError  # survives the process boundary
    # Just enough room (MIN_CONTEXT_TOKENS) is room: the same call with a larger context fits the file.
    n_ctx = next(n for n in range(512, 2048) if att.context_budget(n, 256, 100) >= att.MIN_CONTEXT_TOKENS)
    assert "The answer is 5." in att.fit_attachments([att.load_attachment(small)], question, n_ctx, 256).text
    with pytest.raises(NoRoomForAttachmentsError):
        att.fit_attachments([att.load_attachment(small)], question, n_ctx - 1, 256)
