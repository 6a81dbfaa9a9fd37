"""Parley's look: one visual language, light and dark, following the system by default.

Three layers, each derived from the one before, so nothing is chosen twice:

1. **Palettes** (:func:`light_palette`, :func:`dark_palette`): the colour roles Qt paints
   with. "Follow the system" installs the light or the dark one as the platform's colour
   scheme says (and switches when it changes); "light" and "dark" force one.
2. **Tokens** (:func:`tokens_for`): the design's named colours (accent, surfaces, borders,
   hover and pressed states, the cards of questions and answers), computed from a palette
   only, so any widget can ask for the tokens of *its* palette. The chat view paints its
   message cards with them; the style sheet below is filled in with them.
3. **The style sheet** (``resources/parley.qss``): every control's shape, spacing and states
   (hover, pressed, focus ring, disabled), one file for the whole application, its
   ``@token@`` placeholders replaced by the tokens of the installed palette.

Measures follow a 4/8 px grid (:data:`SPACE`, :data:`RADIUS`; Qt scales them with the
screen's device pixel ratio) and text follows one type scale (:data:`TYPE_SCALE`, relative
to the platform's font, so a person's larger system font makes everything larger). Fusion
is the base style: the same metrics everywhere, and it honours the palette completely.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from functools import lru_cache
from pathlib import Path
from typing import Literal

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QFont, QGuiApplication, QIcon, QPalette, QPixmap
from PySide6.QtWidgets import QApplication, QWidget

from parley.core.paths import resources_dir

ThemeMode = Literal["system", "light", "dark"]

# ---------------------------------------------------------------- measures
SPACE = {"xxs": 2, "xs": 4, "s": 8, "m": 12, "l": 16, "xl": 24, "xxl": 32}
"""Spacing steps in logical pixels (the 4/8 px grid); layouts use these and nothing else."""

RADIUS = {"small": 6, "medium": 8, "large": 12, "xlarge": 16}
"""Corner radii in logical pixels: controls, rows, cards, the composer."""

TYPE_SCALE = {
    "caption": 0.86,
    "body": 1.0,
    "subtitle": 1.14,
    "title": 1.43,
    "display": 1.86,
}
"""Font sizes relative to the platform's font (a major-third-like scale, rounded)."""

COLUMN_EM = 52.0
"""Widest the chat's message column gets, in font heights (the composer matches it)."""

TYPE_WEIGHT = {
    "caption": QFont.Weight.Normal,
    "body": QFont.Weight.Normal,
    "subtitle": QFont.Weight.DemiBold,
    "title": QFont.Weight.DemiBold,
    "display": QFont.Weight.Bold,
}
"""The weight that goes with each step of :data:`TYPE_SCALE`."""


# ---------------------------------------------------------------- palettes
LIGHT = {
    QPalette.ColorRole.Window: "#f6f6f7",
    QPalette.ColorRole.WindowText: "#1d1d20",
    QPalette.ColorRole.Base: "#ffffff",
    QPalette.ColorRole.AlternateBase: "#f3f3f5",
    QPalette.ColorRole.ToolTipBase: "#1d1d20",
    QPalette.ColorRole.ToolTipText: "#f6f6f7",
    QPalette.ColorRole.PlaceholderText: "#8a8a93",
    QPalette.ColorRole.Text: "#1d1d20",
    QPalette.ColorRole.Button: "#ffffff",
    QPalette.ColorRole.ButtonText: "#1d1d20",
    QPalette.ColorRole.BrightText: "#ffffff",
    QPalette.ColorRole.Light: "#ffffff",
    QPalette.ColorRole.Midlight: "#ececef",
    QPalette.ColorRole.Mid: "#d4d4da",
    QPalette.ColorRole.Dark: "#a1a1aa",
    QPalette.ColorRole.Shadow: "#71717a",
    QPalette.ColorRole.Highlight: "#4f46e5",
    QPalette.ColorRole.HighlightedText: "#ffffff",
    QPalette.ColorRole.Link: "#4338ca",
    QPalette.ColorRole.LinkVisited: "#6d28d9",
    QPalette.ColorRole.Accent: "#4f46e5",
}
"""Parley's light palette: white chat surface, a light grey chrome, an indigo accent."""

DARK = {
    QPalette.ColorRole.Window: "#18181b",
    QPalette.ColorRole.WindowText: "#ececf1",
    QPalette.ColorRole.Base: "#212124",
    QPalette.ColorRole.AlternateBase: "#27272b",
    QPalette.ColorRole.ToolTipBase: "#ececf1",
    QPalette.ColorRole.ToolTipText: "#18181b",
    QPalette.ColorRole.PlaceholderText: "#8e8e99",
    QPalette.ColorRole.Text: "#ececf1",
    QPalette.ColorRole.Button: "#2a2a2f",
    QPalette.ColorRole.ButtonText: "#ececf1",
    QPalette.ColorRole.BrightText: "#ffffff",
    QPalette.ColorRole.Light: "#3a3a41",
    QPalette.ColorRole.Midlight: "#303036",
    QPalette.ColorRole.Mid: "#3f3f46",
    QPalette.ColorRole.Dark: "#0e0e10",
    QPalette.ColorRole.Shadow: "#000000",
    QPalette.ColorRole.Highlight: "#5e5ce6",
    QPalette.ColorRole.HighlightedText: "#ffffff",
    QPalette.ColorRole.Link: "#a5b4fc",
    QPalette.ColorRole.LinkVisited: "#c4b5fd",
    QPalette.ColorRole.Accent: "#5e5ce6",
}
"""Parley's dark palette: a near-black chrome, the chat surface a step lighter."""


def _palette(roles: dict[QPalette.ColorRole, str], disabled_text: str) -> QPalette:
    p = QPalette()
    for role, value in roles.items():
        p.setColor(role, QColor(value))
    for role in (
        QPalette.ColorRole.WindowText,
        QPalette.ColorRole.Text,
        QPalette.ColorRole.ButtonText,
    ):
        p.setColor(QPalette.ColorGroup.Disabled, role, QColor(disabled_text))
    p.setColor(
        QPalette.ColorGroup.Disabled,
        QPalette.ColorRole.Highlight,
        QColor(roles[QPalette.ColorRole.Mid]),
    )
    return p


def light_palette() -> QPalette:
    """Parley's light palette."""
    return _palette(LIGHT, "#a1a1aa")


def dark_palette() -> QPalette:
    """Parley's dark palette."""
    return _palette(DARK, "#63636e")


# ---------------------------------------------------------------- tokens
def blend(a: QColor, b: QColor, t: float) -> QColor:
    """``a`` moved ``t`` (0..1) of the way towards ``b``."""
    return QColor(
        round(a.red() + (b.red() - a.red()) * t),
        round(a.green() + (b.green() - a.green()) * t),
        round(a.blue() + (b.blue() - a.blue()) * t),
    )


def luminance(c: QColor) -> float:
    """WCAG relative luminance of ``c``."""

    def channel(v: float) -> float:
        return v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4

    return 0.2126 * channel(c.redF()) + 0.7152 * channel(c.greenF()) + 0.0722 * channel(c.blueF())


def contrast(a: QColor, b: QColor) -> float:
    """WCAG contrast ratio between two colours (1..21)."""
    hi, lo = sorted((luminance(a), luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


@dataclass(frozen=True)
class Tokens:
    """The design's named colours for one palette (see :func:`tokens_for`).

    Surfaces: ``chrome`` is the window around the chat (sidebar, menus, status strip),
    ``surface`` the chat and the places to type. Cards: a question from the person sits on
    ``question_card`` (tinted with the accent) and an answer on ``answer_card``, each with
    its border, so the two read apart at a glance in both themes.
    """

    dark: bool
    """Whether these are dark-theme tokens."""
    accent: QColor
    """Primary actions (Send), selection, the focus ring's hue."""
    accent_hover: QColor
    """The accent under the mouse."""
    accent_pressed: QColor
    """The accent while pressed."""
    on_accent: QColor
    """Text and icons drawn on the accent."""
    accent_text: QColor
    """The accent as text or a thin line on ``surface`` (readable: contrast >= 4.5)."""
    accent_soft: QColor
    """A faint accent wash: the selected conversation, the chosen row."""
    chrome: QColor
    """Window chrome: the sidebar, the menu bar, the status strip."""
    surface: QColor
    """The chat and the composer's background."""
    raised: QColor
    """Popups, menus and cards that float over ``surface``."""
    text: QColor
    """Body text."""
    text_muted: QColor
    """Secondary text: captions, group headers, the status strip."""
    text_faint: QColor
    """Tertiary text: hints, placeholders."""
    border: QColor
    """Hairlines between areas and around cards."""
    border_strong: QColor
    """Borders of controls (inputs, secondary buttons)."""
    hover: QColor
    """Background of a flat control under the mouse."""
    pressed: QColor
    """Background of a flat control while pressed."""
    focus: QColor
    """The keyboard focus ring."""
    question_card: QColor
    """Background of the person's questions."""
    question_border: QColor
    """Border of the person's questions."""
    answer_card: QColor
    """Background of the answers."""
    answer_border: QColor
    """Border of the answers."""
    code_background: QColor
    """Code blocks and inline code."""
    danger: QColor
    """Errors and destructive actions."""
    warning: QColor
    """Warnings."""
    success: QColor
    """Success lines ("Connected", "Key saved")."""

    def hex(self, name: str) -> str:
        """A token as ``#rrggbb`` (for style sheets and HTML)."""
        value = getattr(self, name)
        assert isinstance(value, QColor), name
        return str(value.name())


def is_dark(palette: QPalette) -> bool:
    """Whether ``palette`` is a dark one (text lighter than the window)."""
    window = palette.color(QPalette.ColorRole.Window).lightnessF()
    text = palette.color(QPalette.ColorRole.WindowText).lightnessF()
    return text > window


def _readable_on(bg: QColor, fg: QColor, minimum: float) -> QColor:
    """``fg``, lightened or darkened towards the far end until it reads on ``bg``."""
    toward = QColor("#ffffff") if luminance(bg) < 0.18 else QColor("#000000")
    for step in range(11):
        c = blend(fg, toward, step / 10)
        if contrast(c, bg) >= minimum:
            return c
    return toward


def tokens_for(palette: QPalette) -> Tokens:
    """The design tokens of ``palette`` (any palette: Parley's own or one a test sets).

    Cached per palette (Qt's ``cacheKey``), so calling it in a paint event is cheap.
    """
    key = palette.cacheKey()
    found = _TOKEN_CACHE.get(key)
    if found is None:
        if len(_TOKEN_CACHE) > 32:
            _TOKEN_CACHE.clear()
        found = _TOKEN_CACHE[key] = _tokens(palette)
    return found


_TOKEN_CACHE: dict[int, Tokens] = {}


def _tokens(palette: QPalette) -> Tokens:
    role = QPalette.ColorRole
    dark = is_dark(palette)
    surface = palette.color(role.Base)
    chrome = palette.color(role.Window)
    text = palette.color(role.Text)
    accent = palette.color(role.Accent)
    if not accent.isValid() or accent == palette.color(role.Window):
        accent = palette.color(role.Highlight)
    white, black = QColor("#ffffff"), QColor("#000000")
    on_accent = white if contrast(white, accent) >= contrast(black, accent) else black
    return Tokens(
        dark=dark,
        accent=accent,
        accent_hover=blend(accent, white, 0.12) if dark else blend(accent, black, 0.10),
        accent_pressed=blend(accent, white, 0.22) if dark else blend(accent, black, 0.20),
        on_accent=on_accent,
        accent_text=_readable_on(surface, accent, 4.5),
        accent_soft=blend(chrome, accent, 0.20 if dark else 0.10),
        chrome=chrome,
        surface=surface,
        raised=blend(surface, white, 0.05) if dark else surface,
        text=text,
        text_muted=blend(text, surface, 0.36),
        text_faint=blend(text, surface, 0.52),
        border=blend(surface, text, 0.13 if dark else 0.09),
        border_strong=blend(surface, text, 0.24 if dark else 0.20),
        hover=blend(chrome, text, 0.08 if dark else 0.055),
        pressed=blend(chrome, text, 0.14 if dark else 0.10),
        focus=_readable_on(surface, accent, 3.0),
        question_card=blend(surface, accent, 0.17 if dark else 0.07),
        question_border=blend(surface, accent, 0.32 if dark else 0.20),
        answer_card=blend(surface, white, 0.025) if dark else surface,
        answer_border=blend(surface, text, 0.12 if dark else 0.085),
        code_background=blend(surface, text, 0.07 if dark else 0.04),
        danger=QColor("#f87171" if dark else "#c62828"),
        warning=QColor("#fbbf24" if dark else "#9a6700"),
        success=QColor("#4ade80" if dark else "#1a7f37"),
    )


def tokens(widget: QWidget | None = None) -> Tokens:
    """The tokens of ``widget``'s palette (default: the application's)."""
    if widget is not None:
        return tokens_for(widget.palette())
    return tokens_for(QGuiApplication.palette())


# ---------------------------------------------------------------- style sheet
STYLE_FILE = "parley.qss"
"""The application style sheet in ``resources/``."""


@lru_cache(maxsize=1)
def _qss_template() -> str:
    return (resources_dir() / STYLE_FILE).read_text(encoding="utf-8")


def style_sheet(t: Tokens) -> str:
    """The application style sheet filled in with ``t`` (and the measures)."""
    text = _qss_template()
    values: dict[str, str] = {}
    for f in fields(t):
        v = getattr(t, f.name)
        if isinstance(v, QColor):
            values[f.name] = v.name()
    for name, px in SPACE.items():
        values[f"space_{name}"] = f"{px}px"
    for name, px in RADIUS.items():
        values[f"radius_{name}"] = f"{px}px"
    res = resources_dir()
    values["check"] = (res / "check.svg").as_posix()
    values["chevron"] = (res / "chevron-down.svg").as_posix()
    for name, value in values.items():
        text = text.replace(f"@{name}@", value)
    return text


# ---------------------------------------------------------------- applying
_STATE: dict[str, object] = {"mode": "system", "busy": False, "connected": None}


def current_mode() -> ThemeMode:
    """The mode last passed to :func:`apply_theme`."""
    return _STATE["mode"]  # type: ignore[return-value]


def system_is_dark() -> bool:
    """Whether the platform asks for a dark colour scheme (unknown counts as light)."""
    return QGuiApplication.styleHints().colorScheme() == Qt.ColorScheme.Dark


def apply_theme(app: QApplication, mode: ThemeMode = "system") -> None:
    """Install Fusion, the palette for ``mode`` and the style sheet made from its tokens.

    ``system`` picks light or dark from the platform's colour scheme and follows it when it
    changes (``QStyleHints.colorSchemeChanged``); ``light``/``dark`` force one and tell the
    platform (native dialogs and title bars follow).
    """
    if _STATE["busy"]:
        return
    _STATE["busy"] = True
    try:
        _STATE["mode"] = mode
        if app.style().name().lower() != "fusion":
            app.setStyle("Fusion")
        hints = QGuiApplication.styleHints()
        if _STATE["connected"] is not id(app):
            hints.colorSchemeChanged.connect(lambda _scheme: _follow_system(app))
            _STATE["connected"] = id(app)
        if mode == "dark":
            hints.setColorScheme(Qt.ColorScheme.Dark)
            dark = True
        elif mode == "light":
            hints.setColorScheme(Qt.ColorScheme.Light)
            dark = False
        else:
            hints.unsetColorScheme()
            dark = system_is_dark()
        palette = dark_palette() if dark else light_palette()
        # Without this, Qt's style-sheet engine pins every widget's palette when it polishes
        # it, so a palette set on one widget would no longer reach its children.
        app.setAttribute(Qt.ApplicationAttribute.AA_UseStyleSheetPropagationInWidgetStyles, True)
        if app.palette() != palette:  # an unchanged palette would still re-render the chat
            app.setPalette(palette)
        sheet = style_sheet(tokens_for(palette))
        if app.styleSheet() != sheet:
            app.setStyleSheet(sheet)
    finally:
        _STATE["busy"] = False


def _follow_system(app: QApplication) -> None:
    if _STATE["mode"] == "system" and not _STATE["busy"]:
        apply_theme(app, "system")


# ---------------------------------------------------------------- type
def set_type(widget: QWidget, step: str) -> None:
    """Give ``widget``'s text a step of :data:`TYPE_SCALE` (size and weight)."""
    app_font = QGuiApplication.font()
    font = QFont(widget.font())
    base = app_font.pointSizeF()
    if base > 0:
        font.setPointSizeF(base * TYPE_SCALE[step])
    else:
        font.setPixelSize(round(app_font.pixelSize() * TYPE_SCALE[step]))
    font.setWeight(TYPE_WEIGHT[step])
    widget.setFont(font)


def scale_font(widget: QWidget, factor: float) -> None:
    """Make ``widget``'s font ``factor`` times its size (style sheets cannot say "150 %")."""
    font = QFont(widget.font())
    font.setPointSizeF(font.pointSizeF() * factor)
    widget.setFont(font)


def repolish(widget: QWidget) -> None:
    """Re-apply the style sheet to ``widget`` after a dynamic property or name changed."""
    style = widget.style()
    style.unpolish(widget)
    style.polish(widget)
    widget.update()


# ---------------------------------------------------------------- the app icon
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
