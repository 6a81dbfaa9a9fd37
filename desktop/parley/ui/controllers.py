"""The chat controller: runs one turn at a time and turns core events into Qt signals.

The window forwards intent (send, regenerate, edit, stop) with everything a turn needs (its
:class:`~parley.core.chat.TurnOptions`, and what to await before the turn talks to the core);
the controller never calls back into the window. It iterates the core's async generator
(``ChatSession.send/regenerate/edit``) in a task started through
:class:`~parley.ui.tasks.TaskSet` and emits a signal per event. Stop cancels that task: the
core saves the partial answer (status ``cancelled``) while the cancellation unwinds.

Failures before the question is saved (empty question, unknown model, unusable database)
come back as ``sig_turn_failed`` with the original text, so the window can put it back into
the composer; failures after that arrive as a ``TurnFinished`` carrying the typed error.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from PySide6.QtCore import QObject, Signal

from parley.core.agent import AgentStopped, ToolRunFinished, ToolRunStarted
from parley.core.chat import (
    ChatSession,
    SourcesAttached,
    TurnEvent,
    TurnFinished,
    TurnOptions,
    TurnStarted,
)
from parley.core.errors import ConfigError, ParleyError
from parley.core.providers.base import (
    AttemptStarted,
    CacheReplay,
    Estimated,
    FallbackUsed,
    Metered,
    RetryScheduled,
    TextDelta,
)
from parley.ui.tasks import TaskSet

log = logging.getLogger(__name__)

TurnKind = Literal["send", "regenerate", "edit"]

YIELD_EVERY_S = 0.005
"""Longest stretch the turn's loop runs before letting Qt process events (a third of a frame)."""

TEXT_BATCH_S = 0.01
"""Longest time a streamed delta waits to be handed to the view with the ones after it.

Handing text over as soon as the loop got a turn (``call_soon``) meant ~700 signals and
qasync timers a second on a fast stream; the view renders at most ~30 times a second."""


@dataclass
class RunningTurn:
    """The turn in progress (the transcript uses it to re-show a stream after switching chats)."""

    kind: TurnKind
    text: str
    conversation_id: int | None = None
    assistant_message_id: int | None = None
    user_message_id: int | None = None
    options: TurnOptions | None = None
    """The options the turn runs with (provider, model, switches)."""
    parts: list[str] = field(default_factory=list)
    fallback_model: str | None = None
    done: bool = False
    """The turn has finished and is saved (its ``TurnFinished`` was emitted)."""

    def streamed_text(self) -> str:
        """What arrived so far."""
        return "".join(self.parts)


class ChatController(QObject):
    """Runs chat turns and reports them as signals.

    Args:
        chat: The core chat session.
        tasks: Where the turn's task is started (kept alive, cancelled on quit).

    Each turn method takes the turn's ``options`` and, optionally, ``ready``: an awaitable
    the turn awaits before it talks to the core (the window passes one that waits for an SDK
    client being created off the GUI thread and opens the documents the turn may use).
    """

    # ---- Signals
    sig_busy_changed = Signal(bool)
    """A turn started (True) or ended (False)."""
    sig_turn_started = Signal(object)
    """The question is saved: the :class:`RunningTurn` (ids filled in)."""
    sig_text_arrived = Signal(int, str)
    """Answer text: (assistant message id, delta)."""
    sig_retry_scheduled = Signal(int, int, float, str)
    """The provider will be asked again: (message id, attempt, wait seconds, reason)."""
    sig_attempt_started = Signal(int, int)
    """A request went out: (message id, attempt number)."""
    sig_fallback_used = Signal(int, str, str)
    """The fallback model answers: (message id, model, message)."""
    sig_tool_started = Signal(int, str)
    """A tool began: (message id, tool name)."""
    sig_tool_call_started = Signal(int, object)
    """A tool began, with its call: (message id, :class:`~parley.core.providers.base.ToolCall`)."""
    sig_sources_attached = Signal(int, object, object)
    """Knowledge sources went into the prompt: (message id, tuple of ``Source``, the search
    query when a follow-up was rewritten into one, else None)."""
    sig_tool_finished = Signal(int, object)
    """A tool ended: (message id, :class:`~parley.core.agent.ToolRunFinished`)."""
    sig_agent_stopped = Signal(int, str)
    """The tool loop stopped early: (message id, message)."""
    sig_turn_finished = Signal(object)
    """The turn ended and is saved: :class:`~parley.core.chat.TurnFinished`."""
    sig_request_estimated = Signal(int, object)
    """A request is about to go out: (message id, its ``Estimated`` tokens and price)."""
    sig_request_metered = Signal(int, object)
    """A request's usage arrived and is in the ledger: (message id, ``Metered``)."""
    sig_cache_replayed = Signal(int, object)
    """The answer comes from Parley's response cache: (message id, ``CacheReplay``)."""
    sig_turn_cancelled = Signal(int, int)
    """Stop was pressed: (conversation id, assistant message id); the partial is saved."""
    sig_turn_failed = Signal(str, str, str)
    """The turn failed before the question was saved: (kind, text, one-line reason)."""
    sig_turn_broken = Signal(int, int, str)
    """An unexpected error ended a started turn: (conversation id, message id, summary)."""

    def __init__(self, chat: ChatSession, tasks: TaskSet) -> None:
        super().__init__()
        self._chat = chat
        self._tasks = tasks
        self._task: asyncio.Task[None] | None = None
        self._pending_text: list[str] = []
        self._pending_id = 0
        self._flush_scheduled = False
        self.turn: RunningTurn | None = None
        """The running turn, or None."""

    # ---- Public API
    def is_busy(self) -> bool:
        """Whether a turn is running."""
        return self._task is not None and not self._task.done()

    def send(
        self,
        text: str,
        conversation_id: int | None,
        attachments: Sequence[dict[str, str]] = (),
        *,
        options: TurnOptions,
        ready: Awaitable[None] | None = None,
    ) -> asyncio.Task[None] | None:
        """Ask ``text`` (in a new conversation when ``conversation_id`` is None)."""
        events = self._chat.send(
            text, options, conversation_id=conversation_id, attachments=tuple(attachments)
        )
        return self._start("send", text, conversation_id, options, events, ready)

    def regenerate(
        self,
        conversation_id: int,
        *,
        options: TurnOptions,
        ready: Awaitable[None] | None = None,
    ) -> asyncio.Task[None] | None:
        """Answer the current branch's last question again."""
        events = self._chat.regenerate(conversation_id, options)
        return self._start("regenerate", "", conversation_id, options, events, ready)

    def edit(
        self,
        conversation_id: int,
        message_id: int,
        text: str,
        attachments: Sequence[dict[str, str]] = (),
        *,
        options: TurnOptions,
        ready: Awaitable[None] | None = None,
    ) -> asyncio.Task[None] | None:
        """Ask ``text`` as a new version of the question ``message_id``.

        The old question and its answers stay on their branch; the new one keeps the old
        one's attachments and adds ``attachments``. This is ``ChatSession.send`` with the
        old question's parent (``ChatSession.edit`` would replace the attachments).
        """
        chat = self._chat

        async def events() -> AsyncIterator[TurnEvent]:
            original = await asyncio.to_thread(chat.conversations.message, message_id)
            if original is None or original.role != "user":
                raise ConfigError("That question no longer exists.")
            kept = list(original.meta.get("attachments") or [])
            sent = chat.send(
                text,
                options,
                conversation_id=conversation_id,
                parent_id=original.parent_id,
                attachments=(*kept, *attachments),
            )
            async with contextlib.aclosing(sent) as turn:
                async for ev in turn:
                    yield ev

        return self._start("edit", text, conversation_id, options, events(), ready)

    def stop(self) -> bool:
        """Cancel the running turn; False when none was running."""
        if not self.is_busy():
            return False
        assert self._task is not None
        self._task.cancel()
        return True

    def flush(self) -> None:
        """Emit the text collected but not yet sent (before re-showing a running stream)."""
        self._flush_text()

    async def wait(self) -> None:
        """Until the running turn (if any) has ended."""
        task = self._task
        if task is not None:
            await asyncio.gather(task, return_exceptions=True)

    # ---- internals
    def _start(
        self,
        kind: TurnKind,
        text: str,
        conversation_id: int | None,
        options: TurnOptions,
        events: AsyncIterator[TurnEvent],
        ready: Awaitable[None] | None,
    ) -> asyncio.Task[None] | None:
        if self.is_busy():
            if inspect.iscoroutine(ready):
                ready.close()  # never awaited: close it without a "never awaited" warning
            return None  # ``events`` never started: nothing to close
        self.turn = RunningTurn(
            kind=kind, text=text, conversation_id=conversation_id, options=options
        )
        self._task = self._tasks.spawn(self._run(self.turn, events, ready), name=f"turn-{kind}")
        self.sig_busy_changed.emit(True)
        return self._task

    async def _run(
        self, turn: RunningTurn, events: AsyncIterator[TurnEvent], ready: Awaitable[None] | None
    ) -> None:
        started = False
        finished = False
        try:
            if ready is not None:
                await ready
            slice_start = time.perf_counter()
            async for ev in events:
                # A fast stream arrives in big socket reads whose events are all ready: the
                # SDK and the core then hand them over without ever returning to the event
                # loop, and the window would freeze for the whole read. Give Qt a turn
                # (paint, input, timers) at least every YIELD_EVERY_S.
                now = time.perf_counter()
                if now - slice_start >= YIELD_EVERY_S:
                    self._flush_text()
                    await _yield_to_qt()
                    slice_start = time.perf_counter()
                if isinstance(ev, TextDelta):
                    turn.parts.append(ev.text)
                    self._queue_text(turn, ev.text)
                    continue
                self._flush_text()  # keep text and other events in order
                if isinstance(ev, TurnStarted):
                    started = True
                    turn.conversation_id = ev.conversation_id
                    turn.user_message_id = ev.user_message_id
                    turn.assistant_message_id = ev.assistant_message_id
                    self.sig_turn_started.emit(turn)
                elif isinstance(ev, TurnFinished):
                    finished = turn.done = True
                    self.sig_turn_finished.emit(ev)
                else:
                    self._other(turn, ev)
        except asyncio.CancelledError:
            self._flush_text()
            if started and not finished:
                assert turn.conversation_id is not None and turn.assistant_message_id is not None
                self.sig_turn_cancelled.emit(turn.conversation_id, turn.assistant_message_id)
            raise
        except ParleyError as exc:
            # The core raises only before the question is saved (empty, unknown chat, storage).
            if not started:
                self.sig_turn_failed.emit(turn.kind, turn.text, exc.user_message)
            else:  # pragma: no cover - ChatSession reports later errors in TurnFinished
                raise
        except Exception as exc:
            # A bug, not a provider failure: close the stream on screen, then let the
            # ErrorPresenter (via the TaskSet) log and show it.
            if started and not finished:
                assert turn.conversation_id is not None and turn.assistant_message_id is not None
                self.sig_turn_broken.emit(
                    turn.conversation_id,
                    turn.assistant_message_id,
                    f"Something went wrong: {type(exc).__name__}",
                )
            elif not started:
                self.sig_turn_failed.emit(
                    turn.kind, turn.text, f"Something went wrong: {type(exc).__name__}"
                )
            raise
        finally:
            self._flush_text()
            self._task = None
            self.turn = None
            close = getattr(events, "aclose", None)
            if close is not None:
                with contextlib.suppress(Exception):
                    await close()
            self.sig_busy_changed.emit(False)

    # ---- text batching
    def _queue_text(self, turn: RunningTurn, text: str) -> None:
        # One Qt signal per delta costs more than the delta's rendering (30,000 of them
        # in a long answer). Deltas are collected and emitted together TEXT_BATCH_S after
        # the first one, at a slice boundary, or before any other event; the view coalesces
        # rendering to ~30 per second anyway, so nobody sees the batching.
        self._pending_text.append(text)
        self._pending_id = turn.assistant_message_id or 0
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_later(TEXT_BATCH_S, self._flush_text)

    def _flush_text(self) -> None:
        self._flush_scheduled = False
        if self._pending_text:
            text = "".join(self._pending_text)
            self._pending_text.clear()
            self.sig_text_arrived.emit(self._pending_id, text)

    def _other(self, turn: RunningTurn, ev: object) -> None:
        mid = turn.assistant_message_id or 0
        if isinstance(ev, RetryScheduled):
            self.sig_retry_scheduled.emit(mid, ev.attempt, ev.wait_s, ev.message)
        elif isinstance(ev, AttemptStarted):
            self.sig_attempt_started.emit(mid, ev.attempt)
        elif isinstance(ev, FallbackUsed):
            turn.fallback_model = ev.model
            self.sig_fallback_used.emit(mid, ev.model, ev.message)
        elif isinstance(ev, ToolRunStarted):
            self.sig_tool_started.emit(mid, ev.call.name)
            self.sig_tool_call_started.emit(mid, ev.call)
        elif isinstance(ev, SourcesAttached):
            self.sig_sources_attached.emit(mid, ev.sources, ev.search_query)
        elif isinstance(ev, ToolRunFinished):
            self.sig_tool_finished.emit(mid, ev)
        elif isinstance(ev, AgentStopped):
            self.sig_agent_stopped.emit(mid, ev.message)
        elif isinstance(ev, Estimated):
            self.sig_request_estimated.emit(mid, ev)
        elif isinstance(ev, Metered):
            self.sig_request_metered.emit(mid, ev)
        elif isinstance(ev, CacheReplay):
            self.sig_cache_replayed.emit(mid, ev)
        # Usage itself goes into TurnFinished (the core adds it up); Metered carries it live.


async def _yield_to_qt() -> None:
    """Let the event loop run once; a Stop arriving here is passed on to the core.

    Cancelling the turn's task while it waits *here* would raise ``CancelledError`` in the
    controller, outside the core's generators; they would then only be closed
    (``GeneratorExit``) and the partial answer would stay "streaming" in the database. So the
    cancellation is re-requested and lands at the core's next real suspension (a network
    read or a database write), where the core saves the partial answer as "cancelled".
    """
    try:
        await asyncio.sleep(0)
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is None:  # pragma: no cover - always inside a task
            raise
        task.uncancel()
        task.cancel()
