"""Before sending: what the request will cost and how full the model's context window is.

The composer shows "≈ N tokens · $X" for the request as it would be sent now (system prompt,
the conversation's current branch, the tool schemas when tools are on, the draft and its
attachments) and a context meter: the tokens used against the chosen model's window from
``models.toml``. The meter turns amber at 80 % of the room a request may use (the window
less what is kept for the answer) and red when the request will not fit (older turns are
then left out when it is sent, or, if the new message alone is too long, it is refused).

Counting is split so typing never waits (issue 13):

- the *base* (everything but the draft) is counted in a worker thread
  (``ChatSession.draft_estimate``, which also reads the branch from the database) whenever
  the conversation, the model, the switches, the settings or the history change;
- each keystroke, after a short debounce, recounts only the draft
  (:meth:`~parley.core.tokens.DraftEstimate.update`): on the GUI thread when the text is
  short enough to take well under a millisecond, in a worker thread otherwise (a long paste
  or a big attachment), newest result wins.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from PySide6.QtCore import QEvent, QObject, QRectF, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QPainter, QPaintEvent, QPalette
from PySide6.QtWidgets import QHBoxLayout, QLabel, QSizePolicy, QWidget

from parley.core.errors import ParleyError
from parley.ui.costs.format import short_tokens, small_usd
from parley.ui.plain import plain_label, tooltip
from parley.ui.theme import is_dark

if TYPE_CHECKING:
    from parley.core.chat import ChatSession, TurnOptions
    from parley.core.metering import Meter
    from parley.core.tokens import DraftEstimate, Estimate
    from parley.ui.composer import Composer
    from parley.ui.tasks import TaskSet

log = logging.getLogger(__name__)

DEBOUNCE_MS = 120
"""Quiet time after a keystroke before the draft is recounted."""

INLINE_CHARS = 4000
"""Drafts (with their attachments) up to this long are recounted on the GUI thread.

tiktoken counts ~3 million tokens a second here: 4,000 characters take ~0.3 ms. Longer text
is counted in a worker thread so a pasted book never stalls the window."""

WARN_FRACTION = 0.8
"""Share of the room for the request at which the meter turns amber."""

Level = Literal["unknown", "ok", "warn", "over"]


def level_colors(palette: QPalette) -> dict[str, QColor]:
    """The meter's colours: the theme's accent, and amber and red readable on its window.

    Amber and red follow the notice bar's warning and error borders (``theme.py``), made
    lighter on a dark palette so they keep their contrast.
    """
    dark = is_dark(palette)
    return {
        "ok": palette.color(QPalette.ColorRole.Highlight),
        "unknown": palette.color(QPalette.ColorRole.Mid),
        "warn": QColor("#e0a43a" if dark else "#b7791f"),
        "over": QColor("#f0625a" if dark else "#c53030"),
        "track": palette.color(QPalette.ColorRole.Midlight if dark else QPalette.ColorRole.Mid),
        "mark": palette.color(QPalette.ColorRole.WindowText),
    }


@dataclass(frozen=True)
class DraftFigures:
    """The composer's estimate of the next request.

    Attributes:
        tokens: Input tokens the request would have (calibrated when not exact).
        exact: Counted with the model's own tokenizer.
        method: What counted it: an encoding name, or ``chars`` (no tokenizer files).
        note: How the number was made (from the core's estimate).
        cost_usd: The input's price; None when the model's price is unknown.
        local: The model runs on this machine (free).
        model: The model id.
        window: The model's context window (None: unknown, e.g. a local model).
        reserved: Tokens kept for the answer.
        tools: The tool schemas are counted.
        knowledge: Passages from the documents will be added (not known before sending).
        draft_empty: Nothing is typed or attached yet.
    """

    tokens: int
    exact: bool
    method: str
    note: str
    cost_usd: float | None
    local: bool
    model: str
    window: int | None
    reserved: int
    tools: bool = False
    knowledge: bool = False
    draft_empty: bool = False

    @property
    def room(self) -> int | None:
        """Tokens the request may use (the window less the answer's reserve)."""
        return None if self.window is None else max(1, self.window - self.reserved)

    @property
    def level(self) -> Level:
        """``ok``; ``warn`` from 80 % of the room; ``over`` when it will not fit."""
        room = self.room
        if room is None:
            return "unknown"
        if self.tokens > room:
            return "over"
        return "warn" if self.tokens >= WARN_FRACTION * room else "ok"

    @property
    def rough(self) -> bool:
        """Counted by characters: the tokenizer files are missing (offline)."""
        return self.method == "chars"

    def text(self) -> str:
        """``≈ 1,234 tokens · $0.0031`` (no "≈" when the count is exact)."""
        n = f"{self.tokens:,} tokens" if self.exact else f"≈ {self.tokens:,} tokens"
        if self.rough:
            n += " (rough)"
        if self.local:
            money = "free (local)"
        elif self.cost_usd is None:
            money = "price unknown"
        else:
            money = small_usd(self.cost_usd)
        return f"{n} · {money}"

    def meter_text(self) -> str:
        """``12.3K / 128K`` (the window), or "" when the window is unknown."""
        if self.window is None:
            return ""
        return f"{short_tokens(self.tokens)} / {short_tokens(self.window)}"

    def explanation(self) -> str:
        """The tooltip: what is counted, how exact it is, and what the meter means."""
        what = "system prompt, this conversation, your draft and its attachments"
        if self.tools:
            what += ", the tool descriptions"
        lines = [f"The request as it would be sent to {self.model} now ({what})."]
        if self.exact:
            lines.append(f"Exact: counted with {self.method}, the model's own tokenizer.")
        elif self.rough:
            lines.append(
                "Rough: the tokenizer files are missing (offline), so this is characters ÷ 3.6."
            )
        else:
            lines.append(f"≈ Estimate: {self.note}.")
        lines.append(
            "Kinds of count: exact (the model's tokenizer), ≈ (calibrated on the tokens the "
            "provider reported for earlier requests), rough (no tokenizer files)."
        )
        if self.knowledge:
            lines.append("Passages from your documents are added when sending (not counted).")
        if self.local:
            lines.append("The model runs on this machine: it costs nothing.")
        elif self.cost_usd is None:
            lines.append(f"No price is known for {self.model}: the cost is unknown.")
        else:
            lines.append("The price is for the input; the answer's tokens are billed on top.")
        room = self.room
        if self.window is None or room is None:
            lines.append("The model's context window is unknown.")
        else:
            share = self.tokens / room
            lines.append(
                f"Context: {self.tokens:,} of {self.window:,} tokens "
                f"({self.reserved:,} kept for the answer, so {room:,} for the request: "
                f"{share:.0%})."
            )
            if self.level == "over":
                lines.append(
                    "It will not fit: the oldest turns will be left out when sending; if the "
                    "new message alone is too long, it will not be sent."
                )
            elif self.level == "warn":
                lines.append("Nearly full: soon the oldest turns will be left out.")
        return "\n".join(lines)


class ContextMeter(QWidget):
    """A small bar: the request's tokens against the model's window.

    The fill is the accent colour, amber from 80 % of the room for the request, red when it
    will not fit; a tick marks where the answer's reserve begins.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("contextMeter")
        self._used = 0
        self._window: int | None = None
        self._reserved = 0
        self._level: Level = "unknown"
        self.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)

    def sizeHint(self) -> QSize:
        """About seven characters wide, half a line high (scales with the font)."""
        fm = self.fontMetrics()
        return QSize(fm.averageCharWidth() * 9, max(6, fm.height() // 2))

    def set_values(self, used: int, window: int | None, reserved: int, level: Level) -> None:
        """Show ``used`` tokens of ``window`` (``reserved`` of it kept for the answer)."""
        self._used, self._window, self._reserved, self._level = used, window, reserved, level
        self.setProperty("level", level)
        self.update()

    def level(self) -> Level:
        """The level shown."""
        return self._level

    def fill_color(self) -> QColor:
        """The fill's colour for the level shown (tests and screenshots check it)."""
        return level_colors(self.palette())[self._level]

    def paintEvent(self, _event: QPaintEvent) -> None:
        """A rounded track, the used share filled, a tick where the reserve begins."""
        colors = level_colors(self.palette())
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        r = QRectF(self.rect()).adjusted(0.5, 0.5, -0.5, -0.5)
        radius = r.height() / 2
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(colors["track"])
        p.drawRoundedRect(r, radius, radius)
        if self._window:
            share = min(1.0, self._used / self._window)
            if share > 0:
                fill = QRectF(r.left(), r.top(), max(r.height(), r.width() * share), r.height())
                p.setBrush(colors[self._level])
                p.drawRoundedRect(fill, radius, radius)
            if self._reserved:
                x = r.left() + r.width() * (1 - self._reserved / self._window)
                mark = QColor(colors["mark"])
                mark.setAlphaF(0.55)
                p.setPen(mark)
                p.drawLine(int(x), int(r.top()), int(x), int(r.bottom()))
        p.end()


class EstimateBar(QWidget):
    """The composer's estimate: "≈ N tokens · $X", the context meter and its numbers."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("costEstimate")
        self.label = plain_label(QLabel())
        self.label.setObjectName("estimateText")
        self.meter = ContextMeter()
        self.meter_label = plain_label(QLabel())
        self.meter_label.setObjectName("contextMeterText")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(self.fontMetrics().averageCharWidth())
        layout.addWidget(self.label)
        layout.addWidget(self.meter, 0, Qt.AlignmentFlag.AlignVCenter)
        layout.addWidget(self.meter_label)
        self.figures: DraftFigures | None = None
        """What is shown (None: nothing to estimate yet)."""
        self.setVisible(False)

    def show_figures(self, figures: DraftFigures | None, *, hide_when_empty: bool = False) -> None:
        """Show an estimate (None, or an empty new chat when ``hide_when_empty``: hidden)."""
        self.figures = figures
        if figures is None or (hide_when_empty and figures.draft_empty):
            self.setVisible(False)
            return
        self.label.setText(figures.text())
        has_window = figures.window is not None
        self.meter.setVisible(has_window)
        self.meter_label.setVisible(has_window)
        self.meter.set_values(figures.tokens, figures.window, figures.reserved, figures.level)
        self.meter_label.setText(figures.meter_text())
        # Amber and red numbers: a style sheet on the label itself (the window re-applies its
        # own style sheets on a theme switch, which would reset a palette set here); for
        # the normal level none, so the label follows the theme.
        css = ""
        if figures.level in ("warn", "over"):
            css = f"QLabel {{ color: {level_colors(self.palette())[figures.level].name()}; }}"
        if css != self.meter_label.styleSheet():
            self.meter_label.setStyleSheet(css)
        self.setToolTip(tooltip(figures.explanation()))
        self.setVisible(True)

    def changeEvent(self, event: QEvent) -> None:
        """A theme switch: the amber and red of the numbers follow the new palette."""
        super().changeEvent(event)
        # PaletteChange: this widget's own (inherited) palette is the new one now.
        if event.type() == QEvent.Type.PaletteChange and self.figures is not None:
            if self.isVisible():
                self.show_figures(self.figures)


@dataclass(frozen=True)
class _Base:
    """The counted part of the next request (everything but the draft)."""

    draft: DraftEstimate
    provider: str
    model: str
    window: int | None
    reserved: int
    local: bool
    tools: bool
    knowledge: bool


class DraftEstimator(QObject):
    """Keeps the composer's estimate in step with the draft, the conversation and the model.

    Args:
        chat: Counts the conversation (``draft_estimate``, blocking: run in a thread).
        meter: Context windows, the answer's reserve and input prices.
        composer: The draft and its attachments.
        bar: Where the estimate is shown.
        options: The next turn's options (None: no model can be used yet).
        conversation_id: The conversation shown (None: a new chat).
        is_local: Whether a provider id is a server on this machine.
        tasks: Where the counting runs.
    """

    # ---- Signals
    sig_figures_changed = Signal(object)
    """A new estimate is shown: :class:`DraftFigures` or None."""

    def __init__(
        self,
        *,
        chat: ChatSession,
        meter: Meter,
        composer: Composer,
        bar: EstimateBar,
        options: Callable[[], TurnOptions | None],
        conversation_id: Callable[[], int | None],
        is_local: Callable[[str], bool],
        tasks: TaskSet,
    ) -> None:
        super().__init__(bar)
        self._chat = chat
        self._meter = meter
        self._composer = composer
        self._bar = bar
        self._options = options
        self._conversation_id = conversation_id
        self._is_local = is_local
        self._tasks = tasks
        self._base: _Base | None = None
        self._base_generation = 0
        self._seq = 0
        self._in_flight = False
        self._again = False
        self.closing = False
        """Set at shutdown: no new counting starts."""
        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(DEBOUNCE_MS)
        self._debounce.timeout.connect(self.recount)
        self._rebase = QTimer(self)  # several changes at once (a chat opens): one recount
        self._rebase.setSingleShot(True)
        self._rebase.setInterval(0)
        self._rebase.timeout.connect(self._load_base)
        composer.edit.textChanged.connect(self._debounce.start)
        composer.sig_attachments_changed.connect(self._debounce.start)

    # ---- Public API
    def invalidate(self) -> None:
        """The conversation, model, switches or settings changed: count the base again."""
        self._base_generation += 1
        self._rebase.start()

    def recount(self) -> None:
        """Recount the draft against the counted base (inline when short, else off-thread)."""
        base = self._base
        if base is None or self.closing:
            return  # the base is being counted; it recounts when it arrives
        from parley.core.chat import with_attachments

        raw = self._composer.text()
        attachments = [a.to_core() for a in self._composer.attachments()]
        text = with_attachments(raw, attachments) if attachments else raw
        empty = not raw.strip() and not attachments
        self._seq += 1
        seq = self._seq
        if len(text) <= INLINE_CHARS:
            self._show(seq, base, base.draft.update(text), empty)
        elif not self._in_flight:
            self._in_flight = True
            self._tasks.spawn(self._count_off_thread(seq, base, text, empty), name="draft-count")
        else:
            self._again = True  # counted when the one in flight is done

    # ---- internals
    def _load_base(self) -> None:
        if self.closing:
            return
        generation = self._base_generation
        options = self._options()
        if options is None:
            self._base = None
            self._publish(None)
            return
        cid = self._conversation_id()
        local = self._is_local(options.provider)
        self._tasks.spawn(self._count_base(generation, cid, options, local), name="draft-base")

    async def _count_base(
        self, generation: int, cid: int | None, options: TurnOptions, local: bool
    ) -> None:
        try:
            base = await asyncio.to_thread(self._base_sync, cid, options, local)
        except ParleyError as exc:  # the database is busy or gone: no estimate, no crash
            log.warning("could not count the conversation: %s", exc.user_message)
            base = None
        if generation != self._base_generation or self.closing:
            return  # something changed meanwhile: a newer count is on its way
        self._base = base
        if base is None:
            self._publish(None)
        else:
            self.recount()

    def _base_sync(self, cid: int | None, options: TurnOptions, local: bool) -> _Base | None:
        from parley.core.providers.base import ChatRequest

        draft = self._chat.draft_estimate(cid, options)
        if draft is None:
            return None
        limits = ChatRequest(options.model, (), max_output_tokens=options.max_output_tokens)
        window, reserved = self._meter.limits(options.provider, limits)
        return _Base(
            draft,
            options.provider,
            options.model,
            window,
            reserved,
            local,
            options.use_tools,
            options.use_knowledge,
        )

    async def _count_off_thread(self, seq: int, base: _Base, text: str, empty: bool) -> None:
        try:
            estimate = await asyncio.to_thread(base.draft.update, text)
        finally:
            self._in_flight = False
        if seq == self._seq and base is self._base:
            self._show(seq, base, estimate, empty)
        if self._again:
            self._again = False
            self.recount()

    def _show(self, seq: int, base: _Base, estimate: Estimate, empty: bool) -> None:
        if seq != self._seq:
            return
        tokens = estimate.input_tokens
        cost = 0.0 if base.local else self._meter.input_cost(base.provider, base.model, tokens)
        figures = DraftFigures(
            tokens=estimate.input_tokens,
            exact=estimate.exact,
            method=estimate.method,
            note=estimate.note,
            cost_usd=cost,
            local=base.local,
            model=base.model,
            window=base.window,
            reserved=base.reserved,
            tools=base.tools,
            knowledge=base.knowledge,
            draft_empty=empty,
        )
        self._publish(figures)

    def _publish(self, figures: DraftFigures | None) -> None:
        new_chat = self._conversation_id() is None
        self._bar.show_figures(figures, hide_when_empty=new_chat)
        self.sig_figures_changed.emit(figures)
