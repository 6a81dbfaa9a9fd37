"""Side panels that never push the window around (issue 14 item 5).

The window's panels (Documents, Sources, and any other ``QDockWidget`` added to it) dock on
the right when there is room. Docking one in a narrow window would make Qt widen the window
to fit the panel's minimum beside the chat's, or squeeze the chat to a sliver; so below
:data:`OVERLAY_BELOW` pixels (or whenever the chat, the sidebar and the panel would not fit
side by side) a panel **overlays** the chat instead: it slides over the right part of the
chat area, full height, with its title and close button in view, and the chat keeps its
width underneath. Widening the window docks it again; narrowing it moves docked panels into
the overlay. One panel shows in the overlay at a time (the last one opened).

Each panel is at least as wide as its widget needs to show its buttons unclipped
(``minimumSizeHint``, followed as the panel's content changes; content in a scroll area that
does not scroll sideways counts too, as the cost panel's figures grow), so "Add folder…",
"Cancel" or "Export CSV…" are never cut off, docked or overlaid: an overlaid panel wider
than the chat area extends over the sidebar rather than past the window's edge, so its
close button stays in view.
The window passes every dock it adds through :meth:`SidePanels.adopt`
(``MainWindow.addDockWidget``), so panels added by other features get the same treatment.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, QRect, QSize, Qt
from PySide6.QtWidgets import (
    QDockWidget,
    QFrame,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QScrollArea,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from parley.ui.icons import icon
from parley.ui.theme import SPACE

OVERLAY_BELOW = 1000
"""Window width (logical px) below which panels overlay the chat instead of docking."""

PANEL_WIDTH = 400
"""A panel's preferred width (it gets more when its buttons need it)."""

MIN_CHAT_BESIDE = 360
"""The chat area must keep at least this much beside a docked panel."""


class PanelOverlay(QFrame):
    """The frame a panel sits in while it overlays the chat (right edge, full height)."""

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self.setObjectName("panelOverlay")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        self.setAutoFillBackground(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        self.hide()

    def docks(self) -> list[QDockWidget]:
        """The panels held here (shown or not)."""
        return [d for d in self.findChildren(QDockWidget) if d.parent() is self]

    def shown_dock(self) -> QDockWidget | None:
        """The panel showing here, if any."""
        return next((d for d in self.docks() if not d.isHidden()), None)


class PanelTitle(QWidget):
    """A panel's title bar: its name and a close button that is always in view."""

    def __init__(self, dock: QDockWidget) -> None:
        super().__init__(dock)
        self.setObjectName("panelTitle")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        self.label = QLabel(dock.windowTitle())
        self.label.setObjectName("panelTitleText")
        self.close_button = QToolButton()
        self.close_button.setIcon(icon("close", "text_muted"))
        self.close_button.setIconSize(QSize(16, 16))
        self.close_button.setAccessibleName(f"Close {dock.windowTitle()}")
        self.close_button.setToolTip("Close this panel")
        self.close_button.setAutoRaise(True)
        self.close_button.clicked.connect(dock.close)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(SPACE["m"], SPACE["xs"], SPACE["xs"], SPACE["xs"])
        layout.setSpacing(SPACE["s"])
        layout.addWidget(self.label, 1)
        layout.addWidget(self.close_button)
        dock.windowTitleChanged.connect(self.label.setText)


class SidePanels(QObject):
    """Docks panels when the window is wide enough, overlays them on the chat otherwise.

    Args:
        window: The main window (its right dock area).
        chat_area: What an overlay covers (the chat pane: header, chat, composer).
        sidebar: The conversation list beside the chat (its minimum counts).
    """

    def __init__(self, window: QMainWindow, *, chat_area: QWidget, sidebar: QWidget) -> None:
        super().__init__(window)
        self._window = window
        self._chat_area = chat_area
        self._sidebar = sidebar
        self._docks: list[QDockWidget] = []
        self._features: dict[int, QDockWidget.DockWidgetFeature] = {}
        self._moving = False
        self._relayout_queued = False
        # A child of the window itself, outside its layout, laid over the central area (a
        # child of the splitter would become one of its panes).
        self.overlay = PanelOverlay(window)
        window.installEventFilter(self)
        chat_area.installEventFilter(self)

    # ---- Public API
    def adopt(self, dock: QDockWidget) -> None:
        """Take charge of a dock the window just added (its minimum width, its place)."""
        if dock not in self._docks:
            self._docks.append(dock)
            self._features[id(dock)] = dock.features()
            dock.installEventFilter(self)
            content: QWidget | None = dock.widget()
            if content is not None:  # its minimum changes with what it shows
                content.installEventFilter(self)
                for area in self._unscrolled(content):
                    inner = area.widget()
                    if inner is not None:
                        inner.installEventFilter(self)
                    self._fit_width(area)
            if dock.titleBarWidget() is None:
                dock.setTitleBarWidget(PanelTitle(dock))
        if self.overlaying():
            self._to_overlay(dock)
            return
        # Docked: beside the others as tabs, or at a width that fits its buttons.
        others = [d for d in self._docks if d is not dock and not self.in_overlay(d)]
        others = [
            d
            for d in others
            if self._window.dockWidgetArea(d) != Qt.DockWidgetArea.NoDockWidgetArea
        ]
        if others:
            self._window.tabifyDockWidget(others[0], dock)
        else:
            self._window.resizeDocks(
                [dock], [max(PANEL_WIDTH, dock.minimumWidth())], Qt.Orientation.Horizontal
            )

    def overlaying(self) -> bool:
        """Whether panels overlay the chat (the window is too narrow to dock them)."""
        return self._window.width() < self.dock_threshold()

    def dock_threshold(self) -> int:
        """The narrowest window that docks panels (wider when the panels need more).

        :data:`OVERLAY_BELOW`, or what the sidebar, the chat and the widest panel need.
        """
        widest = max((self.need(d) for d in self._docks), default=PANEL_WIDTH)
        sidebar = self._sidebar.minimumSizeHint().width() if self._sidebar.isVisible() else 0
        return max(OVERLAY_BELOW, sidebar + MIN_CHAT_BESIDE + widest + SPACE["xl"])

    @staticmethod
    def need(dock: QDockWidget) -> int:
        """The width ``dock`` needs to show everything it holds unclipped."""
        return max(dock.minimumSizeHint().width(), dock.minimumWidth())

    def in_overlay(self, dock: QDockWidget) -> bool:
        """Whether ``dock`` is (placed) in the overlay rather than the dock area."""
        return dock.parent() is self.overlay

    # ---- events
    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        """Follow the window's width and the panels' showing and hiding."""
        kind = event.type()
        if watched is self._window and kind == QEvent.Type.Resize:
            self.relayout()
        elif watched is self._chat_area and kind == QEvent.Type.Resize:
            self._place_overlay()
        elif (
            isinstance(watched, QDockWidget)
            and watched in self._docks
            and kind
            in (
                QEvent.Type.ShowToParent,
                QEvent.Type.HideToParent,
            )
        ):
            # *ToParent: sent when the panel is shown or hidden itself, even while the
            # overlay holding it is hidden (a plain Show would never come then).
            if kind == QEvent.Type.ShowToParent and self.in_overlay(watched):
                self._show_in_overlay(watched)
            elif self.in_overlay(watched) and not self._moving:
                if self.overlay.shown_dock() is None:
                    self.overlay.hide()
        elif (
            kind == QEvent.Type.LayoutRequest
            and isinstance(watched, QWidget)
            and isinstance(area := watched.parentWidget(), QWidget)
            and isinstance(area := area.parentWidget(), QScrollArea)
            and area.widget() is watched
        ):
            # What a sideways-fixed scroll area holds changed: it sets the area's minimum,
            # and that change reaches the panel as a LayoutRequest of its own (below).
            self._fit_width(area)
        elif kind == QEvent.Type.LayoutRequest and any(
            watched is d or watched is d.widget() for d in self._docks
        ):
            # A panel's content changed (a folder row, a longer label): it may no longer fit
            # beside the chat; decide before the window grows to make room for it.
            self.relayout()
        return False

    def relayout(self) -> None:
        """Dock or overlay every panel for the window's current width."""
        if self._moving:
            return
        overlay = self.overlaying()
        for dock in list(self._docks):
            if overlay and not self.in_overlay(dock):
                self._to_overlay(dock)
            elif not overlay and self.in_overlay(dock):
                self._to_dock_area(dock)
        self._place_overlay()

    # ---- internals
    @staticmethod
    def _unscrolled(content: QWidget) -> list[QScrollArea]:
        """Scroll areas in ``content`` that never scroll sideways (their content must fit)."""
        areas = [content] if isinstance(content, QScrollArea) else []
        areas += content.findChildren(QScrollArea)
        return [
            a
            for a in areas
            if a.widgetResizable()
            and a.widget() is not None
            and a.horizontalScrollBarPolicy() == Qt.ScrollBarPolicy.ScrollBarAlwaysOff
        ]

    @staticmethod
    def _fit_width(area: QScrollArea) -> None:
        """Give ``area`` the minimum width its content needs beside a vertical scroll bar."""
        inner = area.widget()
        if inner is None:
            return
        bar = 0
        if area.verticalScrollBarPolicy() != Qt.ScrollBarPolicy.ScrollBarAlwaysOff:
            bar = area.verticalScrollBar().sizeHint().width()
        need = inner.minimumSizeHint().width() + bar + 2 * area.frameWidth()
        if area.minimumWidth() != need:
            area.setMinimumWidth(need)

    def _to_overlay(self, dock: QDockWidget) -> None:
        was_shown = not dock.isHidden()
        self._moving = True
        try:
            self._window.removeDockWidget(dock)  # hides it
            features = self._features.get(id(dock), dock.features())
            dock.setFeatures(features & QDockWidget.DockWidgetFeature.DockWidgetClosable)
            layout = self.overlay.layout()
            assert layout is not None
            layout.addWidget(dock)
        finally:
            self._moving = False
        if was_shown:
            dock.show()  # the Show event puts the overlay up
        else:
            dock.hide()

    def _to_dock_area(self, dock: QDockWidget) -> None:
        was_shown = not dock.isHidden()
        self._moving = True
        try:
            layout = self.overlay.layout()
            assert layout is not None
            layout.removeWidget(dock)
            dock.setFeatures(self._features.get(id(dock), dock.features()))
            QMainWindow.addDockWidget(self._window, Qt.DockWidgetArea.RightDockWidgetArea, dock)
            others = [
                d for d in self._docks if d is not dock and not self.in_overlay(d) and d.isVisible()
            ]
            if others:
                self._window.tabifyDockWidget(others[0], dock)
            else:
                self._window.resizeDocks(
                    [dock], [max(PANEL_WIDTH, self.need(dock))], Qt.Orientation.Horizontal
                )
        finally:
            self._moving = False
        dock.setVisible(was_shown)
        if self.overlay.shown_dock() is None:
            self.overlay.hide()

    def _show_in_overlay(self, dock: QDockWidget) -> None:
        for other in self.overlay.docks():
            if other is not dock and not other.isHidden():
                other.hide()  # one panel at a time over the chat
        self._place_overlay()
        self.overlay.show()
        self.overlay.raise_()

    def _place_overlay(self) -> None:
        central = self._window.centralWidget()
        if central is None:
            return
        area = central.geometry()  # in the window's coordinates, below the menu bar
        chat_width = self._chat_area.width()
        dock = self.overlay.shown_dock()
        need = self.need(dock) if dock is not None else PANEL_WIDTH
        # Over the chat, leaving a strip of it in view when there is room; wider than the
        # chat when the panel needs it (over the sidebar), never past the window's edge.
        width = max(need, min(PANEL_WIDTH, chat_width - SPACE["xxl"] * 2))
        width = min(width, area.width())
        self.overlay.setGeometry(QRect(area.right() - width + 1, area.top(), width, area.height()))
        if self.overlay.isVisible():
            self.overlay.raise_()
