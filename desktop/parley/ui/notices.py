"""A slim, non-modal bar above the composer for transient news.

Used for: "Retrying in 3 s…" countdowns while the provider rate-limits, the Undo offer after
deleting a chat, refused attachments and "folder added" confirmations. It never steals focus
and never blocks; each message may carry one action button (Undo) and disappears by itself.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Literal

from PySide6.QtCore import QSize, QTimer, Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QToolButton, QWidget

from parley.core.display import safe_text
from parley.ui.icons import icon
from parley.ui.plain import plain_label

NoticeKind = Literal["info", "warning", "error"]


class NoticeBar(QFrame):
    """Shows one notice at a time: text, an optional action, a close button."""

    # ---- Signals
    sig_action_triggered = Signal(str)
    """The notice's action button was clicked (the action's label)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("noticeBar")
        self.setProperty("kind", "info")
        # Notices quote file names and server messages: plain text, never guessed to be HTML.
        self.label = plain_label(QLabel())
        self.label.setWordWrap(True)
        self.label.setObjectName("noticeText")
        self.action_button = QPushButton()
        self.action_button.setVisible(False)
        self.close_button = QToolButton()
        self.close_button.setIcon(icon("close", "text_muted"))
        self.close_button.setIconSize(QSize(14, 14))
        self.close_button.setToolTip("Dismiss")
        self.close_button.setAccessibleName("Dismiss")
        self.close_button.setAutoRaise(True)
        layout = QHBoxLayout(self)
        m = self.fontMetrics().height() // 3
        layout.setContentsMargins(m * 2, m, m, m)
        layout.addWidget(self.label, 1)
        layout.addWidget(self.action_button)
        layout.addWidget(self.close_button)
        self.setVisible(False)

        self._action: Callable[[], object] | None = None
        self._hide_timer = QTimer(self)
        self._hide_timer.setSingleShot(True)
        self._hide_timer.timeout.connect(self.dismiss)
        self._tick = QTimer(self)
        self._tick.setInterval(250)
        self._tick.timeout.connect(self._update_countdown)
        self._countdown_end = 0.0
        self._countdown_fmt = ""
        self.tag = ""
        """What the current notice is about (``retry``, ``undo``, ``attach``...)."""

        self.action_button.clicked.connect(self._run_action)
        self.close_button.clicked.connect(self.dismiss)

    # ---- Public API
    def show_notice(
        self,
        text: str,
        *,
        kind: NoticeKind = "info",
        action: tuple[str, Callable[[], object]] | None = None,
        timeout_s: float | None = 8.0,
        tag: str = "",
    ) -> None:
        """Show ``text`` (replacing any notice), with an optional ``(label, callback)``."""
        self._tick.stop()
        self.tag = tag
        self.label.setText(safe_text(text))
        self._set_kind(kind)
        if action is not None:
            self.action_button.setText(action[0])
            self._action = action[1]
            self.action_button.setVisible(True)
        else:
            self._action = None
            self.action_button.setVisible(False)
        self.setVisible(True)
        if timeout_s:
            self._hide_timer.start(int(timeout_s * 1000))
        else:
            self._hide_timer.stop()

    def show_countdown(self, fmt: str, seconds: float, *, tag: str = "retry") -> None:
        """A live countdown; ``fmt`` holds ``{s}`` (seconds left): "Retrying in {s} s…"."""
        self._countdown_fmt = fmt
        self._countdown_end = time.monotonic() + max(0.0, seconds)
        self.show_notice(
            fmt.format(s=math.ceil(max(0.0, seconds))), kind="warning", tag=tag, timeout_s=None
        )
        self._tick.start()

    def dismiss(self, tag: str | None = None) -> None:
        """Hide the notice (only if it is about ``tag``, when given)."""
        if tag is not None and tag != self.tag:
            return
        self._tick.stop()
        self._hide_timer.stop()
        self._action = None
        self.tag = ""
        self.setVisible(False)

    def text(self) -> str:
        """The text shown now ("" when hidden)."""
        return self.label.text() if self.isVisible() else ""

    # ---- internals
    def _set_kind(self, kind: NoticeKind) -> None:
        self.setProperty("kind", kind)
        self.style().unpolish(self)
        self.style().polish(self)

    def _update_countdown(self) -> None:
        left = self._countdown_end - time.monotonic()
        if left <= 0:
            self._tick.stop()
            self.label.setText(self._countdown_fmt.format(s=0))
            return
        self.label.setText(self._countdown_fmt.format(s=math.ceil(left)))

    def _run_action(self) -> None:
        action = self._action
        label = self.action_button.text()
        self.dismiss()
        if action is not None:
            action()
        self.sig_action_triggered.emit(label)
