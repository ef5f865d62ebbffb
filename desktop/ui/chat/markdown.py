"""Markdown for model output: block splitting for streaming, safe rendering, and Pygments code highlighting.

Model output is untrusted. It is rendered with Qt's Markdown importer with raw HTML turned off (an ``<img
onerror=...>`` or ``<a href="javascript:...">`` in an answer shows as the text it is), links other than
http(s) lose their anchor, and no resource (image) is ever fetched. GUI thread (the highlighter is a Qt object).
"""
from __future__ import annotations

import bisect
import re
from dataclasses import dataclass

from PySide6.QtGui import (
    QColor,
    QFont,
    QPalette,
    QSyntaxHighlighter,
    QTextCharFormat,
    QTextCursor,
    QTextDocument,
)

# ---------------------------------------------------------------------------------------------- Markdown split

_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})[ \t]*(?P<lang>[^\s`]*)[^\n]*$")


@dataclass
class Segment:
    kind: str  # "prose" or "code"
    text: str
    lang: str = ""


def split_markdown(text: str) -> list[Segment]:
    """Prose and fenced code blocks, in order. An unclosed fence (still streaming) runs to the end."""
    out: list[Segment] = []
    prose: list[str] = []
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            prose.append(lines[i])
            i += 1
            continue
        if any(s.strip() for s in prose):
            out.append(Segment("prose", "\n".join(prose).strip("\n")))
        prose = []
        fence = m.group("fence")
        code: list[str] = []
        i += 1
        while i < len(lines):
            stripped = lines[i].strip()
            if stripped.startswith(fence[0] * len(fence)) and set(stripped) <= {fence[0]}:
                i += 1
                break
            code.append(lines[i])
            i += 1
        out.append(Segment("code", "\n".join(code), m.group("lang").lower()))
    if any(s.strip() for s in prose):
        out.append(Segment("prose", "\n".join(prose).strip("\n")))
    return out


def stable_prefix(text: str) -> int:
    """Length of the leading part of a streaming answer made of finished blocks (0 if none).

    A block is finished after a blank line outside a code fence, or after a fence's closing line. Later
    text cannot change how such a prefix renders, so it can be rendered once while the rest streams.
    """
    ends = block_ends(text)
    return ends[-1] if ends else 0


def blocks(text: str) -> list[str]:
    """``text`` cut after each finished block (:func:`block_ends`), the unfinished rest last: a message shows one
    widget per block, so a streamed answer and the same answer rendered at once are laid out alike."""
    out, start = [], 0
    for end in [*block_ends(text), len(text)]:
        if text[start:end].strip():
            out.append(text[start:end])
        start = end
    return out


def block_ends(text: str) -> list[int]:
    """Where each finished block of ``text`` ends (see :func:`stable_prefix`), in order."""
    ends: list[int] = []
    pos = 0
    fence: str | None = None
    lines = text.split("\n")
    for i, line in enumerate(lines[:-1]):  # the last line is still being written
        end = pos + len(line) + 1
        stripped = line.strip()
        if fence is None:
            m = _FENCE.match(line)
            if m:
                fence = m.group("fence")
            elif not stripped and i > 0:
                if ends and ends[-1] == pos:  # more blank lines: they stay with the block before
                    ends[-1] = end
                else:
                    ends.append(end)
        elif stripped.startswith(fence) and set(stripped) <= {fence[0]}:
            fence = None
            ends.append(end)
        pos = end
    return ends


# ---------------------------------------------------------------------------------------------- highlighting


def is_dark(palette: QPalette) -> bool:
    return palette.color(QPalette.ColorRole.Base).lightness() < 128


class PygmentsHighlighter(QSyntaxHighlighter):
    """Colours a code block with Pygments, lexed once as a whole (so multi-line strings come out right)."""

    def __init__(self, doc: QTextDocument, lang: str, dark: bool) -> None:
        super().__init__(None)
        from pygments.lexers import get_lexer_by_name, guess_lexer
        from pygments.styles import get_style_by_name
        from pygments.util import ClassNotFound

        text = doc.toPlainText()
        try:
            lexer = get_lexer_by_name(lang) if lang else guess_lexer(text)
        except ClassNotFound:
            lexer = get_lexer_by_name("text")
        self.lexer_name = lexer.name
        style = get_style_by_name("monokai" if dark else "default")
        fmts: dict[object, QTextCharFormat | None] = {}
        self._starts: list[int] = []
        self._spans: list[tuple[int, int, QTextCharFormat]] = []
        # Pygments counts code points; Qt positions are UTF-16 units. Every offset is converted, or an emoji
        # (two UTF-16 units) shifts the colours of everything after it by one.
        to16 = _utf16_offsets(text)
        for idx, tok, val in lexer.get_tokens_unprocessed(text):
            if tok not in fmts:
                st = style.style_for_token(tok)
                f = None
                if st.get("color") or st.get("bold") or st.get("italic"):
                    f = QTextCharFormat()
                    if st.get("color"):
                        f.setForeground(QColor("#" + st["color"]))
                    if st.get("bold"):
                        f.setFontWeight(QFont.Weight.Bold)
                    if st.get("italic"):
                        f.setFontItalic(True)
                fmts[tok] = f
            f = fmts[tok]
            if f is not None and val:
                a, b = to16(idx), to16(idx + len(val))
                self._starts.append(a)
                self._spans.append((a, b - a, f))
        self.setDocument(doc)
        self.rehighlight()  # now, not on the next event loop turn: the block is shown complete

    def highlightBlock(self, text: str) -> None:  # noqa: N802 - Qt's name
        start = self.currentBlock().position()  # UTF-16 units
        end = start + self.currentBlock().length() - 1  # not len(text): Python counts code points
        i = max(0, bisect.bisect_right(self._starts, start) - 1)
        while i < len(self._spans):
            s, n, f = self._spans[i]
            if s >= end:
                break
            a, b = max(s, start), min(s + n, end)
            if b > a:
                self.setFormat(a - start, b - a, f)
            i += 1


def _utf16_offsets(text: str):
    """A function mapping a code-point index of ``text`` to its UTF-16 offset (identity for BMP-only text)."""
    wide = [i for i, ch in enumerate(text) if ord(ch) > 0xFFFF]
    if not wide:
        return lambda i: i
    return lambda i: i + bisect.bisect_left(wide, i)


# ---------------------------------------------------------------------------------------------- safe Markdown

SAFE_SCHEMES = ("http", "https")


def is_safe_link(url: str) -> bool:
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return False
    return parts.scheme.lower() in SAFE_SCHEMES and bool(parts.netloc)


def keep_line_breaks(text: str) -> str:
    """Make each single newline inside a paragraph a hard line break (two trailing spaces), as chat apps do.

    Plain Markdown joins such lines with a space, so a poem or an address that streamed line by line would
    collapse into one line the moment its paragraph is rendered. Code (fenced or indented), table rows and lines
    already ending in a break are left as they are.
    """
    lines = text.split("\n")
    fence = ""
    for i, line in enumerate(lines[:-1]):
        m = _FENCE.match(line)
        if fence:
            if m and m["fence"][0] == fence[0] and len(m["fence"]) >= len(fence) and not m["lang"]:
                fence = ""
            continue
        if m:
            fence = m["fence"]
            continue
        nxt = lines[i + 1]
        if (line.strip() and nxt.strip() and "|" not in line and not line.startswith(("    ", "\t"))
                and not line.endswith(("  ", "\\")) and not _FENCE.match(nxt)):
            lines[i] = line + "  "
    return "\n".join(lines)


def set_safe_markdown(doc: QTextDocument, text: str) -> None:
    """Render ``text`` as GitHub Markdown without raw HTML; anchors other than http(s) become plain text."""
    feats = QTextDocument.MarkdownFeature.MarkdownDialectGitHub | QTextDocument.MarkdownFeature.MarkdownNoHTML
    doc.setMarkdown(keep_line_breaks(text), feats)
    fixes: list[tuple[int, int, QTextCharFormat]] = []
    block = doc.begin()
    while block.isValid():
        it = block.begin()
        while not it.atEnd():
            frag = it.fragment()
            fmt = frag.charFormat()
            if fmt.isImageFormat() or (fmt.isAnchor() and not is_safe_link(fmt.anchorHref())):
                fixes.append((frag.position(), frag.length(), QTextCharFormat(fmt)))
            it += 1
        block = block.next()
    for pos, n, fmt in reversed(fixes):  # from the end: an edit does not move the fixes before it
        cur = QTextCursor(doc)
        cur.setPosition(pos)
        cur.setPosition(pos + n, QTextCursor.MoveMode.KeepAnchor)
        if fmt.isImageFormat():
            # No image is fetched from anywhere (a local path would be read, a URL is a tracker).
            cur.insertText(f"[image: {fmt.toImageFormat().name()}]", QTextCharFormat())
        else:
            plain = QTextCharFormat(fmt)
            plain.setAnchor(False)
            plain.setAnchorHref("")
            plain.setFontUnderline(False)
            plain.clearForeground()
            cur.setCharFormat(plain)
