"""UI tests: every ``async def`` test runs on a qasync loop, so qtbot works beside asyncio."""

from __future__ import annotations

import gc

import pytest
import qasync
from PySide6.QtWidgets import QApplication


def pytest_asyncio_loop_factories(config, item):  # type: ignore[no-untyped-def]
    """One qasync loop per test, on the process's QApplication (STACK-NOTES.md)."""
    app = QApplication.instance() or QApplication([])
    return {"qasync": lambda: qasync.QEventLoop(app)}


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
