"""The context-window policy: what of a conversation is sent when it no longer fits (issue 13).

The same policy serves the window and the CLI. When a request would exceed the model's
context window minus the tokens reserved for the answer, the oldest turns are left out
first. Kept always: the system prompt (and the tool schemas), the pinned first message if
the conversation has one, and the newest turn (the question being asked, with any tool
rounds that followed it). A turn leaves as a whole, so a tool call is never separated from
its result. The person is told in one line what was left out. If the newest turn alone
does not fit, the request is refused before anything is sent, saying how many tokens it
needs and how many are available.

A provider's own context-length error (OpenAI ``context_length_exceeded``, Anthropic
"prompt is too long") is reported with the same sentence (:func:`too_long`), so a person
sees one message for one problem whichever side noticed it first.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from parley.core.errors import ContextTooLong

if TYPE_CHECKING:
    from parley.core.providers.base import ChatRequest, Message
    from parley.core.tokens import Estimate, TokenCounter

DEFAULT_RESERVED_OUTPUT = 8192
"""Tokens kept free for the answer when neither settings nor the catalog say (Anthropic's
adapter sends the same ``max_tokens`` by default)."""


def too_long(
    model: str, needed: int | None, window: int | None, reserved: int = 0
) -> ContextTooLong:
    """The one error for a request that does not fit ``model``'s context window.

    Args:
        model: The model's id.
        needed: Tokens the request needs (None: unknown, e.g. a provider that did not say).
        window: The model's context window (None: unknown).
        reserved: Tokens of the window kept for the answer.
    """
    if needed is not None and window is not None:
        available = max(0, window - reserved)
        room = f"{available:,} are available" + (
            f" ({window:,} in the window, {reserved:,} kept for the answer)" if reserved else ""
        )
        msg = (
            f"The newest message does not fit {model}'s context window: it needs "
            f"{needed:,} tokens and {room}. Shorten it, remove attachments, or pick a model "
            "with a larger window."
        )
    else:
        msg = (
            f"The conversation is too long for {model}'s context window. Shorten the newest "
            "message, remove attachments, or pick a model with a larger window."
        )
    return ContextTooLong(msg)


_OPENAI_NUMBERS = re.compile(
    r"maximum context length is\s+([\d,]+)\s+tokens"
    r".*?(?:resulted in|requested)\s+([\d,]+)\s+tokens",
    re.IGNORECASE | re.DOTALL,
)
_ANTHROPIC_NUMBERS = re.compile(
    r"prompt is too long:\s*([\d,]+)\s+tokens\s*>\s*([\d,]+)", re.IGNORECASE
)


def from_provider_message(model: str, message: str | None) -> ContextTooLong:
    """:func:`too_long` for a provider's context-length error, with its numbers if it gave any.

    OpenAI: "This model's maximum context length is 128000 tokens. However, your messages
    resulted in 130412 tokens." Anthropic: "prompt is too long: 208310 tokens > 200000
    maximum".
    """
    text = message or ""
    m = _OPENAI_NUMBERS.search(text)
    if m:
        return too_long(model, _int(m.group(2)), _int(m.group(1)))
    m = _ANTHROPIC_NUMBERS.search(text)
    if m:
        return too_long(model, _int(m.group(1)), _int(m.group(2)))
    return too_long(model, None, None)


def _int(text: str) -> int:
    return int(text.replace(",", ""))


@dataclass(frozen=True)
class Fitted:
    """A request that fits, and what was left out to make it fit.

    Attributes:
        request: What will be sent.
        estimate: Its token estimate.
        window: The context window it was fitted to (None: unknown, nothing left out).
        reserved: Tokens kept for the answer.
        dropped_messages: Messages left out (oldest turns).
        dropped_turns: Turns left out.
        dropped_tokens: Their tokens (basis count).
        note: One line for the person when something was left out, else None.
    """

    request: ChatRequest
    estimate: Estimate
    window: int | None
    reserved: int
    dropped_messages: int = 0
    dropped_turns: int = 0
    dropped_tokens: int = 0
    note: str | None = None


def turns(messages: Sequence[Message]) -> list[tuple[int, int]]:
    """``messages`` cut into turns: ``(start, end)`` slices, each starting at a user message.

    Anything before the first user message (a leading assistant greeting) is a turn of its
    own. Tool calls and their results always fall in the turn of the question they answer.
    """
    bounds: list[tuple[int, int]] = []
    start = 0
    for i, m in enumerate(messages):
        if m.role == "user" and i > start:
            bounds.append((start, i))
            start = i
    if start < len(messages):
        bounds.append((start, len(messages)))
    return bounds


def fit(
    request: ChatRequest,
    counter: TokenCounter,
    *,
    window: int | None,
    reserved: int,
    pin_first: bool = False,
) -> Fitted:
    """Fit ``request`` into ``window - reserved`` tokens by leaving out the oldest turns.

    Args:
        request: The request as assembled (system prompt, history, tools).
        counter: Counts it (its per-message cache makes repeated fitting cheap).
        window: The model's context window; None (unknown) sends the request as it is.
        reserved: Tokens kept free for the answer.
        pin_first: Keep the conversation's first message (a pinned brief or document).

    Raises:
        ContextTooLong: the newest turn (with the system prompt, tools and pinned message)
            does not fit on its own. Nothing has been sent.
    """
    basis = counter.basis(request)
    estimate = counter.finish(basis)
    if window is None or estimate.input_tokens <= window - reserved:
        return Fitted(request, estimate, window, reserved)
    factor = estimate.factor
    budget = window - reserved
    messages = request.messages
    spans = turns(messages)
    pinned = pin_first and len(spans) > 1 and messages[0].role == "user"
    # What may go, oldest first: whole turns, never the newest one. With a pinned first
    # message, only that message stays of the first turn (its answer may go like any other).
    droppable: list[tuple[int, int, bool]] = []  # (start, end, is a whole turn)
    for n, (a, b) in enumerate(spans[:-1]):
        if n == 0 and pinned:
            if b > 1:
                droppable.append((1, b, False))
        else:
            droppable.append((a, b, True))
    kept_cost = basis
    gone: list[tuple[int, int, bool]] = []
    for a, b, whole in droppable:
        if round(kept_cost * factor) <= budget:
            break
        kept_cost -= sum(counter.message(m) for m in messages[a:b])
        gone.append((a, b, whole))
    if round(kept_cost * factor) > budget:
        raise too_long(request.model, round(kept_cost * factor), window, reserved)
    out = {i for a, b, _ in gone for i in range(a, b)}
    kept = tuple(m for i, m in enumerate(messages) if i not in out)
    left_out = len(out)
    dropped = sum(1 for *_, whole in gone if whole)
    dropped_tokens = basis - kept_cost
    fitted = replace(request, messages=kept)
    new_estimate = counter.finish(kept_cost)
    what = f"{left_out} earliest message{'s' if left_out != 1 else ''}"
    note = (
        f"Left out the {what} (~{round(dropped_tokens * factor):,} tokens) to fit "
        f"{request.model}'s {window:,}-token context window"
        + (" (the first message stays pinned)." if pinned else ".")
    )
    return Fitted(fitted, new_estimate, window, reserved, left_out, dropped, dropped_tokens, note)
