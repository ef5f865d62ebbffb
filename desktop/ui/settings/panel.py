"""The chat settings side panel (Ctrl+, toggles it): this chat's sampling, context, GPU layers, system prompt.

Changes apply to this chat's next message at once (the session's overrides; nothing is written). "Save as
this profile's default" writes them as the profile's minimal override YAML, through the same
``profiles.save_override`` the profile settings dialog uses, on a worker thread. Context and GPU layers are
load settings: the panel says they need a reload and offers it. The rows are the settings table's per-chat
fields (``profiles.fields``), in the form the dialog shows too (``form.SettingsForm``); a profile saved anywhere
shows here as soon as the store reloads.
"""
from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QFrame, QLabel, QPushButton, QScrollArea, QVBoxLayout, QWidget

from desktop.engine import profiles
from desktop.engine.errors import UnknownProfileError
from desktop.engine.profiles import Profile, ProfileStore
from desktop.engine.profiles.fields import nest, panel_fields, read
from desktop.ui.workers import JobKeeper
from desktop.ui.settings.form import SettingsForm

#: the per-chat settings (apply to the next message) and the load settings the panel offers a reload for
CHAT_FIELDS = [f for f in panel_fields() if not f.reload]
LOAD_FIELDS = [f for f in panel_fields() if f.reload]
SAMPLING_KEYS = [f.key for f in CHAT_FIELDS if f.section == "sampling"]
REASONING_KEYS = [f.key for f in CHAT_FIELDS if f.section == "reasoning"]


def speculative_text(profile: Profile | None) -> str:
    """One line for the profile's speculative decoding: the draft model, prompt lookup, or off."""
    sp = profile.speculative if profile is not None else None
    if sp is None or not (sp.draft or sp.prompt_lookup):
        return "Speculative decoding: off"
    how = f"draft model {sp.draft}" if sp.draft else "prompt lookup"
    return f"Speculative decoding: {how}, {sp.n_draft} tokens per step"


class SettingsPanel(QFrame):
    sampling_changed = Signal(dict)  # this chat's sampling overrides
    system_prompt_changed = Signal(object)  # str, or None for the profile's own
    reasoning_changed = Signal(dict)  # this chat's thinking overrides ({"thinking": False, "effort": "high"})
    reload_requested = Signal(int, object)  # n_ctx, gpu layers ("auto" or an int)
    saved = Signal(str, bool)  # profile id, needs a reload (like the dialog's)
    _store_reloaded = Signal()  # queued to the GUI thread from whichever thread reloaded the store

    def __init__(self, store: ProfileStore, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("SettingsPanel")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        self.store = store
        self.profile: Profile | None = None
        self.loaded: dict[str, Any] = {}  # n_ctx and gpu layers the engine runs with
        self.reasoning_format = ""  # how the loaded model thinks (Loaded.reasoning_format)
        self._jobs = JobKeeper(self)
        self._saving = False
        head = QLabel("Chat settings")
        head.setProperty("heading", True)
        self.scope = QLabel("Apply to this chat's next message.")
        self.scope.setProperty("hint", True)
        self.scope.setWordWrap(True)
        self.form = SettingsForm([("", CHAT_FIELDS), ("Loading", LOAD_FIELDS)], sliders=True)
        self.form.changed.connect(self._changed)
        rows = self.form.rows
        self.params = {k.split(".", 1)[1]: rows[k] for k in SAMPLING_KEYS}
        self.ctx, self.gpu = rows["context.default"], rows["load.gpu_layers"]
        self.system = rows["prompt.system_prompt"].text
        assert self.system is not None
        self.system.setPlaceholderText("The profile's system prompt")
        rows["prompt.system_prompt"].hint.setText(rows["prompt.system_prompt"].hint.text() + " (This chat only.)")
        inner = QWidget()
        col = QVBoxLayout(inner)
        col.setContentsMargins(16, 12, 16, 12)
        col.setSpacing(6)
        col.addWidget(head)
        col.addWidget(self.scope)
        col.addWidget(self.form)
        # Speculative decoding is a profile setting (read-only here): edit it in the profile's settings.
        self.speculative = QLabel(speculative_text(None))
        self.speculative.setObjectName("SpeculativeSetting")
        self.speculative.setProperty("hint", True)
        self.speculative.setWordWrap(True)
        col.addWidget(self.speculative)
        self.reload_note = QLabel("Context and GPU layers take effect when the model is reloaded.")
        self.reload_note.setProperty("hint", True)
        self.reload_note.setWordWrap(True)
        self.reload_btn = QPushButton("Reload now")
        self.reload_btn.clicked.connect(self._reload)
        col.addWidget(self.reload_note)
        col.addWidget(self.reload_btn)
        self.save_btn = QPushButton("Save as this profile's default")
        self.save_btn.setProperty("primary", True)
        self.save_btn.clicked.connect(self.save_default)
        self.status = QLabel()
        self.status.setProperty("hint", True)
        self.status.setWordWrap(True)
        col.addSpacing(8)
        col.addWidget(self.save_btn)
        col.addWidget(self.status)
        col.addStretch(1)
        self.scroll = QScrollArea()
        self.scroll.setWidgetResizable(True)
        self.scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.scroll.setWidget(inner)
        inner.setObjectName("SettingsPanel")
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.scroll)
        self.setMinimumWidth(280)
        self.setMaximumWidth(360)
        self._update_reload()
        # A profile saved anywhere (the profile dialog, this panel, a reload) shows here at once.
        self._store_reloaded.connect(self._on_store_reloaded)

        def listener() -> None:
            try:
                self._store_reloaded.emit()
            except RuntimeError:  # the panel is gone
                store.remove_listener(listener)

        store.add_listener(listener)
        self.destroyed.connect(lambda *_: store.remove_listener(listener))

    # ---------------------------------------------------------------- values

    def set_profile(self, profile: Profile | None, n_ctx: int | None = None, gpu_layers: Any = None,
                    reasoning_format: str | None = None) -> None:
        """Show ``profile``'s values (a new chat, or another model loaded: ``reasoning_format`` is how the
        loaded file thinks, "" for a model that does not)."""
        self.profile = profile
        if reasoning_format is not None:
            self.reasoning_format = reasoning_format
        self.speculative.setText(speculative_text(profile))
        if profile is None:
            return
        gl = profile.load.gpu_layers if gpu_layers is None else gpu_layers
        gl = "auto" if gl == "auto" or int(gl) < 0 else int(gl)
        self.loaded = {"n_ctx": n_ctx or profile.context.default, "gpu_layers": gl}
        values = {f.key: read(profile, f.key) for f in CHAT_FIELDS}
        self.form.fill({**values, "context.default": self.loaded["n_ctx"], "load.gpu_layers": gl}, profile)
        self._show_reasoning(profile)
        self._update_reload()
        self.sampling_changed.emit({})  # the profile's values again: no per-chat overrides
        self.system_prompt_changed.emit(None)
        self.reasoning_changed.emit({})

    def _show_reasoning(self, profile: Profile) -> None:
        # Thinking controls only for a model that thinks; effort only where the template takes it (harmony).
        fmt = profile.reasoning.format if profile.is_reasoning else self.reasoning_format
        self.form.rows["reasoning.thinking"].setVisible(fmt in ("think", "magistral"))
        self.form.rows["reasoning.effort"].setVisible(fmt == "harmony")

    def _on_store_reloaded(self) -> None:
        """Show the profile as saved now, keeping this chat's own changes (and the loaded context, GPU layers)."""
        if self.profile is None:
            return
        try:
            new = self.store.get(self.profile.id)
        except UnknownProfileError:
            return
        mine = {f"sampling.{k}": v for k, v in self.overrides().items()}
        mine.update({f"reasoning.{k}": v for k, v in self.reasoning_overrides().items()})
        sp = self.system_prompt()
        values = {f.key: read(new, f.key) for f in CHAT_FIELDS}
        self.profile = new
        self.speculative.setText(speculative_text(new))
        self.form.fill({**values, **mine})
        if sp is not None:
            self.system.setPlainText(sp)
        self.sampling_changed.emit(self.overrides())
        self.system_prompt_changed.emit(self.system_prompt())
        self.reasoning_changed.emit(self.reasoning_overrides())

    def reasoning_overrides(self) -> dict[str, Any]:
        """This chat's thinking settings that differ from the profile's."""
        if self.profile is None:
            return {}
        shown = {k.split(".", 1)[1]: self.form.value(k) for k in REASONING_KEYS}
        return {k: v for k, v in shown.items() if v != getattr(self.profile.reasoning, k)}

    def sampling(self) -> dict[str, Any]:
        return {k.split(".", 1)[1]: self.form.value(k) for k in SAMPLING_KEYS}

    def system_prompt(self) -> str | None:
        text = self.system.toPlainText().strip()
        if self.profile is not None and text == self.profile.prompt.system_prompt.strip():
            return None
        return text

    def overrides(self) -> dict[str, Any]:
        """Only what differs from the profile: the profile's own later changes (a saved dialog) still apply."""
        if self.profile is None:
            return {}
        return {k: v for k, v in self.sampling().items() if v != getattr(self.profile.sampling, k)}

    def _changed(self, key: str) -> None:
        if key == "prompt.system_prompt":
            self.system_prompt_changed.emit(self.system_prompt())
        elif key.startswith("sampling."):
            self.sampling_changed.emit(self.overrides())
        elif key.startswith("reasoning."):
            self.reasoning_changed.emit(self.reasoning_overrides())
        else:
            self._update_reload()

    def needs_reload(self) -> bool:
        return bool(self.loaded) and (self.ctx.value() != self.loaded.get("n_ctx")
                                      or self.gpu.value() != self.loaded.get("gpu_layers"))

    def _update_reload(self) -> None:
        need = self.needs_reload()
        self.reload_note.setVisible(need)
        self.reload_btn.setVisible(need)

    def gpu_value(self) -> Any:
        """The GPU layers this chat's model loads with, as the panel shows them."""
        return self.gpu.value()

    def focus_first(self) -> None:
        """The keyboard goes to the panel's first setting (it has just been opened)."""
        self.params["temperature"].spin.setFocus()

    def _reload(self) -> None:
        self.loaded = {"n_ctx": int(self.ctx.value()), "gpu_layers": self.gpu_value()}
        self._update_reload()
        self.reload_requested.emit(int(self.ctx.value()), self.gpu_value())

    # ---------------------------------------------------------------- save as default

    def changes(self) -> dict[str, Any]:
        """What "Save as default" writes: every value shown, nested like the dialog's (save_override keeps only
        what differs from the bundled profile)."""
        values = self.form.values()
        if self.system_prompt() is None:  # the profile's own, give or take spaces at the ends
            values.pop("prompt.system_prompt")
        return nest(values)

    def save_default(self) -> Any:
        if self.profile is None or self._saving:
            return None
        self._saving = True
        pid, changes, store = self.profile.id, self.changes(), self.store
        reload = self.needs_reload()
        self.save_btn.setEnabled(False)
        self.status.setText("Saving…")

        def work() -> Any:  # a worker thread: writing the YAML and re-reading the profiles are disk I/O
            path = profiles.save_override(pid, changes, store=store)
            store.reload()
            return path

        def done(path: Any) -> None:
            self._saving = False
            self.save_btn.setEnabled(True)
            self.status.setText(f"Saved in {path}." if path else "Same as the bundled values: no override kept.")
            self.saved.emit(pid, reload)

        def failed(exc: BaseException) -> None:
            self._saving = False
            self.save_btn.setEnabled(True)
            self.status.setText(getattr(exc, "message", None) or str(exc))

        return self._jobs.start(work, done, failed)
