"""Retries before the first token only, retry-after honoured, bounded attempts, fallback."""

from __future__ import annotations

from typing import Any

import pytest

from parley.core.errors import ProviderDown, QuotaExhausted, RateLimited
from parley.core.providers.anthropic import AnthropicProvider
from parley.core.providers.base import (
    AttemptStarted,
    ChatRequest,
    FallbackUsed,
    Message,
    RetryScheduled,
    StreamResult,
)
from parley.core.providers.openai import OpenAIProvider
from parley.core.providers.resilient import Fallback, ResilientProvider
from tests.fakes.script import Drop, HTTPError, Text

REQ = ChatRequest(model="gpt-4o-mini", messages=(Message("user", "hi"),))


class Sleeps:
    """Records waits instead of sleeping (the policy is under test, not the clock)."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def wrap(srv: Any, sleeps: Sleeps, **kw: Any) -> ResilientProvider:
    return ResilientProvider(
        OpenAIProvider(api_key="k", base_url=srv.openai_base_url), sleep=sleeps, **kw
    )


async def run(p: ResilientProvider) -> tuple[StreamResult, list[Any]]:
    result, events = StreamResult(), []
    try:
        async for ev in p.stream(REQ):
            events.append(ev)
            result.feed(ev)
    finally:
        await p.aclose()
    return result, events


async def test_429_retry_after_is_honoured_then_succeeds(fake_llm: Any) -> None:
    fake_llm.enqueue(HTTPError(429, retry_after=1), Text("fine"))
    sleeps = Sleeps()
    result, events = await run(wrap(fake_llm, sleeps))
    assert result.text == "fine"
    assert sleeps.waits == [1.0]
    assert len(fake_llm.requests) == 2
    retry = [e for e in events if isinstance(e, RetryScheduled)]
    assert retry and retry[0].wait_s == 1.0 and "rate limiting" in retry[0].message
    assert [e.attempt for e in events if isinstance(e, AttemptStarted)] == [1, 2]


async def test_retry_after_ms_wins(fake_llm: Any) -> None:
    fake_llm.enqueue(HTTPError(429, retry_after=9, retry_after_ms=250), Text("ok"))
    sleeps = Sleeps()
    await run(wrap(fake_llm, sleeps))
    assert sleeps.waits == [0.25]


async def test_persistent_503_three_attempts_then_error(fake_llm: Any) -> None:
    fake_llm.enqueue(*[HTTPError(503)] * 3, Text("never"))
    sleeps = Sleeps()
    with pytest.raises(ProviderDown, match="503"):
        await run(wrap(fake_llm, sleeps))
    assert len(fake_llm.requests) == 3
    assert len(sleeps.waits) == 2 and all(0 < w <= 20 for w in sleeps.waits)


async def test_529_overloaded_is_retried_on_anthropic(fake_llm: Any) -> None:
    fake_llm.enqueue(HTTPError(529), Text("recovered"))
    sleeps = Sleeps()
    p = ResilientProvider(
        AnthropicProvider(api_key="k", base_url=fake_llm.anthropic_base_url), sleep=sleeps
    )
    result, _ = await run(p)
    assert result.text == "recovered"
    assert len(fake_llm.requests) == 2


async def test_quota_is_never_retried(fake_llm: Any) -> None:
    fake_llm.enqueue(HTTPError(429, code="insufficient_quota", type="insufficient_quota"))
    with pytest.raises(QuotaExhausted):
        await run(wrap(fake_llm, Sleeps()))
    assert len(fake_llm.requests) == 1


async def test_retry_after_over_60s_gives_up_at_once(fake_llm: Any) -> None:
    fake_llm.enqueue(HTTPError(429, retry_after=120))
    with pytest.raises(RateLimited):
        await run(wrap(fake_llm, Sleeps()))
    assert len(fake_llm.requests) == 1


async def test_no_retry_after_text_was_emitted(fake_llm: Any) -> None:
    fake_llm.enqueue(Drop("half an answer"), Text("should not be requested"))
    result = StreamResult()
    p = wrap(fake_llm, Sleeps())
    with pytest.raises(ProviderDown):
        async for ev in p.stream(REQ):
            result.feed(ev)
    await p.aclose()
    assert result.text == "half an answer"
    assert len(fake_llm.requests) == 1


async def test_fallback_model_answers_and_is_announced(fake_llm: Any) -> None:
    fake_llm.enqueue(*[HTTPError(500)] * 3, Text("from the fallback"))
    fb = AnthropicProvider(api_key="k", base_url=fake_llm.anthropic_base_url)
    p = wrap(fake_llm, Sleeps(), fallback=Fallback(fb, "claude-haiku-4-5"))
    result, events = await run(p)
    assert result.text == "from the fallback"
    used = [e for e in events if isinstance(e, FallbackUsed)]
    assert used and used[0].model == "claude-haiku-4-5" and used[0].provider == "anthropic"
    assert fake_llm.requests[-1].path.endswith("/messages")
    assert fake_llm.requests[-1].json["model"] == "claude-haiku-4-5"
