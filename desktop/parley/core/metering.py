"""Every request accounted for: fit, estimate, cache, meter (issue 13).

:class:`MeteredProvider` wraps the provider a turn uses (outside the retries and the
fallback, so it sees each round exactly as the agent asks for it). For every request, a
chat round or a tool round alike, it:

1. fits the request into the model's context window (:func:`parley.core.context.fit`),
   announcing what was left out (:class:`~parley.core.providers.base.ContextTrimmed`) or
   refusing before anything is sent (``ContextTooLong``);
2. estimates its input tokens and their price (:class:`~parley.core.providers.base.Estimated`);
3. marks its stable prefix for the provider's prompt cache when it is long enough;
4. answers it from Parley's response cache when it may (temperature 0, setting on, not a
   Regenerate), or sends it and stores a complete answer for next time;
5. reports each usage the provider sends as a :class:`~parley.core.providers.base.Metered`
   event, priced, right after it arrives: the chat session writes the ledger row then.

The blocking parts (counting a long conversation, SQLite) run in a worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from parley.core.cache import CachedResponse, request_key
from parley.core.context import DEFAULT_RESERVED_OUTPUT, Fitted, fit
from parley.core.costs import cache_savings, usage_cost
from parley.core.errors import ParleyError
from parley.core.providers.base import (
    CacheReplay,
    ChatRequest,
    ContextTrimmed,
    Estimated,
    FallbackUsed,
    Finished,
    Message,
    Metered,
    ModelInfo,
    Provider,
    StreamEvent,
    TextDelta,
    ToolCall,
    ToolCallDone,
    ToolCallStarted,
    Usage,
)
from parley.core.tokens import DraftEstimate, TokenCounter

if TYPE_CHECKING:
    from parley.core.cache import ResponseCache
    from parley.core.providers.catalog import Catalog
    from parley.core.providers.catalog import ModelInfo as CatalogModel
    from parley.core.settings import SettingsStore
    from parley.core.store.ledger import Ledger

log = logging.getLogger(__name__)

REPLAY_CHUNK_CHARS = 256
"""Characters per text event when a cached answer is replayed."""


def stable_prefix(messages: Sequence[Message]) -> int:
    """How many leading messages are history that the next request will repeat unchanged.

    That is everything up to the last assistant message (the newest question, or the newest
    tool results, come after it).
    """
    for i in range(len(messages) - 1, -1, -1):
        if messages[i].role == "assistant":
            return i + 1
    return 0


def purpose_of(request: ChatRequest) -> str:
    """``tool_round`` for a request that carries tool results back, else ``chat``."""
    return "tool_round" if request.messages and request.messages[-1].role == "tool" else "chat"


@dataclass(frozen=True)
class Prepared:
    """A request ready to go: fitted, estimated, maybe already answered from the cache."""

    request: ChatRequest
    estimated: Estimated
    trimmed: ContextTrimmed | None
    purpose: str
    cache_key: str | None = None
    cached: CachedResponse | None = None


class Meter:
    """Token counts, context limits, prompt/response caching and prices for requests.

    Args:
        catalog: Context windows, answer limits, prices, prompt-cache minimums.
        settings: Caching switches (read at call time).
        cost_for: Prices a usage for a provider id and model (None: unknown).
        is_local: Whether a provider id is a server on this machine ($0).
        base_url_for: A provider id's endpoint (part of the response-cache key).
        ledger: Past usage, to calibrate estimates of models without a tokenizer.
        cache: The response cache (None: no response caching).
    """

    def __init__(
        self,
        *,
        catalog: Catalog,
        settings: SettingsStore,
        cost_for: Callable[[str, str, Usage], float | None],
        is_local: Callable[[str], bool],
        base_url_for: Callable[[str], str | None],
        ledger: Ledger | None = None,
        cache: ResponseCache | None = None,
    ) -> None:
        self.catalog = catalog
        self.settings = settings
        self.cost_for = cost_for
        self.is_local = is_local
        self.base_url_for = base_url_for
        self.ledger = ledger
        self.cache = cache
        self._counters: dict[tuple[str, str], TokenCounter] = {}
        self._lock = threading.Lock()

    # ---- counting
    def counter(self, provider_id: str, model: str) -> TokenCounter:
        """The (cached) counter of ``model``, its calibration refreshed from the ledger.

        Blocking (a small ledger query for models without a tokenizer).
        """
        with self._lock:
            counter = self._counters.get((provider_id, model))
            if counter is None:
                counter = self._counters[(provider_id, model)] = TokenCounter(model)
        if not counter.exact and self.ledger is not None:
            counter.calibration = self.ledger.calibration(provider_id, model, counter.method)
        return counter

    def model_info(self, provider_id: str, model: str) -> CatalogModel | None:
        """The catalog entry of ``model`` as served by ``provider_id``."""
        return self.catalog.model(model, provider_id)

    def limits(self, provider_id: str, request: ChatRequest) -> tuple[int | None, int]:
        """``(context window, tokens reserved for the answer)``; the window is None if unknown."""
        info = self.model_info(provider_id, request.model)
        window = info.context_window if info is not None else None
        if request.max_output_tokens:
            reserved = request.max_output_tokens
        elif info is not None and info.max_output:
            reserved = min(info.max_output, DEFAULT_RESERVED_OUTPUT)
        else:
            reserved = DEFAULT_RESERVED_OUTPUT
        if window is not None:
            reserved = min(reserved, window // 2)  # a tiny window still leaves room to ask
        return window, reserved

    def input_cost(self, provider_id: str, model: str, tokens: int) -> float | None:
        """The price of ``tokens`` uncached input tokens (None: unknown; 0 on a local server)."""
        return self.cost_for(provider_id, model, Usage(input_tokens=tokens, output_tokens=0))

    def estimated(self, provider_id: str, model: str, fitted: Fitted) -> Estimated:
        """The :class:`Estimated` event for a fitted request."""
        e = fitted.estimate
        return Estimated(
            e.input_tokens,
            e.exact,
            self.input_cost(provider_id, model, e.input_tokens),
            e.note,
            e.basis_tokens,
            e.method,
        )

    def draft(self, provider_id: str, base: ChatRequest) -> DraftEstimate:
        """An incremental estimate of ``base`` plus a message being typed (the composer's)."""
        return self.counter(provider_id, base.model).draft(base)

    # ---- one request
    def prepare(
        self,
        provider_id: str,
        request: ChatRequest,
        *,
        pin_first: bool = False,
        bypass_cache: bool = False,
    ) -> Prepared:
        """Fit, estimate, mark for prompt caching and look up the response cache (blocking).

        Raises:
            ContextTooLong: the newest turn alone does not fit; nothing is sent.
        """
        counter = self.counter(provider_id, request.model)
        window, reserved = self.limits(provider_id, request)
        fitted = fit(request, counter, window=window, reserved=reserved, pin_first=pin_first)
        req = self._mark_prefix(provider_id, fitted.request, counter)
        trimmed = ContextTrimmed(fitted.note, fitted.dropped_messages) if fitted.note else None
        estimated = self.estimated(provider_id, request.model, fitted)
        key = cached = None
        s = self.settings.current.caching
        if self.cache is not None and s.response_cache and req.temperature == 0:
            key = request_key(provider_id, self.base_url_for(provider_id), req)
            if not bypass_cache:
                cached = self.cache.get(key)
        return Prepared(req, estimated, trimmed, purpose_of(req), key, cached)

    def _mark_prefix(
        self, provider_id: str, request: ChatRequest, counter: TokenCounter
    ) -> ChatRequest:
        """Ask for prompt caching of the stable prefix when it is long enough to be cached."""
        if not self.settings.current.caching.prompt_cache:
            return request
        info = self.model_info(provider_id, request.model)
        if info is None or not info.cache_min_tokens:
            return request
        k = stable_prefix(request.messages)
        basis = (
            counter.system(request.system)
            + counter.tools(request.tools)
            + sum(counter.message(m) for m in request.messages[:k])
        )
        if counter.finish(basis).input_tokens < info.cache_min_tokens:
            return request
        return replace(request, cache_prefix=k)

    def metered(
        self,
        provider_id: str,
        model: str,
        usage: Usage,
        *,
        purpose: str,
        fallback: bool,
        estimate: Estimated | None,
    ) -> Metered:
        """The :class:`Metered` event for a usage the provider reported."""
        local = self.is_local(provider_id)
        return Metered(
            provider_id,
            model,
            usage,
            self.cost_for(provider_id, model, usage),
            purpose=purpose,
            fallback=fallback,
            saved_usd=cache_savings(usage, self.model_info(provider_id, model), local=local),
            local=local,
            estimate=estimate,
        )

    def wrap(
        self,
        provider: Provider,
        provider_id: str,
        *,
        pin_first: bool = False,
        bypass_cache: bool = False,
    ) -> MeteredProvider:
        """``provider`` with every request fitted, estimated, cached and metered."""
        return MeteredProvider(
            provider, self, provider_id, pin_first=pin_first, bypass_cache=bypass_cache
        )


class MeteredProvider:
    """A provider whose requests go through a :class:`Meter` (see the module docstring)."""

    def __init__(
        self,
        inner: Provider,
        meter: Meter,
        provider_id: str,
        *,
        pin_first: bool = False,
        bypass_cache: bool = False,
    ) -> None:
        self.inner = inner
        self.name = inner.name
        self.meter = meter
        self.provider_id = provider_id
        self.pin_first = pin_first
        self.bypass_cache = bypass_cache

    async def stream(self, request: ChatRequest) -> AsyncGenerator[StreamEvent, None]:
        """Fit, estimate, then answer from the cache or stream from the provider, metered."""
        meter = self.meter
        prep = await asyncio.to_thread(
            meter.prepare,
            self.provider_id,
            request,
            pin_first=self.pin_first,
            bypass_cache=self.bypass_cache,
        )
        if prep.trimmed is not None:
            yield prep.trimmed
        yield prep.estimated
        if prep.cached is not None:
            async for ev in self._replay(prep):
                yield ev
            return

        provider_id, model = self.provider_id, prep.request.model
        fallback = False
        parts: list[str] = []
        calls: list[ToolCall] = []
        usage = Usage()
        cost: float | None = 0.0
        finish: Finished | None = None
        stream = self.inner.stream(prep.request)
        async with contextlib.aclosing(stream):
            async for ev in stream:
                if isinstance(ev, Usage):
                    yield ev
                    m = meter.metered(
                        provider_id,
                        model,
                        ev,
                        purpose=prep.purpose,
                        fallback=fallback,
                        estimate=prep.estimated,
                    )
                    usage = usage + ev
                    cost = None if cost is None or m.cost_usd is None else cost + m.cost_usd
                    yield m
                    continue
                if isinstance(ev, FallbackUsed):
                    fallback = True
                    provider_id, model = ev.provider, ev.model
                elif isinstance(ev, TextDelta):
                    parts.append(ev.text)
                elif isinstance(ev, ToolCallDone):
                    calls.append(ev.call)
                elif isinstance(ev, Finished):
                    finish = ev
                yield ev
        if (
            prep.cache_key is not None
            and meter.cache is not None
            and not fallback
            and finish is not None
            and finish.reason in ("stop", "tool_calls")
            and (parts or calls)
        ):
            answer = CachedResponse(
                provider_id, model, "".join(parts), tuple(calls), usage, finish, cost
            )
            await asyncio.to_thread(meter.cache.put, prep.cache_key, answer)

    async def _replay(self, prep: Prepared) -> AsyncGenerator[StreamEvent, None]:
        cached = prep.cached
        assert cached is not None
        yield CacheReplay(cached.cost_usd)
        text = cached.text
        for i in range(0, len(text), REPLAY_CHUNK_CHARS):
            yield TextDelta(text[i : i + REPLAY_CHUNK_CHARS])
            await asyncio.sleep(0)  # a fast stream, but the window still paints
        for i, call in enumerate(cached.tool_calls):
            yield ToolCallStarted(i, call.id, call.name)
            yield ToolCallDone(i, call)
        yield cached.usage
        yield Metered(
            self.provider_id,
            prep.request.model,
            cached.usage,
            0.0,
            purpose=prep.purpose,
            cache_hit=True,
            saved_usd=cached.cost_usd,
            local=self.meter.is_local(self.provider_id),
            estimate=prep.estimated,
        )
        yield cached.finish

    async def list_models(self) -> list[ModelInfo]:
        """The wrapped provider's models."""
        return await self.inner.list_models()

    async def aclose(self) -> None:
        """Close the wrapped provider."""
        await self.inner.aclose()


def embedding_recorder(db_file: Path, user_models_file: Path) -> Callable[[str, int], None]:
    """A callback that writes each OpenAI embedding request to the ledger, priced.

    Used by the OpenAI embedder, in whichever process embeds (the indexer's worker, or a
    search in the window). A ledger that cannot be written is logged, never fatal: the
    embedding itself succeeded.
    """
    prices: dict[str, CatalogModel | None] = {}

    def record(model: str, tokens: int) -> None:
        from parley.core.providers.catalog import load_catalog
        from parley.core.store.ledger import Ledger, LedgerEntry

        if model not in prices:
            try:
                prices[model] = load_catalog(user_models_file).model(model, "openai")
            except ParleyError:
                prices[model] = None
        cost = usage_cost(Usage(tokens, 0), prices[model])
        try:
            ledger = Ledger(db_file)
            try:
                ledger.record(
                    LedgerEntry("openai", model, tokens, 0, cost_usd=cost, purpose="embedding")
                )
            finally:
                ledger.close()
        except ParleyError as exc:
            log.warning("could not record an embedding request: %s", exc.user_message)

    return record
