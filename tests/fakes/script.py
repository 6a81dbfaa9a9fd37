"""Scripted replies for :class:`tests.fakes.server.FakeLLMServer`.

Each dataclass describes what the fake server does with ONE chat request (OpenAI
``POST /v1/chat/completions`` or Anthropic ``POST /v1/messages``). The same reply renders in
the wire format of whichever endpoint was called, so one script drives either SDK.

Token counts follow Parley's ``Usage`` convention (``parley.core.providers.base.Usage``):
``input_tokens`` counts EVERY prompt token, cached ones included; ``cached_input_tokens`` is
the part read from the prompt cache and ``cache_write_tokens`` the part written to it. The
server renders that the way each vendor reports it: OpenAI ``prompt_tokens`` =
``input_tokens`` (with ``prompt_tokens_details.cached_tokens``); Anthropic ``input_tokens`` =
``input_tokens - cached_input_tokens - cache_write_tokens`` (the uncached rest), plus
``cache_read_input_tokens`` and ``cache_creation_input_tokens``. So a Parley adapter that
normalises correctly gets the same numbers back from both vendors.

``None`` token counts mean "count or estimate": a Chat Completions request to an OpenAI
model (``gpt-4o``, ``gpt-4.1``, ``o3``...) has its prompt counted with tiktoken the way
OpenAI renders it (see ``server._openai_prompt_tokens``); any other request, and every
answer, is estimated at about 4 characters per token, never 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

TextFinish = Literal["stop", "length", "content_filter"]
"""How a :class:`Text` answer ends. OpenAI ``finish_reason`` as is; Anthropic ``stop_reason``
``end_turn`` / ``max_tokens`` / ``refusal``."""


def _check_tokens(
    input_tokens: int | None,
    output_tokens: int | None,
    cached_input_tokens: int,
    cache_write_tokens: int,
) -> None:
    for name, value in (
        ("input_tokens", input_tokens),
        ("output_tokens", output_tokens),
        ("cached_input_tokens", cached_input_tokens),
        ("cache_write_tokens", cache_write_tokens),
    ):
        if value is not None and value < 0:
            raise ValueError(f"{name} must be >= 0, got {value}")
    if input_tokens is not None and input_tokens < cached_input_tokens + cache_write_tokens:
        raise ValueError(
            "input_tokens counts every prompt token (cached ones included), so it must be >= "
            f"cached_input_tokens + cache_write_tokens ({input_tokens} < "
            f"{cached_input_tokens} + {cache_write_tokens})"
        )


def _check_pacing(chunk_chars: int, first_byte_delay: float, delay: float) -> None:
    if chunk_chars < 1:
        raise ValueError(f"chunk_chars must be >= 1, got {chunk_chars}")
    if first_byte_delay < 0 or delay < 0:
        raise ValueError("delays must be >= 0")


@dataclass(frozen=True)
class Text:
    """A streamed text answer.

    Attributes:
        text: The whole answer.
        chunk_chars: Characters per streamed delta.
        chunks: Explicit deltas (must join to ``text``); overrides ``chunk_chars``.
        input_tokens: Prompt tokens incl. cached ones; ``None`` estimates from the request.
        output_tokens: Answer tokens; ``None`` estimates from the text (~4 chars per token).
        cached_input_tokens: Part of the prompt read from the cache.
        cache_write_tokens: Part of the prompt written to the cache.
        finish: ``"stop"``, ``"length"`` (Anthropic ``max_tokens``) or ``"content_filter"``
            (Anthropic ``refusal``).
        first_byte_delay: Seconds to wait before the status line and headers are sent.
        delay: Seconds to wait between two deltas (0: the whole answer in a few writes).
        model: Model name reported in the answer; ``None`` echoes the requested model.
    """

    text: str
    chunk_chars: int = 6
    chunks: tuple[str, ...] | list[str] | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    finish: TextFinish = "stop"
    first_byte_delay: float = 0.0
    delay: float = 0.0
    model: str | None = None

    def __post_init__(self) -> None:
        """Reject scripts no server could honour, at enqueue time rather than mid-test."""
        _check_pacing(self.chunk_chars, self.first_byte_delay, self.delay)
        _check_tokens(
            self.input_tokens, self.output_tokens, self.cached_input_tokens, self.cache_write_tokens
        )
        if self.chunks is not None and "".join(self.chunks) != self.text:
            raise ValueError("Text.chunks must join to Text.text")
        if self.finish not in ("stop", "length", "content_filter"):
            raise ValueError(f"unknown finish {self.finish!r}")


@dataclass(frozen=True)
class Call:
    """One tool call inside :class:`ToolCalls`.

    Attributes:
        name: Tool name.
        arguments: The arguments JSON text, sent exactly as given (may be invalid on purpose).
        id: Call id; ``None`` gives ``call_<n>`` (OpenAI) or ``toolu_<n>`` (Anthropic), ``n``
            counting up per server so ids never repeat across rounds.
    """

    name: str
    arguments: str = "{}"
    id: str | None = None


@dataclass(frozen=True)
class ToolCalls:
    """An answer that calls tools: optional leading text, then the calls, arguments streamed.

    For a non-streaming Anthropic request the arguments are parsed into the ``tool_use``
    block's ``input`` object; invalid JSON is then sent as a raw string (the API itself never
    does that, the streamed form is the one to use for invalid-JSON tests).

    Attributes:
        calls: The tool calls, in order (``index`` 0, 1, ...).
        text: Text streamed before the calls ("" for none).
        chunk_chars: Characters per streamed text delta and per arguments fragment.
        input_tokens: See :class:`Text`.
        output_tokens: See :class:`Text` (estimated from text, names and arguments).
        cached_input_tokens: See :class:`Text`.
        cache_write_tokens: See :class:`Text`.
        first_byte_delay: See :class:`Text`.
        delay: See :class:`Text`.
        model: See :class:`Text`.
    """

    calls: list[Call] | tuple[Call, ...] = field(default_factory=list)
    text: str = ""
    chunk_chars: int = 12
    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    first_byte_delay: float = 0.0
    delay: float = 0.0
    model: str | None = None

    def __post_init__(self) -> None:
        """Reject scripts no server could honour, at enqueue time rather than mid-test."""
        _check_pacing(self.chunk_chars, self.first_byte_delay, self.delay)
        _check_tokens(
            self.input_tokens, self.output_tokens, self.cached_input_tokens, self.cache_write_tokens
        )
        if not self.calls:
            raise ValueError("ToolCalls needs at least one Call")
        for call in self.calls:
            if not isinstance(call, Call):
                raise TypeError(f"ToolCalls.calls takes Call objects, got {type(call).__name__}")


@dataclass(frozen=True)
class HTTPError:
    """An error response with the vendor's exact error body.

    OpenAI: ``{"error": {"message", "type", "param", "code"}}`` and an ``x-request-id``
    header. Anthropic: ``{"type": "error", "error": {"type", "message"}, "request_id"}`` and a
    ``request-id`` header; a ``code`` goes to ``error.details.error_code`` (the SDK picks its
    exception subclass from it).

    Attributes:
        status: HTTP status, e.g. 400, 401, 404, 429, 500, 503, 529.
        message: ``error.message``; ``None`` gives a vendor-like default for the status.
        type: ``error.type``; ``None`` gives the vendor's default for the status (OpenAI
            ``invalid_request_error`` / ``requests`` / ``server_error``; Anthropic
            ``authentication_error``, ``rate_limit_error``, ``overloaded_error`` (529)...).
        code: OpenAI ``error.code`` (``insufficient_quota``, ``context_length_exceeded``...);
            ``None`` gives ``invalid_api_key`` for 401, ``model_not_found`` for 404,
            ``rate_limit_exceeded`` for 429, else null.
        retry_after: ``retry-after`` header value in seconds, when set.
        retry_after_ms: ``retry-after-ms`` header value in milliseconds, when set.
    """

    status: int
    message: str | None = None
    type: str | None = None
    code: str | None = None
    retry_after: float | None = None
    retry_after_ms: float | None = None

    def __post_init__(self) -> None:
        """Only error statuses make sense here."""
        if not 400 <= self.status <= 599:
            raise ValueError(f"HTTPError status must be 4xx or 5xx, got {self.status}")


@dataclass(frozen=True)
class Drop:
    """Stream ``text``, then close the TCP connection abruptly.

    No terminating chunk, no ``[DONE]`` / ``message_stop``: the SDK sees a broken stream
    after the partial text. With ``before_response=True`` the server reads the request and
    closes the connection without answering at all (a connection error before the first
    byte, the case a retry layer may retry).

    Attributes:
        text: Partial text streamed before the connection breaks ("" for none).
        chunk_chars: Characters per streamed delta.
        before_response: Close before sending any status line.
    """

    text: str = "partial answer"
    chunk_chars: int = 6
    before_response: bool = False

    def __post_init__(self) -> None:
        """Validate pacing."""
        _check_pacing(self.chunk_chars, 0.0, 0.0)


@dataclass(frozen=True)
class Stall:
    """Stream ``text``, then keep the connection open and silent for ``seconds``.

    After the stall the answer finishes normally (finish reason ``stop``), so a client whose
    idle timeout is longer than the stall still gets a complete answer. The stall does not
    block other requests, ends early when the client disconnects, and ``stop()`` cuts it.

    Attributes:
        text: Text streamed before the silence.
        seconds: Length of the silence.
        chunk_chars: Characters per streamed delta.
    """

    text: str = "partial"
    seconds: float = 30.0
    chunk_chars: int = 6

    def __post_init__(self) -> None:
        """Validate pacing."""
        _check_pacing(self.chunk_chars, self.seconds, 0.0)


@dataclass(frozen=True)
class StreamError:
    """Stream ``text``, then fail inside the stream, after the 200 status was sent.

    By default the vendor's own mid-stream error event: OpenAI ``data: {"error": {...}}``,
    Anthropic ``event: error`` with ``{"type": "error", "error": {"type", "message"}}``
    (how Anthropic reports ``overloaded_error`` once an answer has begun). With ``raw`` set,
    that text is sent instead as an ordinary chunk / ``content_block_delta`` event's data:
    valid JSON not shaped like one, or not JSON at all (``raw="{not json"``).

    Attributes:
        text: Text streamed before the error.
        type: ``error.type`` (``overloaded_error``, ``server_error``, ``api_error``...).
        message: ``error.message``.
        raw: A malformed payload to send instead of the error event.
        chunk_chars: Characters per streamed delta.
    """

    text: str = "partial"
    type: str = "overloaded_error"
    message: str = "Overloaded"
    raw: str | None = None
    chunk_chars: int = 6

    def __post_init__(self) -> None:
        """Validate pacing."""
        _check_pacing(self.chunk_chars, 0.0, 0.0)


# ---------------------------------------------------------------- hostile servers
# Replies a misbehaving server, proxy or captive portal gives (issue 11): each one is a way
# a client can be told something false, and each has a test through the CLI and the window.

CutFraming = Literal["close", "chunked"]
"""How a :class:`Cut` body ends: ``close`` = close-delimited (``Connection: close``, neither
``Content-Length`` nor ``Transfer-Encoding``; the server closes the socket cleanly, so the
HTTP body itself is complete); ``chunked`` = a well-formed chunked body with its last chunk."""


@dataclass(frozen=True)
class Cut:
    """Stream ``text``, then end the HTTP body cleanly WITHOUT the stream's own end.

    No ``finish_reason`` / ``data: [DONE]`` (OpenAI), no ``content_block_stop`` /
    ``message_delta`` / ``message_stop`` (Anthropic). Unlike :class:`Drop` the transport sees
    nothing wrong: only the missing end marker tells the client the answer was cut off. With
    ``text=""`` only the stream's opening arrives (OpenAI's role chunk, Anthropic's
    ``message_start`` and a ``ping``).

    With ``end_marker=True`` the protocol's bare end marker is sent after the text (OpenAI
    ``data: [DONE]``, Anthropic ``message_stop``) but still no finish reason: what some
    servers send, and a stream that did end.

    Attributes:
        text: Text streamed before the cut ("" for none).
        framing: See :data:`CutFraming`.
        chunk_chars: Characters per streamed delta.
        end_marker: Send the end marker (and nothing else of the stream's end).
    """

    text: str = "partial answer"
    framing: CutFraming = "close"
    chunk_chars: int = 6
    end_marker: bool = False

    def __post_init__(self) -> None:
        """Validate pacing and framing."""
        _check_pacing(self.chunk_chars, 0.0, 0.0)
        if self.framing not in ("close", "chunked"):
            raise ValueError(f"unknown framing {self.framing!r}")


PORTAL_HTML = (
    "<!DOCTYPE html>\n<html><head><title>Sign in to Guest Wi-Fi</title></head>"
    "<body><h1>Welcome</h1><p>Accept the terms to continue.</p></body></html>\n"
)
"""A captive portal's page."""

NOT_A_COMPLETION_JSON = '{"status": "ok", "message": "Welcome to nginx!"}'
"""A JSON body that is no model's answer (a proxy's or a health endpoint's)."""


@dataclass(frozen=True)
class NotAStream:
    """Answer a chat request with HTTP ``status`` and a body that is not a model stream.

    What a captive portal, a reverse proxy or a wrong base URL gives: by default a 200 HTML
    page (:data:`PORTAL_HTML`); ``NotAStream("application/json", NOT_A_COMPLETION_JSON)`` is a
    200 JSON body that is no completion. Sent with a ``Content-Length``.

    Attributes:
        content_type: The ``Content-Type`` header.
        body: The body text (UTF-8).
        status: The status code.
    """

    content_type: str = "text/html; charset=utf-8"
    body: str = PORTAL_HTML
    status: int = 200


@dataclass(frozen=True)
class BadUTF8:
    """A normally finished text answer one of whose deltas carries invalid UTF-8.

    Three deltas: ``before``, then one whose JSON string holds the raw ``bad`` bytes (not a
    valid UTF-8 sequence, so a strict decoder fails), then ``after``. A lenient client shows
    ``bad.decode("utf-8", "replace")`` (U+FFFD) for them and keeps everything else.

    Attributes:
        before: Text streamed before the bad delta.
        bad: The invalid bytes (default: a lone Latin-1 ``é`` and a stray continuation byte).
        after: Text streamed after it.
    """

    before: str = "Caf"
    bad: bytes = b"\xe9\x80"
    after: str = " au lait."

    def __post_init__(self) -> None:
        """The bytes must really be invalid UTF-8 (else the test proves nothing)."""
        try:
            self.bad.decode("utf-8")
        except UnicodeDecodeError:
            return
        raise ValueError("BadUTF8.bad must not be valid UTF-8")


@dataclass(frozen=True)
class Redirect:
    """Answer with a redirect (``307`` keeps the method and body: the prompt is re-posted).

    Attributes:
        location: The ``Location`` header (another server's URL for the cross-origin case).
        status: 301, 302, 303, 307 or 308.
    """

    location: str
    status: int = 307

    def __post_init__(self) -> None:
        """Only redirect statuses."""
        if self.status not in (301, 302, 303, 307, 308):
            raise ValueError(f"not a redirect status: {self.status}")


Reply = (
    Text
    | ToolCalls
    | HTTPError
    | Drop
    | Stall
    | StreamError
    | Cut
    | NotAStream
    | BadUTF8
    | Redirect
)
"""Anything :meth:`FakeLLMServer.enqueue` accepts."""

__all__ = [
    "NOT_A_COMPLETION_JSON",
    "PORTAL_HTML",
    "BadUTF8",
    "Call",
    "Cut",
    "CutFraming",
    "Drop",
    "HTTPError",
    "NotAStream",
    "Redirect",
    "Reply",
    "Stall",
    "StreamError",
    "Text",
    "TextFinish",
    "ToolCalls",
]
