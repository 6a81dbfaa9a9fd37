"""The chat view: a lazily laid out, virtualised list of rendered messages.

Why one file of ~2,300 lines: almost all of it is ``_ChatCanvas``, one scroll area whose
state is one invariant (row heights and prefix sums, the scroll anchor, the LRU of laid-out
documents, the streaming tails and the selection all refer to the same rows). Its geometry,
streaming, painting and selection call into each other's state on every frame; split into
files they would need that state passed around or shared through mixins, which hides the
invariant instead of showing it. What has a seam lives elsewhere: the documents and theme
(:mod:`parley.ui.chat.documents`), the Markdown (:mod:`parley.ui.chat.markdown`), safe text
(:mod:`parley.ui.chat.safe_text`), the data (:mod:`parley.ui.chat.model`).

Structure (measured, see ``tests/bench/bench_render.py``):

- A :class:`~parley.ui.chat.model.ChatModel` holds the data; :class:`ChatView` is the public
  widget (data in, signals out) and wraps a private ``_ChatCanvas``, a ``QAbstractScrollArea``
  that lays out and paints the messages itself.
- Why not ``QListView`` + delegate (the Ruqola pattern DESIGN.md suggests)? ``QListView``
  re-runs its whole item layout (one Python ``sizeHint`` call per row) whenever one row
  changes height, which a streaming answer does 30 times a second: 13-20 ms per update with
  1,000 rows here, which alone breaks the 16 ms frame budget. The canvas keeps Ruqola's good
  parts (a model, one cached ``QTextDocument`` per visible item in an LRU, anchors hit-tested
  with ``documentLayout().anchorAt()``) but owns the geometry: a list of row heights with
  prefix sums, so a height change of the last row costs O(1).
- Lazy: rows get an *estimated* height from their text length and font metrics; only rows
  that become visible are rendered and measured exactly (their documents go into an LRU of
  :data:`LAYOUT_CACHE_SIZE` messages; exact heights are remembered after eviction). When an
  estimate above the viewport is corrected, the scroll position moves with it so what the
  person is looking at does not jump (heights are whole pixels, so this is exact). While
  idle, the rows just off screen are prepared a few milliseconds at a time. Answers longer
  than :data:`_LAZY_MIN_CHARS` are lazy inside too: split into blocks cheaply, each block
  rendered when it first comes near the viewport.
- Each message is a stack of small documents ("parts"): a header (role, status, "answered
  by", Copy), one document per Markdown block (see :mod:`parley.ui.chat.markdown`), an error
  line with Retry, and footer items. While streaming, finished blocks keep their documents;
  only the open tail is rebuilt, on a timer (at most ~30 times a second), with a time budget
  per tick so text arriving faster than it can be shown delays the view, never the window.
  Following the stream blits the pixels already painted and repaints only the changed strip.
- Text selection is the view's own: press and drag within one message (across its blocks),
  double-click selects a word, Ctrl+A the focused message, Ctrl+C / the context menu copy it;
  "Copy message" copies the raw Markdown and a code block's Copy copies only its code (both
  without bidi or hidden characters). Selecting across several messages is not supported:
  the per-message Copy and the context menu cover copying whole messages.
- Safe: documents never load resources (:class:`SafeTextDocument`), only http(s) anchors
  are emitted (``sig_link_activated``; the main window confirms with ``display_url``).
- Citations: an answer whose footer lists sources (items of kind ``citation`` linking to
  ``parley-cite:<n>``) is rendered with ``[n]`` as links for those numbers only
  (:meth:`~parley.ui.chat.markdown.MarkdownRenderer.with_citations`); a click on one, in the
  text or in the footer, is emitted as ``sig_citation_activated(message id, n)``. The set of
  numbers is part of a layout's cache key, so sources arriving mid-stream re-render it once.
- Everything here runs on the GUI thread (a daemon thread only pre-builds Pygments lexers).
"""

from __future__ import annotations

import bisect
import contextlib
import html
import itertools
import logging
import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import cast

from PySide6.QtCore import (
    QEvent,
    QModelIndex,
    QPoint,
    QPointF,
    QRectF,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import (
    QAbstractTextDocumentLayout,
    QColor,
    QContextMenuEvent,
    QFocusEvent,
    QFont,
    QFontMetricsF,
    QGuiApplication,
    QHelpEvent,
    QKeyEvent,
    QKeySequence,
    QMouseEvent,
    QPainter,
    QPainterPath,
    QPaintEvent,
    QPalette,
    QResizeEvent,
    QTextCharFormat,
    QTextCursor,
    QTextDocument,
    QTextOption,
    QTextTable,
)
from PySide6.QtWidgets import (
    QAbstractScrollArea,
    QFrame,
    QMenu,
    QToolTip,
    QVBoxLayout,
    QWidget,
)

from parley.ui.chat.documents import SafeTextDocument, blend, theme_from_palette
from parley.ui.chat.markdown import (
    CITE_SCHEME,
    BlockPlan,
    IncrementalMarkdown,
    MarkdownRenderer,
    RenderedBlock,
    display_url,
    link_is_openable,
    render_plain_text,
    reveal_invisible,
    strip_invisible,
    warm_up,
)
from parley.ui.chat.model import (
    ChatItem,
    ChatModel,
    ChatRole,
    FooterItem,
    ItemRole,
    MessageStatus,
)

__all__ = [
    "LAYOUT_CACHE_SIZE",
    "UPDATE_INTERVAL_MS",
    "ChatView",
    "SafeTextDocument",
    "theme_from_palette",
]

log = logging.getLogger(__name__)

UPDATE_INTERVAL_MS = 33
"""Streaming deltas are coalesced into at most one re-render per this many milliseconds."""

_TICK_BUDGET_S = 0.004
"""Time one timer tick may spend turning buffered text into blocks (the rest waits)."""

_CATCH_UP_INTERVAL_MS = 1
"""While buffered text is waiting (it arrived faster than one tick renders), the next tick
comes this soon instead of :data:`UPDATE_INTERVAL_MS`: events queued meanwhile are served in
between, so each pause stays within one tick's budget, but the backlog drains at the speed
the machine can render rather than 4 ms every 33 ms."""

FAST_STREAM_CHARS_PER_S = 2_400
"""Above this arrival rate (~600 tokens/s, far faster than anyone reads) a stream is shown
in fewer, larger frames, down to one per :data:`MAX_FRAME_INTERVAL_MS`."""

MAX_FRAME_INTERVAL_MS = 100
"""The longest wait between two visible frames of a stream (10 a second)."""

_TICK_CHUNK = 256
"""Characters fed to the Markdown splitter between two checks of the tick budget."""

_LAZY_MIN_CHARS = 12_000
"""Answers at least this long render block by block as they come into view."""

_PREFETCH_DELAY_MS = 60
_PREFETCH_BUDGET_S = 0.004
"""Idle prefetch: how long after a paint it starts, and how long one tick may work."""

LAYOUT_CACHE_SIZE = 96
"""How many messages keep their rendered documents (far more than fit on a screen)."""

# Geometry, in ems (font heights), so it scales with the font and the screen.
_MAX_COLUMN_EM = 52.0
_SIDE_MARGIN_EM = 0.8
_PAD_EM = 0.6
_MESSAGE_GAP_EM = 0.7
_HEADER_GAP_EM = 0.3
_ERROR_GAP_EM = 0.45
_FOOTER_GAP_EM = 0.25
_FOOTER_FIRST_GAP_EM = 0.7
_FOLLOW_TOLERANCE_EM = 0.5

_ANCHOR_COPY_CODE = "parley-copy:"
_ANCHOR_COPY_MESSAGE = "parley-copy-message:"
_ANCHOR_RETRY = "parley-retry:"
_ANCHOR_ACTION = "parley-action:"
"""Message actions (``parley-action:edit``…) and the version switcher, emitted as
``message_action``; Copy uses :data:`_ANCHOR_COPY_MESSAGE`."""
_ANCHOR_INTERNAL = "parley-"
_CITATION_KIND = "citation"
"""Footer items of this kind linking to ``parley-cite:<n>`` make ``[n]`` in the text a link."""

_STATUS_LABELS = {
    MessageStatus.COMPLETE: "",
    MessageStatus.STREAMING: "writing…",
    MessageStatus.PARTIAL: "incomplete: the answer broke off",
    MessageStatus.ERROR: "failed",
    MessageStatus.CANCELLED: "stopped",
}


# ---------------------------------------------------------------- lexer warm-up

_WARMED_UP = False


def _warm_up_in_background() -> None:
    """Prepare Pygments lexers off the GUI thread, once per process (see ``warm_up``)."""
    global _WARMED_UP
    if _WARMED_UP:
        return
    _WARMED_UP = True
    threading.Thread(target=warm_up, name="parley-lexer-warm-up", daemon=True).start()


# ---------------------------------------------------------------- layout structures


@dataclass(eq=False)
class _Part:
    """One laid-out document inside a message (or, for a lazy part, a placeholder for one)."""

    doc: QTextDocument | None
    """None while lazy: the block is rendered when it first comes near the viewport."""
    kind: str
    """``header``, ``error``, ``footer``, ``plain`` or a block kind (``fence``, ``table``…)."""
    block: RenderedBlock | None = None
    plan: BlockPlan | None = None
    """For a lazy part not rendered yet: what to render."""
    top: float = 0.0
    height: float = 0.0
    gap: float = 0.0
    """Space above this part, in pixels."""


def _doc_height(doc: QTextDocument) -> int:
    """A document's height in whole pixels.

    Every top is then an integer, so scroll compensation is exact and re-painted strips line
    up with blitted pixels.
    """
    return math.ceil(doc.size().height())


def _part_top(part: _Part) -> float:
    return part.top


def _part_end(part: _Part) -> int:
    """The last cursor position of a part's document (0 while it is lazy)."""
    return 0 if part.doc is None else part.doc.characterCount() - 1


@dataclass(eq=False)
class _MessageLayout:
    """The rendered documents of one message at one width."""

    message_id: str
    text_rev: int
    meta_rev: int
    theme_gen: int
    width: float
    header: _Part
    body: list[_Part] = field(default_factory=list)
    error: _Part | None = None
    footer: list[_Part] = field(default_factory=list)
    height: float = 0.0
    body_top: float = 0.0
    lazy: int = 0
    """How many body parts are not rendered yet."""
    cites: frozenset[int] = frozenset()
    """Citation numbers the body was rendered with (see :func:`_citations_of`)."""
    inline: tuple[FooterItem, ...] = ()
    """Footer items the body shows inside the text (tool cards where the calls happened)."""
    footer_items: list[FooterItem] = field(default_factory=list)
    """The items :attr:`footer` shows, in order."""

    def parts(self) -> list[_Part]:
        out = [self.header, *self.body]
        if self.error is not None:
            out.append(self.error)
        out.extend(self.footer)
        return out


@dataclass(eq=False)
class _Stream:
    """A message whose text is still arriving."""

    inc: IncrementalMarkdown
    frozen: int = 0
    """How many of the layout's body parts are frozen blocks (the rest is the open tail)."""
    layout: _MessageLayout | None = None
    """The documents, once the message has been on screen (kept until the stream ends)."""
    ending: bool = False
    """end_stream() was called: finish once the buffered text is rendered."""
    consumed: int = 0
    """How many characters of the message text the Markdown state has been fed."""
    cites: frozenset[int] = frozenset()
    """Citation numbers the Markdown state renders with."""
    frame_at: float = 0.0
    """When the last visible frame was rendered (``time.perf_counter()``)."""
    frame_chars: int = 0
    """:attr:`consumed` at that frame."""
    todo: deque[BlockPlan | RenderedBlock] = field(default_factory=deque)
    """Blocks frozen but not built yet: a plan is rendered, then its document built, one
    step at a time (a code block costs ~7 ms in all, too much for one step)."""
    staged: list[_Part] = field(default_factory=list)
    """Documents of blocks frozen since that frame, shown with the next one."""
    step_cost: float = 0.0
    """Seconds the costliest recent step took (halved at each step): a tick stops before a
    step that would likely take it past its budget."""


@dataclass(frozen=True)
class _TextPos:
    message_id: str
    part: int
    pos: int


@dataclass(frozen=True)
class _Hit:
    row: int
    message_id: str
    layout: _MessageLayout
    part_index: int
    part: _Part
    local: QPointF
    anchor: str


# ---------------------------------------------------------------- the canvas


class _ChatCanvas(QAbstractScrollArea):
    """Lays out, paints and hit-tests the messages of a :class:`ChatModel`."""

    link_activated = Signal(str)
    retry_requested = Signal(str)
    copy_done = Signal(str)
    footer_activated = Signal(str, str)
    citation_activated = Signal(str, int)
    message_focused = Signal(str)
    message_action = Signal(str, str)

    def __init__(self, model: ChatModel, parent: QWidget | None = None) -> None:
        _warm_up_in_background()
        super().__init__(parent)
        self._model = model
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        # Always on: a scroll bar appearing mid-stream would change the width and re-wrap
        # every visible message under the reader.
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOn)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.viewport().setMouseTracking(True)
        self.viewport().setAutoFillBackground(True)
        self.viewport().setBackgroundRole(QPalette.ColorRole.Base)
        self.setAccessibleName("Conversation")

        self._theme_gen = 0
        self._apply_theme()

        # Row geometry: heights (estimated or exact) and prefix sums of tops.
        self._heights: list[float] = []
        self._exact_key: list[tuple[float, int, int, int] | None] = []
        self._tops: list[float] = [0.0]
        self._layouts: OrderedDict[str, _MessageLayout] = OrderedDict()
        self._streams: dict[str, _Stream] = {}
        self._dirty_streams: set[str] = set()
        self._follow = True
        self._programmatic_scroll = False
        self._geometry_scrolling = False
        self._painting = False
        self._settling = False

        # Interaction state.
        self._sel_anchor: _TextPos | None = None
        self._sel_cursor: _TextPos | None = None
        self._press: _Hit | None = None
        self._press_pos = QPoint()
        self._dragging = False
        self._focus_message: str | None = None
        self._hover_message: str | None = None
        self._actions_enabled = True

        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(UPDATE_INTERVAL_MS)
        self._timer.timeout.connect(self._flush_timer)
        self._prefetch_timer = QTimer(self)
        self._prefetch_timer.setSingleShot(True)
        self._prefetch_timer.setInterval(_PREFETCH_DELAY_MS)
        self._prefetch_timer.timeout.connect(self._prefetch)

        self.verticalScrollBar().valueChanged.connect(self._on_scroll_value)
        self.verticalScrollBar().rangeChanged.connect(self._on_scroll_range)
        model.modelReset.connect(self._on_model_reset)
        model.rowsInserted.connect(self._on_rows_inserted)
        model.rowsRemoved.connect(self._on_rows_removed)
        model.dataChanged.connect(self._on_data_changed)
        self._on_model_reset()

    # ---- geometry helpers

    def _px(self, em: float) -> float:
        return em * self._em

    def _gap(self, em: float) -> int:
        """A vertical gap of ``em`` font heights, in whole pixels."""
        return round(em * self._em)

    def _column(self) -> tuple[float, float]:
        """(x, width) of the message column in the viewport."""
        vw = self.viewport().width()
        margin = self._px(_SIDE_MARGIN_EM)
        width = round(max(self._px(8), min(vw - 2 * margin, self._px(_MAX_COLUMN_EM))))
        return float(max(0, (vw - width) // 2)), float(width)

    def _doc_width(self) -> float:
        return max(self._px(4), self._column()[1] - 2 * self._px(_PAD_EM))

    def _content_height(self) -> float:
        return self._tops[-1] + self._gap(_MESSAGE_GAP_EM)

    def _row_at(self, y: float) -> int:
        """The row whose box contains content y (clamped to the valid rows)."""
        row = bisect.bisect_right(self._tops, y) - 1
        return min(max(row, 0), len(self._heights) - 1)

    def _recompute_tops(self, from_row: int = 0) -> None:
        gap = self._gap(_MESSAGE_GAP_EM)
        start = self._tops[from_row] if from_row < len(self._tops) else 0.0
        del self._tops[from_row + 1 :]
        tops = itertools.accumulate((h + gap for h in self._heights[from_row:]), initial=start)
        next(tops)
        self._tops.extend(tops)

    # ---- estimates

    def _per_line(self) -> float:
        """Characters an estimate puts on one line at the current width."""
        return max(8.0, self._doc_width() / max(self._char_w, 1.0))

    def _estimate(self, item: ChatItem, per_line: float | None = None) -> float:
        """A cheap height guess from the text, used until the message is first shown.

        Counted with string methods (C speed), not a loop over lines: opening a chat of
        10,000 messages estimates them all (tests/bench/bench_ui.py, ``open_10000_ms``).
        """
        per_line = per_line or self._per_line()
        text = item.text
        breaks = text.count("\n")
        lines = breaks + 1.0 + (len(text) - breaks) / per_line
        fences = text.count("```") + text.count("~~~")
        line_h = self._em * 1.1
        header = self._em * 1.3
        extra = 0.0
        if item.error:
            extra += self._px(1.5)
        extra += len(item.footer) * self._px(1.3)
        extra += (fences // 2) * self._px(2.0)  # code block header rows and padding
        return math.ceil(header + lines * line_h + extra + 2 * self._px(_PAD_EM))

    def _reestimate_all(self) -> None:
        n = self._model.rowCount()
        per_line = self._per_line()
        item_at = self._model.item_at
        self._heights = [self._estimate(item_at(r), per_line) for r in range(n)]
        self._exact_key = [None] * n
        self._recompute_tops(0)

    # ---- model signals

    def _on_model_reset(self) -> None:
        self._layouts.clear()
        self._streams.clear()
        self._dirty_streams.clear()
        self._clear_selection()
        self._reestimate_all()
        self._follow = True
        self._update_scroll_range()
        self._scroll_to_bottom()
        self.viewport().update()

    def _on_rows_inserted(self, parent: QModelIndex, first: int, last: int) -> None:
        was_following = self._follow
        new = [self._estimate(self._model.item_at(r)) for r in range(first, last + 1)]
        self._heights[first:first] = new
        self._exact_key[first:first] = [None] * len(new)
        self._recompute_tops(first)
        self._update_scroll_range()
        if was_following:
            self._scroll_to_bottom()
        elif first <= self._row_at(self._scroll_y()):
            self._set_scroll(self._scroll_y() + sum(new) + len(new) * self._gap(_MESSAGE_GAP_EM))
        self.viewport().update()

    def _on_rows_removed(self, parent: QModelIndex, first: int, last: int) -> None:
        live = {self._model.item_at(r).message_id for r in range(self._model.rowCount())}
        for mid in [m for m in self._layouts if m not in live]:
            del self._layouts[mid]
        for mid in [m for m in self._streams if m not in live]:
            del self._streams[mid]
            self._dirty_streams.discard(mid)
        if self._sel_anchor is not None and self._sel_anchor.message_id not in live:
            self._clear_selection()
        del self._heights[first : last + 1]
        del self._exact_key[first : last + 1]
        self._recompute_tops(min(first, len(self._heights)))
        self._update_scroll_range()
        if self._follow:
            self._scroll_to_bottom()
        self.viewport().update()

    def _on_data_changed(self, top: QModelIndex, bottom: QModelIndex, roles: Sequence[int]) -> None:
        changed = False
        for row in range(top.row(), bottom.row() + 1):
            mid = self._model.item_at(row).message_id
            if mid in self._streams:
                # Streamed text is the stream path's business (it caused this signal); a
                # status or footer change is picked up at the next tick.
                if not roles or ItemRole.META_REVISION in roles:
                    self._dirty_streams.add(mid)
                    self._schedule()
                continue
            changed = True
            if self._exact_key[row] is not None:
                self._exact_key[row] = None
                if self._row_visible(row):
                    self._ensure_exact(row)
                else:
                    self._set_row_height(row, self._estimate(self._model.item_at(row)))
        if changed:
            self.viewport().update()

    def _row_visible(self, row: int) -> bool:
        y0 = self._scroll_y()
        y1 = y0 + self.viewport().height()
        return self._tops[row] < y1 and self._tops[row] + self._heights[row] > y0

    # ---- theme

    def changeEvent(self, event: QEvent) -> None:
        """Re-theme on palette or font changes (light/dark switch, zoom)."""
        super().changeEvent(event)
        if hasattr(self, "_theme_gen") and event.type() in (
            QEvent.Type.PaletteChange,
            QEvent.Type.FontChange,
            QEvent.Type.StyleChange,
        ):
            self.refresh_theme()

    def _apply_theme(self) -> None:
        """Derive the theme, renderer and document settings from the palette and font."""
        self._theme = theme_from_palette(self.palette(), self.font())
        self._renderer = MarkdownRenderer(self._theme)
        self._cite_renderers: dict[frozenset[int], MarkdownRenderer] = {}
        self._em = self._theme.em
        self._char_w = QFontMetricsF(self.font()).averageCharWidth() or self._em / 2
        self._doc_font = QFont(self.font())
        self._indent = self._px(1.6)
        self._text_option = QTextOption()
        # Long URLs and tokens wrap instead of overflowing the column.
        self._text_option.setWrapMode(QTextOption.WrapMode.WrapAtWordBoundaryOrAnywhere)
        self._text_option.setTabStopDistance(QFontMetricsF(self.font()).horizontalAdvance(" ") * 4)
        self._action_docs: dict[tuple[ChatRole, bool, bool], QTextDocument] = {}
        widest = self._actions_doc(ChatRole.ASSISTANT, enabled=True, error=False)
        self._actions_width = math.ceil(widest.idealWidth()) + self._gap(0.5)

    def refresh_theme(self) -> None:
        """Rebuild the theme from the palette and font and re-render what is shown."""
        self._theme_gen += 1
        self._apply_theme()
        self._layouts.clear()
        for mid, old in list(self._streams.items()):
            row = self._model.row_of(mid)
            if row >= 0:  # re-render the streamed text so far with the new theme
                text = self._model.item_at(row).text
                self._streams[mid] = replace(self._new_stream(text, old.cites), ending=old.ending)
                self._dirty_streams.add(mid)
                self._schedule()
        self._reestimate_all()
        self._update_scroll_range()
        if self._follow:
            self._scroll_to_bottom()
        self.viewport().update()

    # ---- documents

    def _renderer_for(self, cites: frozenset[int]) -> MarkdownRenderer:
        """The renderer for an answer citing ``cites`` (shared per set of numbers)."""
        if not cites:
            return self._renderer
        renderer = self._cite_renderers.get(cites)
        if renderer is None:
            if len(self._cite_renderers) > 64:  # a long chat of grounded answers: stay small
                self._cite_renderers.clear()
            renderer = self._cite_renderers[cites] = self._renderer.with_citations(cites)
        return renderer

    def _new_doc(self, html_text: str, width: float) -> QTextDocument:
        # No Qt parent: the LRU (Python) owns the document, so evicting it frees it.
        doc = SafeTextDocument()
        doc.setUndoRedoEnabled(False)
        doc.setDocumentMargin(0)
        doc.setDefaultFont(self._doc_font)
        doc.setIndentWidth(self._indent)
        doc.setDefaultTextOption(self._text_option)
        doc.setHtml(html_text)
        doc.setTextWidth(width)
        return doc

    def _block_part(self, block: RenderedBlock, width: float) -> _Part:
        doc = self._new_doc(block.html, width)
        return _Part(
            doc=doc,
            kind=block.kind,
            block=block,
            height=_doc_height(doc),
            gap=self._gap(block.space_before),
        )

    def _header_html(self, item: ChatItem) -> str:
        t = self._theme
        who = "You" if item.role == ChatRole.USER else "Assistant"
        bits = [f"<b>{who}</b>"]
        if item.answered_by:
            model = html.escape(reveal_invisible(item.answered_by))
            bits.append(f'<span style="color:{t.muted}">· answered by {model}</span>')
        elif item.model and item.role == ChatRole.ASSISTANT:
            model = html.escape(reveal_invisible(item.model))
            bits.append(f'<span style="color:{t.muted}">· {model}</span>')
        if item.versions is not None:
            bits.append(self._versions_html(*item.versions))
        label = _STATUS_LABELS.get(item.status, "")
        if label:
            colour = {
                MessageStatus.STREAMING: t.link,
                MessageStatus.ERROR: t.warning,
                MessageStatus.PARTIAL: t.warning,
            }.get(item.status, t.muted)
            bits.append(f'<span style="color:{colour}">· {html.escape(label)}</span>')
        # The right cell keeps room for the actions, painted over it on hover or focus.
        return (
            '<table width="100%" cellspacing="0" cellpadding="0" border="0"><tr>'
            f'<td>{" ".join(bits)}</td><td width="{self._actions_width}"></td></tr></table>'
        )

    def _versions_html(self, current: int, count: int) -> str:
        """The switcher ``‹ 2/3 ›`` (an arrow with nowhere to go is shown, not linked)."""
        t = self._theme

        def arrow(glyph: str, action: str, live: bool) -> str:
            if not live:
                return f'<span style="color:{t.border}">&nbsp;{glyph}&nbsp;</span>'
            return (
                f'<a href="{_ANCHOR_ACTION}{action}" style="color:{t.link};'
                f' text-decoration:none">&nbsp;{glyph}&nbsp;</a>'
            )

        return (
            f'<span style="color:{t.muted}">&nbsp;&nbsp;'
            f"{arrow('‹', 'version-prev', current > 1)}{current}/{count}"
            f"{arrow('›', 'version-next', current < count)}</span>"
        )

    def _actions_doc(self, role: ChatRole, *, enabled: bool, error: bool) -> QTextDocument:
        """The action links of a message (shared per role and state; painted on hover)."""
        key = (role, enabled, error)
        doc = self._action_docs.get(key)
        if doc is not None:
            return doc
        t = self._theme
        names: list[tuple[str, str, bool]] = [("Copy", _ANCHOR_COPY_MESSAGE, True)]
        if role == ChatRole.USER:
            names.append(("Edit", f"{_ANCHOR_ACTION}edit", enabled))
        else:
            names.append(
                ("Retry" if error else "Regenerate", f"{_ANCHOR_ACTION}regenerate", enabled)
            )
            names.append(("Delete", f"{_ANCHOR_ACTION}delete", enabled))
        links = []
        for label, href, live in names:
            if live:
                links.append(
                    f'<a href="{href}" style="color:{t.link}; text-decoration:none">{label}</a>'
                )
            else:
                links.append(f'<span style="color:{t.border}">{label}</span>')
        doc = self._new_doc(
            f'<p style="margin:0">{"&nbsp;&nbsp;·&nbsp;&nbsp;".join(links)}</p>', -1
        )
        doc.setTextWidth(doc.idealWidth())
        self._action_docs[key] = doc
        return doc

    def _row_actions(self, row: int, layout: _MessageLayout) -> tuple[QTextDocument, QPointF]:
        """The actions document of a row and its top-left in message coordinates."""
        item = self._model.item_at(row)
        doc = self._actions_doc(item.role, enabled=self._actions_enabled, error=bool(item.error))
        pad = self._px(_PAD_EM)
        x = pad + layout.width - doc.idealWidth()
        return doc, QPointF(x, layout.header.top)

    def _actions_shown(self, message_id: str) -> bool:
        """Actions show on the message under the pointer, and the focused one."""
        if message_id == self._hover_message:
            return True
        return message_id == self._focus_message and self.hasFocus()

    def set_actions_enabled(self, enabled: bool) -> None:
        """Enable or grey out the actions that start or change a turn (Copy stays)."""
        if enabled != self._actions_enabled:
            self._actions_enabled = enabled
            self.viewport().update()

    def _set_hover(self, message_id: str | None) -> None:
        if message_id != self._hover_message:
            old, self._hover_message = self._hover_message, message_id
            for mid in (old, message_id):
                self._update_header(mid)

    def _update_header(self, message_id: str | None) -> None:
        """Repaint the header strip of a message (where its actions are painted)."""
        row = -1 if message_id is None else self._model.row_of(message_id)
        if row < 0 or row >= len(self._heights):
            return
        top = self._tops[row] - self._scroll_y()
        height = self._gap(_PAD_EM) + self._em * 2
        self.viewport().update(0, math.floor(top), self.viewport().width(), math.ceil(height) + 1)

    def _error_html(self, item: ChatItem) -> str:
        t = self._theme
        text = html.escape(reveal_invisible(item.error or ""))
        retry = ""
        if item.retryable:
            retry = (
                f'&nbsp;&nbsp;<a href="{_ANCHOR_RETRY}" style="color:{t.link};'
                ' text-decoration:underline">Retry</a>'
            )
        return f'<p style="margin:0"><span style="color:{t.warning}">⚠ {text}</span>{retry}</p>'

    def _footer_html(self, footer: FooterItem) -> str:
        t = self._theme
        text = html.escape(reveal_invisible(footer.text))
        href = footer.href or ""
        if href.startswith(_ANCHOR_INTERNAL) or link_is_openable(href):
            text = f'<a href="{html.escape(href)}" style="color:{t.link}">{text}</a>'
        return f'<p style="margin:0; color:{t.muted}">{text}</p>'

    def _build_meta(self, layout: _MessageLayout, item: ChatItem) -> None:
        width = layout.width
        header_doc = self._new_doc(self._header_html(item), width)
        layout.header = _Part(header_doc, "header", height=_doc_height(header_doc))
        layout.error = None
        if item.error:
            doc = self._new_doc(self._error_html(item), width)
            layout.error = _Part(
                doc, "error", height=_doc_height(doc), gap=self._gap(_ERROR_GAP_EM)
            )
        layout.footer = []
        layout.footer_items = [
            f for f in item.footer if not (layout.inline and f.offset is not None)
        ]
        for f in layout.footer_items:
            doc = self._new_doc(self._footer_html(f), width)
            gap = _FOOTER_GAP_EM if layout.footer else _FOOTER_FIRST_GAP_EM
            layout.footer.append(_Part(doc, "footer", height=_doc_height(doc), gap=self._gap(gap)))

    def _body_parts(self, item: ChatItem, width: float) -> list[_Part]:
        inline = _inline_of(item)
        if not item.text and not inline:
            return []
        if item.role == ChatRole.USER:
            # People type plain text: show it as written (line breaks kept, nothing parsed).
            doc = self._new_doc(render_plain_text(item.text, self._theme), width)
            return [_Part(doc, "plain", height=_doc_height(doc))]
        renderer = self._renderer_for(_citations_of(item))
        if not inline:
            return self._markdown_parts(renderer, item.text, width)
        # Tool cards where the calls happened: the text before a call, its card, the rest.
        text = item.text
        parts: list[_Part] = []
        start = 0
        after_card = False
        for offset, group in _card_groups(inline, len(text)):
            parts += self._spaced(
                self._markdown_parts(renderer, text[start:offset], width), after_card
            )
            parts.append(self._card_part(group, width))
            start, after_card = offset, True
        parts += self._spaced(self._markdown_parts(renderer, text[start:], width), after_card)
        return parts

    def _spaced(self, parts: list[_Part], after_card: bool) -> list[_Part]:
        """Text that follows a tool card keeps a card's gap from it."""
        if after_card and parts:
            parts[0].gap = max(parts[0].gap, self._gap(0.5))
        return parts

    def _markdown_parts(self, renderer: MarkdownRenderer, text: str, width: float) -> list[_Part]:
        if not text.strip():
            return []
        if len(text) < _LAZY_MIN_CHARS:
            return [self._block_part(b, width) for b in renderer.render(text)]
        # A long answer: split it (cheap) and render only the blocks that get near the
        # viewport; the others keep an estimated height (see _realize).
        return [
            self._lazy_part(plan.kind, plan.source, plan.space_before, width, plan=plan)
            for plan in renderer.plan(text)
        ]

    def _card_part(self, group: Sequence[FooterItem], width: float) -> _Part:
        """A tool card: its line (a link that opens or closes it), then its details."""
        t = self._theme
        rows = []
        for f in group:
            text = html.escape(reveal_invisible(f.text))
            href = f.href or ""
            if href.startswith(_ANCHOR_INTERNAL):
                text = (
                    f'<a href="{html.escape(href)}" style="color:{t.text};'
                    f' text-decoration:none">{text}</a>'
                )
            colour = t.text if f.kind == "tool_call" else t.muted
            rows.append(f'<tr><td style="color:{colour}">{text}</td></tr>')
        doc = self._new_doc(
            f'<table width="100%" cellspacing="0" cellpadding="{self._gap(0.35)}" border="1"'
            f' style="border-color:{t.border}; border-style:solid; border-collapse:collapse"'
            f' bgcolor="{t.code_background}">{"".join(rows)}</table>',
            width,
        )
        return _Part(doc, "tool_card", height=_doc_height(doc), gap=self._gap(0.5))

    def _lazy_part(
        self,
        kind: str,
        source: str,
        space_before: float,
        width: float,
        *,
        plan: BlockPlan | None = None,
        block: RenderedBlock | None = None,
    ) -> _Part:
        return _Part(
            None,
            kind,
            block=block,
            plan=plan,
            height=self._estimate_block(kind, source, width),
            gap=self._gap(space_before),
        )

    def _estimate_block(self, kind: str, source: str, width: float) -> float:
        """A height guess for an unrendered block from its source and the font metrics."""
        per_line = max(8.0, width / max(self._char_w, 1.0))
        lines = sum(1 + int(len(line) / per_line) for line in source.split("\n"))
        line_h = self._em * 1.15
        if kind == "fence":
            guess = max(1, lines - 2) * line_h + self._px(2.6)  # fences out, header row in
        elif kind == "table":
            guess = max(1, lines - 1) * line_h * 1.45
        elif kind == "heading":
            guess = line_h * 1.8
        else:
            guess = lines * line_h
        return math.ceil(guess)

    def _realize(self, row: int, layout: _MessageLayout, indices: Iterable[int]) -> None:
        """Render lazy body parts, keeping what is on screen still."""
        view_top = self._scroll_y() - self._tops[row]  # the viewport's top, message coords
        shift = 0.0
        first: int | None = None
        for index in indices:
            part = layout.body[index]
            if part.doc is not None:
                continue
            block = part.block
            if block is None:
                assert part.plan is not None
                block = self._renderer_for(layout.cites).render_block(part.plan)
            doc = self._new_doc(block.html, layout.width)
            old = part.height
            part.doc, part.block, part.plan = doc, block, None
            part.height = _doc_height(doc)
            layout.lazy -= 1
            if part.top < view_top:  # starts above the viewport: keep its bottom still
                shift += part.height - old
            first = index if first is None else min(first, index)
        if first is None:
            return
        self._position(layout, from_body=first)
        part = layout.body[first]
        self._set_row_height(row, layout.height, changed_from=part.top - part.gap, shift=shift)

    def _realize_visible(self, row: int, layout: _MessageLayout) -> bool:
        """Render the lazy parts of a row that intersect the viewport (plus a margin)."""
        if not layout.lazy:
            return False
        vh = self.viewport().height()
        top = self._scroll_y() - self._tops[row] - vh / 2
        bottom = top + 2 * vh
        body = layout.body
        index = max(0, bisect.bisect_right(body, top, key=_part_top) - 1)
        wanted = []
        while index < len(body) and body[index].top < bottom:
            if body[index].doc is None:
                wanted.append(index)
            index += 1
        self._realize(row, layout, wanted)
        return bool(wanted)

    def _realize_all(self, row: int) -> _MessageLayout:
        layout = self._layout_for(row)
        if layout.lazy:
            self._realize(row, layout, range(len(layout.body)))
        return layout

    def _position(self, layout: _MessageLayout, from_body: int = 0) -> None:
        """Place the parts vertically; body parts before ``from_body`` keep their places."""
        pad = self._gap(_PAD_EM)
        header = layout.header
        header.top = pad
        y = header.top + header.height + self._gap(_HEADER_GAP_EM)
        layout.body_top = y
        if from_body > 0 and from_body <= len(layout.body):
            prev = layout.body[from_body - 1]
            y = prev.top + prev.height
        else:
            from_body = 0
        for part in layout.body[from_body:]:
            y += part.gap
            part.top = y
            y += part.height
        for part in ([layout.error] if layout.error else []) + layout.footer:
            y += part.gap
            part.top = y
            y += part.height
        layout.height = y + pad

    def _layout_for(self, row: int) -> _MessageLayout:
        """The (cached) rendered layout of a row at the current width and theme."""
        item = self._model.item_at(row)
        mid = item.message_id
        text_rev, meta_rev = self._model.revisions(row)
        width = self._doc_width()
        stream = self._streams.get(mid)
        layout = stream.layout if stream is not None else self._layouts.get(mid)
        cites = stream.cites if stream is not None else _citations_of(item)
        if layout is not None and layout.theme_gen != self._theme_gen:
            layout = None
        if layout is not None and stream is None and layout.text_rev != text_rev:
            layout = None
        if layout is not None and layout.cites != cites:
            layout = None  # sources arrived or changed: [n] links differ
        inline = () if stream is not None else _inline_of(item)
        if layout is not None and stream is None and layout.inline != inline:
            layout = None  # tool cards inside the text changed (or the stream just ended)
        reposition = False
        if layout is None:
            header = _Part(QTextDocument(), "header")
            layout = _MessageLayout(mid, text_rev, -1, self._theme_gen, width, header)
            layout.cites = cites
            layout.inline = inline
            if stream is not None:
                # First time on screen while streaming: frozen blocks plus the current tail.
                stream.layout = layout
                stream.staged.clear()  # built for the old layout; inc.plans has them all
                stream.todo.clear()
                layout.body = [
                    self._lazy_part(p.kind, p.source, p.space_before, width, plan=p)
                    for p in stream.inc.plans
                ]
                stream.frozen = len(layout.body)
                layout.body += [self._block_part(b, width) for b in stream.inc.tail()]
            else:
                layout.body = self._body_parts(item, width)
            layout.lazy = sum(1 for part in layout.body if part.doc is None)
            reposition = True
        if layout.width != width:
            for part in layout.parts():
                if part.doc is not None:
                    part.doc.setTextWidth(width)
                    part.height = _doc_height(part.doc)
                else:
                    source = part.block.source if part.block else part.plan.source  # type: ignore[union-attr]
                    part.height = self._estimate_block(part.kind, source, width)
            layout.width = width
            layout.meta_rev = -1  # the header table is laid out for the width too
        if layout.meta_rev != meta_rev:
            self._build_meta(layout, item)
            layout.meta_rev = meta_rev
            reposition = True
        if reposition:
            self._position(layout)
        if stream is None:
            self._layouts[mid] = layout
            self._layouts.move_to_end(mid)
            while len(self._layouts) > LAYOUT_CACHE_SIZE:
                self._layouts.popitem(last=False)
        return layout

    def _ensure_exact(self, row: int) -> _MessageLayout:
        layout = self._layout_for(row)
        key = (self._doc_width(), *self._model.revisions(row), self._theme_gen)
        height = math.ceil(layout.height)
        if self._exact_key[row] != key or self._heights[row] != height:
            self._exact_key[row] = key
            self._set_row_height(row, height)
        return layout

    def _set_row_height(
        self,
        row: int,
        height: float,
        *,
        changed_from: float | None = None,
        shift: float | None = None,
    ) -> None:
        """Change one row's height, keep the scroll policy, and repaint what moved on screen.

        The scroll position: when following, the bottom; otherwise what the person is
        reading stays still (a change that starts above the viewport's top moves the scroll
        by the height change, or by ``shift`` when the caller knows better: lazy blocks
        rendered inside a long message). Heights are whole pixels, so this is exact.

        What to repaint is derived from the geometry alone (:meth:`_repaint_moved`), never
        from who called: a row made exact above the viewport while following the stream
        moves nothing on screen, the stream's new tail at the bottom moves what is above it.
        (Blitting whenever the view followed was issue 14's duplicated and overlapping
        blocks: the prefetch correcting an estimate above the viewport shifted every pixel.)

        Args:
            row: The row.
            height: Its new height.
            changed_from: Where inside the row its content changed (the streaming tail):
                that part is repainted even when the height stays. None: the whole row may
                have changed, and a row whose height stays is left to the caller to repaint.
            shift: Scroll by this much instead of the policy's compensation.
        """
        height = math.ceil(height)
        old = self._heights[row]
        y0 = self._scroll_y()
        row_top = self._tops[row]
        change_top = row_top + (changed_from or 0.0)
        if old != height:
            self._heights[row] = height
            self._recompute_tops(row)
            with self._geometry_scroll():
                self._update_scroll_range()
                if self._follow:
                    target = float(self.verticalScrollBar().maximum())
                elif shift is not None:
                    target = y0 + shift
                elif change_top < y0:
                    # Keep what the person is reading still when something above it changes.
                    target = y0 + (height - old)
                else:
                    target = y0
                self._set_scroll(target)
        elif changed_from is None:
            return
        self._repaint_moved(y0, change_top, row_top + old, row_top + height)

    def _repaint_moved(self, y0: float, change_top: float, old_end: float, end: float) -> None:
        """Bring the screen up to date after a row changed (content coordinates).

        Before the change the viewport showed content from ``y0``; the row's content changed
        from ``change_top`` and its end moved from ``old_end`` to ``end``. On screen, what is
        above ``change_top`` moved by the scroll delta, what is below the row by that plus
        the height change, and the changed part must be painted. Pixels are moved (blitted)
        only where they really moved together; a paint already in progress gets a full
        update instead (Qt cannot scroll pixels in the middle of a paint).
        """
        viewport = self.viewport()
        y1 = self._scroll_y()
        vh = viewport.height()
        above = round(y0 - y1)  # on-screen move of the content above the change
        below = above + round(end - old_end)  # ... of the content below the row
        start = change_top - y1
        if self._painting:
            viewport.update()
        elif end - y1 <= 0:  # all of the change is above the viewport
            if below:
                viewport.scroll(0, below)
        elif start >= vh:  # all of it is below the viewport
            if above:
                viewport.scroll(0, above)
        else:
            if above:
                viewport.scroll(0, above)
            top = max(0, math.floor(start) - 1)
            viewport.update(0, top, viewport.width(), vh - top)

    @contextlib.contextmanager
    def _geometry_scroll(self) -> Iterator[None]:
        """Scrolls inside repaint nothing themselves: :meth:`_repaint_moved` does."""
        before = self._geometry_scrolling
        self._geometry_scrolling = True
        try:
            yield
        finally:
            self._geometry_scrolling = before

    def _settle(self) -> None:
        """Make every visible row exact, keeping the scroll anchor, until nothing changes."""
        if self._settling or not self._heights:
            return
        self._settling = True
        try:
            for _ in range(8):
                changed = False
                y0 = self._scroll_y()
                y1 = y0 + self.viewport().height()
                row = self._row_at(y0)
                while row < len(self._heights) and self._tops[row] < y1:
                    key = (self._doc_width(), *self._model.revisions(row), self._theme_gen)
                    before = self._heights[row]
                    if self._exact_key[row] != key:
                        self._ensure_exact(row)
                    if self._realize_visible(row, self._layout_for(row)):
                        changed = True
                    changed = changed or before != self._heights[row]
                    row += 1
                if not changed:
                    break
        finally:
            self._settling = False

    # ---- scrolling

    def _scroll_y(self) -> float:
        return float(self.verticalScrollBar().value())

    def _set_scroll(self, y: float) -> None:
        bar = self.verticalScrollBar()
        before, self._programmatic_scroll = self._programmatic_scroll, True
        try:
            bar.setValue(round(min(max(0.0, y), bar.maximum())))
        finally:
            self._programmatic_scroll = before

    def _scroll_to_bottom(self) -> None:
        self._set_scroll(self.verticalScrollBar().maximum())

    def _update_scroll_range(self) -> None:
        bar = self.verticalScrollBar()
        before, self._programmatic_scroll = self._programmatic_scroll, True
        try:
            vh = self.viewport().height()
            bar.setRange(0, max(0, round(self._content_height() - vh)))
            bar.setPageStep(max(1, vh))
            bar.setSingleStep(max(1, round(self._em * 3)))
        finally:
            self._programmatic_scroll = before

    def _on_scroll_value(self, value: int) -> None:
        if not self._programmatic_scroll:
            bar = self.verticalScrollBar()
            self._follow = value >= bar.maximum() - self._px(_FOLLOW_TOLERANCE_EM)
            self._settle()  # rows scrolled into view for the first time get laid out

    def _on_scroll_range(self, _minimum: int, maximum: int) -> None:
        if self._follow and self.verticalScrollBar().value() != maximum:
            self._scroll_to_bottom()

    def scroll_to_bottom(self) -> None:
        """Jump to the end and follow new text again."""
        self._follow = True
        self._settle()
        self._scroll_to_bottom()
        self._settle()
        self.viewport().update()

    def is_following(self) -> bool:
        """Whether the view sticks to the bottom as text arrives."""
        return self._follow

    def scroll_anchor(self) -> tuple[str, float] | None:
        """The message at the top of the view and how far into it (None: at the end)."""
        if self._follow or not self._heights:
            return None
        y = self._scroll_y()
        row = self._row_at(y)
        return self._model.item_at(row).message_id, y - self._tops[row]

    def scroll_to_anchor(self, message_id: str, offset: float) -> bool:
        """Put ``message_id`` at the top, ``offset`` pixels into it (False: not shown)."""
        row = self._model.row_of(message_id)
        if row < 0 or not self._heights:
            return False
        self._follow = False
        for _ in range(4):  # laying out the rows in view corrects their estimated heights
            y = self._tops[row] + max(0.0, offset)
            self._set_scroll(y)
            self._settle()
            if abs(self._scroll_y() - (self._tops[row] + max(0.0, offset))) < 1:
                break
        self.viewport().update()
        return True

    def scrollContentsBy(self, dx: int, dy: int) -> None:
        """Move the pixels already painted when only the scroll position changed.

        A scroll by the person blits the viewport and repaints only the strip that came into
        view. A scroll that goes with a row's height change repaints nothing here: the row
        change knows what moved on screen (:meth:`_repaint_moved`). Other programmatic scrolls
        (jump to the end, a resize) repaint everything.
        """
        if self._geometry_scrolling:
            return
        if self._programmatic_scroll:
            self.viewport().update()
        else:
            self.viewport().scroll(dx, dy)

    def resizeEvent(self, event: QResizeEvent) -> None:
        """Re-estimate at the new width, keeping the top visible row in place."""
        old_width = event.oldSize().width()
        super().resizeEvent(event)
        anchor_row = self._row_at(self._scroll_y()) if self._heights else 0
        offset = self._scroll_y() - self._tops[anchor_row] if self._heights else 0.0
        if old_width != event.size().width():
            for row in range(len(self._heights)):
                if self._exact_key[row] is not None:
                    self._exact_key[row] = None
                    self._heights[row] = self._estimate(self._model.item_at(row))
            self._recompute_tops(0)
        self._update_scroll_range()
        if self._follow:
            self._scroll_to_bottom()
        elif self._heights:
            self._set_scroll(self._tops[anchor_row] + offset)

    # ---- streaming

    def _new_stream(self, text: str, cites: frozenset[int] = frozenset()) -> _Stream:
        stream = _Stream(IncrementalMarkdown(self._renderer_for(cites), render=False), cites=cites)
        if text:
            stream.inc.feed(text, render_tail=False)
        stream.consumed = len(text)
        return stream

    def _backlog(self, message_id: str, stream: _Stream) -> int:
        """Characters of a streaming message not rendered yet (buffered or applied)."""
        item = self._model.item(message_id)
        return 0 if item is None else len(item.text) - stream.consumed

    def begin_stream(self, message_id: str) -> None:
        row = self._model.row_of(message_id)
        if row < 0:
            return
        self._layouts.pop(message_id, None)
        item = self._model.item_at(row)
        self._streams[message_id] = self._new_stream(item.text, _citations_of(item))
        self._dirty_streams.add(message_id)
        self._schedule()

    def note_delta(self, message_id: str) -> None:
        if message_id in self._streams:
            self._dirty_streams.add(message_id)
            self._schedule()

    def _schedule(self, *, soon: bool = False) -> None:
        """Start the render timer; ``soon`` while a backlog waits (see _CATCH_UP_INTERVAL_MS)."""
        interval = _CATCH_UP_INTERVAL_MS if soon else UPDATE_INTERVAL_MS
        if self._timer.isActive() and self._timer.remainingTime() <= interval:
            return
        self._timer.start(interval)

    def _stage_frozen(self, stream: _Stream, plans: list[BlockPlan]) -> None:
        """Queue newly frozen blocks to be built (:meth:`_build_step`) and then shown.

        Nothing is queued while the message has never been on screen: its frozen blocks
        become lazy parts when it is first painted.
        """
        if stream.layout is not None and plans:
            stream.todo.extend(plans)

    def _build_step(self, stream: _Stream) -> None:
        """One step of building the queued blocks: render a plan, or build its document.

        Built documents wait in ``staged`` until :meth:`_show_frame` puts them on screen; the
        layout keeps showing the previous frame until then, so a paint in between is
        consistent.
        """
        item = stream.todo.popleft()
        if isinstance(item, BlockPlan):
            stream.todo.appendleft(self._renderer_for(stream.cites).render_block(item))
        elif stream.layout is not None:
            stream.staged.append(self._block_part(item, stream.layout.width))

    def _show_frame(self, stream: _Stream, tail: list[RenderedBlock]) -> None:
        """Replace the shown tail with the staged frozen blocks and the new tail."""
        layout = stream.layout
        if layout is None:
            return
        first = stream.frozen
        del layout.body[first:]  # the old tail: the staged blocks and the new tail replace it
        for part in stream.staged:
            # Built before a resize: wrap them at the layout's width like the rest.
            if part.doc is not None and part.doc.textWidth() != layout.width:
                part.doc.setTextWidth(layout.width)
                part.height = _doc_height(part.doc)
        layout.body.extend(stream.staged)
        stream.staged.clear()
        stream.frozen = len(layout.body)
        layout.body.extend(self._block_part(b, layout.width) for b in tail)
        self._position(layout, from_body=first)

    def flush_streams(self, *, drain: bool = True) -> None:
        """Render the text that arrived since the last update.

        Args:
            drain: Render everything buffered (explicit flushes). The coalescing timer passes
                False: each tick then renders what fits in :data:`_TICK_BUDGET_S` and leaves
                the rest for the next tick, so text arriving faster than it can be rendered
                never freezes the window; the view catches up a moment later instead.
        """
        dirty = list(self._dirty_streams)
        self._dirty_streams.clear()
        for mid in dirty:
            self._flush_one(mid, drain=drain)
        self._settle()

    def _flush_timer(self) -> None:
        self.flush_streams(drain=False)

    def _flush_one(self, message_id: str, *, drain: bool) -> None:
        stream = self._streams.get(message_id)
        row = self._model.row_of(message_id)
        if stream is None or row < 0:
            return
        self._model.take_pending(message_id)
        item = self._model.item_at(row)
        text = item.text
        cites = _citations_of(item)
        if stream.consumed > len(text) or stream.cites != cites:
            # The text was replaced under the stream, or its sources arrived (the [n] links
            # change): start over. Sources come before the first token, so this is cheap.
            stream = self._streams[message_id] = replace(
                self._new_stream("", cites), ending=stream.ending
            )
        layout = stream.layout
        first_changed = stream.frozen
        started = time.perf_counter()
        # Work in small steps, checking the tick's budget between them: build a frozen
        # block (render it, then its document), or feed a chunk of text to the Markdown
        # splitter. The open tail is rendered once, with the frame.
        while True:
            step_started = time.perf_counter()
            if stream.todo:
                self._build_step(stream)
            elif stream.consumed < len(text):
                end = len(text) if drain else stream.consumed + _TICK_CHUNK
                update = stream.inc.feed(text[stream.consumed : end], render_tail=False)
                stream.consumed = min(end, len(text))
                self._stage_frozen(stream, update.plans)
            elif stream.ending and not stream.inc.finished:
                self._stage_frozen(stream, stream.inc.finish().plans)
            else:
                break
            now = time.perf_counter()
            stream.step_cost = max(stream.step_cost / 2, now - step_started)
            if not drain and now - started + stream.step_cost > _TICK_BUDGET_S:
                break
        behind = stream.consumed < len(text) or bool(stream.todo)
        if behind:
            self._dirty_streams.add(message_id)
            self._schedule(soon=True)
        finishing = stream.inc.finished and not stream.todo
        if stream.todo or not (drain or finishing or self._frame_due(stream)):
            # Blocks are still being built, or text is arriving faster than anyone reads:
            # the blocks are built as it comes, but the visible frame (open tail, height,
            # scroll, paint) waits.
            self._dirty_streams.add(message_id)
            self._schedule()
            return
        stream.frame_at = time.perf_counter()
        stream.frame_chars = stream.consumed
        if finishing:
            self._show_frame(stream, [])
        elif layout is not None:  # never shown: the tail is rendered when it is painted
            self._show_frame(stream, stream.inc.tail())
        if layout is not None:
            layout.text_rev = self._model.revisions(row)[0]
        if finishing:
            # The stream's documents are exactly what a fresh render gives: keep them.
            del self._streams[message_id]
            self._dirty_streams.discard(message_id)
            if layout is not None and _inline_of(item):
                # Its tool cards now go where the calls happened: a fresh layout, once.
                self._layouts.pop(message_id, None)
                self._exact_key[row] = None
                self._ensure_exact(row)
                self.viewport().update()
                return
            if layout is not None:
                self._layouts[message_id] = layout
        if layout is None:
            # Never shown: only the Markdown state is kept; documents are built when painted.
            self._exact_key[row] = None  # an estimate, whatever the row had before
            self._set_row_height(row, self._estimate(self._model.item_at(row)))
            return
        if layout.width != self._doc_width() or layout.meta_rev != self._model.revisions(row)[1]:
            # Resized, or the status/footer changed: re-wrap or rebuild once, repaint all.
            self._ensure_exact(row)
            self.viewport().update()
            return
        self._exact_key[row] = (self._doc_width(), *self._model.revisions(row), self._theme_gen)
        # Repaint only from the first rebuilt block down; the rest of the view is blitted
        # when following (the per-frame paint cost does not grow with the message).
        body = layout.body
        if first_changed < len(body):
            changed = body[first_changed].top - body[first_changed].gap
        elif body:
            changed = body[-1].top + body[-1].height
        else:
            changed = layout.body_top
        self._set_row_height(row, layout.height, changed_from=changed)

    @staticmethod
    def _frame_due(stream: _Stream) -> bool:
        """Whether a stream's next visible frame is due.

        Each frame re-renders the open tail, re-lays out the row, scrolls and repaints:
        several milliseconds whatever arrived. Up to :data:`FAST_STREAM_CHARS_PER_S` that is
        done on every tick (~30 a second); a faster stream (a local model on a big GPU) gets
        proportionally fewer frames, at least one per :data:`MAX_FRAME_INTERVAL_MS`, so the
        window's work does not slow the stream down. Frozen blocks are built in between.
        """
        elapsed = time.perf_counter() - stream.frame_at
        if elapsed >= MAX_FRAME_INTERVAL_MS / 1000:
            return True
        rate = (stream.consumed - stream.frame_chars) / max(elapsed, 1e-3)
        interval = UPDATE_INTERVAL_MS / 1000 * max(1.0, rate / FAST_STREAM_CHARS_PER_S)
        return elapsed >= interval * 0.9

    def end_stream(self, message_id: str) -> None:
        """Finish a stream: render what is left, then keep its documents as a cached layout.

        A small backlog is rendered now; a large one (text arrived faster than it could be
        shown) keeps draining on the timer, tick by tick, so the window stays responsive.
        """
        stream = self._streams.get(message_id)
        if stream is None:
            return
        stream.ending = True
        if self._backlog(message_id, stream) <= 4 * _TICK_CHUNK:
            self._flush_one(message_id, drain=True)
            self._settle()
        else:
            self._dirty_streams.add(message_id)
            self._schedule(soon=True)

    # ---- painting

    def paintEvent(self, event: QPaintEvent) -> None:
        """Paint the messages that intersect the exposed rectangle (and nothing else)."""
        self._painting = True
        try:
            self._paint(event)
        finally:
            self._painting = False
        if not self._streams and not self._prefetch_timer.isActive():
            self._prefetch_timer.start()

    def _paint(self, event: QPaintEvent) -> None:
        self._settle()
        if not self._heights:
            return
        exposed = QRectF(event.rect())
        painter = QPainter(self.viewport())
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        pal = self.palette()
        y0 = self._scroll_y()
        col_x, col_w = self._column()
        row = self._row_at(y0 + exposed.top())
        while row < len(self._heights) and self._tops[row] < y0 + exposed.bottom():
            layout = self._layout_for(row)
            top = self._tops[row] - y0
            self._paint_message(painter, pal, row, layout, col_x, col_w, top, exposed)
            row += 1
        painter.end()

    def _prefetch(self) -> None:
        """Lay out the messages just off screen while idle, so scrolling finds them ready.

        Works a few milliseconds per timer tick, nearest rows first, up to a screen above and
        below; never while a stream is rendering (it has the time budget then).
        """
        if self._streams or not self._heights:
            return
        started = time.perf_counter()
        y0 = self._scroll_y()
        vh = self.viewport().height()
        first, last = self._row_at(y0 - vh), self._row_at(y0 + 2 * vh)
        top, bottom = self._row_at(y0), self._row_at(y0 + vh)
        order = sorted(range(first, last + 1), key=lambda r: min(abs(r - top), abs(r - bottom)))
        for row in order:
            key = (self._doc_width(), *self._model.revisions(row), self._theme_gen)
            if self._exact_key[row] == key:
                continue
            self._ensure_exact(row)
            if time.perf_counter() - started > _PREFETCH_BUDGET_S:
                self._prefetch_timer.start()
                return

    def _paint_message(
        self,
        painter: QPainter,
        pal: QPalette,
        row: int,
        layout: _MessageLayout,
        col_x: float,
        col_w: float,
        top: float,
        exposed: QRectF,
    ) -> None:
        item = self._model.item_at(row)
        if item.role == ChatRole.USER:
            base = pal.color(QPalette.ColorRole.Base)
            bubble = QColor(blend(base, pal.color(QPalette.ColorRole.Highlight), 0.12))
            path = QPainterPath()
            radius = self._px(0.5)
            path.addRoundedRect(QRectF(col_x, top, col_w, layout.height), radius, radius)
            painter.fillPath(path, bubble)
        pad = self._px(_PAD_EM)
        sel = self._selection_ranges(layout)
        parts = layout.parts()
        # Parts are sorted by top: start at the first one reaching the exposed area, so a
        # long answer costs the same per frame as a short one.
        first = self._part_index_at(parts, exposed.top() - top)
        for index in range(first, len(parts)):
            part = parts[index]
            part_top = top + part.top
            if part_top > exposed.bottom():
                break
            if part_top + part.height < exposed.top() or part.doc is None:
                continue
            ctx = QAbstractTextDocumentLayout.PaintContext()
            ctx.palette = pal
            clip_top = max(0.0, exposed.top() - part_top)
            ctx.clip = QRectF(0, clip_top, layout.width, exposed.bottom() - part_top - clip_top)
            rng = sel.get(index)
            if rng is not None:
                selection = QAbstractTextDocumentLayout.Selection()
                cursor = QTextCursor(part.doc)
                cursor.setPosition(rng[0])
                cursor.setPosition(rng[1], QTextCursor.MoveMode.KeepAnchor)
                selection.cursor = cursor
                fmt = QTextCharFormat()
                fmt.setBackground(pal.brush(QPalette.ColorRole.Highlight))
                fmt.setForeground(pal.brush(QPalette.ColorRole.HighlightedText))
                selection.format = fmt
                ctx.selections = [selection]
            painter.save()
            painter.translate(col_x + pad, part_top)
            part.doc.documentLayout().draw(painter, ctx)
            painter.restore()
        if self._actions_shown(item.message_id):
            doc, at = self._row_actions(row, layout)
            painter.save()
            painter.translate(col_x + at.x(), top + at.y())
            doc.documentLayout().draw(painter, QAbstractTextDocumentLayout.PaintContext())
            painter.restore()

    # ---- hit testing

    def _hit(self, pos: QPointF) -> _Hit | None:
        if not self._heights:
            return None
        y = pos.y() + self._scroll_y()
        row = self._row_at(y)
        if not self._tops[row] <= y < self._tops[row] + self._heights[row]:
            return None
        layout = self._layout_for(row)
        col_x, _ = self._column()
        lx = pos.x() - col_x - self._px(_PAD_EM)
        ly = y - self._tops[row]
        parts = layout.parts()
        index = self._part_index_at(parts, ly)
        part = parts[index]
        local = QPointF(lx, ly - part.top)
        anchor = ""
        # The pointer is over this message, so its actions are shown: they come first.
        doc, at = self._row_actions(row, layout)
        in_actions = QPointF(pos.x() - col_x - at.x(), ly - at.y())
        if 0 <= in_actions.y() <= doc.size().height() and 0 <= in_actions.x() <= doc.idealWidth():
            anchor = doc.documentLayout().anchorAt(in_actions)
        if not anchor and part.doc is not None and 0 <= local.y() <= part.height:
            if 0 <= lx <= layout.width:
                anchor = part.doc.documentLayout().anchorAt(local)
        return _Hit(row, layout.message_id, layout, index, part, local, anchor)

    @staticmethod
    def _part_index_at(parts: list[_Part], y: float) -> int:
        index = bisect.bisect_right(parts, y, key=_part_top) - 1
        return min(max(index, 0), len(parts) - 1)

    def _text_pos(self, hit: _Hit) -> _TextPos:
        local = hit.local
        part = hit.part
        if part.doc is None or local.y() < 0:
            pos = 0
        elif local.y() > part.height:
            pos = _part_end(part)
        else:
            pos = part.doc.documentLayout().hitTest(local, Qt.HitTestAccuracy.FuzzyHit)
            pos = max(0, pos)
        return _TextPos(hit.message_id, hit.part_index, pos)

    # ---- selection

    def _clear_selection(self) -> None:
        self._sel_anchor = self._sel_cursor = None

    def has_selection(self) -> bool:
        a, c = self._sel_anchor, self._sel_cursor
        return a is not None and c is not None and (a.part, a.pos) != (c.part, c.pos)

    def _ordered_selection(self) -> tuple[_TextPos, _TextPos] | None:
        if not self.has_selection():
            return None
        a, c = self._sel_anchor, self._sel_cursor
        assert a is not None and c is not None
        return (a, c) if (a.part, a.pos) <= (c.part, c.pos) else (c, a)

    def _selection_ranges(self, layout: _MessageLayout) -> dict[int, tuple[int, int]]:
        sel = self._ordered_selection()
        if sel is None or sel[0].message_id != layout.message_id:
            return {}
        start, end = sel
        parts = layout.parts()
        out: dict[int, tuple[int, int]] = {}
        for index in range(start.part, min(end.part, len(parts) - 1) + 1):
            if parts[index].doc is None:
                continue  # not rendered: off screen, and selected_text renders it first
            last = _part_end(parts[index])
            a = start.pos if index == start.part else 0
            b = end.pos if index == end.part else last
            a, b = min(a, last), min(b, last)
            if b > a:
                out[index] = (a, b)
        return out

    def selected_text(self) -> str:
        """The selected text as plain text ("" if nothing is selected)."""
        sel = self._ordered_selection()
        if sel is None:
            return ""
        row = self._model.row_of(sel[0].message_id)
        if row < 0:
            return ""
        layout = self._realize_all(row)
        parts = layout.parts()
        pieces: list[str] = []
        prev: _Part | None = None
        for index, (a, b) in sorted(self._selection_ranges(layout).items()):
            part = parts[index]
            assert part.doc is not None
            if part.kind == "fence":
                a, b = _clamp_to_code(part.doc, a, b)
                if b <= a:
                    continue
            cursor = QTextCursor(part.doc)
            cursor.setPosition(a)
            cursor.setPosition(b, QTextCursor.MoveMode.KeepAnchor)
            text = cursor.selection().toPlainText()
            if prev is not None:
                same_list = part.kind == "list_item" and prev.kind == "list_item"
                pieces.append("\n" if same_list else "\n\n")
            pieces.append(text)
            prev = part
        return "".join(pieces)

    def select_message(self, message_id: str) -> None:
        """Select all the text of one message's body (header excluded)."""
        row = self._model.row_of(message_id)
        if row < 0:
            return
        layout = self._realize_all(row)
        parts = layout.parts()
        first = 1 if layout.body else 0
        last = len(layout.body) if layout.body else 0
        self._sel_anchor = _TextPos(message_id, first, 0)
        self._sel_cursor = _TextPos(message_id, last, _part_end(parts[last]))
        self._focus_message = message_id
        self.viewport().update()

    def copy_selection(self) -> bool:
        """Copy the selection to the clipboard; False if there is none."""
        text = self.selected_text()
        if not text:
            return False
        QGuiApplication.clipboard().setText(text)
        self.copy_done.emit("selection")
        return True

    # ---- actions

    def copy_message(self, message_id: str) -> bool:
        item = self._model.item(message_id)
        if item is None:
            return False
        QGuiApplication.clipboard().setText(strip_invisible(item.text))
        self.copy_done.emit("message")
        return True

    def copy_code(self, message_id: str, part: _Part, href: str) -> bool:
        codes = part.block.codes if part.block is not None else ()
        try:
            code = codes[int(href[len(_ANCHOR_COPY_CODE) :])]
        except (ValueError, IndexError):
            return False
        QGuiApplication.clipboard().setText(strip_invisible(code, code=True))
        self.copy_done.emit("code")
        return True

    def activate_anchor(self, hit: _Hit) -> None:
        href = hit.anchor
        if href.startswith(_ANCHOR_COPY_MESSAGE):
            self.copy_message(hit.message_id)
        elif href.startswith(_ANCHOR_COPY_CODE):
            self.copy_code(hit.message_id, hit.part, href)
        elif href.startswith(_ANCHOR_RETRY):
            self.retry_requested.emit(hit.message_id)
        elif href.startswith(_ANCHOR_ACTION):
            self.message_action.emit(hit.message_id, href[len(_ANCHOR_ACTION) :])
        elif href.startswith(CITE_SCHEME):
            n = _cite_number(href)
            if n is not None and n in _citations_of(self._model.item_at(hit.row)):
                self.citation_activated.emit(hit.message_id, n)
        elif href.startswith(_ANCHOR_INTERNAL):
            self.footer_activated.emit(hit.message_id, href)
        elif link_is_openable(href):
            self.link_activated.emit(href)
        else:  # defensive: the renderer emits no other anchors
            log.warning("ignored a link that may not be opened: %s", display_url(href))

    # ---- mouse and keyboard

    def mousePressEvent(self, event: QMouseEvent) -> None:
        """Start a selection, or remember the anchor under the pointer for the release."""
        if event.button() != Qt.MouseButton.LeftButton:
            super().mousePressEvent(event)
            return
        self.setFocus(Qt.FocusReason.MouseFocusReason)
        hit = self._hit(event.position())
        self._press = hit
        self._press_pos = event.position().toPoint()
        self._dragging = False
        if hit is None:
            self._clear_selection()
        else:
            self._focus_message = hit.message_id
            self.message_focused.emit(hit.message_id)
            # Also on a link: a click activates it on release, a drag selects from here.
            pos = self._text_pos(hit)
            if (
                event.modifiers() & Qt.KeyboardModifier.ShiftModifier
                and self._sel_anchor is not None
                and self._sel_anchor.message_id == hit.message_id
            ):
                self._sel_cursor = pos
            else:
                self._sel_anchor = self._sel_cursor = pos
        self.viewport().update()

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        """Extend the selection while dragging; show the right cursor while hovering."""
        pos = event.position()
        if event.buttons() & Qt.MouseButton.LeftButton and self._press is not None:
            if (pos.toPoint() - self._press_pos).manhattanLength() >= 3:
                self._dragging = True
            if self._dragging:
                self._drag_to(pos)
            return
        hit = self._hit(pos)
        self._set_hover(hit.message_id if hit is not None else None)
        if hit is not None and hit.anchor:
            self.viewport().setCursor(Qt.CursorShape.PointingHandCursor)
        elif hit is not None and 0 <= hit.local.y() <= hit.part.height:
            self.viewport().setCursor(Qt.CursorShape.IBeamCursor)
        else:
            self.viewport().setCursor(Qt.CursorShape.ArrowCursor)

    def _drag_to(self, pos: QPointF) -> None:
        vh = self.viewport().height()
        if pos.y() < 0 or pos.y() > vh:  # drag past an edge: scroll along
            over = pos.y() if pos.y() < 0 else pos.y() - vh
            self._set_scroll(self._scroll_y() + over)
            self._follow = self.verticalScrollBar().value() >= self.verticalScrollBar().maximum()
        if self._sel_anchor is None:
            self.viewport().update()
            return
        row = self._model.row_of(self._sel_anchor.message_id)
        if row < 0:
            return
        layout = self._layout_for(row)
        y = pos.y() + self._scroll_y()
        parts = layout.parts()
        top = self._tops[row]
        if y < top:
            self._sel_cursor = _TextPos(layout.message_id, 0, 0)
        elif y >= top + layout.height:
            last = len(parts) - 1
            self._sel_cursor = _TextPos(layout.message_id, last, _part_end(parts[last]))
        else:
            col_x, _ = self._column()
            ly = y - top
            index = self._part_index_at(parts, ly)
            part = parts[index]
            local = QPointF(pos.x() - col_x - self._px(_PAD_EM), ly - part.top)
            hit = _Hit(row, layout.message_id, layout, index, part, local, "")
            self._sel_cursor = self._text_pos(hit)
        self.viewport().update()

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        """Activate the anchor pressed if the pointer did not move off it."""
        if event.button() != Qt.MouseButton.LeftButton:
            super().mouseReleaseEvent(event)
            return
        press, self._press = self._press, None
        if press is not None and press.anchor and not self._dragging:
            hit = self._hit(event.position())
            if hit is not None and hit.anchor == press.anchor and hit.row == press.row:
                self.activate_anchor(hit)
        self._dragging = False

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:
        """Select the word under the pointer."""
        hit = self._hit(event.position())
        if hit is None or hit.anchor or hit.part.doc is None:
            return
        pos = self._text_pos(hit)
        cursor = QTextCursor(hit.part.doc)
        cursor.setPosition(pos.pos)
        cursor.select(QTextCursor.SelectionType.WordUnderCursor)
        self._sel_anchor = _TextPos(hit.message_id, hit.part_index, cursor.selectionStart())
        self._sel_cursor = _TextPos(hit.message_id, hit.part_index, cursor.selectionEnd())
        self._focus_message = hit.message_id
        self.viewport().update()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        """Copy, select all (in the focused message), Home/End, Alt+Up/Down between messages."""
        alt = event.modifiers() & Qt.KeyboardModifier.AltModifier
        if alt and event.key() in (Qt.Key.Key_Up, Qt.Key.Key_Down):
            self.move_focus(-1 if event.key() == Qt.Key.Key_Up else 1)
            return
        if event.matches(QKeySequence.StandardKey.Copy):
            self.copy_selection()
            return
        if event.matches(QKeySequence.StandardKey.SelectAll):
            if self._focus_message is not None:
                self.select_message(self._focus_message)
            return
        if (
            event.key() == Qt.Key.Key_End
            and event.modifiers() & Qt.KeyboardModifier.ControlModifier
        ):
            self.scroll_to_bottom()
            return
        if (
            event.key() == Qt.Key.Key_Home
            and event.modifiers() & Qt.KeyboardModifier.ControlModifier
        ):
            self._follow = False
            self._set_scroll(0)
            return
        super().keyPressEvent(event)

    def focusInEvent(self, event: QFocusEvent) -> None:
        """Keyboard focus shows the focused message's actions (the newest one at first)."""
        super().focusInEvent(event)
        if self._focus_message is None or self._model.row_of(self._focus_message) < 0:
            n = self._model.rowCount()
            self._focus_message = self._model.item_at(n - 1).message_id if n else None
        self._update_header(self._focus_message)

    def focusOutEvent(self, event: QFocusEvent) -> None:
        """Hide the focused message's actions."""
        super().focusOutEvent(event)
        self._update_header(self._focus_message)

    def viewportEvent(self, event: QEvent) -> bool:
        """Show the full (punycode) URL as the tooltip of a link, and footer tooltips."""
        if event.type() == QEvent.Type.Leave:
            self._set_hover(None)
        if event.type() == QEvent.Type.ToolTip:
            help_event = cast(QHelpEvent, event)
            hit = self._hit(QPointF(help_event.pos()))
            tip = self._footer_tooltip(hit) if hit is not None else None
            if tip:
                QToolTip.showText(help_event.globalPos(), tip, self)
            elif hit is not None and hit.anchor and link_is_openable(hit.anchor):
                QToolTip.showText(help_event.globalPos(), display_url(hit.anchor), self)
            elif hit is not None and hit.anchor.startswith(CITE_SCHEME):
                # A citation in the text: say which source it is before it is clicked.
                label = _citation_label(self._model.item_at(hit.row), hit.anchor)
                if label:
                    QToolTip.showText(help_event.globalPos(), reveal_invisible(label), self)
                else:
                    QToolTip.hideText()
            else:
                QToolTip.hideText()
            return True
        return super().viewportEvent(event)

    def _footer_tooltip(self, hit: _Hit) -> str | None:
        """The tooltip of the footer line under the pointer (usage details), if any."""
        if hit.part.kind != "footer" or not hit.layout.footer:
            return None
        index = hit.part_index - (len(hit.layout.parts()) - len(hit.layout.footer))
        footer = hit.layout.footer_items
        if 0 <= index < len(footer):
            return footer[index].tooltip
        return None

    def move_focus(self, step: int) -> str | None:
        """Focus the previous (-1) or next (+1) message, show its actions, scroll to it."""
        n = self._model.rowCount()
        if not n:
            return None
        row = self._model.row_of(self._focus_message) if self._focus_message else -1
        row = n - 1 if row < 0 else min(max(0, row + step), n - 1)
        old, self._focus_message = self._focus_message, self._model.item_at(row).message_id
        self._update_header(old)
        top = self._tops[row]
        y0, vh = self._scroll_y(), self.viewport().height()
        if top < y0 or top + self._em * 2 > y0 + vh:
            self._follow = False
            self._set_scroll(top - self._gap(_MESSAGE_GAP_EM))
            self._settle()
        self._update_header(self._focus_message)
        self.message_focused.emit(self._focus_message)
        return self._focus_message

    def focus_point(self) -> QPointF | None:
        """A viewport point in the focused message's header (where its menu opens)."""
        if self._focus_message is None:
            return None
        rect = self.message_rect(self._focus_message)
        if rect is None:
            return None
        return QPointF(rect.left() + self._px(_PAD_EM) + 2, rect.top() + self._gap(_PAD_EM) + 2)

    def contextMenuEvent(self, event: QContextMenuEvent) -> None:
        """Offer copy actions for what is under the pointer (the menu key: the focused one)."""
        point = self.focus_point()
        if event.reason() == QContextMenuEvent.Reason.Keyboard and point is not None:
            # As if clicked on the focused message's header, so the window's actions (edit,
            # regenerate, versions) are offered too.
            local = point.toPoint()
            QGuiApplication.sendEvent(
                self.viewport(),
                QContextMenuEvent(
                    QContextMenuEvent.Reason.Mouse, local, self.viewport().mapToGlobal(local)
                ),
            )
            return
        menu = self.build_context_menu(QPointF(event.pos()))
        if menu is not None:
            menu.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
            menu.popup(event.globalPos())

    def build_context_menu(self, pos: QPointF) -> QMenu | None:
        """The context menu for a viewport position (None over empty space)."""
        hit = self._hit(pos)
        if hit is None:
            return None
        menu = QMenu(self)
        copy = menu.addAction("Copy")
        copy.setShortcut(QKeySequence(QKeySequence.StandardKey.Copy))
        copy.setEnabled(self.has_selection())
        copy.triggered.connect(self.copy_selection)
        if hit.part.kind == "fence" and hit.part.block and hit.part.block.codes:
            part = hit.part
            menu.addAction("Copy code").triggered.connect(
                lambda: self.copy_code(hit.message_id, part, f"{_ANCHOR_COPY_CODE}0")
            )
        if hit.anchor and link_is_openable(hit.anchor):
            href = hit.anchor
            menu.addAction("Copy link address").triggered.connect(lambda: self._copy_link(href))
        mid = hit.message_id
        menu.addAction("Copy message").triggered.connect(lambda: self.copy_message(mid))
        menu.addSeparator()
        menu.addAction("Select message text").triggered.connect(lambda: self.select_message(mid))
        return menu

    def _copy_link(self, href: str) -> None:
        QGuiApplication.clipboard().setText(href)
        self.copy_done.emit("link")

    # ---- introspection (tests, benchmarks, the main window's status)

    def active_streams(self) -> list[str]:
        """Ids of messages still streaming or still rendering their buffered text."""
        return list(self._streams)

    def block_counts(self, message_id: str) -> tuple[int, int]:
        """(rendered, total) Markdown blocks of a message's current layout (lazy answers)."""
        row = self._model.row_of(message_id)
        if row < 0:
            return (0, 0)
        layout = self._layout_for(row)
        return len(layout.body) - layout.lazy, len(layout.body)

    def rendered_message_ids(self) -> list[str]:
        """Ids of the messages that currently have rendered documents (cached or streaming)."""
        ids = list(self._layouts)
        ids += [m for m, s in self._streams.items() if s.layout is not None and m not in ids]
        return ids

    def rendered_text(self, message_id: str) -> str:
        """The text a message shows on screen (header, body, error line, footer).

        One part per line: what a person would read, invisible characters shown as markers.

        Lays the message out if needed. Useful for tests and accessibility descriptions.
        """
        row = self._model.row_of(message_id)
        if row < 0:
            return ""
        stream = self._streams.get(message_id)
        if message_id in self._dirty_streams or (stream and self._backlog(message_id, stream)):
            self._dirty_streams.add(message_id)
            self.flush_streams()
        layout = self._realize_all(row)
        return "\n".join(part.doc.toPlainText() for part in layout.parts() if part.doc)

    def message_rect(self, message_id: str) -> QRectF | None:
        """The rectangle of a message in viewport coordinates (None if unknown)."""
        row = self._model.row_of(message_id)
        if row < 0:
            return None
        self._settle()
        col_x, col_w = self._column()
        return QRectF(col_x, self._tops[row] - self._scroll_y(), col_w, self._heights[row])

    def anchor_point(self, message_id: str, href_prefix: str) -> QPointF | None:
        """Viewport point of the first anchor in a message whose href starts with a prefix.

        Lets tests and UI automation click links and buttons where a person would. The point
        is verified with ``anchorAt`` before it is returned.
        """
        row = self._model.row_of(message_id)
        if row < 0:
            return None
        self._settle()
        layout = self._realize_all(row)
        col_x, _ = self._column()
        origin_y = self._tops[row] - self._scroll_y()
        for part in layout.parts():
            if part.doc is None:
                continue
            point = _anchor_in_doc(part.doc, href_prefix)
            if point is not None:
                return QPointF(
                    col_x + self._px(_PAD_EM) + point.x(), origin_y + part.top + point.y()
                )
        doc, at = self._row_actions(row, layout)  # shown when the pointer gets there
        point = _anchor_in_doc(doc, href_prefix)
        if point is not None:
            return QPointF(col_x + at.x() + point.x(), origin_y + at.y() + point.y())
        return None

    def actions_shown(self, message_id: str) -> bool:
        """Whether a message shows its actions now (hovered, or focused with the focus)."""
        return self._actions_shown(message_id)


def _cite_number(href: str) -> int | None:
    digits = href[len(CITE_SCHEME) :]
    return int(digits) if digits.isascii() and digits.isdigit() and len(digits) <= 4 else None


def _citations_of(item: ChatItem) -> frozenset[int]:
    """The citation numbers an answer really has: its footer's source lines."""
    if item.role != ChatRole.ASSISTANT or not item.footer:
        return frozenset()
    found = set()
    for f in item.footer:
        if f.kind == _CITATION_KIND and f.href and f.href.startswith(CITE_SCHEME):
            n = _cite_number(f.href)
            if n is not None:
                found.add(n)
    return frozenset(found)


def _inline_of(item: ChatItem) -> tuple[FooterItem, ...]:
    """The footer items an answer shows inside its text (tool cards with an offset)."""
    if item.role != ChatRole.ASSISTANT:
        return ()
    return tuple(f for f in item.footer if f.offset is not None)


def _card_groups(inline: Sequence[FooterItem], text_len: int) -> list[tuple[int, list[FooterItem]]]:
    """Cards (a tool line and its detail lines) with where they go, in the text's order."""
    groups: list[tuple[int, list[FooterItem]]] = []
    for f in inline:
        offset = min(max(0, f.offset or 0), text_len)
        if f.kind == "tool_detail" and groups:
            groups[-1][1].append(f)
        else:
            groups.append((offset, [f]))
    groups.sort(key=lambda g: g[0])  # stable: calls at one place keep the model's order
    return groups


def _citation_label(item: ChatItem, href: str) -> str:
    for f in item.footer:
        if f.kind == _CITATION_KIND and f.href == href:
            return f.text
    return ""


def _anchor_in_doc(doc: QTextDocument, href_prefix: str) -> QPointF | None:
    """Document coordinates of the middle of the first matching anchor."""
    doc_layout = doc.documentLayout()
    block = doc.begin()
    while block.isValid():
        it = block.begin()
        while not it.atEnd():
            frag = it.fragment()
            fmt = frag.charFormat()
            if fmt.isAnchor() and fmt.anchorHref().startswith(href_prefix):
                text_layout = block.layout()
                rel = frag.position() - block.position() + frag.length() // 2
                line = text_layout.lineForTextPosition(rel)
                # PySide6 returns (x, position) for this overload.
                x = float(cast(tuple[float, int], line.cursorToX(rel))[0])
                rect = doc_layout.blockBoundingRect(block)
                origin = rect.topLeft() - text_layout.boundingRect().topLeft()
                point = QPointF(origin.x() + x, origin.y() + line.y() + line.height() / 2)
                if doc_layout.anchorAt(point) == fmt.anchorHref():
                    return point
            it += 1
        block = block.next()
    return None


def _clamp_to_code(doc: QTextDocument, a: int, b: int) -> tuple[int, int]:
    """Clamp a selection in a code block document to the code cell (no header text)."""
    for frame in doc.rootFrame().childFrames():
        outer = frame if isinstance(frame, QTextTable) else None
        inner = None
        if outer is not None:
            for child in outer.childFrames():
                if isinstance(child, QTextTable):
                    inner = child
                    break
        table = inner or outer
        if table is not None and table.rows() >= 2:
            cell = table.cellAt(1, 0)
            lo = cell.firstCursorPosition().position()
            hi = cell.lastCursorPosition().position()
            return max(a, lo), min(b, hi)
    return a, b


# ---------------------------------------------------------------- the public widget


class ChatView(QWidget):
    """The conversation: rendered messages, streaming updates, copy and link handling.

    Data goes in through the methods below; what the person does comes out as signals. It
    knows nothing of core: the main window feeds it from the chat controller.

    Args:
        parent: Optional parent widget.
    """

    # ---- Signals

    sig_link_activated = Signal(str)
    """An http(s) link was clicked: the URL (ask before opening; show ``display_url(url)``)."""
    sig_retry_requested = Signal(str)
    """Retry was clicked on a message's error line: the message id."""
    sig_copy_done = Signal(str)
    """Something was copied to the clipboard: ``code``, ``message``, ``selection`` or ``link``."""
    sig_footer_activated = Signal(str, str)
    """A ``parley-…:`` link in a footer item was clicked: (message id, href)."""
    sig_citation_activated = Signal(str, int)
    """A citation ``[n]`` (in an answer's text or its source list) was clicked: (message id, n).
    Only numbers the answer's footer lists are emitted."""
    sig_message_focused = Signal(str)
    """The person clicked into a message: its id (e.g. to show that answer's sources)."""
    sig_message_action = Signal(str, str)
    """An action on a message was clicked: (message id, ``edit``, ``regenerate``, ``delete``,
    ``version-prev`` or ``version-next``). Copy is done by the view itself."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._model = ChatModel(self)
        self._canvas = _ChatCanvas(self._model, self)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self._canvas)
        self.setFocusProxy(self._canvas)
        self._canvas.link_activated.connect(self.sig_link_activated)
        self._canvas.retry_requested.connect(self.sig_retry_requested)
        self._canvas.copy_done.connect(self.sig_copy_done)
        self._canvas.footer_activated.connect(self.sig_footer_activated)
        self._canvas.citation_activated.connect(self.sig_citation_activated)
        self._canvas.message_focused.connect(self.sig_message_focused)
        self._canvas.message_action.connect(self.sig_message_action)

    # ---- Public API

    def model(self) -> ChatModel:
        """The model behind the view (read it; change it through this class)."""
        return self._model

    def set_messages(self, items: Iterable[ChatItem]) -> None:
        """Show a conversation (replaces everything; rendering is lazy)."""
        self._model.set_items(items)

    def append(self, item: ChatItem) -> None:
        """Add a message at the end; a message from the person scrolls to the bottom.

        Raises:
            ValueError: If a message with this id is already shown.
        """
        self._model.append(item)
        if item.role == ChatRole.USER:
            self._canvas.scroll_to_bottom()
        if item.status == MessageStatus.STREAMING:
            self._canvas.begin_stream(item.message_id)

    def begin_stream(self, message_id: str) -> None:
        """Mark a message as streaming (an empty assistant message is added if unknown)."""
        if self._model.row_of(message_id) < 0:
            self._model.append(ChatItem(message_id, ChatRole.ASSISTANT))
        self._canvas.begin_stream(message_id)
        self._model.update(message_id, status=MessageStatus.STREAMING, error=None)

    def append_delta(self, message_id: str, text: str) -> None:
        """Add streamed text to a message; rendering is coalesced to ~30 updates a second.

        Deltas for a message that is no longer shown (the chat was cleared) are dropped.
        """
        if not isinstance(text, str):
            raise TypeError(f"delta must be str, not {type(text).__name__}")
        if self._model.append_text(message_id, text):
            self._canvas.note_delta(message_id)

    def end_stream(
        self,
        message_id: str,
        status: MessageStatus | str = MessageStatus.COMPLETE,
        error: str | None = None,
        *,
        retryable: bool = False,
    ) -> None:
        """Finish a stream: render what is left and set the final status (and error line)."""
        if self._model.row_of(message_id) < 0:
            return
        self._canvas.end_stream(message_id)
        self._model.update(
            message_id, status=MessageStatus(status), error=error, retryable=retryable
        )

    def set_error(self, message_id: str, text: str, retryable: bool) -> None:
        """Show an error line under a message (with Retry if ``retryable``)."""
        if self._model.row_of(message_id) < 0:
            return
        self._canvas.end_stream(message_id)
        self._model.update(message_id, status=MessageStatus.ERROR, error=text, retryable=retryable)

    def set_answered_by(self, message_id: str, model: str | None) -> None:
        """Show "answered by <model>" (a fallback model answered), or hide it with None."""
        self._model.update(message_id, answered_by=model)

    def set_actions_enabled(self, enabled: bool) -> None:
        """Grey out Edit, Regenerate, Delete while a turn runs (Copy stays)."""
        self._canvas.set_actions_enabled(enabled)

    def set_versions(self, message_id: str, versions: tuple[int, int] | None) -> None:
        """Show the version switcher ``‹ 2/3 ›`` of a message (None hides it)."""
        item = self._model.item(message_id)
        if item is not None and item.versions != versions:
            self._model.update(message_id, versions=versions)

    def set_usage(self, message_id: str, model: str | None, usage: FooterItem | None) -> None:
        """Name the model that wrote an answer and show its tokens and cost line."""
        item = self._model.item(message_id)
        if item is None:
            return
        footer = tuple(f for f in item.footer if f.kind != "usage")
        if usage is not None:
            footer = (*footer, usage)
        if item.model != model or item.footer != footer:
            self._model.update(message_id, model=model, footer=footer)

    def set_footer(self, message_id: str, items: Sequence[FooterItem]) -> None:
        """Replace the footer items (tool calls, citations, notes) under a message."""
        self._model.update(message_id, footer=tuple(items))

    def item(self, message_id: str) -> ChatItem | None:
        """The current data of a message (streamed text included), or None."""
        return self._model.item(message_id)

    def clear(self) -> None:
        """Remove every message."""
        self._model.clear()

    def flush(self) -> None:
        """Render pending streamed text now instead of at the next timer tick."""
        self._canvas.flush_streams()

    def scroll_to_bottom(self) -> None:
        """Jump to the newest message and follow the stream again."""
        self._canvas.scroll_to_bottom()

    def is_following(self) -> bool:
        """Whether new text keeps the view scrolled to the bottom."""
        return self._canvas.is_following()

    def scroll_anchor(self) -> tuple[str, float] | None:
        """Where the view is scrolled: (top message, pixels into it), or None at the end."""
        return self._canvas.scroll_anchor()

    def scroll_to_anchor(self, message_id: str, offset: float) -> bool:
        """Scroll back to a :meth:`scroll_anchor` (False when that message is not shown)."""
        return self._canvas.scroll_to_anchor(message_id, offset)

    def selected_text(self) -> str:
        """The selected text ("" if none)."""
        return self._canvas.selected_text()

    def copy_message(self, message_id: str) -> bool:
        """Copy a message's raw Markdown (invisible characters removed) to the clipboard."""
        return self._canvas.copy_message(message_id)

    def canvas(self) -> _ChatCanvas:
        """The scroll area that paints the messages (for event filters and tests)."""
        return self._canvas
