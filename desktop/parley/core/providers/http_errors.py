"""HTTP failure -> typed Parley error, shared by the adapters.

The adapters pull status, headers and the vendor's error ``type``/``code``/``message`` out
of their SDK's exception and call :func:`error_for_status`. The vendor message is kept only
as ``detail`` (it is shown on request), never in ``user_message``: it can echo parts of a key.
"""

from __future__ import annotations

import email.utils
import re
import time
from collections.abc import Mapping

from parley.core.context import from_provider_message
from parley.core.errors import (
    AuthError,
    BadRequest,
    ModelNotFound,
    ParleyError,
    ProviderDown,
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
) -> ParleyError:
    """The Parley error for an HTTP error response."""
    text = " ".join(x for x in (err_type, err_code, message) if x).lower()
    detail = redact(f"HTTP {status} {err_type or ''} {err_code or ''}: {message or ''}".strip())
    retry_after = parse_retry_after(headers)
    if status < 400:
        # An error event inside a stream that began with HTTP 200 (Anthropic's SDK raises
        # those as status errors carrying the 200): the request was fine, the answer broke.
        what = "is overloaded" if "overloaded" in text else "failed"
        return ProviderDown(
            f"{provider_label} {what} mid-answer; the answer was cut off.", detail=detail
        )
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


def malformed(provider_label: str, what: str, payload: object) -> ProviderDown:
    """The error for a streamed ``what`` (chunk, event) not shaped like one."""
    return ProviderDown(
        f"{provider_label} sent a malformed {what}; the answer was cut off.",
        detail=redact(repr(payload)[:300]),
    )


def is_transport_error(exc: BaseException) -> bool:
    """Whether ``exc`` is a network failure the SDK let through unwrapped.

    The SDKs wrap most transport errors, but a connection dropped mid-stream surfaces as
    the HTTP library's own ``RemoteProtocolError``/``ReadError`` (httpx2/httpcore2).
    """
    if isinstance(exc, OSError | EOFError):
        return True
    mod = type(exc).__module__.split(".")[0]
    return mod in ("httpx", "httpx2", "httpcore", "httpcore2", "h11", "anyio", "ssl")
