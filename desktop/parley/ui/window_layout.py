"""The window's widgets and how they are arranged (what Qt Designer's ``setupUi`` would do).

The window's size and the sidebar's width are remembered in a QSettings INI file
(:func:`save_geometry`, :func:`restore_geometry`): QSettings holds window geometry only
(STYLE.md §6).

:class:`WindowLayout` builds the shell the window shows before the core is bound: the
sidebar, the header (model picker, branch bar, Sources, Documents, Settings), the page stack
(loading, empty chat, chat, onboarding, failed start), the notice bar and composer, and the
status strip. It only creates and places widgets; :class:`~parley.ui.main_window.MainWindow`
connects them. Nothing slow is imported here (the first paint waits for this module).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QByteArray, QRect, QSettings, QSize, Qt
from PySide6.QtGui import QAction, QGuiApplication, QKeySequence
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QSplitter,
    QStackedWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from parley.ui.composer import Composer
from parley.ui.icons import icon
from parley.ui.message_actions import BranchBar
from parley.ui.model_picker import ModelPicker
from parley.ui.notices import NoticeBar
from parley.ui.sidebar import Sidebar
from parley.ui.status import StatusStrip
from parley.ui.theme import COLUMN_EM, SPACE, set_type

PAGE_LOADING, PAGE_EMPTY, PAGE_CHAT, PAGE_ONBOARDING, PAGE_FAILED = range(5)
"""The pages of :attr:`WindowLayout.stack`, in order."""

FIRST_SIZE = QSize(1200, 800)
"""The window's size at first start (then it is remembered), shrunk to fit the screen."""

MINIMUM_SIZE = QSize(560, 420)
"""The smallest the window gets: the composer, one line of chat and the header still fit."""

SIDEBAR_WIDTH = 260
"""The sidebar's width at first start (the person may drag it; it is remembered)."""

MIN_CHAT_WIDTH = 360
"""The narrowest the chat pane gets beside a docked panel (below, panels overlay it)."""


def first_geometry(available: QRect, size: QSize = FIRST_SIZE) -> QRect:
    """Where the window opens the first time: centred, ``size`` or 92 % of the screen."""
    w = max(MINIMUM_SIZE.width(), min(size.width(), int(available.width() * 0.92)))
    h = max(MINIMUM_SIZE.height(), min(size.height(), int(available.height() * 0.92)))
    w, h = min(w, available.width()), min(h, available.height())
    x = available.x() + (available.width() - w) // 2
    y = available.y() + (available.height() - h) // 2
    return QRect(x, y, w, h)


def _header_button(text: str, icon_name: str, tip: str, *, icon_only: bool = False) -> QToolButton:
    button = QToolButton()
    button.setObjectName("headerButton")
    button.setIcon(icon(icon_name, "text_muted"))
    button.setIconSize(QSize(18, 18))
    button.setText(text)
    button.setAccessibleName(text)
    button.setToolTip(tip)
    button.setAutoRaise(True)
    button.setFocusPolicy(Qt.FocusPolicy.TabFocus)
    button.setToolButtonStyle(
        Qt.ToolButtonStyle.ToolButtonIconOnly
        if icon_only
        else Qt.ToolButtonStyle.ToolButtonTextBesideIcon
    )
    return button


class WindowLayout:
    """Creates the window's widgets and places them in ``window``.

    Args:
        window: The main window (its central widget and status bar are set).
    """

    def __init__(self, window: QMainWindow) -> None:
        self.sidebar = Sidebar()
        self.picker = ModelPicker()
        self.picker.setObjectName("modelPicker")
        self.picker.setAccessibleName("Model")
        self.picker.setEnabled(False)
        self.branch_bar = BranchBar()
        self.sources_button = _header_button(
            "Sources",
            "sources",
            "The passages sent with the selected answer, with their scores (Ctrl+Shift+E)",
        )
        self.sources_button.setEnabled(False)
        self.documents_button = _header_button(
            "Documents",
            "documents",
            "Your documents: folders, indexing, skipped files (Ctrl+Shift+D)",
        )
        self.documents_button.setEnabled(False)
        self.settings_button = _header_button(
            "Settings", "settings", "Settings (Ctrl+,)", icon_only=True
        )
        header = QWidget()
        header.setObjectName("header")
        header.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        self.header = header
        hl = QHBoxLayout(header)
        hl.setContentsMargins(SPACE["m"], SPACE["s"], SPACE["m"], SPACE["s"])
        hl.setSpacing(SPACE["xs"])
        hl.addWidget(self.picker)
        hl.addStretch(1)
        hl.addWidget(self.branch_bar)
        hl.addWidget(self.sources_button)
        hl.addWidget(self.documents_button)
        hl.addWidget(self.settings_button)

        self.stack = QStackedWidget()
        loading = QLabel("Starting Parley…")
        loading.setObjectName("mutedText")
        loading.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.stack.addWidget(loading)  # PAGE_LOADING
        self.stack.addWidget(self._empty_page())  # PAGE_EMPTY
        self.chat_holder = QWidget()  # PAGE_CHAT: the view arrives in bind()
        QVBoxLayout(self.chat_holder).setContentsMargins(0, 0, 0, 0)
        self.stack.addWidget(self.chat_holder)
        self.onboarding_holder = QWidget()  # PAGE_ONBOARDING
        QVBoxLayout(self.onboarding_holder).setContentsMargins(0, 0, 0, 0)
        self.stack.addWidget(self.onboarding_holder)
        self.failed_label = QLabel()
        self.failed_label.setWordWrap(True)
        self.failed_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.stack.addWidget(self.failed_label)  # PAGE_FAILED

        self.notice = NoticeBar()
        self.composer = Composer()
        self.composer.setEnabled(False)

        # The composer is as wide as the chat's column and centred under it.
        bottom = QWidget()
        bottom.setObjectName("composerArea")
        bottom.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        self.bottom = bottom
        column = QWidget()
        column.setMaximumWidth(round(window.fontMetrics().height() * COLUMN_EM))
        cl = QVBoxLayout(column)
        cl.setContentsMargins(0, 0, 0, 0)
        cl.setSpacing(SPACE["s"])
        cl.addWidget(self.notice)
        cl.addWidget(self.composer)
        bl = QHBoxLayout(bottom)
        bl.setContentsMargins(SPACE["l"], SPACE["xs"], SPACE["l"], SPACE["m"])
        bl.addWidget(column, 1)

        right = QWidget()
        right.setObjectName("chatPane")
        right.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        self.chat_pane = right
        rl = QVBoxLayout(right)
        rl.setContentsMargins(0, 0, 0, 0)
        rl.setSpacing(0)
        rl.addWidget(header)
        rl.addWidget(self.stack, 1)
        rl.addWidget(bottom)
        # The chat may be squeezed to this before a panel overlays it instead.
        right.setMinimumWidth(MIN_CHAT_WIDTH)

        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.setHandleWidth(1)
        self.splitter.addWidget(self.sidebar)
        self.splitter.addWidget(right)
        self.splitter.setStretchFactor(0, 0)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setChildrenCollapsible(False)
        window.setCentralWidget(self.splitter)
        self.status = StatusStrip()
        window.setStatusBar(self.status)
        window.setMinimumSize(MINIMUM_SIZE)
        screen = window.screen() or QGuiApplication.primaryScreen()
        available = screen.availableGeometry() if screen is not None else QRect(0, 0, 1280, 860)
        window.setGeometry(first_geometry(available))
        self.splitter.setSizes([SIDEBAR_WIDTH, window.width() - SIDEBAR_WIDTH])

    def _empty_page(self) -> QWidget:
        page = QWidget()
        self.empty = page
        title = QLabel("What can I help with?")
        title.setObjectName("emptyTitle")
        set_type(title, "display")
        title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        hint = QLabel(
            "Type below and press Enter. Attach files with the paperclip or drop them on the "
            "window; drop a folder to add it to your documents."
        )
        hint.setObjectName("emptyHint")
        hint.setWordWrap(True)
        hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty_hint = hint
        layout = QVBoxLayout(page)
        layout.setContentsMargins(SPACE["xl"], SPACE["xl"], SPACE["xl"], SPACE["xl"])
        layout.setSpacing(SPACE["s"])
        layout.addStretch(2)
        layout.addWidget(title)
        layout.addWidget(hint)
        layout.addStretch(3)
        return page

    def set_tab_order(self, canvas: QWidget | None) -> None:
        """Tab walks the window as it is laid out: sidebar, header, chat, composer."""
        sb, c = self.sidebar, self.composer
        chain = [
            sb.new_button,
            sb.search,
            sb.list,
            self.picker,
            *self.branch_bar.findChildren(QToolButton),
            self.sources_button,
            self.documents_button,
            self.settings_button,
            *([canvas] if canvas is not None else []),
            self.notice.action_button,
            self.notice.close_button,
            c.attach_button,
            c.edit,
            c.send_button,
            c.stop_button,
            c.tools_switch,
            c.knowledge_switch,
            c.regenerate_button,
        ]
        for first, second in itertools.pairwise(chain):
            QWidget.setTabOrder(first, second)


def restore_geometry(window: QMainWindow, splitter: QSplitter, file: Path | None) -> None:
    """Put the window and the sidebar back as they were (no file: leave them)."""
    if file is None:
        return
    qs = QSettings(str(file), QSettings.Format.IniFormat)
    geometry = qs.value("window/geometry")
    if isinstance(geometry, QByteArray):
        window.restoreGeometry(geometry)
    state = qs.value("window/splitter")
    if isinstance(state, QByteArray):
        splitter.restoreState(state)


def save_geometry(window: QMainWindow, splitter: QSplitter, file: Path | None) -> None:
    """Remember the window's geometry and the sidebar's width (no file: nothing)."""
    if file is None:
        return
    qs = QSettings(str(file), QSettings.Format.IniFormat)
    qs.setValue("window/geometry", window.saveGeometry())
    qs.setValue("window/splitter", splitter.saveState())
    qs.sync()


@dataclass(frozen=True)
class WindowActions:
    """The window's menu actions (the window connects them)."""

    new: QAction
    search: QAction
    settings: QAction
    regenerate: QAction
    stop: QAction
    edit_last: QAction
    quit: QAction
    documents: QAction
    add_folder: QAction
    sources: QAction
    costs: QAction
    attach: QAction
    import_chat: QAction
    export_md: QAction
    export_json: QAction
    export_html: QAction
    shortcuts: QAction
    about: QAction

    def all(self) -> list[QAction]:
        """Every action, in menu order (the shortcuts sheet lists those with keys)."""
        return [getattr(self, f) for f in self.__dataclass_fields__]


def build_menus(window: QMainWindow) -> WindowActions:
    """The File, Chat, Documents and Help menus and their shortcuts (documents ones disabled)."""

    def action(
        text: str,
        shortcut: QKeySequence | QKeySequence.StandardKey | str | None,
        group: str = "Window",
    ) -> QAction:
        a = QAction(text, window)
        if shortcut is not None:
            a.setShortcut(QKeySequence(shortcut))
        a.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        a.setProperty("shortcutGroup", group)
        window.addAction(a)
        return a

    acts = WindowActions(
        new=action("New chat", "Ctrl+N", "Chats"),
        search=action("Search chats", "Ctrl+K", "Chats"),
        settings=action("Settings…", "Ctrl+,"),
        regenerate=action("Regenerate answer", "Ctrl+R", "Answers"),
        stop=action("Stop answer", QKeySequence(Qt.Key.Key_Escape), "Answers"),
        edit_last=action("Edit last question", None, "Answers"),
        quit=action("Quit", QKeySequence.StandardKey.Quit),
        documents=action("Your documents…", "Ctrl+Shift+D", "Documents"),
        add_folder=action("Add folder…", None, "Documents"),
        sources=action("Sources of the selected answer", "Ctrl+Shift+E", "Documents"),
        costs=action("Costs and budgets", "Ctrl+Shift+C", "Chats"),
        attach=action("Attach files…", "Ctrl+Shift+A", "Answers"),
        import_chat=action("Import conversation…", None, "Chats"),
        export_md=action("Markdown…", None, "Chats"),
        export_json=action("JSON (can be imported again)…", None, "Chats"),
        export_html=action("Web page (HTML)…", None, "Chats"),
        shortcuts=action("Keyboard shortcuts", "Ctrl+/"),
        about=action("About Parley", None),
    )
    for a in (acts.documents, acts.add_folder, acts.sources, acts.costs):
        a.setEnabled(False)
    menu = window.menuBar()
    file_menu = menu.addMenu("&File")
    file_menu.addAction(acts.new)
    file_menu.addAction(acts.attach)
    file_menu.addSeparator()
    file_menu.addAction(acts.import_chat)
    export_menu = file_menu.addMenu("Export conversation")
    for a in (acts.export_md, acts.export_json, acts.export_html):
        export_menu.addAction(a)
    file_menu.addSeparator()
    file_menu.addAction(acts.settings)
    file_menu.addSeparator()
    file_menu.addAction(acts.quit)
    chat_menu = menu.addMenu("&Chat")
    for a in (acts.search, acts.regenerate, acts.edit_last, acts.stop):
        chat_menu.addAction(a)
    chat_menu.addSeparator()
    chat_menu.addAction(acts.costs)
    docs_menu = menu.addMenu("&Documents")
    docs_menu.addAction(acts.documents)
    docs_menu.addAction(acts.add_folder)
    docs_menu.addSeparator()
    docs_menu.addAction(acts.sources)
    help_menu = menu.addMenu("&Help")
    help_menu.addAction(acts.shortcuts)
    help_menu.addSeparator()
    help_menu.addAction(acts.about)
    more = menu.findChild(QToolButton, "qt_menubar_ext_button")
    if more is not None:  # shown when the menus do not fit: a screen reader names it
        more.setAccessibleName("More menus")
    return acts
