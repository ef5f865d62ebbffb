"""Reopening the app on a chat: from the first paint on, no block of an answer lies over another (text drawn over
text) and no message over the next."""
from __future__ import annotations

from PySide6.QtCore import QPoint
from PySide6.QtWidgets import QApplication, QWidget

from desktop.engine.chats.store import ChatStore
from desktop.ui.chat.message_widget import MessageWidget

ANSWER = ("The sea covers most of the planet, and its surface moves with wind and tide; under it, currents carry heat "
          "from the equator toward the poles.\n\nDeep water is cold and dark, yet full of life.\n\n"
          "1. **Cod**: a cold-water fish.\n2. **Tuna**: a fast swimmer.\n\n"
          "```python\nprint('a long line of code that should scroll inside its own block')\n```\n\nThe end.")


def _seed() -> int:
    s = ChatStore()
    c = s.create_chat("Sea")
    u = s.add_message(c, None, "user", "Tell me about the sea, with a list and some code please.")
    a = s.add_message(c, u, "assistant", "", state="streaming", provenance={"profile_name": "Demo"})
    s.finish_message(a, ANSWER, "done", stats={"tokens_per_s": 100.0, "generated_tokens": 80})
    s.close()
    return c


def _overlaps(widgets: list[QWidget], frame: QWidget) -> list[tuple[str, str]]:
    boxes = sorted(((w.mapTo(frame, QPoint(0, 0)).y(), w.height(), w) for w in widgets if w.isVisible()),
                   key=lambda b: b[0])
    return [(type(a[2]).__name__, type(b[2]).__name__) for a, b in zip(boxes, boxes[1:]) if a[0] + a[1] > b[0] + 1]


def test_the_first_paint_of_a_reopened_chat_has_nothing_drawn_over_anything(qtbot) -> None:
    from desktop.ui.shell.main_window import MainWindow

    cid = _seed()
    w = MainWindow()
    qtbot.addWidget(w)
    w.resize(1100, 760)
    w.open_chat(cid)
    w.show()
    QApplication.processEvents()  # one pass: what the first paint shows
    msgs = [m for m in w.view.findChildren(MessageWidget) if m.isVisible()]
    assert len(msgs) == 2
    assert _overlaps(msgs, w.view.widget()) == []
    for m in msgs:
        body = m.body if hasattr(m, "body") else m
        parts = [c for c in body.findChildren(QWidget) if c.parentWidget() is body]
        assert _overlaps(parts, m) == [], m.role
    qtbot.wait(200)
    for m in msgs:
        body = m.body if hasattr(m, "body") else m
        parts = [c for c in body.findChildren(QWidget) if c.parentWidget() is body]
        assert _overlaps(parts, m) == []
