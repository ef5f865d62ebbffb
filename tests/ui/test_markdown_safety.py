"""Model output is untrusted: no raw HTML, only http(s) links (after asking), no fetched images; emoji-safe colours."""
from __future__ import annotations

from PySide6.QtCore import QUrl
from PySide6.QtGui import QTextDocument

from desktop.ui.chat import conversation as chat_view
from desktop.ui.chat.blocks import AutoText, CodeBlock
from desktop.ui.chat.conversation import ChatView
from desktop.ui.chat.markdown import is_safe_link, set_safe_markdown
from desktop.ui.chat.message_model import ChatModel

HOSTILE = ('Look: <img src=x onerror="alert(1)"> and <a href="javascript:alert(2)">click me</a>\n\n'
           "[also this](javascript:alert(3)) and [a file](file:///etc/passwd) and [docs](https://example.org/x)\n\n"
           "![tracker](https://evil.example/pixel.png) <script>alert(4)</script>")


def _fragments(doc: QTextDocument) -> list:
    out = []
    block = doc.begin()
    while block.isValid():
        it = block.begin()
        while not it.atEnd():
            out.append(it.fragment())
            it += 1
        block = block.next()
    return out


def test_raw_html_stays_inert_text_and_only_https_links_survive() -> None:
    doc = QTextDocument()
    set_safe_markdown(doc, HOSTILE)
    text = doc.toPlainText()
    # The HTML shows as the text it is: nothing was parsed into an image, an anchor or a script.
    assert '<img src=x onerror="alert(1)">' in text
    assert '<a href="javascript:alert(2)">' in text and "<script>alert(4)</script>" in text
    frags = _fragments(doc)
    hrefs = [f.charFormat().anchorHref() for f in frags if f.charFormat().isAnchor()]
    assert hrefs == ["https://example.org/x"]
    assert not any(f.charFormat().isImageFormat() for f in frags)
    assert "[image: https://evil.example/pixel.png]" in text  # said, never fetched
    assert "also this" in text and "a file" in text  # the link text stays, as plain text


def test_link_policy() -> None:
    assert is_safe_link("https://example.org") and is_safe_link("http://example.org/a?b")
    for bad in ("javascript:alert(1)", "file:///etc/passwd", "data:text/html,x", "https:/nohost", "ftp://x.org"):
        assert not is_safe_link(bad), bad


def test_a_link_opens_only_after_confirmation(qtbot, monkeypatch) -> None:
    from PySide6.QtGui import QDesktopServices
    from PySide6.QtWidgets import QMessageBox, QWidget

    opened: list[str] = []
    monkeypatch.setattr(QDesktopServices, "openUrl", lambda url: opened.append(url.toString()) or True)
    asked: list[str] = []

    def answer(choice):
        def exec_(box) -> int:
            asked.append(box.text())
            assert box.defaultButton() is box.button(QMessageBox.StandardButton.Cancel)
            return choice
        return exec_

    parent = QWidget()
    qtbot.addWidget(parent)
    monkeypatch.setattr(QMessageBox, "exec", answer(QMessageBox.StandardButton.Cancel))
    assert not chat_view.confirm_link(parent, QUrl("https://example.org/x")) and opened == []
    monkeypatch.setattr(QMessageBox, "exec", answer(QMessageBox.StandardButton.Open))
    assert chat_view.confirm_link(parent, QUrl("https://example.org/x")) and opened == ["https://example.org/x"]
    assert not chat_view.confirm_link(parent, QUrl("javascript:alert(1)"))  # never even asked
    assert len(asked) == 2 and "https://example.org/x" in asked[0]


def test_rendered_answers_neither_navigate_nor_load_resources(qtbot) -> None:
    m = ChatModel()
    v = ChatView(m)
    qtbot.addWidget(v)
    m.append("assistant", HOSTILE, id=1)
    texts = [w for w in v.widgets[0].findChildren(AutoText) if w.objectName() == "MessageText"]  # the answer's
    assert texts and all(not t.openLinks() and not t.openExternalLinks() for t in texts)
    assert texts[0].loadResource(2, QUrl("file:///etc/passwd")) is None
    clicked: list[QUrl] = []
    v.link_clicked.connect(clicked.append)
    texts[0].anchorClicked.emit(QUrl("https://example.org/x"))
    assert clicked == [QUrl("https://example.org/x")]


def test_highlighting_does_not_drift_after_an_emoji(qtbot) -> None:
    """Pygments counts code points, Qt UTF-16 units: after "😀" every colour used to start one unit early."""
    code = 's = "😀😀"\ndef f():\n    return 1'
    block = CodeBlock(code, "python")
    qtbot.addWidget(block)
    doc = block.edit.document()
    line0 = doc.firstBlock()
    # The string token "😀😀" (with its quotes) is coloured over exactly its UTF-16 range.
    start16 = len('s = '.encode("utf-16-le")) // 2
    string_len16 = len('"😀😀"'.encode("utf-16-le")) // 2
    ranges = [(r.start, r.length) for r in line0.layout().formats()]
    assert (start16, string_len16) in ranges, ranges
    # The next line is unaffected: "def" is coloured from its first letter, "f" is not part of it.
    line1 = line0.next()
    kw = [(r.start, r.length) for r in line1.layout().formats()]
    assert (0, 3) in kw, kw


def test_highlighting_of_a_late_line_after_many_emoji(qtbot) -> None:
    code = "# " + "🎉" * 40 + "\nx = 'a'\ndef g():\n    pass"
    block = CodeBlock(code, "python")
    qtbot.addWidget(block)
    last = block.edit.document().findBlockByNumber(2)
    assert last.text() == "def g():"
    assert (0, 3) in [(r.start, r.length) for r in last.layout().formats()]


def test_single_newlines_stay_line_breaks_as_they_streamed_but_code_is_untouched() -> None:
    doc = QTextDocument()
    poem = "The sea, a mystic realm,\nA place where the stars shine bright.\n\nIn its depths lies"
    set_safe_markdown(doc, poem)
    # A soft break would join the first two lines with a space (Qt shows a hard break as U+2028).
    assert doc.toPlainText().replace("\u2028", "\n") == poem.replace("\n\n", "\n")
    code = "```python\nx = 1\ny = 2\n```\n\nText\n\n| a | b |\n|---|---|\n| 1 | 2 |"
    from desktop.ui.chat.markdown import keep_line_breaks

    assert keep_line_breaks(code) == code  # fences and table rows untouched
    assert keep_line_breaks("a\nb\n") == "a  \nb\n" and keep_line_breaks("a\\\nb") == "a\\\nb"
    doc2 = QTextDocument()
    set_safe_markdown(doc2, "- one\n- two\n\n# Title\nbody")
    assert [line.strip() for line in doc2.toPlainText().replace("\u2028", "\n").splitlines() if line.strip()] == \
        ["one", "two", "Title", "body"]
