"""A QTimer heartbeat: how late the Qt event loop serves a short timer (its stalls)."""

from __future__ import annotations

import time

from PySide6.QtCore import QTimer


class Heartbeat:
    """Beats every ``interval_ms``; a stall is how late a beat came (ms, never negative)."""

    def __init__(self, interval_ms: int = 5) -> None:
        self.interval_ms = interval_ms
        self._gaps: list[float] = []
        self._last = 0.0
        self._timer = QTimer()
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self._beat)

    def _beat(self) -> None:
        now = time.perf_counter()
        self._gaps.append((now - self._last) * 1000 - self.interval_ms)
        self._last = now

    def start(self) -> None:
        self._gaps.clear()
        self._last = time.perf_counter()
        self._timer.start()

    def stop(self) -> list[float]:
        """Stop; the stalls since :meth:`start` (the first beat, which may be short, left out)."""
        self._timer.stop()
        return [max(0.0, g) for g in self._gaps[1:]]
