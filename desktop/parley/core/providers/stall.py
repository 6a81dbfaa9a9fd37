"""Time limits for a stream without a timer per event.

``asyncio.timeout(...).reschedule()`` on every streamed event creates (and cancels) one
loop timer per event. The standard loop discards cancelled timers lazily, but qasync backs
every ``call_at`` with a Qt timer that stays registered until it would have fired: a
30,000-token answer left ~30,000 live Qt timers, and Qt's timer bookkeeping (linear in the
number of timers) then stalled the window for hundreds of milliseconds at a time.

:class:`StallGuard` instead records when the stream started waiting and checks it from one
periodic tick: two attribute writes per event, one timer per ``tick`` seconds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from types import TracebackType
from typing import TypeVar

T = TypeVar("T")


class StallTimeout(TimeoutError):
    """The stream did not start (``started`` False) or went silent (True) for too long."""

    def __init__(self, started: bool, limit: float) -> None:
        super().__init__(f"no data for {limit:g} s")
        self.started = started
        self.limit = limit


class StallGuard:
    """Cancels the current task if a :meth:`wait` lasts longer than the limit in force.

    The limit is ``first_byte`` until :attr:`started` is set, then ``idle``. Time spent
    outside :meth:`wait` (the consumer handling an event) never counts. Leaving the
    ``with`` block after the guard fired raises :class:`StallTimeout` instead of
    ``CancelledError``; a cancellation from anyone else propagates unchanged.
    """

    def __init__(self, first_byte: float, idle: float) -> None:
        self.first_byte = first_byte
        self.idle = idle
        self.started = False
        self._waiting_since: float | None = None
        self._fired = False
        self._handle: asyncio.TimerHandle | None = None
        self._tick = max(0.01, min(0.25, first_byte / 4, idle / 4))

    def __enter__(self) -> StallGuard:
        self._loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None, "StallGuard needs a task"
        self._task = task
        self._handle = self._loop.call_later(self._tick, self._check)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if self._fired and isinstance(exc, asyncio.CancelledError):
            # Our own cancellation: take it back unless someone else also cancelled.
            if self._task.uncancel() == 0:
                limit = self.idle if self.started else self.first_byte
                raise StallTimeout(self.started, limit) from None

    async def wait(self, aw: Awaitable[T]) -> T:
        """Await ``aw`` under the limit in force."""
        self._waiting_since = self._loop.time()
        try:
            return await aw
        finally:
            self._waiting_since = None

    def _check(self) -> None:
        since = self._waiting_since
        if since is not None:
            limit = self.idle if self.started else self.first_byte
            if self._loop.time() - since > limit:
                self._fired = True
                self._handle = None
                self._task.cancel()
                return
        self._handle = self._loop.call_later(self._tick, self._check)
