"""HTTP failure -> typed Parley error, shared by the adapters.

The adapters pull status, headers and the vendor's error ``type``/``code``/``message`` out
of their SDK's exception and call :func:`error_for_status`. The vendor message is kept only
as ``detail`` (it is shown on request), never in ``user_message``: it can echo parts of a key.
"""

from __future__ import annotations

import email.utils
import re
import time
from collections.abc import Callable, Mapping
from typing import Any

from parley.core.context import from_provider_message
from parley.core.errors import (
    AuthError,
    BadRequest,
    ModelNotFound,
    ParleyError,
    ProviderDown,
    ProviderTimeout,
    QuotaExhausted,
    RateLimited,
)

MAX_RETRY_AFTER_S = 60.0
"""Longest server-requested wait Parley honours before giving up instead."""

_CONTEXT_HINTS = (
    "context_length_exceeded",
    "context length",
    "maximum context",
    "prompt is too long",
    "too many tokens",
    "context window",
)
_QUOTA_HINTS = (
    "insufficient_quota",
    "billing",
    "credit balance",
    "spend limit",
    "spending limit",
    "quota",
)
_KEY_LIKE = re.compile(r"(sk-[A-Za-z0-9_\-]{6,}|[A-Za-z0-9_\-]{32,})")


def redact(text: str) -> str:
    """Hide anything that looks like a key in a vendor message."""
    return _KEY_LIKE.sub("[redacted]", text)


def parse_retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``retry-after`` (seconds or HTTP date)."""
    if not headers:
        return None
    lower = {k.lower(): v for k, v in headers.items()}
    ms = lower.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    ra = lower.get("retry-after")
    if ra:
        try:
            return max(0.0, float(ra))
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(ra).timestamp()
            except (TypeError, ValueError):
                return None
            return max(0.0, when - time.time())
    return None


def error_for_status(
    status: int,
    *,
    provider_label: str,
    model: str,
    headers: Mapping[str, str] | None = None,
    err_type: str | None = None,
    err_code: str | None = None,
    message: str | None = None,
    said: bool = True,
) -> ParleyError:
    """The Parley error for an HTTP error response.

    ``said`` matters only for an error event inside a stream (``status`` below 400):
    whether answer content had arrived before it.
    """
    text = " ".join(x for x in (err_type, err_code, message) if x).lower()
    detail = redact(f"HTTP {status} {err_type or ''} {err_code or ''}: {message or ''}".strip())
    retry_after = parse_retry_after(headers)
    if status < 400:
        # An error event inside a stream that began with HTTP 200: the request was fine,
        # the answer broke.
        what = "is overloaded" if "overloaded" in text else "failed"
        return ProviderDown(f"{provider_label} {what} {cut_phrase(said)}", detail=detail)
    if any(h in text for h in _QUOTA_HINTS) and status in (400, 402, 403, 429):
        return QuotaExhausted(
            f"{provider_label}: the account's quota or spend limit is used up; check billing.",
            detail=detail,
        )
    if status in (401, 403):
        return AuthError(
            f"{provider_label} rejected the API key (HTTP {status}). "
            "Check it in Settings or with `parley keys set`.",
            detail=detail,
        )
    if status == 404:
        return ModelNotFound(f"{provider_label} does not know the model '{model}'.", detail=detail)
    if status == 429:
        return RateLimited(
            f"{provider_label} is rate limiting requests"
            + (f"; retry in {retry_after:.0f} s." if retry_after is not None else "."),
            retry_after=retry_after,
            detail=detail,
        )
    if status in (400, 413, 422) and any(h in text for h in _CONTEXT_HINTS):
        # The same sentence as Parley's own pre-send refusal (core/context.py), with the
        # provider's numbers when it gave them.
        exc = from_provider_message(model, message)
        exc.detail = detail
        return exc
    if status in (408, 409) or status >= 500:
        what = "is overloaded" if status == 529 or "overloaded" in text else "had a server error"
        return ProviderDown(
            f"{provider_label} {what} (HTTP {status}).",
            status=status,
            retry_after=retry_after,
            detail=detail,
        )
    return BadRequest(
        f"{provider_label} refused the request (HTTP {status}"
        + (f", {err_type or err_code}" if (err_type or err_code) else "")
        + ").",
        detail=detail,
    )


MALFORMED = (AttributeError, KeyError, TypeError, ValueError)
"""What the adapters' mapping of a decoded chunk raises when it is not shaped like one."""


# ---------------------------------------------------------------- a stream that broke
# One wording for every way a stream can end early, chosen by whether answer content (text
# or a tool call) had arrived: "the answer was cut off" only when there was an answer to cut
# (issue 11: an Anthropic stream that never produced text said so too).


def cut_phrase(said: bool) -> str:
    """How a stream that broke ends its message: whether there was an answer to cut."""
    return "mid-answer; the answer was cut off." if said else "before answering."


def malformed(
    provider_label: str, what: str, payload: object, *, said: bool = True
) -> ProviderDown:
    """The error for a streamed ``what`` (chunk, event) that is not JSON or not shaped like one."""
    return ProviderDown(
        f"{provider_label} sent a malformed {what} {cut_phrase(said)}",
        detail=redact(repr(payload)[:300]),
    )


def dropped(provider_label: str, *, said: bool, detail: str | None = None) -> ProviderDown:
    """The stream ended without its end: the connection broke, or closed cleanly too early.

    A close-delimited body (``Connection: close``, no length) ends cleanly whenever the
    connection closes, so only the protocol's own end (a finish reason, ``[DONE]``,
    ``message_stop``) says an answer is complete. Retryable: the resilience layer retries
    it when nothing had been said yet.
    """
    if said:
        msg = f"The connection to {provider_label} dropped mid-answer; the answer was cut off."
    else:
        msg = f"The connection to {provider_label} dropped before the answer began."
    return ProviderDown(msg, detail=detail)


def stalled(provider_label: str, *, started: bool, said: bool, limit: float) -> ProviderTimeout:
    """The stall guard fired: no first byte, or a silence of ``limit`` seconds mid-stream."""
    if not started:
        return ProviderTimeout(f"{provider_label} did not start answering within {limit:g} s.")
    if not said:
        return ProviderTimeout(
            f"{provider_label} began its reply but sent no answer for {limit:g} s."
        )
    return ProviderTimeout(
        f"{provider_label} stopped sending for {limit:g} s; the answer was cut off."
    )


def is_timeout(exc: BaseException) -> bool:
    """Whether ``exc`` is the HTTP library's own read/connect timeout (not wrapped by an SDK)."""
    return is_transport_error(exc) and "Timeout" in type(exc).__name__


def is_transport_error(exc: BaseException) -> bool:
    """Whether ``exc`` is a network failure the SDK let through unwrapped.

    The SDKs wrap most transport errors, but a connection dropped mid-stream surfaces as
    the HTTP library's own ``RemoteProtocolError``/``ReadError`` (httpx2/httpcore2).
    """
    if isinstance(exc, OSError | EOFError):
        return True
    mod = type(exc).__module__.split(".")[0]
    return mod in ("httpx", "httpx2", "httpcore", "httpcore2", "h11", "anyio", "ssl")


def stream_failure(
    exc: Exception,
    *,
    sdk: Any,
    label: str,
    model: str,
    status_error: Callable[[Any, str, str], ParleyError],
    limits: tuple[float, float],
    started: bool,
    said: bool,
    responded: bool,
) -> BaseException:
    """The error a stream that raised ``exc`` ends with (both adapters, one mapping).

    Args:
        exc: What the stream raised.
        sdk: The ``openai`` or ``anthropic`` module (its exception classes).
        label: Provider name shown in errors.
        model: The model asked.
        status_error: The adapter's mapping of its SDK's status errors.
        limits: ``(first_byte, idle)`` seconds.
        started: Whether any event had arrived.
        said: Whether answer content had arrived.
        responded: Whether the response's status line had arrived.

    Returns:
        ``exc`` itself when it is already Parley's, or when it is no failure we know (a bug:
        the caller re-raises it).
    """
    first_byte, idle = limits
    if isinstance(exc, ParleyError):
        return exc
    if isinstance(exc, TimeoutError):  # the stall guard
        limit = idle if started else first_byte
        return stalled(label, started=started, said=said, limit=limit)
    if isinstance(exc, sdk.APIStatusError):
        return status_error(exc, label, model)
    if isinstance(exc, sdk.APITimeoutError):
        return ProviderTimeout(f"{label} took too long to answer.")
    if isinstance(exc, sdk.APIConnectionError):
        if isinstance(exc.__cause__, ParleyError):  # a hook refused (the redirect guard)
            return exc.__cause__
        return ProviderDown(f"Could not reach {label}.", detail=redact(repr(exc.__cause__ or exc)))
    if isinstance(exc, sdk.APIError):
        return ProviderDown(f"{label} failed {cut_phrase(said)}", detail=redact(str(exc)))
    if is_timeout(exc):  # the HTTP library's read timeout, mid-body
        return stalled(label, started=True, said=said, limit=max(first_byte, idle))
    if not is_transport_error(exc):
        return exc
    if not responded:
        return ProviderDown(f"Could not reach {label}.", detail=redact(repr(exc)))
    return dropped(label, said=said, detail=redact(repr(exc)))
