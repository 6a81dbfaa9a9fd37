"""The fake wire servers, driven by the REAL openai and anthropic SDKs over loopback sockets.

If these pass, a Parley adapter test against the fake exercises the SDKs' own HTTP, SSE
parsing, error mapping and retry-after handling, exactly as against the vendors.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import math
import os
import signal
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import openai
import pytest
import tiktoken
from anthropic import AsyncAnthropic
from openai import AsyncOpenAI

from tests.fakes.script import (
    NOT_A_COMPLETION_JSON,
    PORTAL_HTML,
    BadUTF8,
    Call,
    Cut,
    Drop,
    HTTPError,
    NotAStream,
    Redirect,
    Stall,
    StreamError,
    Text,
    ToolCalls,
)
from tests.fakes.server import FakeLLMServer

OPENAI_KEY = "sk-test-openai"
ANTHROPIC_KEY = "sk-ant-test"
HI = [{"role": "user", "content": "hi"}]
TRICKY = (
    'Hello **world**!\nÜnïcödé, emoji 😀👍🏽, CJK 你好, quotes "x" and \\backslash\\ ```code```'
)


# ---------------------------------------------------------------- fixtures and helpers
@pytest.fixture
def srv() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as server:
        yield server


@pytest.fixture
async def oa(srv: FakeLLMServer) -> AsyncIterator[AsyncOpenAI]:
    client = AsyncOpenAI(api_key=OPENAI_KEY, base_url=srv.openai_base_url, max_retries=0)
    yield client
    await client.close()


@pytest.fixture
async def an(srv: FakeLLMServer) -> AsyncIterator[AsyncAnthropic]:
    client = AsyncAnthropic(api_key=ANTHROPIC_KEY, base_url=srv.anthropic_base_url, max_retries=0)
    yield client
    await client.close()


async def openai_chunks(oa: AsyncOpenAI, **kwargs: Any) -> list[Any]:
    params: dict[str, Any] = {"model": "gpt-4o-mini", "messages": HI, **kwargs}
    stream = await oa.chat.completions.create(stream=True, **params)
    return [chunk async for chunk in stream]


def openai_text(chunks: list[Any]) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


async def anthropic_events(an: AsyncAnthropic, **kwargs: Any) -> list[Any]:
    params: dict[str, Any] = {"model": "claude-haiku-4-5", "max_tokens": 512, "messages": HI}
    stream = await an.messages.create(stream=True, **{**params, **kwargs})
    return [event async for event in stream]


def anthropic_text(events: list[Any]) -> str:
    return "".join(
        e.delta.text
        for e in events
        if e.type == "content_block_delta" and e.delta.type == "text_delta"
    )


def fake_threads(port: int | None = None) -> list[threading.Thread]:
    suffix = "" if port is None else f"-{port}"
    return [
        t
        for t in threading.enumerate()
        if t.name.startswith("fake-llm") and (port is None or t.name.endswith(suffix))
    ]


# ---------------------------------------------------------------- text streaming
async def test_openai_text_stream_reassembles_exactly(srv: FakeLLMServer, oa: AsyncOpenAI) -> None:
    srv.enqueue(Text(TRICKY, chunk_chars=5))
    chunks = await openai_chunks(oa)

    assert openai_text(chunks) == TRICKY
    deltas = [c.choices[0].delta.content for c in chunks if c.choices[0].delta.content]
    assert len(deltas) == math.ceil(len(TRICKY) / 5)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.choices[0].finish_reason is None for c in chunks[:-1])
    assert {c.id for c in chunks} == {chunks[0].id}
    assert {c.object for c in chunks} == {"chat.completion.chunk"}
    assert chunks[0].model == "gpt-4o-mini"  # echoes the requested model


async def test_raw_sse_framing_is_the_vendors(
    srv: FakeLLMServer, oa: AsyncOpenAI, an: AsyncAnthropic
) -> None:
    srv.enqueue(Text("hi there", chunk_chars=3), Text("hi there", chunk_chars=3))
    async with oa.chat.completions.with_streaming_response.create(
        model="gpt-4o-mini", messages=HI, stream=True
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["transfer-encoding"] == "chunked"
        raw = (await response.read()).decode()
    blocks = raw.split("\n\n")
    assert blocks[-2:] == ["data: [DONE]", ""]
    assert all(b.startswith("data: {") and "\n" not in b for b in blocks[:-2])

    async with an.messages.with_streaming_response.create(
        model="claude-haiku-4-5", max_tokens=8, messages=HI, stream=True
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        raw = (await response.read()).decode()
    blocks = raw.split("\n\n")
    assert blocks[-1] == ""
    for block in blocks[:-1]:
        event_line, data_line = block.split("\n")
        name = event_line.removeprefix("event: ")
        assert json.loads(data_line.removeprefix("data: "))["type"] == name
    assert [b.split("\n")[0] for b in blocks[:3]] == [
        "event: message_start",
        "event: content_block_start",
        "event: ping",
    ]
    assert blocks[-2] == 'event: message_stop\ndata: {"type":"message_stop"}'


async def test_explicit_chunks_and_model_override(srv: FakeLLMServer, oa: AsyncOpenAI) -> None:
    srv.enqueue(Text("abcdef", chunks=["a", "bcd", "ef"], model="gpt-4o-2024-08-06"))
    chunks = await openai_chunks(oa)
    assert [c.choices[0].delta.content for c in chunks[1:-1]] == ["a", "bcd", "ef"]
    assert chunks[0].model == "gpt-4o-2024-08-06"

    with pytest.raises(ValueError, match="join"):
        Text("abc", chunks=["a", "b"])


async def test_anthropic_text_stream_reassembles_exactly(
    srv: FakeLLMServer, an: AsyncAnthropic
) -> None:
    srv.enqueue(Text(TRICKY, chunk_chars=4))
    events = await anthropic_events(an)

    assert anthropic_text(events) == TRICKY
    kinds = [e.type for e in events]
    n_deltas = math.ceil(len(TRICKY) / 4)
    assert kinds == [
        "message_start",
        "content_block_start",
        *["content_block_delta"] * n_deltas,
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert events[-2].delta.stop_reason == "end_turn"

    # The SDK's accumulating helper agrees.
    srv.enqueue(Text(TRICKY, chunk_chars=7))
    async with an.messages.stream(model="claude-haiku-4-5", max_tokens=512, messages=HI) as st:
        assert await st.get_final_text() == TRICKY


async def test_finish_length_maps_per_vendor(
    srv: FakeLLMServer, oa: AsyncOpenAI, an: AsyncAnthropic
) -> None:
    srv.enqueue(Text("cut", finish="length"), Text("cut", finish="length"))
    assert (await openai_chunks(oa))[-1].choices[0].finish_reason == "length"
    assert (await anthropic_events(an))[-2].delta.stop_reason == "max_tokens"


# ---------------------------------------------------------------- usage
async def test_openai_usage_with_and_without_include_usage(
    srv: FakeLLMServer, oa: AsyncOpenAI
) -> None:
    srv.enqueue(Text("answer", input_tokens=1200, output_tokens=30, cached_input_tokens=1000))
    chunks = await openai_chunks(oa, stream_options={"include_usage": True})

    last = chunks[-1]
    assert last.choices == []
    assert last.usage.prompt_tokens == 1200
    assert last.usage.completion_tokens == 30
    assert last.usage.total_tokens == 1230
    assert last.usage.prompt_tokens_details.cached_tokens == 1000
    assert all(c.usage is None for c in chunks[:-1])
    assert chunks[-2].choices[0].finish_reason == "stop"

    srv.enqueue(Text("answer", input_tokens=1200, output_tokens=30))
    chunks = await openai_chunks(oa)
    assert all(c.usage is None and c.choices for c in chunks)


async def test_anthropic_usage_splits_cached_tokens_like_the_api(
    srv: FakeLLMServer, an: AsyncAnthropic
) -> None:
    reply = Text(
        "answer",
        input_tokens=1200,
        output_tokens=30,
        cached_input_tokens=1000,
        cache_write_tokens=150,
    )
    srv.enqueue(reply)
    events = await anthropic_events(an)

    start = events[0].message.usage
    assert start.input_tokens == 50  # Anthropic excludes cache reads and writes
    assert start.cache_read_input_tokens == 1000
    assert start.cache_creation_input_tokens == 150
    assert events[-2].type == "message_delta"
    assert events[-2].usage.output_tokens == 30

    srv.enqueue(reply)
    async with an.messages.stream(model="claude-haiku-4-5", max_tokens=512, messages=HI) as st:
        usage = (await st.get_final_message()).usage
    assert (usage.input_tokens, usage.output_tokens) == (50, 30)

    with pytest.raises(ValueError, match="cached ones included"):
        Text("x", input_tokens=10, cached_input_tokens=20)


async def test_default_token_counts_are_plausible(
    srv: FakeLLMServer, oa: AsyncOpenAI, an: AsyncAnthropic
) -> None:
    answer = "x" * 400
    long_prompt = [{"role": "user", "content": "word " * 800}]
    srv.enqueue(Text(answer), Text(answer), Text(answer), Text(answer))
    short_oa = (await openai_chunks(oa, stream_options={"include_usage": True}))[-1].usage
    long_oa = (
        await openai_chunks(oa, messages=long_prompt, stream_options={"include_usage": True})
    )[-1].usage
    short_an = await anthropic_events(an)
    long_an = await anthropic_events(an, messages=long_prompt)

    assert 0 < short_oa.prompt_tokens < 20
    # OpenAI models' prompts are counted with tiktoken: 3 tokens around each message, the
    # role, the content, and 3 that open the reply.
    enc = tiktoken.get_encoding("o200k_base")
    content = enc.encode_ordinary("word " * 800)
    assert long_oa.prompt_tokens == 3 + 1 + len(content) + 3
    assert short_oa.completion_tokens == 100
    assert 0 < short_an[0].message.usage.input_tokens < long_an[0].message.usage.input_tokens
    assert long_an[-2].usage.output_tokens == 100


# ---------------------------------------------------------------- tool calls
TWO_CALLS = ToolCalls(
    [
        Call("get_weather", '{"city": "Paris", "unit": "celsius"}'),
        Call("calculator", '{"expression": "2 * (3 + 4)"}', id="call_custom"),
    ],
    text="Let me check.",
    chunk_chars=5,
)


async def test_openai_two_tool_calls_stream_in_fragments(
    srv: FakeLLMServer, oa: AsyncOpenAI
) -> None:
    srv.enqueue(TWO_CALLS)
    chunks = await openai_chunks(oa)

    assert openai_text(chunks) == "Let me check."
    calls: dict[int, dict[str, Any]] = {}
    fragments: dict[int, int] = {}
    for c in chunks:
        for tc in c.choices[0].delta.tool_calls or []:
            entry = calls.setdefault(tc.index, {"id": None, "name": None, "arguments": ""})
            if tc.id:
                assert entry["id"] is None, "id only in the first fragment"
                entry["id"] = tc.id
                assert tc.type == "function"
            if tc.function.name:
                assert entry["name"] is None, "name only in the first fragment"
                entry["name"] = tc.function.name
            entry["arguments"] += tc.function.arguments or ""
            fragments[tc.index] = fragments.get(tc.index, 0) + 1
    assert calls[0]["name"] == "get_weather"
    assert calls[0]["id"].startswith("call_")
    assert json.loads(calls[0]["arguments"]) == {"city": "Paris", "unit": "celsius"}
    assert calls[1] == {
        "id": "call_custom",
        "name": "calculator",
        "arguments": '{"expression": "2 * (3 + 4)"}',
    }
    assert min(fragments.values()) > 3
    assert chunks[-1].choices[0].finish_reason == "tool_calls"

    # The SDK's own accumulator parses them into its types.
    srv.enqueue(TWO_CALLS)
    async with oa.chat.completions.stream(model="gpt-4o-mini", messages=HI) as st:
        final = await st.get_final_completion()
    message = final.choices[0].message
    assert message.content == "Let me check."
    assert [(t.function.name, t.id) for t in message.tool_calls][1] == ("calculator", "call_custom")
    assert final.choices[0].finish_reason == "tool_calls"


async def test_anthropic_two_tool_calls_stream_in_fragments(
    srv: FakeLLMServer, an: AsyncAnthropic
) -> None:
    srv.enqueue(TWO_CALLS)
    events = await anthropic_events(an)

    starts = [e for e in events if e.type == "content_block_start"]
    assert [s.content_block.type for s in starts] == ["text", "tool_use", "tool_use"]
    assert starts[1].content_block.id.startswith("toolu_")
    assert starts[1].content_block.name == "get_weather"
    assert starts[2].content_block.id == "call_custom"
    parts = [
        e.delta.partial_json
        for e in events
        if e.type == "content_block_delta" and e.delta.type == "input_json_delta" and e.index == 1
    ]
    assert parts[0] == ""  # the API opens each tool input with an empty fragment
    assert "".join(parts) == '{"city": "Paris", "unit": "celsius"}'
    assert len(parts) > 3
    assert events[-2].delta.stop_reason == "tool_use"

    srv.enqueue(TWO_CALLS)
    async with an.messages.stream(model="claude-haiku-4-5", max_tokens=512, messages=HI) as st:
        message = await st.get_final_message()
    text, weather, calc = message.content
    assert text.text == "Let me check."
    assert (weather.name, weather.input) == ("get_weather", {"city": "Paris", "unit": "celsius"})
    assert (calc.id, calc.input) == ("call_custom", {"expression": "2 * (3 + 4)"})
    assert message.stop_reason == "tool_use"


async def test_invalid_json_arguments_are_sent_as_given(
    srv: FakeLLMServer, oa: AsyncOpenAI, an: AsyncAnthropic
) -> None:
    broken = '{"city": "Par'
    srv.enqueue(ToolCalls([Call("get_weather", broken)]), ToolCalls([Call("get_weather", broken)]))
    chunks = await openai_chunks(oa)
    args = "".join(
        tc.function.arguments or "" for c in chunks for tc in c.choices[0].delta.tool_calls or []
    )
    assert args == broken
    assert chunks[0].choices[0].delta.content is None  # no text: content null like the API

    events = await anthropic_events(an)
    parts = [e.delta.partial_json for e in events if e.type == "content_block_delta"]
    assert "".join(parts) == broken
    assert [e.type for e in events][1] == "content_block_start"  # no text block first


async def test_default_tool_ids_never_repeat(
    srv: FakeLLMServer, oa: AsyncOpenAI, an: AsyncAnthropic
) -> None:
    srv.enqueue(*[ToolCalls([Call("a"), Call("b")])] * 2)
    ids = []
    for _ in range(2):
        for c in await openai_chunks(oa):
            ids += [tc.id for tc in c.choices[0].delta.tool_calls or [] if tc.id]
    assert len(ids) == len(set(ids)) == 4
    assert all(i.startswith("call_") for i in ids)

    srv.enqueue(ToolCalls([Call("a")]))
    events = await anthropic_events(an)
    assert events[1].content_block.id.startswith("toolu_")


# ---------------------------------------------------------------- non-streaming
async def test_openai_non_streaming(srv: FakeLLMServer, oa: AsyncOpenAI) -> None:
    srv.enqueue(Text(TRICKY, input_tokens=40, output_tokens=9, cached_input_tokens=8), TWO_CALLS)
    done = await oa.chat.completions.create(model="gpt-4o-mini", messages=HI)
    assert done.object == "chat.completion"
    assert done.choices[0].message.content == TRICKY
    assert done.choices[0].finish_reason == "stop"
    assert (done.usage.prompt_tokens, done.usage.completion_tokens) == (40, 9)
    assert done.usage.prompt_tokens_details.cached_tokens == 8

    done = await oa.chat.completions.create(model="gpt-4o-mini", messages=HI, stream=False)
    message = done.choices[0].message
    assert message.content == "Let me check."
    assert [t.function.name for t in message.tool_calls] == ["get_weather", "calculator"]
    assert message.tool_calls[1].function.arguments == '{"expression": "2 * (3 + 4)"}'
    assert done.choices[0].finish_reason == "tool_calls"
    assert srv.requests[-1].json["stream"] is False


async def test_anthropic_non_streaming(srv: FakeLLMServer, an: AsyncAnthropic) -> None:
    srv.enqueue(Text(TRICKY, input_tokens=40, output_tokens=9, cached_input_tokens=8), TWO_CALLS)
    done = await an.messages.create(model="claude-haiku-4-5", max_tokens=64, messages=HI)
    assert done.type == "message"
    assert done.content[0].text == TRICKY
    assert done.stop_reason == "end_turn"
    assert (done.usage.input_tokens, done.usage.cache_read_input_tokens) == (32, 8)
    assert done.usage.output_tokens == 9

    done = await an.messages.create(model="claude-haiku-4-5", max_tokens=64, messages=HI)
    assert [b.type for b in done.content] == ["text", "tool_use", "tool_use"]
    assert done.content[1].input == {"city": "Paris", "unit": "celsius"}
    assert done.stop_reason == "tool_use"


# ---------------------------------------------------------------- errors
ERRORS = [
    # status, openai class, anthropic class, anthropic error.type, openai default code
    (401, openai.AuthenticationError, anthropic.AuthenticationError, "authentication_error",
     "invalid_api_key"),
    (404, openai.NotFoundError, anthropic.NotFoundError, "not_found_error", "model_not_found"),
    (429, openai.RateLimitError, anthropic.RateLimitError, "rate_limit_error",
     "rate_limit_exceeded"),
    (500, openai.InternalServerError, anthropic.InternalServerError, "api_error", None),
    (529, openai.InternalServerError, anthropic.OverloadedError, "overloaded_error", None),
]  # fmt: skip


@pytest.mark.parametrize(("status", "oa_cls", "an_cls", "an_type", "oa_code"), ERRORS)
async def test_http_errors_raise_the_sdk_exception(
    srv: FakeLLMServer,
    oa: AsyncOpenAI,
    an: AsyncAnthropic,
    status: int,
    oa_cls: type[openai.APIStatusError],
    an_cls: type[anthropic.APIStatusError],
    an_type: str,
    oa_code: str | None,
) -> None:
    srv.enqueue(HTTPError(status), HTTPError(status))

    with pytest.raises(oa_cls) as oa_err:
        await openai_chunks(oa)
    assert oa_err.value.status_code == status
    body = oa_err.value.body
    assert isinstance(body, dict)
    assert set(body) == {"message", "type", "param", "code"}
    assert body["code"] == oa_err.value.code == oa_code
    assert body["message"]
    assert oa_err.value.response.headers["x-request-id"].startswith("req_")

    with pytest.raises(an_cls) as an_err:
        await anthropic_events(an)
    exc = an_err.value
    assert exc.status_code == status
    assert isinstance(exc.body, dict)
    assert exc.body["type"] == "error"
    assert exc.body["error"]["type"] == exc.type == an_type
    assert exc.request_id is not None and exc.request_id.startswith("req_")
    assert exc.body["request_id"] == exc.request_id
    assert srv.pending == 0


async def test_openai_error_codes_and_messages(srv: FakeLLMServer, oa: AsyncOpenAI) -> None:
    srv.enqueue(
        HTTPError(429, code="insufficient_quota"),
        HTTPError(400, code="context_length_exceeded"),
        HTTPError(403, "Country not supported", type="request_forbidden", code="unsupported"),
    )
    with pytest.raises(openai.RateLimitError) as quota:
        await openai_chunks(oa)
    assert quota.value.type == "insufficient_quota"
    assert "quota" in quota.value.body["message"]

    with pytest.raises(openai.BadRequestError) as too_long:
        await oa.chat.completions.create(model="gpt-4o-mini", messages=HI)
    assert too_long.value.code == "context_length_exceeded"
    assert too_long.value.param == "messages"
    assert "maximum context length" in too_long.value.message

    with pytest.raises(openai.PermissionDeniedError) as forbidden:
        await openai_chunks(oa)
    assert forbidden.value.body == {
        "message": "Country not supported",
        "type": "request_forbidden",
        "param": None,
        "code": "unsupported",
    }


async def test_anthropic_error_code_selects_sdk_subclass(
    srv: FakeLLMServer, an: AsyncAnthropic
) -> None:
    srv.enqueue(HTTPError(429, "Spend limit reached", code="enforced_spend_limit_reached"))
    with pytest.raises(anthropic.RateLimitError) as err:
        await anthropic_events(an)
    assert err.value.error_code == "enforced_spend_limit_reached"
    assert type(err.value) is not anthropic.RateLimitError  # the SDK's more specific subclass
    assert err.value.api_message == "Spend limit reached"


async def test_retry_after_headers_are_visible(
    srv: FakeLLMServer, oa: AsyncOpenAI, an: AsyncAnthropic
) -> None:
    srv.enqueue(
        HTTPError(429, retry_after=7),
        HTTPError(529, retry_after_ms=1500),
        HTTPError(429, retry_after=0.5, retry_after_ms=250),
    )
    with pytest.raises(openai.RateLimitError) as first:
        await openai_chunks(oa)
    assert first.value.response.headers["retry-after"] == "7"
    assert "retry-after-ms" not in first.value.response.headers

    with pytest.raises(anthropic.OverloadedError) as second:
        await anthropic_events(an)
    assert second.value.response.headers["retry-after-ms"] == "1500"

    with pytest.raises(anthropic.RateLimitError) as third:
        await anthropic_events(an)
    assert third.value.response.headers["retry-after"] == "0.5"
    assert third.value.response.headers["retry-after-ms"] == "250"


async def test_sdks_honour_retry_after_ms(srv: FakeLLMServer) -> None:
    # Without the header both SDKs wait at most 0.5 s before their first retry, so an elapsed
    # time of at least 0.8 s proves they parsed the header the server sent.
    srv.enqueue(
        HTTPError(429, retry_after_ms=800),
        HTTPError(429, retry_after_ms=800),
        Text("ok"),
        Text("ok"),
    )
    async with (
        AsyncOpenAI(api_key=OPENAI_KEY, base_url=srv.openai_base_url, max_retries=1) as oa1,
        AsyncAnthropic(
            api_key=ANTHROPIC_KEY, base_url=srv.anthropic_base_url, max_retries=1
        ) as an1,
    ):
        started = time.monotonic()
        done_oa, done_an = await asyncio.gather(
            oa1.chat.completions.create(model="gpt-4o-mini", messages=HI),
            an1.messages.create(model="claude-haiku-4-5", max_tokens=8, messages=HI),
        )
        elapsed = time.monotonic() - started
    assert done_oa.choices[0].message.content == "ok"
    assert done_an.content[0].text == "ok"
    assert elapsed >= 0.78
    retries = [r.headers.get("x-stainless-retry-count") for r in srv.requests]
    assert sorted(retries) == ["0", "0", "1", "1"]


# ---------------------------------------------------------------- broken connections
async def test_drop_breaks_the_stream_after_the_partial_text(
    srv: FakeLLMServer, oa: AsyncOpenAI, an: AsyncAnthropic
) -> None:
    srv.enqueue(Drop("partial answer", chunk_chars=3), Drop("partial answer", chunk_chars=3))

    got: list[str] = []
    stream = await oa.chat.completions.create(model="gpt-4o-mini", messages=HI, stream=True)
    with pytest.raises(openai.APIConnectionError):
        async for chunk in stream:
            got.append(chunk.choices[0].delta.content or "")
    assert "".join(got) == "partial answer"

    got = []
    events = await an.messages.create(
        model="claude-haiku-4-5", max_tokens=8, messages=HI, stream=True
    )
    # anthropic 2.14 does not wrap transport errors raised mid-stream: the raw httpx2 error
    # reaches the caller, so Parley's adapter must catch httpx2.TransportError too.
    with pytest.raises((anthropic.APIConnectionError, httpx2.TransportError)):
        async for event in events:
            if event.type == "content_block_delta":
                got.append(event.delta.text)
    assert "".join(got) == "partial answer"


async def test_drop_before_response_and_non_streaming(
    srv: FakeLLMServer, oa: AsyncOpenAI, an: AsyncAnthropic
) -> None:
    srv.enqueue(Drop(before_response=True), Drop(before_response=True), Drop(), Drop())
    with pytest.raises(openai.APIConnectionError):
        await openai_chunks(oa)
    with pytest.raises(anthropic.APIConnectionError):
        await anthropic_events(an)
    with pytest.raises(openai.APIConnectionError):
        await oa.chat.completions.create(model="gpt-4o-mini", messages=HI)
    with pytest.raises(anthropic.APIConnectionError):
        await an.messages.create(model="claude-haiku-4-5", max_tokens=8, messages=HI)
    assert len(srv.requests) == 4


# ---------------------------------------------------------------- hostile modes (issue 11)
def _raw_post(srv: FakeLLMServer, path: str) -> httpx2.Response:
    body = {"model": "m", "max_tokens": 8, "stream": True, "messages": HI}
    with httpx2.Client() as client:
        response = client.post(srv.base_url + path, json=body)
        response.read()
        return response


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages"])
def test_cut_close_delimited_ends_cleanly_without_the_streams_end(
    srv: FakeLLMServer, path: str
) -> None:
    srv.enqueue(Cut("half of it", framing="close", chunk_chars=4))
    r = _raw_post(srv, path)  # read to the end without any transport error
    assert r.status_code == 200 and r.headers["connection"] == "close"
    assert "content-length" not in r.headers and "transfer-encoding" not in r.headers
    body = r.text
    assert "half" in body and " of " in body and "it" in body
    for end in ("[DONE]", 'finish_reason":"stop', "message_stop", "message_delta"):
        assert end not in body


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages"])
def test_cut_chunked_and_with_the_bare_end_marker(srv: FakeLLMServer, path: str) -> None:
    srv.enqueue(Cut("x", framing="chunked"), Cut("x", framing="chunked", end_marker=True))
    plain, marked = _raw_post(srv, path), _raw_post(srv, path)
    assert plain.headers["transfer-encoding"] == "chunked"
    marker = {
        "/v1/chat/completions": "data: [DONE]\n\n",
        "/v1/messages": 'event: message_stop\ndata: {"type":"message_stop"}\n\n',
    }[path]
    assert marker not in plain.text and marked.text.endswith(marker)
    assert 'stop_reason":"end_turn' not in marked.text
    assert 'finish_reason":"stop' not in marked.text


def test_not_a_stream_bad_utf8_raw_bytes_and_redirect(srv: FakeLLMServer) -> None:
    srv.enqueue(
        NotAStream(),
        NotAStream("application/json", NOT_A_COMPLETION_JSON),
        BadUTF8("a", b"\xff", "b"),
        StreamError("", raw=b"\xfe{not"),
        Redirect("http://127.0.0.1:9/elsewhere", status=308),
    )
    page = _raw_post(srv, "/v1/chat/completions")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.text == PORTAL_HTML
    js = _raw_post(srv, "/v1/messages")
    assert js.headers["content-type"] == "application/json" and js.json()["status"] == "ok"
    bad = _raw_post(srv, "/v1/chat/completions")
    assert b'"content":"\xff"' in bad.content
    raw = _raw_post(srv, "/v1/messages")
    assert b"data: \xfe{not\n\n" in raw.content
    with httpx2.Client() as client:  # not following it
        moved = client.post(srv.base_url + "/v1/chat/completions", json={"messages": HI})
    assert moved.status_code == 308
    assert moved.headers["location"] == "http://127.0.0.1:9/elsewhere"


def test_scripts_reject_what_proves_nothing() -> None:
    with pytest.raises(ValueError, match="must not be valid UTF-8"):
        BadUTF8(bad="é".encode())
    with pytest.raises(ValueError, match="not a redirect"):
        Redirect("http://x", status=200)
    with pytest.raises(ValueError, match="framing"):
        Cut(framing="gzip")  # type: ignore[arg-type]


async def test_stall_goes_silent_without_blocking_other_requests(
    srv: FakeLLMServer, oa: AsyncOpenAI, an: AsyncAnthropic
) -> None:
    srv.enqueue(Stall("partial", seconds=5, chunk_chars=2))
    stream = await oa.chat.completions.create(model="gpt-4o-mini", messages=HI, stream=True)
    it = stream.__aiter__()
    got = ""
    while got != "partial":
        got += (await asyncio.wait_for(it.__anext__(), 2)).choices[0].delta.content or ""

    # Meanwhile the server answers others.
    other = await asyncio.wait_for(
        an.messages.create(model="claude-haiku-4-5", max_tokens=8, messages=HI), 2
    )
    assert other.content[0].text == "You said: hi"
    busy = len(fake_threads(srv.port))  # the accept loop and both connections

    with pytest.raises(TimeoutError):
        await asyncio.wait_for(it.__anext__(), 0.3)
    # Timing out cancels the read, so the client drops the connection; the server notices at
    # once instead of sitting out the 5 s stall in a thread.
    deadline = time.monotonic() + 2
    while len(fake_threads(srv.port)) >= busy and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    assert len(fake_threads(srv.port)) == busy - 1
    await stream.close()


async def test_stall_then_completes(
    srv: FakeLLMServer, oa: AsyncOpenAI, an: AsyncAnthropic
) -> None:
    srv.enqueue(Stall("part", seconds=0.2), Stall("part", seconds=0.2))
    chunks = await openai_chunks(oa)
    assert openai_text(chunks) == "part"
    assert chunks[-1].choices[0].finish_reason == "stop"
    events = await anthropic_events(an)
    assert anthropic_text(events) == "part"
    assert events[-1].type == "message_stop"


async def test_stop_returns_promptly_with_a_stalled_connection() -> None:
    server = FakeLLMServer().start()
    server.enqueue(Stall("partial", seconds=30))
    async with AsyncAnthropic(
        api_key=ANTHROPIC_KEY, base_url=server.anthropic_base_url, max_retries=0
    ) as client:
        stream = await client.messages.create(
            model="claude-haiku-4-5", max_tokens=8, messages=HI, stream=True
        )
        it = stream.__aiter__()
        while (await asyncio.wait_for(it.__anext__(), 2)).type != "content_block_delta":
            pass

        started = time.monotonic()
        server.stop()
        assert time.monotonic() - started < 1.0
        assert fake_threads(server.port) == []

        with pytest.raises((anthropic.APIConnectionError, httpx2.TransportError)):
            async for _ in it:
                pass
    server.stop()  # idempotent


# ---------------------------------------------------------------- recording, models, queue
async def test_requests_are_recorded(
    srv: FakeLLMServer, oa: AsyncOpenAI, an: AsyncAnthropic
) -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    await openai_chunks(oa, tools=tools, temperature=0.2)
    await an.messages.create(
        model="claude-haiku-4-5", max_tokens=99, system="Be brief.", messages=HI
    )
    first, second = srv.wait_for_requests(2)

    assert (first.method, first.path, first.query) == ("POST", "/v1/chat/completions", "")
    assert first.headers["authorization"] == f"Bearer {OPENAI_KEY}"
    assert first.headers["content-type"] == "application/json"
    assert first.json == json.loads(first.body)
    assert first.json["stream"] is True
    assert first.json["tools"] == tools
    assert first.json["temperature"] == 0.2
    assert first.json["messages"] == HI

    assert (second.method, second.path) == ("POST", "/v1/messages")
    assert second.headers["authorization"] == f"Bearer {ANTHROPIC_KEY}"  # anthropic 2.14
    assert "anthropic-version" in second.headers
    assert second.json["system"] == "Be brief."
    assert second.json["max_tokens"] == 99
    assert "stream" not in second.json

    with pytest.raises(TimeoutError, match="2 of 3"):
        srv.wait_for_requests(3, timeout=0.05)
    assert len(await srv.wait_for_requests_async(2)) == 2


async def test_models_in_both_formats(
    srv: FakeLLMServer, oa: AsyncOpenAI, an: AsyncAnthropic
) -> None:
    srv.models = ["gpt-4o-mini", "claude-haiku-4-5", "local-llama"]
    listed = [m async for m in oa.models.list()]
    assert [m.id for m in listed] == srv.models
    assert {m.object for m in listed} == {"model"}
    assert (await oa.models.retrieve("local-llama")).id == "local-llama"
    with pytest.raises(openai.NotFoundError):
        await oa.models.retrieve("nope")

    infos = [m async for m in an.models.list()]
    assert [m.id for m in infos] == srv.models
    assert {m.type for m in infos} == {"model"}
    assert infos[1].display_name == "Claude Haiku 4 5"
    assert infos[0].created_at.year == 2025

    recorded = srv.requests
    assert [r.path for r in recorded][:1] == ["/v1/models"]
    assert "anthropic-version" not in recorded[0].headers
    assert "anthropic-version" in recorded[-1].headers
    assert recorded[-1].method == "GET"

    srv.models_error = HTTPError(401)
    with pytest.raises(openai.AuthenticationError):
        await oa.models.list()
    with pytest.raises(anthropic.AuthenticationError):
        await an.models.list()


async def test_empty_queue_echoes_and_queue_is_fifo_across_endpoints(
    srv: FakeLLMServer, oa: AsyncOpenAI, an: AsyncAnthropic
) -> None:
    parts = [{"type": "text", "text": "first part"}, {"type": "text", "text": "second"}]
    conversation = [
        {"role": "user", "content": "old question"},
        {"role": "assistant", "content": "old answer"},
        {"role": "user", "content": parts},
    ]
    assert openai_text(await openai_chunks(oa, messages=conversation)) == (
        "You said: first part\nsecond"
    )
    assert anthropic_text(await anthropic_events(an, messages=conversation)) == (
        "You said: first part\nsecond"
    )

    srv.enqueue(Text("one"), Text("two"), Text("three"))
    assert srv.pending == 3
    assert anthropic_text(await anthropic_events(an)) == "one"
    assert openai_text(await openai_chunks(oa)) == "two"
    assert anthropic_text(await anthropic_events(an)) == "three"
    assert srv.pending == 0
    with pytest.raises(TypeError):
        srv.enqueue("not a reply")  # type: ignore[arg-type]


async def test_anthropic_count_tokens_does_not_consume_the_queue(
    srv: FakeLLMServer, an: AsyncAnthropic
) -> None:
    srv.enqueue(Text("kept"))
    counted = await an.messages.count_tokens(model="claude-haiku-4-5", messages=HI)
    assert counted.input_tokens > 0
    assert srv.pending == 1


async def test_delays(srv: FakeLLMServer, oa: AsyncOpenAI) -> None:
    srv.enqueue(Text("abcdef", chunk_chars=2, delay=0.1), Text("x", first_byte_delay=0.3))
    stream = await oa.chat.completions.create(model="gpt-4o-mini", messages=HI, stream=True)
    stamps = [time.monotonic() async for c in stream if c.choices and c.choices[0].delta.content]
    assert len(stamps) == 3
    assert stamps[-1] - stamps[0] >= 0.18  # two pauses of 0.1 s between three pieces

    started = time.monotonic()
    await oa.chat.completions.create(model="gpt-4o-mini", messages=HI, stream=True)
    assert time.monotonic() - started >= 0.28  # create() returns once headers arrive


def test_bad_bodies_and_unknown_paths_get_vendor_errors(srv: FakeLLMServer) -> None:
    srv.enqueue(Text("untouched"))
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5)
    try:
        conn.request("POST", "/v1/chat/completions", body=b"{not json", headers={})
        response = conn.getresponse()
        assert response.status == 400
        assert json.loads(response.read())["error"]["type"] == "invalid_request_error"

        conn.request("POST", "/v1/messages", body=b"[]", headers={"anthropic-version": "x"})
        response = conn.getresponse()
        assert response.status == 400
        assert json.loads(response.read())["error"]["type"] == "invalid_request_error"

        conn.request("GET", "/v1/elsewhere")
        response = conn.getresponse()
        assert response.status == 404
        assert json.loads(response.read())["error"]["message"] == "Unknown path /v1/elsewhere"
    finally:
        conn.close()
    assert srv.pending == 1
    assert [r.path for r in srv.requests] == [
        "/v1/chat/completions",
        "/v1/messages",
        "/v1/elsewhere",
    ]
    assert srv.requests[0].json is None and srv.requests[0].body == b"{not json"


def test_many_sequential_servers_leave_no_threads() -> None:
    ports = set()
    for _ in range(15):
        with FakeLLMServer() as server:
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
            conn.request("GET", "/v1/models")  # keep-alive: the server must cut it on stop
            assert conn.getresponse().read()
            ports.add(server.port)
        conn.close()
        with pytest.raises(RuntimeError):
            server.start()
    assert len(ports) > 1
    assert [t for port in ports for t in fake_threads(port)] == []


# ---------------------------------------------------------------- speed
BIG = ("Parley streams long answers quickly. " * 3300)[:120_000]  # ~30,000 tokens


async def test_server_streams_30k_tokens_in_well_under_a_second(
    srv: FakeLLMServer, oa: AsyncOpenAI
) -> None:
    # Raw bytes through the SDK's transport: this times the server. Parsing the same 20,000
    # chunks into SDK objects costs AsyncOpenAI ~175 µs each here (3.5 s idle, far more
    # under load), which is why that is measured by hand rather than in the suite.
    srv.enqueue(Text(BIG))  # 20,000 SSE events at chunk_chars=6, ~5 MB
    started = time.monotonic()
    async with oa.chat.completions.with_streaming_response.create(
        model="gpt-4o-mini", messages=HI, stream=True
    ) as response:
        size = sum([len(b) async for b in response.iter_bytes()])
    elapsed = time.monotonic() - started
    print(f"\nraw SSE drain of {size:,} bytes: {elapsed:.3f} s")
    assert size > len(BIG)
    # ~0.15 s idle, ~0.5 s with both cores busy; the bound leaves room for a loaded CI box.
    assert elapsed < 1.5


# ---------------------------------------------------------------- standalone entry point
async def test_standalone_server_serves_the_demo_answer() -> None:
    repo = Path(__file__).resolve().parents[2]
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.fakes.server",
        "--port",
        "0",
        "--delay",
        "0",
        "--quiet",
        cwd=repo,
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(repo)},
    )
    try:
        assert proc.stdout is not None
        urls: dict[str, str] = {}
        while len(urls) < 2:
            line = (await asyncio.wait_for(proc.stdout.readline(), 10)).decode()
            assert line, "the server exited before printing its URLs"
            if "base URL:" in line:
                label, _, url = line.partition("base URL:")
                urls[label.strip()] = url.strip()
        question = "How do tables render?"
        async with (
            AsyncOpenAI(api_key="any", base_url=urls["OpenAI"], max_retries=0) as client,
            AsyncAnthropic(api_key="any", base_url=urls["Anthropic"], max_retries=0) as claude,
        ):
            messages = [{"role": "user", "content": question}]
            answer = openai_text(await openai_chunks(client, messages=messages))
            models = [m.id async for m in client.models.list()]
            claude_answer = anthropic_text(await anthropic_events(claude, messages=messages))
        assert f"> {question}" in answer
        assert "## " in answer
        assert "\n- " in answer
        assert "|---|" in answer
        assert "```python\n" in answer
        assert "[CommonMark](https://commonmark.org/help/)" in answer
        assert claude_answer == answer
        assert {"fake-model", "gpt-4o-mini", "claude-haiku-4-5"} <= set(models)
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)
        code = await asyncio.wait_for(proc.wait(), 10)
    assert code == 0
