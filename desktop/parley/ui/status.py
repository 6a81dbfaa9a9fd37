"""The status strip: what this conversation has cost, and the last turn's tokens.

Costs come from the ledger (provider-reported usage priced from the catalog). An unknown price
is said as such ("+ unknown"), never shown as $0; a local model really is "$0.00 (local)".
"""

from __future__ import annotations

from PySide6.QtWidgets import QLabel, QStatusBar, QWidget

from parley.core.costs import format_usd


def cost_text(total: float, has_unknown: bool) -> str:
    """The conversation-cost label, e.g. "Chat cost: $0.0123 + unknown"."""
    if has_unknown and total == 0:
        return "Chat cost: unknown"
    text = f"Chat cost: {format_usd(total)}"
    return text + " + unknown" if has_unknown else text


def tokens_text(
    input_tokens: int | None, output_tokens: int | None, cost: float | None, *, local: bool = False
) -> str:
    """The last-turn label, e.g. "Last turn: 1,234 in · 567 out · $0.0031"."""
    if input_tokens is None and output_tokens is None:
        return "Last turn: tokens not reported"
    i = "?" if input_tokens is None else f"{input_tokens:,}"
    o = "?" if output_tokens is None else f"{output_tokens:,}"
    money = "free (local)" if local else format_usd(cost)
    return f"Last turn: {i} in · {o} out · {money}"


class StatusStrip(QStatusBar):
    """The window's status bar with the cost and token labels."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setSizeGripEnabled(True)
        self.model_label = QLabel()
        self.model_label.setObjectName("statusModel")
        self.tokens_label = QLabel()
        self.tokens_label.setObjectName("statusTokens")
        self.cost_label = QLabel()
        self.cost_label.setObjectName("statusCost")
        self.cost_label.setToolTip(
            "What this conversation has cost, from the tokens the provider reported and "
            "the prices in the model catalog"
        )
        self.addWidget(self.model_label, 1)
        self.addPermanentWidget(self.tokens_label)
        self.addPermanentWidget(self.cost_label)
        self.clear_conversation()

    # ---- Public API
    def set_conversation_cost(self, total: float, has_unknown: bool) -> None:
        """Show the running cost of the open conversation."""
        self.cost_label.setText(cost_text(total, has_unknown))

    def set_last_turn(
        self,
        input_tokens: int | None,
        output_tokens: int | None,
        cost: float | None,
        *,
        local: bool = False,
    ) -> None:
        """Show the last turn's usage."""
        self.tokens_label.setText(tokens_text(input_tokens, output_tokens, cost, local=local))

    def set_model_detail(self, text: str) -> None:
        """Context window and price of the chosen model."""
        self.model_label.setText(text)

    def clear_conversation(self) -> None:
        """A new chat: nothing spent yet."""
        self.cost_label.setText(cost_text(0.0, False))
        self.tokens_label.setText("")
