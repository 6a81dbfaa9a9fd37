"""How money and token counts are written in the window's cost displays.

An unknown price is said ("unknown"), never shown as $0; a server on this machine really is
"$0.00 (local)". The same rules as ``parley costs`` (``cli.py``), so the panel and the
command line read alike.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from parley.core.costs import format_usd

if TYPE_CHECKING:
    from parley.core.store.ledger import Totals


def money(totals: Totals) -> str:
    """The cost of some requests: ``$0.12``, ``$0.12 + 3 unknown``, ``unknown``, ``(local)``."""
    if totals.requests == 0:
        return format_usd(0.0)
    if totals.all_local:
        return "$0.00 (local)"
    if totals.unknown == totals.requests:
        return "unknown"
    text = small_usd(totals.cost_usd)
    if totals.unknown:
        text += f" + {totals.unknown:,} unknown"
    return text


def known_cost(totals: Totals) -> float | None:
    """The cost as a number, None when none of it is known (as ``parley costs --json``)."""
    if totals.requests and totals.unknown == totals.requests:
        return None
    return totals.cost_usd


def short_tokens(n: int) -> str:
    """``950``, ``12.3K``, ``128K``, ``1.05M``: a context-window-sized number at a glance."""
    if n < 1000:
        return f"{n}"
    if n < 1_000_000:
        k = n / 1000
        return f"{k:.1f}K".replace(".0K", "K") if k < 100 else f"{k:.0f}K"
    return f"{n / 1_000_000:.2f}".rstrip("0").rstrip(".") + "M"


def small_usd(value: float) -> str:
    """Like ``format_usd``, but a known amount too small for four decimals is "< $0.0001".

    ``$0.0000`` would read as free; a few tokens on a cheap model do cost something.
    """
    if 0 < value < 0.00005:
        return "< $0.0001"
    return format_usd(value)


def tokens_line(totals: Totals) -> str:
    """``1,234 in · 567 out · 3 requests`` (cached input said when there is some).

    Counts of 10,000 and more are shortened (``228K``) so a card stays one line.
    """

    def n(v: int) -> str:
        return short_tokens(v) if v >= 10_000 else f"{v:,}"

    parts = [f"{n(totals.input_tokens)} in", f"{n(totals.output_tokens)} out"]
    if totals.cached_input_tokens:
        parts.append(f"{n(totals.cached_input_tokens)} cached")
    count = totals.requests
    parts.append(f"{count:,} request{'s' if count != 1 else ''}")
    return " · ".join(parts)


FROM_CACHE = "from cache · $0.00 (no request was sent)"
"""The footer line of an answer replayed from Parley's response cache."""
