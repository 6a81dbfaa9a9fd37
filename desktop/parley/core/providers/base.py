"""The one provider protocol and its vendor-neutral vocabulary.

Adapters (``openai.py``, ``anthropic.py``) translate SDK objects to these dataclasses;
nothing above ``core.providers`` knows which vendor answered (STYLE.md §2).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

Role = Literal["system", "user", "assistant", "tool"]


# ---------------------------------------------------------------- request side
@dataclass(frozen=True, slots=True)
class ToolCall:
    """A tool call the model made: ``arguments`` is the raw JSON text it produced."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class Message:
    """One message of the conversation as sent to a model.

    ``tool_calls`` is set on assistant messages that called tools; ``tool_call_id`` (and
    ``name``) on ``role="tool"`` messages carrying a result. ``is_error`` marks a tool
    result that is an error (Anthropic sends it as ``is_error``).
    """

    role: Role
    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    name: str | None = None
    is_error: bool = False


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A tool offered to the model: a name, a description and a JSON Schema."""

    name: str
    description: str
    parameters: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """Everything one model call needs. ``system`` is separate from ``messages``."""

    model: str
    messages: tuple[Message, ...]
    system: str | None = None
    tools: tuple[ToolSpec, ...] = ()
    temperature: float | None = None
    top_p: float | None = None
    max_output_tokens: int | None = None
    cache_prefix: int | None = None
    """Prompt caching (issue 13): mark the tools, the system prompt and the first
    ``cache_prefix`` messages as a stable prefix the provider should cache (adapters whose
    provider caches by itself ignore it); None: mark nothing."""


# ---------------------------------------------------------------- stream events
@dataclass(frozen=True, slots=True)
class TextDelta:
    """A piece of answer text."""

    text: str


@dataclass(frozen=True, slots=True)
class ToolCallStarted:
    """The model began a tool call (its name is known, arguments follow)."""

    index: int
    id: str
    name: str


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """A fragment of a tool call's JSON arguments."""

    index: int
    arguments_delta: str


@dataclass(frozen=True, slots=True)
class ToolCallDone:
    """A complete tool call: arguments are the whole JSON text (may be invalid JSON)."""

    index: int
    call: ToolCall


@dataclass(frozen=True, slots=True)
class Usage:
    """Token usage as the provider reported it. ``None`` means not reported.

    ``input_tokens`` counts every prompt token, cached ones included;
    ``cached_input_tokens`` is the part read from the provider's prompt cache;
    ``cache_write_tokens`` the part written to it (Anthropic bills those higher).
    """

    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_input_tokens: int | None = None
    cache_write_tokens: int | None = None

    def __add__(self, other: Usage) -> Usage:
        def add(a: int | None, b: int | None) -> int | None:
            if a is None and b is None:
                return None
            return (a or 0) + (b or 0)

        return Usage(
            add(self.input_tokens, other.input_tokens),
            add(self.output_tokens, other.output_tokens),
            add(self.cached_input_tokens, other.cached_input_tokens),
            add(self.cache_write_tokens, other.cache_write_tokens),
        )


FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "other"]


@dataclass(frozen=True, slots=True)
class Finished:
    """The stream ended normally. ``reason`` is normalised across vendors."""

    reason: FinishReason
    raw_reason: str | None = None


@dataclass(frozen=True, slots=True)
class RetryScheduled:
    """The resilience layer will retry after ``wait_s`` (the UI shows a countdown)."""

    attempt: int
    wait_s: float
    message: str


@dataclass(frozen=True, slots=True)
class FallbackUsed:
    """The primary model failed before answering; ``model`` on ``provider`` answers instead."""

    provider: str
    model: str
    message: str


@dataclass(frozen=True, slots=True)
class AttemptStarted:
    """A request (attempt number ``attempt``, 1-based) was sent to ``provider``/``model``."""

    attempt: int
    provider: str
    model: str


# ---- request accounting (core/metering.py wraps a provider and adds these; issue 13)
@dataclass(frozen=True, slots=True)
class Estimated:
    """The token estimate of a request just before it is sent.

    ``cost_usd`` prices the input side (None: the price is unknown); ``exact`` says whether
    the model's own tokenizer counted it (otherwise it is shown with "≈"; ``note`` says how).
    """

    input_tokens: int
    exact: bool
    cost_usd: float | None
    note: str = ""
    basis_tokens: int | None = None
    method: str | None = None


@dataclass(frozen=True, slots=True)
class ContextTrimmed:
    """The oldest turns were left out of the request so it fits the context window."""

    note: str
    dropped_messages: int


@dataclass(frozen=True, slots=True)
class CacheReplay:
    """The answer that follows comes from Parley's response cache: no request was made."""

    saved_usd: float | None


@dataclass(frozen=True, slots=True)
class Metered:
    """One request is accounted for (its ledger row): sent after its :class:`Usage`.

    ``cost_usd`` is None when a price is unknown; ``local`` marks a server on this machine
    (really $0); ``cache_hit`` a reply from Parley's response cache (``saved_usd`` is what
    it would have cost). ``purpose`` is ``chat`` or ``tool_round``.
    """

    provider: str
    model: str
    usage: Usage
    cost_usd: float | None
    purpose: str = "chat"
    fallback: bool = False
    cache_hit: bool = False
    saved_usd: float | None = None
    local: bool = False
    estimate: Estimated | None = None


StreamEvent = (
    TextDelta
    | ToolCallStarted
    | ToolCallDelta
    | ToolCallDone
    | Usage
    | Finished
    | RetryScheduled
    | FallbackUsed
    | AttemptStarted
    | Estimated
    | ContextTrimmed
    | CacheReplay
    | Metered
)


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Network time limits in seconds."""

    connect: float = 10.0
    first_byte: float = 60.0
    """From sending the request to the first streamed event (models may think first)."""
    idle: float = 30.0
    """Longest silence allowed between two events once the stream has started."""


@dataclass(frozen=True)
class ModelInfo:
    """A model a provider offers (from its models endpoint)."""

    id: str
    owned_by: str | None = None


@runtime_checkable
class Provider(Protocol):
    """A chat model backend. ``stream`` raises :class:`~parley.core.errors.ParleyError`."""

    name: str
    """Provider id as in models.toml and settings: openai, anthropic, openai-compatible..."""

    def stream(self, request: ChatRequest) -> AsyncGenerator[StreamEvent, None]:
        """Send ``request`` and yield events as they arrive. Cancelling closes the stream."""
        ...

    async def list_models(self) -> list[ModelInfo]:
        """Models the endpoint offers."""
        ...

    async def aclose(self) -> None:
        """Close HTTP connections."""
        ...


@dataclass
class StreamResult:
    """What a drained stream amounted to (helper for the CLI, tests and benchmarks)."""

    text: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    finish: Finished | None = None

    def feed(self, ev: StreamEvent) -> None:
        """Accumulate one event."""
        if isinstance(ev, TextDelta):
            self.text += ev.text
        elif isinstance(ev, ToolCallDone):
            self.tool_calls.append(ev.call)
        elif isinstance(ev, Usage):
            self.usage = self.usage + ev
        elif isinstance(ev, Finished):
            self.finish = ev
