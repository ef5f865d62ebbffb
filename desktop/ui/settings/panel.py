"""The chat settings side panel (Ctrl+, toggles it): this chat's sampling, context, GPU layers, system prompt.

Changes apply to this chat's next message at once (the session's overrides; nothing is written). "Save as
this profile's default" writes them as the profile's minimal override YAML, through the same
``profiles.save_override`` the profile settings dialog uses, on a worker thread. Context and GPU layers are
load settings: the panel says they need a reload and offers it.
"""
from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QDoubleSpinBox,
    QFrame,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QSlider,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from desktop.engine import profiles
from desktop.engine.profiles import Profile, ProfileStore
from desktop.ui import workers

# name, label, explanation, minimum, maximum, step, decimals (0: an integer)
SAMPLING = (
    ("temperature", "Temperature", "Higher is more varied, lower more focused; 0 always picks the likeliest.",
     0.0, 2.0, 0.05, 2),
    ("top_p", "Top p", "Sample only from the likeliest words that together make up this share.", 0.05, 1.0, 0.05, 2),
    ("top_k", "Top k", "Sample only from this many likeliest words (0: no limit).", 0, 200, 1, 0),
    ("min_p", "Min p", "Drop words less likely than this fraction of the likeliest one.", 0.0, 0.5, 0.01, 2),
    ("repeat_penalty", "Repeat penalty", "Above 1 discourages repeating recent words.", 0.8, 2.0, 0.05, 2),
    ("max_tokens", "Max tokens", "The longest answer, in tokens.", 16, 32768, 16, 0),
)


class _Param(QWidget):
    """A label with its value, a slider and a one-line explanation; the spin box takes exact values."""

    changed = Signal()

    def __init__(self, label: str, hint: str, lo: float, hi: float, step: float, decimals: int) -> None:
        super().__init__()
        self.scale = 1 if decimals == 0 else 10 ** decimals
        self.spin: QSpinBox | QDoubleSpinBox
        if decimals:
            self.spin = QDoubleSpinBox()
            self.spin.setDecimals(decimals)
        else:
            self.spin = QSpinBox()
        self.spin.setRange(lo, hi)  # type: ignore[arg-type]
        self.spin.setSingleStep(step)  # type: ignore[arg-type]
        self.spin.setAccessibleName(label)
        self.spin.setFixedWidth(88)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(int(lo * self.scale), int(hi * self.scale))
        self.slider.setAccessibleName(f"{label} slider")
        self.slider.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # the spin box is the keyboard's way in
        self.slider.valueChanged.connect(lambda v: self.spin.setValue(v / self.scale if decimals else v))
        self.spin.valueChanged.connect(self._spun)
        title = QLabel(label)
        title.setProperty("subheading", False)
        self.hint = QLabel(hint)
        self.hint.setProperty("hint", True)
        self.hint.setWordWrap(True)
        top = QHBoxLayout()
        top.addWidget(title, 1)
        top.addWidget(self.spin)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 4, 0, 4)
        lay.setSpacing(2)
        lay.addLayout(top)
        lay.addWidget(self.slider)
        lay.addWidget(self.hint)

    def _spun(self, v: float) -> None:
        self.slider.blockSignals(True)
        self.slider.setValue(int(round(v * self.scale)))
        self.slider.blockSignals(False)
        self.changed.emit()

    def value(self) -> float:
        return self.spin.value()

    def set_value(self, v: float) -> None:
        self.spin.blockSignals(True)
        self.spin.setValue(v)  # type: ignore[arg-type]
        self.spin.blockSignals(False)
        self._spun(self.spin.value())


def speculative_text(profile: Profile | None) -> str:
    """One line for the profile's speculative decoding: the draft model, prompt lookup, or off."""
    sp = getattr(profile, "speculative", None)
    if sp is None or not (sp.draft or sp.prompt_lookup):
        return "Speculative decoding: off"
    how = f"draft model {sp.draft}" if sp.draft else "prompt lookup"
    return f"Speculative decoding: {how}, {sp.n_draft} tokens per step"


class SettingsPanel(QFrame):
    sampling_changed = Signal(dict)  # this chat's sampling overrides
    system_prompt_changed = Signal(object)  # str, or None for the profile's own
    reload_requested = Signal(int, object)  # n_ctx, gpu layers ("auto" or an int)
    saved = Signal(str, bool)  # profile id, needs a reload (like the dialog's)

    def __init__(self, store: ProfileStore, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("SettingsPanel")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        self.store = store
        self.profile: Profile | None = None
        self.loaded: dict[str, Any] = {}  # n_ctx and gpu layers the engine runs with
        self._job: Any = None
        self._filling = False
        head = QLabel("Chat settings")
        head.setProperty("heading", True)
        self.scope = QLabel("Apply to this chat's next message.")
        self.scope.setProperty("hint", True)
        self.scope.setWordWrap(True)
        self.params: dict[str, _Param] = {}
        inner = QWidget()
        col = QVBoxLayout(inner)
        col.setContentsMargins(16, 12, 16, 12)
        col.setSpacing(6)
        col.addWidget(head)
        col.addWidget(self.scope)
        for key, label, hint, lo, hi, step, dec in SAMPLING:
            p = _Param(label, hint, lo, hi, step, dec)
            p.changed.connect(self._emit_sampling)
            self.params[key] = p
            col.addWidget(p)
        self.system = QPlainTextEdit()
        self.system.setTabChangesFocus(True)
        self.system.setAccessibleName("System prompt")
        self.system.setPlaceholderText("The profile's system prompt")
        self.system.setFixedHeight(90)
        self.system.textChanged.connect(lambda: self.system_prompt_changed.emit(self.system_prompt()))
        sys_label = QLabel("System prompt")
        sys_hint = QLabel("Instructions the model sees before the conversation (this chat only).")
        sys_hint.setProperty("hint", True)
        sys_hint.setWordWrap(True)
        col.addWidget(sys_label)
        col.addWidget(self.system)
        col.addWidget(sys_hint)
        load_head = QLabel("Loading")
        load_head.setProperty("subheading", True)
        col.addWidget(load_head)
        self.ctx = _Param("Context", "Tokens the model keeps in view: more remembers more and uses more memory.",
                          256, 131072, 256, 0)
        self.gpu = _Param("GPU layers", "Layers run on the GPU (-1: as many as fit).", -1, 200, 1, 0)
        for p in (self.ctx, self.gpu):
            p.changed.connect(self._update_reload)
            col.addWidget(p)
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
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setWidget(inner)
        inner.setObjectName("SettingsPanel")
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(scroll)
        self.setMinimumWidth(280)
        self.setMaximumWidth(360)
        self._update_reload()

    # ---------------------------------------------------------------- values

    def set_profile(self, profile: Profile | None, n_ctx: int | None = None, gpu_layers: Any = None) -> None:
        """Show ``profile``'s values (a new chat, or another model loaded)."""
        self.profile = profile
        self.speculative.setText(speculative_text(profile))
        if profile is None:
            return
        self._filling = True  # showing the profile's own values is not a change
        s = profile.sampling
        for key in self.params:
            self.params[key].set_value(getattr(s, key))
        self.system.blockSignals(True)
        self.system.setPlainText(profile.prompt.system_prompt)
        self.system.blockSignals(False)
        limit = profile.context.max or profile.context.native
        self.ctx.spin.setMaximum(max(256, limit))
        self.ctx.slider.setMaximum(max(256, limit))
        gl = profile.load.gpu_layers if gpu_layers is None else gpu_layers
        self.loaded = {"n_ctx": n_ctx or profile.context.default, "gpu_layers": -1 if gl == "auto" else int(gl)}
        self.ctx.set_value(self.loaded["n_ctx"])
        self.gpu.set_value(self.loaded["gpu_layers"])
        self._filling = False
        self._update_reload()
        self.sampling_changed.emit({})  # the profile's values again: no per-chat overrides
        self.system_prompt_changed.emit(None)

    def sampling(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, p in self.params.items():
            v = p.value()
            out[key] = int(v) if isinstance(p.spin, QSpinBox) else round(float(v), 4)
        return out

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

    def _emit_sampling(self) -> None:
        if not self._filling:
            self.sampling_changed.emit(self.overrides())

    def needs_reload(self) -> bool:
        return bool(self.loaded) and (int(self.ctx.value()) != self.loaded.get("n_ctx")
                                      or int(self.gpu.value()) != self.loaded.get("gpu_layers"))

    def _update_reload(self) -> None:
        need = self.needs_reload()
        self.reload_note.setVisible(need)
        self.reload_btn.setVisible(need)

    def _gpu_value(self) -> Any:
        return "auto" if int(self.gpu.value()) < 0 else int(self.gpu.value())

    def _reload(self) -> None:
        self.loaded = {"n_ctx": int(self.ctx.value()), "gpu_layers": int(self.gpu.value())}
        self._update_reload()
        self.reload_requested.emit(int(self.ctx.value()), self._gpu_value())

    # ---------------------------------------------------------------- save as default

    def changes(self) -> dict[str, Any]:
        """What "Save as default" writes, nested like the dialog's: save_override keeps only what differs."""
        out: dict[str, Any] = {"sampling": self.sampling(), "context": {"default": int(self.ctx.value())},
                               "load": {"gpu_layers": self._gpu_value()}}
        sp = self.system_prompt()
        if sp is not None:
            out["prompt"] = {"system_prompt": sp}
        return out

    def save_default(self) -> Any:
        if self.profile is None or self._job is not None:
            return None
        pid, changes, store = self.profile.id, self.changes(), self.store
        reload = self.needs_reload()
        self.save_btn.setEnabled(False)
        self.status.setText("Saving…")

        def work() -> Any:  # a worker thread: writing the YAML and re-reading the profiles are disk I/O
            path = profiles.save_override(pid, changes, store=store)
            store.reload()
            return path

        def done(path: Any) -> None:
            self._job = None
            self.save_btn.setEnabled(True)
            self.status.setText(f"Saved in {path}." if path else "Same as the bundled values: no override kept.")
            self.saved.emit(pid, reload)

        def failed(exc: BaseException) -> None:
            self._job = None
            self.save_btn.setEnabled(True)
            self.status.setText(getattr(exc, "message", None) or str(exc))

        self._job = workers.start(work, done, failed, self)
        return self._job
