"""The conversation list: new, search (titles and text), rename, delete; grouped by date.

Data in, signals out: the window gives it :class:`ConversationRow` lists (from the store) and
acts on its requests. Groups are Today / Yesterday / Previous 7 days / Older, by local date.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from PySide6.QtCore import QEvent, QObject, QPoint, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QFont, QKeyEvent, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from parley.ui.icons import icon
from parley.ui.plain import shown, tooltip
from parley.ui.theme import SPACE

GROUPS = ("Today", "Yesterday", "Previous 7 days", "Older")

_ID_ROLE = Qt.ItemDataRole.UserRole + 1
_TITLE_ROLE = Qt.ItemDataRole.UserRole + 2


@dataclass(frozen=True)
class ConversationRow:
    """What the sidebar shows of one conversation."""

    id: int
    title: str
    updated_at: float
    """Seconds since the epoch."""


def group_label(updated_at: float, now: dt.datetime | None = None) -> str:
    """The date group of a conversation last changed at ``updated_at`` (local time).

    Args:
        updated_at: Seconds since the epoch.
        now: The current local time (tests pass one).

    Returns:
        One of :data:`GROUPS`.
    """
    now = now or dt.datetime.now()
    day = dt.datetime.fromtimestamp(updated_at).date()
    today = now.date()
    if day >= today:
        return "Today"
    if day == today - dt.timedelta(days=1):
        return "Yesterday"
    if day > today - dt.timedelta(days=8):
        return "Previous 7 days"
    return "Older"


class Sidebar(QWidget):
    """New chat, search and the grouped list of conversations."""

    # ---- Signals
    sig_conversation_selected = Signal(int)
    """The person opened a conversation (its id)."""
    sig_new_requested = Signal()
    """"New chat" was clicked."""
    sig_search_changed = Signal(str)
    """The search text changed (debounced); "" lists everything."""
    sig_rename_requested = Signal(int, str)
    """Rename conversation (id, new title)."""
    sig_delete_requested = Signal(int)
    """Delete conversation (id); the window offers Undo."""

    SEARCH_DEBOUNCE_MS = 150

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("sidebar")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        self.new_button = QPushButton("New chat")
        self.new_button.setObjectName("newChatButton")
        self.new_button.setIcon(icon("new"))
        self.new_button.setIconSize(QSize(16, 16))
        self.new_button.setToolTip("Start a new conversation (Ctrl+N)")
        self.search = QLineEdit()
        self.search.setObjectName("chatSearch")
        self.search.setPlaceholderText("Search chats (Ctrl+K)")
        self.search.setAccessibleName("Search chats")
        self.search.setClearButtonEnabled(True)
        look = self.search.addAction(
            icon("search", "text_muted"), QLineEdit.ActionPosition.LeadingPosition
        )
        look.setText("Search")
        clear = self.search.findChild(QAction, "_q_qlineeditclearaction")
        if clear is not None:  # Qt's own clear button: say what it does
            clear.setText("Clear search")
        self.search.installEventFilter(self)
        self.list = QListWidget()
        self.list.setAccessibleName("Conversations")
        self.list.setObjectName("conversationList")
        self.list.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.list.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.list.setUniformItemSizes(False)
        self.list.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.empty_label = QLabel("No conversations yet.")
        self.empty_label.setObjectName("sidebarEmpty")
        self.empty_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty_label.setWordWrap(True)
        self.empty_label.setVisible(False)

        top = QHBoxLayout()
        top.addWidget(self.new_button, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(SPACE["m"], SPACE["m"], SPACE["s"], SPACE["s"])
        layout.setSpacing(SPACE["s"])
        layout.addLayout(top)
        layout.addWidget(self.search)
        layout.addWidget(self.list, 1)
        layout.addWidget(self.empty_label)
        layout.addStretch(0)
        self.setMinimumWidth(self.fontMetrics().averageCharWidth() * 24)

        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(self.SEARCH_DEBOUNCE_MS)
        self._debounce.timeout.connect(lambda: self.sig_search_changed.emit(self.query()))
        self.search.textChanged.connect(lambda _t: self._debounce.start())
        self.new_button.clicked.connect(self.sig_new_requested)
        # Selection, not the current item: Qt makes the first row "current" when the list
        # merely receives focus, which must not open a conversation.
        self.list.itemSelectionChanged.connect(self._selection_changed)
        self.list.customContextMenuRequested.connect(self._context_menu)
        self.list.itemDoubleClicked.connect(lambda it: self.rename_interactively(self._id(it)))

        delete = QAction("Delete chat", self.list)
        delete.setShortcut(QKeySequence(QKeySequence.StandardKey.Delete))
        delete.setShortcutContext(Qt.ShortcutContext.WidgetShortcut)
        delete.triggered.connect(self._delete_current)
        self.list.addAction(delete)
        rename = QAction("Rename chat", self.list)
        rename.setShortcut(QKeySequence(Qt.Key.Key_F2))
        rename.setShortcutContext(Qt.ShortcutContext.WidgetShortcut)
        rename.triggered.connect(lambda: self.rename_interactively(self.current_id()))
        self.list.addAction(rename)
        self._suppress_select = False

    # ---- Public API
    def set_conversations(
        self,
        rows: Sequence[ConversationRow],
        *,
        current_id: int | None = None,
        now: dt.datetime | None = None,
    ) -> None:
        """Show ``rows`` (newest first) under date headers; select ``current_id``."""
        self._suppress_select = True
        try:
            self.list.clear()
            last_group = None
            header_font = QFont(self.font())
            header_font.setBold(True)
            header_font.setPointSizeF(max(1.0, header_font.pointSizeF() * 0.85))
            for row in rows:
                group = group_label(row.updated_at, now)
                if group != last_group:
                    header = QListWidgetItem(group)
                    header.setFlags(Qt.ItemFlag.NoItemFlags)
                    header.setFont(header_font)
                    header.setData(_ID_ROLE, None)
                    self.list.addItem(header)
                    last_group = group
                item = QListWidgetItem(shown(row.title) if row.title else "New chat")
                item.setToolTip(tooltip(row.title))
                item.setData(_ID_ROLE, row.id)
                item.setData(_TITLE_ROLE, row.title)
                self.list.addItem(item)
                if row.id == current_id:
                    self.list.setCurrentItem(item)
            if current_id is None:
                self.list.setCurrentRow(-1)
        finally:
            self._suppress_select = False
        searching = bool(self.query())
        self.empty_label.setText(
            "No chat matches your search." if searching else "No conversations yet."
        )
        self.empty_label.setVisible(not rows)
        self.list.setVisible(bool(rows))

    def select(self, conversation_id: int | None) -> None:
        """Highlight a conversation without emitting ``sig_conversation_selected``."""
        self._suppress_select = True
        try:
            if conversation_id is None:
                self.list.setCurrentRow(-1)
                self.list.clearSelection()
                return
            for i in range(self.list.count()):
                item = self.list.item(i)
                if self._id(item) == conversation_id:
                    self.list.setCurrentItem(item)
                    return
        finally:
            self._suppress_select = False

    def ids(self) -> list[int]:
        """Conversation ids in display order."""
        return [i for i in (self._id(self.list.item(n)) for n in range(self.list.count())) if i]

    def headers(self) -> list[str]:
        """Group headers in display order."""
        return [
            self.list.item(n).text()
            for n in range(self.list.count())
            if self._id(self.list.item(n)) is None
        ]

    def title_of(self, conversation_id: int) -> str | None:
        """The displayed title of a conversation."""
        for n in range(self.list.count()):
            item = self.list.item(n)
            if self._id(item) == conversation_id:
                return str(item.text())
        return None

    def current_id(self) -> int | None:
        """The selected conversation."""
        selected = self.list.selectedItems()
        return self._id(selected[0]) if selected else None

    def query(self) -> str:
        """The search text (trimmed)."""
        return self.search.text().strip()

    def focus_search(self) -> None:
        """Ctrl+K: jump to the search box."""
        self.search.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.search.selectAll()

    def clear_search(self) -> bool:
        """Escape in the search box: empty it (False when it already was)."""
        if not self.search.text():
            return False
        self.search.clear()
        self._debounce.stop()
        self.sig_search_changed.emit("")
        return True

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        """Escape in the search box clears it (before the window's Esc shortcut sees it)."""
        if watched is self.search and isinstance(event, QKeyEvent):
            if event.key() == Qt.Key.Key_Escape and self.search.text():
                if event.type() == QEvent.Type.ShortcutOverride:
                    event.accept()  # the key goes to the box, not to "Stop answer"
                    return True
                if event.type() == QEvent.Type.KeyPress:
                    self.clear_search()
                    return True
        return False

    def rename_interactively(self, conversation_id: int | None) -> None:
        """Ask for a new title (non-blocking dialog) and emit ``sig_rename_requested``."""
        if conversation_id is None:
            return
        dialog = QInputDialog(self)
        dialog.setWindowTitle("Rename chat")
        dialog.setLabelText("New title:")
        dialog.setTextValue(self.title_of(conversation_id) or "")
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.textValueSelected.connect(
            lambda text: (
                self.sig_rename_requested.emit(conversation_id, text) if text.strip() else None
            )
        )
        dialog.open()

    # ---- internals
    @staticmethod
    def _id(item: QListWidgetItem | None) -> int | None:
        if item is None:
            return None
        value = item.data(_ID_ROLE)
        return int(value) if value is not None else None

    def _selection_changed(self) -> None:
        if self._suppress_select:
            return
        selected = self.list.selectedItems()
        cid = self._id(selected[0]) if selected else None
        if cid is not None:
            self.sig_conversation_selected.emit(cid)

    def _delete_current(self) -> None:
        cid = self.current_id()
        if cid is not None:
            self.sig_delete_requested.emit(cid)

    def _context_menu(self, pos: QPoint) -> None:
        item = self.list.itemAt(pos)
        cid = self._id(item)
        if cid is None:
            return
        menu = QMenu(self)
        menu.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        menu.addAction("Rename…", lambda: self.rename_interactively(cid))
        menu.addAction("Delete", lambda: self.sig_delete_requested.emit(cid))
        menu.popup(self.list.viewport().mapToGlobal(pos))
