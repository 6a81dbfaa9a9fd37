"""Parley's icons: small line drawings that take their colour from the theme when painted.

Each icon is a few SVG elements on a 24×24 grid (drawn for Parley, stroke 1.8, round caps).
:func:`icon` returns a ``QIcon`` whose engine renders the SVG in the colour of a design
token (:func:`parley.ui.theme.tokens`) at the size and device pixel ratio it is painted at:
crisp at 200 %, and right in light and dark without rebuilding anything when the theme
changes. Rendering goes through Qt's SVG image plugin (no QtSvg import at start-up) and is
cached per colour and size.
"""

from __future__ import annotations

from PySide6.QtCore import QBuffer, QByteArray, QIODevice, QRect, QSize
from PySide6.QtGui import QIcon, QIconEngine, QImageReader, QPainter, QPixmap

from parley.ui.theme import tokens

_SHAPES: dict[str, str] = {
    "send": '<path d="M12 19V5"/><path d="M5.5 11.5L12 5l6.5 6.5"/>',
    "stop": '<rect x="7" y="7" width="10" height="10" rx="2" fill="@c@" stroke="none"/>',
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
"""The drawings (SVG elements; ``@c@`` is the colour)."""

NAMES = tuple(_SHAPES)
"""Every icon name."""

_CACHE: dict[tuple[str, str, int, int], QPixmap] = {}


def _render(name: str, color: str, width: int, height: int) -> QPixmap:
    key = (name, color, width, height)
    found = _CACHE.get(key)
    if found is not None:
        return found
    body = _SHAPES[name].replace("@c@", color)
    svg = (
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24" fill="none" '
        f'stroke="{color}" stroke-width="1.8" stroke-linecap="round" '
        f'stroke-linejoin="round">{body}</svg>'
    ).encode()
    buffer = QBuffer()
    buffer.setData(QByteArray(svg))
    buffer.open(QIODevice.OpenModeFlag.ReadOnly)
    reader = QImageReader(buffer, QByteArray(b"svg"))
    reader.setScaledSize(QSize(width, height))
    pixmap = QPixmap.fromImage(reader.read())
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
