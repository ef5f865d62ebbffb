"""The main window: a navigation rail, a stack of pages (Chats first), menus, status bar. GUI thread only.

The window only wires parts that each do one job. What it shows comes from the app state (ui/state.py: the
current model, the installed models, the downloads, the chat session), which it subscribes to. The parts: the
sidebar (chat list and search), the chat page (chat/page.py: picker slot, conversation, composer), the settings
side panel, the status bar, the menus from one action table (actions.py) and the Model menu (model_menu.py).
Pages are added with :meth:`MainWindow.add_page`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from PySide6.QtCore import QSettings, QSize, Qt, QTimer
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QHBoxLayout,
    QMainWindow,
    QSplitter,
    QStackedWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from desktop.engine.chats.store import ChatStore
from desktop.engine.profiles import ProfileStore
from desktop.ui.chat.page import ChatPage
from desktop.ui.chat.sidebar import Sidebar
from desktop.ui.errors import ErrorPresenter
from desktop.ui.server.controller import ServerController
from desktop.ui.server.page import ServerBadge, ServerPage
from desktop.ui.settings.panel import SettingsPanel
from desktop.ui.shell import actions, focus
from desktop.ui.shell import chat_actions as window_chat
from desktop.ui.shell import help_actions as window_help
from desktop.ui.shell.model_actions import ModelActions
from desktop.ui.shell.model_menu import ModelMenu
from desktop.ui.shell.model_views import ModelViews, Page
from desktop.ui.shell.status_bar import StatusBar
from desktop.ui.state import AppState
from desktop.ui.theme import theme
from desktop.ui.widgets.screens import fit_to_screen


class MainWindow(window_chat.ChatActions, window_help.HelpActions, ModelActions, QMainWindow):
    def __init__(self, store: ProfileStore | None = None, chats: ChatStore | None = None,
                 state: AppState | None = None) -> None:
        super().__init__()
        if theme.applied is None:
            theme.apply()
        self.setWindowTitle("Desktop Chat")
        # The app's state (ui/state.py) owns the model, the installed models, the downloads and the open chat;
        # the window and its pages subscribe to it. Short names for its parts:
        self.state = state or AppState(store, chats, self)
        st = self.state
        self.store, self.chats, self.adapter, self.session = st.store, st.chats, st.adapter, st.session
        self.model = st.messages  # the open chat's messages (a Qt item model)
        self._crashed = False
        self._sidebar_folded = False  # the settings panel folded the chat list away (a narrow window)

        # ---- the rail, the pages, the chat page with its sidebar and settings panel
        self.rail = QWidget()
        self.rail.setObjectName("NavRail")
        self.rail.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        self._rail_layout = QVBoxLayout(self.rail)
        self._rail_layout.setContentsMargins(8, 12, 8, 12)
        self._rail_layout.setSpacing(6)
        self._rail_layout.addStretch(1)
        self.pages = QStackedWidget()
        self.page_buttons: dict[str, QToolButton] = {}
        self.sidebar = Sidebar(self.chats)
        self.chat_page = ChatPage(self.model)
        self.settings_panel = SettingsPanel(self.store)
        self.settings_panel.hide()
        self.splitter = QSplitter()
        self.splitter.setChildrenCollapsible(False)
        self.splitter.setHandleWidth(1)
        self.splitter.addWidget(self.sidebar)
        self.splitter.addWidget(self.chat_page)
        self.splitter.addWidget(self.settings_panel)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setSizes([260, 900, 320])
        central = QWidget()
        row = QHBoxLayout(central)
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(0)
        row.addWidget(self.rail)
        row.addWidget(self.pages, 1)
        self.setCentralWidget(central)

        # ---- short names for the parts the window's actions use
        cp = self.chat_page
        self.view, self.input, self.banner, self.edit_bar = cp.view, cp.input, cp.banner, cp.edit_bar
        self.send_btn, self.stop_btn, self.stack, self.empty = cp.send_btn, cp.stop_btn, cp.stack, cp.empty
        self.search, self.chat_list = self.sidebar.search, self.sidebar.list
        self.chat_list_model, self.chat_proxy = self.sidebar.model, self.sidebar.proxy
        self.status = StatusBar(self)
        self.setStatusBar(self.status)
        self.status_model, self.status_backend = self.status.model, self.status.backend
        self.status_speed, self.status_ctx = self.status.speed, self.status.ctx
        self.load_label, self.load_cancel = self.status.load_label, self.status.load_cancel
        self.errors = ErrorPresenter(self, lambda t: self.statusBar().showMessage(t, 15000), self.banner)

        self.actions = actions.Actions(self, self.menuBar(), self._action_handlers())
        a = self.actions.by_key
        (self.new_action, self.find_action, self.regen_action, self.tools_action, self.quit_action,
         self.settings_action, self.sidebar_action, self.show_log_action, self.about_action) = (a[k] for k in (
             "new_chat", "find", "regenerate", "tools", "quit", "settings", "sidebar", "show_log", "about"))
        self.theme_actions, self.go_menu = self.actions.theme_actions, self.actions.go_menu
        self.setup_tools()
        self.model_menu = ModelMenu(self, self.actions.menus["&Model"], a, st, self.errors, self.banner,
                                    self.status.showMessage)
        self.model_menu.reload_requested.connect(self.reload_model)
        self.model_menu.settings_saved.connect(self.on_settings_saved)
        self.import_action = a["import_gguf"]
        self.add_page("chats", "mdi6.message-text-outline", self.splitter, "Chats")
        # The picker, the Hub and Models pages and the welcome screen (after Chats: Ctrl+2, Ctrl+3).
        self.views = ModelViews(st, self.model_menu, self.chat_page, add_page=self.add_page,
                                show_page=self.show_page, focus_input=self.focus_input, notify=self.status.showMessage,
                                present=self.errors.present)
        self.picker, self.welcome = self.views.picker, self.views.welcome
        # The local server (ui/server): its page, its line in the status bar, and its notices before a chat send.
        self.server = ServerController(self.adapter, lambda exc, modal: self.errors.present(exc, modal=modal), self,
                                       catalog=st.served_models, chat_model_name=lambda: st.current.name)
        self.server_page = ServerPage(self.server)
        self.server_page.copied.connect(lambda what: self.status.showMessage(f"Copied the {what}.", 3000))
        self.add_page("server", "mdi6.server-network", Page(self.server_page, lambda: self.server_page.switch),
                      "Server")
        self.server_badge = ServerBadge(self.server)
        self.status.addPermanentWidget(self.server_badge)
        self.server.notice.connect(lambda text, label, act: self.banner.show_message(text, None, act and (label, act)))
        self.session.busy_changed.connect(self.server.chat_busy)

        self._connect()
        self._show_profile_problems()
        self._restore()

    # ------------------------------------------------------------------ integration points

    def add_page(self, name: str, icon: str, widget: QWidget, title: str | None = None) -> QToolButton:
        """Add a page to the window: a button on the left rail (qtawesome ``icon``, e.g. ``"mdi6.magnify"``)
        that shows ``widget`` in the page stack, and a View ▸ Go to entry with the next Ctrl+<n> shortcut.

        One call per page, e.g. ``win.add_page("hub", "mdi6.magnify", HubView(...), "Hub")``. ``name`` is the
        page's key for :meth:`show_page`; returns the rail button."""
        title = title or name.title()
        btn = QToolButton()
        btn.setCheckable(True)
        btn.setToolTip(f"{title} (Ctrl+{len(self.page_buttons) + 1})")
        btn.setAccessibleName(title)
        btn.setFixedSize(44, 44)
        btn.setIconSize(QSize(22, 22))
        theme.set_icon(btn, icon)
        self._rail_layout.insertWidget(len(self.page_buttons), btn)
        self.pages.addWidget(widget)
        self.page_buttons[name] = btn
        btn.clicked.connect(lambda: self.show_page(name))
        self.actions.add(self.go_menu, title, lambda: self.show_page(name), f"Ctrl+{len(self.page_buttons)}")
        if len(self.page_buttons) == 1:
            btn.setChecked(True)
        return btn

    def show_page(self, name: str) -> None:
        # Checked by hand rather than by an exclusive QButtonGroup, which takes all but the checked button out
        # of the Tab order: every page is a Tab stop on the rail.
        for key, b in self.page_buttons.items():
            b.setChecked(key == name)
        self.pages.setCurrentIndex(list(self.page_buttons).index(name))

    def focusNextPrevChild(self, next: bool) -> bool:  # noqa: N802, A002 - Qt's name
        """Tab and Shift+Tab in reading order (shell/focus.py): the rail, the sidebar, the page, the panel."""
        page = self.pages.currentWidget()
        regions = [self.rail, self.sidebar, self.chat_page, self.settings_panel] if page is self.splitter else [
            self.rail, page]
        return focus.move_focus(focus.tab_stops(regions, self), next) or super().focusNextPrevChild(next)

    def _action_handlers(self) -> dict[str, Callable[[], object]]:
        def scroll(key: Qt.Key) -> Callable[[], object]:
            return lambda: self.chat_page.view.scroll_key(key)

        def for_chat(fn: Callable[[int], object]) -> Callable[[], object]:
            return lambda: self.chat_id and fn(self.chat_id)

        return {
            "new_chat": self.new_chat, "find": self.focus_search, "focus_input": self.focus_input,
            "regenerate": self.regenerate, "copy_answer": self.copy_last_answer, "edit_last": self.edit_last,
            "stop": self.escape, "attach": self.attach_files, "tools": self.open_tools,
            "rename": for_chat(self.rename_chat), "delete": for_chat(self.delete_chat),
            "export_md": for_chat(lambda c: self.export_chat(c, "md")),
            "export_json": for_chat(lambda c: self.export_chat(c, "json")), "quit": self.close,
            "settings": self.toggle_settings_panel, "sidebar": self.toggle_sidebar, "theme": self.set_theme,
            "scroll_up": scroll(Qt.Key.Key_PageUp), "scroll_down": scroll(Qt.Key.Key_PageDown),
            "scroll_top": scroll(Qt.Key.Key_Home), "scroll_end": scroll(Qt.Key.Key_End),
            "reload_model": lambda: self.model_menu.reload(), "profile_settings": lambda: self.open_settings(),
            "import_gguf": lambda: self.import_gguf(),
            "show_log": self.show_log, "shortcuts": self.show_shortcuts, "about": self.show_about,
        }

    # ------------------------------------------------------------------ wiring

    def _connect(self) -> None:
        s, st, cp = self.session, self.state, self.chat_page
        s.chat_changed.connect(self._on_chat_changed)
        s.chats_changed.connect(self.sidebar.refresh)
        s.busy_changed.connect(self._on_busy)
        s.finished.connect(self._on_answer_finished)
        s.failed.connect(self._on_answer_failed)
        s.editing_changed.connect(lambda mid: self.edit_bar.setVisible(mid is not None))
        self.model.modelReset.connect(self._update_empty)
        st.installed.changed.connect(self._update_empty)  # the suggestions follow what is installed
        self.model.rowsInserted.connect(self._update_empty)
        st.model_changed.connect(self._on_model_changed)
        st.load_progress.connect(self.status.load_progress)
        st.model_loaded.connect(self._on_loaded)
        st.load_failed.connect(self._on_load_failed)
        st.load_cancelled.connect(self._on_load_cancelled)
        self.status.cancel_load_requested.connect(self.cancel_load)
        cp.input.send_pressed.connect(self.send)
        cp.input.escape_pressed.connect(self.escape)
        cp.input.up_in_empty.connect(self.edit_last)
        cp.send_btn.clicked.connect(lambda: self.send())
        cp.stop_btn.clicked.connect(self.stop)
        cp.cancel_edit_btn.clicked.connect(self.cancel_edit)
        cp.settings_btn.clicked.connect(lambda on: self.toggle_settings_panel(on))
        cp.view.branch_requested.connect(self.switch_branch)
        cp.view.edit_requested.connect(self.edit_message)
        cp.view.regenerate_requested.connect(self.regenerate)
        cp.view.copied.connect(lambda what: self.statusBar().showMessage(f"Copied the {what}.", 3000))
        cp.view.link_clicked.connect(self.open_link)
        sb = self.sidebar
        sb.new_chat_requested.connect(self.new_chat)
        sb.chat_requested.connect(self.open_chat)
        sb.hit_requested.connect(self.open_hit)
        sb.rename_requested.connect(self.rename_chat)
        sb.delete_requested.connect(self.delete_chat)
        sb.export_requested.connect(self.export_chat)
        sb.search_cleared.connect(self.focus_input)
        sp = self.settings_panel
        sp.sampling_changed.connect(lambda d: setattr(self.session.overrides, "sampling", d))
        sp.system_prompt_changed.connect(lambda t: setattr(self.session.overrides, "system_prompt", t))
        sp.reasoning_changed.connect(lambda d: setattr(self.session.overrides, "reasoning", d))
        sp.reload_requested.connect(self._reload_with)
        sp.saved.connect(self.on_settings_saved)
        self._live = self.startTimer(500)  # live tok/s under a streaming answer, twice a second

    def timerEvent(self, e) -> None:  # noqa: N802
        st = self.session.stream
        if e.timerId() == self._live and st is not None and self.session.stream_shown(st):
            self.chat_page.view.set_live_rate(st.live_rate())

    # ------------------------------------------------------------------ window state

    def _restore(self) -> None:
        st = QSettings()
        geo = st.value("window/geometry")
        if geo is None or not self.restoreGeometry(geo):
            self.resize(1180, 760)
        fit_to_screen(self)
        last = st.value("window/last_chat", 0, type=int)
        if last and self.chats.chat(last) is not None:
            self.open_chat(last)
        elif self.chat_list_model.rowCount():
            self.open_chat(self.chat_list_model.chats[0].id)
        else:
            self.new_chat()

    def showEvent(self, e) -> None:  # noqa: N802 - the frame is known now: keep it all on the screen
        super().showEvent(e)
        if not getattr(self, "_shown_once", False):
            self._shown_once = True
            fit_to_screen(self)
            self._refit = QTimer(self, singleShot=True, interval=200)  # again once the window manager framed it
            self._refit.timeout.connect(lambda: fit_to_screen(self))
            self._refit.start()
            side = max(180, min(260, self.width() // 4))
            self.splitter.setSizes([side, max(300, self.width() - side), 320])

    def closeEvent(self, e) -> None:  # noqa: N802
        st = QSettings()
        st.setValue("window/geometry", self.saveGeometry())
        st.setValue("window/last_chat", self.chat_id or 0)
        self.server.close()
        self.state.close()
        super().closeEvent(e)

    def set_theme(self, mode: str) -> None:
        theme.set_mode(mode)
        for m, a in self.theme_actions.items():
            a.setChecked(m == mode)
        self.session.show_thread()  # code blocks pick their light or dark highlighting again

    MIN_CHAT_COLUMN = 420  # logical pixels the chat column keeps when the settings panel opens

    def toggle_settings_panel(self, on: bool | None = None) -> None:
        on = not self.settings_panel.isVisible() if on is None else bool(on)
        if on and self.settings_panel.profile is None:  # nothing loaded yet: the profile that will be
            self.settings_panel.set_profile(self.state.current.target or self.store.default())
        self.settings_panel.setVisible(on)
        self.settings_action.setChecked(on)
        self.chat_page.settings_btn.setChecked(on)
        # The conversation keeps a readable column: in a narrow window (2x) the panel folds the chat list away
        # while it is open, and unfolds it when it closes.
        if on and self.sidebar.isVisible():
            rest = self.splitter.width() - self.settings_panel.minimumWidth() - self.sidebar.width()
            if rest < self.MIN_CHAT_COLUMN:
                self._sidebar_folded = True
                self.toggle_sidebar()
        elif not on and self._sidebar_folded:
            self._sidebar_folded = False
            if not self.sidebar.isVisible():
                self.toggle_sidebar()
        if on:
            self.show_page("chats")
            self.settings_panel.focus_first()

    def toggle_sidebar(self) -> None:
        self.sidebar.setVisible(not self.sidebar.isVisible())
        self.sidebar_action.setChecked(self.sidebar.isVisible())

    def _show_profile_problems(self) -> None:
        problems = list(self.store.problems)
        if not problems:
            return
        lines = [f"{Path(str(p.path)).name}: {p.key or '(file)'} — {p.message}" for p in problems]
        self.chat_page.problems.show_message(
            f"{len(problems)} profile file{'s' if len(problems) > 1 else ''} could not be used and "
            f"{'were' if len(problems) > 1 else 'was'} skipped: {lines[0]}", "\n".join(lines))

    def _clipboard(self):  # noqa: ANN202 - one place, so tests can read what was copied
        return QGuiApplication.clipboard()
