"""The HTTP exchange under both adapters: the client, the response check, the event stream.

The SDKs send the request, check the status and raise their typed errors; what comes back
on a 200 is read here, the same way for both wire formats (issue 11: hostile servers):

- :func:`http_client` is the SDK's own default HTTP client plus a redirect guard: a redirect
  to another origin (scheme, host, port) is refused instead of re-posting the conversation
  there, and the error says where it tried to send it.
- :func:`check_stream` looks at a 200 before it is read as a stream: an HTML page (a
  captive portal, a wrong base URL) or a JSON body that is no completion is a
  :class:`~parley.core.errors.WrongEndpoint` saying what came back; a whole completion sent
  as JSON (a server that does not stream) is returned for the adapter to use.
- :func:`sse_events` reads ``text/event-stream`` bytes into events. Bytes are decoded
  leniently (invalid UTF-8 becomes U+FFFD, never an exception) and only CR, LF and CRLF end
  lines (JSON may carry U+2028 raw). Parsing the JSON in each event is the adapter's job,
  so that undecodable data becomes its "malformed chunk" error.

Whether the stream reached its end (a finish reason, ``[DONE]``, ``message_stop``) is the
adapters' check: an HTTP body can end cleanly without it (a close-delimited body ends when
the connection closes), and only the protocol's end says the answer is complete.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from parley.core.errors import WrongEndpoint

MAX_NOT_A_STREAM_BYTES = 256 * 1024
"""Most of a non-stream 200 body read to say what it is (a completion fits easily)."""

_TITLE = re.compile(rb"<title[^>]*>(.*?)</title", re.IGNORECASE | re.DOTALL)


@dataclass(frozen=True, slots=True)
class SSEvent:
    """One server-sent event: its ``event:`` name (None when absent) and its joined data."""

    event: str | None
    data: str


# ---------------------------------------------------------------- the HTTP client
def origin(url: Any) -> str:
    """``scheme://host[:port]`` of an ``httpx`` URL (a default port left out; never userinfo)."""
    default = {"http": 80, "https": 443}.get(url.scheme)
    port = url.port if url.port not in (None, default) else None
    host = f"[{url.host}]" if ":" in url.host else url.host
    return f"{url.scheme}://{host}" + (f":{port}" if port else "")


def _shown(url: Any) -> str:
    """Where a redirect pointed: no userinfo, no query string (either may carry a token)."""
    return origin(url) + url.path


def _same_origin(old: Any, new: Any) -> bool:
    if origin(old) == origin(new):
        return True
    # http -> https on the same host and default ports: the same server, upgraded (httpx
    # keeps the Authorization header in that case too).
    return (
        old.scheme == "http"
        and new.scheme == "https"
        and old.host == new.host
        and old.port in (None, 80)
        and new.port in (None, 443)
    )


def redirect_guard(provider_label: str) -> Any:
    """An ``httpx`` response hook that refuses redirects to another origin.

    A ``307``/``308`` re-posts the request body, the whole conversation, wherever it points
    (the SDK's client follows redirects; ``httpx`` drops the key but not the prompt). Same-
    origin redirects (a trailing slash) are still followed.
    """

    async def check(response: Any) -> None:
        if not response.has_redirect_location:
            return
        target = response.request.url.join(response.headers["location"])
        if _same_origin(response.request.url, target):
            return
        raise WrongEndpoint(
            f"{provider_label} at {origin(response.request.url)} redirected the request to "
            f"{_shown(target)} (HTTP {response.status_code}); Parley does not send your "
            "conversation to another server. Check the base URL.",
            detail=f"Location: {_shown(target)}",
        )

    return check


def http_client(sdk: Any, provider_label: str) -> Any:
    """The SDK's default async HTTP client (its timeouts, limits and keep-alive), guarded.

    Args:
        sdk: The ``openai`` or ``anthropic`` module (each has ``DefaultAsyncHttpxClient``).
        provider_label: Name shown in errors.
    """
    return sdk.DefaultAsyncHttpxClient(event_hooks={"response": [redirect_guard(provider_label)]})


def unwrap(exc: BaseException) -> BaseException:
    """The Parley error an SDK wrapped (a hook's error arrives as its connection error)."""
    from parley.core.errors import ParleyError

    cause = exc.__cause__
    return cause if isinstance(cause, ParleyError) else exc


# ---------------------------------------------------------------- the response
async def check_stream(
    response: Any, provider_label: str, *, is_completion: Any
) -> dict[str, Any] | None:
    """None when ``response`` is an event stream; the JSON when it is a whole completion.

    Args:
        response: The ``httpx`` response of a streaming request (status 2xx, body unread).
        provider_label: Name shown in errors.
        is_completion: Whether a decoded JSON object is this wire format's completion.

    Raises:
        WrongEndpoint: the body is an HTML page, other text, or JSON that is no completion.
    """
    ctype = response.headers.get("content-type", "").lower()
    if not ctype or "event-stream" in ctype:
        return None  # no type at all: read it as a stream; the end check still applies
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > MAX_NOT_A_STREAM_BYTES:
            break
    await response.aclose()
    where = f"{provider_label} at {origin(response.request.url)}"
    head = bytes(body[:MAX_NOT_A_STREAM_BYTES])
    if "html" in ctype or head.lstrip()[:1] == b"<":
        title = _TITLE.search(head)
        shown = title.group(1).decode("utf-8", "replace").strip()[:120] if title else ""
        raise WrongEndpoint(
            f"{where} answered with an HTML page, not a model stream: check the base URL"
            + (f' (the page says "{" ".join(shown.split())}").' if shown else "."),
            detail=head[:300].decode("utf-8", "replace"),
        )
    try:
        payload = json.loads(head.decode("utf-8", "replace"))
    except ValueError:
        payload = None
    if isinstance(payload, dict) and is_completion(payload):
        return payload
    what = "JSON that is not a completion" if payload is not None else f"'{ctype}' content"
    said = _error_message(payload)
    raise WrongEndpoint(
        f"{where} answered with {what}, not a model stream: check the base URL"
        + (f' (it says "{said}").' if said else "."),
        detail=head[:300].decode("utf-8", "replace"),
    )


def _error_message(payload: Any) -> str:
    """The message of an ``{"error": ...}`` body (a gateway's way to refuse), shortened."""
    err = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(err, dict):
        err = err.get("message")
    if not isinstance(err, str):
        return ""
    from parley.core.providers.http_errors import redact

    text = redact(" ".join(err.split()))
    return text if len(text) <= 120 else text[:119] + "…"


# ---------------------------------------------------------------- the event stream
async def sse_events(chunks: AsyncIterator[bytes]) -> AsyncIterator[SSEvent]:
    """The events in a ``text/event-stream`` body (the WHATWG parsing rules, leniently decoded).

    An event is dispatched at its blank line; one the body ends in the middle of is dropped
    (it was cut, so it may be incomplete). ``id:`` and ``retry:`` are ignored.
    """
    decode = codecs.getincrementaldecoder("utf-8")("replace").decode
    pending = ""
    event: str | None = None
    data: list[str] = []
    final = False
    it = chunks.__aiter__()
    while not final:
        try:
            text = pending + decode(await it.__anext__())
        except StopAsyncIteration:
            text = pending + decode(b"", True)
            final = True
        # A CR at the very end may be the first half of a CRLF: keep it for the next chunk.
        keep_cr = text.endswith("\r") and not final
        if keep_cr:
            text = text[:-1]
        if "\r" in text:
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        lines = text.split("\n")
        pending = lines.pop() + ("\r" if keep_cr else "")
        for line in lines:
            if not line:
                if data:
                    yield SSEvent(event, "\n".join(data))
                event, data = None, []
            elif line[0] == ":":
                continue  # a comment (keep-alive)
            else:
                name, _, value = line.partition(":")
                if value[:1] == " ":
                    value = value[1:]
                if name == "data":
                    data.append(value)
                elif name == "event":
                    event = value


async def drain(items: AsyncIterator[Any], timeout: float = 0.1) -> None:
    """Read what follows a stream's end (briefly), so its connection can be reused.

    A server that keeps the body open after its end marker costs at most ``timeout``; the
    response is closed by the caller either way.
    """
    with contextlib.suppress(Exception):  # the deadline, or a connection that broke
        async with asyncio.timeout(timeout):
            async for _ in items:
                pass
