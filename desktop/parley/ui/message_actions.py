"""Window-level actions on messages, added to the chat view's own context menu.

The chat view (``ui/chat/view.py``, another module's territory) offers Copy actions. The
window needs more: "Edit and resend" on the person's messages, "Regenerate" and "Retry" on
answers, and the other versions of a message (branches made by edits and regenerations).
This hook adds them without changing the view: an event filter on the view's viewport takes
the context-menu event, asks the view for its menu (``build_context_menu``), appends the
window's actions and shows it. The message under the pointer is found with the view's public
``message_rect`` (a binary search over rows, which are laid out top to bottom).

:class:`BranchBar` is the same information in the window's header: ``Answer version ‹ 2/3 ›``
for the newest message on the branch that has other versions.

It imports no chat-view code at run time (the window builds the branch bar before its first
paint, when the view's Markdown engine is not loaded yet).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from PySide6.QtCore import QEvent, QObject, QPointF, Qt, Signal
from PySide6.QtGui import QContextMenuEvent
from PySide6.QtWidgets import QHBoxLayout, QLabel, QMenu, QToolButton, QWidget

from parley.ui.chat.model import ChatRole

if TYPE_CHECKING:
    from parley.ui.chat.view import ChatView


@dataclass(frozen=True)
class Versions:
    """The alternatives of one message: sibling ids (oldest first) and which one is shown."""

    ids: tuple[str, ...]
    current: int
    """Index into ``ids`` of the message on the current branch."""

    @property
    def label(self) -> str:
        """``‹ 2/3 ›``-style position."""
        return f"{self.current + 1}/{len(self.ids)}"


class BranchBar(QWidget):
    """``Version ‹ 2/3 ›`` for the newest message on this branch that has other versions."""

    # ---- Signals
    sig_version_requested = Signal(str)
    """Switch to this sibling message (its id)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.label = QLabel()
        self.prev_button = QToolButton()
        self.prev_button.setText("‹")
        self.prev_button.setAccessibleName("Previous version")
        self.prev_button.setToolTip("Previous version")
        self.prev_button.setAutoRaise(True)
        self.next_button = QToolButton()
        self.next_button.setText("›")
        self.next_button.setAccessibleName("Next version")
        self.next_button.setToolTip("Next version")
        self.next_button.setAutoRaise(True)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addWidget(self.label)
        layout.addWidget(self.prev_button)
        layout.addWidget(self.next_button)
        self._versions: Versions | None = None
        self.prev_button.clicked.connect(lambda: self._step(-1))
        self.next_button.clicked.connect(lambda: self._step(+1))
        self.setVisible(False)

    def set_versions(self, versions: Versions | None, what: str = "") -> None:
        """Show ``versions`` (hide the bar for None or a single version)."""
        self._versions = versions
        if versions is None or len(versions.ids) < 2:
            self.setVisible(False)
            return
        self.label.setText(f"{what} version {versions.label}".strip())
        self.prev_button.setEnabled(versions.current > 0)
        self.next_button.setEnabled(versions.current < len(versions.ids) - 1)
        self.setVisible(True)

    def text(self) -> str:
        """The label (for tests)."""
        return self.label.text() if self.isVisible() else ""

    def _step(self, delta: int) -> None:
        v = self._versions
        if v is None:
            return
        target = v.current + delta
        if 0 <= target < len(v.ids):
            self.sig_version_requested.emit(v.ids[target])


class MessageActions(QObject):
    """Adds the window's message actions to the chat view's context menu.

    Args:
        view: The chat view.
        versions: Looks up the alternatives of a message (None when it has none).
        can_act: Whether actions that start a turn are allowed now (no turn running).
    """

    # ---- Signals
    sig_edit_requested = Signal(str)
    """"Edit and resend" on a message of the person (message id)."""
    sig_regenerate_requested = Signal(str)
    """"Regenerate"/"Retry" on an answer (message id)."""
    sig_version_requested = Signal(str)
    """Show another version of a message (the sibling's id)."""

    def __init__(
        self,
        view: ChatView,
        *,
        versions: Callable[[str], Versions | None],
        can_act: Callable[[], bool],
    ) -> None:
        super().__init__(view)
        self._view = view
        self._versions = versions
        self._can_act = can_act
        view.canvas().viewport().installEventFilter(self)

    # ---- Public API
    def message_at(self, pos: QPointF) -> str | None:
        """Id of the message under a viewport position, or None."""
        model = self._view.model()
        lo, hi = 0, model.rowCount() - 1
        canvas = self._view.canvas()
        while lo <= hi:
            mid = (lo + hi) // 2
            mid_id = model.item_at(mid).message_id
            rect = canvas.message_rect(mid_id)
            if rect is None:
                return None
            if pos.y() < rect.top():
                hi = mid - 1
            elif pos.y() >= rect.bottom():
                lo = mid + 1
            else:
                return mid_id
        return None

    def menu_for(self, pos: QPointF) -> QMenu | None:
        """The full context menu for a viewport position (None over empty space)."""
        message_id = self.message_at(pos)
        menu = self._view.canvas().build_context_menu(pos)
        if message_id is None:
            return menu
        if menu is None:
            menu = QMenu(self._view)
        self.add_actions(menu, message_id)
        return menu

    def add_actions(self, menu: QMenu, message_id: str) -> None:
        """Append the window's actions for ``message_id`` to ``menu``."""
        item = self._view.item(message_id)
        if item is None:
            return
        menu.addSeparator()
        allowed = self._can_act()
        if item.role == ChatRole.USER:
            edit = menu.addAction("Edit and resend…")
            edit.setEnabled(allowed)
            edit.triggered.connect(lambda: self.sig_edit_requested.emit(message_id))
        else:
            label = "Retry" if item.error else "Regenerate"
            regen = menu.addAction(label)
            regen.setEnabled(allowed)
            regen.triggered.connect(lambda: self.sig_regenerate_requested.emit(message_id))
        versions = self._versions(message_id)
        if versions is not None and len(versions.ids) > 1:
            sub = menu.addMenu(f"Versions ({versions.label})")
            sub.setEnabled(allowed)
            for i, sibling in enumerate(versions.ids):
                act = sub.addAction(
                    f"Version {i + 1}" + ("  (shown)" if i == versions.current else "")
                )
                act.setEnabled(i != versions.current)
                act.triggered.connect(
                    lambda _c=False, s=sibling: self.sig_version_requested.emit(s)
                )

    # ---- Qt
    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        """Replace the view's context menu with the extended one."""
        if event.type() == QEvent.Type.ContextMenu and isinstance(event, QContextMenuEvent):
            menu = self.menu_for(QPointF(event.pos()))
            if menu is not None:
                menu.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
                menu.popup(event.globalPos())
            return True
        return False
