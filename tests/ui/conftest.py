"""UI tests: every ``async def`` test runs on a qasync loop, so qtbot works beside asyncio."""

from __future__ import annotations

import qasync
from PySide6.QtWidgets import QApplication


def pytest_asyncio_loop_factories(config, item):  # type: ignore[no-untyped-def]
    """One qasync loop per test, on the process's QApplication (STACK-NOTES.md)."""
    app = QApplication.instance() or QApplication([])
    return {"qasync": lambda: qasync.QEventLoop(app)}
