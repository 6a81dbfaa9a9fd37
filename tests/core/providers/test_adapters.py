"""The OpenAI and Anthropic adapters, through the real SDKs, against the fake wire servers."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from parley.core.errors import (
    AuthError,
    ContextTooLong,
    ModelNotFound,
    ProviderDown,
    ProviderTimeout,
    QuotaExhausted,
    RateLimited,
)
from parley.core.providers.anthropic import AnthropicProvider
from parley.core.providers.base import (
    Finished,
    Message,
    StreamResult,
    Timeouts,
    ToolCall,
    ToolCallDelta,
    ToolCallStarted,
    ToolSpec,
)
from parley.core.providers.openai import OpenAIProvider
from tests.core.providers.streams import drain, req
from tests.fakes.script import Call, Drop, HTTPError, Stall, StreamError, Text, ToolCalls

CALC = ToolSpec(
    "calculator",
    "Evaluate arithmetic.",
    {
        "type": "object",
        "properties": {"expression": {"type": "string"}},
        "required": ["expression"],
    },
)


def make(kind: str, srv: Any, **kw: Any) -> Any:
    if kind == "openai":
        return OpenAIProvider(api_key="sk-test-key", base_url=srv.openai_base_url, **kw)
    return AnthropicProvider(api_key="sk-ant-test", base_url=srv.anthropic_base_url, **kw)


KINDS = ["openai", "anthropic"]


@pytest.mark.parametrize("kind", KINDS)
async def test_text_usage_and_finish(kind: str, fake_llm: Any) -> None:
    fake_llm.enqueue(
        Text("Hello **world**, all fine.", input_tokens=50, output_tokens=7, cached_input_tokens=20)
    )
    p = make(kind, fake_llm)
    result, _ = await drain(p, req(system="Be brief."))
    await p.aclose()
    assert result.text == "Hello **world**, all fine."
    assert result.finish == Finished("stop", "stop" if kind == "openai" else "end_turn")
    assert result.usage.input_tokens == 50
    assert result.usage.output_tokens == 7
    assert result.usage.cached_input_tokens == 20
    body = fake_llm.requests[-1].json
    if kind == "openai":
        assert body["stream_options"] == {"include_usage": True}
        assert body["messages"][0] == {"role": "system", "content": "Be brief."}
        assert fake_llm.requests[-1].headers["authorization"] == "Bearer sk-test-key"
    else:
        assert body["system"] == "Be brief."
        assert all(m["role"] != "system" for m in body["messages"])
        assert body["max_tokens"] > 0


async def test_anthropic_cache_write_tokens(fake_llm: Any) -> None:
    fake_llm.enqueue(
        Text(
            "ok",
            input_tokens=1000,
            output_tokens=2,
            cached_input_tokens=600,
            cache_write_tokens=300,
        )
    )
    p = make("anthropic", fake_llm)
    result, _ = await drain(p, req())
    await p.aclose()
    # Our convention: input counts every prompt token, cached and written ones included.
    assert (result.usage.input_tokens, result.usage.cached_input_tokens) == (1000, 600)
    assert result.usage.cache_write_tokens == 300


@pytest.mark.parametrize("kind", KINDS)
async def test_two_tool_calls_in_one_round(kind: str, fake_llm: Any) -> None:
    fake_llm.enqueue(
        ToolCalls(
            [
                Call("calculator", '{"expression": "2.1/8.9"}'),
                Call("calculator", '{"expression": "1+1"}'),
            ],
            text="Computing.",
        )
    )
    p = make(kind, fake_llm)
    result, events = await drain(p, req(tools=(CALC,)))
    await p.aclose()
    assert result.text == "Computing."
    assert [c.name for c in result.tool_calls] == ["calculator", "calculator"]
    assert [json.loads(c.arguments) for c in result.tool_calls] == [
        {"expression": "2.1/8.9"},
        {"expression": "1+1"},
    ]
    assert len({c.id for c in result.tool_calls}) == 2
    assert result.finish is not None and result.finish.reason == "tool_calls"
    assert sum(isinstance(e, ToolCallStarted) for e in events) == 2
    assert any(isinstance(e, ToolCallDelta) for e in events)
    body = fake_llm.requests[-1].json
    if kind == "openai":
        assert body["tools"][0]["type"] == "function"
        assert body["tools"][0]["function"]["name"] == "calculator"
    else:
        assert body["tools"][0]["input_schema"]["properties"]["expression"]["type"] == "string"


@pytest.mark.parametrize("kind", KINDS)
async def test_tool_result_round_trip_wire_format(kind: str, fake_llm: Any) -> None:
    call1 = ToolCall("c1" if kind == "openai" else "toolu_a", "calculator", '{"expression": "1+1"}')
    call2 = ToolCall("c2" if kind == "openai" else "toolu_b", "calculator", '{"expression": "2+2"}')
    history = (
        Message("user", "Add things"),
        Message("assistant", "Let me.", tool_calls=(call1, call2)),
        Message("tool", "2", tool_call_id=call1.id, name="calculator"),
        Message("tool", "error: bad", tool_call_id=call2.id, name="calculator", is_error=True),
    )
    fake_llm.enqueue(Text("Done."))
    p = make(kind, fake_llm)
    await drain(p, req(messages=history, tools=(CALC,)))
    await p.aclose()
    msgs = fake_llm.requests[-1].json["messages"]
    if kind == "openai":
        assert msgs[1]["role"] == "assistant"
        assert [t["id"] for t in msgs[1]["tool_calls"]] == ["c1", "c2"]
        assert msgs[1]["tool_calls"][0]["function"]["arguments"] == '{"expression": "1+1"}'
        assert msgs[2] == {"role": "tool", "tool_call_id": "c1", "content": "2"}
        assert msgs[3]["tool_call_id"] == "c2"
    else:
        assert [b["type"] for b in msgs[1]["content"]] == ["text", "tool_use", "tool_use"]
        assert msgs[1]["content"][1]["input"] == {"expression": "1+1"}
        # Both results travel in ONE user message, as the Messages API requires.
        assert len(msgs) == 3 and msgs[2]["role"] == "user"
        results = msgs[2]["content"]
        assert [r["tool_use_id"] for r in results] == ["toolu_a", "toolu_b"]
        assert results[1]["is_error"] is True and "is_error" not in results[0]


@pytest.mark.parametrize(
    ("status", "extra", "error"),
    [
        (401, {}, AuthError),
        (404, {}, ModelNotFound),
        (429, {"retry_after": 7}, RateLimited),
        (429, {"code": "insufficient_quota", "type": "insufficient_quota"}, QuotaExhausted),
        (500, {}, ProviderDown),
        (529, {}, ProviderDown),
        (
            400,
            {"code": "context_length_exceeded", "message": "maximum context length is 8192"},
            ContextTooLong,
        ),
    ],
)
@pytest.mark.parametrize("kind", KINDS)
async def test_http_errors_become_typed(
    kind: str, status: int, extra: dict[str, Any], error: type, fake_llm: Any
) -> None:
    if kind == "anthropic" and status == 400:
        extra = {"message": "prompt is too long: 210000 tokens > 200000 maximum"}
    fake_llm.enqueue(HTTPError(status, **extra))
    p = make(kind, fake_llm)
    with pytest.raises(error) as info:
        await drain(p, req())
    await p.aclose()
    assert "\n" not in info.value.user_message
    assert "sk-test" not in info.value.user_message
    if error is RateLimited:
        assert info.value.retry_after == 7  # type: ignore[attr-defined]
    # SDK retries are off: one failure is one request.
    assert len(fake_llm.requests) == 1


@pytest.mark.parametrize("kind", KINDS)
async def test_drop_mid_stream_keeps_partial(kind: str, fake_llm: Any) -> None:
    fake_llm.enqueue(Drop("The first half of the answer"))
    p = make(kind, fake_llm)
    result = StreamResult()
    with pytest.raises(ProviderDown, match="dropped"):
        async for ev in p.stream(req()):
            result.feed(ev)
    await p.aclose()
    assert result.text == "The first half of the answer"


@pytest.mark.parametrize("kind", KINDS)
async def test_error_event_mid_stream_keeps_partial(kind: str, fake_llm: Any) -> None:
    # Anthropic reports overload this way once an answer has begun (after HTTP 200).
    fake_llm.enqueue(StreamError("The first half", type="overloaded_error", message="Overloaded"))
    p = make(kind, fake_llm)
    result = StreamResult()
    with pytest.raises(ProviderDown) as info:
        async for ev in p.stream(req()):
            result.feed(ev)
    await p.aclose()
    assert result.text == "The first half"
    message = info.value.user_message
    assert "mid-answer" in message and "HTTP 200" not in message, message
    if kind == "anthropic":
        assert "overloaded" in message
    assert "Overloaded" in (info.value.detail or "")


@pytest.mark.parametrize(
    ("kind", "raw"),
    [
        ("openai", '{"id": "c1", "choices": 5}'),
        ("openai", '{"id": "c1", "choices": [{"delta": {"tool_calls": [{"index": "x"}]}}]}'),
        ("anthropic", '{"type": "content_block_delta", "index": 0, "delta": 5}'),
        ("anthropic", '{"type": "content_block_start", "index": 1}'),
    ],
)
async def test_malformed_chunk_is_a_clear_error(kind: str, raw: str, fake_llm: Any) -> None:
    fake_llm.enqueue(StreamError("Kept so far", raw=raw))
    p = make(kind, fake_llm)
    result = StreamResult()
    with pytest.raises(ProviderDown, match="malformed") as info:
        async for ev in p.stream(req()):
            result.feed(ev)
    await p.aclose()
    assert result.text == "Kept so far"
    assert "\n" not in info.value.user_message


@pytest.mark.parametrize("kind", KINDS)
async def test_stall_ends_with_timeout_not_hang(kind: str, fake_llm: Any) -> None:
    fake_llm.enqueue(Stall("partial", seconds=20))
    p = make(kind, fake_llm, timeouts=Timeouts(connect=2, first_byte=5, idle=0.5))
    result = StreamResult()
    t0 = time.monotonic()
    with pytest.raises(ProviderTimeout, match="cut off"):
        async for ev in p.stream(req()):
            result.feed(ev)
    await p.aclose()
    assert result.text == "partial"
    assert time.monotonic() - t0 < 5


@pytest.mark.parametrize("kind", KINDS)
async def test_slow_first_byte_times_out(kind: str, fake_llm: Any) -> None:
    fake_llm.enqueue(Text("late", first_byte_delay=10))
    p = make(kind, fake_llm, timeouts=Timeouts(connect=2, first_byte=0.5, idle=5))
    t0 = time.monotonic()
    with pytest.raises(ProviderTimeout, match="did not start"):
        await drain(p, req())
    await p.aclose()
    assert time.monotonic() - t0 < 5


@pytest.mark.parametrize("kind", KINDS)
async def test_cancel_closes_stream_at_once(kind: str, fake_llm: Any) -> None:
    fake_llm.enqueue(Text("x" * 5000, chunk_chars=5, delay=0.01))
    p = make(kind, fake_llm)
    got: list[str] = []

    async def consume() -> None:
        async for ev in p.stream(req()):
            if hasattr(ev, "text"):
                got.append(ev.text)

    task = asyncio.create_task(consume())
    while len(got) < 3:
        await asyncio.sleep(0.01)
    t0 = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.monotonic() - t0 < 0.5
    assert len(got) < 100  # far from the 1000 pieces the server would send
    # The connection is closed: the next request works on a fresh one.
    fake_llm.enqueue(Text("after"))
    result, _ = await drain(p, req())
    assert result.text == "after"
    await p.aclose()


@pytest.mark.parametrize("kind", KINDS)
async def test_list_models(kind: str, fake_llm: Any) -> None:
    fake_llm.models = ["alpha", "beta"]
    p = make(kind, fake_llm)
    models = await p.list_models()
    await p.aclose()
    assert [m.id for m in models] == ["alpha", "beta"]


async def test_connection_refused_is_provider_down() -> None:
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    p = OpenAIProvider(api_key="k", base_url=f"http://127.0.0.1:{port}/v1")
    with pytest.raises(ProviderDown, match="Could not reach"):
        await drain(p, req())
    await p.aclose()


async def test_openai_compatible_uses_max_tokens(fake_llm: Any) -> None:
    fake_llm.enqueue(Text("a"), Text("b"))
    local = OpenAIProvider(name="openai-compatible", base_url=fake_llm.openai_base_url)
    await drain(local, req(max_output_tokens=99))
    official = OpenAIProvider(name="openai", api_key="k", base_url=fake_llm.openai_base_url)
    await drain(official, req(max_output_tokens=99))
    await local.aclose()
    await official.aclose()
    assert fake_llm.requests[0].json["max_tokens"] == 99
    assert fake_llm.requests[1].json["max_completion_tokens"] == 99
