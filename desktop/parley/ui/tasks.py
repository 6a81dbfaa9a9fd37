"""Background tasks of the window: started through :meth:`TaskSet.spawn`, never a bare task.

asyncio keeps only a weak reference to a task, so a fire-and-forget ``create_task`` can be
garbage-collected mid-flight (STYLE.md §3; qasync's ``asyncSlot`` keeps a set for the same
reason). :class:`TaskSet` holds a strong reference until each task is done, routes an
unexpected exception to the loop's exception handler (the :class:`~parley.ui.errors.
ErrorPresenter` shows it, the app keeps running) and lets the app cancel and await everything
on quit, so streams save their partial answers before the SDK clients close.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


class TaskSet:
    """The running background tasks of one window (no module-level singleton)."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    # ---- Public API
    def spawn(self, coro: Coroutine[Any, Any, T], *, name: str | None = None) -> asyncio.Task[T]:
        """Start ``coro`` on the running loop and keep it alive until it is done.

        Args:
            coro: The coroutine to run.
            name: A task name for logs and error reports.

        Returns:
            The task (await it, or cancel it to stop the work).
        """
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    @property
    def running(self) -> frozenset[asyncio.Task[Any]]:
        """Tasks not finished yet."""
        return frozenset(t for t in self._tasks if not t.done())

    async def cancel_all(self, timeout: float = 10.0) -> None:
        """Cancel every task and wait (up to ``timeout`` s) until they have finished.

        Cancelled chat turns save their partial answer while unwinding, so waiting matters.
        """
        pending = [t for t in self._tasks if not t.done()]
        for t in pending:
            t.cancel()
        if pending:
            _done, still = await asyncio.wait(pending, timeout=timeout)
            if still:
                log.warning("%d task(s) did not stop within %.0f s", len(still), timeout)

    # ---- internals
    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is None:
            return
        # One route for every unexpected error: the loop's exception handler, which the
        # ErrorPresenter installs (log + non-modal message, the app keeps running).
        task.get_loop().call_exception_handler(
            {"message": f"Background task {task.get_name()!r} failed", "exception": exc}
        )
