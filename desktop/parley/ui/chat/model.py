"""The chat view's data: :class:`ChatItem` values in a Qt list model.

The model holds plain data (the raw Markdown of each message plus its decorations); the view
decides how to render it. Items are immutable: every change replaces the item and gives it a
new revision the view uses to invalidate its caches (text and decorations separately, so a
status change never re-renders a long answer). Revisions come from one counter per model, so
a (message id, revision) or (row, revision) pair never means two versions of a message: not
after a reload (:meth:`ChatModel.set_items`), nor when a message is removed and comes back.

Streaming deltas are buffered (:meth:`ChatModel.append_text` is O(1) and emits nothing) and
applied in one step by :meth:`ChatModel.take_pending`, which the view calls from its
coalescing timer, at most ~30 times a second.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from enum import IntEnum, StrEnum
from typing import Any

from PySide6.QtCore import (
    QAbstractListModel,
    QByteArray,
    QModelIndex,
    QPersistentModelIndex,
    Qt,
)

__all__ = ["ChatItem", "ChatModel", "ChatRole", "FooterItem", "ItemRole", "MessageStatus"]


class ChatRole(StrEnum):
    """Who wrote a message."""

    USER = "user"
    ASSISTANT = "assistant"


class MessageStatus(StrEnum):
    """Where a message is in its life."""

    COMPLETE = "complete"
    """Finished normally."""
    STREAMING = "streaming"
    """Text is still arriving."""
    PARTIAL = "partial"
    """The stream broke off; the text so far is kept."""
    ERROR = "error"
    """The request failed; :attr:`ChatItem.error` says why."""
    CANCELLED = "cancelled"
    """The person stopped the answer."""


@dataclass(frozen=True)
class FooterItem:
    """One line below an answer: a tool call, a source citation, a note.

    Later features add kinds; the view shows ``text`` and, if ``href`` is set, makes it a link
    (``http(s)`` links go through the usual confirmation; ``parley-…:`` links are emitted as
    ``ChatView.sig_footer_activated``).
    """

    text: str
    """What to show (plain text; it is escaped)."""
    kind: str = "note"
    """What this is, e.g. ``note``, ``tool_call``, ``citation``."""
    href: str | None = None
    """Optional link target."""
    tooltip: str | None = None
    """Optional tooltip shown when the pointer rests on the line (plain text)."""
    offset: int | None = None
    """Shown inside the answer, after this many characters of its text (a tool card where
    the call happened); None: below the answer. Streaming answers show them below until
    the answer is finished."""


@dataclass(frozen=True)
class ChatItem:
    """One message as the chat view shows it.

    Raises:
        ValueError: If ``role`` or ``status`` is not a known value, or the id is empty.
    """

    message_id: str
    """Stable id (the store's message id); caches are keyed by it."""
    role: ChatRole
    """Who wrote it."""
    text: str = ""
    """The raw Markdown (assistant) or plain text (user)."""
    status: MessageStatus = MessageStatus.COMPLETE
    """Life-cycle state, shown in the message header."""
    error: str | None = None
    """A one-line error shown under the message (``ParleyError.user_message``)."""
    retryable: bool = False
    """Whether the error line offers Retry."""
    answered_by: str | None = None
    """Set when a fallback model answered: shown as "answered by <model>"."""
    footer: tuple[FooterItem, ...] = ()
    """Tool-call cards, citations and notes shown below the answer."""
    model: str | None = None
    """The model that wrote an answer (named in its header)."""
    versions: tuple[int, int] | None = None
    """(shown version, number of versions), 1-based, when the message has other versions:
    the header shows the switcher ``‹ 2/3 ›``."""

    def __post_init__(self) -> None:
        if not isinstance(self.message_id, str) or not self.message_id:
            raise ValueError("a chat item needs a non-empty message_id")
        # Already the enums (the usual case, 10,000 times when a long chat opens): no call.
        if type(self.role) is not ChatRole:
            try:
                object.__setattr__(self, "role", ChatRole(self.role))
            except ValueError:
                raise ValueError(f"unknown chat role {self.role!r} (user or assistant)") from None
        if type(self.status) is not MessageStatus:
            try:
                object.__setattr__(self, "status", MessageStatus(self.status))
            except ValueError:
                raise ValueError(f"unknown message status {self.status!r}") from None
        if type(self.footer) is not tuple:
            object.__setattr__(self, "footer", tuple(self.footer))  # a list would be mutable
        if self.versions is not None:
            current, count = self.versions
            if not 1 <= current <= count:
                raise ValueError(f"version {current} of {count} does not exist")


class ItemRole(IntEnum):
    """Model data roles (``Qt.DisplayRole`` gives the text too, for accessibility)."""

    ITEM = Qt.ItemDataRole.UserRole + 1
    """The whole :class:`ChatItem`."""
    MESSAGE_ID = Qt.ItemDataRole.UserRole + 2
    CHAT_ROLE = Qt.ItemDataRole.UserRole + 3
    TEXT = Qt.ItemDataRole.UserRole + 4
    STATUS = Qt.ItemDataRole.UserRole + 5
    ERROR = Qt.ItemDataRole.UserRole + 6
    TEXT_REVISION = Qt.ItemDataRole.UserRole + 7
    """A new value whenever the text changes (never one an earlier version had)."""
    META_REVISION = Qt.ItemDataRole.UserRole + 8
    """A new value whenever anything but the text changes (status, error, footer…)."""


_TEXT_ROLES = [Qt.ItemDataRole.DisplayRole, ItemRole.ITEM, ItemRole.TEXT, ItemRole.TEXT_REVISION]
_META_ROLES = [ItemRole.ITEM, ItemRole.STATUS, ItemRole.ERROR, ItemRole.META_REVISION]
_TEXT_FIELDS = frozenset({"text"})


@dataclass
class _Row:
    item: ChatItem
    text_rev: int
    meta_rev: int
    pending: list[str] = field(default_factory=list)


_Index = QModelIndex | QPersistentModelIndex


class ChatModel(QAbstractListModel):
    """A list model of :class:`ChatItem` values with lookups by message id."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._rows: list[_Row] = []
        self._index: dict[str, int] = {}
        self._revisions = itertools.count(1)

    # ---- Qt model interface

    def rowCount(self, parent: _Index = QModelIndex()) -> int:
        """Number of messages (0 under any valid parent: this is a flat list)."""
        return 0 if parent.isValid() else len(self._rows)

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        """Data for one message; see :class:`ItemRole`."""
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        row = self._rows[index.row()]
        item = row.item
        if role in (Qt.ItemDataRole.DisplayRole, ItemRole.TEXT):
            return item.text + "".join(row.pending)
        if role == ItemRole.ITEM:
            return self._materialized(index.row())
        if role == ItemRole.MESSAGE_ID:
            return item.message_id
        if role == ItemRole.CHAT_ROLE:
            return item.role.value
        if role == ItemRole.STATUS:
            return item.status.value
        if role == ItemRole.ERROR:
            return item.error
        if role == ItemRole.TEXT_REVISION:
            return row.text_rev
        if role == ItemRole.META_REVISION:
            return row.meta_rev
        return None

    def roleNames(self) -> dict[int, QByteArray]:
        """Role names (for QML or debugging)."""
        names = dict(super().roleNames())
        for role in ItemRole:
            names[int(role)] = QByteArray(role.name.lower().encode())
        return names

    # ---- Public API

    def items(self) -> list[ChatItem]:
        """All items, in order (pending deltas included)."""
        return [self._materialized(r) for r in range(len(self._rows))]

    def item(self, message_id: str) -> ChatItem | None:
        """The item with this id (pending deltas included), or None."""
        row = self._index.get(message_id)
        return None if row is None else self._materialized(row)

    def item_at(self, row: int) -> ChatItem:
        """The item in a row (pending deltas *not* included: the view's rendered state)."""
        return self._rows[row].item

    def row_of(self, message_id: str) -> int:
        """The row of a message, or -1."""
        return self._index.get(message_id, -1)

    def revisions(self, row: int) -> tuple[int, int]:
        """(text revision, meta revision) of a row: unique in this model, never reused."""
        r = self._rows[row]
        return r.text_rev, r.meta_rev

    def set_items(self, items: Iterable[ChatItem]) -> None:
        """Replace every item.

        Raises:
            ValueError: If two items share a message id.
        """
        new_items = list(items)
        index: dict[str, int] = {}
        for i, item in enumerate(new_items):
            if item.message_id in index:
                raise ValueError(f"duplicate message id {item.message_id!r}")
            index[item.message_id] = i
        self.beginResetModel()
        self._rows = [self._new_row(item) for item in new_items]
        self._index = index
        self.endResetModel()

    def append(self, item: ChatItem) -> None:
        """Add an item at the end.

        Raises:
            ValueError: If an item with this id is already present.
        """
        if item.message_id in self._index:
            raise ValueError(f"duplicate message id {item.message_id!r}")
        row = len(self._rows)
        self.beginInsertRows(QModelIndex(), row, row)
        self._rows.append(self._new_row(item))
        self._index[item.message_id] = row
        self.endInsertRows()

    def remove(self, message_id: str) -> bool:
        """Remove an item; returns False if there was none."""
        row = self._index.get(message_id)
        if row is None:
            return False
        self.beginRemoveRows(QModelIndex(), row, row)
        del self._rows[row]
        self._index = {r.item.message_id: i for i, r in enumerate(self._rows)}
        self.endRemoveRows()
        return True

    def clear(self) -> None:
        """Remove every item."""
        self.set_items([])

    def append_text(self, message_id: str, delta: str) -> bool:
        """Buffer streamed text for a message (O(1), no signal; see :meth:`take_pending`).

        Returns:
            False if there is no such message.
        """
        row = self._index.get(message_id)
        if row is None:
            return False
        if delta:
            self._rows[row].pending.append(delta)
        return True

    def take_pending(self, message_id: str) -> str:
        """Apply the buffered deltas of a message and return them as one string.

        Emits ``dataChanged`` for the text roles if anything was pending.
        """
        row = self._index.get(message_id)
        if row is None:
            return ""
        r = self._rows[row]
        if not r.pending:
            return ""
        delta = "".join(r.pending)
        r.pending.clear()
        r.item = replace(r.item, text=r.item.text + delta)
        r.text_rev = next(self._revisions)
        idx = self.index(row)
        self.dataChanged.emit(idx, idx, _TEXT_ROLES)
        return delta

    def update(self, message_id: str, **changes: Any) -> ChatItem | None:
        """Replace fields of an item (``text``, ``status``, ``error``, ``footer``…).

        Pending deltas are applied first. Returns the new item, or None if there is none.

        Raises:
            ValueError: For an unknown field or value, or an attempt to change the id.
        """
        row = self._index.get(message_id)
        if row is None:
            return None
        if "message_id" in changes and changes["message_id"] != message_id:
            raise ValueError("a message id cannot change")
        unknown = set(changes) - set(ChatItem.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown chat item field(s): {', '.join(sorted(unknown))}")
        self.take_pending(message_id)
        r = self._rows[row]
        r.item = replace(r.item, **changes)
        text_changed = bool(_TEXT_FIELDS & set(changes))
        meta_changed = bool(set(changes) - _TEXT_FIELDS)
        roles: list[int] = []
        if text_changed:
            r.text_rev = next(self._revisions)
            roles += _TEXT_ROLES
        if meta_changed:
            r.meta_rev = next(self._revisions)
            roles += _META_ROLES
        if roles:
            idx = self.index(row)
            self.dataChanged.emit(idx, idx, sorted(set(roles)))
        return r.item

    # ---- internals

    def _new_row(self, item: ChatItem) -> _Row:
        return _Row(item, next(self._revisions), next(self._revisions))

    def _materialized(self, row: int) -> ChatItem:
        r = self._rows[row]
        if r.pending:
            return replace(r.item, text=r.item.text + "".join(r.pending))
        return r.item
