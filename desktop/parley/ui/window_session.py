"""Picking up where the person left off, and noticing chats made elsewhere (issue 14 item 7).

:class:`WindowSession` keeps three things across starts, in Parley's database
(:mod:`parley.core.store.window_state`), written only through ``ChatSession`` operations on
the one writer thread and read in worker threads:

- **drafts per conversation**: what is typed and not sent belongs to the chat it was typed
  in (the new chat has its own); it follows the person from chat to chat and survives a
  restart (saved a moment after typing stops, and when leaving a chat or quitting);
- **the open conversation** (saved when one is opened, so even a crash reopens it);
- **where it was scrolled** (the message at the top and how far into it; saved on quit).

It also polls ``PRAGMA data_version`` in a worker thread every :data:`POLL_MS`: the number
moves only when another connection commits (``parley ask`` in a terminal, another process),
so the sidebar is re-read when, and only when, something else changed the database. The
poll costs one tiny query off the GUI thread (``tests/bench/bench_ui.py``, ``poll_*``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, QTimer, Signal

from parley.core.errors import ParleyError

if TYPE_CHECKING:
    from parley.core.chat import ChatSession
    from parley.core.store.conversations import ConversationStore
    from parley.ui.composer import Composer
    from parley.ui.tasks import TaskSet

log = logging.getLogger(__name__)

OPEN_KEY = "open"
"""The window-state key of the open conversation and its scroll position."""

POLL_MS = 1500
"""How often the database is asked whether another process changed it."""

DRAFT_SAVE_MS = 700
"""How long after the last keystroke a draft is saved."""

NEW_CHAT = 0
"""The draft key of the new, not yet saved chat."""


@dataclass(frozen=True)
class Restore:
    """What the last session left: the open chat and where it was scrolled."""

    conversation_id: int | None
    anchor: tuple[str, float] | None
    """(message id at the top, pixels into it); None: at the end."""


class WindowSession(QObject):
    """Drafts, the open chat and its scroll position across starts; the external-change poll.

    Args:
        composer: Its text is the draft of the chat shown.
        chat: Saves drafts and state (operations on the writer).
        store: Read in worker threads (drafts, state, ``data_version``).
        tasks: Where saving, reading and polling run.
        shown: The conversation shown (None: the new chat).
        poll_ms: The poll's period (0: no polling).
    """

    # ---- Signals
    sig_database_changed = Signal()
    """Another connection or process committed to the database (the sidebar re-reads)."""

    def __init__(
        self,
        *,
        composer: Composer,
        chat: ChatSession,
        store: ConversationStore,
        tasks: TaskSet,
        shown: Callable[[], int | None],
        poll_ms: int = POLL_MS,
    ) -> None:
        super().__init__(composer)
        self._composer = composer
        self._chat = chat
        self._store = store
        self._tasks = tasks
        self._shown = shown
        self._drafts: dict[int, str] = {}
        self._saved: dict[int, str] = {}
        self._dirty: set[int] = set()
        self._placing = False
        self._loaded = False
        self._version: int | None = None
        self._polling: asyncio.Task[None] | None = None
        self.closing = False
        """Set when the window closes: nothing more is saved or polled."""
        self.polls = 0
        """How many polls ran (tests and the benchmark read it)."""

        self._save_timer = QTimer(self)
        self._save_timer.setSingleShot(True)
        self._save_timer.setInterval(DRAFT_SAVE_MS)
        self._save_timer.timeout.connect(self.save_drafts)
        self._poll_timer = QTimer(self)
        self._poll_timer.setInterval(max(50, poll_ms))
        self._poll_timer.timeout.connect(self.poll)
        self._poll_ms = poll_ms
        composer.edit.textChanged.connect(self._text_changed)

    # ---- drafts
    def draft(self, conversation_id: int | None) -> str:
        """The draft kept for a conversation (None: the new chat)."""
        return self._drafts.get(conversation_id or NEW_CHAT, "")

    def leaving(self) -> None:
        """The shown chat is about to change: save its draft now."""
        self.save_drafts()

    def arrived(self, conversation_id: int | None) -> None:
        """A chat is shown: put its draft in the composer (an edit in progress is kept)."""
        if self._composer.editing_id() is not None:
            return
        text = self.draft(conversation_id)
        if self._composer.text() != text:
            self._placing = True
            try:
                self._composer.set_text(text)
            finally:
                self._placing = False

    def save_drafts(self) -> None:
        """Save the drafts changed since the last save (operations on the writer)."""
        self._save_timer.stop()
        if self.closing:
            return
        for key in sorted(self._dirty):
            text = self._drafts.get(key, "")
            if self._saved.get(key, "") != text:
                self._saved[key] = text
                self._run(self._chat.save_draft(key or None, text), "save-draft")
        self._dirty.clear()

    def _text_changed(self) -> None:
        if self._placing or self._composer.editing_id() is not None:
            return  # a draft being put back, or an earlier question being edited
        key = self._shown() or NEW_CHAT
        self._drafts[key] = self._composer.text()
        self._dirty.add(key)
        self._save_timer.start()

    # ---- the open chat
    def opened(self, conversation_id: int | None) -> None:
        """Remember the chat now shown (None: the new chat) for the next start."""
        if not self.closing and self._loaded:
            value = {"conversation_id": conversation_id} if conversation_id else None
            self._run(self._chat.save_window_value(OPEN_KEY, value), "save-open")

    async def load(self) -> Restore:
        """Read the drafts and the last open chat (in a worker thread)."""
        store = self._store

        def read() -> tuple[dict[int, str], Any]:
            state = store.window_value(OPEN_KEY)
            cid = state.get("conversation_id") if isinstance(state, dict) else None
            if isinstance(cid, int) and store.get(cid) is None:
                state = None  # deleted since: start with a new chat, say nothing
            return store.drafts(), state

        try:
            drafts, state = await asyncio.to_thread(read)
        except ParleyError as exc:
            log.warning("could not read the last session: %s", exc.user_message)
            drafts, state = {}, None
        for key, text in drafts.items():
            self._saved[key] = text
            self._drafts.setdefault(key, text)  # what was typed meanwhile wins
        self._loaded = True
        if not isinstance(state, dict):
            return Restore(None, None)
        cid = state.get("conversation_id")
        raw = state.get("anchor")
        anchor: tuple[str, float] | None = None
        if isinstance(raw, list) and len(raw) == 2:
            mid, offset = raw
            if isinstance(mid, str) and isinstance(offset, int | float):
                anchor = (mid, float(offset))
        return Restore(cid if isinstance(cid, int) and not isinstance(cid, bool) else None, anchor)

    async def save_on_quit(self, anchor: tuple[str, float] | None) -> None:
        """Save the drafts, the open chat and where it is scrolled; wait until written."""
        self.save_drafts()
        cid = self._shown()
        value = {"conversation_id": cid, "anchor": list(anchor) if anchor else None}
        self.closing = True
        self.stop_polling()
        try:
            await self._chat.save_window_value(OPEN_KEY, value if cid else None)
        except ParleyError as exc:
            log.warning("could not save the window's state: %s", exc.user_message)

    # ---- noticing other processes
    def start_polling(self) -> None:
        """Ask every :data:`POLL_MS` whether another process changed the database."""
        if self._poll_ms > 0 and not self.closing:
            self._poll_timer.start()
            self.poll()  # the first answer is the baseline

    def stop_polling(self) -> None:
        """No more polls (the window is closing)."""
        self._poll_timer.stop()

    def poll(self) -> asyncio.Task[None] | None:
        """One poll (skipped while the previous one is still out)."""
        if self.closing or (self._polling is not None and not self._polling.done()):
            return None
        self._polling = self._tasks.spawn(self._poll(), name="database-poll")
        return self._polling

    async def _poll(self) -> None:
        try:
            version = await asyncio.to_thread(self._store.data_version)
        except ParleyError:
            return
        except Exception as exc:  # a closed or damaged database: stop asking
            log.info("stopped polling the database: %s", exc)
            self.stop_polling()
            return
        self.polls += 1
        if self.closing:
            return
        changed = self._version is not None and version != self._version
        self._version = version
        if changed:
            self.sig_database_changed.emit()

    # ---- internals
    def _run(self, op: Any, name: str) -> None:
        async def wait() -> None:
            try:
                await op
            except ParleyError as exc:  # the draft stays in memory and in the composer
                log.warning("%s failed: %s", name, exc.user_message)

        self._tasks.spawn(wait(), name=name)
