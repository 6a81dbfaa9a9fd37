"""The conversation list, and how the window runs conversation operations.

:meth:`ConversationList.run` is the window's ``CollectionOp`` (Anki's
``aqt/operations``): it awaits a ``ChatSession`` operation already queued on the database's
one writer thread, shows a failure in the notice bar (the window keeps running), then redraws
what the returned :class:`~parley.core.chat.OpChanges` says changed and announces it
(``sig_operation_executed``). The list itself is read in a worker thread; the newest read
wins. Rename, delete (with Undo) and undo are operations like any other.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Signal

from parley.core.errors import ParleyError
from parley.ui.sidebar import ConversationRow, Sidebar

if TYPE_CHECKING:
    from parley.core.chat import ChatSession, OpChanges
    from parley.core.store.conversations import ConversationStore
    from parley.ui.notices import NoticeBar
    from parley.ui.tasks import TaskSet

UNDO_SECONDS = 10.0
"""How long the Undo offer stays after deleting a chat."""


class ConversationList(QObject):
    """Keeps the sidebar's list current and runs conversation operations.

    Args:
        sidebar: The list widget (search text, grouping, selection).
        chat: Runs the operations on the writer.
        store: Read (in worker threads) for the list.
        tasks: Where operations and reads are awaited.
        notice: Failures and the Undo offer.
        shown: The conversation the window shows (selected in the list), or None.
    """

    # ---- Signals
    sig_operation_executed = Signal(object)
    """An operation finished and the list is being redrawn: its ``OpChanges``."""

    def __init__(
        self,
        sidebar: Sidebar,
        *,
        chat: ChatSession,
        store: ConversationStore,
        tasks: TaskSet,
        notice: NoticeBar,
        shown: Callable[[], int | None],
    ) -> None:
        super().__init__(sidebar)
        self._sidebar = sidebar
        self._chat = chat
        self._store = store
        self._tasks = tasks
        self._notice = notice
        self._shown = shown
        self._generation = 0
        self.closing = False
        """Set when the window closes: late results are dropped."""

    # ---- Public API
    def run(
        self,
        op: Awaitable[OpChanges],
        then: Callable[[OpChanges], Any] | None = None,
        *,
        name: str = "operation",
    ) -> asyncio.Task[None]:
        """Await an operation, call ``then`` with what changed (awaited if async), redraw."""

        async def run() -> None:
            try:
                changes = await op
            except ParleyError as exc:  # the database failed: say so, keep running
                self._notice.show_notice(exc.user_message, kind="error", timeout_s=12.0)
                return
            if self.closing:
                return
            if then is not None:  # first: undo shows the chat before the list selects it
                result = then(changes)
                if inspect.isawaitable(result):
                    await result
            if changes.listing:
                self.refresh()
            self.sig_operation_executed.emit(changes)

        return self._tasks.spawn(run(), name=name)

    def refresh(self, *, sync: bool = False) -> asyncio.Task[None] | None:
        """Reload the list (search text applied) off the GUI thread.

        ``sync`` reads on the calling thread (tests that fill the store themselves).
        """
        store = self._store
        query = self._sidebar.query() or None
        self._generation += 1
        generation = self._generation

        def show(rows: list[ConversationRow]) -> None:
            if generation == self._generation and not self.closing:
                self._sidebar.set_conversations(rows, current_id=self._shown())

        def load() -> list[ConversationRow]:
            return [ConversationRow(c.id, c.title, c.updated_at) for c in store.list(query=query)]

        if sync:
            show(load())
            return None

        async def run() -> None:
            show(await asyncio.to_thread(load))

        return self._tasks.spawn(run(), name="sidebar-refresh")

    def rename(self, conversation_id: int, title: str) -> asyncio.Task[None] | None:
        """Set a conversation's title (an empty one is ignored)."""
        if not title.strip():
            return None
        return self.run(self._chat.rename(conversation_id, title), name="rename")

    def delete(self, conversation_id: int, *, undo: Callable[[int], object]) -> asyncio.Task[None]:
        """Soft-delete a conversation and offer ``undo(conversation_id)`` for a while."""

        def offer_undo(changes: OpChanges) -> None:
            if changes.conversation is None:
                return  # it was already gone
            title = changes.conversation.title or "New chat"
            self._notice.show_notice(
                f"Deleted “{_short(title, 40)}”.",
                action=("Undo", lambda: undo(conversation_id)),
                timeout_s=UNDO_SECONDS,
                tag="undo",
            )

        return self.run(self._chat.delete(conversation_id), offer_undo, name="delete")

    def undelete(
        self, conversation_id: int, *, then: Callable[[OpChanges], Any] | None = None
    ) -> asyncio.Task[None]:
        """Bring a deleted conversation back (``then``: show it; the list follows)."""
        return self.run(self._chat.undelete(conversation_id), then, name="undelete")


def _short(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"
