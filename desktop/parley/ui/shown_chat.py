"""Which chat the window shows: a new, empty one, or a stored one reopened, with its cost.

Moved out of :mod:`parley.ui.main_window` as-is: the window's ``new_chat`` and
``open_conversation`` delegate to :class:`ShownChat`, which also reopens the chat that was
open at the last quit and keeps the shown conversation's row and cost.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

from parley.ui.window_layout import PAGE_CHAT, PAGE_EMPTY, PAGE_ONBOARDING

if TYPE_CHECKING:
    from PySide6.QtWidgets import QStackedWidget

    from parley.core.store.conversations import Conversation, ConversationStore
    from parley.ui.chat.transcript import Transcript
    from parley.ui.chat.view import ChatView
    from parley.ui.composer import Composer
    from parley.ui.model_picker import ModelChooser
    from parley.ui.sidebar import Sidebar
    from parley.ui.status import StatusStrip
    from parley.ui.tasks import TaskSet
    from parley.ui.window_session import WindowSession


class ShownChat:
    """Shows a new chat or a stored one: the transcript, the composer, the model, the cost.

    Args:
        transcript: What the chat view shows (it loads a conversation off the GUI thread).
        models: The model chooser (a chat's own model, or the default).
        composer, sidebar, status, stack, view: The window's parts.
        store: The conversations (only read, in worker threads: the cost).
        session: Drafts, the open chat and its scroll position across starts.
        tasks: Background tasks of the window.
        closing: Whether the window is closing.
        onboarding_shown: Whether the onboarding panel exists (a new chat waits for it).
        opened: Announces the conversation shown (-1: a new, empty chat).
    """

    def __init__(
        self,
        *,
        transcript: Transcript,
        models: ModelChooser,
        composer: Composer,
        sidebar: Sidebar,
        status: StatusStrip,
        stack: QStackedWidget,
        view: ChatView,
        store: ConversationStore,
        session: WindowSession,
        tasks: TaskSet,
        closing: Callable[[], bool],
        onboarding_shown: Callable[[], bool],
        opened: Callable[[int], None],
    ) -> None:
        self.transcript = transcript
        self.models = models
        self.composer = composer
        self.sidebar = sidebar
        self.status = status
        self.stack = stack
        self.view = view
        self._conversations = store
        self.session = session
        self._tasks = tasks
        self._is_closing = closing
        self._onboarding_shown = onboarding_shown
        self._opened = opened
        self.conversation: Conversation | None = None
        """The shown conversation's row as last read or changed (its own system prompt)."""
        self._cost_generation = 0

    @property
    def conversation_id(self) -> int | None:
        """The conversation shown (None: a new, empty chat)."""
        return self.transcript.conversation_id

    @property
    def _closing(self) -> bool:
        return self._is_closing()

    async def restore(self) -> None:
        """Reopen the chat that was open, scrolled where it was, with its draft."""
        restore = await self.session.load()
        if self._closing or self.stack.currentIndex() == PAGE_ONBOARDING:
            return
        if self.conversation_id is not None or self.transcript is None:
            return  # the person opened a chat meanwhile
        if self.transcript.loading_id is not None:
            return
        cid = restore.conversation_id
        if cid is None:
            self.session.arrived(None)  # the new chat's draft
            return
        task = self.open_conversation(cid)
        if task is not None:
            await task
        shown = self.transcript.conversation_id  # (a property mypy would keep narrowed)
        if shown == cid and restore.anchor is not None and self.view is not None:
            self.view.scroll_to_anchor(*restore.anchor)

    def new_chat(self) -> None:
        """Ctrl+N: an empty chat (created in the store when the first question is sent)."""
        if self.stack.currentIndex() == PAGE_ONBOARDING and self._onboarding_shown():
            return
        if self.session is not None:
            self.session.leaving()
        self.transcript.clear()
        self.conversation = None
        self._cost_generation += 1
        self.composer.cancel_edit()
        self.composer.set_options(False, False)
        self.composer.set_can_regenerate(False)
        self.sidebar.select(None)
        self.status.clear_conversation()
        self.models.select_default()
        self.stack.setCurrentIndex(PAGE_EMPTY)
        if self.session is not None:
            self.session.arrived(None)
            self.session.opened(None)
        self.composer.edit.setFocus()
        self._opened(-1)

    def open_conversation(self, conversation_id: int) -> asyncio.Task[None] | None:
        """Show a stored conversation (its current branch), read off the GUI thread."""
        if self._closing:
            return None
        if self.session is not None:
            self.session.leaving()
        return self._tasks.spawn(self._open(conversation_id), name="open-conversation")

    async def _open(self, conversation_id: int) -> None:
        loaded = await self.transcript.load(conversation_id)
        if loaded is None or self._closing:
            return  # gone (sig_conversation_missing said so) or another chat came after it
        self.conversation = conv = loaded.conversation
        self.composer.cancel_edit()
        opts = conv.options
        self.composer.set_options(bool(opts.get("use_tools")), bool(opts.get("use_knowledge")))
        provider, model = opts.get("provider"), opts.get("model")
        if provider and model:
            self.models.pick(str(provider), str(model))
        else:
            self.models.select_default()
        self.models.update_status()
        self._cost_generation += 1
        self.status.set_conversation_cost(*loaded.cost)
        self.composer.set_can_regenerate(any(m.role == "user" for m in loaded.branch))
        self.sidebar.select(conversation_id)
        self.stack.setCurrentIndex(PAGE_CHAT if loaded.branch else PAGE_EMPTY)
        if self.session is not None:
            self.session.arrived(conversation_id)
            self.session.opened(conversation_id)
        self._opened(conversation_id)

    def refresh_cost(self) -> asyncio.Task[None] | None:
        """Show the shown conversation's cost (read off the GUI thread)."""
        if self._conversations is None or self.conversation_id is None:
            self.status.clear_conversation()
            return None
        store, cid = self._conversations, self.conversation_id
        self._cost_generation += 1
        generation = self._cost_generation

        async def run() -> None:
            total, unknown = await asyncio.to_thread(store.conversation_cost, cid)
            if generation == self._cost_generation and not self._closing:
                self.status.set_conversation_cost(total, unknown)

        return self._tasks.spawn(run(), name="conversation-cost")
