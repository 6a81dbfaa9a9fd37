"""Budgets: a daily and a monthly spending limit, off unless set (issue 13).

:func:`evaluate` is the one decision, used by the window and the CLI alike: below 80 % of
a limit sending is fine; from 80 % the person gets a notice; at 100 % sending needs a
confirmation, asked once per day (the confirmation is kept in the database, so a restart
does not ask again). The CLI cannot ask: it refuses unless ``--over-budget`` is given.

Spending is the known cost in the ledger; requests whose price is unknown count as $0 here
(the cost panel says how many there are).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from parley.core.costs import format_usd
from parley.core.errors import OverBudget

if TYPE_CHECKING:
    from parley.core.settings import BudgetSettings, SettingsStore
    from parley.core.store.ledger import Ledger

WARN_FRACTION = 0.8
"""Share of a limit at which the person is told."""

Level = Literal["off", "ok", "warn", "confirm", "confirmed"]


@dataclass(frozen=True)
class BudgetStatus:
    """Where spending stands against the limits.

    Attributes:
        level: ``off`` (no limit set), ``ok``, ``warn`` (80 % or more of a limit),
            ``confirm`` (a limit is reached and today's confirmation is missing) or
            ``confirmed`` (a limit is reached; the person chose to go on today).
        spent_today: Known cost today (local day).
        spent_month: Known cost this calendar month.
        daily_usd: The daily limit, if set.
        monthly_usd: The monthly limit, if set.
        period: The limit nearest to (or furthest over) its end: ``day`` or ``month``.
        message: One line for a notice or a confirmation; None when there is nothing to say.
    """

    level: Level
    spent_today: float
    spent_month: float
    daily_usd: float | None = None
    monthly_usd: float | None = None
    period: Literal["day", "month"] | None = None
    message: str | None = None

    @property
    def must_confirm(self) -> bool:
        """Whether sending now needs the person's confirmation."""
        return self.level == "confirm"

    @property
    def over(self) -> bool:
        """Whether a limit is reached (confirmed or not)."""
        return self.level in ("confirm", "confirmed")

    def error(self, hint: str = "") -> OverBudget:
        """The error for sending without the confirmation (``hint`` says how to confirm)."""
        return OverBudget(f"{self.message}{' ' + hint if hint else ''}")


def evaluate(
    budget: BudgetSettings, spent_today: float, spent_month: float, *, confirmed_today: bool
) -> BudgetStatus:
    """The budget decision for spending so far (pure: the ledger and the clock are inputs)."""
    shares: list[tuple[float, Literal["day", "month"], float, float]] = []
    if budget.daily_usd:
        shares.append((spent_today / budget.daily_usd, "day", spent_today, budget.daily_usd))
    if budget.monthly_usd:
        shares.append((spent_month / budget.monthly_usd, "month", spent_month, budget.monthly_usd))
    base = {
        "spent_today": spent_today,
        "spent_month": spent_month,
        "daily_usd": budget.daily_usd,
        "monthly_usd": budget.monthly_usd,
    }
    if not shares:
        return BudgetStatus("off", **base)  # type: ignore[arg-type]
    share, period, spent, limit = max(shares, key=lambda s: s[0])
    which = "daily" if period == "day" else "monthly"
    when = "today" if period == "day" else "this month"
    if share >= 1.0:
        message = (
            f"You have spent {format_usd(spent)} {when}, which reaches your "
            f"{format_usd(limit)} {which} budget."
        )
        level: Level = "confirmed" if confirmed_today else "confirm"
    elif share >= WARN_FRACTION:
        message = (
            f"You have spent {format_usd(spent)} {when}: {share:.0%} of your "
            f"{format_usd(limit)} {which} budget."
        )
        level = "warn"
    else:
        message, level = None, "ok"
    return BudgetStatus(level, period=period, message=message, **base)  # type: ignore[arg-type]


class Budget:
    """Budget checks against the ledger and the settings in force.

    Args:
        ledger: Where spending is read and confirmations are kept.
        settings: The settings (read at call time: a change applies at once).
    """

    def __init__(self, ledger: Ledger, settings: SettingsStore) -> None:
        self.ledger = ledger
        self.settings = settings

    def status(self, now: float | None = None) -> BudgetStatus:
        """Spending against the limits now (two small roll-up queries; skipped when off)."""
        from parley.core.store.ledger import local_day

        budget = self.settings.current.budget
        if not budget.daily_usd and not budget.monthly_usd:
            return BudgetStatus("off", 0.0, 0.0)
        today = self.ledger.today(now).cost_usd
        month = self.ledger.month(now).cost_usd
        confirmed = self.ledger.budget_confirmed(local_day(now))
        return evaluate(budget, today, month, confirmed_today=confirmed)

    def confirm(self, now: float | None = None) -> None:
        """The person chose to keep sending over the budget today: do not ask again today."""
        from parley.core.store.ledger import local_day

        status = self.status(now)
        self.ledger.confirm_budget(local_day(now), status.spent_today)
