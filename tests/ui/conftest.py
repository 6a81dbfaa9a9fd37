"""UI tests: every ``async def`` test runs on a qasync loop, so qtbot works beside asyncio."""

from __future__ import annotations

import asyncio
import gc
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import qasync
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from parley.ui.qt_guard import guard_none_refcount

guard_none_refcount()  # process-wide, as ui/app.py applies it (shiboken6 6.12 + Python 3.11)


_LOOP_ERRORS: list[dict[str, Any]] = []
"""What reached the running test's qasync loop exception handler (tests run one at a time)."""


WATCHDOG_S = 300.0
"""Longest a test (or its loop's set-up or teardown) may keep its qasync loop running."""


class _WatchedLoop(qasync.QEventLoop):  # type: ignore[misc]
    """qasync's loop, whose ``run_until_complete`` cannot hang the whole run.

    A clean clone's CI run once hung for good in pytest-asyncio's teardown, in
    ``_cancel_all_tasks`` -> ``run_until_complete(gather(...))`` inside ``QApplication.exec``,
    every thread idle. The cause: the test before it called ``QApplication.processEvents()``
    inside its coroutine; on a qasync loop that runs other tasks' steps inside the running
    one's, asyncio refuses them ("Cannot enter into task ... while another task ... is being
    executed") and a refused task is never stepped again, so its cancellation never completes
    (reproduced: a task scheduled before a nested ``processEvents`` stays pending for good).
    Async UI tests await instead (``asyncio.sleep`` lets the loop deliver paints); the app
    never nests event loops in coroutines (the shared STYLE.md: no ``dialog.exec()`` in a
    coroutine). Should a stuck task come back, a single-shot timer on the loop fires after
    :data:`WATCHDOG_S`: if the future is still pending it prints every pending task with its
    stack to stderr and leaves ``exec``; qasync then raises "Event loop stopped before Future
    completed", so the test errors with the evidence instead of the run timing out.
    """

    def run_until_complete(self, future: Any) -> Any:
        future = asyncio.ensure_future(future, loop=self)
        timer = QTimer()
        timer.setSingleShot(True)

        def expire() -> None:
            if not future.done():
                _print_pending(self, future)
                QApplication.exit()

        timer.timeout.connect(expire)
        timer.start(int(WATCHDOG_S * 1000))
        try:
            return super().run_until_complete(future)
        finally:
            timer.stop()


def _print_pending(loop: asyncio.AbstractEventLoop, future: Any) -> None:
    print(
        f"\n[ui conftest] loop still waiting after {WATCHDOG_S:.0f} s on {future!r}",
        file=sys.stderr,
    )
    for task in asyncio.all_tasks(loop):
        print(f"  pending: {task!r}", file=sys.stderr)
        task.print_stack(limit=12, file=sys.stderr)


def pytest_asyncio_loop_factories(config, item):  # type: ignore[no-untyped-def]
    """One qasync loop per test, on the process's QApplication (STACK-NOTES.md).

    The loop's exception handler collects what escapes into it (a failed background task, a
    callback that raised); :func:`fail_on_loop_errors` fails the test with them at teardown.
    A test that means to see such errors installs its own handler (an ``ErrorPresenter``).
    """
    app = QApplication.instance() or QApplication([])

    def make() -> qasync.QEventLoop:
        loop = _WatchedLoop(app)
        loop.set_exception_handler(lambda _loop, context: _LOOP_ERRORS.append(context))
        return loop

    return {"qasync": make}


@pytest.fixture(autouse=True)
def fail_on_loop_errors() -> Iterator[None]:
    """Fail a UI test when an exception escaped into its qasync loop (re-raised here)."""
    _LOOP_ERRORS.clear()
    yield
    errors = list(_LOOP_ERRORS)
    _LOOP_ERRORS.clear()
    if not errors:
        return
    lines = [
        f"{c.get('message', '')}: {c.get('exception')!r}" for c in errors if isinstance(c, dict)
    ]
    first = next((c["exception"] for c in errors if c.get("exception") is not None), None)
    message = "exception(s) escaped into the qasync loop:\n" + "\n".join(lines)
    if first is not None:
        raise AssertionError(message) from first
    raise AssertionError(message)


@pytest.fixture(autouse=True)
def main_thread_gc() -> None:
    """Collect the previous test's qasync loop on the GUI thread, before this test starts.

    A closed qasync loop is garbage in reference cycles; if Python's cyclic GC happens to
    run in another thread (a fake-server or executor thread allocating), the loop's
    ``_SimpleTimer`` QObject is destroyed off its thread, Qt cannot unregister its pending
    timers, and the next timer event hits a dangling object (a segfault in
    ``QTimerInfoList::activateTimers``, seen with gdb). Collecting here, on the GUI thread,
    destroys it where it lives. Every UI test gets it.
    """
    gc.collect()
