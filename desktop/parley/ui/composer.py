"""Where the person writes: Enter sends, Shift+Enter breaks the line, Esc stops.

The composer owns the draft and never loses it: the window clears it only once the core has
saved the question (``TurnStarted``), so a turn that fails before that leaves the text where
it was. It also shows the attachment chips, the "editing an earlier message" bar and the
per-conversation switches ("Use tools", "Use my documents").
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, QSize, Qt, Signal
from PySide6.QtGui import QKeyEvent, QResizeEvent
from PySide6.QtWidgets import (
    QCheckBox,
    QFrame,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from parley.core.display import format_size
from parley.ui.attachments import Attachment
from parley.ui.icons import icon
from parley.ui.plain import plain_label, shown, tooltip
from parley.ui.theme import SPACE, repolish


class ComposerEdit(QPlainTextEdit):
    """The text box: grows with its content up to a few lines, then scrolls."""

    # ---- Signals
    sig_submit_requested = Signal()
    """Enter was pressed (without Shift)."""
    sig_stop_requested = Signal()
    """Esc was pressed."""
    sig_edit_last_requested = Signal()
    """Up was pressed in an empty box (edit the last question)."""

    MAX_LINES = 8

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("composerEdit")
        self.setTabChangesFocus(True)
        self.setPlaceholderText("Ask anything… (Enter to send, Shift+Enter for a new line)")
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.document().documentLayout().documentSizeChanged.connect(self._fit)
        self._fit()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        """Enter sends, Shift+Enter (or Ctrl/Alt+Enter) inserts a line break."""
        key = event.key()
        mods = event.modifiers()
        if key in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            if mods & (
                Qt.KeyboardModifier.ShiftModifier
                | Qt.KeyboardModifier.ControlModifier
                | Qt.KeyboardModifier.AltModifier
            ):
                self.insertPlainText("\n")
            else:
                self.sig_submit_requested.emit()
            event.accept()
            return
        if key == Qt.Key.Key_Escape:
            self.sig_stop_requested.emit()
            event.accept()
            return
        if key == Qt.Key.Key_Up and not self.toPlainText():
            self.sig_edit_last_requested.emit()
            event.accept()
            return
        super().keyPressEvent(event)

    def sizeHint(self) -> QSize:
        """Height of the text, between one and :attr:`MAX_LINES` lines."""
        hint = super().sizeHint()
        return QSize(hint.width(), self._height_for_content())

    def _lines(self) -> int:
        # QPlainTextEdit's document size is in (wrapped) lines.
        return max(1, int(self.document().size().height()))

    def _height_for_content(self) -> int:
        fm = self.fontMetrics()
        lines = min(self.MAX_LINES, self._lines())
        margins = self.contentsMargins()
        frame = int(self.document().documentMargin() * 2) + margins.top() + margins.bottom()
        return lines * fm.lineSpacing() + frame + 2

    def _fit(self) -> None:
        # The scroll bar appears only once the text is taller than the box may grow.
        self.setVerticalScrollBarPolicy(
            Qt.ScrollBarPolicy.ScrollBarAsNeeded
            if self._lines() > self.MAX_LINES
            else Qt.ScrollBarPolicy.ScrollBarAlwaysOff
        )
        self.setFixedHeight(self._height_for_content())


class AttachmentChip(QFrame):
    """One attached file: its name and size, and a button to remove it."""

    # ---- Signals
    sig_remove_requested = Signal(str)
    """The remove button was clicked (the attachment's path)."""

    def __init__(self, attachment: Attachment, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("attachmentChip")
        self.attachment = attachment
        chip = f"📄 {shown(attachment.name)}  ·  {format_size(attachment.size)}"
        label = plain_label(QLabel(chip))
        label.setToolTip(tooltip(attachment.path))
        self.remove_button = QToolButton()
        self.remove_button.setObjectName("chipRemove")
        self.remove_button.setIcon(icon("close", "text_muted"))
        self.remove_button.setIconSize(QSize(14, 14))
        self.remove_button.setToolTip(tooltip(f"Remove {attachment.name}"))
        self.remove_button.setAccessibleName(f"Remove {shown(attachment.name)}")
        self.remove_button.clicked.connect(
            lambda: self.sig_remove_requested.emit(self.attachment.path)
        )
        layout = QHBoxLayout(self)
        m = self.fontMetrics().height() // 4
        layout.setContentsMargins(m * 3, m, m, m)
        layout.setSpacing(m)
        layout.addWidget(label)
        layout.addWidget(self.remove_button)


class Composer(QWidget):
    """The composer: chips, the edit bar, the text box, Send/Stop and the switches."""

    # ---- Signals
    sig_send_requested = Signal(str)
    """Send the text (a new question, or the edited one when editing)."""
    sig_stop_requested = Signal()
    """Stop the running turn (Esc or the Stop button)."""
    sig_regenerate_requested = Signal()
    """Answer the last question again."""
    sig_edit_last_requested = Signal()
    """Up in an empty box: edit the last question."""
    sig_edit_cancelled = Signal()
    """The person left edit mode without sending."""
    sig_attachments_changed = Signal()
    """An attachment was added or removed."""
    sig_options_changed = Signal(bool, bool)
    """The switches changed: (use tools, use my documents)."""
    sig_attach_requested = Signal()
    """The paperclip was clicked: choose files to attach."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._busy = False
        self._editing_id: int | None = None
        self._attachments: list[Attachment] = []

        # attachments
        self.chips = QWidget()
        self.chips_layout = QHBoxLayout(self.chips)
        self.chips_layout.setContentsMargins(0, 0, 0, 0)
        self.chips_layout.addStretch(1)
        self.chips.setVisible(False)

        # edit bar
        self.edit_bar = QWidget()
        self.edit_label = QLabel("Editing an earlier message: sending keeps the old version.")
        self.edit_label.setWordWrap(True)
        cancel_edit = QPushButton("Cancel edit")
        cancel_edit.clicked.connect(self.cancel_edit)
        eb = QHBoxLayout(self.edit_bar)
        eb.setContentsMargins(0, 0, 0, 0)
        eb.addWidget(self.edit_label, 1)
        eb.addWidget(cancel_edit)
        self.edit_bar.setVisible(False)

        # text + buttons inside a rounded frame
        self.edit = ComposerEdit()
        self.edit.setAccessibleName("Message")
        self.attach_button = _round_button("attach", "text_muted", "attachButton", "Attach")
        self.attach_button.setToolTip("Attach files (or drop them on the window)")
        self.send_button = _round_button("send", "on_accent", "sendButton", "Send")
        self.send_button.setToolTip("Send (Enter)")
        self.stop_button = _round_button("stop", "surface", "stopButton", "Stop")
        self.stop_button.setToolTip("Stop the answer (Esc); what arrived is kept")
        self.stop_button.setVisible(False)
        self.frame = frame = QFrame()
        frame.setObjectName("composerFrame")
        fl = QHBoxLayout(frame)
        fl.setContentsMargins(SPACE["s"], SPACE["s"], SPACE["s"], SPACE["s"])
        fl.setSpacing(SPACE["s"])
        bottom = Qt.AlignmentFlag.AlignBottom
        fl.addWidget(self.attach_button, 0, bottom)
        fl.addWidget(self.edit, 1, Qt.AlignmentFlag.AlignVCenter)
        fl.addWidget(self.send_button, 0, bottom)
        fl.addWidget(self.stop_button, 0, bottom)
        self.edit.installEventFilter(self)

        # switches and regenerate
        self.tools_switch = QCheckBox("Use tools")
        self.tools_switch.setToolTip("Let the model use local tools (calculator, your folders)")
        self.knowledge_switch = QCheckBox("Use my documents")
        self.knowledge_switch.setToolTip("Answer from the folders you added to Parley")
        self.regenerate_button = QPushButton("Regenerate")
        self.regenerate_button.setObjectName("regenerateButton")
        self.regenerate_button.setToolTip("Answer the last question again (Ctrl+R)")
        self.regenerate_button.setFlat(True)
        self.regenerate_button.setEnabled(False)
        row = QHBoxLayout()
        row.setContentsMargins(SPACE["xs"], 0, 0, 0)
        row.setSpacing(SPACE["s"])
        row.addWidget(self.tools_switch)
        row.addWidget(self.knowledge_switch)
        row.addStretch(1)
        row.addWidget(self.regenerate_button)
        self._row = row
        # Status widgets (the estimate) sit left of Regenerate while the line has room for
        # everything; in a narrow window they take a line of their own below it.
        self._status_row = QHBoxLayout()
        self._status_row.setContentsMargins(SPACE["xs"], 0, 0, 0)
        self._status_row.setSpacing(SPACE["s"])
        self._status_row.addStretch(1)
        self._status_widgets: list[QWidget] = []
        self._status_below = False

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(SPACE["xs"])
        layout.addWidget(self.chips)
        layout.addWidget(self.edit_bar)
        layout.addWidget(frame)
        layout.addLayout(row)
        layout.addLayout(self._status_row)

        self.edit.sig_submit_requested.connect(self.submit)
        self.edit.sig_stop_requested.connect(self._escape)
        self.edit.sig_edit_last_requested.connect(self.sig_edit_last_requested)
        self.send_button.clicked.connect(self.submit)
        self.attach_button.clicked.connect(self.sig_attach_requested)
        self.stop_button.clicked.connect(self.sig_stop_requested)
        self.regenerate_button.clicked.connect(self.sig_regenerate_requested)
        self.tools_switch.toggled.connect(self._options_toggled)
        self.knowledge_switch.toggled.connect(self._options_toggled)
        self.edit.textChanged.connect(self._update_buttons)
        self._update_buttons()

    # ---- Public API: text
    def text(self) -> str:
        """The draft."""
        return self.edit.toPlainText()

    def set_text(self, text: str) -> None:
        """Replace the draft (cursor at the end)."""
        self.edit.setPlainText(text)
        self.edit.moveCursor(self.edit.textCursor().MoveOperation.End)

    def clear(self) -> None:
        """Empty the draft and leave edit mode (the question was saved)."""
        self.edit.clear()
        self._set_editing(None)

    def submit(self) -> None:
        """Send the draft unless a turn is running or it is empty."""
        if self._busy or not self.text().strip():
            return
        self.sig_send_requested.emit(self.text())

    # ---- Public API: state
    def set_busy(self, busy: bool) -> None:
        """A turn is running: Send is disabled and Stop shown."""
        self._busy = busy
        self.stop_button.setVisible(busy)
        self.send_button.setVisible(not busy)
        self._update_buttons()

    def is_busy(self) -> bool:
        """Whether a turn is running."""
        return self._busy

    def set_can_regenerate(self, can: bool) -> None:
        """Whether there is an answer to regenerate."""
        self.regenerate_button.setEnabled(can and not self._busy)
        self.regenerate_button.setProperty("can", can)

    def set_options(self, use_tools: bool, use_knowledge: bool) -> None:
        """Show a conversation's switches (without emitting ``sig_options_changed``)."""
        for box, value in ((self.tools_switch, use_tools), (self.knowledge_switch, use_knowledge)):
            box.blockSignals(True)
            box.setChecked(value)
            box.blockSignals(False)

    def options(self) -> tuple[bool, bool]:
        """(use tools, use my documents)."""
        return self.tools_switch.isChecked(), self.knowledge_switch.isChecked()

    def add_status_widget(self, widget: QWidget) -> None:
        """Show ``widget`` in the row under the text box, left of Regenerate (the estimate).

        When the row cannot show it whole beside the switches (a narrow window), it goes on
        a line of its own below them, right-aligned; it comes back when there is room.
        """
        self._status_widgets.append(widget)
        if self._status_below:
            self._status_row.addWidget(widget)
        else:
            self._row.insertWidget(self._row.count() - 1, widget)
        self._fit_row()

    def status_below(self) -> bool:
        """Whether the status widgets are on their own line (the row is too narrow)."""
        return self._status_below

    def event(self, event: QEvent) -> bool:
        """A child's size hint or visibility changed (the estimate's text): refit the row."""
        if event.type() == QEvent.Type.LayoutRequest:
            self._fit_row()
        return super().event(event)

    def resizeEvent(self, event: QResizeEvent) -> None:
        """A new width: the status widgets go below the switches or come back beside them."""
        super().resizeEvent(event)
        self._fit_row()

    def _fit_row(self) -> None:
        if not self._status_widgets:
            return
        row = [self.tools_switch, self.knowledge_switch, self.regenerate_button]
        shown_widgets = [w for w in (*row, *self._status_widgets) if w.isVisibleTo(self)]
        m = self._row.contentsMargins()
        need = sum(w.sizeHint().width() for w in shown_widgets) + m.left() + m.right()
        need += self._row.spacing() * len(shown_widgets) + SPACE["m"]  # the gap (stretch)
        below = need > self.contentsRect().width()
        if below == self._status_below:
            return
        self._status_below = below
        for w in self._status_widgets:
            if below:
                self._row.removeWidget(w)
                self._status_row.addWidget(w)
            else:
                self._status_row.removeWidget(w)
                self._row.insertWidget(self._row.count() - 1, w)

    # ---- Public API: editing an earlier message
    def begin_edit(self, message_id: int, text: str) -> None:
        """Put an earlier question in the box; sending makes a new branch."""
        self._set_editing(message_id)
        self.set_text(text)
        self.edit.setFocus()

    def cancel_edit_mode(self) -> None:
        """Leave edit mode but keep the text."""
        self._set_editing(None)

    def editing_id(self) -> int | None:
        """The message being edited, or None."""
        return self._editing_id

    def cancel_edit(self) -> None:
        """Leave edit mode and empty the box."""
        if self._editing_id is None:
            return
        self._set_editing(None)
        self.edit.clear()
        self.sig_edit_cancelled.emit()

    # ---- Public API: attachments
    def add_attachment(self, attachment: Attachment) -> bool:
        """Attach a file (replacing one with the same path); False when already attached."""
        if any(a.path == attachment.path for a in self._attachments):
            return False
        self._attachments.append(attachment)
        chip = AttachmentChip(attachment)
        chip.sig_remove_requested.connect(self.remove_attachment)
        self.chips_layout.insertWidget(self.chips_layout.count() - 1, chip)
        self.chips.setVisible(True)
        self.sig_attachments_changed.emit()
        return True

    def remove_attachment(self, path: str) -> None:
        """Drop the attachment read from ``path``."""
        self._attachments = [a for a in self._attachments if a.path != path]
        for chip in self.chip_widgets():
            if chip.attachment.path == path:
                chip.setParent(None)
                chip.deleteLater()
        self.chips.setVisible(bool(self._attachments))
        self.sig_attachments_changed.emit()

    def attachments(self) -> list[Attachment]:
        """Files attached to the next message."""
        return list(self._attachments)

    def chip_widgets(self) -> list[AttachmentChip]:
        """The chips shown (for tests and screenshots)."""
        return [
            w
            for i in range(self.chips_layout.count())
            if (item := self.chips_layout.itemAt(i)) is not None
            and isinstance(w := item.widget(), AttachmentChip)
        ]

    def clear_attachments(self) -> None:
        """Remove every attachment (they went out with a question)."""
        for a in list(self._attachments):
            self.remove_attachment(a.path)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        """Ring the whole composer while its text box has the keyboard focus."""
        if watched is self.edit and event.type() in (QEvent.Type.FocusIn, QEvent.Type.FocusOut):
            self.frame.setProperty("focused", event.type() == QEvent.Type.FocusIn)
            repolish(self.frame)
        return False

    # ---- internals
    def _escape(self) -> None:
        if self._busy:
            self.sig_stop_requested.emit()
        elif self._editing_id is not None:
            self.cancel_edit()

    def _set_editing(self, message_id: int | None) -> None:
        self._editing_id = message_id
        self.edit_bar.setVisible(message_id is not None)
        name = "Send edit" if message_id is not None else "Send"
        self.send_button.setAccessibleName(name)
        self.send_button.setToolTip(f"{name} (Enter)")

    def _options_toggled(self) -> None:
        self.sig_options_changed.emit(*self.options())

    def _update_buttons(self) -> None:
        self.send_button.setEnabled(not self._busy and bool(self.text().strip()))
        self.regenerate_button.setEnabled(
            bool(self.regenerate_button.property("can")) and not self._busy
        )


def _round_button(name: str, role: str, object_name: str, accessible: str) -> QToolButton:
    """A round icon button of the composer (its name is what a screen reader says)."""
    button = QToolButton()
    button.setObjectName(object_name)
    button.setIcon(icon(name, role))
    button.setIconSize(QSize(18, 18))
    button.setFixedSize(32, 32)
    button.setAccessibleName(accessible)
    button.setFocusPolicy(Qt.FocusPolicy.TabFocus)
    button.setCursor(Qt.CursorShape.PointingHandCursor)
    return button
