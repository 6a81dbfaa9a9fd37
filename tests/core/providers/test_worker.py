"""Streams in the worker process: a real child process, the real SDKs, the fake wire servers."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from parley.core.errors import AuthError, ProviderDown, RateLimited
from parley.core.providers.base import (
    StreamResult,
    TextDelta,
    Timeouts,
    ToolCallStarted,
    ToolSpec,
)
from parley.core.providers.registry import AdapterSpec, builtin_registry
from parley.core.providers.worker import HANG_MARGIN_S, StreamWorker, WorkerProvider
from tests.core.providers.streams import drain, req
from tests.fakes.script import Call, HTTPError, Text, ToolCalls

KINDS = ["openai", "anthropic"]
KEY = "sk-worker-secret-0123456789"


def spec_for(kind: str, srv: Any) -> AdapterSpec:
    url = srv.openai_base_url if kind == "openai" else srv.anthropic_base_url
    return AdapterSpec(
        protocol=kind,
        name=kind,
        label=kind.title(),
        base_url=url,
        timeouts=Timeouts(connect=5, first_byte=10, idle=10),
        api_key=KEY,
    )


@pytest.fixture
async def worker() -> AsyncIterator[StreamWorker]:
    w = StreamWorker()
    assert await w.start()
    assert w.ready
    try:
        yield w
    finally:
        await w.aclose()


def provider(kind: str, srv: Any, worker: StreamWorker) -> WorkerProvider:
    spec = spec_for(kind, srv)
    return WorkerProvider(builtin_registry().build(spec), spec, worker)


@pytest.mark.parametrize("kind", KINDS)
async def test_text_comes_through_the_worker_in_batches(
    kind: str, fake_llm: Any, worker: StreamWorker
) -> None:
    text = "word " * 600
    fake_llm.enqueue(Text(text, chunk_chars=5, input_tokens=40, output_tokens=600))
    p = provider(kind, fake_llm, worker)
    result, events = await drain(p, req())
    await p.aclose()
    assert result.text == text
    assert (result.usage.input_tokens, result.usage.output_tokens) == (40, 600)
    assert result.finish is not None
    # In this process the adapter yields one delta per chunk (600); the worker joins the
    # deltas of a few milliseconds, so this proves the stream ran over there.
    deltas = sum(isinstance(e, TextDelta) for e in events)
    assert deltas < 300, deltas


@pytest.mark.parametrize("kind", KINDS)
async def test_tool_calls_cross_the_pipe(kind: str, fake_llm: Any, worker: StreamWorker) -> None:
    fake_llm.enqueue(ToolCalls([Call("calculator", '{"expression": "1+1"}')], text="Computing."))
    calc = ToolSpec("calculator", "Evaluate arithmetic.", {"type": "object", "properties": {}})
    p = provider(kind, fake_llm, worker)
    result, events = await drain(p, req(tools=(calc,)))
    await p.aclose()
    assert result.text == "Computing."
    assert [(c.name, json.loads(c.arguments)) for c in result.tool_calls] == [
        ("calculator", {"expression": "1+1"})
    ]
    assert sum(isinstance(e, ToolCallStarted) for e in events) == 1


@pytest.mark.parametrize("kind", KINDS)
async def test_typed_errors_keep_their_type_and_fields(
    kind: str, fake_llm: Any, worker: StreamWorker
) -> None:
    fake_llm.enqueue(HTTPError(429, retry_after=7))
    fake_llm.enqueue(HTTPError(401))
    p = provider(kind, fake_llm, worker)
    with pytest.raises(RateLimited) as limited:
        await drain(p, req())
    assert limited.value.retry_after == 7
    assert limited.value.retryable
    assert "\n" not in limited.value.user_message
    with pytest.raises(AuthError) as auth:
        await drain(p, req())
    assert KEY not in auth.value.user_message
    await p.aclose()
    assert worker.ready  # an error ends the request, not the worker


async def test_stopping_the_consumer_cancels_the_request(
    fake_llm: Any, worker: StreamWorker
) -> None:
    fake_llm.enqueue(Text("x" * 5000, chunk_chars=5, delay=0.01))
    p = provider("openai", fake_llm, worker)
    got: list[str] = []

    async def consume() -> None:
        async for ev in p.stream(req()):
            if isinstance(ev, TextDelta):
                got.append(ev.text)

    task = asyncio.create_task(consume())
    while not got:
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len("".join(got)) < 5000
    # The worker dropped that request and serves the next one.
    fake_llm.enqueue(Text("after"))
    result, _ = await drain(p, req())
    assert result.text == "after"
    await p.aclose()


async def break_mid_stream(
    p: WorkerProvider, worker: StreamWorker, match: str, breaker: Callable[[Any], object]
) -> StreamResult:
    """Stream until text arrives, then ``breaker(worker process)``; returns the partial.

    The stream must fail with ``ProviderDown`` matching ``match`` and leave the worker unused.
    """
    result = StreamResult()
    with pytest.raises(ProviderDown, match=match):
        async for ev in p.stream(req()):
            result.feed(ev)
            if result.text and worker._proc.is_alive():
                breaker(worker._proc)
    assert not worker.ready
    return result


async def assert_streams_in_process(p: WorkerProvider, fake_llm: Any) -> None:
    """The next stream of ``p`` works (in this process: the worker is gone)."""
    fake_llm.enqueue(Text("in-process now"))
    again, _ = await drain(p, req())
    assert again.text == "in-process now"
    await p.aclose()


async def test_a_dead_worker_fails_the_stream_then_streams_move_in_process(
    fake_llm: Any, worker: StreamWorker
) -> None:
    fake_llm.enqueue(Text("y" * 4000, chunk_chars=4, delay=0.005))
    p = provider("openai", fake_llm, worker)
    # The network edge of this feature: the process dies.
    result = await break_mid_stream(p, worker, "worker stopped", lambda proc: proc.kill())
    assert result.text.startswith("y")  # the partial answer arrived before it died
    await assert_streams_in_process(p, fake_llm)


async def test_a_hung_worker_is_stopped_and_streams_move_in_process(
    fake_llm: Any, worker: StreamWorker
) -> None:
    fake_llm.enqueue(Text("z" * 4000, chunk_chars=4, delay=0.005))
    spec = replace(spec_for("openai", fake_llm), timeouts=Timeouts(connect=1, first_byte=1, idle=1))
    p = WorkerProvider(builtin_registry().build(spec), spec, worker)
    t0 = time.monotonic()
    # Alive, but never answers again.
    await break_mid_stream(
        p, worker, "stopped answering", lambda proc: os.kill(proc.pid, signal.SIGSTOP)
    )
    assert time.monotonic() - t0 < 1 + HANG_MARGIN_S + 5
    await assert_streams_in_process(p, fake_llm)


async def test_the_key_is_never_on_the_worker_command_line_or_environment(
    fake_llm: Any, worker: StreamWorker
) -> None:
    fake_llm.enqueue(Text("ok"))
    p = provider("openai", fake_llm, worker)
    result, _ = await drain(p, req())
    await p.aclose()
    assert result.text == "ok"
    assert fake_llm.requests[-1].headers.get("authorization") == f"Bearer {KEY}"
    proc = Path("/proc") / str(worker._proc.pid)
    assert KEY.encode() not in (proc / "cmdline").read_bytes()
    assert KEY.encode() not in (proc / "environ").read_bytes()
    assert KEY not in repr(spec_for("openai", fake_llm))


async def test_without_a_started_worker_streams_run_in_process(fake_llm: Any) -> None:
    idle = StreamWorker()  # never started
    fake_llm.enqueue(Text("word " * 100, chunk_chars=5))
    p = provider("openai", fake_llm, idle)
    result, events = await drain(p, req())
    await p.aclose()
    assert result.text == "word " * 100
    assert sum(isinstance(e, TextDelta) for e in events) == 100  # one per chunk: no worker
