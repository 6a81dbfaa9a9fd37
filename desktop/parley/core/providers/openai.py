"""OpenAI Chat Completions adapter (also every OpenAI-compatible server).

The official ``openai`` SDK sends the request, checks the status and raises its typed
errors; this module maps our request to its parameters and the streamed chunks to our
events. SDK retries are off (``max_retries=0``): ``resilient.py`` owns retrying, so one
failure never becomes nine requests.

The 200 body is read by :mod:`~parley.core.providers.wire` (shared with the Anthropic
adapter), not by the SDK's stream class: it decodes leniently, refuses an HTML page or a
non-completion JSON for what it is, and lets this adapter see ``data: [DONE]``, so a stream
that ends without a finish reason and without ``[DONE]`` is reported as cut off instead of
saved as complete (issue 11). Chunks stay plain JSON, not the SDK's pydantic
``ChatCompletionChunk`` models: building those costs ~270 µs of Python per chunk, ~9 s for a
30,000-token answer from a fast local server, against ~30 µs this way. A mid-stream
``{"error": ...}`` payload ends the stream with the vendor's error.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

from parley.core.errors import (
    BadRequest,
    ParleyError,
    ProviderDown,
    ProviderTimeout,
)
from parley.core.providers.base import (
    ChatRequest,
    Finished,
    FinishReason,
    Message,
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

_FINISH: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
}


def to_openai_messages(request: ChatRequest) -> list[dict[str, Any]]:
    """Our messages in Chat Completions form (system first)."""
    out: list[dict[str, Any]] = []
    if request.system:
        out.append({"role": "system", "content": request.system})
    for m in request.messages:
        out.append(_message(m))
    return out


def _message(m: Message) -> dict[str, Any]:
    if m.role == "tool":
        return {"role": "tool", "tool_call_id": m.tool_call_id or "", "content": m.content}
    if m.role == "assistant" and m.tool_calls:
        return {
            "role": "assistant",
            "content": m.content or None,
            "tool_calls": [
                {
                    "id": c.id,
                    "type": "function",
                    "function": {"name": c.name, "arguments": c.arguments},
                }
                for c in m.tool_calls
            ],
        }
    return {"role": m.role, "content": m.content}


class OpenAIProvider:
    """Chat Completions over the official SDK.

    Args:
        name: Provider id ("openai", "openai-compatible", or a preset like "groq").
        label: Name shown to people in errors.
        api_key: The key; local servers accept any placeholder.
        base_url: Endpoint; None means the SDK's default (or ``OPENAI_BASE_URL``).
        timeouts: Connect / first byte / idle limits.
        client: A ready-made ``AsyncOpenAI`` (tests, shared clients).
    """

    def __init__(
        self,
        *,
        name: str = "openai",
        label: str = "OpenAI",
        api_key: str | None = None,
        base_url: str | None = None,
        timeouts: Timeouts | None = None,
        client: Any = None,
    ) -> None:
        self.name = name
        self.label = label
        self.timeouts = timeouts or Timeouts()
        self._api_key = api_key
        self._base_url = base_url
        self._client = client

    @property
    def client(self) -> Any:
        """The SDK client, created on first use (the SDK import is lazy: ~0.4 s)."""
        if self._client is None:
            import openai

            t = self.timeouts
            self._client = openai.AsyncOpenAI(
                api_key=self._api_key or "not-needed",
                base_url=self._base_url,
                http_client=http_client(openai, self.label),
                max_retries=0,
                timeout=openai.Timeout(
                    connect=t.connect, read=max(t.first_byte, t.idle), write=30.0, pool=t.connect
                ),
            )
        return self._client

    # ---- Public API
    async def stream(self, request: ChatRequest) -> AsyncGenerator[StreamEvent, None]:
        """Stream one completion as events. See :class:`~parley.core.providers.base.Provider`."""
        import openai

        params: dict[str, Any] = {
            "model": request.model,
            "messages": to_openai_messages(request),
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if request.tools:
            params["tools"] = [
                {
                    "type": "function",
                    "function": {
                        "name": t.name,
                        "description": t.description,
                        "parameters": t.parameters,
                    },
                }
                for t in request.tools
            ]
        if request.temperature is not None:
            params["temperature"] = request.temperature
        if request.top_p is not None:
            params["top_p"] = request.top_p
        if request.max_output_tokens is not None:
            # OpenAI's newer models reject max_tokens; local servers mostly know only it.
            key = "max_completion_tokens" if self.name == "openai" else "max_tokens"
            params[key] = request.max_output_tokens

        t = self.timeouts
        response = None
        error: ParleyError | None = None
        calls: dict[int, list[str]] = {}  # index -> [id, name, arguments]
        finish: Finished | None = None
        done = False  # "data: [DONE]" arrived
        started = said = False  # any event arrived / answer content arrived
        try:
            with StallGuard(t.first_byte, t.idle) as guard:
                raw = await guard.wait(
                    self.client.chat.completions.with_raw_response.create(**params)
                )
                response = raw.http_response
                whole = await guard.wait(
                    check_stream(response, self.label, is_completion=_is_completion)
                )
                if whole is None:
                    items: AsyncIterator[Any] = sse_events(response.aiter_bytes())
                else:  # a server that does not stream sent the whole completion
                    items, done = _single(_as_chunk(whole)), True
                while True:
                    try:
                        item = await guard.wait(items.__anext__())
                    except StopAsyncIteration:
                        break
                    guard.started = started = True
                    if not isinstance(item, SSEvent):
                        chunk = item
                    elif item.data.startswith("[DONE]"):
                        done = True
                        await drain(items)
                        break
                    else:
                        try:
                            chunk = json.loads(item.data)
                        except ValueError:
                            raise malformed(self.label, "chunk", item.data, said=said) from None
                    if isinstance(chunk, dict) and chunk.get("error"):
                        raise _stream_error(chunk["error"], self.label, request.model, said)
                    try:
                        out, reason = _chunk_events(chunk, calls)
                    except MALFORMED:
                        raise malformed(self.label, "chunk", chunk, said=said) from None
                    for ev in out:
                        said = said or not isinstance(ev, Usage)
                        yield ev
                    if reason:
                        for idx in sorted(calls):
                            cid, name, args = calls.pop(idx)
                            yield ToolCallDone(idx, ToolCall(cid, name, args))
                        finish = Finished(_FINISH.get(reason, "other"), reason)
                if finish is None and not done:
                    # The body ended (cleanly or not) before the stream's own end.
                    raise dropped(self.label, said=said)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            failure = stream_failure(
                exc,
                sdk=openai,
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
        if error is not None:
            raise error
        for idx in sorted(calls):  # a server that sent [DONE] but no finish_reason
            cid, name, args = calls[idx]
            yield ToolCallDone(idx, ToolCall(cid, name, args))
        yield finish or Finished("other", None)

    async def list_models(self) -> list[ModelInfo]:
        """``GET /v1/models``."""
        import openai

        try:
            async with asyncio.timeout(self.timeouts.first_byte):
                page = await self.client.models.list()
                return [ModelInfo(m.id, getattr(m, "owned_by", None)) async for m in page]
        except TimeoutError:
            raise ProviderTimeout(f"{self.label} did not list its models in time.") from None
        except openai.APIStatusError as exc:
            raise _status_error(exc, self.label, "(models)") from None
        except openai.APIConnectionError as exc:
            cause = unwrap(exc)
            if isinstance(cause, ParleyError):  # the redirect guard refused
                raise cause from None
            raise ProviderDown(f"Could not reach {self.label}.") from None
        except (openai.APIError, ValueError) as exc:  # ValueError: a body that is not JSON
            raise BadRequest(
                f"{self.label} gave an unexpected model list.", detail=str(exc)
            ) from None

    async def aclose(self) -> None:
        """Close the SDK client's connections."""
        if self._client is not None:
            await self._client.close()


def _chunk_events(chunk: Any, calls: dict[int, list[str]]) -> tuple[list[StreamEvent], str | None]:
    """Events in one decoded ``chat.completion.chunk``, and its finish reason if any.

    Raises one of ``MALFORMED`` on a chunk that is not shaped like one.
    """
    out: list[StreamEvent] = []
    finish_reason: str | None = None
    usage = chunk.get("usage")
    if usage:
        details = usage.get("prompt_tokens_details") or {}
        out.append(
            Usage(
                input_tokens=_count(usage.get("prompt_tokens")),
                output_tokens=_count(usage.get("completion_tokens")),
                cached_input_tokens=_count(details.get("cached_tokens")) or 0,
                # Gateways that bill cache writes (OpenRouter) report them here.
                cache_write_tokens=_count(details.get("cache_write_tokens")) or 0,
            )
        )
    for choice in chunk.get("choices") or ():
        delta = choice.get("delta")
        if delta:
            content = delta.get("content")
            if content:
                out.append(TextDelta(str(content)))
            tool_calls = delta.get("tool_calls")
            if tool_calls:
                out.extend(_tool_deltas(tool_calls, calls))
        reason = choice.get("finish_reason")
        if reason:
            finish_reason = str(reason)
    return out, finish_reason


def _is_completion(payload: dict[str, Any]) -> bool:
    """A whole ``chat.completion`` (a server that answered a stream request without one)."""
    choices = payload.get("choices")
    return isinstance(choices, list) and any(
        isinstance(c, dict) and isinstance(c.get("message"), dict) for c in choices
    )


async def _single(item: Any) -> AsyncIterator[Any]:
    yield item


def _as_chunk(whole: dict[str, Any]) -> dict[str, Any]:
    """A ``chat.completion`` rewritten as the single chunk that streams the same answer."""
    choices = []
    for choice in whole.get("choices") or ():
        message = dict(choice.get("message") or {})
        calls = message.get("tool_calls") or []
        message["tool_calls"] = [{**c, "index": i} for i, c in enumerate(calls)] or None
        choices.append({"delta": message, "finish_reason": choice.get("finish_reason")})
    return {"choices": choices, "usage": whole.get("usage")}


def _stream_error(err: Any, label: str, model: str, said: bool) -> ParleyError:
    """The error for a ``data: {"error": ...}`` event inside a 200 stream."""
    err = err if isinstance(err, dict) else {"message": str(err)}
    return error_for_status(
        200,
        provider_label=label,
        model=model,
        err_type=str(err.get("type") or "") or None,
        err_code=str(err.get("code") or "") or None,
        message=str(err.get("message") or ""),
        said=said,
    )


def _count(value: Any) -> int | None:
    return None if value is None else int(value)


def _tool_deltas(deltas: Any, calls: dict[int, list[str]]) -> list[StreamEvent]:
    out: list[StreamEvent] = []
    for tc in deltas:
        index = tc.get("index")
        idx = int(index) if index is not None else len(calls)
        fn = tc.get("function") or {}
        name = fn.get("name")
        arguments = fn.get("arguments")
        entry = calls.get(idx)
        if entry is None:
            entry = calls[idx] = [tc.get("id") or f"call_{idx}", name or "", ""]
            out.append(ToolCallStarted(idx, entry[0], entry[1]))
        elif name and not entry[1]:
            entry[1] = name
        if arguments:
            entry[2] += arguments
            out.append(ToolCallDelta(idx, arguments))
    return out


def _status_error(exc: Any, label: str, model: str) -> ParleyError:
    body = exc.body if isinstance(exc.body, dict) else {}
    err = body.get("error", body) if isinstance(body, dict) else {}
    if not isinstance(err, dict):
        err = {}
    return error_for_status(
        exc.status_code,
        provider_label=label,
        model=model,
        headers=dict(exc.response.headers) if exc.response is not None else None,
        err_type=err.get("type") or getattr(exc, "type", None),
        err_code=str(err.get("code") or getattr(exc, "code", None) or "") or None,
        message=str(err.get("message") or exc.message or ""),
    )


__all__ = ["OpenAIProvider", "to_openai_messages"]
