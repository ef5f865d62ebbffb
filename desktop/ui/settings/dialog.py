"""The profile settings dialog (Model ▸ Profile settings…): the settings the engine honours, saved as a user override YAML.

GUI thread. Saving writes only the keys that differ from the bundled profile (profiles.save_override);
"Reset to defaults" removes the override. Sampling and prompt changes apply to the next message; load
settings (context, GPU layers, threads, batch, flash attention, KV cache) need a reload, and the
dialog says so as soon as one of them differs from what is loaded. The rows are every field of the settings
table (``profiles.fields``), in the form the chat settings panel shows too (``form.SettingsForm``), plus the
server section of a remote profile.
"""
from __future__ import annotations

from typing import Any

from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QGroupBox,
    QLabel,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from desktop.engine import profiles
from desktop.engine.errors import AppError
from desktop.engine.profiles import Profile, ProfileStore
from desktop.engine.profiles.fields import FIELDS, nest, read
from desktop.ui.errors import ErrorPresenter
from desktop.ui.settings.form import SettingsForm
from desktop.ui.widgets.screens import fit_to_screen
from desktop.ui.workers import JobKeeper

GROUPS = [
    ("Sampling: applies to the next message", [f for f in FIELDS if f.section == "sampling"]),
    ("Prompt: applies to the next message", [f for f in FIELDS if f.section == "prompt"]),
    ("Thinking: applies to the next message", [f for f in FIELDS if f.section == "reasoning"]),
    ("Loading: needs a reload", [f for f in FIELDS if f.reload]),
]
LOAD_KEYS = tuple(f.key for f in FIELDS if f.reload)


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
        self.form = SettingsForm(GROUPS)
        self.form.changed.connect(self._update_reload_note)

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
        self.form.groups[GROUPS[3][0]].setVisible(not self.remote)
        self._jobs = JobKeeper(self)

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
        col = QVBoxLayout(content)
        col.addWidget(self.form)
        col.addWidget(server)
        col.addStretch(1)
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
        for e in (self.base_url, self.remote_model, self.api_key_env):
            e.textChanged.connect(self._update_reload_note)
        self._update_reload_note()
        self.resize(560, 640)
        fit_to_screen(self)

    def showEvent(self, e) -> None:  # noqa: N802 - with its frame known, the dialog stays on the screen
        super().showEvent(e)
        fit_to_screen(self)
        if not hasattr(self, "_refit"):  # again once the window manager framed it (dies with the dialog)
            self._refit = QTimer(self, singleShot=True, interval=200)
            self._refit.timeout.connect(lambda: fit_to_screen(self))
        self._refit.start()

    def _fill(self, p: Profile) -> None:
        self.form.fill({f.key: read(p, f.key) for f in FIELDS}, p)
        # Thinking settings for a model that thinks (or may: "auto" decides from the file's template at load).
        self.form.groups[GROUPS[2][0]].setVisible(p.reasoning.format != "none" and (
            p.is_reasoning or p.prompt.format == "gguf"))
        self.base_url.setText(p.backend.base_url)
        self.remote_model.setText(p.backend.model)
        self.api_key_env.setText(p.backend.api_key_env or "")
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

        base = self.store.get(self.profile_id).backend
        spec = BackendSpec(**{**base.__dict__, **self._backend_changes()})
        self.check_btn.setEnabled(False)
        self.check_result.setText("Checking…")
        self._jobs.start(lambda: remote_backend.check_connection(spec), self._on_checked, self._on_check_failed)

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
        return nest(self.form.values())

    def needs_reload(self) -> bool:
        ref = self.loaded_profile
        if ref is None or ref.id != self.profile_id:
            return False
        if self.remote:
            return any(getattr(ref.backend, k) != v for k, v in self._backend_changes().items())
        return any(self.form.value(k) != read(ref, k) for k in LOAD_KEYS)

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
