"""UI tests: every ``async def`` test runs on a qasync loop, so qtbot works beside asyncio."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import Any

import pytest
import qasync
from PySide6.QtWidgets import QApplication

from parley.ui.qt_guard import guard_none_refcount

guard_none_refcount()  # process-wide, as ui/app.py applies it (shiboken6 6.12 + Python 3.11)


_LOOP_ERRORS: list[dict[str, Any]] = []
"""What reached the running test's qasync loop exception handler (tests run one at a time)."""


def pytest_asyncio_loop_factories(config, item):  # type: ignore[no-untyped-def]
    """One qasync loop per test, on the process's QApplication (STACK-NOTES.md).

    The loop's exception handler collects what escapes into it (a failed background task, a
    callback that raised); :func:`fail_on_loop_errors` fails the test with them at teardown.
    A test that means to see such errors installs its own handler (an ``ErrorPresenter``).
    """
    app = QApplication.instance() or QApplication([])

    def make() -> qasync.QEventLoop:
        loop = qasync.QEventLoop(app)
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
