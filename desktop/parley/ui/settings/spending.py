"""Settings ▸ Spending: the daily and monthly budgets, and the two caches (issue 13).

Both limits are optional and off by default. At 80 % of a limit the window shows a notice;
at 100 % sending asks first, once a day (``parley ask`` refuses unless ``--over-budget``).
The caching switches are :class:`~parley.core.settings.CachingSettings`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from PySide6.QtWidgets import (
    QCheckBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QVBoxLayout,
    QWidget,
)

if TYPE_CHECKING:
    from parley.core.settings import Settings

MAX_LIMIT_USD = 1_000_000.0


class LimitField(QWidget):
    """A limit that can be switched off: a check box and an amount in dollars."""

    def __init__(self, label: str, value: float | None, default: float) -> None:
        super().__init__()
        self.enabled = QCheckBox(label)
        self.amount = QDoubleSpinBox()
        self.amount.setPrefix("$ ")
        self.amount.setDecimals(2)
        self.amount.setRange(0.01, MAX_LIMIT_USD)
        self.amount.setSingleStep(1.0)
        self.amount.setValue(value if value else default)
        self._original = value
        self._edited = False
        self.amount.valueChanged.connect(lambda _v: setattr(self, "_edited", True))
        self.enabled.setChecked(value is not None)
        self.amount.setEnabled(value is not None)
        self.enabled.toggled.connect(self.amount.setEnabled)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.enabled)
        layout.addWidget(self.amount)
        layout.addStretch(1)

    def value(self) -> float | None:
        """The limit, None when off (a limit from the file stays exact unless edited)."""
        if not self.enabled.isChecked():
            return None
        if self._original is not None and not self._edited:
            return self._original  # e.g. $0.005 set in settings.toml: not rounded to cents
        return round(self.amount.value(), 2)


class SpendingPage(QWidget):
    """The Spending tab of the settings dialog."""

    def __init__(self, settings: Settings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        b, c = settings.budget, settings.caching
        self.daily = LimitField("Daily limit", b.daily_usd, 1.0)
        self.monthly = LimitField("Monthly limit", b.monthly_usd, 20.0)
        # The amounts line up (each field lays out its own check box).
        label_width = max(f.enabled.sizeHint().width() for f in (self.daily, self.monthly))
        for f in (self.daily, self.monthly):
            f.enabled.setMinimumWidth(label_width)
        budgets = QGroupBox("Budgets")
        bf = QFormLayout(budgets)
        bf.addRow(self.daily)
        bf.addRow(self.monthly)
        hint = QLabel(
            "Spending counts every request's known cost (a price that is unknown counts as "
            "$0 here). From 80 % of a limit Parley tells you; at 100 % sending asks first, "
            "once a day. parley ask refuses unless you pass --over-budget."
        )
        hint.setWordWrap(True)
        hint.setEnabled(False)
        bf.addRow(hint)

        self.prompt_cache = QCheckBox("Prompt caching for long Anthropic requests")
        self.prompt_cache.setToolTip(
            "Mark the stable start of long requests for Anthropic's prompt cache: cached "
            "tokens cost a tenth, writing them costs a quarter more once"
        )
        self.prompt_cache.setChecked(c.prompt_cache)
        self.response_cache = QCheckBox("Answer repeated questions from Parley's cache")
        self.response_cache.setToolTip(
            "A request identical to an earlier one is answered from Parley's own cache, at "
            "no cost (only at temperature 0; Regenerate always asks the model)"
        )
        self.response_cache.setChecked(c.response_cache)
        caching = QGroupBox("Caching")
        cl = QVBoxLayout(caching)
        cl.addWidget(self.prompt_cache)
        cl.addWidget(self.response_cache)

        layout = QVBoxLayout(self)
        layout.addWidget(budgets)
        layout.addWidget(caching)
        layout.addStretch(1)

    def values(self) -> dict[str, Any]:
        """``budget`` and ``caching`` as ``Settings`` fields (validated by the dialog)."""
        return {
            "budget": {"daily_usd": self.daily.value(), "monthly_usd": self.monthly.value()},
            "caching": {
                "prompt_cache": self.prompt_cache.isChecked(),
                "response_cache": self.response_cache.isChecked(),
            },
        }
