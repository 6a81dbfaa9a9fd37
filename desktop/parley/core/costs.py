"""Money: what a provider-reported usage costs, from the catalog's prices.

An unknown price gives an unknown cost (``None``), never $0. A model served by a local
OpenAI-compatible server on this machine really costs nothing: that is the one $0.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING
from urllib.parse import urlparse

if TYPE_CHECKING:  # annotations only: the window imports format_usd before its first paint
    from parley.core.providers.base import Usage
    from parley.core.providers.catalog import ModelInfo

PER = 1_000_000


def is_local_url(base_url: str | None) -> bool:
    """Whether ``base_url`` points at this machine (Ollama, LM Studio... on loopback)."""
    if not base_url:
        return False
    host = (urlparse(base_url).hostname or "").strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def usage_cost(usage: Usage, model: ModelInfo | None, *, local: bool = False) -> float | None:
    """US dollars for ``usage`` on ``model``; None when a needed price is unknown."""
    if local:
        return 0.0
    if model is None or not model.has_prices:
        return None
    assert model.price_input is not None and model.price_output is not None
    total_in = usage.input_tokens or 0
    cached = usage.cached_input_tokens or 0
    written = usage.cache_write_tokens or 0
    fresh = max(0, total_in - cached - written)
    cost = fresh * model.price_input + (usage.output_tokens or 0) * model.price_output
    if cached:
        price = (
            model.price_cached_input if model.price_cached_input is not None else model.price_input
        )
        cost += cached * price
    if written:
        price = (
            model.price_cache_write if model.price_cache_write is not None else model.price_input
        )
        cost += written * price
    return cost / PER


def cache_savings(usage: Usage, model: ModelInfo | None, *, local: bool = False) -> float | None:
    """What the provider's prompt cache saved on ``usage``, net of the dearer cache writes.

    Cached reads cost ``price_cached_input`` instead of ``price_input``; writes cost
    ``price_cache_write`` instead. None when nothing was cached or written, when the server is
    local, or when a price is unknown.
    """
    cached = usage.cached_input_tokens or 0
    written = usage.cache_write_tokens or 0
    if local or model is None or model.price_input is None or not (cached or written):
        return None
    saved = 0.0
    if cached and model.price_cached_input is not None:
        saved += cached * (model.price_input - model.price_cached_input)
    if written and model.price_cache_write is not None:
        saved -= written * (model.price_cache_write - model.price_input)
    return saved / PER


def format_usd(value: float | None) -> str:
    """``$0.0123``-style text (``-$0.0004`` below zero); "unknown" for None."""
    if value is None:
        return "unknown"
    if value < 0:  # net prompt-cache savings can be negative (writes cost more at first)
        return "-" + format_usd(-value)
    if value == 0:
        return "$0.00"
    if value < 0.01:
        return f"${value:.4f}"
    return f"${value:.2f}"
