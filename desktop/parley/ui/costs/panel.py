"""The cost panel: where the money went (a dock; Ctrl+Shift+C, or click the status strip's cost).

It shows this message (the answer in focus, else the last one), this conversation, today
and this month; the budgets when set; money saved by caching; a bar chart of the last 30
days; and, for a chosen period, the spend per model and per purpose. Unknown prices are
said ("unknown", or "$0.12 + 3 unknown"), never shown as $0, with a button that opens the
person's ``models.toml`` (created from a template naming the unpriced models when it does
not exist yet). The ledger can be exported as CSV.

The panel is a view: :func:`load_figures` reads everything in one worker-thread call (the
ledger's daily roll-up keeps that to a few milliseconds even for a year of requests) and
:meth:`CostPanel.show_figures` puts the result on screen. The same numbers as
``parley costs --json`` (both read :class:`~parley.core.store.ledger.Ledger`).
"""

from __future__ import annotations

import datetime as dt
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from parley.core.costs import format_usd
from parley.ui.costs.chart import SpendChart
from parley.ui.costs.format import money, tokens_line
from parley.ui.plain import plain_label, shown, tooltip
from parley.ui.theme import scale_font

if TYPE_CHECKING:
    from parley.core.budget import Budget, BudgetStatus
    from parley.core.store.ledger import Group, Ledger, Totals

Period = Literal["today", "month", "30days", "all"]

PERIODS: tuple[tuple[Period, str], ...] = (
    ("month", "This month"),
    ("today", "Today"),
    ("30days", "Last 30 days"),
    ("all", "All time"),
)
"""The periods the per-model and per-purpose tables (and the CSV export) can cover."""

PURPOSES = {"chat": "Chat answers", "tool_round": "Tool rounds", "embedding": "Embeddings"}
"""How the ledger's purposes are named on screen."""

CHART_DAYS = 30


def period_range(period: Period, now: float | None = None) -> tuple[str | None, str | None]:
    """``(since, until)`` local days of ``period`` (None: open-ended)."""
    from parley.core.store.ledger import local_day

    today = local_day(now)
    if period == "today":
        return today, today
    if period == "month":
        return today[:8] + "01", today
    if period == "30days":
        start = dt.date.fromisoformat(today) - dt.timedelta(days=CHART_DAYS - 1)
        return start.isoformat(), today
    return None, None


@dataclass(frozen=True)
class PanelFigures:
    """Everything the panel shows, read in one go (see :func:`load_figures`)."""

    period: Period
    since: str | None
    until: str | None
    message_id: int | None
    message: Totals | None
    conversation_id: int | None
    conversation: Totals | None
    today: Totals
    month: Totals
    period_totals: Totals
    by_model: list[Group]
    by_purpose: list[Group]
    daily: list[tuple[str, float, int]]
    saved_all: float
    budget: BudgetStatus | None = None
    read_ms: float = 0.0
    unknown_models: list[tuple[str, str]] = field(default_factory=list)
    """``(model, provider)`` of requests whose price is unknown in the period."""


def load_figures(
    ledger: Ledger,
    *,
    period: Period = "month",
    message_id: int | None = None,
    conversation_id: int | None = None,
    budget: Budget | None = None,
    now: float | None = None,
) -> PanelFigures:
    """Read the panel's figures (blocking: call it in a worker thread)."""
    t0 = time.perf_counter()
    since, until = period_range(period, now)
    by_model = ledger.breakdown("model", since, until)
    figures = PanelFigures(
        period=period,
        since=since,
        until=until,
        message_id=message_id,
        message=ledger.message(message_id) if message_id is not None else None,
        conversation_id=conversation_id,
        conversation=(
            ledger.conversation(conversation_id) if conversation_id is not None else None
        ),
        today=ledger.today(now),
        month=ledger.month(now),
        period_totals=ledger.totals(since, until),
        by_model=by_model,
        by_purpose=ledger.breakdown("purpose", since, until),
        daily=ledger.daily(CHART_DAYS, now),
        saved_all=ledger.totals().saved_usd,
        budget=budget.status(now) if budget is not None else None,
        unknown_models=[
            (g.key, g.provider or "")
            for g in by_model
            if g.totals.unknown and not g.totals.all_local
        ],
    )
    return _with_read_ms(figures, (time.perf_counter() - t0) * 1000)


def _with_read_ms(f: PanelFigures, ms: float) -> PanelFigures:
    from dataclasses import replace

    return replace(f, read_ms=ms)


def models_template(unknown: list[tuple[str, str]]) -> str:
    """A starting ``models.toml``: how it works, and a commented table per unpriced model."""
    lines = [
        "# Your own entries for Parley's model catalog: they add to and override the",
        "# built-in ones (context windows, prices). Prices are US dollars per 1 million",
        "# tokens, as the vendor's pricing page gives them. Restart Parley after editing.",
        "#",
        '# To price a model, remove the "# " in front of its lines and fill in the numbers.',
        "",
    ]
    for model, provider in unknown or [("my-model", "openai")]:
        lines += [
            f"# [models.{json.dumps(model)}]",
            f"# provider = {json.dumps(provider)}",
            "# price_input = 0.00",
            "# price_output = 0.00",
            "# context_window = 128000",
            "",
        ]
    return "\n".join(lines)


def ensure_models_file(path: Path, unknown: list[tuple[str, str]]) -> bool:
    """Create ``path`` from :func:`models_template` when it does not exist (True: created).

    An existing file is never changed. Blocking: call it in a worker thread.
    """
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".toml.tmp")
    tmp.write_text(models_template(unknown), encoding="utf-8")
    tmp.replace(path)
    return True


class FigureCard(QFrame):
    """One figure: a caption, the amount, and its tokens."""

    def __init__(self, caption: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("costCard")
        self.caption = QLabel(caption)
        self.caption.setObjectName("costCardCaption")
        self.caption.setEnabled(False)
        self.value = plain_label(QLabel("–"))
        self.value.setObjectName("costCardValue")
        scale_font(self.value, 1.35)
        self.detail = plain_label(QLabel())
        self.detail.setObjectName("costCardDetail")
        self.detail.setWordWrap(True)
        self.detail.setEnabled(False)
        layout = QVBoxLayout(self)
        m = self.fontMetrics().height() // 3
        layout.setContentsMargins(m * 2, m, m * 2, m)
        layout.setSpacing(0)
        layout.addWidget(self.caption)
        layout.addWidget(self.value)
        layout.addWidget(self.detail)

    def set_totals(self, totals: Totals | None, empty: str = "–") -> None:
        """Show some requests' cost and tokens (None: ``empty``)."""
        if totals is None:
            self.value.setText(empty)
            self.detail.setText("")
            return
        self.value.setText(money(totals))
        self.detail.setText(tokens_line(totals) if totals.requests else "no requests")


def _table(columns: list[str]) -> QTableWidget:
    t = QTableWidget(0, len(columns))
    t.setHorizontalHeaderLabels(columns)
    t.verticalHeader().setVisible(False)
    t.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    t.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
    t.setFocusPolicy(Qt.FocusPolicy.NoFocus)
    t.setAlternatingRowColors(True)
    t.setShowGrid(False)
    t.setWordWrap(False)
    header = t.horizontalHeader()
    header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
    for c in range(1, len(columns)):
        header.setSectionResizeMode(c, QHeaderView.ResizeMode.ResizeToContents)
    t.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    t.setSizeAdjustPolicy(QAbstractItemView.SizeAdjustPolicy.AdjustToContents)
    return t


def _cell(text: str, *, right: bool = False, tip: str = "") -> QTableWidgetItem:
    item = QTableWidgetItem(text)
    if right:
        item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
    if tip:
        item.setToolTip(tooltip(tip))
    return item


class CostPanel(QWidget):
    """The cost panel's widgets (its data comes from :func:`load_figures`)."""

    # ---- Signals
    sig_period_changed = Signal(str)
    """The person chose another period (a :data:`Period`)."""
    sig_export_requested = Signal()
    """Export CSV… was clicked."""
    sig_prices_requested = Signal()
    """The unknown-price button was clicked: open models.toml."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("costPanel")
        self.figures: PanelFigures | None = None
        """What is shown (None: not read yet)."""

        self.period = QComboBox()
        for value, label in PERIODS:
            self.period.addItem(label, value)
        self.period.setToolTip("The period of the tables below and of the CSV export")
        self.export_button = QPushButton("Export CSV…")
        self.export_button.setToolTip(
            "Save every request of the chosen period as a CSV file (one row per request)"
        )
        top = QHBoxLayout()
        top.addWidget(QLabel("Period:"))
        top.addWidget(self.period)
        top.addStretch(1)
        top.addWidget(self.export_button)

        self.message_card = FigureCard("This message")
        self.message_card.setToolTip("The answer in focus (else the last one), its tool rounds too")
        self.conversation_card = FigureCard("This conversation")
        self.today_card = FigureCard("Today")
        self.month_card = FigureCard("This month")
        cards = QGridLayout()
        cards.setSpacing(self.fontMetrics().height() // 3)
        top_aligned = Qt.AlignmentFlag.AlignTop
        cards.addWidget(self.message_card, 0, 0, top_aligned)
        cards.addWidget(self.conversation_card, 0, 1, top_aligned)
        cards.addWidget(self.today_card, 1, 0, top_aligned)
        cards.addWidget(self.month_card, 1, 1, top_aligned)
        cards.setColumnStretch(0, 1)
        cards.setColumnStretch(1, 1)

        self.budget_label = plain_label(QLabel())
        self.budget_label.setObjectName("budgetLine")
        self.budget_label.setWordWrap(True)
        self.saved_label = plain_label(QLabel())
        self.saved_label.setObjectName("savedLine")
        self.saved_label.setWordWrap(True)
        self.saved_label.setToolTip(
            "What caching saved: the provider's prompt cache (cached input is billed lower, "
            "net of the dearer cache writes) and Parley's own cache of answers (no request)"
        )

        self.chart_title = QLabel(f"Daily spend, last {CHART_DAYS} days")
        self.chart = SpendChart()

        self.model_title = QLabel()
        self.model_table = _table(["Model", "Requests", "Tokens in / out", "Cost"])
        self.purpose_title = QLabel()
        self.purpose_table = _table(["Purpose", "Requests", "Cost"])

        self.unknown_label = plain_label(QLabel())
        self.unknown_label.setObjectName("unknownPrices")
        self.unknown_label.setWordWrap(True)
        self.prices_button = QPushButton("Add prices in models.toml…")
        self.prices_button.setToolTip(
            "Open your models.toml (created from a template if it does not exist yet) to "
            "give these models a price; restart Parley after editing"
        )
        self.unknown_box = QWidget()
        ub = QVBoxLayout(self.unknown_box)
        ub.setContentsMargins(0, 0, 0, 0)
        ub.addWidget(self.unknown_label)
        ub.addWidget(self.prices_button, 0, Qt.AlignmentFlag.AlignLeft)
        self.unknown_box.setVisible(False)

        self.status_label = plain_label(QLabel())
        self.status_label.setObjectName("costPanelStatus")
        self.status_label.setWordWrap(True)
        self.status_label.setEnabled(False)

        body = QWidget()
        layout = QVBoxLayout(body)
        em = self.fontMetrics().height()
        layout.setContentsMargins(em // 2, em // 2, em // 2, em // 2)
        layout.setSpacing(em // 2)
        layout.addLayout(top)
        layout.addLayout(cards)
        layout.addWidget(self.budget_label)
        layout.addWidget(self.saved_label)
        layout.addWidget(self.chart_title)
        layout.addWidget(self.chart)
        layout.addWidget(self.model_title)
        layout.addWidget(self.model_table)
        layout.addWidget(self.unknown_box)
        layout.addWidget(self.purpose_title)
        layout.addWidget(self.purpose_table)
        layout.addWidget(self.status_label)
        layout.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setWidget(body)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(scroll)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Expanding)

        self.period.currentIndexChanged.connect(
            lambda _i: self.sig_period_changed.emit(self.current_period())
        )
        self.export_button.clicked.connect(self.sig_export_requested)
        self.prices_button.clicked.connect(self.sig_prices_requested)

    def minimumSizeHint(self) -> QSize:
        """At least 44 characters wide, wider when the figures need it (never clipped).

        A hint, not ``setMinimumWidth``: an explicit minimum would hide the content's own
        (the cards and tables grow with the amounts), and the panel would clip them.
        """
        hint = super().minimumSizeHint()
        return hint.expandedTo(QSize(self.fontMetrics().averageCharWidth() * 44, 0))

    # ---- Public API
    def current_period(self) -> Period:
        """The period chosen for the tables and the export."""
        value = self.period.currentData()
        return value if value in ("today", "month", "30days", "all") else "month"

    def set_status(self, text: str) -> None:
        """A line at the bottom (an export's result, a read that failed)."""
        self.status_label.setText(text)

    def show_figures(self, f: PanelFigures) -> None:
        """Put freshly read figures on screen."""
        self.figures = f
        self.message_card.set_totals(f.message, "no answer yet")
        self.conversation_card.set_totals(f.conversation, "no conversation yet")
        self.today_card.set_totals(f.today)
        self.month_card.set_totals(f.month)
        self._show_budget(f.budget)
        month_saved = f.month.saved_usd
        self.saved_label.setText(
            f"Saved by caching: {format_usd(month_saved)} this month, "
            f"{format_usd(f.saved_all)} in all"
            + (
                f" ({f.month.cache_hits:,} answers from Parley's cache)"
                if f.month.cache_hits
                else ""
            )
        )
        self.chart.set_days(f.daily)
        marked = any(u for _d, _c, u in f.daily)
        self.chart_title.setText(
            f"Daily spend, last {CHART_DAYS} days"
            + (" (○ marks days with requests of unknown price)" if marked else "")
        )
        label = dict(PERIODS)[f.period].lower()
        self.model_title.setText(f"Per model, {label}: {money(f.period_totals)}")
        self.purpose_title.setText(f"Per purpose, {label}")
        self._fill_models(f.by_model)
        self._fill_purposes(f.by_purpose)
        if f.unknown_models:
            names = ", ".join(shown(m) for m, _p in f.unknown_models[:6])
            more = len(f.unknown_models) - 6
            its = "its" if len(f.unknown_models) == 1 else "their"
            self.unknown_label.setText(
                f"No price is known for {names}{f' and {more} more' if more > 0 else ''}: "
                f"{its} cost is unknown, not $0."
            )
        self.unknown_box.setVisible(bool(f.unknown_models))

    # ---- internals
    def _show_budget(self, status: BudgetStatus | None) -> None:
        if status is None or status.level == "off":
            self.budget_label.setText("No budget set (Settings ▸ Spending).")
            self.budget_label.setProperty("level", "off")
            return
        parts = []
        if status.daily_usd:
            share = status.spent_today / status.daily_usd
            parts.append(
                f"{format_usd(status.spent_today)} of {format_usd(status.daily_usd)} today "
                f"({share:.0%})"
            )
        if status.monthly_usd:
            share = status.spent_month / status.monthly_usd
            parts.append(
                f"{format_usd(status.spent_month)} of {format_usd(status.monthly_usd)} this "
                f"month ({share:.0%})"
            )
        self.budget_label.setText("Budget: " + "; ".join(parts) + ".")
        self.budget_label.setProperty("level", status.level)

    def _fill_models(self, groups: list[Group]) -> None:
        t = self.model_table
        t.setRowCount(len(groups))
        for row, g in enumerate(groups):
            tot = g.totals
            name = shown(g.key)
            t.setItem(row, 0, _cell(name, tip=f"{g.key} ({g.provider})"))
            t.setItem(row, 1, _cell(f"{tot.requests:,}", right=True))
            t.setItem(row, 2, _cell(f"{tot.input_tokens:,} / {tot.output_tokens:,}", right=True))
            t.setItem(row, 3, _cell(money(tot), right=True))
        if not groups:
            t.setRowCount(1)
            t.setItem(0, 0, _cell("No requests in this period"))
            for c in range(1, t.columnCount()):
                t.setItem(0, c, _cell(""))
        _fit_height(t)

    def _fill_purposes(self, groups: list[Group]) -> None:
        t = self.purpose_table
        t.setRowCount(len(groups))
        for row, g in enumerate(groups):
            t.setItem(row, 0, _cell(PURPOSES.get(g.key, shown(g.key))))
            t.setItem(row, 1, _cell(f"{g.totals.requests:,}", right=True))
            t.setItem(row, 2, _cell(money(g.totals), right=True))
        if not groups:
            t.setRowCount(1)
            t.setItem(0, 0, _cell("No requests in this period"))
            for c in range(1, t.columnCount()):
                t.setItem(0, c, _cell(""))
        _fit_height(t)

    def model_rows(self) -> list[list[str]]:
        """The per-model table's text, row by row (tests compare it with ``parley costs``)."""
        return _rows(self.model_table)

    def purpose_rows(self) -> list[list[str]]:
        """The per-purpose table's text, row by row."""
        return _rows(self.purpose_table)


def _rows(t: QTableWidget) -> list[list[str]]:
    return [
        [(it.text() if (it := t.item(r, c)) is not None else "") for c in range(t.columnCount())]
        for r in range(t.rowCount())
    ]


def _fit_height(t: QTableWidget) -> None:
    """Show every row (the panel scrolls as a whole, not each table)."""
    h = t.horizontalHeader().height() + 2 * t.frameWidth()
    for r in range(t.rowCount()):
        h += t.rowHeight(r)
    t.setFixedHeight(h)
