"""One place where unexpected errors end up: logged, shown without blocking, app keeps running.

:class:`ErrorPresenter` installs ``sys.excepthook`` (qasync's ``asyncSlot`` forwards slot
exceptions there) and the asyncio loop's exception handler (failed background tasks, see
:mod:`parley.ui.tasks`). Each error is logged with its traceback and shown in a non-modal
:class:`ErrorDialog` with a "Copy details" button. It never exits: a single HTTP 429 must not
kill the app (the qutebrowser crash dialog is the anti-pattern, STYLE.md "do NOT copy").

Errors raised before the window exists are held and shown once it does (qutebrowser's
``GlobalMessageBridge.flush()`` pattern). A burst of the same error does not stack dozens of
dialogs: the open one counts the repeats.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QStyle,
    QVBoxLayout,
    QWidget,
)

from parley.core.errors import ParleyError

log = logging.getLogger("parley.ui")


@dataclass(frozen=True)
class ErrorReport:
    """What is shown for one error."""

    summary: str
    """One line for people (a ParleyError's user_message, or the exception type and text)."""
    details: str
    """The traceback and context, for "Copy details"."""


def report_for(exc: BaseException, context: str = "") -> ErrorReport:
    """Describe ``exc`` for a person: one summary line and the copyable details."""
    if isinstance(exc, ParleyError):
        summary = exc.user_message
    else:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        name = type(exc).__name__
        summary = (
            f"Something went wrong: {name}: {text}" if text else f"Something went wrong: {name}"
        )
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    details = f"{context}\n\n{tb}".strip() if context else tb.strip()
    return ErrorReport(summary=summary, details=details)


class ErrorDialog(QDialog):
    """A non-modal error message with collapsible details and a "Copy details" button."""

    # ---- Signals
    sig_details_copied = Signal()
    """The details were put on the clipboard."""

    def __init__(self, report: ErrorReport, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.report = report
        self.repeats = 1
        self.setWindowTitle("Parley: something went wrong")
        self.setModal(False)
        self.setWindowModality(Qt.WindowModality.NonModal)
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)

        icon = QLabel()
        size = self.style().pixelMetric(QStyle.PixelMetric.PM_MessageBoxIconSize)
        icon.setPixmap(
            self.style().standardIcon(QStyle.StandardPixmap.SP_MessageBoxWarning).pixmap(size)
        )
        icon.setAlignment(Qt.AlignmentFlag.AlignTop)
        self.message = QLabel(report.summary)
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.message.setObjectName("errorSummary")
        self.hint = QLabel("Parley keeps running. You can copy the details for a bug report.")
        self.hint.setWordWrap(True)
        self.hint.setEnabled(False)

        self.details = QPlainTextEdit(report.details)
        self.details.setReadOnly(True)
        self.details.setVisible(False)
        self.details.setMinimumHeight(self.fontMetrics().lineSpacing() * 10)

        buttons = QDialogButtonBox()
        self.toggle_button = QPushButton("Show details")
        self.copy_button = QPushButton("Copy details")
        close_button = buttons.addButton(QDialogButtonBox.StandardButton.Close)
        buttons.addButton(self.toggle_button, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.addButton(self.copy_button, QDialogButtonBox.ButtonRole.ActionRole)
        close_button.clicked.connect(self.close)
        self.toggle_button.clicked.connect(self._toggle)
        self.copy_button.clicked.connect(self.copy_details)

        top = QHBoxLayout()
        top.addWidget(icon)
        text = QVBoxLayout()
        text.addWidget(self.message)
        text.addWidget(self.hint)
        top.addLayout(text, 1)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.details, 1)
        layout.addWidget(buttons)
        self.resize(self.fontMetrics().averageCharWidth() * 70, self.sizeHint().height())

    # ---- Public API
    def copy_details(self) -> None:
        """Put the summary and details on the clipboard."""
        QGuiApplication.clipboard().setText(f"{self.report.summary}\n\n{self.report.details}")
        self.copy_button.setText("Copied")
        self.sig_details_copied.emit()

    def count_repeat(self) -> None:
        """The same error happened again while this dialog is open."""
        self.repeats += 1
        self.message.setText(f"{self.report.summary} (×{self.repeats})")

    def _toggle(self) -> None:
        show = not self.details.isVisible()
        self.details.setVisible(show)
        self.toggle_button.setText("Hide details" if show else "Show details")
        self.adjustSize()


class ErrorPresenter(QObject):
    """Logs and shows unexpected errors; installed once per app by ``ui/app.py``.

    Args:
        window: The parent for error dialogs; may be set later with :meth:`set_window`.
        show_dialogs: False logs and emits only (benchmarks, headless runs).
    """

    # ---- Signals
    sig_error_shown = Signal(str)
    """An error was presented (its one-line summary)."""

    def __init__(self, window: QWidget | None = None, *, show_dialogs: bool = True) -> None:
        super().__init__()
        self._window = window
        self._show_dialogs = show_dialogs
        self._pending: list[ErrorReport] = []
        self._open: dict[str, ErrorDialog] = {}
        self._old_hook: Callable[..., Any] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.shown: list[ErrorReport] = []
        """Every report presented so far (newest last); the window's status uses it too."""

    # ---- Public API
    def install(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Become ``sys.excepthook`` and the loop's exception handler."""
        self._old_hook = sys.excepthook
        sys.excepthook = self._excepthook
        self._loop = loop or asyncio.get_event_loop()
        self._loop.set_exception_handler(self._loop_handler)

    def uninstall(self) -> None:
        """Restore the previous hooks."""
        if self._old_hook is not None:
            sys.excepthook = self._old_hook
            self._old_hook = None
        if self._loop is not None and not self._loop.is_closed():
            self._loop.set_exception_handler(None)
        self._loop = None

    def set_window(self, window: QWidget) -> None:
        """Parent future dialogs on ``window`` and show what was held back."""
        self._window = window
        pending, self._pending = self._pending, []
        for report in pending:
            self._present(report)

    def show_exception(self, exc: BaseException, *, context: str = "") -> None:
        """Log ``exc`` and show it (non-modal); never raises, never exits."""
        report = report_for(exc, context)
        if isinstance(exc, ParleyError):
            log.warning("%s%s", report.summary, f" ({context})" if context else "")
        else:
            log.error(
                "unexpected error%s", f" ({context})" if context else "", exc_info=_exc_info(exc)
            )
        self._present(report)

    def dialogs(self) -> list[ErrorDialog]:
        """Error dialogs currently open."""
        return list(self._open.values())

    # ---- hooks
    def _excepthook(
        self, etype: type[BaseException], value: BaseException, tb: TracebackType | None
    ) -> None:
        if issubclass(etype, KeyboardInterrupt):
            if self._old_hook is not None:
                self._old_hook(etype, value, tb)
            return
        if value.__traceback__ is None:
            value = value.with_traceback(tb)
        self.show_exception(value, context="uncaught exception")

    def _loop_handler(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        message = str(context.get("message") or "")
        if exc is None:
            log.warning("event loop: %s", message)
            return
        if isinstance(exc, asyncio.CancelledError):
            return
        self.show_exception(exc, context=message)

    # ---- presentation
    def _present(self, report: ErrorReport) -> None:
        self.shown.append(report)
        if self._window is None and self._show_dialogs:
            self._pending.append(report)
            return
        self.sig_error_shown.emit(report.summary)
        if not self._show_dialogs:
            return
        existing = self._open.get(report.summary)
        if existing is not None:
            existing.count_repeat()
            existing.raise_()
            return
        dialog = ErrorDialog(report, self._window)
        self._open[report.summary] = dialog
        dialog.destroyed.connect(lambda *_: self._open.pop(report.summary, None))
        dialog.finished.connect(lambda *_: self._open.pop(report.summary, None))
        dialog.show()


def _exc_info(exc: BaseException) -> tuple[type[BaseException], BaseException, Any]:
    return (type(exc), exc, exc.__traceback__)
