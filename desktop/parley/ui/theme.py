"""Look: Fusion everywhere, the system's colours by default, our own palettes when forced.

Fusion gives the same metrics on every platform (so screenshots and tests match what people
see) and honours the palette completely. "Follow system" keeps the palette the platform
gave the application at start; "light" and "dark" install the palettes below. Sizes in the
style sheet are in ``em``, so the window stays proportionate at 200 % scaling.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QFont, QGuiApplication, QIcon, QPalette, QPixmap
from PySide6.QtWidgets import QApplication, QWidget

from parley.core.paths import resources_dir

ThemeMode = Literal["system", "light", "dark"]

_SYSTEM_PALETTE: dict[int, QPalette] = {}
"""The platform's palette, captured once per QApplication before we change anything."""

WIDGET_STYLE = """
QWidget#composerFrame {
    border: 1px solid palette(mid);
    border-radius: 0.6em;
    background: palette(base);
}
QPlainTextEdit#composerEdit { border: none; background: transparent; }
QFrame#attachmentChip {
    border: 1px solid palette(mid);
    border-radius: 0.8em;
    background: palette(alternate-base);
}
QToolButton#chipRemove { border: none; padding: 0; }
QFrame#noticeBar {
    border: 1px solid palette(mid);
    border-radius: 0.4em;
    background: palette(alternate-base);
}
QFrame#noticeBar[kind="warning"] { border-color: #c98a00; }
QFrame#noticeBar[kind="error"] { border-color: #d0443e; }
QListWidget#conversationList { border: none; background: palette(window); }
QListWidget#conversationList::item { padding: 0.3em 0.4em; border-radius: 0.3em; }
QListWidget#conversationList::item:selected {
    background: palette(highlight);
    color: palette(highlighted-text);
}
QListWidget#conversationList::item:hover:!selected { background: palette(alternate-base); }
QCheckBox::indicator {
    width: 0.9em;
    height: 0.9em;
    border: 1px solid palette(mid);
    border-radius: 0.2em;
    background: palette(base);
}
QCheckBox::indicator:hover { border-color: palette(highlight); }
QCheckBox::indicator:checked {
    border-color: palette(highlight);
    background: palette(highlight);
    image: url(@CHECK@);
}
QCheckBox::indicator:disabled { border-color: palette(mid); }
QLabel#emptyTitle { font-weight: 600; }
QLabel#onboardingTitle { font-weight: 600; }
QFrame#onboardingCard {
    border: 1px solid palette(mid);
    border-radius: 0.6em;
    background: palette(base);
}
QLabel#cardTitle { font-weight: 600; }
QFrame#onboardingCard QLineEdit {
    border: 1px solid palette(mid);
    border-radius: 0.2em;
    padding: 0.15em 0.3em;
    background: palette(base);
}
QLabel#keyringWarning { color: #b8860b; }
QLabel#errorLine { color: #d0443e; }
QLabel#okLine { color: #2e8b57; }
"""


def _color(hex_: str) -> QColor:
    return QColor(hex_)


def light_palette() -> QPalette:
    """Parley's light palette (used when the person forces "light")."""
    p = QPalette()
    roles = {
        QPalette.ColorRole.Window: "#f3f4f6",
        QPalette.ColorRole.WindowText: "#1f2328",
        QPalette.ColorRole.Base: "#ffffff",
        QPalette.ColorRole.AlternateBase: "#eef0f3",
        QPalette.ColorRole.ToolTipBase: "#ffffff",
        QPalette.ColorRole.ToolTipText: "#1f2328",
        QPalette.ColorRole.PlaceholderText: "#6e7781",
        QPalette.ColorRole.Text: "#1f2328",
        QPalette.ColorRole.Button: "#f6f7f9",
        QPalette.ColorRole.ButtonText: "#1f2328",
        QPalette.ColorRole.BrightText: "#ffffff",
        QPalette.ColorRole.Light: "#ffffff",
        QPalette.ColorRole.Midlight: "#e4e6ea",
        QPalette.ColorRole.Mid: "#c8ccd2",
        QPalette.ColorRole.Dark: "#9aa0a8",
        QPalette.ColorRole.Shadow: "#6b7078",
        QPalette.ColorRole.Highlight: "#3d6fe0",
        QPalette.ColorRole.HighlightedText: "#ffffff",
        QPalette.ColorRole.Link: "#1f5fd6",
        QPalette.ColorRole.LinkVisited: "#6f42c1",
        QPalette.ColorRole.Accent: "#3d6fe0",
    }
    for role, value in roles.items():
        p.setColor(role, _color(value))
    _disabled(p, "#8c939c")
    return p


def dark_palette() -> QPalette:
    """Parley's dark palette (used when the person forces "dark")."""
    p = QPalette()
    roles = {
        QPalette.ColorRole.Window: "#1e1f22",
        QPalette.ColorRole.WindowText: "#e6e7ea",
        QPalette.ColorRole.Base: "#16171a",
        QPalette.ColorRole.AlternateBase: "#26282c",
        QPalette.ColorRole.ToolTipBase: "#2b2d31",
        QPalette.ColorRole.ToolTipText: "#e6e7ea",
        QPalette.ColorRole.PlaceholderText: "#8b9099",
        QPalette.ColorRole.Text: "#e6e7ea",
        QPalette.ColorRole.Button: "#2b2d31",
        QPalette.ColorRole.ButtonText: "#e6e7ea",
        QPalette.ColorRole.BrightText: "#ffffff",
        QPalette.ColorRole.Light: "#3a3d42",
        QPalette.ColorRole.Midlight: "#32353a",
        QPalette.ColorRole.Mid: "#44474d",
        QPalette.ColorRole.Dark: "#121315",
        QPalette.ColorRole.Shadow: "#000000",
        QPalette.ColorRole.Highlight: "#4c7ef0",
        QPalette.ColorRole.HighlightedText: "#ffffff",
        QPalette.ColorRole.Link: "#8ab4f8",
        QPalette.ColorRole.LinkVisited: "#c58af9",
        QPalette.ColorRole.Accent: "#4c7ef0",
    }
    for role, value in roles.items():
        p.setColor(role, _color(value))
    _disabled(p, "#6b7079")
    return p


def _disabled(p: QPalette, text: str) -> None:
    for role in (
        QPalette.ColorRole.WindowText,
        QPalette.ColorRole.Text,
        QPalette.ColorRole.ButtonText,
    ):
        p.setColor(QPalette.ColorGroup.Disabled, role, _color(text))


def apply_theme(app: QApplication, mode: ThemeMode = "system") -> None:
    """Fusion style plus the palette for ``mode`` (``system`` restores the platform's)."""
    key = id(app)
    if key not in _SYSTEM_PALETTE:
        _SYSTEM_PALETTE.clear()  # one QApplication per process; drop a stale entry
        _SYSTEM_PALETTE[key] = QPalette(app.palette())
    if app.style().name().lower() != "fusion":
        app.setStyle("Fusion")
    hints = QGuiApplication.styleHints()
    if mode == "dark":
        hints.setColorScheme(Qt.ColorScheme.Dark)
        app.setPalette(dark_palette())
    elif mode == "light":
        hints.setColorScheme(Qt.ColorScheme.Light)
        app.setPalette(light_palette())
    else:
        hints.unsetColorScheme()
        app.setPalette(_SYSTEM_PALETTE[key])
    if app.styleSheet():
        app.setStyleSheet("")


@lru_cache(maxsize=1)
def widget_style() -> str:
    """:data:`WIDGET_STYLE` with the paths of its images filled in."""
    check = (resources_dir() / "check.svg").as_posix()
    return WIDGET_STYLE.replace("@CHECK@", check)


def restyle(*widgets: QWidget) -> None:
    """(Re)apply the widget style sheet so it resolves the current palette."""
    style = widget_style()
    for w in widgets:
        w.setStyleSheet("")
        w.setStyleSheet(style)


def scale_font(widget: QWidget, factor: float) -> None:
    """Make ``widget``'s font ``factor`` times the default (style sheets cannot say "150 %")."""
    font = QFont(widget.font())
    font.setPointSizeF(font.pointSizeF() * factor)
    widget.setFont(font)


def is_dark(palette: QPalette) -> bool:
    """Whether ``palette`` is a dark one (text lighter than the window)."""
    window = palette.color(QPalette.ColorRole.Window).lightnessF()
    text = palette.color(QPalette.ColorRole.WindowText).lightnessF()
    return text > window


def icon_path() -> Path:
    """The app icon's SVG file."""
    return resources_dir() / "parley.svg"


@lru_cache(maxsize=1)
def app_icon() -> QIcon:
    """Parley's icon (SVG, with the PNG rendering as a fallback when QtSvg is missing)."""
    icon = QIcon()
    svg = icon_path()
    png = svg.with_suffix(".png")
    if png.is_file():
        icon.addPixmap(QPixmap(str(png)))
    if svg.is_file():
        icon.addFile(str(svg))
    return icon
