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
    text = format_usd(totals.cost_usd)
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


def tokens_line(totals: Totals) -> str:
    """``1,234 in · 567 out · 3 requests`` (cached input said when there is some)."""
    parts = [f"{totals.input_tokens:,} in", f"{totals.output_tokens:,} out"]
    if totals.cached_input_tokens:
        parts.append(f"{totals.cached_input_tokens:,} cached")
    n = totals.requests
    parts.append(f"{n:,} request{'s' if n != 1 else ''}")
    return " · ".join(parts)


FROM_CACHE = "from cache · $0.00 (no request was sent)"
"""The footer line of an answer replayed from Parley's response cache."""
