"""While an answer streams: its output tokens and dollars tick up in the status strip.

The tokens are counted here, as the text arrives, with the model's tokenizer (or the
calibrated basis for models without a public one); the price is the request's estimated
input plus the output so far. Each request's real usage replaces the local count when the
provider reports it (the core's ``Metered`` event, one per request: a tool loop has
several), and at the end the turn's reported usage and cost replace the whole line.

Counting is cheap (a few hundred characters per batch of deltas), so it runs on the GUI
thread; the tokenizer is loaded in a worker thread when the turn starts, and text that
arrives before it is ready, or a very large batch, is counted in a worker thread too. The
label is redrawn at most :data:`TICK_MS` apart.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, QTimer

from parley.core.providers.base import Usage
from parley.ui.costs.format import small_usd

if TYPE_CHECKING:
    from parley.core.chat import TurnFinished
    from parley.core.metering import Meter
    from parley.core.providers.base import CacheReplay, Estimated, Metered
    from parley.core.tokens import TokenCounter
    from parley.ui.controllers import ChatController, RunningTurn
    from parley.ui.status import StatusStrip
    from parley.ui.tasks import TaskSet

TICK_MS = 100
"""Longest time between two redraws of the ticking label (ten a second)."""

INLINE_CHARS = 4000
"""Text batches up to this long are counted on the GUI thread (well under a millisecond)."""


class StreamTicker(QObject):
    """Counts a streaming answer's tokens and cost and shows them in the status strip.

    Args:
        controller: The turn's events (text, estimates, metered requests, the end).
        meter: Token counters and prices.
        status: Where the figures tick.
        is_local: Whether a provider id is a server on this machine (free).
        tasks: Where the tokenizer is loaded and long text counted.
    """

    def __init__(
        self,
        *,
        controller: ChatController,
        meter: Meter,
        status: StatusStrip,
        is_local: Callable[[str], bool],
        tasks: TaskSet,
    ) -> None:
        super().__init__(status)
        self._meter = meter
        self._status = status
        self._is_local = is_local
        self._tasks = tasks
        self._generation = 0
        self.active = False
        """A turn is streaming and its figures are ticking."""
        self._provider = ""
        self._model = ""
        self._local = False
        self._counter: TokenCounter | None = None
        self._pending: list[str] = []
        self._counting = False
        self._round_out = 0
        """Tokens counted locally since the last reported usage."""
        self._round_in = 0
        """Input tokens of the request in flight (its pre-send estimate)."""
        self._reported = Usage()
        self._reported_cost: float | None = 0.0
        self._cached = False
        self._round = 0
        """Requests reported so far in this turn (a count started before one is dropped)."""
        self._dirty = False
        self._timer = QTimer(self)
        self._timer.setInterval(TICK_MS)
        self._timer.timeout.connect(self._redraw)

        c = controller
        c.sig_turn_started.connect(self._started)
        c.sig_text_arrived.connect(self._text)
        c.sig_request_estimated.connect(self._estimated)
        c.sig_request_metered.connect(self._metered)
        c.sig_cache_replayed.connect(self._replayed)
        c.sig_turn_finished.connect(self._finished)
        c.sig_turn_cancelled.connect(self._cancelled)
        c.sig_busy_changed.connect(lambda busy: None if busy else self._stop())

    # ---- Public API
    @property
    def output_tokens(self) -> int:
        """Output tokens so far: reported for finished requests, counted for the current one."""
        return (self._reported.output_tokens or 0) + self._scaled(self._round_out)

    @property
    def cost_usd(self) -> float | None:
        """Dollars so far (None: a price is unknown)."""
        if self._local or self._cached:
            return 0.0
        if self._reported_cost is None:
            return None
        current = Usage(input_tokens=self._round_in, output_tokens=self._scaled(self._round_out))
        cost = self._meter.cost_for(self._provider, self._model, current)
        return None if cost is None else self._reported_cost + cost

    def text(self) -> str:
        """The ticking line: ``Answering: ≈ 1,234 tokens out · ≈ $0.0123``."""
        if self._cached:
            return "Answering from Parley's cache · $0.00"
        out = f"Answering: ≈ {self.output_tokens:,} tokens out"
        if self._local:
            return f"{out} · free (local)"
        cost = self.cost_usd
        return f"{out} · {'price unknown' if cost is None else '≈ ' + small_usd(cost)}"

    # ---- turn events
    def _started(self, turn: RunningTurn) -> None:
        self._generation += 1
        options = turn.options
        self._provider = options.provider if options is not None else ""
        self._model = options.model if options is not None else ""
        self._local = bool(self._provider) and self._is_local(self._provider)
        self._counter = None
        self._pending.clear()
        self._counting = False
        self._round_out = self._round_in = 0
        self._reported = Usage()
        self._reported_cost = 0.0
        self._cached = False
        self.active = True
        self._dirty = True
        self._timer.start()
        if self._model:
            self._tasks.spawn(self._load_counter(self._generation), name="ticker-counter")

    async def _load_counter(self, generation: int) -> None:
        counter = await asyncio.to_thread(self._meter.counter, self._provider, self._model)
        if generation == self._generation and self.active:
            self._counter = counter
            self._drain()

    def _text(self, _message_id: int, text: str) -> None:
        if not self.active:
            return
        self._pending.append(text)
        self._drain()

    def _estimated(self, _message_id: int, ev: Estimated) -> None:
        if self.active:
            self._round_in = ev.input_tokens
            self._dirty = True

    def _metered(self, _message_id: int, ev: Metered) -> None:
        if not self.active:
            return
        self._reported = self._reported + ev.usage
        if self._reported_cost is not None:
            self._reported_cost = None if ev.cost_usd is None else self._reported_cost + ev.cost_usd
        # The provider's count replaces ours for that request; text after it is the next one's.
        self._drain_now_discarding()
        self._round += 1
        self._round_out = self._round_in = 0
        self._dirty = True

    def _replayed(self, _message_id: int, _ev: CacheReplay) -> None:
        if self.active:
            self._cached = True
            self._dirty = True

    def _finished(self, ev: TurnFinished) -> None:
        self._stop()
        self._status.set_last_turn(
            ev.usage.input_tokens, ev.usage.output_tokens, ev.cost_usd, local=ev.local
        )

    def _cancelled(self, _conversation_id: int, _message_id: int) -> None:
        if self.active:
            self._redraw()
            self._status.tokens_label.setText(
                f"Stopped: ≈ {self.output_tokens:,} tokens out (not reported by the provider)"
            )
        self._stop()

    def _stop(self) -> None:
        self.active = False
        self._generation += 1
        self._timer.stop()
        self._pending.clear()

    # ---- counting
    def _scaled(self, basis: int) -> int:
        counter = self._counter
        if counter is None or counter.exact or counter.calibration is None:
            return basis
        return round(basis * counter.calibration.factor)

    def _drain(self) -> None:
        counter = self._counter
        if counter is None or self._counting or not self._pending:
            return
        text = "".join(self._pending)
        self._pending.clear()
        if len(text) <= INLINE_CHARS:
            self._round_out += counter.count(text)
            self._dirty = True
            return
        self._counting = True
        key = (self._generation, self._round)
        self._tasks.spawn(self._count_off_thread(key, counter, text), name="ticker")

    async def _count_off_thread(
        self, key: tuple[int, int], counter: TokenCounter, text: str
    ) -> None:
        try:
            n = await asyncio.to_thread(counter.count, text)
        finally:
            self._counting = False
        if key == (self._generation, self._round):
            self._round_out += n
            self._dirty = True
            self._drain()

    def _drain_now_discarding(self) -> None:
        # Text of the request just reported is in its usage: what is still waiting to be
        # counted belongs to it.
        self._pending.clear()

    def _redraw(self) -> None:
        if not self._dirty or not self.active:
            return
        self._dirty = False
        self._status.tokens_label.setText(self.text())
