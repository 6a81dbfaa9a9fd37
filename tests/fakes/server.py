"""A loopback server that speaks the OpenAI Chat Completions and Anthropic Messages wire formats.

Tests point the REAL ``openai`` / ``anthropic`` SDKs at it (``base_url``), so the SDKs' own
HTTP, SSE parsing, error mapping and retry-after handling are exercised over a real socket
(STYLE.md §8). Only the standard library is used and the server runs in background daemon
threads, so it works beside any event loop (plain asyncio, qasync) and standalone::

    with FakeLLMServer() as srv:
        srv.enqueue(Text("Hello **world**"), HTTPError(429, retry_after=1))
        client = AsyncOpenAI(api_key="sk-test", base_url=srv.openai_base_url, max_retries=0)

Endpoints (any path prefix is accepted, so ``/v1/...`` and OpenAI-compatible variants work):

- ``POST .../chat/completions`` (OpenAI) and ``POST .../messages`` (Anthropic) pop the next
  scripted reply (one FIFO queue shared by both) and render it in that endpoint's format,
  streamed as SSE (``Transfer-Encoding: chunked``) or as one JSON body (``"stream": false``).
  An empty queue answers ``You said: <last user text>``.
- Hostile replies (issue 11): :class:`~tests.fakes.script.Cut` ends the body cleanly without
  the stream's end (close-delimited or chunked), :class:`~tests.fakes.script.NotAStream`
  answers 200 with an HTML page or a JSON body that is no completion,
  :class:`~tests.fakes.script.BadUTF8` puts invalid UTF-8 in a delta,
  ``StreamError(raw="{not json")`` sends undecodable data, and
  :class:`~tests.fakes.script.Redirect` sends the client elsewhere (another server: the
  cross-origin case).
- ``POST .../messages/count_tokens`` answers ``{"input_tokens": <estimate>}`` (no queue).
- ``GET .../models`` and ``GET .../models/<id>`` list :attr:`FakeLLMServer.models`, in
  Anthropic's format when the request has an ``anthropic-version`` header.

Wire formats were checked against the installed SDKs: ``openai/types/chat/
chat_completion_chunk.py``, ``openai/_streaming.py`` (``data:`` lines, ``[DONE]``),
``anthropic/types/raw_message_stream_event.py`` and ``anthropic/_streaming.py`` (events
WITHOUT an ``event:`` line are silently skipped by the Anthropic SDK, so every event has one),
``anthropic/_error_classes.py`` (exception class from status and ``error.details.error_code``)
and both ``_base_client.py`` (``retry-after-ms`` then ``retry-after``).

Standalone: ``python -m tests.fakes.server --port 8765 [--delay 0.02]`` serves a demo
Markdown answer to every chat so a person can try the window without a key.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import math
import select
import signal
import socket
import socketserver
import subprocess
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.fakes.script import (
    BadUTF8,
    Call,
    Cut,
    Drop,
    HTTPError,
    NotAStream,
    Redirect,
    Reply,
    Stall,
    StreamError,
    Text,
    ToolCalls,
)

_WRITE_BATCH = 64 * 1024
"""Bytes per socket write when streaming without delay (one HTTP chunk each)."""

_STOP_JOIN_S = 0.8
"""How long stop() waits, in total, for connection threads after closing their sockets."""

_DEFAULT_MODELS = ("fake-model", "gpt-4o-mini", "claude-haiku-4-5")
"""What ``GET /v1/models`` lists unless a test assigns :attr:`FakeLLMServer.models`."""

_BAD_UTF8_MARK = "\x00bad-utf8\x00"
"""Stands for :attr:`BadUTF8.bad` in the rendered text until the bytes are put in."""
_BAD_UTF8_JSON = json.dumps(_BAD_UTF8_MARK)[1:-1].encode()
"""How the mark looks inside a rendered JSON string."""

_OPENAI_FINISH = {"stop": "stop", "length": "length", "content_filter": "content_filter"}
_ANTHROPIC_STOP = {"stop": "end_turn", "length": "max_tokens", "content_filter": "refusal"}


# ---------------------------------------------------------------- recorded requests
@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server received it.

    Attributes:
        method: ``GET`` / ``POST``.
        path: The path without the query string, e.g. ``/v1/chat/completions``.
        query: The raw query string ("" when none).
        headers: Header names in lower case; repeated headers joined with ``", "``.
        body: The raw body.
        json: The parsed JSON body, or ``None`` (no body or not JSON).
    """

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    json: Any | None


def last_user_text(payload: Any) -> str:
    """The text of the last user message of an OpenAI or Anthropic chat request body.

    Text parts of multi-part content are joined; an Anthropic user turn that only carries
    ``tool_result`` blocks yields their text.

    Args:
        payload: The parsed request body (anything; non-chat bodies give "").

    Returns:
        The text, or "" when there is no user message.
    """
    if not isinstance(payload, dict) or not isinstance(payload.get("messages"), list):
        return ""
    for message in reversed(payload["messages"]):
        if isinstance(message, dict) and message.get("role") == "user":
            return _content_text(message.get("content"))
    return ""


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    texts = [p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)]
    if texts:
        return "\n".join(texts)
    # A user turn carrying only tool results (Anthropic): echo what the tools returned.
    return "\n".join(
        _content_text(p.get("content"))
        for p in content
        if isinstance(p, dict) and p.get("type") == "tool_result"
    )


def echo_reply(request: RecordedRequest) -> Reply:
    """The default reply: ``You said: <last user text>``."""
    return Text(f"You said: {last_user_text(request.json)}")


def demo_reply(request: RecordedRequest, delay: float = 0.02) -> Text:
    """A Markdown answer that exercises the chat view: heading, list, table, code, link.

    Args:
        request: The chat request (its last user message is echoed).
        delay: Seconds between streamed pieces.

    Returns:
        The reply.
    """
    question = last_user_text(request.json).strip() or "(an empty message)"
    quoted = "\n".join(f"> {line}" for line in question.splitlines())
    fence = "````" if "```" in question else "```"
    words = len(question.split())
    text = (
        "## Your question\n\n"
        f"{quoted}\n\n"
        "This answer comes from Parley's **fake model server**: no API key, no network. "
        "It shows what the chat view renders:\n\n"
        "- **bold**, *italic* and `inline code`\n"
        "- a nested list:\n"
        "  1. first\n"
        "  2. second\n"
        "- a table, a code block and a link below\n\n"
        "| Measure | Value |\n"
        "|---|---:|\n"
        f"| characters | {len(question)} |\n"
        f"| words | {words} |\n\n"
        f"{fence}python\n"
        "def shout(question: str) -> str:\n"
        '    """Return the question in capitals."""\n'
        "    return question.upper()\n\n\n"
        f"print(shout({question!r}))\n"
        f"{fence}\n\n"
        "Learn more about Markdown at [CommonMark](https://commonmark.org/help/).\n"
    )
    return Text(text, chunk_chars=4, delay=delay)


# ---------------------------------------------------------------- token estimates
def _estimate(chars: int) -> int:
    """About 4 characters per token, never 0."""
    return max(1, math.ceil(chars / 4))


def _input_estimate(payload: Any) -> int:
    if not isinstance(payload, dict):
        return 1
    relevant = {k: payload[k] for k in ("system", "messages", "tools") if k in payload}
    return _estimate(len(json.dumps(relevant, ensure_ascii=False)))


def _openai_encoding_name(model: str) -> str | None:
    """The tiktoken encoding OpenAI uses for ``model`` (None: not an OpenAI model)."""
    m = model.lower()
    if m.startswith(("gpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "o1", "o3", "o4", "chatgpt")):
        return "o200k_base"
    if m.startswith(("gpt-4", "gpt-3.5")):
        return "cl100k_base"
    return None


def _ts_type(schema: Any) -> str:
    """A JSON Schema as the TypeScript type OpenAI renders tool parameters with."""
    if not isinstance(schema, dict):
        return "any"
    if "enum" in schema:
        return " | ".join(json.dumps(v) for v in schema["enum"])
    kind = schema.get("type")
    if kind == "array":
        return f"{_ts_type(schema.get('items'))}[]"
    if kind == "object":
        props = schema.get("properties") or {}
        required = set(schema.get("required") or ())
        lines = ["{"]
        for name, prop in props.items():
            if isinstance(prop, dict) and prop.get("description"):
                lines.append(f"// {prop['description']}")
            lines.append(f"{name}{'' if name in required else '?'}: {_ts_type(prop)},")
        lines.append("}")
        return "\n".join(lines)
    return {"integer": "number", "boolean": "boolean", "string": "string"}.get(
        str(kind), "number" if kind == "number" else "any"
    )


def _render_tools(tools: list[Any]) -> str:
    """OpenAI's rendering of function tools into the prompt (a TypeScript namespace)."""
    parts = ["# Tools", "", "## functions", "", "namespace functions {", ""]
    for tool in tools:
        fn = tool.get("function", {}) if isinstance(tool, dict) else {}
        if fn.get("description"):
            parts.append(f"// {fn['description']}")
        parts.append(f"type {fn.get('name', '')} = (_: {_ts_type(fn.get('parameters'))}) => any;")
        parts.append("")
    parts.append("} // namespace functions")
    return "\n".join(parts)


def _openai_prompt_tokens(payload: Any) -> int | None:
    """Prompt tokens as OpenAI counts them, with tiktoken; None for models it cannot count.

    Each message is ``<|im_start|>{role}<|im_sep|>{content}<|im_end|>`` (three special
    tokens), tool calls are rendered as ``functions.{name}`` plus their JSON arguments, the
    tool schemas as a TypeScript namespace in a message of their own, and the reply opens
    with ``<|im_start|>assistant<|im_sep|>``. This is the fake's own rendering, written from
    OpenAI's published descriptions, not Parley's estimator: estimates are tested against it.
    """
    if not isinstance(payload, dict) or not isinstance(payload.get("messages"), list):
        return None
    name = _openai_encoding_name(str(payload.get("model") or ""))
    if name is None:
        return None
    try:
        import tiktoken

        enc = tiktoken.get_encoding(name)
    except Exception:  # no BPE files: fall back to the character estimate
        return None

    def count(text: str) -> int:
        return len(enc.encode_ordinary(text))

    total = 3  # the reply's opening
    if payload.get("tools"):
        total += 3 + count("system") + count(_render_tools(payload["tools"]))
    for m in payload["messages"]:
        if not isinstance(m, dict):
            continue
        total += 3 + count(str(m.get("role", "")))
        content = m.get("content")
        if isinstance(content, list):
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        total += count(content or "")
        if m.get("name"):
            total += 1 + count(str(m["name"]))
        for call in m.get("tool_calls") or ():
            fn = call.get("function", {})
            total += 3 + count(f"functions.{fn.get('name', '')}") + count(fn.get("arguments", ""))
    return total


@dataclass(frozen=True)
class _Usage:
    total_in: int
    output: int
    cached: int
    write: int


def _usage_for(reply: Text | ToolCalls, payload: Any, *, openai: bool = False) -> _Usage:
    cached, write = reply.cached_input_tokens, reply.cache_write_tokens
    total_in = reply.input_tokens
    if total_in is None:
        counted = _openai_prompt_tokens(payload) if openai else None
        estimate = _input_estimate(payload) if counted is None else counted
        total_in = max(estimate, cached + write + 1)
    output = reply.output_tokens
    if output is None:
        chars = len(reply.text)
        if isinstance(reply, ToolCalls):
            chars += sum(len(c.name) + len(c.arguments) for c in reply.calls)
        output = _estimate(chars)
    return _Usage(total_in, output, cached, write)


def _pieces(text: str, chunk_chars: int, chunks: Iterable[str] | None = None) -> list[str]:
    if chunks is not None:
        return [c for c in chunks if c]
    return [text[i : i + chunk_chars] for i in range(0, len(text), chunk_chars)]


def _raw_bytes(raw: str | bytes) -> bytes:
    return raw if isinstance(raw, bytes) else raw.encode()


def _dumps(value: Any) -> str:
    # Raw UTF-8 like the vendors send, so multi-byte characters may straddle socket reads.
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


# ---------------------------------------------------------------- wire renderers
@dataclass
class _Ctx:
    """Per-request facts a renderer needs."""

    server: FakeLLMServer
    payload: Any
    model: str
    include_usage: bool


_Event = tuple[bytes, bool]
"""One SSE event and whether a ``delay`` precedes it (content deltas are paced)."""


class _OpenAIWire:
    """Renders replies as OpenAI Chat Completions responses."""

    name = "openai"
    request_id_header = "x-request-id"
    end_marker = b"data: [DONE]\n\n"

    # ---- errors
    @staticmethod
    def error_body(err: HTTPError, model: str) -> dict[str, Any]:
        code = err.code
        if code is None:
            defaults = {401: "invalid_api_key", 404: "model_not_found", 429: "rate_limit_exceeded"}
            code = defaults.get(err.status)
        etype = err.type
        if etype is None:
            if code == "insufficient_quota":
                etype = "insufficient_quota"
            elif err.status == 429:
                etype = "requests"
            elif err.status >= 500:
                etype = "server_error"
            else:
                etype = "invalid_request_error"
        message = err.message
        if message is None:
            message = _openai_default_message(err.status, code, model)
        param = "messages" if code == "context_length_exceeded" else None
        return {"error": {"message": message, "type": etype, "param": param, "code": code}}

    # ---- JSON answers
    @staticmethod
    def answer(reply: Text | ToolCalls, ctx: _Ctx) -> dict[str, Any]:
        usage = _usage_for(reply, ctx.payload, openai=True)
        message: dict[str, Any] = {
            "role": "assistant",
            "content": reply.text if (reply.text or isinstance(reply, Text)) else None,
            "refusal": None,
            "annotations": [],
        }
        if isinstance(reply, ToolCalls):
            message["tool_calls"] = [
                {
                    "id": ctx.server._call_id(call, "call_"),
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments},
                }
                for call in reply.calls
            ]
            finish = "tool_calls"
        else:
            finish = _OPENAI_FINISH[reply.finish]
        return {
            "id": ctx.server._new_id("chatcmpl-fake"),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": ctx.model,
            "choices": [
                {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}
            ],
            "usage": _openai_usage(usage),
            "service_tier": "default",
            "system_fingerprint": "fp_fake",
        }

    # ---- streams
    @staticmethod
    def stream(reply: Text | ToolCalls, ctx: _Ctx) -> tuple[list[_Event], list[bytes]]:
        head_obj = {
            "id": ctx.server._new_id("chatcmpl-fake"),
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": ctx.model,
            "service_tier": "default",
            "system_fingerprint": "fp_fake",
        }
        # Every chunk is prefix + delta + middle + finish_reason + suffix. Built from strings
        # so 30,000 deltas render in milliseconds (json.dumps per delta string only).
        prefix = ("data: " + _dumps(head_obj)[:-1] + ',"choices":[{"index":0,"delta":').encode()
        middle = b',"logprobs":null,"finish_reason":'
        suffix = b"}]" + (b',"usage":null' if ctx.include_usage else b"") + b"}\n\n"

        def chunk(delta: str, finish: str | None = None) -> bytes:
            reason = b"null" if finish is None else _dumps(finish).encode()
            return prefix + delta.encode() + middle + reason + suffix

        has_text = bool(reply.text) or isinstance(reply, Text)
        role = {"role": "assistant", "content": "" if has_text else None, "refusal": None}
        events: list[_Event] = [(chunk(_dumps(role)), False)]
        chunks = reply.chunks if isinstance(reply, Text) else None
        for piece in _pieces(reply.text, reply.chunk_chars, chunks):
            events.append((chunk('{"content":' + _dumps(piece) + "}"), True))
        if isinstance(reply, ToolCalls):
            for index, call in enumerate(reply.calls):
                start = {
                    "index": index,
                    "id": ctx.server._call_id(call, "call_"),
                    "type": "function",
                    "function": {"name": call.name, "arguments": ""},
                }
                events.append((chunk(_dumps({"tool_calls": [start]})), True))
                for frag in _pieces(call.arguments, reply.chunk_chars):
                    part = {"index": index, "function": {"arguments": frag}}
                    events.append((chunk(_dumps({"tool_calls": [part]})), True))
            finish = "tool_calls"
        else:
            finish = _OPENAI_FINISH[reply.finish]
        tail = [chunk("{}", finish)]
        if ctx.include_usage:
            usage = _openai_usage(_usage_for(reply, ctx.payload, openai=True))
            tail.append(
                ("data: " + _dumps({**head_obj, "choices": [], "usage": usage}) + "\n\n").encode()
            )
        tail.append(b"data: [DONE]\n\n")
        return events, tail

    @staticmethod
    def stream_error(err: StreamError) -> bytes:
        if err.raw is not None:
            return b"data: " + _raw_bytes(err.raw) + b"\n\n"
        body = {"error": {"message": err.message, "type": err.type, "param": None, "code": None}}
        return f"data: {_dumps(body)}\n\n".encode()

    # ---- models
    @staticmethod
    def model_info(model_id: str) -> dict[str, Any]:
        return {"id": model_id, "object": "model", "created": 1_700_000_000, "owned_by": "system"}

    @classmethod
    def models_page(cls, ids: list[str]) -> dict[str, Any]:
        return {"object": "list", "data": [cls.model_info(i) for i in ids]}


def _openai_default_message(status: int, code: str | None, model: str) -> str:
    by_code = {
        "invalid_api_key": "Incorrect API key provided: sk-fake****. You can find your API key "
        "at https://platform.openai.com/account/api-keys.",
        "model_not_found": f"The model `{model}` does not exist or you do not have access to it.",
        "rate_limit_exceeded": f"Rate limit reached for {model} in organization org-fake on "
        "requests per min (RPM): Limit 3, Used 3, Requested 1. Please try again in 20s.",
        "insufficient_quota": "You exceeded your current quota, please check your plan and "
        "billing details.",
        "context_length_exceeded": "This model's maximum context length is 128000 tokens. "
        "However, your messages resulted in 130412 tokens. Please reduce the length of the "
        "messages.",
    }
    if code in by_code:
        return by_code[code]
    if status >= 500:
        return "The server had an error while processing your request. Sorry about that!"
    return f"Request failed with status {status}."


def _openai_usage(u: _Usage) -> dict[str, Any]:
    prompt_details: dict[str, int] = {"cached_tokens": u.cached, "audio_tokens": 0}
    if u.write:
        prompt_details["cache_write_tokens"] = u.write
    return {
        "prompt_tokens": u.total_in,
        "completion_tokens": u.output,
        "total_tokens": u.total_in + u.output,
        "prompt_tokens_details": prompt_details,
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


class _AnthropicWire:
    """Renders replies as Anthropic Messages responses."""

    name = "anthropic"
    request_id_header = "request-id"
    end_marker = b'event: message_stop\ndata: {"type":"message_stop"}\n\n'

    # ---- errors
    @staticmethod
    def error_body(err: HTTPError, model: str, request_id: str) -> dict[str, Any]:
        etype = err.type
        if etype is None:
            etype = {
                400: "invalid_request_error",
                401: "authentication_error",
                402: "billing_error",
                403: "permission_error",
                404: "not_found_error",
                413: "request_too_large",
                429: "rate_limit_error",
                504: "timeout_error",
                529: "overloaded_error",
            }.get(err.status, "api_error" if err.status >= 500 else "invalid_request_error")
        message = err.message
        if message is None:
            message = {
                "authentication_error": "invalid x-api-key",
                "not_found_error": f"model: {model}",
                "rate_limit_error": "This request would exceed the rate limit for your "
                "organization of 50 requests per minute. Please try again later.",
                "overloaded_error": "Overloaded",
                "api_error": "Internal server error",
                "request_too_large": "Request exceeds the maximum allowed number of bytes.",
            }.get(etype, f"Request failed with status {err.status}.")
        error: dict[str, Any] = {"type": etype, "message": message}
        if err.code is not None:
            error["details"] = {"error_code": err.code}
        return {"type": "error", "error": error, "request_id": request_id}

    # ---- JSON answers
    @staticmethod
    def answer(reply: Text | ToolCalls, ctx: _Ctx) -> dict[str, Any]:
        usage = _usage_for(reply, ctx.payload)
        content: list[dict[str, Any]] = []
        if reply.text:
            content.append({"type": "text", "text": reply.text})
        if isinstance(reply, ToolCalls):
            for call in reply.calls:
                try:
                    tool_input: Any = json.loads(call.arguments) if call.arguments else {}
                except ValueError:
                    tool_input = call.arguments  # see ToolCalls: invalid JSON stays a string
                content.append(
                    {
                        "type": "tool_use",
                        "id": ctx.server._call_id(call, "toolu_"),
                        "name": call.name,
                        "input": tool_input,
                    }
                )
            stop = "tool_use"
        else:
            stop = _ANTHROPIC_STOP[reply.finish]
        return {
            **_anthropic_message_shell(ctx),
            "content": content,
            "stop_reason": stop,
            "usage": _anthropic_usage(usage, usage.output),
        }

    # ---- streams
    @staticmethod
    def stream(reply: Text | ToolCalls, ctx: _Ctx) -> tuple[list[_Event], list[bytes]]:
        def event(name: str, data: dict[str, Any]) -> bytes:
            return f"event: {name}\ndata: {_dumps(data)}\n\n".encode()

        usage = _usage_for(reply, ctx.payload)
        start = {**_anthropic_message_shell(ctx), "content": [], "stop_reason": None}
        # message_start reports a token or so of output; message_delta has the cumulative count.
        start["usage"] = _anthropic_usage(usage, 1)
        events: list[_Event] = [
            (event("message_start", {"type": "message_start", "message": start}), False)
        ]
        ping = event("ping", {"type": "ping"})
        index = 0
        open_block = False
        if reply.text:
            block: dict[str, Any] = {"type": "text", "text": ""}
            events.append(
                (
                    event(
                        "content_block_start",
                        {"type": "content_block_start", "index": 0, "content_block": block},
                    ),
                    False,
                )
            )
            events.append((ping, False))
            prefix = (
                b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
                b'"delta":{"type":"text_delta","text":'
            )
            chunks = reply.chunks if isinstance(reply, Text) else None
            for piece in _pieces(reply.text, reply.chunk_chars, chunks):
                events.append((prefix + _dumps(piece).encode() + b"}}\n\n", True))
            open_block = True
        else:
            events.append((ping, False))
        if isinstance(reply, ToolCalls):
            for call in reply.calls:
                if open_block:
                    stop_ev = {"type": "content_block_stop", "index": index}
                    events.append((event("content_block_stop", stop_ev), False))
                    index += 1
                block = {
                    "type": "tool_use",
                    "id": ctx.server._call_id(call, "toolu_"),
                    "name": call.name,
                    "input": {},
                }
                events.append(
                    (
                        event(
                            "content_block_start",
                            {"type": "content_block_start", "index": index, "content_block": block},
                        ),
                        True,
                    )
                )
                # The API opens every tool input with an empty fragment; adapters must cope.
                for frag in ["", *_pieces(call.arguments, reply.chunk_chars)]:
                    delta = {
                        "type": "content_block_delta",
                        "index": index,
                        "delta": {"type": "input_json_delta", "partial_json": frag},
                    }
                    events.append((event("content_block_delta", delta), bool(frag)))
                open_block = True
            stop = "tool_use"
        else:
            stop = _ANTHROPIC_STOP[reply.finish]
        tail: list[bytes] = []
        if open_block:
            tail.append(event("content_block_stop", {"type": "content_block_stop", "index": index}))
        tail.append(
            event(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": stop, "stop_sequence": None},
                    "usage": {"output_tokens": usage.output},
                },
            )
        )
        tail.append(event("message_stop", {"type": "message_stop"}))
        return events, tail

    @staticmethod
    def stream_error(err: StreamError) -> bytes:
        if err.raw is not None:
            return b"event: content_block_delta\ndata: " + _raw_bytes(err.raw) + b"\n\n"
        body = {"type": "error", "error": {"type": err.type, "message": err.message}}
        return f"event: error\ndata: {_dumps(body)}\n\n".encode()

    # ---- models
    @staticmethod
    def model_info(model_id: str) -> dict[str, Any]:
        return {
            "type": "model",
            "id": model_id,
            "display_name": model_id.replace("-", " ").title(),
            "created_at": "2025-01-01T00:00:00Z",
            "lifecycle": "active",
        }

    @classmethod
    def models_page(cls, ids: list[str]) -> dict[str, Any]:
        return {
            "data": [cls.model_info(i) for i in ids],
            "has_more": False,
            "first_id": ids[0] if ids else None,
            "last_id": ids[-1] if ids else None,
        }


def _anthropic_message_shell(ctx: _Ctx) -> dict[str, Any]:
    return {
        "id": ctx.server._new_id("msg_fake"),
        "type": "message",
        "role": "assistant",
        "model": ctx.model,
        "stop_sequence": None,
    }


def _anthropic_usage(u: _Usage, output: int) -> dict[str, Any]:
    return {
        # Anthropic's input_tokens excludes cache reads and writes (Parley's includes them).
        "input_tokens": u.total_in - u.cached - u.write,
        "cache_creation_input_tokens": u.write,
        "cache_read_input_tokens": u.cached,
        "cache_creation": {"ephemeral_5m_input_tokens": u.write, "ephemeral_1h_input_tokens": 0},
        "output_tokens": output,
        "service_tier": "standard",
    }


# ---------------------------------------------------------------- HTTP plumbing
class _ClientGone(Exception):
    """The client closed the connection, or the server is stopping: stop answering."""


class _HTTPServer(ThreadingHTTPServer):
    """ThreadingHTTPServer that tracks connections so stop() can cut them."""

    daemon_threads = True
    block_on_close = False  # stop() joins with a deadline instead of forever
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], fake: FakeLLMServer) -> None:
        self.fake = fake
        self._conn_lock = threading.Lock()
        self.conns: set[socket.socket] = set()
        self.threads: set[threading.Thread] = set()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        """Bind without HTTPServer's getfqdn() reverse lookup (slow on offline machines)."""
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def process_request(self, request: Any, client_address: Any) -> None:
        """Serve each connection in its own named daemon thread, tracked for stop()."""
        thread = threading.Thread(
            target=self._serve_conn,
            args=(request, client_address),
            name=f"fake-llm-conn-{self.server_port}",
            daemon=True,
        )
        with self._conn_lock:
            self.conns.add(request)
            self.threads.add(thread)
        thread.start()

    def _serve_conn(self, request: socket.socket, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)
            with self._conn_lock:
                self.conns.discard(request)
                self.threads.discard(threading.current_thread())

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Stay quiet about clients that hang up; print real bugs (pytest shows them)."""
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError | _ClientGone):
            return
        traceback.print_exc()

    def cut_connections(self) -> list[threading.Thread]:
        """Shut every open connection down (unblocks its thread) and return the threads."""
        with self._conn_lock:
            conns, threads = list(self.conns), list(self.threads)
        for conn in conns:
            # shutdown(), not close(): the owning thread closes the fd, so no fd reuse races.
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        return threads


class _Handler(BaseHTTPRequestHandler):
    """One connection; HTTP/1.1 keep-alive like the vendors."""

    protocol_version = "HTTP/1.1"
    server: _HTTPServer
    server_version = "fake-llm/1.0"
    # TCP_NODELAY, as real API front ends stream: with Nagle on, each small SSE write after
    # the headers waited for the client's delayed ACK (~40 ms before the first token).
    disable_nagle_algorithm = True

    # ---- plumbing
    def log_message(self, format: str, *args: Any) -> None:
        """Quiet unless the standalone server asked for a log."""
        if self.server.fake.verbose:
            sys.stderr.write(f"{self.address_string()} {format % args}\n")

    def _pause(self, seconds: float) -> None:
        """Wait ``seconds``; raise _ClientGone early if the client hangs up or stop() runs."""
        if seconds <= 0:
            return
        fake = self.server.fake
        deadline = time.monotonic() + seconds
        watch: list[Any] = [self.connection, fake._wake_r]
        while (remaining := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select(watch, [], [], remaining)
            if fake._wake_r in ready:
                raise _ClientGone("server stopping")
            if self.connection in ready:
                try:
                    peek = self.connection.recv(1, socket.MSG_PEEK)
                except OSError:
                    peek = b""
                if not peek:
                    raise _ClientGone("client closed the connection")
                watch = [fake._wake_r]  # a pipelined request: it waits its turn

    def _abort(self) -> None:
        """Close the TCP connection abruptly: the client sees a broken stream."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _record(self, body: bytes) -> RecordedRequest:
        path, _, query = self.path.partition("?")
        headers: dict[str, str] = {}
        for key, value in self.headers.items():
            key = key.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        parsed: Any = None
        if body:
            with contextlib.suppress(ValueError):
                parsed = json.loads(body)
        request = RecordedRequest(self.command, path, query, headers, body, parsed)
        self.server.fake._record(request)
        return request

    def _send_json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = _dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _send_error_reply(
        self, wire: type[_OpenAIWire] | type[_AnthropicWire], err: HTTPError, model: str
    ) -> None:
        request_id = self.server.fake._new_id("req_fake")
        if wire is _AnthropicWire:
            body = _AnthropicWire.error_body(err, model, request_id)
        else:
            body = _OpenAIWire.error_body(err, model)
        headers = {wire.request_id_header: request_id}
        if err.retry_after is not None:
            headers["retry-after"] = _number(err.retry_after)
        if err.retry_after_ms is not None:
            headers["retry-after-ms"] = _number(err.retry_after_ms)
        self._send_json(err.status, body, headers)

    def _send_redirect(self, redirect: Redirect) -> None:
        self.send_response(redirect.status)
        self.send_header("Location", redirect.location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _write_chunks(self, data: Iterable[bytes]) -> None:
        """Write events as HTTP chunks of up to _WRITE_BATCH bytes (few syscalls)."""
        batch: list[bytes] = []
        size = 0
        for item in data:
            batch.append(item)
            size += len(item)
            if size >= _WRITE_BATCH:
                self._write_chunk(b"".join(batch))
                batch, size = [], 0
        if batch:
            self._write_chunk(b"".join(batch))

    def _write_chunk(self, data: bytes) -> None:
        if data:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    # ---- methods
    def do_GET(self) -> None:
        """Models endpoints."""
        self._guarded(self._get)

    def do_POST(self) -> None:
        """Chat and count_tokens endpoints."""
        self._guarded(self._post)

    def _guarded(self, handler: Callable[[], None]) -> None:
        try:
            handler()
        except _ClientGone:
            self._abort()
        except OSError:
            self.close_connection = True
        except Exception:
            # A bug in the fake must be loud in the test that hit it, not a silent hang.
            traceback.print_exc()
            self._abort()

    def _get(self) -> None:
        request = self._record(self._read_body())
        anthropic = "anthropic-version" in request.headers
        wire: type[_OpenAIWire] | type[_AnthropicWire] = (
            _AnthropicWire if anthropic else _OpenAIWire
        )
        fake = self.server.fake
        models = list(fake.models)
        _head, sep, model_id = request.path.rpartition("/models/")
        if isinstance(fake.models_error, Redirect) and (request.path.endswith("/models") or sep):
            self._send_redirect(fake.models_error)
        elif fake.models_error is not None and (request.path.endswith("/models") or sep):
            self._send_error_reply(wire, fake.models_error, model_id)
        elif request.path.endswith("/models"):
            self._send_json(200, wire.models_page(models), self._req_id_header(wire))
        elif sep and model_id in models:
            self._send_json(200, wire.model_info(model_id), self._req_id_header(wire))
        elif sep:
            self._send_error_reply(wire, HTTPError(404), model_id)
        else:
            self._send_error_reply(wire, HTTPError(404, f"Unknown path {request.path}"), "")

    def _req_id_header(self, wire: type[_OpenAIWire] | type[_AnthropicWire]) -> dict[str, str]:
        return {wire.request_id_header: self.server.fake._new_id("req_fake")}

    def _post(self) -> None:
        body = self._read_body()
        request = self._record(body)
        path = request.path
        payload = request.json
        fake = self.server.fake
        if path.endswith("/chat/completions"):
            wire: type[_OpenAIWire] | type[_AnthropicWire] = _OpenAIWire
        elif path.endswith("/messages/count_tokens"):
            self._send_json(200, {"input_tokens": _input_estimate(payload)})
            return
        elif path.endswith("/messages"):
            wire = _AnthropicWire
        else:
            anthropic = "anthropic-version" in request.headers
            wire = _AnthropicWire if anthropic else _OpenAIWire
            self._send_error_reply(wire, HTTPError(404, f"Unknown path {path}"), "")
            return
        if not isinstance(payload, dict):
            msg = "We could not parse the JSON body of your request."
            self._send_error_reply(wire, HTTPError(400, msg), "")
            return
        requested = payload.get("model")
        model = requested if isinstance(requested, str) else "fake-model"
        reply = fake._next_reply(request)
        if isinstance(reply, HTTPError):
            self._send_error_reply(wire, reply, model)
            return
        if isinstance(reply, Drop) and reply.before_response:
            self._abort()
            return
        if isinstance(reply, Redirect):
            self._send_redirect(reply)
            return
        if isinstance(reply, NotAStream):
            data = reply.body.encode()
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        stream = payload.get("stream") is True
        options = payload.get("stream_options")
        include_usage = isinstance(options, dict) and options.get("include_usage") is True
        if isinstance(reply, Text | ToolCalls):
            answer: Text | ToolCalls = reply
            self._pause(reply.first_byte_delay)
        elif isinstance(reply, BadUTF8):
            chunks = [reply.before, _BAD_UTF8_MARK, reply.after]
            answer = Text("".join(chunks), chunks=chunks)
        else:
            answer = Text(reply.text, chunk_chars=reply.chunk_chars)
        ctx = _Ctx(fake, payload, answer.model or model, include_usage)
        if stream:
            self._stream(wire, answer, ctx, reply)
        else:
            self._json_answer(wire, answer, ctx, reply)

    def _json_answer(
        self,
        wire: type[_OpenAIWire] | type[_AnthropicWire],
        answer: Text | ToolCalls,
        ctx: _Ctx,
        reply: Reply,
    ) -> None:
        data = _dumps(wire.answer(answer, ctx)).encode()
        if isinstance(reply, BadUTF8):
            data = data.replace(_BAD_UTF8_JSON, reply.bad)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        if isinstance(reply, Cut):  # close-delimited, and only half of it
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.close_connection = True
            return
        self.send_header("Content-Length", str(len(data)))
        self.send_header(wire.request_id_header, ctx.server._new_id("req_fake"))
        self.end_headers()
        if isinstance(reply, Drop):
            self.wfile.write(data[: len(data) // 2])
            self._abort()
            return
        if isinstance(reply, Stall):
            self._pause(reply.seconds)
        self.wfile.write(data)

    def _stream(
        self,
        wire: type[_OpenAIWire] | type[_AnthropicWire],
        answer: Text | ToolCalls,
        ctx: _Ctx,
        reply: Reply,
    ) -> None:
        events, tail = wire.stream(answer, ctx)
        if isinstance(reply, BadUTF8):
            events = [(data.replace(_BAD_UTF8_JSON, reply.bad), paced) for data, paced in events]
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        if isinstance(reply, Cut) and reply.framing == "close":
            # A close-delimited body (RFC 9112 6.3): it ends when the server closes the
            # connection, which it does cleanly: the transport sees a complete body.
            self.send_header("Connection", "close")
            self.send_header("Cache-Control", "no-cache")
            self.end_headers()
            self.wfile.write(b"".join(data for data, _ in events))
            if reply.end_marker:
                self.wfile.write(wire.end_marker)
            self.wfile.flush()
            self.close_connection = True
            return
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache")
        self.send_header(wire.request_id_header, ctx.server._new_id("req_fake"))
        self.end_headers()
        delay = answer.delay
        if delay <= 0:
            self._write_chunks(data for data, _ in events)
        else:
            pending: list[bytes] = []
            first = True
            for data, paced in events:
                if paced and not first:
                    self._write_chunk(b"".join(pending))
                    pending.clear()
                    self._pause(delay)
                first = first and not paced
                pending.append(data)
            self._write_chunk(b"".join(pending))
        if isinstance(reply, Drop):
            self._abort()
            return
        if isinstance(reply, Stall):
            self._pause(reply.seconds)
        if isinstance(reply, StreamError):
            tail = [wire.stream_error(reply)]
        if isinstance(reply, Cut):
            # The body ends properly, the stream does not (or only with its bare end marker).
            tail = [wire.end_marker] if reply.end_marker else []
        self._write_chunks(tail)
        self.wfile.write(b"0\r\n\r\n")


def _number(value: float) -> str:
    """``3`` rather than ``3.0`` in headers (servers send integers; SDKs accept floats)."""
    return str(int(value)) if float(value).is_integer() else str(value)


# ---------------------------------------------------------------- the server
class FakeLLMServer:
    """OpenAI + Anthropic wire-protocol server on 127.0.0.1, scripted per request.

    Attributes:
        models: Model ids that ``GET /v1/models`` lists (assign freely).
        models_error: When set, every models request answers with this error (e.g. a 401 to
            test key validation) or this :class:`~tests.fakes.script.Redirect`; ``None`` for
            the normal listing.
        default_reply: Builds the reply when the queue is empty (default: echo the last user
            message as ``You said: <text>``).
        verbose: Log each request to stderr (the standalone server sets it).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        models: Iterable[str] = _DEFAULT_MODELS,
        default_reply: Callable[[RecordedRequest], Reply] = echo_reply,
        verbose: bool = False,
    ) -> None:
        """Prepare a server; nothing is bound until :meth:`start`.

        Args:
            host: Address to bind (keep loopback for tests).
            port: Port to bind; 0 picks a free one.
            models: Initial :attr:`models`.
            default_reply: Initial :attr:`default_reply`.
            verbose: Initial :attr:`verbose`.
        """
        self.models: list[str] = list(models)
        self.models_error: HTTPError | Redirect | None = None
        self.default_reply = default_reply
        self.verbose = verbose
        self._host, self._port = host, port
        self._lock = threading.Lock()
        self._recorded = threading.Condition(self._lock)
        self._requests: list[RecordedRequest] = []
        self._queue: deque[Reply] = deque()
        self._ids = itertools.count(1)
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None
        self._stopped = False

    # ---- lifecycle
    def start(self) -> FakeLLMServer:
        """Bind and start serving in a background daemon thread.

        Returns:
            The server itself.

        Raises:
            RuntimeError: When started twice.
        """
        if self._httpd is not None or self._stopped:
            raise RuntimeError("a FakeLLMServer starts once; make a new one")
        self._httpd = _HTTPServer((self._host, self._port), self)  # OSError if taken
        self._wake_r, self._wake_w = socket.socketpair()
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.01},  # stop() waits up to this long for the loop
            name=f"fake-llm-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and cut every open connection (stalled ones too); idempotent.

        Returns promptly: streams in progress see their connection close.
        """
        if self._httpd is None or self._stopped:
            return
        self._stopped = True
        assert self._wake_w is not None and self._thread is not None
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")  # wakes every _pause() at once
        self._httpd.shutdown()
        self._thread.join()
        threads = self._httpd.cut_connections()
        self._httpd.server_close()
        deadline = time.monotonic() + _STOP_JOIN_S
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        if not any(t.is_alive() for t in threads):
            # Close the wake pair only when no thread can still be selecting on it.
            self._wake_r.close()  # type: ignore[union-attr]
            self._wake_w.close()

    def __enter__(self) -> FakeLLMServer:
        """Start; ``with FakeLLMServer() as srv:``."""
        return self.start()

    def __exit__(self, *exc: object) -> None:
        """Stop."""
        self.stop()

    # ---- addresses
    @property
    def port(self) -> int:
        """The bound port."""
        if self._httpd is None:
            raise RuntimeError("the server is not started")
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://{self._host}:{self.port}"

    @property
    def openai_base_url(self) -> str:
        """Base URL for ``AsyncOpenAI(base_url=...)`` (ends in ``/v1``)."""
        return f"{self.base_url}/v1"

    @property
    def anthropic_base_url(self) -> str:
        """Base URL for ``AsyncAnthropic(base_url=...)`` (the SDK appends ``/v1/messages``)."""
        return self.base_url

    # ---- script
    def enqueue(self, *replies: Reply) -> None:
        """Queue replies; each chat request (either vendor) takes the next one, FIFO.

        Raises:
            TypeError: For anything that is not a reply from ``tests.fakes.script``.
        """
        for reply in replies:
            if not isinstance(
                reply,
                Text
                | ToolCalls
                | HTTPError
                | Drop
                | Stall
                | StreamError
                | Cut
                | NotAStream
                | BadUTF8
                | Redirect,
            ):
                raise TypeError(f"not a scripted reply: {reply!r}")
        with self._lock:
            self._queue.extend(replies)

    @property
    def pending(self) -> int:
        """How many queued replies no request has taken yet."""
        with self._lock:
            return len(self._queue)

    # ---- recorded requests
    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of every request received so far, in arrival order."""
        with self._lock:
            return list(self._requests)

    def wait_for_requests(self, n: int, timeout: float = 5.0) -> list[RecordedRequest]:
        """Block until at least ``n`` requests were recorded.

        Blocking: in a coroutine use :meth:`wait_for_requests_async`.

        Returns:
            A snapshot of the recorded requests.

        Raises:
            TimeoutError: When fewer than ``n`` arrived within ``timeout`` seconds.
        """
        with self._recorded:
            if not self._recorded.wait_for(lambda: len(self._requests) >= n, timeout):
                raise TimeoutError(f"{len(self._requests)} of {n} requests after {timeout} s")
            return list(self._requests)

    async def wait_for_requests_async(self, n: int, timeout: float = 5.0) -> list[RecordedRequest]:
        """Like :meth:`wait_for_requests` without blocking the event loop (any loop)."""
        deadline = time.monotonic() + timeout
        while (count := len(self.requests)) < n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{count} of {n} requests after {timeout} s")
            await asyncio.sleep(0.005)
        return self.requests

    # ---- internals used by the handler
    def _record(self, request: RecordedRequest) -> None:
        with self._recorded:
            self._requests.append(request)
            self._recorded.notify_all()

    def _next_reply(self, request: RecordedRequest) -> Reply:
        with self._lock:
            if self._queue:
                return self._queue.popleft()
        return self.default_reply(request)

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids):06d}"

    def _call_id(self, call: Call, prefix: str) -> str:
        return call.id if call.id is not None else f"{prefix}{next(self._ids)}"


# ---------------------------------------------------------------- standalone
def serve_until_stdin_closes(srv: FakeLLMServer) -> int:
    """Serve for a parent process (see :class:`FakeServerProcess`).

    Print the port, then serve until the parent closes our stdin.
    """
    srv.start()
    print(srv.port, flush=True)
    try:
        sys.stdin.read()
    finally:
        srv.stop()
    return 0


class FakeServerProcess:
    """A fake server in a child process, as a real server would be.

    In-process, its threads would compete with the client for the GIL. ``argv`` runs
    :func:`serve_until_stdin_closes`.
    """

    def __init__(self, argv: list[str], cwd: Path | None = None) -> None:
        self.argv = argv
        self.cwd = cwd

    def __enter__(self) -> FakeServerProcess:
        self.proc = subprocess.Popen(
            self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=self.cwd
        )
        assert self.proc.stdout is not None
        self.port = int(self.proc.stdout.readline())
        self.openai_base_url = f"http://127.0.0.1:{self.port}/v1"
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.close()
        self.proc.wait(10)
        self.proc.stdout.close()


def main(argv: list[str] | None = None) -> int:
    """Serve both protocols with a demo answer until Ctrl+C (or SIGTERM)."""
    parser = argparse.ArgumentParser(
        prog="python -m tests.fakes.server",
        description="Fake OpenAI + Anthropic server: try Parley without a key.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="port (8765; 0 picks one)")
    parser.add_argument(
        "--delay", type=float, default=0.02, help="seconds between streamed pieces (0.02)"
    )
    parser.add_argument("--quiet", action="store_true", help="do not log requests")
    args = parser.parse_args(argv)
    if args.delay < 0:
        parser.error("--delay must be >= 0")

    def reply(request: RecordedRequest) -> Reply:
        return demo_reply(request, args.delay)

    server = FakeLLMServer(args.host, args.port, default_reply=reply, verbose=not args.quiet)
    try:
        server.start()
    except OSError as exc:
        print(f"cannot listen on {args.host}:{args.port}: {exc.strerror}", file=sys.stderr)
        return 1
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    print("Parley fake LLM server", flush=True)
    print(f"  OpenAI base URL:    {server.openai_base_url}", flush=True)
    print(f"  Anthropic base URL: {server.anthropic_base_url}", flush=True)
    print(f"  models: {', '.join(server.models)}  (any API key works)", flush=True)
    print("Ctrl+C stops.", flush=True)
    while not done.wait(0.5):  # a timed wait so signals are handled promptly everywhere
        pass
    server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
