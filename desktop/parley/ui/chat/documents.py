"""The chat view's documents and colours: a QTextDocument that loads nothing, and the theme.

:class:`SafeTextDocument` is the second lock on rendering untrusted text (the Markdown
renderer emits no ``<img>``; this document would not load one anyway).
:func:`theme_from_palette` turns a widget's palette and font into the renderer's
:class:`~parley.ui.chat.markdown.MarkdownTheme` (dark or light, readable link colour).
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QByteArray, Qt, QUrl
from PySide6.QtGui import (
    QColor,
    QFont,
    QFontDatabase,
    QFontMetricsF,
    QImage,
    QPalette,
    QTextDocument,
)

from parley.ui.chat.markdown import MarkdownTheme


class SafeTextDocument(QTextDocument):
    """A QTextDocument that never loads a resource (no images, no style sheets, no files).

    Rendering model output must not touch the disk or the network, whatever HTML reaches the
    document; the Markdown renderer already emits no ``<img>``, this is the second lock.
    Returning nothing is not enough: when ``loadResource`` gives no image, Qt's image handler
    falls back to ``QImage.load()`` on the file name itself (measured: a ``file://`` image
    still loads). So images get a blank 1×1 image, everything else an empty byte array.
    """

    def loadResource(self, type: int, name: QUrl | str) -> Any:
        """Answer every resource request with an empty resource, never the real one."""
        if type == QTextDocument.ResourceType.ImageResource:
            return _blank_image()
        return QByteArray()


_BLANK: list[QImage] = []


def _blank_image() -> QImage:
    if not _BLANK:
        image = QImage(1, 1, QImage.Format.Format_ARGB32)
        image.fill(Qt.GlobalColor.transparent)
        _BLANK.append(image)
    return _BLANK[0]


def blend(a: QColor, b: QColor, t: float) -> str:
    """``a`` moved ``t`` of the way towards ``b``, as #rrggbb."""
    r = round(a.red() + (b.red() - a.red()) * t)
    g = round(a.green() + (b.green() - a.green()) * t)
    bl = round(a.blue() + (b.blue() - a.blue()) * t)
    return QColor(r, g, bl).name()


def _luminance(c: QColor) -> float:
    def channel(v: float) -> float:
        return v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4

    return 0.2126 * channel(c.redF()) + 0.7152 * channel(c.greenF()) + 0.0722 * channel(c.blueF())


def _contrast_ok(fg: QColor, bg: QColor) -> bool:
    """WCAG contrast of at least 3.5:1 (links are also underlined)."""
    hi, lo = sorted((_luminance(fg), _luminance(bg)), reverse=True)
    return (hi + 0.05) / (lo + 0.05) >= 3.5


def theme_from_palette(palette: QPalette, font: QFont) -> MarkdownTheme:
    """A Markdown theme that follows a widget's palette and font.

    Args:
        palette: The palette (light or dark is read from the base colour's lightness).
        font: The body font; code uses the system monospace font at the same size.

    Returns:
        The theme: colours blended from the palette, sizes from the font metrics.
    """
    base = palette.color(QPalette.ColorRole.Base)
    text = palette.color(QPalette.ColorRole.Text)
    dark = base.lightnessF() < 0.5
    link = palette.color(QPalette.ColorRole.Link)
    if not _contrast_ok(link, base):  # Qt's default link blue is unreadable on dark bases
        link = QColor("#4493f8" if dark else "#0969da")
    mono = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont).family()
    return MarkdownTheme(
        text=text.name(),
        muted=blend(text, base, 0.4),
        link=link.name(),
        code_background=blend(base, text, 0.09 if dark else 0.05),
        border=blend(base, text, 0.22 if dark else 0.16),
        table_header_background=blend(base, text, 0.12 if dark else 0.06),
        quote_bar=blend(base, text, 0.3),
        warning="#f0883e" if dark else "#bc4c00",
        mono_family=mono,
        pygments_style="github-dark" if dark else "default",
        em=QFontMetricsF(font).height(),
        dark=dark,
    )
