"""The main window's model actions: loading, reloading and cancelling, and what the window shows of the current
model as the app state announces it. GUI thread.

A mixin of :class:`MainWindow`: the Model menu (model_menu.py) does the work; these methods are the window's
entry points to it and its subscriptions to the app state (``model_changed``, ``model_loaded``, ``load_failed``,
``load_cancelled``).
"""
from __future__ import annotations

from typing import Any

from PySide6.QtGui import QAction

from desktop.engine.inference import protocol as P
from desktop.engine.profiles import Profile
from desktop.ui.chat.stream import no_vision_reason
from desktop.ui.state import CurrentModel


class ModelActions:
    def choose_profile(self, profile_id: str) -> None:
        self.model_menu.choose_profile(profile_id)

    def load_profile(self, profile: Profile) -> None:
        self.model_menu.load_profile(profile)

    def reload_model(self, profile: Profile) -> None:
        self._reload_with(int(self.settings_panel.ctx.value()), self.settings_panel.gpu_value(), profile)

    def _reload_with(self, n_ctx: int, gpu_layers: Any, profile: Profile | None = None) -> None:
        c = self.state.current
        p = profile or c.profile or c.loading
        if p is not None:
            self.model_menu.load_profile(p, n_ctx=n_ctx, overrides={"n_gpu_layers": gpu_layers})

    def cancel_load(self) -> None:
        self.adapter.cancel_load()

    def resume_downloads(self) -> int:
        return self.model_menu.resume_downloads()

    def import_gguf(self, path: str | None = None) -> Any:
        return self.model_menu.import_gguf(path)

    def open_settings(self, profile_id: str | None = None) -> Any:
        return self.model_menu.open_settings(profile_id)

    @property
    def profile_actions(self) -> dict[str, QAction]:
        return self.model_menu.profile_actions

    def on_settings_saved(self, profile_id: str, needs_reload: bool) -> None:
        self.state.installed.refresh()
        self.state.profile_saved(profile_id)  # sampling, system prompt and stops apply to the next message
        if needs_reload:
            self.banner.show_message("The new load settings take effect when the model is reloaded.", None,
                                     ("Reload now", lambda: self.load_profile(self.store.get(profile_id))))
        else:
            self.statusBar().showMessage("Settings saved; they apply to the next message.", 5000)

    @property
    def loaded(self) -> P.Loaded | None:
        """The engine's report on the model in it (None: none is)."""
        return self.state.current.info

    def _on_model_changed(self, current: CurrentModel) -> None:
        self.status.show_current(current)
        self._update_empty()

    def _on_loaded(self, current: CurrentModel) -> None:
        ev, p = current.info, current.profile
        assert ev is not None
        self.chat_page.set_vision(ev.vision, no_vision_reason(current.name), ev.image_max_side)
        if ev.gpu_reason:
            self.statusBar().showMessage(ev.gpu_reason, 10000)
        if self._crashed:  # the engine is back: the crash notice is no longer true
            self._crashed = False
            self.banner.hide()
        self.settings_panel.set_profile(p, ev.n_ctx, ev.n_gpu_layers if p and p.load.gpu_layers != "auto"
                                        else None, reasoning_format=ev.reasoning_format)
        self.status.clear_chat_numbers()  # the last answer's speed was another model's
        self._show_chat_numbers(ev.n_ctx)
        self.model_menu.fill()

    def _on_load_failed(self, error: dict[str, Any]) -> None:
        self.errors.present(error, modal=True)

    def _on_load_cancelled(self, profile: Profile | None, back: Profile | None) -> None:
        def name(p: Profile) -> str:
            return self.state.installed.name_of(p.id, p.name)  # the one name, as the picker shows it

        self.statusBar().showMessage(f"Stopped loading {name(profile) if profile else 'the model'}." +
                                     (f" Going back to {name(back)}." if back else ""), 8000)

    def _update_empty(self, *_: object) -> None:
        """An empty chat shows the welcome view (suggested downloads, import) under a line on the model."""
        if self.model.rowCount():
            self.chat_page.show_conversation(True)
            return
        self.views.update_welcome()
        self.chat_page.show_conversation(False)
