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

from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QByteArray, QSettings, Qt
from PySide6.QtGui import QAction, QKeySequence
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
from parley.ui.message_actions import BranchBar
from parley.ui.model_picker import ModelPicker
from parley.ui.notices import NoticeBar
from parley.ui.sidebar import Sidebar
from parley.ui.status import StatusStrip
from parley.ui.theme import scale_font

PAGE_LOADING, PAGE_EMPTY, PAGE_CHAT, PAGE_ONBOARDING, PAGE_FAILED = range(5)
"""The pages of :attr:`WindowLayout.stack`, in order."""


class WindowLayout:
    """Creates the window's widgets and places them in ``window``.

    Args:
        window: The main window (its central widget and status bar are set).
    """

    def __init__(self, window: QMainWindow) -> None:
        self.sidebar = Sidebar()
        self.picker = ModelPicker()
        self.picker.setEnabled(False)
        self.branch_bar = BranchBar()
        self.settings_button = QToolButton()
        self.settings_button.setText("⚙")
        self.settings_button.setToolTip("Settings (Ctrl+,)")
        self.settings_button.setAutoRaise(True)
        self.documents_button = QToolButton()
        self.documents_button.setText("Documents")
        self.documents_button.setToolTip(
            "Your documents: folders, indexing, skipped files (Ctrl+Shift+D)"
        )
        self.documents_button.setAutoRaise(True)
        self.documents_button.setEnabled(False)
        self.sources_button = QToolButton()
        self.sources_button.setText("Sources")
        self.sources_button.setToolTip(
            "The passages sent with the selected answer, with their scores (Ctrl+Shift+E)"
        )
        self.sources_button.setAutoRaise(True)
        self.sources_button.setEnabled(False)
        header = QWidget()
        hl = QHBoxLayout(header)
        em = window.fontMetrics().height()
        hl.setContentsMargins(em // 2, em // 3, em // 2, em // 3)
        hl.addWidget(self.picker)
        hl.addStretch(1)
        hl.addWidget(self.branch_bar)
        hl.addWidget(self.sources_button)
        hl.addWidget(self.documents_button)
        hl.addWidget(self.settings_button)

        self.stack = QStackedWidget()
        loading = QLabel("Starting Parley…")
        loading.setAlignment(Qt.AlignmentFlag.AlignCenter)
        loading.setEnabled(False)
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

        bottom = QWidget()
        self.bottom = bottom
        bl = QVBoxLayout(bottom)
        bl.setContentsMargins(em, em // 3, em, em // 2)
        bl.addWidget(self.notice)
        bl.addWidget(self.composer)

        right = QWidget()
        rl = QVBoxLayout(right)
        rl.setContentsMargins(0, 0, 0, 0)
        rl.setSpacing(0)
        rl.addWidget(header)
        rl.addWidget(self.stack, 1)
        rl.addWidget(bottom)

        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(self.sidebar)
        self.splitter.addWidget(right)
        self.splitter.setStretchFactor(0, 0)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setChildrenCollapsible(False)
        window.setCentralWidget(self.splitter)
        self.status = StatusStrip()
        window.setStatusBar(self.status)
        cw = window.fontMetrics().averageCharWidth()
        self.splitter.setSizes([cw * 32, cw * 100])
        window.resize(cw * 135, window.fontMetrics().lineSpacing() * 42)

    def _empty_page(self) -> QWidget:
        page = QWidget()
        self.empty = page
        title = QLabel("What can I help with?")
        title.setObjectName("emptyTitle")
        scale_font(title, 1.5)
        title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        hint = QLabel(
            "Type below and press Enter. Drop files on the window to attach them, "
            "or a folder to add it to your documents."
        )
        hint.setWordWrap(True)
        hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        hint.setEnabled(False)
        self.empty_hint = hint
        layout = QVBoxLayout(page)
        layout.addStretch(2)
        layout.addWidget(title)
        layout.addWidget(hint)
        layout.addStretch(3)
        return page


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


def build_menus(window: QMainWindow) -> WindowActions:
    """The File, Chat and Documents menus and their shortcuts (documents ones disabled)."""

    def action(
        text: str, shortcut: QKeySequence | QKeySequence.StandardKey | str | None
    ) -> QAction:
        a = QAction(text, window)
        if shortcut is not None:
            a.setShortcut(QKeySequence(shortcut))
        a.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        window.addAction(a)
        return a

    acts = WindowActions(
        new=action("New chat", "Ctrl+N"),
        search=action("Search chats", "Ctrl+K"),
        settings=action("Settings…", "Ctrl+,"),
        regenerate=action("Regenerate answer", "Ctrl+R"),
        stop=action("Stop answer", QKeySequence(Qt.Key.Key_Escape)),
        edit_last=action("Edit last question", None),
        quit=action("Quit", QKeySequence.StandardKey.Quit),
        documents=action("Your documents…", "Ctrl+Shift+D"),
        add_folder=action("Add folder…", None),
        sources=action("Sources of the selected answer", "Ctrl+Shift+E"),
        costs=action("Costs and budgets", "Ctrl+Shift+C"),
    )
    for a in (acts.documents, acts.add_folder, acts.sources, acts.costs):
        a.setEnabled(False)
    menu = window.menuBar()
    file_menu = menu.addMenu("&File")
    file_menu.addAction(acts.new)
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
    return acts
