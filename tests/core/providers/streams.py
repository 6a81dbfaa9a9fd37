"""Shared helpers for the provider tests: a small request, and draining a stream."""

from __future__ import annotations

from typing import Any

from parley.core.providers.base import ChatRequest, Message, StreamResult


def req(**kw: Any) -> ChatRequest:
    """A one-question request; keywords override its fields."""
    base: dict[str, Any] = {"model": "gpt-4o-mini", "messages": (Message("user", "Hello?"),)}
    base.update(kw)
    return ChatRequest(**base)


async def drain(provider: Any, request: ChatRequest) -> tuple[StreamResult, list[Any]]:
    """Every event of ``provider.stream(request)``, and what they add up to."""
    result = StreamResult()
    events = []
    async for ev in provider.stream(request):
        events.append(ev)
        result.feed(ev)
    return result, events
