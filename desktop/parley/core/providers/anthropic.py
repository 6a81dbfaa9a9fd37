"""Anthropic Messages adapter over the official ``anthropic`` SDK.

System prompt is a top-level field; tool calls are ``tool_use`` blocks and their results
``tool_result`` blocks in the next user message. Usage comes from ``message_start``
(input and cache tokens) and ``message_delta`` (output tokens) and is reported once, as
totals, just before :class:`Finished`.

The SDK sends the request, checks the status and raises its typed errors; the 200 body is
read by :mod:`~parley.core.providers.wire`, as in ``openai.py`` (lenient decoding, a page
that is no stream refused for what it is), and events stay plain JSON, not the SDK's
pydantic models, which cost far more Python per event than the rest of the stream. Pings
are skipped and ``event: error`` ends the stream with the vendor's error. A stream is
complete only once it says so (``message_stop``, or a ``stop_reason``): a body that ends
before that was cut off, however cleanly the connection closed (issue 11).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

from parley.core.errors import BadRequest, ParleyError, ProviderDown, ProviderTimeout
from parley.core.providers.base import (
    ChatRequest,
    Finished,
    FinishReason,
    ModelInfo,
    StreamEvent,
    TextDelta,
    Timeouts,
    ToolCall,
    ToolCallDelta,
    ToolCallDone,
    ToolCallStarted,
    Usage,
)
from parley.core.providers.http_errors import (
    MALFORMED,
    dropped,
    error_for_status,
    malformed,
    stream_failure,
)
from parley.core.providers.stall import StallGuard
from parley.core.providers.wire import (
    SSEvent,
    check_stream,
    drain,
    http_client,
    sse_events,
    unwrap,
)

DEFAULT_MAX_TOKENS = 8192
"""Anthropic requires max_tokens; used when neither settings nor the catalog say."""

_FINISH: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
    "pause_turn": "other",
}


CACHE_MARK: dict[str, str] = {"type": "ephemeral"}
"""A prompt-caching breakpoint: the prefix up to and including the marked block is cached."""


def to_anthropic_messages(request: ChatRequest) -> list[dict[str, Any]]:
    """Our messages as Messages API turns: tool results merged into one user turn.

    With ``request.cache_prefix`` set, the last block of the prefix's last message carries
    a ``cache_control`` breakpoint (issue 13).
    """
    out: list[dict[str, Any]] = []
    last_block: dict[int, dict[str, Any]] = {}  # our message index -> its last block

    def push(role: str, blocks: list[dict[str, Any]]) -> None:
        if out and out[-1]["role"] == role:
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": role, "content": blocks})

    for index, m in enumerate(request.messages):
        if m.role == "system":
            continue  # the system prompt travels in the top-level field
        if m.role == "tool":
            block: dict[str, Any] = {
                "type": "tool_result",
                "tool_use_id": m.tool_call_id or "",
                "content": m.content,
            }
            if m.is_error:
                block["is_error"] = True
            push("user", [block])
        elif m.role == "assistant":
            blocks: list[dict[str, Any]] = []
            if m.content:
                blocks.append({"type": "text", "text": m.content})
            for c in m.tool_calls:
                blocks.append(
                    {
                        "type": "tool_use",
                        "id": c.id,
                        "name": c.name,
                        "input": _json_object(c.arguments),
                    }
                )
            if blocks:
                push("assistant", blocks)
        else:
            push("user", [{"type": "text", "text": m.content}])
        if out and out[-1]["content"]:
            last_block[index] = out[-1]["content"][-1]
    k = request.cache_prefix
    if k:
        marked = [i for i in last_block if i < k]
        if marked:
            last_block[max(marked)]["cache_control"] = dict(CACHE_MARK)
    return out


def _json_object(text: str) -> dict[str, Any]:
    # The API requires tool_use.input to be an object; a model's invalid JSON is sent back
    # as {} (the tool_result that follows tells the model what was wrong).
    try:
        value = json.loads(text) if text.strip() else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


class AnthropicProvider:
    """Messages API over the official SDK.

    Args:
        api_key: The key.
        base_url: Endpoint override (or ``ANTHROPIC_BASE_URL``, read by the SDK).
        timeouts: Connect / first byte / idle limits.
        default_max_tokens: ``max_tokens`` when the request has none.
        client: A ready-made ``AsyncAnthropic``.
    """

    def __init__(
        self,
        *,
        name: str = "anthropic",
        label: str = "Anthropic",
        api_key: str | None = None,
        base_url: str | None = None,
        timeouts: Timeouts | None = None,
        default_max_tokens: int = DEFAULT_MAX_TOKENS,
        client: Any = None,
    ) -> None:
        self.name = name
        self.label = label
        self.timeouts = timeouts or Timeouts()
        self.default_max_tokens = default_max_tokens
        self._api_key = api_key
        self._base_url = base_url
        self._client = client

    @property
    def client(self) -> Any:
        """The SDK client, created on first use (``import anthropic`` costs ~0.9 s)."""
        if self._client is None:
            import anthropic

            t = self.timeouts
            self._client = anthropic.AsyncAnthropic(
                api_key=self._api_key,
                base_url=self._base_url,
                http_client=http_client(anthropic, self.label),
                max_retries=0,
                timeout=anthropic.Timeout(
                    connect=t.connect, read=max(t.first_byte, t.idle), write=30.0, pool=t.connect
                ),
            )
        return self._client

    # ---- Public API
    async def stream(self, request: ChatRequest) -> AsyncGenerator[StreamEvent, None]:
        """Stream one message as events."""
        import anthropic

        params: dict[str, Any] = {
            "model": request.model,
            "messages": to_anthropic_messages(request),
            "max_tokens": request.max_output_tokens or self.default_max_tokens,
            "stream": True,
        }
        if request.system:
            params["system"] = request.system
        if request.tools:
            params["tools"] = [
                {"name": t.name, "description": t.description, "input_schema": t.parameters}
                for t in request.tools
            ]
        if request.cache_prefix is not None:
            # Prompt caching: breakpoints after the tools and the system prompt (the
            # messages' one is set above); a prefix shorter than the model's minimum is
            # simply not cached by the API.
            if request.tools:
                params["tools"][-1]["cache_control"] = dict(CACHE_MARK)
            if request.system:
                params["system"] = [
                    {"type": "text", "text": request.system, "cache_control": dict(CACHE_MARK)}
                ]
        if request.temperature is not None:
            params["temperature"] = min(request.temperature, 1.0)  # Anthropic's range is 0..1
        if request.top_p is not None:
            params["top_p"] = request.top_p

        t = self.timeouts
        response = None
        error: ParleyError | None = None
        started = said = False  # any event arrived / answer content arrived
        state = _StreamState()
        try:
            with StallGuard(t.first_byte, t.idle) as guard:
                raw = await guard.wait(self.client.messages.with_raw_response.create(**params))
                response = raw.http_response
                whole = await guard.wait(
                    check_stream(response, self.label, is_completion=_is_message)
                )
                if whole is None:
                    items: AsyncIterator[Any] = sse_events(response.aiter_bytes())
                else:  # a server that does not stream sent the whole message
                    items = _as_events(whole)
                while True:
                    try:
                        item = await guard.wait(items.__anext__())
                    except StopAsyncIteration:
                        break
                    guard.started = started = True
                    if isinstance(item, SSEvent):
                        if item.event in (None, "ping") or not item.data:
                            continue  # as the SDK: only named events carry the stream
                        if item.event == "error":
                            raise _stream_error(item.data, self.label, request.model, said)
                        try:
                            item = json.loads(item.data)
                        except ValueError:
                            raise malformed(self.label, "event", item.data, said=said) from None
                    try:
                        out = state.feed(item)
                    except MALFORMED:
                        raise malformed(self.label, "event", item, said=said) from None
                    for ev in out:
                        said = True
                        yield ev
                    if state.stopped:
                        await drain(items)
                        break
                if state.finish is None and not state.stopped:
                    # The body ended (cleanly or not) before message_stop.
                    raise dropped(self.label, said=said)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            failure = stream_failure(
                exc,
                sdk=anthropic,
                label=self.label,
                model=request.model,
                status_error=_status_error,
                limits=(t.first_byte, t.idle),
                started=started,
                said=said,
                responded=response is not None,
            )
            if not isinstance(failure, ParleyError):
                raise  # not a failure we know: a bug, with its traceback
            error = failure
        finally:
            if response is not None:
                await response.aclose()
        # Usage first, also when the stream failed: message_start's input tokens are billed
        # even when the answer is cut off.
        if state.usage_in is not None or state.usage_out is not None:
            yield Usage(state.usage_in, state.usage_out, state.usage_cached, state.usage_write)
        if error is not None:
            raise error
        yield state.finish or Finished("other", None)

    async def list_models(self) -> list[ModelInfo]:
        """``GET /v1/models``."""
        import anthropic

        try:
            async with asyncio.timeout(self.timeouts.first_byte):
                page = await self.client.models.list()
                return [ModelInfo(m.id, None) async for m in page]
        except TimeoutError:
            raise ProviderTimeout(f"{self.label} did not list its models in time.") from None
        except anthropic.APIStatusError as exc:
            raise _status_error(exc, self.label, "(models)") from None
        except anthropic.APIConnectionError as exc:
            cause = unwrap(exc)
            if isinstance(cause, ParleyError):  # the redirect guard refused
                raise cause from None
            raise ProviderDown(f"Could not reach {self.label}.") from None
        except (anthropic.APIError, ValueError) as exc:  # ValueError: a body that is not JSON
            raise BadRequest(
                f"{self.label} gave an unexpected model list.", detail=str(exc)
            ) from None

    async def aclose(self) -> None:
        """Close the SDK client's connections."""
        if self._client is not None:
            await self._client.close()


class _StreamState:
    """What one Messages stream has said so far; :meth:`feed` turns an event into ours.

    Usage is kept, not yielded: ``message_start`` has the input side, ``message_delta`` the
    output (and, on some gateways, the input again); the caller reports the totals once.
    """

    def __init__(self) -> None:
        self.usage_in: int | None = None
        self.usage_out: int | None = None
        self.usage_cached: int | None = None
        self.usage_write: int | None = None
        self.finish: Finished | None = None
        self.stopped = False
        """``message_stop`` arrived: the stream's end."""
        self.blocks: dict[int, list[str]] = {}  # index -> [tool id, name, json text]

    def feed(self, ev: Any) -> list[StreamEvent]:
        """Our events for one decoded SSE event (raises on a malformed one)."""
        kind = ev.get("type")
        if kind == "content_block_delta":
            d = ev["delta"]
            index = int(ev["index"])
            if d.get("type") == "text_delta":
                return [TextDelta(str(d["text"]))] if d["text"] else []
            if d.get("type") == "input_json_delta" and index in self.blocks:
                part = str(d.get("partial_json") or "")
                self.blocks[index][2] += part
                return [ToolCallDelta(index, part)]
        elif kind == "content_block_start":
            cb = ev["content_block"]
            index = int(ev["index"])
            if cb.get("type") == "tool_use":
                self.blocks[index] = [str(cb["id"]), str(cb["name"]), ""]
                return [ToolCallStarted(index, self.blocks[index][0], self.blocks[index][1])]
            if cb.get("type") == "text" and cb.get("text"):
                return [TextDelta(str(cb["text"]))]
        elif kind == "content_block_stop":
            index = int(ev["index"])
            entry = self.blocks.pop(index, None)
            if entry is not None:
                return [ToolCallDone(index, ToolCall(entry[0], entry[1], entry[2] or "{}"))]
        elif kind == "message_start":
            u = ev["message"].get("usage") or {}
            self.usage_cached = u.get("cache_read_input_tokens") or 0
            self.usage_write = u.get("cache_creation_input_tokens") or 0
            self.usage_in = (u.get("input_tokens") or 0) + self.usage_cached + self.usage_write
            self.usage_out = u.get("output_tokens")
        elif kind == "message_stop":
            self.stopped = True
        elif kind == "message_delta":
            u = ev.get("usage")
            if u:
                self.usage_out = u.get("output_tokens")
                if u.get("input_tokens") is not None:
                    self.usage_cached = u.get("cache_read_input_tokens") or self.usage_cached
                    self.usage_write = u.get("cache_creation_input_tokens") or self.usage_write
                    self.usage_in = (
                        u["input_tokens"] + (self.usage_cached or 0) + (self.usage_write or 0)
                    )
            reason = (ev.get("delta") or {}).get("stop_reason")
            if reason:
                self.finish = Finished(_FINISH.get(reason, "other"), reason)
        return []


def _is_message(payload: dict[str, Any]) -> bool:
    """A whole Messages API ``message`` (a server that answered a stream request without one)."""
    return payload.get("type") == "message" and isinstance(payload.get("content"), list)


async def _as_events(message: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
    """A whole ``message`` as the decoded events that stream the same answer."""
    usage = message.get("usage") or {}
    yield {"type": "message_start", "message": {**message, "content": [], "usage": usage}}
    for index, block in enumerate(message["content"]):
        if block.get("type") == "tool_use":
            start = {**block, "input": {}}
            yield {"type": "content_block_start", "index": index, "content_block": start}
            partial = json.dumps(block.get("input") or {})
            delta = {"type": "input_json_delta", "partial_json": partial}
            yield {"type": "content_block_delta", "index": index, "delta": delta}
        else:
            yield {"type": "content_block_start", "index": index, "content_block": block}
        yield {"type": "content_block_stop", "index": index}
    yield {
        "type": "message_delta",
        "delta": {"stop_reason": message.get("stop_reason")},
        "usage": {"output_tokens": usage.get("output_tokens")},
    }
    yield {"type": "message_stop"}


def _stream_error(data: str, label: str, model: str, said: bool) -> ParleyError:
    """The error for an ``event: error`` inside a 200 stream (how overload arrives mid-answer)."""
    try:
        body = json.loads(data)
    except ValueError:
        body = {"error": {"message": data}}
    err = body.get("error") if isinstance(body, dict) else None
    if not isinstance(err, dict):
        err = {"message": str(body)}
    return error_for_status(
        200,
        provider_label=label,
        model=model,
        err_type=str(err.get("type") or "") or None,
        message=str(err.get("message") or ""),
        said=said,
    )


def _status_error(exc: Any, label: str, model: str) -> ParleyError:
    body = exc.body if isinstance(exc.body, dict) else {}
    err = body.get("error", {}) if isinstance(body, dict) else {}
    if not isinstance(err, dict):
        err = {}
    err_type = err.get("type")
    # The SDK has dedicated classes for spend limits; their names say so.
    cls = type(exc).__name__
    if "SpendLimit" in cls or "Billing" in cls or cls == "PaymentRequiredError":
        err_type = f"{err_type or ''} spend limit billing".strip()
    return error_for_status(
        exc.status_code,
        provider_label=label,
        model=model,
        headers=dict(exc.response.headers) if exc.response is not None else None,
        err_type=err_type,
        message=str(err.get("message") or ""),
    )
