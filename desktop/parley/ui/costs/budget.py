"""Budgets in the window: a notice from 80 %, a question at 100 % (once a day).

The decision is the core's (:class:`~parley.core.budget.Budget`, read in a worker thread):

- after each turn (and at start, and when the limits change) the spending is read; from
  80 % of a limit the notice bar says so, once per day and level;
- before a turn starts (:meth:`BudgetGuard.gate`, called by
  :class:`~parley.ui.turns.TurnRequests`), when a limit is reached and today's confirmation
  is missing, a non-modal question says what has been spent. "Send anyway" stores today's
  confirmation (a ``ChatSession`` operation on the database's writer) and sends; "Don't
  send" sends nothing and the draft stays in the composer, untouched. Either way nothing is
  asked again for that turn, and after "Send anyway" nothing is asked again that day.

With no limit set the gate returns at once and costs nothing. The core checks again when
the turn starts (another process may have spent meanwhile): its refusal puts the draft
back and the next attempt asks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import QMessageBox, QPushButton, QWidget

from parley.core.errors import ParleyError

if TYPE_CHECKING:
    from parley.core.budget import Budget, BudgetStatus
    from parley.core.chat import ChatSession
    from parley.core.settings import SettingsStore
    from parley.ui.notices import NoticeBar
    from parley.ui.tasks import TaskSet

log = logging.getLogger(__name__)


class BudgetGuard(QObject):
    """Budget notices and the confirmation before sending over a limit.

    Args:
        chat: Stores the day's confirmation (on the database's writer).
        budget: Spending against the limits.
        settings: The limits in force (read at call time).
        notice: Where the 80 % notice goes.
        parent: The window (the question is a child of it).
        tasks: Where the reads run.
    """

    # ---- Signals
    sig_status_changed = Signal(object)
    """Spending was read: the :class:`~parley.core.budget.BudgetStatus`."""
    sig_question_shown = Signal(object)
    """The over-budget question is open: the ``QMessageBox`` (tests answer it)."""

    def __init__(
        self,
        *,
        chat: ChatSession,
        budget: Budget,
        settings: SettingsStore,
        notice: NoticeBar,
        parent: QWidget,
        tasks: TaskSet,
    ) -> None:
        super().__init__(parent)
        self._chat = chat
        self._budget = budget
        self._settings = settings
        self._notice = notice
        self._parent = parent
        self._tasks = tasks
        self._pending = False
        self._told: set[tuple[str, str | None, str]] = set()
        self._generation = 0
        self.status: BudgetStatus | None = None
        """Spending as last read (None: not read yet)."""
        self.question: QMessageBox | None = None
        """The over-budget question while it is open."""
        self.closing = False
        """Set at shutdown: nothing new is asked or read."""

    # ---- Public API
    def enabled(self) -> bool:
        """Whether a daily or monthly limit is set."""
        b = self._settings.current.budget
        return bool(b.daily_usd or b.monthly_usd)

    def gate(self, proceed: Callable[[], object]) -> bool:
        """Before a turn: False to go ahead now; True when held (``proceed`` may come later).

        With a limit set, spending is read first (a worker thread); over a limit without
        today's confirmation the person is asked, and ``proceed`` runs only if they agree.
        While that is under way a second request is ignored.
        """
        if not self.enabled() or self.closing:
            return False
        if not self._pending:
            self._pending = True
            self._tasks.spawn(self._check(proceed), name="budget-check")
        return True

    def refresh(self) -> asyncio.Task[None] | None:
        """Read the spending again (after a turn, at start, when the limits change)."""
        if self.closing:
            return None
        self._generation += 1
        return self._tasks.spawn(self._refresh(self._generation), name="budget-status")

    # ---- internals
    async def _read(self) -> BudgetStatus | None:
        try:
            return await asyncio.to_thread(self._budget.status)
        except ParleyError as exc:  # the database is busy: the core checks again anyway
            log.warning("could not read the budget: %s", exc.user_message)
            return None

    async def _refresh(self, generation: int) -> None:
        status = await self._read()
        if status is None or generation != self._generation or self.closing:
            return
        self.status = status
        self.sig_status_changed.emit(status)
        self._tell(status)

    def _tell(self, status: BudgetStatus) -> None:
        """The notice from 80 %: once per day, period and level."""
        if status.level not in ("warn", "confirm") or not status.message:
            return
        from parley.core.store.ledger import local_day

        key = (local_day(), status.period, status.level)
        if key in self._told:
            return
        self._told.add(key)
        text = status.message
        if status.level == "confirm":
            text += " Sending asks you first (once today)."
        self._notice.show_notice(text, kind="warning", timeout_s=15.0, tag="budget")

    async def _check(self, proceed: Callable[[], object]) -> None:
        try:
            status = await self._read()
            if self.closing:
                return
            if status is not None:
                self.status = status
                self.sig_status_changed.emit(status)
            if status is None or not status.must_confirm:
                self._pending = False
                proceed()
                return
            if not await self._ask(status):
                self._notice.show_notice(
                    "Not sent: your budget is reached. Your message is still in the box.",
                    kind="info",
                    tag="budget",
                )
                return
            try:
                confirmed = await self._chat.confirm_budget()
            except ParleyError as exc:
                self._notice.show_notice(
                    f"Could not note your choice: {exc.user_message}", kind="error"
                )
                return
            if confirmed is not None:
                self.status = confirmed
                self.sig_status_changed.emit(confirmed)
            self._pending = False
            proceed()
        finally:
            self._pending = False

    async def _ask(self, status: BudgetStatus) -> bool:
        """The non-modal question (``open()``, never ``exec()``); True: send anyway."""
        box = QMessageBox(self._parent)
        box.setIcon(QMessageBox.Icon.Warning)
        box.setWindowTitle("Budget reached")
        box.setTextFormat(Qt.TextFormat.PlainText)
        box.setText(status.message or "Your budget is reached.")
        box.setInformativeText(
            "Send anyway? Parley will not ask again today. Your limits are in Settings ▸ Spending."
        )
        send: QPushButton = box.addButton("Send anyway", QMessageBox.ButtonRole.AcceptRole)
        keep = box.addButton("Don't send", QMessageBox.ButtonRole.RejectRole)
        box.setDefaultButton(keep)
        box.setEscapeButton(keep)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        answer: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

        def done(_result: int) -> None:
            if not answer.done():
                answer.set_result(box.clickedButton() is send)

        box.finished.connect(done)
        self.question = box
        box.open()
        self.sig_question_shown.emit(box)
        try:
            return await answer
        finally:
            self.question = None
            if not answer.done():  # cancelled (the window is closing): do not leave it behind
                with contextlib.suppress(RuntimeError):  # already deleted with the window
                    box.close()
