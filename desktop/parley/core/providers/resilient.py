"""Retries and fallback, wrapped around any provider (not sprinkled inside adapters).

- Retries happen only before the first content event: once text or a tool call reached
  the person, a failure ends the turn (the caller keeps the partial answer).
- Retried: rate limits (429), 408/409, 5xx/529, timeouts, connection errors — i.e. errors
  whose ``retryable`` is true. Never retried: quota/spend-limit, auth, bad requests.
- Waits honour ``retry-after``/``retry-after-ms`` up to 60 s (longer: give up at once),
  otherwise exponential backoff with jitter. At most ``max_attempts`` requests in total.
- Then an optional fallback model, announced with :class:`FallbackUsed`.

tenacity decides whether and how long to wait; the sleep itself happens inside the
stream so a :class:`RetryScheduled` event reaches the UI first (for a countdown).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from parley.core.errors import (
    BadRequest,
    Cancelled,
    ConfigError,
    ParleyError,
)
from parley.core.providers.base import (
    AttemptStarted,
    ChatRequest,
    FallbackUsed,
    Finished,
    ModelInfo,
    Provider,
    RetryScheduled,
    StreamEvent,
    Usage,
)
from parley.core.providers.http_errors import MAX_RETRY_AFTER_S

_NON_CONTENT = (AttemptStarted, RetryScheduled, FallbackUsed, Usage, Finished)


@dataclass(frozen=True)
class Fallback:
    """The model tried when the primary one fails before answering."""

    provider: Provider
    model: str


class _PartialFailure(Exception):
    """Carries an error raised after content was emitted: never retried."""

    def __init__(self, error: ParleyError) -> None:
        super().__init__(error.user_message)
        self.error = error


async def _no_sleep(_seconds: float) -> None:
    """Tenacity's own sleep is replaced: the stream sleeps after announcing the wait."""


class ResilientProvider:
    """Wraps a provider with bounded retries and an optional fallback.

    Args:
        primary: The provider to call.
        max_attempts: Requests in total, first one included.
        fallback: Model to try once the primary's attempts are used up.
        sleep: Awaitable sleep (tests pass a recording one; the default is asyncio.sleep).
        backoff_initial: First backoff when the server gave no retry-after.
    """

    def __init__(
        self,
        primary: Provider,
        *,
        max_attempts: int = 3,
        fallback: Fallback | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        backoff_initial: float = 1.0,
    ) -> None:
        self.primary = primary
        self.name = primary.name
        self.max_attempts = max_attempts
        self.fallback = fallback
        self._sleep = sleep
        self._backoff = wait_exponential_jitter(initial=backoff_initial, max=20.0, jitter=0.5)

    # ---- Policy
    @staticmethod
    def should_retry(exc: BaseException) -> bool:
        """Retry only retryable errors whose requested wait we are willing to honour."""
        if not isinstance(exc, ParleyError) or not exc.retryable:
            return False
        wait = getattr(exc, "retry_after", None)
        return wait is None or wait <= MAX_RETRY_AFTER_S

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        wait = getattr(exc, "retry_after", None)
        if isinstance(wait, int | float):
            return float(wait)
        return float(self._backoff(state))

    # ---- Public API
    async def stream(self, request: ChatRequest) -> AsyncGenerator[StreamEvent, None]:
        """Stream with retries, then the fallback; errors after content propagate as-is."""
        try:
            async with contextlib.aclosing(self._with_retries(self.primary, request)) as s:
                async for ev in s:
                    yield ev
            return
        except _PartialFailure as pf:
            raise pf.error from None
        except (Cancelled, ConfigError, BadRequest, asyncio.CancelledError):
            raise
        except ParleyError as exc:
            if self.fallback is None:
                raise
            primary_error = exc
        fb = self.fallback
        yield FallbackUsed(
            fb.provider.name,
            fb.model,
            f"{primary_error.user_message} Answered by {fb.model} instead.",
        )
        fb_request = ChatRequest(
            model=fb.model,
            messages=request.messages,
            system=request.system,
            tools=request.tools,
            temperature=request.temperature,
            top_p=request.top_p,
            max_output_tokens=request.max_output_tokens,
        )
        try:
            async with contextlib.aclosing(self._with_retries(fb.provider, fb_request)) as s:
                async for ev in s:
                    yield ev
        except _PartialFailure as pf:
            raise pf.error from None

    async def _with_retries(
        self, provider: Provider, request: ChatRequest
    ) -> AsyncGenerator[StreamEvent, None]:
        pending: list[tuple[float, str]] = []

        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            wait = state.next_action.sleep if state.next_action else 0.0
            msg = exc.user_message if isinstance(exc, ParleyError) else "Request failed."
            pending.append((float(wait), msg))

        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.max_attempts),
            wait=self._wait,
            retry=retry_if_exception(self.should_retry),
            sleep=_no_sleep,
            before_sleep=before_sleep,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                n = attempt.retry_state.attempt_number
                if pending:
                    wait, msg = pending.pop()
                    yield RetryScheduled(n, wait, msg)
                    await self._sleep(wait)
                yield AttemptStarted(n, provider.name, request.model)
                emitted = False
                try:
                    async with contextlib.aclosing(provider.stream(request)) as stream:
                        async for ev in stream:
                            if not emitted and not isinstance(ev, _NON_CONTENT):
                                emitted = True
                            yield ev
                except ParleyError as exc:
                    if emitted:
                        raise _PartialFailure(exc) from exc
                    raise

    async def list_models(self) -> list[ModelInfo]:
        """The primary's models."""
        return await self.primary.list_models()

    async def aclose(self) -> None:
        """Close primary and fallback clients."""
        await self.primary.aclose()
        if self.fallback is not None and self.fallback.provider is not self.primary:
            await self.fallback.provider.aclose()
