"""One message of the conversation: a bubble (the user's) or a full-width answer, its footer and actions."""
from __future__ import annotations

from typing import Any, Protocol

from PySide6.QtCore import Qt
from PySide6.QtGui import (
    QGuiApplication,
    QKeySequence,
    QPalette,
)
from PySide6.QtWidgets import (
    QApplication,
    QFrame,
    QGraphicsOpacityEffect,
    QHBoxLayout,
    QLabel,
    QLayout,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from desktop.ui.chat.blocks import AutoText, ThinkingBlock
from desktop.ui.chat.image_views import ImageStrip
from desktop.ui.chat.message_body import STOPPED_THINKING, MessageBody
from desktop.ui.chat.message_model import (
    BranchRole,
    ChatModel,
    DimmedRole,
    IdRole,
    ProvenanceRole,
    ReasoningRole,
    RoleRole,
    StateRole,
    StatsRole,
    TextRole,
    ThinkingTimeRole,
)
from desktop.ui.theme import polish, theme
from desktop.ui.tools.call_rows import CitationsLabel, ToolCallList


class Conversation(Protocol):
    """What a message needs of the view that holds it (the chat view): its signals, and whether it is busy."""

    busy: bool
    branch_requested: Any
    edit_requested: Any
    regenerate_requested: Any
    copied: Any
    link_clicked: Any

_TEXT_ROLES = {int(Qt.ItemDataRole.DisplayRole), int(TextRole)}
_STREAM_ROLES = _TEXT_ROLES | {int(ReasoningRole)}  # what a streamed flush changes
_STATE_TAG = {"streaming": "writing…", "cancelled": "stopped", "error": "interrupted"}
_STATIC = Qt.WidgetAttribute.WA_StaticContents
_GROW_AT_ONCE = QLayout.SizeConstraint.SetMinimumSize


def stats_text(provenance: dict, stats: dict, live_rate: float | None = None) -> str:
    """The line under an answer: model, speed, tokens, time to first token (what is known so far)."""
    parts = [provenance.get("profile_name") or ""]
    rate = stats.get("tokens_per_s") if stats else live_rate
    if rate:
        parts.append(f"{rate:.1f} tok/s")
    if stats and stats.get("generated_tokens"):
        thinking = stats.get("reasoning_tokens") or 0
        parts.append(f"{stats['generated_tokens']:,} tokens" + (f" ({thinking:,} thinking)" if thinking else ""))
    if stats and stats.get("ttft_s"):
        parts.append(f"{stats['ttft_s'] * 1000:.0f} ms to first token")
    if stats and stats.get("draft_acceptance") is not None:  # speculative decoding ran
        parts.append(f"draft {stats['draft_acceptance'] * 100:.0f} % accepted")
    return " · ".join(p for p in parts if p)


def _tool(icon: str, tip: str) -> QToolButton:
    b = QToolButton()
    theme.set_icon(b, icon)
    b.setToolTip(tip)
    b.setAccessibleName(tip)
    b.setAutoRaise(True)
    return b


class MessageWidget(MessageBody, QFrame):
    """One message: a bubble (the user's) or a full-width answer, with its footer of stats and actions."""

    def __init__(self, view: Conversation, row: int) -> None:
        super().__init__()
        self.view = view
        self.message_id: int | None = None
        self.role = ""
        self.state = ""
        self.text = ""
        self.rendered_text: str | None = None  # what the Markdown body shows (None: streaming body)
        self.stream: AutoText | None = None  # the plain tail of a streaming answer
        self.streamed_len = 0  # characters in the tail
        self.committed = 0  # characters already rendered as Markdown above the tail
        self._streamed = ""  # the streaming text shown so far
        self.pinned = False  # actions always shown (the last answer)
        self.setObjectName("Message")
        # Opaque, in the conversation's colour: a streamed flush then repaints this message only, not the column
        # under it (measured in tests/ui/test_chat_view.py: the per-flush cost otherwise grows with the answer).
        self.setBackgroundRole(QPalette.ColorRole.Base)
        self.setAutoFillBackground(True)
        self.setFocusPolicy(Qt.FocusPolicy.TabFocus)  # Tab reaches a message; its actions then show
        # A streamed line makes the message taller on every flush. Static contents: a plain background, so a resize
        # repaints only the strip it uncovers, not every finished paragraph on screen (which cost more per flush the
        # longer the answer, see tests/ui/test_chat_view.py). The column and container above are static too.
        self.setAttribute(_STATIC)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 6, 0, 6)
        outer.setSpacing(2)
        # Grow at once to what the layout needs: otherwise the layout is first run in the old, too small height and
        # squeezes (moves) every finished paragraph, then again when the parent catches up, one widget level per
        # event-loop pass.
        outer.setSizeConstraint(_GROW_AT_ONCE)
        self.row = QHBoxLayout()
        self.row.setContentsMargins(0, 0, 0, 0)
        self.bubble = QFrame()
        self.bubble.setObjectName("Bubble")
        bl = QVBoxLayout(self.bubble)
        bl.setContentsMargins(14, 8, 14, 8)
        bl.setSpacing(4)
        head = QHBoxLayout()
        head.setSpacing(6)
        self.who = QLabel()
        self.who.setObjectName("Who")
        self.tag = QLabel()
        self.tag.setObjectName("MessageTag")
        head.addWidget(self.who)
        head.addWidget(self.tag)
        head.addStretch(1)
        bl.addLayout(head)
        # A reasoning model's thinking first (folded once the answer begins), then tool calls (collapsed), the text,
        # and sources under it (from the answer's provenance).
        self.thinking = ThinkingBlock()
        self.thinking.hide()
        bl.addWidget(self.thinking)
        self.tool_calls = ToolCallList()
        self.tool_calls.hide()
        self._tool_records: list = []
        bl.addWidget(self.tool_calls)
        self.images = ImageStrip()  # the pictures a user message carried, above its text
        self.images.loaded.connect(self._fit_bubble)
        bl.addWidget(self.images)
        self.body = QVBoxLayout()
        self.body.setSpacing(8)
        bl.addLayout(self.body)
        # Why an answer ended early (max tokens), under its text.
        self.notice = QLabel()
        self.notice.setObjectName("AnswerNotice")
        # One short line: a wrapped label under an alignment gets too little height and cuts its own text.
        self.notice.hide()
        bl.addWidget(self.notice, 0, Qt.AlignmentFlag.AlignLeft)
        # The files a sent message carried, as chips under its text.
        self.files = QHBoxLayout()
        self.files.setContentsMargins(0, 0, 0, 0)
        self.files.setSpacing(4)
        self.files.addStretch(1)
        bl.addLayout(self.files)
        self._file_names: list[str] = []
        self.citations = CitationsLabel()
        self.citations.setObjectName("MessageStats")
        bl.addWidget(self.citations)
        bl.addStretch(1)  # room left when the tail shrinks (a finished paragraph) goes below, nothing above moves
        self.row.addWidget(self.bubble, 1)
        outer.addLayout(self.row)
        foot = QHBoxLayout()
        foot.setContentsMargins(10, 0, 4, 0)
        foot.setSpacing(2)
        self.stats_label = QLabel()
        self.stats_label.setObjectName("MessageStats")
        self.prev_btn = _tool("mdi6.chevron-left", "Previous version")
        self.branch_label = QLabel()
        self.branch_label.setObjectName("MessageStats")
        self.next_btn = _tool("mdi6.chevron-right", "Next version")
        self.actions = QWidget()
        al = QHBoxLayout(self.actions)
        al.setContentsMargins(0, 0, 0, 0)
        al.setSpacing(0)
        self.copy_btn = _tool("mdi6.content-copy", "Copy")
        self.edit_btn = _tool("mdi6.pencil-outline", "Edit")
        self.regen_btn = _tool("mdi6.refresh", "Regenerate")
        for b in (self.copy_btn, self.edit_btn, self.regen_btn):
            al.addWidget(b)
        sp = self.actions.sizePolicy()
        sp.setRetainSizeWhenHidden(True)
        self.actions.setSizePolicy(sp)
        self.actions.hide()
        self.foot = foot
        self.prev_btn.clicked.connect(lambda: self.view.branch_requested.emit(self.message_id, -1))
        self.next_btn.clicked.connect(lambda: self.view.branch_requested.emit(self.message_id, +1))
        self.copy_btn.clicked.connect(self.copy)
        self.edit_btn.clicked.connect(lambda: self.view.edit_requested.emit(self.message_id))
        self.regen_btn.clicked.connect(lambda: self.view.regenerate_requested.emit(self.message_id))
        outer.addLayout(foot)
        self._opacity: QGraphicsOpacityEffect | None = None

    def _arrange(self) -> None:
        """User messages: bubble on the right with actions under it; answers: full width, stats then actions."""
        while self.foot.count():
            self.foot.takeAt(0)
        while self.row.count():
            self.row.takeAt(0)
        # An answer's bubble is transparent and grows with the stream (see __init__); the user's is a rounded
        # box as wide as its text, which must repaint whole when it is resized and may be narrower than its minimum.
        answer = self.role != "user"
        self.bubble.setAttribute(_STATIC, answer)
        self.bubble.layout().setSizeConstraint(_GROW_AT_ONCE if answer else QLayout.SizeConstraint.SetDefaultConstraint)
        if not answer:
            self.bubble.setMinimumSize(0, 0)
        if self.role == "user":
            self.row.addStretch(1)
            self.row.addWidget(self.bubble, 0)
            self.foot.addStretch(1)
            for w in (self.actions, self.prev_btn, self.branch_label, self.next_btn):
                self.foot.addWidget(w)
        else:
            self.row.addWidget(self.bubble, 1)
            for w in (self.prev_btn, self.branch_label, self.next_btn, self.stats_label, self.actions):
                self.foot.addWidget(w)
            self.foot.addStretch(1)

    # ---------------------------------------------------------------- hover / focus actions

    def set_actions_visible(self, on: bool) -> None:
        self.actions.setVisible(on or self.pinned)

    def enterEvent(self, e) -> None:  # noqa: N802
        self.set_actions_visible(True)
        super().enterEvent(e)

    def leaveEvent(self, e) -> None:  # noqa: N802
        fw = QApplication.focusWidget()
        self.set_actions_visible(fw is not None and (fw is self or self.isAncestorOf(fw)))
        super().leaveEvent(e)

    def resizeEvent(self, e) -> None:  # noqa: N802 - a user bubble is as wide as its text, at most 80%
        super().resizeEvent(e)
        self._fit_bubble()

    def _fit_bubble(self) -> None:
        if self.role != "user":
            if self.bubble.maximumWidth() != 16777215:  # resizes come with every streamed line: no relayout
                self.bubble.setMaximumWidth(16777215)
            return
        fm = self.fontMetrics()
        longest = max((fm.horizontalAdvance(line) for line in (self.text or " ").split("\n")), default=0)
        longest = max(longest, self.images.width_hint())
        self.bubble.setMaximumWidth(max(80, min(int(self.width() * 0.8), longest + 48)))

    # ---------------------------------------------------------------- updates from the model

    def update_from(self, model: ChatModel, row: int, roles: list[int] | None = None) -> None:
        idx = model.index(row)
        text = model.data(idx, TextRole) or ""
        state = model.data(idx, StateRole)
        if (roles and set(roles) <= _STREAM_ROLES and state == "streaming" == self.state
                and model.data(idx, IdRole) == self.message_id):
            # A streamed flush: only the text (or the thinking) grew. Touching the header repaints the whole message.
            self.text = text
            if int(ReasoningRole) in roles or (text and self.thinking.live):
                self._show_thinking(model, idx, state)
            if set(roles) & _TEXT_ROLES:
                self._stream_to(text)
            return
        self.message_id = model.data(idx, IdRole)
        role = model.data(idx, RoleRole)
        self.text = text
        if role != self.role:
            self.role = role
            self.bubble.setProperty("role", role)
            polish(self.bubble)
            self._arrange()
        prov = model.data(idx, ProvenanceRole) or {}
        stats = model.data(idx, StatsRole) or {}
        if role == "marker":
            self._show_marker(text)
            return
        self._show_tools(prov)
        self.state = state
        self._show_thinking(model, idx, state)
        self._show_files(prov if role == "user" else {})
        self.images.set_images([i for i in prov.get("images") or [] if isinstance(i, dict)] if role == "user" else [])
        self._show_notice(stats if role == "assistant" else {}, prov)
        self.who.setText({"user": "", "assistant": prov.get("profile_name") or "Assistant",
                          "system": "System"}.get(role, role))
        self.who.setVisible(role != "user")
        if role == "assistant" and prov.get("profile_name"):
            self.who.setToolTip(f"{prov.get('profile_name')} · {prov.get('model_file', '')} · "
                                f"{prov.get('quant') or ''} · seed {prov.get('seed')}")
        dim = bool(model.data(idx, DimmedRole))
        self.tag.setText(" · ".join([t for t in (_STATE_TAG.get(state, ""),
                                                 "not in the model's context" if dim else "") if t]))
        self.tag.setVisible(bool(self.tag.text()))
        self.stats_label.setText(stats_text(prov, stats) if role == "assistant" else "")
        self.stats_label.setVisible(role == "assistant")
        i, n = model.data(idx, BranchRole) or (0, 1)
        self.branch_label.setText(f"{i + 1}/{n}")
        for w in (self.prev_btn, self.branch_label, self.next_btn):
            w.setVisible(n > 1)
        busy = self.view.busy
        self.prev_btn.setEnabled(i > 0 and not busy)
        self.next_btn.setEnabled(i < n - 1 and not busy)
        last = row == model.rowCount() - 1
        self.edit_btn.setVisible(role == "user")
        self.regen_btn.setVisible(role == "assistant" and last)
        self.edit_btn.setEnabled(not busy)
        self.regen_btn.setEnabled(not busy)
        self.pinned = role == "assistant" and last and state != "streaming"
        self.set_actions_visible(self.hasFocus())
        if state == "streaming":
            self._stream_to(text)
        elif self.rendered_text != text:
            self._render(text)
        self._fit_bubble()
        if dim and self._opacity is None:
            self._opacity = QGraphicsOpacityEffect(self)
            self._opacity.setOpacity(0.45)
            self.setGraphicsEffect(self._opacity)
        elif not dim and self._opacity is not None:
            self.setGraphicsEffect(None)
            self._opacity = None

    def _show_tools(self, prov: dict) -> None:
        records = prov.get("tool_calls") or []
        if records != self._tool_records:
            for r in records:  # add_record updates a call already shown (same id) in place
                self.tool_calls.add_record(r)
            self._tool_records = list(records)
        self.tool_calls.setVisible(bool(records))
        self.citations.set_citations(prov.get("citations") or [])

    def _show_thinking(self, model: ChatModel, idx: Any, state: str) -> None:
        reasoning = model.data(idx, ReasoningRole) or ""
        if not reasoning:
            self.thinking.hide()
            return
        text = model.data(idx, TextRole) or ""
        self.thinking.show_thinking(reasoning, state == "streaming" and not text, model.data(idx, ThinkingTimeRole))
        self.thinking.show()

    def open_thinking(self) -> bool:
        """Open the thinking block (a search hit in the thinking); False when the message has none."""
        if self.thinking.isHidden():
            return False
        self.thinking.set_open(True)
        return True

    def _show_notice(self, stats: dict, prov: dict) -> None:
        if stats.get("stopped_thinking"):
            text = STOPPED_THINKING
        elif stats.get("finish_reason") == "length":
            limit = (prov.get("sampling") or {}).get("max_tokens")
            text = f"Cut off at the max tokens limit ({limit:,})" if limit else "Cut off at the max tokens limit"
        else:
            text = ""
        self.notice.setText(text)
        self.notice.setVisible(bool(text))

    def _show_files(self, prov: dict) -> None:
        names = [str(a.get("name", "")) for a in prov.get("attachments") or [] if isinstance(a, dict)]
        if names == self._file_names:
            return
        self._file_names = names
        while self.files.count() > 1:  # the stretch stays last
            item = self.files.takeAt(0)
            if item.widget():
                item.widget().hide()  # gone from this paint on, not when the event loop deletes it
                item.widget().deleteLater()
        for i, name in enumerate(names):
            chip = QLabel(name)
            chip.setObjectName("AttachmentChip")
            chip.setToolTip(f"Attached: {name}")
            chip.setAccessibleName(f"Attached file {name}")
            self.files.insertWidget(i, chip)

    def set_live_rate(self, prov: dict, rate: float | None) -> None:
        self.stats_label.setText(stats_text(prov, {}, rate))

    def _show_marker(self, text: str) -> None:
        self._clear_body()
        self.rendered_text = text
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.who.hide()
        for w in (self.stats_label, self.prev_btn, self.branch_label, self.next_btn, self.actions):
            w.hide()
        label = QLabel(f"— {text} —")
        label.setObjectName("Marker")
        label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.body.addWidget(label)

    def copy(self) -> None:
        QGuiApplication.clipboard().setText(self.text)
        self.view.copied.emit("message")

    def keyPressEvent(self, e) -> None:  # noqa: N802 - a focused message: Ctrl+C copies it
        if e.matches(QKeySequence.StandardKey.Copy):
            self.copy()
            return
        super().keyPressEvent(e)
