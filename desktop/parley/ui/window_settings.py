"""The settings dialog, a chat's own prompt, the theme, and the first-run (onboarding) page.

Moved out of :mod:`parley.ui.main_window` as-is: the window creates one
:class:`SettingsAndOnboarding` in ``bind`` and its ``open_settings`` and ``show_onboarding``
delegate here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QStackedWidget, QWidget

from parley.ui.theme import apply_theme
from parley.ui.window_layout import PAGE_EMPTY, PAGE_ONBOARDING

if TYPE_CHECKING:
    from parley.core.chat import ChatSession, OpChanges
    from parley.core.providers.catalog import Catalog
    from parley.core.secrets import Secrets
    from parley.core.services import ProviderFactory
    from parley.core.settings import Settings, SettingsStore
    from parley.core.store.conversations import Conversation
    from parley.ui.composer import Composer
    from parley.ui.model_picker import ModelChooser
    from parley.ui.onboarding import OnboardingPanel
    from parley.ui.settings.dialog import SettingsDialog
    from parley.ui.tasks import TaskSet


class SettingsAndOnboarding:
    """The settings dialog (non-modal, one at a time), the theme and the onboarding page.

    Args:
        window: The parent of the dialog.
        settings, secrets, catalog, providers, chat, tasks: The core's collaborators.
        models: The model chooser (whether any provider is usable).
        stack, composer, bottom, onboarding_holder: The window's pages and composer.
        probe_ports: Local server ports the onboarding panel probes (None: the defaults).
        shown: The conversation shown (None: a new chat).
        conversation: The shown conversation's row as last read (its own system prompt).
        run_op: Runs a core operation on the writer (the window redraws what changed).
        refresh_models: Rebuilds the picker.
        new_chat: Shows a new, empty chat.
    """

    def __init__(
        self,
        window: QWidget,
        *,
        settings: SettingsStore,
        secrets: Secrets,
        catalog: Catalog,
        providers: ProviderFactory,
        chat: ChatSession,
        tasks: TaskSet,
        models: ModelChooser,
        stack: QStackedWidget,
        composer: Composer,
        bottom: QWidget,
        onboarding_holder: QWidget,
        probe_ports: Mapping[str, int] | None,
        shown: Callable[[], int | None],
        conversation: Callable[[], Conversation | None],
        run_op: Callable[..., asyncio.Task[None]],
        refresh_models: Callable[[], Any],
        new_chat: Callable[[], None],
    ) -> None:
        self._window = window
        self._settings = settings
        self._secrets = secrets
        self._catalog = catalog
        self._providers = providers
        self._chat = chat
        self._tasks = tasks
        self.models = models
        self.stack = stack
        self.composer = composer
        self._bottom = bottom
        self.onboarding_holder = onboarding_holder
        self._probe_ports = probe_ports
        self._shown = shown
        self._conversation = conversation
        self._run_op = run_op
        self.refresh_models = refresh_models
        self.new_chat = new_chat
        self.settings_dialog: SettingsDialog | None = None
        self.onboarding: OnboardingPanel | None = None
        self._theme = "system"

    @property
    def conversation_id(self) -> int | None:
        """The conversation shown (None: a new, empty chat)."""
        return self._shown()

    def start(self) -> None:
        """Follow the settings and apply the theme they name."""
        self._settings.add_listener(self._settings_changed)
        app = QApplication.instance()
        self._theme = self._settings.current.theme
        if isinstance(app, QApplication):
            apply_theme(app, self._theme)

    def stop(self) -> None:
        """Stop following the settings (on quit)."""
        self._settings.remove_listener(self._settings_changed)

    def open_settings(self, provider_id: str | None = None) -> SettingsDialog:
        """Ctrl+,: the settings dialog (non-modal)."""
        from parley.ui.settings.dialog import SettingsDialog

        if self.settings_dialog is not None and self.settings_dialog.isVisible():
            self.settings_dialog.raise_()
            self.settings_dialog.activateWindow()
            if provider_id:
                self.settings_dialog.show_provider(provider_id)
            return self.settings_dialog
        dialog = SettingsDialog(
            settings=self._settings,
            secrets=self._secrets,
            catalog=self._catalog,
            providers=self._providers,
            tasks=self._tasks,
            conversation_id=self.conversation_id,
            chat_prompt=self._chat_prompt(),
            save_chat_prompt=self._save_chat_prompt,
            parent=self._window,
        )
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.sig_applied.connect(self._settings_applied)
        dialog.sig_keys_changed.connect(self.refresh_models)
        dialog.destroyed.connect(lambda *_: setattr(self, "settings_dialog", None))
        if provider_id:
            dialog.show_provider(provider_id)
        self.settings_dialog = dialog
        dialog.show()
        return dialog

    def _chat_prompt(self) -> str | None:
        conv = self._conversation()
        return conv.system_prompt if conv is not None and conv.id == self.conversation_id else None

    def _save_chat_prompt(self, conversation_id: int, prompt: str | None) -> None:
        op: Awaitable[OpChanges] = self._chat.set_system_prompt(conversation_id, prompt)
        self._run_op(op, name="set-chat-prompt")

    def _settings_applied(self) -> None:
        self.refresh_models()
        if self.stack.currentIndex() == PAGE_ONBOARDING and self._has_any_provider():
            self._leave_onboarding()

    def _settings_changed(self, settings: Settings) -> None:
        # Re-theming re-renders every visible message: only when the theme really changed.
        app = QApplication.instance()
        if isinstance(app, QApplication) and settings.theme != self._theme:
            self._theme = settings.theme
            apply_theme(app, settings.theme)

    def _has_any_provider(self) -> bool:
        return self.models is not None and bool(self.models.available_providers())

    def show_onboarding(self) -> OnboardingPanel:
        """Show the first-run panel and start probing for local servers."""
        from parley.ui.onboarding import DEFAULT_PROBE_PORTS, OnboardingPanel

        if self.onboarding is None:
            self.onboarding = OnboardingPanel(
                secrets=self._secrets,
                settings=self._settings,
                tasks=self._tasks,
                probe_ports=self._probe_ports
                if self._probe_ports is not None
                else DEFAULT_PROBE_PORTS,
            )
            self.onboarding_holder.layout().addWidget(self.onboarding)  # type: ignore[union-attr]
            self.onboarding.sig_completed.connect(lambda _pid: self._leave_onboarding())
            self.onboarding.sig_skipped.connect(self._leave_onboarding)
            self.onboarding.sig_settings_requested.connect(self.open_settings)
        self.stack.setCurrentIndex(PAGE_ONBOARDING)
        self.composer.setEnabled(False)
        self._bottom.setVisible(False)  # nothing to type into yet: the page gets the room
        self.onboarding.key_edit.setFocus()
        self.onboarding.start_probe()
        return self.onboarding

    def _leave_onboarding(self) -> None:
        if self.onboarding is not None:
            self.onboarding.cancel_probe()
        self._bottom.setVisible(True)
        self.composer.setEnabled(True)
        self.stack.setCurrentIndex(PAGE_EMPTY)
        self.refresh_models()
        self.new_chat()
