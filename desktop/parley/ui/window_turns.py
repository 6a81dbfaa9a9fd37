"""What the window does around turns: message actions, footer links, model and switches.

Moved out of :mod:`parley.ui.main_window` as-is. :class:`TurnEvents` takes the signals of
the chat view, the message actions, the branch bar, the composer's switches, the model
picker and the running turn, and routes them to the window's requests
(:class:`~parley.ui.turns.TurnRequests` behind ``begin_edit``, ``retry_message`` …).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from parley.ui.window_layout import PAGE_CHAT

if TYPE_CHECKING:
    from PySide6.QtGui import QAction
    from PySide6.QtWidgets import QStackedWidget

    from parley.core.chat import ChatSession, TurnOptions
    from parley.ui.chat.transcript import Transcript
    from parley.ui.chat.view import ChatView
    from parley.ui.composer import Composer
    from parley.ui.controllers import ChatController, RunningTurn
    from parley.ui.knowledge.docks import KnowledgeDocks
    from parley.ui.message_actions import BranchBar, MessageActions
    from parley.ui.model_picker import ModelChooser, ModelPicker
    from parley.ui.status import StatusStrip


class TurnEvents:
    """Routes what is clicked on messages and what a turn reports to the window.

    Args:
        view, transcript, models, stack, status: The window's parts.
        act_regenerate: The Regenerate action (off while a turn runs).
        chat: Stores a chat's model and switches (through ``run_op``).
        run_op: Runs a core operation on the writer (the window redraws what changed).
        shown: The conversation shown (None: a new chat).
        docks: The documents' docks (None without the knowledge feature).
        refresh_sidebar, refresh_cost, conversation_shown: The window's redraws.
        begin_edit, retry, delete_answer, show_version, show_sources: The window's requests.
    """

    def __init__(
        self,
        *,
        view: ChatView,
        transcript: Transcript,
        models: ModelChooser,
        stack: QStackedWidget,
        status: StatusStrip,
        act_regenerate: QAction,
        chat: ChatSession,
        run_op: Callable[..., asyncio.Task[None]],
        shown: Callable[[], int | None],
        docks: Callable[[], KnowledgeDocks | None],
        refresh_sidebar: Callable[[], Any],
        refresh_cost: Callable[[], Any],
        conversation_shown: Callable[[], None],
        begin_edit: Callable[[str], Any],
        retry: Callable[[str], Any],
        delete_answer: Callable[[str], Any],
        show_version: Callable[[str], Any],
        show_sources: Callable[[str], Any],
    ) -> None:
        self.view = view
        self.transcript = transcript
        self.models = models
        self.stack = stack
        self.status = status
        self.act_regenerate = act_regenerate
        self._chat = chat
        self._run_op = run_op
        self._shown = shown
        self._docks = docks
        self.refresh_sidebar = refresh_sidebar
        self._refresh_cost = refresh_cost
        self._conversation_shown = conversation_shown
        self.begin_edit = begin_edit
        self.retry_message = retry
        self.delete_answer = delete_answer
        self.show_version = show_version
        self.show_sources = show_sources

    @property
    def conversation_id(self) -> int | None:
        """The conversation shown (None: a new, empty chat)."""
        return self._shown()

    @property
    def docks(self) -> KnowledgeDocks | None:
        """The documents' docks, once bound."""
        return self._docks()

    def connect(
        self,
        *,
        controller: ChatController,
        actions_hook: MessageActions,
        branch_bar: BranchBar,
        composer: Composer,
        picker: ModelPicker,
    ) -> None:
        """Connect the signals this routes (the transcript's own slots are connected first)."""
        c = controller
        c.sig_busy_changed.connect(self._busy_changed)
        c.sig_turn_started.connect(self._turn_started)  # after the transcript's own slot
        self.transcript.sig_turn_ended.connect(self._turn_ended)
        self.view.sig_retry_requested.connect(self.retry_message)
        self.view.sig_copy_done.connect(
            lambda what: self.status.showMessage(f"Copied {what}.", 2500)
        )
        actions_hook.sig_edit_requested.connect(self.begin_edit)
        actions_hook.sig_regenerate_requested.connect(self.retry_message)
        actions_hook.sig_version_requested.connect(self.show_version)
        branch_bar.sig_version_requested.connect(self.show_version)
        self.view.sig_message_action.connect(self._message_action)
        self.view.sig_footer_activated.connect(self._footer_link)
        composer.sig_options_changed.connect(self._switches_changed)
        picker.sig_model_chosen.connect(self._model_chosen)

    def _footer_link(self, message_id: str, href: str) -> None:
        """A ``parley-…`` link under an answer: "N more sent" shows its Sources panel."""
        from parley.ui.knowledge.citations import SOURCES_HREF

        if href.startswith(SOURCES_HREF):
            self.show_sources(message_id)

    def _message_action(self, message_id: str, action: str) -> None:
        """An action clicked on a message in the chat view."""
        if action == "edit":
            self.begin_edit(message_id)
        elif action == "regenerate":
            self.retry_message(message_id)
        elif action == "delete":
            self.delete_answer(message_id)
        elif action in ("version-prev", "version-next") and self.transcript is not None:
            v = self.transcript.versions(message_id)
            target = None if v is None else v.current + (1 if action == "version-next" else -1)
            if v is not None and target is not None and 0 <= target < len(v.ids):
                self.show_version(v.ids[target])

    async def prepare_turn(self, options: TurnOptions) -> None:
        """Before a turn: the SDK client, and the documents when the turn may use them."""
        if self.models is not None:
            await self.models.sdk_ready()
        if self.docks is not None:
            await self.docks.prepare_turn(options)

    def _busy_changed(self, busy: bool) -> None:
        self.act_regenerate.setEnabled(not busy)
        if self.view is not None:
            self.view.set_actions_enabled(not busy)

    def _turn_started(self, turn: RunningTurn) -> None:
        # The transcript has shown the question and the empty answer (its slot runs first).
        if self.conversation_id == turn.conversation_id:
            self.stack.setCurrentIndex(PAGE_CHAT)
        if turn.options is not None and self.models is not None:
            self.models.remember(turn.options.provider, turn.options.model)
        self._conversation_shown()
        self.refresh_sidebar()

    def _turn_ended(self, conversation_id: int) -> None:
        if conversation_id == self.conversation_id:
            self._refresh_cost()
        self.refresh_sidebar()

    def _model_chosen(self, provider: str, model: str) -> None:
        # A new chat stores its model with its first turn (ChatSession does).
        if self.conversation_id is not None and self._chat is not None:
            op = self._chat.set_options(self.conversation_id, provider=provider, model=model)
            self._run_op(op, name="set-model")
        if self.models is not None:
            self.models.remember(provider, model)  # the next new chat starts with it
            self.models.update_status()

    def _switches_changed(self, use_tools: bool, use_knowledge: bool) -> None:
        if use_knowledge and self.docks is not None:
            self.docks.warm_up()  # open the documents now, while the question is typed
        if self.conversation_id is not None and self._chat is not None:
            op = self._chat.set_options(
                self.conversation_id, use_tools=use_tools, use_knowledge=use_knowledge
            )
            self._run_op(op, name="set-switches")
