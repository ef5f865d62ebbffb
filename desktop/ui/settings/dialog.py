"""The profile settings dialog (Model ▸ Profile settings…): the settings the engine honours, saved as a user override YAML.

GUI thread. Saving writes only the keys that differ from the bundled profile (profiles.save_override);
"Reset to defaults" removes the override. Sampling and prompt changes apply to the next message; load
settings (context, GPU layers, threads, batch, flash attention, KV cache) need a reload, and the
dialog says so as soon as one of them differs from what is loaded.
"""
from __future__ import annotations

from typing import Any

from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from desktop.engine import profiles
from desktop.engine.errors import AppError
from desktop.engine.profiles import Profile, ProfileStore
from desktop.ui.errors import ErrorPresenter
from desktop.ui.widgets.screens import fit_to_screen

LOAD_KEYS = ("context.default", "load.gpu_layers", "load.threads", "load.batch", "load.flash_attn",
             "load.kv_cache_type")


def _dspin(lo: float, hi: float, step: float, decimals: int = 2) -> QDoubleSpinBox:
    s = QDoubleSpinBox()
    s.setRange(lo, hi)
    s.setSingleStep(step)
    s.setDecimals(decimals)
    return s


def _spin(lo: int, hi: int, special: str | None = None) -> QSpinBox:
    s = QSpinBox()
    s.setRange(lo, hi)
    if special:
        s.setSpecialValueText(special)  # shown at the minimum
    return s


class SettingsDialog(QDialog):
    saved = Signal(str, bool)  # profile id, needs reload

    def __init__(self, store: ProfileStore, profile_id: str, loaded_profile: Profile | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.store = store
        self.profile_id = profile_id
        self.loaded_profile = loaded_profile  # what the engine runs now (for "needs a reload")
        p = store.get(profile_id)
        self.setWindowTitle(f"Profile settings: {p.name}")
        self.errors = ErrorPresenter(self, lambda _t: None)

        self.temperature = _dspin(0.0, 5.0, 0.05)
        self.top_p = _dspin(0.01, 1.0, 0.05)
        self.top_k = _spin(0, 1000)
        self.min_p = _dspin(0.0, 0.99, 0.01)
        self.repeat_penalty = _dspin(0.5, 3.0, 0.05)
        self.max_tokens = _spin(1, 1_000_000)
        self.seed = _spin(-1, 2**31 - 1, "random")
        sampling = QGroupBox("Sampling (applies to the next message)")
        f = QFormLayout(sampling)
        f.addRow("Temperature", self.temperature)
        f.addRow("Top p", self.top_p)
        f.addRow("Top k", self.top_k)
        f.addRow("Min p", self.min_p)
        f.addRow("Repeat penalty", self.repeat_penalty)
        f.addRow("Max tokens", self.max_tokens)
        f.addRow("Seed", self.seed)

        limit = p.context.max or p.context.native
        self.ctx = _spin(256, max(256, limit))
        self.ctx.setSingleStep(1024)
        self.gpu_layers = _spin(-1, 999, "auto (all that fit)")
        self.threads = _spin(0, 512, "auto")
        self.batch = _spin(1, 16384)
        # llama.cpp's "auto" turns it on where the backend supports it; a quantized KV cache needs it
        self.flash_attn = QComboBox()
        self.flash_attn.addItems(["auto", "on", "off"])
        self.kv_type = QComboBox()
        self.kv_type.addItems(["f16", "q8_0", "q4_0"])
        load = QGroupBox("Loading (needs a reload)")
        g = QFormLayout(load)
        g.addRow(f"Context length (max {limit})", self.ctx)
        g.addRow("GPU layers", self.gpu_layers)
        g.addRow("Threads", self.threads)
        g.addRow("Batch size", self.batch)
        g.addRow("Flash attention", self.flash_attn)
        g.addRow("KV cache type", self.kv_type)

        self.system_prompt = QPlainTextEdit()
        self.system_prompt.setPlaceholderText("No system prompt")
        self.stop_strings = QPlainTextEdit()
        self.stop_strings.setPlaceholderText("One stop string per line")
        prompt = QGroupBox("Prompt")
        h = QFormLayout(prompt)
        h.addRow("System prompt", self.system_prompt)
        h.addRow("Extra stop strings", self.stop_strings)

        # A remote profile (backend: openai) runs on a server: its load settings do not apply, its server does.
        self.remote = p.backend.kind != "local"
        self.base_url = QLineEdit()
        self.base_url.setPlaceholderText("http://gpu-box:8080/v1")
        self.remote_model = QLineEdit()
        self.remote_model.setPlaceholderText("the server's first model")
        self.api_key_env = QLineEdit()
        self.api_key_env.setPlaceholderText("e.g. MY_SERVER_KEY (the key itself is never saved)")
        self.check_btn = QPushButton("Check connection")
        self.check_result = QLabel()
        self.check_result.setWordWrap(True)
        self.check_btn.clicked.connect(self.check_connection)
        server = QGroupBox("Server (OpenAI-compatible; needs a reload)")
        sf = QFormLayout(server)
        sf.addRow("Base URL", self.base_url)
        sf.addRow("Model", self.remote_model)
        sf.addRow("API key env var", self.api_key_env)
        sf.addRow(self.check_btn, self.check_result)
        server.setVisible(self.remote)
        load.setVisible(not self.remote)
        self._check_job: Any = None

        self.reload_note = QLabel("Load settings changed: they take effect when the model is reloaded.")
        self.reload_note.setWordWrap(True)
        self.override_note = QLabel()
        self.override_note.setWordWrap(True)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save |
                                        QDialogButtonBox.StandardButton.Cancel)
        self.reset_btn = QPushButton("Reset to defaults")
        self.buttons.addButton(self.reset_btn, QDialogButtonBox.ButtonRole.ResetRole)
        self.buttons.accepted.connect(self.save)
        self.buttons.rejected.connect(self.reject)
        self.reset_btn.clicked.connect(self.reset)

        # The settings scroll; the notes and Save/Cancel stay visible below them on any screen (HiDPI at 2x
        # on a 1600x1000 screen leaves 800x500 logical pixels).
        content = QWidget()
        cols = QHBoxLayout(content)
        left = QVBoxLayout()
        left.addWidget(sampling)
        left.addWidget(load)
        left.addWidget(server)
        left.addStretch(1)
        cols.addLayout(left)
        cols.addWidget(prompt, 1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        scroll.setWidget(content)
        lay = QVBoxLayout(self)
        lay.addWidget(scroll, 1)
        lay.addWidget(self.override_note)
        lay.addWidget(self.reload_note)
        lay.addWidget(self.buttons)
        self._fill(p)
        for w in (self.ctx, self.gpu_layers, self.threads, self.batch):
            w.valueChanged.connect(self._update_reload_note)
        self.flash_attn.currentTextChanged.connect(self._update_reload_note)
        self.kv_type.currentTextChanged.connect(self._update_reload_note)
        for e in (self.base_url, self.remote_model, self.api_key_env):
            e.textChanged.connect(self._update_reload_note)
        self._update_reload_note()
        self.resize(760, 560)
        fit_to_screen(self)

    def showEvent(self, e) -> None:  # noqa: N802 - with its frame known, the dialog stays on the screen
        super().showEvent(e)
        fit_to_screen(self)
        if not hasattr(self, "_refit"):  # again once the window manager framed it (dies with the dialog)
            self._refit = QTimer(self, singleShot=True, interval=200)
            self._refit.timeout.connect(lambda: fit_to_screen(self))
        self._refit.start()

    def _fill(self, p: Profile) -> None:
        s = p.sampling
        self.temperature.setValue(s.temperature)
        self.top_p.setValue(s.top_p)
        self.top_k.setValue(s.top_k)
        self.min_p.setValue(s.min_p)
        self.repeat_penalty.setValue(s.repeat_penalty)
        self.max_tokens.setValue(s.max_tokens)
        self.seed.setValue(s.seed if s.seed >= 0 else -1)
        self.ctx.setValue(p.context.default)
        self.gpu_layers.setValue(-1 if p.load.gpu_layers == "auto" else int(p.load.gpu_layers))
        self.threads.setValue(0 if p.load.threads == "auto" else int(p.load.threads))
        self.batch.setValue(p.load.batch)
        fa = p.load.flash_attn
        self.flash_attn.setCurrentText({True: "on", False: "off"}.get(fa, fa) if isinstance(fa, bool) else fa)
        self.kv_type.setCurrentText(p.load.kv_cache_type)
        self.base_url.setText(p.backend.base_url)
        self.remote_model.setText(p.backend.model)
        self.api_key_env.setText(p.backend.api_key_env or "")
        self.system_prompt.setPlainText(p.prompt.system_prompt)
        self.stop_strings.setPlainText("\n".join(p.prompt.stop_strings))
        self.override_note.setText(f"Your changes are saved in {p.overridden_by}." if p.overridden_by else
                                   "Using the bundled values." if not p.origin.startswith(
                                       str(self.store.user_dir)) else f"Your profile: {p.origin}.")
        self.reset_btn.setEnabled(bool(p.overridden_by))

    def _backend_changes(self) -> dict[str, Any]:
        return {"base_url": self.base_url.text().strip(), "model": self.remote_model.text().strip(),
                "api_key_env": self.api_key_env.text().strip() or None}

    def check_connection(self) -> None:
        """List the server's models and time it, on a worker thread (it may block for the timeout)."""
        from desktop.engine.inference import remote_backend
        from desktop.engine.profiles import BackendSpec
        from desktop.ui import workers

        base = self.store.get(self.profile_id).backend
        spec = BackendSpec(**{**base.__dict__, **self._backend_changes()})
        self.check_btn.setEnabled(False)
        self.check_result.setText("Checking…")
        self._check_job = workers.start(lambda: remote_backend.check_connection(spec), self._on_checked,
                                        self._on_check_failed, self)

    def _on_checked(self, res: Any) -> None:
        self.check_btn.setEnabled(True)
        if res.ok:
            models = ", ".join(res.models[:6]) + (" …" if len(res.models) > 6 else "")
            self.check_result.setText(f"Connected in {res.latency_ms:.0f} ms. Models: {models or 'none listed'}.")
        else:
            self.check_result.setText(res.error or "The server could not be used.")

    def _on_check_failed(self, exc: BaseException) -> None:
        self.check_btn.setEnabled(True)
        self.check_result.setText(getattr(exc, "message", None) or str(exc))

    def changes(self) -> dict[str, Any]:
        """Everything the dialog edits, as a nested override mapping."""
        out = self._changes_common()
        if self.remote:
            out["backend"] = self._backend_changes()
        return out

    def _changes_common(self) -> dict[str, Any]:
        return {
            "sampling": {"temperature": round(self.temperature.value(), 4), "top_p": round(self.top_p.value(), 4),
                         "top_k": self.top_k.value(), "min_p": round(self.min_p.value(), 4),
                         "repeat_penalty": round(self.repeat_penalty.value(), 4),
                         "max_tokens": self.max_tokens.value(), "seed": self.seed.value()},
            "context": {"default": self.ctx.value()},
            "load": {"gpu_layers": "auto" if self.gpu_layers.value() < 0 else self.gpu_layers.value(),
                     "threads": "auto" if self.threads.value() == 0 else self.threads.value(),
                     "batch": self.batch.value(), "flash_attn": self.flash_attn.currentText(),
                     "kv_cache_type": self.kv_type.currentText()},
            "prompt": {"system_prompt": self.system_prompt.toPlainText().strip(),
                       "stop_strings": [s for s in self.stop_strings.toPlainText().split("\n") if s]},
        }

    def needs_reload(self) -> bool:
        ref = self.loaded_profile
        if ref is None or ref.id != self.profile_id:
            return False
        c = self.changes()
        current = {"context.default": ref.context.default, **{f"load.{k}": getattr(ref.load, k) for k in c["load"]}}
        new = {"context.default": c["context"]["default"], **{f"load.{k}": v for k, v in c["load"].items()}}
        if self.remote:
            return any(getattr(ref.backend, k) != v for k, v in self._backend_changes().items())
        return any(current[k] != new[k] for k in LOAD_KEYS)

    def _update_reload_note(self, *_: object) -> None:
        self.reload_note.setVisible(self.needs_reload())

    def save(self) -> bool:
        reload = self.needs_reload()
        try:
            profiles.save_override(self.profile_id, self.changes(), store=self.store)
            self.store.reload()
        except AppError as exc:
            self.errors.present(exc, modal=True)
            return False
        self.saved.emit(self.profile_id, reload)
        self.accept()
        return True

    def reset(self) -> None:
        try:
            profiles.reset_override(self.profile_id, store=self.store)
            self.store.reload()
        except AppError as exc:
            self.errors.present(exc, modal=True)
            return
        p = self.store.get(self.profile_id)
        self._fill(p)
        reload = self.needs_reload()
        self.saved.emit(self.profile_id, reload)
