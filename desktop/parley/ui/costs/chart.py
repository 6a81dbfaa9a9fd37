"""A bar chart of daily spend, painted with QPainter (no web view, no QtCharts).

One bar per local day, oldest on the left, today on the right in full accent colour. A day
with requests whose price is unknown gets a hollow marker on top of its bar: its true cost
is higher than the bar. Hovering a bar says the day and its amount. Colours come from the
palette, so the chart follows the theme.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from PySide6.QtCore import QPointF, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QMouseEvent, QPainter, QPaintEvent, QPalette, QPen
from PySide6.QtWidgets import QSizePolicy, QToolTip, QWidget

from parley.core.costs import format_usd
from parley.ui.theme import is_dark

Day = tuple[str, float, int]
"""``(YYYY-MM-DD, known cost, requests of unknown price)``."""


def nice_ceiling(value: float) -> float:
    """The next "round" number at or above ``value`` (1, 2, 2.5, 5 × 10ⁿ), for the axis."""
    if value <= 0:
        return 0.0
    exp = 10.0 ** _floor_log10(value)
    for step in (1.0, 2.0, 2.5, 5.0, 10.0):
        if value <= step * exp * (1 + 1e-9):
            return step * exp
    return 10.0 * exp  # pragma: no cover - the loop always returns


def _floor_log10(value: float) -> int:
    n = 0
    while value >= 10:
        value /= 10
        n += 1
    while value < 1:
        value *= 10
        n -= 1
    return n


class SpendChart(QWidget):
    """Daily spend over the last days (see the module docstring)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("spendChart")
        self.setMouseTracking(True)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self._days: list[Day] = []
        self.setAccessibleName("Daily spend, last 30 days")

    # ---- Public API
    def set_days(self, days: Sequence[Day]) -> None:
        """Show these days (oldest first)."""
        self._days = list(days)
        total = sum(c for _d, c, _u in self._days)
        self.setAccessibleDescription(
            f"{len(self._days)} days, {format_usd(total)} in all (known prices)"
        )
        self.update()

    def days(self) -> list[Day]:
        """The days shown."""
        return list(self._days)

    def sizeHint(self) -> QSize:
        """Wide enough for 30 thin bars, about eight lines high."""
        fm = self.fontMetrics()
        return QSize(fm.averageCharWidth() * 48, fm.lineSpacing() * 8)

    def minimumSizeHint(self) -> QSize:
        """Still readable when the dock is narrow."""
        fm = self.fontMetrics()
        return QSize(fm.averageCharWidth() * 30, fm.lineSpacing() * 6)

    # ---- geometry
    def _plot(self) -> QRectF:
        fm = self.fontMetrics()
        left = fm.horizontalAdvance(format_usd(self._axis_max() or 0.01)) + fm.averageCharWidth()
        top = fm.height() * 0.6
        bottom = fm.height() * 1.4
        return QRectF(left, top, max(1.0, self.width() - left - 2), self.height() - top - bottom)

    def _axis_max(self) -> float:
        return nice_ceiling(max((c for _d, c, _u in self._days), default=0.0))

    def _bar_at(self, x: float) -> int | None:
        plot = self._plot()
        if not self._days or not plot.left() <= x <= plot.right():
            return None
        i = int((x - plot.left()) / (plot.width() / len(self._days)))
        return min(i, len(self._days) - 1)

    # ---- painting
    def paintEvent(self, _event: QPaintEvent) -> None:
        """Axis line and label, the bars, unknown-price markers, the first and last dates."""
        pal = self.palette()
        accent = pal.color(QPalette.ColorRole.Highlight)
        faded = QColor(accent)
        faded.setAlphaF(0.7 if is_dark(pal) else 0.55)
        text = pal.color(QPalette.ColorRole.PlaceholderText)
        grid = pal.color(QPalette.ColorRole.Mid)
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        fm = self.fontMetrics()
        plot = self._plot()
        top = self._axis_max()
        p.setPen(QPen(grid, 1, Qt.PenStyle.DotLine))
        p.drawLine(QPointF(plot.left(), plot.top()), QPointF(plot.right(), plot.top()))
        p.setPen(QPen(grid, 1))
        p.drawLine(QPointF(plot.left(), plot.bottom()), QPointF(plot.right(), plot.bottom()))
        p.setPen(text)
        label_w = plot.left() - fm.averageCharWidth() / 2
        p.drawText(
            QRectF(0, plot.top() - fm.height() / 2, label_w, fm.height()),
            Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
            format_usd(top) if top else "$0.00",
        )
        n = len(self._days)
        if n:
            slot = plot.width() / n
            gap = max(1.0, slot * 0.2)
            for i, (_day, cost, unknown) in enumerate(self._days):
                x = plot.left() + i * slot + gap / 2
                h = 0.0 if not top else plot.height() * cost / top
                if cost > 0:
                    h = max(h, 2.0)  # a cent still shows
                rect = QRectF(x, plot.bottom() - h, slot - gap, h)
                p.setPen(Qt.PenStyle.NoPen)
                p.setBrush(accent if i == n - 1 else faded)
                p.drawRect(rect)
                if unknown:
                    d = min(slot - gap, fm.height() * 0.45)
                    marker = QRectF(x + (slot - gap - d) / 2, rect.top() - d - 2, d, d)
                    p.setBrush(Qt.BrushStyle.NoBrush)
                    p.setPen(QPen(pal.color(QPalette.ColorRole.WindowText), 1))
                    p.drawEllipse(marker)
            p.setPen(text)
            first, last = self._days[0][0], self._days[-1][0]
            y = plot.bottom() + fm.height() * 0.2
            p.drawText(
                QRectF(plot.left(), y, plot.width() / 2, fm.height()),
                Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop,
                _short_day(first),
            )
            p.drawText(
                QRectF(plot.left() + plot.width() / 2, y, plot.width() / 2, fm.height()),
                Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignTop,
                "today" if n and last == dt.date.today().isoformat() else _short_day(last),
            )
        if not top:
            p.setPen(text)
            p.drawText(plot, Qt.AlignmentFlag.AlignCenter, "No spending in these days")
        p.end()

    # ---- hover
    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        """Say the day and its amount under the pointer."""
        i = self._bar_at(event.position().x())
        if i is None:
            QToolTip.hideText()
            return
        day, cost, unknown = self._days[i]
        tip = f"{day}: {format_usd(cost)}"
        if unknown:
            tip += f" + {unknown:,} request{'s' if unknown != 1 else ''} of unknown price"
        QToolTip.showText(event.globalPosition().toPoint(), tip, self)


def _short_day(day: str) -> str:
    try:
        d = dt.date.fromisoformat(day)
    except ValueError:
        return day
    return f"{d.strftime('%b')} {d.day}"
