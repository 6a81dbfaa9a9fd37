"""StallGuard: one periodic check instead of a loop timer per streamed event."""

from __future__ import annotations

import asyncio

import pytest

from parley.core.providers.stall import StallGuard, StallTimeout


async def test_first_byte_limit_fires() -> None:
    with pytest.raises(StallTimeout) as info:
        with StallGuard(first_byte=0.1, idle=5) as guard:
            await guard.wait(asyncio.sleep(3))
    assert info.value.started is False
    assert info.value.limit == 0.1


async def test_idle_limit_applies_once_started() -> None:
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    with pytest.raises(StallTimeout) as info:
        with StallGuard(first_byte=5, idle=0.1) as guard:
            await guard.wait(asyncio.sleep(0.01))
            guard.started = True
            await guard.wait(asyncio.sleep(3))
    assert info.value.started is True
    assert loop.time() - t0 < 1.0


async def test_consumer_time_between_waits_never_counts() -> None:
    with StallGuard(first_byte=0.1, idle=0.1) as guard:
        guard.started = True
        for _ in range(4):
            await guard.wait(asyncio.sleep(0.01))
            await asyncio.sleep(0.15)  # the consumer is busy, not the stream
    # reaching here means the guard never fired


async def test_outside_cancellation_propagates_unchanged() -> None:
    async def body() -> None:
        with StallGuard(first_byte=5, idle=5) as guard:
            await guard.wait(asyncio.sleep(3))

    task = asyncio.create_task(body())
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_one_timer_regardless_of_event_count() -> None:
    loop = asyncio.get_running_loop()
    before = len(loop._scheduled)  # type: ignore[attr-defined]
    with StallGuard(first_byte=5, idle=5) as guard:
        for _ in range(500):
            await guard.wait(asyncio.sleep(0))
        during = len(loop._scheduled)  # type: ignore[attr-defined]
    assert during - before <= 1
