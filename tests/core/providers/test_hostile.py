"""Hostile servers (issue 11), at the provider layer.

The real SDKs against the fake's hostile modes, for both wire formats. What a person sees of the
same cases is tested through ``parley ask`` (tests/core/test_cli_hostile.py) and the window
(tests/ui/test_hostile_window.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import pytest

from parley.core.errors import ProviderDown, ProviderTimeout, WrongEndpoint
from parley.core.providers.anthropic import AnthropicProvider
from parley.core.providers.base import Finished, StreamResult, Timeouts, Usage
from parley.core.providers.openai import OpenAIProvider
from parley.core.providers.resilient import ResilientProvider
from parley.core.providers.wire import SSEvent, sse_events
from tests.core.providers.streams import drain, req
from tests.fakes.script import (
    NOT_A_COMPLETION_JSON,
    BadUTF8,
    Call,
    Cut,
    NotAStream,
    Redirect,
    Stall,
    StreamError,
    Text,
    ToolCalls,
)
from tests.fakes.server import FakeLLMServer

KINDS = ["openai", "anthropic"]


def make(kind: str, srv: Any, **kw: Any) -> Any:
    if kind == "openai":
        return OpenAIProvider(api_key="sk-test-key", base_url=srv.openai_base_url, **kw)
    return AnthropicProvider(api_key="sk-ant-test", base_url=srv.anthropic_base_url, **kw)


async def drained(provider: Any) -> tuple[StreamResult, list[Any]]:
    """Drain one request and close the provider (its connections), whatever happens."""
    try:
        return await drain(provider, req())
    finally:
        await provider.aclose()


def chat_posts(srv: FakeLLMServer) -> list[Any]:
    return [r for r in srv.requests if r.method == "POST"]


async def partial_then_error(provider: Any, exc_type: type[Exception]) -> tuple[str, Any]:
    """Drain until the stream raises ``exc_type``; the text that arrived and the error."""
    result = StreamResult()
    try:
        with pytest.raises(exc_type) as info:
            async for ev in provider.stream(req()):
                result.feed(ev)
    finally:
        await provider.aclose()
    return result.text, info.value


# ---------------------------------------------------------------- 1. cut without its end
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("framing", ["close", "chunked"])
async def test_a_stream_cut_without_its_end_is_not_complete(
    kind: str, framing: str, fake_llm: Any
) -> None:
    # The HTTP body ends cleanly (a close-delimited body ends when the connection closes):
    # only the missing finish_reason/[DONE] or message_stop says the answer was cut.
    fake_llm.enqueue(Cut("The first half of", framing=framing))  # type: ignore[arg-type]
    text, err = await partial_then_error(make(kind, fake_llm), ProviderDown)
    assert text == "The first half of"
    assert err.user_message.endswith("dropped mid-answer; the answer was cut off.")
    assert err.retryable


@pytest.mark.parametrize("kind", KINDS)
async def test_a_cut_before_any_text_is_retried_like_a_failure_before_the_first_token(
    kind: str, fake_llm: Any
) -> None:
    fake_llm.enqueue(Cut(""), Text("the whole answer"))
    waits: list[float] = []

    async def no_wait(s: float) -> None:
        waits.append(s)

    provider = ResilientProvider(make(kind, fake_llm), sleep=no_wait)
    result, events = await drained(provider)
    assert result.text == "the whole answer"
    assert result.finish is not None and result.finish.reason == "stop"
    assert len(chat_posts(fake_llm)) == 2 and len(waits) == 1
    retry = next(e for e in events if type(e).__name__ == "RetryScheduled")
    assert retry.message.endswith("dropped before the answer began.")
    assert "cut off" not in retry.message


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("framing", ["close", "chunked"])
async def test_the_bare_end_marker_without_a_finish_reason_is_complete(
    kind: str, framing: str, fake_llm: Any
) -> None:
    # Some servers end with [DONE] (or message_stop) and never say why: the stream did end.
    fake_llm.enqueue(Cut("All of it.", framing=framing, end_marker=True))  # type: ignore[arg-type]
    result, _ = await drained(make(kind, fake_llm))
    assert result.text == "All of it." and result.finish == Finished("other", None)


# ---------------------------------------------------------------- 2. a 200 that is no stream
@pytest.mark.parametrize("kind", KINDS)
async def test_an_html_page_is_an_error_saying_so(kind: str, fake_llm: Any) -> None:
    fake_llm.enqueue(NotAStream())
    provider = ResilientProvider(make(kind, fake_llm))
    with pytest.raises(WrongEndpoint) as info:
        await drained(provider)
    msg = info.value.user_message
    assert f"at http://127.0.0.1:{fake_llm.port} answered with an HTML page" in msg
    assert "not a model stream: check the base URL" in msg
    assert '"Sign in to Guest Wi-Fi"' in msg
    assert len(chat_posts(fake_llm)) == 1  # the same page again would not help: no retry


@pytest.mark.parametrize("kind", KINDS)
async def test_json_that_is_no_completion_is_an_error_saying_so(kind: str, fake_llm: Any) -> None:
    fake_llm.enqueue(NotAStream("application/json", NOT_A_COMPLETION_JSON))
    with pytest.raises(WrongEndpoint, match="answered with JSON that is not a completion"):
        await drained(make(kind, fake_llm))


async def test_a_200_json_error_body_is_quoted(fake_llm: Any) -> None:
    body = '{"error": {"message": "Model  is\\nloading; key sk-abcdefghijklmnop", "code": 1}}'
    fake_llm.enqueue(NotAStream("application/json", body))
    with pytest.raises(WrongEndpoint) as info:
        await drained(make("openai", fake_llm))
    assert info.value.user_message.endswith(
        'not a model stream: check the base URL (it says "Model is loading; key [redacted]").'
    )


@pytest.mark.parametrize("kind", KINDS)
async def test_plain_text_is_an_error_saying_so(kind: str, fake_llm: Any) -> None:
    fake_llm.enqueue(NotAStream("text/plain", "It works!"))
    with pytest.raises(WrongEndpoint, match="answered with 'text/plain' content"):
        await drained(make(kind, fake_llm))


@pytest.mark.parametrize("kind", KINDS)
async def test_a_whole_completion_instead_of_a_stream_is_used(kind: str, fake_llm: Any) -> None:
    # A server that ignores "stream": true and answers with the whole completion as JSON:
    # that IS an answer. The fake renders its JSON form when asked without streaming, so
    # the JSON body is captured first and replayed as the reply to a streaming request.
    fake_llm.enqueue(ToolCalls([Call("calculator", '{"expression": "2+2"}')], text="Let me add."))
    path = "/v1/chat/completions" if kind == "openai" else "/v1/messages"
    body = {"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "q"}]}
    whole = httpx2.post(fake_llm.base_url + path, json=body)  # the non-streaming answer
    assert whole.status_code == 200
    fake_llm.enqueue(NotAStream("application/json", whole.text))
    result, _ = await drained(make(kind, fake_llm))
    assert result.text == "Let me add."
    assert [(c.name, c.arguments.replace(" ", "")) for c in result.tool_calls] == [
        ("calculator", '{"expression":"2+2"}')
    ]
    assert result.finish is not None and result.finish.reason == "tool_calls"
    assert result.usage.output_tokens


# ---------------------------------------------------------------- 3. malformed data
@pytest.mark.parametrize("kind", KINDS)
async def test_invalid_utf8_in_a_delta_decodes_leniently(kind: str, fake_llm: Any) -> None:
    bad = BadUTF8("Caf", b"\xe9\x80", " au lait.")
    fake_llm.enqueue(bad)
    result, _ = await drained(make(kind, fake_llm))
    assert result.text == "Caf" + b"\xe9\x80".decode("utf-8", "replace") + " au lait."
    assert result.finish is not None and result.finish.reason == "stop"


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("raw", ["{not json", b'{"text": "\xff\xfe', "data"])
async def test_undecodable_data_is_a_malformed_chunk_keeping_the_partial(
    kind: str, raw: str | bytes, fake_llm: Any
) -> None:
    fake_llm.enqueue(StreamError("Kept so far", raw=raw))
    text, err = await partial_then_error(make(kind, fake_llm), ProviderDown)
    assert text == "Kept so far"
    what = "chunk" if kind == "openai" else "event"
    assert err.user_message.endswith(f"sent a malformed {what} mid-answer; the answer was cut off.")


@pytest.mark.parametrize("kind", KINDS)
async def test_malformed_data_before_any_text_does_not_say_cut_off(
    kind: str, fake_llm: Any
) -> None:
    fake_llm.enqueue(StreamError("", raw="{not json"))
    text, err = await partial_then_error(make(kind, fake_llm), ProviderDown)
    assert text == ""
    assert err.user_message.endswith("before answering.") and "cut off" not in err.user_message


# ---------------------------------------------------------------- 10. redirects
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("status", [307, 308, 302])
async def test_a_redirect_to_another_server_is_refused(kind: str, status: int) -> None:
    with FakeLLMServer() as origin, FakeLLMServer() as elsewhere:
        path = "/v1/chat/completions" if kind == "openai" else "/v1/messages"
        target = f"http://user:secret@127.0.0.1:{elsewhere.port}{path}?token=secret"
        origin.enqueue(Redirect(target, status=status))
        provider = ResilientProvider(make(kind, origin))
        with pytest.raises(WrongEndpoint) as info:
            await drained(provider)
        assert elsewhere.requests == []  # the conversation never left for the other server
        msg = info.value.user_message
        assert f"redirected the request to {elsewhere.base_url}{path} (HTTP {status})" in msg
        assert "secret" not in msg  # a query string may carry tokens
        assert len(chat_posts(origin)) == 1


@pytest.mark.parametrize("kind", KINDS)
async def test_a_redirect_on_the_same_server_is_followed(kind: str, fake_llm: Any) -> None:
    path = "/v1/chat/completions" if kind == "openai" else "/v1/messages"
    fake_llm.enqueue(Redirect(path), Text("followed"))  # relative: the same origin
    result, _ = await drained(make(kind, fake_llm))
    assert result.text == "followed"
    assert len(chat_posts(fake_llm)) == 2


@pytest.mark.parametrize("kind", KINDS)
async def test_model_listing_refuses_a_redirect_to_another_server(kind: str) -> None:
    with FakeLLMServer() as origin, FakeLLMServer() as elsewhere:
        origin.models_error = Redirect(elsewhere.base_url + "/v1/models")
        provider = make(kind, origin)
        with pytest.raises(WrongEndpoint, match="redirected the request to"):
            await provider.list_models()
        await provider.aclose()
        assert elsewhere.requests == []


# ---------------------------------------------------------------- 11. wording
@pytest.mark.parametrize("kind", KINDS)
async def test_a_stall_before_any_text_does_not_say_cut_off(kind: str, fake_llm: Any) -> None:
    fake_llm.enqueue(Stall("", seconds=10))
    provider = make(kind, fake_llm, timeouts=Timeouts(connect=2, first_byte=5, idle=0.5))
    text, err = await partial_then_error(provider, ProviderTimeout)
    assert text == ""
    assert err.user_message.endswith("began its reply but sent no answer for 0.5 s.")


async def test_anthropic_cut_keeps_the_input_usage_it_reported(fake_llm: Any) -> None:
    fake_llm.enqueue(Cut("Half", framing="close"))
    provider = make("anthropic", fake_llm)
    events: list[Any] = []
    with pytest.raises(ProviderDown):
        async for ev in provider.stream(req()):
            events.append(ev)
    await provider.aclose()
    usage = [e for e in events if isinstance(e, Usage)]
    assert usage and usage[0].input_tokens  # message_start's input tokens are billed


# ---------------------------------------------------------------- the event-stream reader
async def _feed(*chunks: bytes) -> AsyncIterator[bytes]:
    for c in chunks:
        await asyncio.sleep(0)
        yield c


async def events_of(*chunks: bytes) -> list[SSEvent]:
    return [e async for e in sse_events(_feed(*chunks))]


async def test_sse_line_ends_split_across_reads() -> None:
    got = await events_of(b"event: a\r", b"\ndata: 1\r", b"\n\r", b"\ndata: 2\r\rdata: 3\n\n")
    assert got == [SSEvent("a", "1"), SSEvent(None, "2"), SSEvent(None, "3")]


async def test_sse_keeps_unicode_line_separators_and_split_characters() -> None:
    text = "a\u2028b😀"
    data = f"data: {text}\n\n".encode()
    cut = data.index("😀".encode()) + 2  # in the middle of the emoji's bytes
    got = await events_of(data[:cut], data[cut:])
    assert got == [SSEvent(None, text)]


async def test_sse_comments_multiline_data_and_an_event_cut_at_the_end() -> None:
    got = await events_of(b": keep-alive\n\ndata: x\ndata:y\nid: 3\n\ndata: never ended")
    assert got == [SSEvent(None, "x\ny")]


async def test_sse_invalid_utf8_becomes_replacement_characters() -> None:
    got = await events_of(b"data: caf\xe9!\n\n")
    assert got == [SSEvent(None, "caf\ufffd!")]
