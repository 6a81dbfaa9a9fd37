"""Parley's icons: small line drawings that take their colour from the theme when painted.

Each icon is a few shapes on a 24×24 grid (drawn for Parley, stroke 1.8, round caps), written
in the SVG path vocabulary (``M L H V A Z``, circles, rounded rectangles) and turned into a
``QPainterPath`` here, once. :func:`icon` returns a ``QIcon`` whose engine strokes that path in
the colour of a design token (:func:`parley.ui.theme.tokens`) at the size and device pixel
ratio it is painted at: crisp at 200 %, right in light and dark without rebuilding anything
when the theme changes. No SVG renderer is loaded for this (loading Qt's SVG plugin cost
~30 ms of the first paint); each drawn size is cached.
"""

from __future__ import annotations

import math
import re
from functools import cache

from PySide6.QtCore import QPointF, QRect, QRectF, QSize, Qt
from PySide6.QtGui import (
    QColor,
    QIcon,
    QIconEngine,
    QPainter,
    QPainterPath,
    QPen,
    QPixmap,
)

from parley.ui.theme import tokens

_SHAPES: dict[str, str] = {
    "send": '<path d="M12 19V5"/><path d="M5.5 11.5L12 5l6.5 6.5"/>',
    "stop": '<rect x="7" y="7" width="10" height="10" rx="2" fill="currentColor"/>',
    "attach": (
        '<path d="M20 11.5l-7.8 7.8a5 5 0 0 1-7.1-7.1l8.2-8.2a3.3 3.3 0 0 1 4.7 4.7'
        'l-8.2 8.2a1.6 1.6 0 0 1-2.3-2.3l7.5-7.5"/>'
    ),
    "settings": (
        '<path d="M4 7h9M17 7h3M4 12h3M11 12h9M4 17h11M19 17h1"/>'
        '<circle cx="15" cy="7" r="2"/><circle cx="9" cy="12" r="2"/>'
        '<circle cx="17" cy="17" r="2"/>'
    ),
    "new": '<path d="M12 5v14M5 12h14"/>',
    "search": '<circle cx="11" cy="11" r="6.5"/><path d="M20 20l-4.2-4.2"/>',
    "close": '<path d="M6.5 6.5l11 11M17.5 6.5l-11 11"/>',
    "documents": (
        '<path d="M3.5 7.5a2 2 0 0 1 2-2h3.8l2 2h7.2a2 2 0 0 1 2 2v7.5a2 2 0 0 1-2 2'
        'h-13a2 2 0 0 1-2-2z"/>'
    ),
    "sources": (
        '<path d="M6 3.5h9l3.5 3.5v13.5H6z"/><path d="M14.5 3.5V7H18"/><path d="M9 11.5h6M9 15h6"/>'
    ),
    "file": '<path d="M6.5 3.5h8l3.5 3.5v13.5h-11.5z"/><path d="M14 3.5V7h4"/>',
}
"""The drawings (SVG elements; ``fill`` other than ``none`` fills, the rest is stroked)."""

NAMES = tuple(_SHAPES)
"""Every icon name."""

_CACHE: dict[tuple[str, str, int, int], QPixmap] = {}

_TOKEN = re.compile(r"[MLHVAZmlhvaz]|-?(?:\d+\.?\d*|\.\d+)")
_ELEMENT = re.compile(r"<(path|circle|rect)\b([^>]*)/>")
_ATTR = re.compile(r'([\w-]+)="([^"]*)"')


def _arc(path: QPainterPath, end: QPointF, r: float, large: bool, sweep: bool) -> None:
    """A circular SVG arc from the current point to ``end`` (SVG 1.1, appendix F.6.5)."""
    start = path.currentPosition()
    dx, dy = (start.x() - end.x()) / 2, (start.y() - end.y()) / 2
    d2 = dx * dx + dy * dy
    if d2 == 0:
        return
    r = max(r, math.sqrt(d2))  # a radius too small is scaled up, as SVG does
    factor = math.sqrt(max(0.0, r * r - d2) / d2) * (-1 if large == sweep else 1)
    cx = (start.x() + end.x()) / 2 + factor * dy
    cy = (start.y() + end.y()) / 2 - factor * dx
    a0 = math.degrees(math.atan2(start.y() - cy, start.x() - cx))
    a1 = math.degrees(math.atan2(end.y() - cy, end.x() - cx))
    delta = (a1 - a0) % 360 if sweep else -((a0 - a1) % 360)
    # Qt's angles turn counter-clockwise on screen (y down): both signs flip.
    path.arcTo(QRectF(cx - r, cy - r, 2 * r, 2 * r), -a0, -delta)


def _path_data(path: QPainterPath, data: str) -> None:
    tokens_ = _TOKEN.findall(data)
    i = 0
    command = "M"
    x = y = 0.0
    start_x = start_y = 0.0

    def number() -> float:
        nonlocal i
        value = float(tokens_[i])
        i += 1
        return value

    while i < len(tokens_):
        if tokens_[i].isalpha():
            command = tokens_[i]
            i += 1
        rel = command.islower()
        c = command.upper()
        if c == "Z":
            path.closeSubpath()
            x, y = start_x, start_y
            continue
        if c in "ML":
            nx, ny = number(), number()
            x, y = (x + nx, y + ny) if rel else (nx, ny)
            if c == "M":
                path.moveTo(x, y)
                start_x, start_y = x, y
                command = "l" if rel else "L"  # pairs after a move are lines
            else:
                path.lineTo(x, y)
        elif c == "H":
            nx = number()
            x = x + nx if rel else nx
            path.lineTo(x, y)
        elif c == "V":
            ny = number()
            y = y + ny if rel else ny
            path.lineTo(x, y)
        elif c == "A":
            rx, _ry, _rotation, large, sweep = (number() for _ in range(5))
            nx, ny = number(), number()
            x, y = (x + nx, y + ny) if rel else (nx, ny)
            _arc(path, QPointF(x, y), rx, bool(large), bool(sweep))
        else:  # pragma: no cover - the drawings above use only these commands
            raise ValueError(f"unsupported path command {command!r}")


@cache
def _shape(name: str) -> tuple[QPainterPath, QPainterPath]:
    """(stroked, filled) paths of a drawing on the 24×24 grid."""
    stroked, filled = QPainterPath(), QPainterPath()
    for kind, attrs in _ELEMENT.findall(_SHAPES[name]):
        a = dict(_ATTR.findall(attrs))
        target = filled if a.get("fill", "none") != "none" else stroked
        if kind == "path":
            _path_data(target, a["d"])
        elif kind == "circle":
            cx, cy, r = float(a["cx"]), float(a["cy"]), float(a["r"])
            target.addEllipse(QPointF(cx, cy), r, r)
        else:
            rx = float(a.get("rx", 0))
            rect = QRectF(float(a["x"]), float(a["y"]), float(a["width"]), float(a["height"]))
            target.addRoundedRect(rect, rx, rx)
    return stroked, filled


def _render(name: str, color: str, width: int, height: int) -> QPixmap:
    key = (name, color, width, height)
    found = _CACHE.get(key)
    if found is not None:
        return found
    pixmap = QPixmap(max(1, width), max(1, height))
    pixmap.fill(Qt.GlobalColor.transparent)
    stroked, filled = _shape(name)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.scale(width / 24, height / 24)
    pen = QPen(QColor(color), 1.8)
    pen.setCapStyle(Qt.PenCapStyle.RoundCap)
    pen.setJoinStyle(Qt.PenJoinStyle.RoundJoin)
    painter.setPen(pen)
    painter.drawPath(stroked)
    painter.fillPath(filled, QColor(color))
    painter.end()
    if len(_CACHE) > 256:
        _CACHE.clear()
    _CACHE[key] = pixmap
    return pixmap


class _TokenIconEngine(QIconEngine):
    """Paints one drawing in a token's colour (faint when the icon is disabled)."""

    def __init__(self, name: str, role: str) -> None:
        super().__init__()
        self._name = name
        self._role = role

    def _color(self, mode: QIcon.Mode) -> str:
        t = tokens()
        if mode == QIcon.Mode.Disabled:
            return t.hex("surface" if self._role == "on_accent" else "text_faint")
        return t.hex(self._role)

    def pixmap(self, size: QSize, mode: QIcon.Mode, state: QIcon.State) -> QPixmap:
        """The drawing at ``size`` device pixels."""
        return _render(self._name, self._color(mode), size.width(), size.height())

    def scaledPixmap(
        self, size: QSize, mode: QIcon.Mode, state: QIcon.State, scale: float
    ) -> QPixmap:
        """The drawing at ``size`` logical pixels times ``scale`` (crisp at 200 %)."""
        pm = _render(
            self._name,
            self._color(mode),
            max(1, round(size.width() * scale)),
            max(1, round(size.height() * scale)),
        ).copy()
        pm.setDevicePixelRatio(scale)
        return pm

    def paint(self, painter: QPainter, rect: QRect, mode: QIcon.Mode, state: QIcon.State) -> None:
        """Draw into ``rect`` at the painter's device pixel ratio."""
        dpr = painter.device().devicePixelRatioF() if painter.device() is not None else 1.0
        pm = self.scaledPixmap(rect.size(), mode, state, dpr)
        painter.drawPixmap(rect, pm)

    def clone(self) -> QIconEngine:
        """A copy (Qt copies engines when icons are copied)."""
        return _TokenIconEngine(self._name, self._role)

    def key(self) -> str:
        """The engine's kind."""
        return "parley-token"


def icon(name: str, role: str = "text") -> QIcon:
    """The icon ``name`` drawn in the token ``role`` (``text``, ``text_muted``, ``on_accent``).

    Raises:
        KeyError: no such icon.
    """
    if name not in _SHAPES:
        raise KeyError(name)
    return QIcon(_TokenIconEngine(name, role))


def icon_size(widget_font_height: int) -> QSize:
    """The size icons get beside text of ``widget_font_height`` pixels (on the 4 px grid)."""
    side = max(16, (round(widget_font_height * 1.2) + 3) // 4 * 4)
    return QSize(side, side)


__all__ = ["NAMES", "icon", "icon_size"]
