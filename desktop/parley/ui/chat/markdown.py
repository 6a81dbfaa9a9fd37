"""Markdown → Qt rich-text HTML for the chat view: safe, highlighted and incremental.

Why ~900 lines in one file: the token walker (``_HtmlWriter``), the renderer and the
incremental splitter share one allow-list and one block model (a streamed message must end up
identical to one rendered whole), so they change together. Safe text (invisible characters,
links) has its own module, :mod:`parley.ui.chat.safe_text`.

Model output is untrusted, so this module is the one place that decides what a message may
make Qt do. It deliberately imports nothing from Qt (the view turns the HTML into documents):

- **Parser.** markdown-it-py (CommonMark + GFM tables and strikethrough) with raw HTML
  disabled, rendered by our own token walker rather than markdown-it's HTML renderer, so the
  output is allow-listed by construction: only the tags written below can appear, and every
  piece of text goes through :func:`html.escape`. Code is highlighted by Pygments with inline
  styles (Qt's rich-text subset understands ``<span style="color:…">``). Chosen over
  ``QTextDocument.setMarkdown`` after measuring (``tests/bench/bench_render.py``): md4c is
  faster per call but gives code no highlighting or background, no copy buttons and no hook to
  sanitise links, and it re-parses the whole text on every call.
- **Links.** Only ``http``/``https`` URLs with a real host and no credentials become anchors
  (:func:`link_is_openable`); everything else renders as plain text. :func:`display_url` gives
  the form a confirmation dialog should show (punycode host, invisible characters revealed).
  Both live in :mod:`parley.ui.chat.safe_text` with the invisible-character rules below.
- **Images** are never loaded: they become the text ``[image: alt](url)``.
- **Citations.** A renderer made with :meth:`MarkdownRenderer.with_citations` turns ``[n]`` in
  prose into a ``parley-cite:n`` anchor, for the numbers it was given only (the sources a
  grounded answer really had): never inside code, links or images, and ``[9]`` without a
  source 9 stays plain text. The view emits the click; it never becomes a URL.
- **Invisible and bidi control characters** are *revealed* on screen as ``⟨U+202E⟩`` (so a
  Trojan-Source line or ASCII smuggled in tag characters cannot hide) and *stripped* from
  anything copied to the clipboard (:func:`reveal_invisible`, :func:`strip_invisible`).
  Legitimate uses survive both: ZWJ/ZWNJ between two non-ASCII characters (emoji sequences,
  Indic and Persian scripts), soft hyphens inside words of prose, and emoji tag sequences
  (subdivision flags: U+1F3F4 followed by tag letters and CANCEL TAG).
- **Streaming.** :class:`IncrementalMarkdown` splits the growing text into top-level blocks
  (and the items of a top-level list, so a long numbered list does not become one huge open
  block). A block is frozen once a later block has started on a *complete* line; frozen
  blocks are rendered exactly once, and each update only parses and renders the open tail,
  so the per-update cost does not grow with the length of the message. An unterminated code
  fence is closed virtually while it streams. Rendering a finished text in one go uses the
  same splitter, so a streamed message ends up identical to one loaded from history.

Known limitation: because blocks are parsed separately, reference-style links
(``[text][ref]`` with ``[ref]: url`` elsewhere) do not resolve across blocks; models rarely
use them and they then render as the literal text.
"""

from __future__ import annotations

import copy
import html
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from markdown_it import MarkdownIt
from markdown_it.token import Token
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexer import Lexer
from pygments.lexers import TextLexer, get_lexer_by_name
from pygments.util import ClassNotFound

from parley.ui.chat.safe_text import (
    MARK_CLOSE,
    MARK_OPEN,
    display_url,
    link_is_openable,
    reveal_invisible,
    strip_invisible,
)

__all__ = [
    "CITE_SCHEME",
    "COMMON_LANGUAGES",
    "DARK_THEME",
    "LIGHT_THEME",
    "BlockPlan",
    "IncrementalMarkdown",
    "MarkdownRenderer",
    "MarkdownTheme",
    "RenderedBlock",
    "StreamUpdate",
    "display_url",
    "link_is_openable",
    "markdown_to_html",
    "render_markdown",
    "render_plain_text",
    "reveal_invisible",
    "strip_invisible",
    "warm_up",
]

CITE_SCHEME = "parley-cite:"
"""Anchor scheme of a citation link: ``parley-cite:<n>`` (the view emits it, never opens it)."""

_CITATION = re.compile(r"\[([1-9][0-9]{0,3})\]")
"""``[n]`` as models write citations (ASCII digits only, no leading zero, at most 9999)."""

_BARE_URL = re.compile(r"(?<![\w/@.:])https?://[^\s<>\"'`]+", re.IGNORECASE)
_TRAILING_PUNCT = ".,;:!?'\"*_~"


def _split_bare_urls(text: str) -> list[tuple[str, bool]]:
    """Split text into (piece, is_url) pairs, trimming trailing punctuation off URLs."""
    if "://" not in text:
        return [(text, False)]
    pieces: list[tuple[str, bool]] = []
    last = 0
    for m in _BARE_URL.finditer(text):
        url = m.group()
        while url:
            if url[-1] in _TRAILING_PUNCT:
                url = url[:-1]
            elif url[-1] == ")" and url.count("(") < url.count(")"):
                url = url[:-1]
            else:
                break
        if not url:
            continue
        pieces.append((text[last : m.start()], False))
        pieces.append((url, True))
        last = m.start() + len(url)
    pieces.append((text[last:], False))
    return [p for p in pieces if p[0]]


# ---------------------------------------------------------------- theme


@dataclass(frozen=True)
class MarkdownTheme:
    """Colours and sizes the HTML is rendered with (the view derives one from its QPalette).

    Sizes are in logical pixels computed from font metrics by the caller, so the output
    scales with the font and the screen's device pixel ratio.
    """

    text: str = "#1f2328"
    """Body text colour (used for table text; plain text takes the painter's palette)."""
    muted: str = "#59636e"
    """Secondary text: code language labels, quotes, image placeholders."""
    link: str = "#0969da"
    """Clickable links."""
    code_background: str = "#f3f4f6"
    """Background of code blocks and inline code."""
    border: str = "#d1d9e0"
    """Code block and table borders."""
    table_header_background: str = "#f6f8fa"
    """Table header cells."""
    quote_bar: str = "#d1d9e0"
    """The bar left of a block quote."""
    warning: str = "#bc4c00"
    """Revealed invisible-character markers."""
    mono_family: str = "monospace"
    """Monospace font family for code."""
    pygments_style: str = "default"
    """Pygments style for syntax highlighting (its token colours, not its background)."""
    em: float = 16.0
    """Font height in logical pixels; paddings are derived from it."""
    dark: bool = False
    """Whether this is a dark theme."""

    def px(self, factor: float) -> int:
        """A length of ``factor`` ems in whole logical pixels (at least 1)."""
        return max(1, round(self.em * factor))


LIGHT_THEME = MarkdownTheme()
"""A light theme for tests and tools; the view builds its own from the palette."""

DARK_THEME = MarkdownTheme(
    text="#e6edf3",
    muted="#9198a1",
    link="#4493f8",
    code_background="#1e2329",
    border="#3d444d",
    table_header_background="#262c34",
    quote_bar="#3d444d",
    warning="#f0883e",
    pygments_style="github-dark",
    dark=True,
)
"""A dark theme for tests and tools."""


# ---------------------------------------------------------------- blocks


@dataclass(frozen=True)
class RenderedBlock:
    """One top-level Markdown block (or one item of a top-level list), rendered."""

    source: str
    """The Markdown source of the block (trailing blank lines removed)."""
    html: str
    """Qt rich-text HTML for the block, with zero outer margins."""
    kind: str
    """``paragraph``, ``heading``, ``fence``, ``code_block``, ``list_item``, ``table``,
    ``blockquote``, ``hr`` or ``other``."""
    space_before: float
    """Vertical gap above the block, in ems (the view converts it with font metrics)."""
    codes: tuple[str, ...] = ()
    """The code of each code block in the block, in order; anchor ``parley-copy:<i>`` copies
    ``codes[i]`` (the raw code, for the clipboard after :func:`strip_invisible`)."""


@dataclass(frozen=True)
class BlockPlan:
    """A block found by the splitter, not rendered yet (see :meth:`MarkdownRenderer.plan`)."""

    source: str
    """The Markdown source of the block."""
    kind: str
    """The block kind, as in :attr:`RenderedBlock.kind`."""
    space_before: float
    """Vertical gap above the block, in ems."""


@dataclass(frozen=True)
class StreamUpdate:
    """What changed after feeding text to :class:`IncrementalMarkdown`."""

    frozen: list[RenderedBlock] = field(default_factory=list)
    """Blocks that were finished by this update; they will never change again."""
    tail: list[RenderedBlock] = field(default_factory=list)
    """The open blocks at the end, re-rendered (replace the previous tail with these)."""
    plans: list[BlockPlan] = field(default_factory=list)
    """The blocks this update finished, unrendered (set whether or not they were rendered)."""


@dataclass(frozen=True)
class _Span:
    start: int
    """First line of the block."""
    end: int
    """Line after the block's last non-blank line."""
    kind: str
    list_sig: tuple[str, str] | None = None
    """(list type, marker) for list items: consecutive items with one signature form a list."""
    heading_level: int = 0


_GAP_BLOCK = 0.6
_GAP_HEADING = 1.0
_GAP_ITEM_TIGHT = 0.15
_GAP_ITEM_LOOSE = 0.5


def _space_before(prev: _Span | None, span: _Span, blank_between: bool) -> float:
    if prev is None:
        return 0.0
    if span.list_sig is not None and span.list_sig == prev.list_sig:
        return _GAP_ITEM_LOOSE if blank_between else _GAP_ITEM_TIGHT
    if span.kind == "heading":
        return _GAP_HEADING
    return _GAP_BLOCK


_FENCE_OPEN = re.compile(r"^( {0,3})(`{3,}|~{3,})")


def _close_fence_virtually(source: str) -> str:
    """Close an unterminated top-level code fence (and hide a half-typed closing fence)."""
    lines = source.split("\n")
    m = _FENCE_OPEN.match(lines[0])
    if not m:
        return source
    fence = m.group(2)
    if fence[0] == "`" and "`" in lines[0][m.end() :]:
        return source  # not a fence: an info string may not contain backticks
    closing = re.compile(rf"^ {{0,3}}{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$")
    if any(closing.match(line) for line in lines[1:]):
        return source
    last = lines[-1]
    if len(lines) > 1 and last.strip() and set(last.strip()) == {fence[0]}:
        lines = lines[:-1]  # a closing fence being typed: don't flash it as code
    return "\n".join([*lines, fence])


# ---------------------------------------------------------------- rendering


def _make_parser() -> MarkdownIt:
    # html=False: raw HTML is text. breaks=True: models use single newlines as line breaks.
    return MarkdownIt(
        "commonmark", {"html": False, "breaks": True, "linkify": False, "typographer": False}
    ).enable(["table", "strikethrough"])


def _make_splitter() -> MarkdownIt:
    # Block structure only: the inline pass is the expensive part and the splitter ignores it.
    return _make_parser().disable(["inline", "text_join"])


@lru_cache(maxsize=64)
def _lexer_for(language: str) -> Lexer:
    if language:
        try:
            return get_lexer_by_name(language, stripnl=False, ensurenl=False)
        except ClassNotFound:
            pass
    # No guessing: guess_lexer is slow and often wrong on snippets.
    return TextLexer(stripnl=False, ensurenl=False)


COMMON_LANGUAGES = (
    "python", "bash", "javascript", "typescript", "json", "yaml", "html", "css", "sql",
    "rust", "go", "java", "c", "cpp", "toml", "diff", "console",
)  # fmt: skip
"""Languages whose Pygments lexers :func:`warm_up` prepares ahead of the first code block."""


def warm_up(languages: Sequence[str] = COMMON_LANGUAGES) -> None:
    """Build the Pygments lexers (and the parser) ahead of time.

    A lexer compiles its regular expressions on first use: ~150 ms for Python here, which
    would otherwise stall the first code block of a streamed answer. The view runs this in a
    background thread once per process.
    """
    _make_parser().parse("warm *up* `x`")
    for language in languages:
        highlight("x\n", _lexer_for(language), _formatter_for("default"))


@lru_cache(maxsize=8)
def _formatter_for(style: str) -> HtmlFormatter:  # type: ignore[type-arg]
    try:
        return HtmlFormatter(style=style, noclasses=True, nowrap=True)
    except ClassNotFound:
        return HtmlFormatter(style="default", noclasses=True, nowrap=True)


def _esc(text: str) -> str:
    return html.escape(text, quote=True)


class MarkdownRenderer:
    """Renders Markdown blocks to safe Qt rich-text HTML with a theme.

    Args:
        theme: Colours and sizes to render with.
    """

    def __init__(self, theme: MarkdownTheme = LIGHT_THEME) -> None:
        self.theme = theme
        self._md = _make_parser()
        self._splitter = _make_splitter()
        self._formatter = _formatter_for(theme.pygments_style)
        self.citations: frozenset[int] = frozenset()
        """Citation numbers ``[n]`` that become ``parley-cite:n`` links (none by default)."""

    # ---- Public API

    def with_citations(self, numbers: Iterable[int]) -> MarkdownRenderer:
        """A renderer like this one that links ``[n]`` for each of ``numbers``.

        The parsers are shared (they hold no per-render state), so this is cheap.

        Args:
            numbers: The citation numbers that exist (the answer's sources).

        Returns:
            This renderer when the numbers are the same, else a new one.
        """
        cites = frozenset(int(n) for n in numbers)
        if cites == self.citations:
            return self
        other = copy.copy(self)
        other.citations = cites
        return other

    def render(self, text: str) -> list[RenderedBlock]:
        """Render a complete Markdown text to blocks (the same result streaming ends with)."""
        stream = IncrementalMarkdown(self)
        stream.feed(text)
        stream.finish()
        return stream.blocks

    def to_html(self, text: str) -> str:
        """Render a complete text to one HTML string (for export, tests and benchmarks)."""
        parts = []
        for block in self.render(text):
            gap = self.theme.px(block.space_before) if block.space_before else 0
            parts.append(f'<div style="margin-top:{gap}px">{block.html}</div>')
        return "".join(parts)

    # ---- Splitting (used by IncrementalMarkdown)

    def _split(self, text: str) -> list[_Span]:
        """Top-level blocks of ``text`` as line spans; top-level lists yield their items."""
        lines = text.split("\n")
        tokens = self._splitter.parse(text)
        spans: list[_Span] = []
        i = 0
        n = len(tokens)
        while i < n:
            tok = tokens[i]
            if tok.level != 0 or tok.nesting == -1 or tok.map is None:
                i += 1
                continue
            if tok.type in ("bullet_list_open", "ordered_list_open"):
                sig = (tok.type, tok.markup)
                j = i + 1
                while j < n and not (tokens[j].level == 0 and tokens[j].nesting == -1):
                    item = tokens[j]
                    if item.type == "list_item_open" and item.level == 1 and item.map:
                        spans.append(
                            _Span(*self._trim(lines, *item.map), kind="list_item", list_sig=sig)
                        )
                    j += 1
                i = j + 1
                continue
            kind = _BLOCK_KINDS.get(tok.type, "other")
            level = int(tok.tag[1]) if kind == "heading" and tok.tag[1:].isdigit() else 0
            spans.append(_Span(*self._trim(lines, *tok.map), kind=kind, heading_level=level))
            i += 1
        return spans

    @staticmethod
    def _trim(lines: list[str], start: int, end: int) -> tuple[int, int]:
        end = min(end, len(lines))
        while end > start + 1 and not lines[end - 1].strip():
            end -= 1
        return start, end

    def plan(self, text: str) -> list[BlockPlan]:
        """Split a complete text into blocks without rendering them (cheap; for lazy views).

        ``[render_block(p) for p in plan(text)]`` equals :meth:`render`.
        """
        stream = IncrementalMarkdown(self, render=False)
        stream.feed(text, render_tail=False)
        stream.finish()
        return stream.plans

    def render_block(self, plan: BlockPlan) -> RenderedBlock:
        """Render one block (its own source lines only)."""
        source = plan.source
        src = _close_fence_virtually(source) if plan.kind == "fence" else source
        tokens = self._md.parse(src)
        writer = _HtmlWriter(self.theme, self._formatter, self.citations)
        body = writer.render(tokens)
        return RenderedBlock(
            source=source,
            html=body,
            kind=plan.kind,
            space_before=plan.space_before,
            codes=tuple(writer.codes),
        )


_BLOCK_KINDS = {
    "paragraph_open": "paragraph",
    "heading_open": "heading",
    "fence": "fence",
    "code_block": "code_block",
    "table_open": "table",
    "blockquote_open": "blockquote",
    "hr": "hr",
}


class _HtmlWriter:
    """Walks markdown-it tokens and writes allow-listed Qt rich-text HTML."""

    def __init__(
        self,
        theme: MarkdownTheme,
        formatter: HtmlFormatter,  # type: ignore[type-arg]
        citations: frozenset[int] = frozenset(),
    ) -> None:
        self.t = theme
        self.formatter = formatter
        self.citations = citations
        self.codes: list[str] = []
        self.out: list[str] = []
        self._link_depth = 0
        self._link_stack: list[bool] = []

    # ---- helpers

    def text(self, content: str, *, code: bool = False) -> str:
        """Escape text and show revealed invisible characters in the warning colour."""
        revealed = reveal_invisible(content, code=code)
        if revealed is content or MARK_OPEN not in revealed:
            return _esc(revealed)
        # Colour the markers so they read as "something was hidden here", not as content.
        pieces = re.split(rf"({MARK_OPEN}[^{MARK_CLOSE}]*{MARK_CLOSE})", revealed)
        out = []
        for k, piece in enumerate(pieces):
            if k % 2:
                out.append(f'<span style="color:{self.t.warning}">{_esc(piece)}</span>')
            else:
                out.append(_esc(piece))
        return "".join(out)

    def anchor(self, href: str, label_html: str) -> str:
        return (
            f'<a href="{_esc(href)}" style="color:{self.t.link}; text-decoration:underline">'
            f"{label_html}</a>"
        )

    # ---- block level

    def render(self, tokens: Sequence[Token]) -> str:
        t = self.t
        half = t.px(0.35)
        n = len(tokens)
        for i, tok in enumerate(tokens):
            typ = tok.type
            if typ == "inline":
                self.inline(tok.children or [])
            elif typ == "paragraph_open":
                if not tok.hidden:
                    # Only paragraphs followed by more content inside a list item or quote
                    # get a bottom margin; block spacing between top-level blocks is the
                    # view's job, so the document has no outer margins.
                    after = tokens[i + 3] if i + 3 < n else None
                    last = tok.level == 0 or after is None or after.nesting == -1
                    bottom = 0 if last else half
                    self.out.append(f'<p style="margin-top:0; margin-bottom:{bottom}px">')
            elif typ == "paragraph_close":
                if not tok.hidden:
                    self.out.append("</p>")
            elif typ == "heading_open":
                self.out.append(f'<{tok.tag} style="margin-top:0; margin-bottom:{half}px">')
            elif typ == "heading_close":
                self.out.append(f"</{tok.tag}>")
            elif typ in ("bullet_list_open", "ordered_list_open"):
                tag = "ul" if typ == "bullet_list_open" else "ol"
                start = ""
                number = str(tok.attrGet("start") or "")
                if tag == "ol" and number.isdigit() and int(number) != 1:
                    start = f' start="{int(number)}"'
                self.out.append(f'<{tag}{start} style="margin-top:0; margin-bottom:0">')
            elif typ in ("bullet_list_close", "ordered_list_close"):
                self.out.append("</ul>" if typ == "bullet_list_close" else "</ol>")
            elif typ == "list_item_open":
                self.out.append('<li style="margin-top:0; margin-bottom:0">')
            elif typ == "list_item_close":
                self.out.append("</li>")
            elif typ == "blockquote_open":
                bar = t.px(0.2)
                self.out.append(
                    '<table cellspacing="0" cellpadding="0" width="100%" style="margin:0">'
                    f'<tr><td width="{bar}" bgcolor="{t.quote_bar}"></td>'
                    f'<td style="padding-left:{t.px(0.6)}px; color:{t.muted}">'
                )
            elif typ == "blockquote_close":
                self.out.append("</td></tr></table>")
            elif typ in ("fence", "code_block"):
                language = tok.info.strip().split(maxsplit=1)[0] if tok.info.strip() else ""
                self.code_block(tok.content, language)
            elif typ == "hr":
                # Qt's own <hr> ignores colours (black on a dark theme): draw a thin table.
                self.out.append(
                    f'<table width="100%" cellspacing="0" cellpadding="0" border="0"'
                    f' style="margin-top:{half}px; margin-bottom:{half}px">'
                    f'<tr><td bgcolor="{t.border}" style="font-size:1px">&nbsp;</td></tr></table>'
                )
            elif typ == "table_open":
                self.out.append(
                    f'<table border="1" cellspacing="0" cellpadding="{t.px(0.3)}" '
                    f'style="border-collapse:collapse; border-color:{t.border}; '
                    f'border-style:solid; margin:0">'
                )
            elif typ == "table_close":
                self.out.append("</table>")
            elif typ in ("thead_open", "thead_close", "tbody_open", "tbody_close"):
                continue
            elif typ == "tr_open":
                self.out.append("<tr>")
            elif typ == "tr_close":
                self.out.append("</tr>")
            elif typ in ("th_open", "td_open"):
                tag = typ[:2]
                style = tok.attrGet("style") or ""
                align = ""
                m = re.match(r"text-align:(left|right|center)$", str(style))
                if m:
                    align = f' align="{m.group(1)}"'
                bg = f' bgcolor="{t.table_header_background}"' if tag == "th" else ""
                self.out.append(f"<{tag}{align}{bg}>")
            elif typ in ("th_close", "td_close"):
                self.out.append(f"</{typ[:2]}>")
            elif typ == "html_block":  # only reachable if html were enabled: stay inert
                self.out.append(f"<p>{self.text(tok.content)}</p>")
            elif tok.content:
                self.out.append(self.text(tok.content))
        return "".join(self.out)

    def code_block(self, code: str, language: str) -> None:
        t = self.t
        index = len(self.codes)
        self.codes.append(code)
        shown = reveal_invisible(code, code=True).expandtabs(4)
        if shown.endswith("\n"):
            shown = shown[:-1]
        body = highlight(shown, _lexer_for(language.lower()), self.formatter) if shown else ""
        body = body.removesuffix("\n")
        label = _esc(language) if language else "&nbsp;"
        pad = t.px(0.45)
        # An outer one-cell table draws the frame; the inner borderless table holds the header
        # row (language, Copy) and the code, so no grid lines run between them. The view
        # relies on this shape: the code is cell (1, 0) of the first nested table.
        self.out.append(
            f'<table width="100%" cellspacing="0" cellpadding="0" border="1"'
            f' style="border-collapse:collapse; border-style:solid; border-color:{t.border};'
            f' margin:0"><tr><td bgcolor="{t.code_background}">'
            f'<table width="100%" cellspacing="0" cellpadding="{pad}" border="0">'
            f'<tr><td style="padding-bottom:0"><span style="color:{t.muted}">{label}</span></td>'
            f'<td align="right" style="padding-bottom:0">'
            f'<a href="parley-copy:{index}" style="color:{t.link}; text-decoration:none">Copy</a>'
            "</td></tr>"
            f'<tr><td colspan="2"><pre style="margin:0; white-space:pre-wrap;'
            f" font-family:'{t.mono_family}', monospace\">{body}</pre></td></tr></table>"
            "</td></tr></table>"
        )

    # ---- inline level

    def inline(self, children: Sequence[Token]) -> None:
        t = self.t
        out = self.out
        for tok in children:
            typ = tok.type
            if typ in ("text", "text_special"):
                if self._link_depth:
                    out.append(self.text(tok.content))
                else:
                    for piece, is_url in _split_bare_urls(tok.content):
                        if is_url and link_is_openable(piece):
                            out.append(self.anchor(piece, self.text(piece)))
                        elif self.citations:
                            self.cited_text(piece)
                        else:
                            out.append(self.text(piece))
            elif typ == "softbreak" or typ == "hardbreak":
                out.append("<br>")
            elif typ == "code_inline":
                out.append(
                    f'<code style="background-color:{t.code_background};'
                    f" font-family:'{t.mono_family}', monospace\">"
                    f"{self.text(tok.content, code=True)}</code>"
                )
            elif typ == "em_open":
                out.append("<em>")
            elif typ == "em_close":
                out.append("</em>")
            elif typ == "strong_open":
                out.append("<strong>")
            elif typ == "strong_close":
                out.append("</strong>")
            elif typ == "s_open":
                out.append("<s>")
            elif typ == "s_close":
                out.append("</s>")
            elif typ == "link_open":
                href = str(tok.attrGet("href") or "")
                if self._link_depth == 0 and link_is_openable(href):
                    out.append(
                        f'<a href="{_esc(href)}" style="color:{t.link}; text-decoration:underline">'
                    )
                    self._link_stack.append(True)
                else:
                    # Not openable: the label renders as plain, non-clickable text.
                    out.append("<span>")
                    self._link_stack.append(False)
                self._link_depth += 1
            elif typ == "link_close":
                if self._link_stack:
                    self._link_depth -= 1
                    out.append("</a>" if self._link_stack.pop() else "</span>")
            elif typ == "image":
                self.image(tok)
            elif typ == "html_inline":  # only if html were enabled: escape, never interpret
                out.append(self.text(tok.content))
            elif tok.content:
                out.append(self.text(tok.content))

    def cited_text(self, content: str) -> None:
        """Prose with ``[n]`` markers: known numbers become citation links, the rest text."""
        last = 0
        for m in _CITATION.finditer(content):
            n = int(m.group(1))
            if n not in self.citations:
                continue
            self.out.append(self.text(content[last : m.start()]))
            self.out.append(
                f'<a href="{CITE_SCHEME}{n}" style="color:{self.t.link}; text-decoration:none">'
                f"[{n}]</a>"
            )
            last = m.end()
        self.out.append(self.text(content[last:]))

    def image(self, tok: Token) -> None:
        # Never load anything: show what the image would have been, as text.
        src = str(tok.attrGet("src") or "")
        alt = tok.content
        label = f"[image: {alt}]({display_url(src)})"
        if self._link_depth == 0 and link_is_openable(src):
            self.out.append(self.anchor(src, self.text(label)))
        else:
            self.out.append(f'<span style="color:{self.t.muted}">{self.text(label)}</span>')


# ---------------------------------------------------------------- streaming


class IncrementalMarkdown:
    """Turns a growing Markdown text into frozen blocks plus a re-rendered open tail.

    Feed deltas as they arrive (coalesced by the caller); each call parses only the text
    after the last frozen block. Call :meth:`finish` when the stream ends.

    Args:
        renderer: The renderer (and so the theme) to render blocks with.
        render: False to only split (frozen blocks are then available as :attr:`plans`).
    """

    def __init__(self, renderer: MarkdownRenderer, *, render: bool = True) -> None:
        self._r = renderer
        self._render_blocks = render
        self._tail = ""
        self._frozen: list[RenderedBlock] = []
        self._plans: list[BlockPlan] = []
        self._prev: _Span | None = None
        self._blank_before_tail = False
        self._decided_len = 0
        self._finished = False

    # ---- Public API

    @property
    def blocks(self) -> list[RenderedBlock]:
        """All frozen blocks so far (a new list; the tail is not included)."""
        return list(self._frozen)

    @property
    def plans(self) -> list[BlockPlan]:
        """All frozen blocks so far, unrendered (a new list)."""
        return list(self._plans)

    @property
    def finished(self) -> bool:
        """:meth:`finish` was called: every block is frozen."""
        return self._finished

    @property
    def pending_text(self) -> str:
        """The unfrozen text (what the tail is rendered from)."""
        return self._tail

    def feed(self, delta: str, *, render_tail: bool = True) -> StreamUpdate:
        """Append text and return the newly frozen blocks and the re-rendered tail.

        Args:
            delta: The text that arrived since the last call (may be empty).
            render_tail: False to skip rendering the open tail (when more text is fed
                right away; call :meth:`tail` once at the end).

        Returns:
            The update to apply to the view.
        """
        if self._finished:
            raise RuntimeError("feed() after finish()")
        if "\r" in delta:
            delta = delta.replace("\r\n", "\n").replace("\r", "\n")
        self._tail += delta
        frozen: list[RenderedBlock] = []
        planned = len(self._plans)
        complete = self._tail.rfind("\n") + 1
        if complete > self._decided_len:
            # Decide on complete lines only: a half-received line ("#", "1") must not make
            # the block before it look finished and freeze it prematurely.
            spans = self._r._split(self._tail[:complete])
            if len(spans) > 1:
                lines = self._tail.split("\n")
                frozen = self._freeze(lines, spans[:-1], spans[-1].start)
                self._decided_len = 0
                complete = self._tail.rfind("\n") + 1
            self._decided_len = complete
        return StreamUpdate(
            frozen=frozen,
            tail=self._render_tail() if render_tail else [],
            plans=self._plans[planned:],
        )

    def tail(self) -> list[RenderedBlock]:
        """Render the open tail as it stands (what :meth:`feed` returns as ``tail``)."""
        return [] if self._finished else self._render_tail()

    def finish(self) -> StreamUpdate:
        """End the stream: every remaining block is frozen.

        Returns:
            The update whose ``frozen`` blocks complete the message; ``tail`` is empty.
        """
        frozen: list[RenderedBlock] = []
        planned = len(self._plans)
        if not self._finished and self._tail.strip():
            spans = self._r._split(self._tail)
            lines = self._tail.split("\n")
            frozen = self._freeze(lines, spans, len(lines))
        self._tail = ""
        self._finished = True
        return StreamUpdate(frozen=frozen, tail=[], plans=self._plans[planned:])

    # ---- internals

    def _freeze(self, lines: list[str], spans: list[_Span], cut_line: int) -> list[RenderedBlock]:
        out: list[RenderedBlock] = []
        prev_end: int | None = None
        for span in spans:
            blank = self._blank_before_tail if prev_end is None else span.start > prev_end
            if prev_end is None and span.start > 0:
                blank = True
            plan = self._plan(lines, span, blank)
            self._plans.append(plan)
            if self._render_blocks:
                out.append(self._r.render_block(plan))
            self._prev = span
            prev_end = span.end
        self._frozen.extend(out)
        if prev_end is not None:
            self._blank_before_tail = cut_line > prev_end
        self._tail = "\n".join(lines[cut_line:])
        return out

    def _plan(self, lines: list[str], span: _Span, blank_before: bool) -> BlockPlan:
        source = "\n".join(lines[span.start : span.end])
        return BlockPlan(source, span.kind, _space_before(self._prev, span, blank_before))

    def _render_tail(self) -> list[RenderedBlock]:
        if not self._tail.strip():
            return []
        spans = self._r._split(self._tail)
        lines = self._tail.split("\n")
        out: list[RenderedBlock] = []
        prev = self._prev
        prev_end: int | None = None
        for span in spans:
            blank = self._blank_before_tail if prev_end is None else span.start > prev_end
            if prev_end is None and span.start > 0:
                blank = True
            source = "\n".join(lines[span.start : span.end])
            plan = BlockPlan(source, span.kind, _space_before(prev, span, blank))
            out.append(self._r.render_block(plan))
            prev, prev_end = span, span.end
        return out


def render_markdown(text: str, theme: MarkdownTheme = LIGHT_THEME) -> list[RenderedBlock]:
    """Render a complete Markdown text to blocks with a theme.

    Args:
        text: Untrusted Markdown.
        theme: Colours and sizes.

    Returns:
        The rendered blocks, identical to what streaming the same text ends with.
    """
    return MarkdownRenderer(theme).render(text)


def markdown_to_html(text: str, theme: MarkdownTheme = LIGHT_THEME) -> str:
    """Render a complete Markdown text to one Qt rich-text HTML string.

    Args:
        text: Untrusted Markdown.
        theme: Colours and sizes.

    Returns:
        Safe HTML for ``QTextDocument.setHtml``.
    """
    return MarkdownRenderer(theme).to_html(text)


def render_plain_text(text: str, theme: MarkdownTheme = LIGHT_THEME) -> str:
    """Plain text (what a person typed) as HTML: nothing parsed, line breaks kept.

    Bare http(s) URLs become links and invisible characters are revealed, as in answers.

    Args:
        text: The text.
        theme: Colours and sizes.

    Returns:
        Safe HTML for ``QTextDocument.setHtml``.
    """
    writer = _HtmlWriter(theme, _formatter_for(theme.pygments_style))
    out = []
    for piece, is_url in _split_bare_urls(text.replace("\r\n", "\n")):
        if is_url and link_is_openable(piece):
            out.append(writer.anchor(piece, writer.text(piece)))
        else:
            out.append(writer.text(piece))
    return f'<p style="margin:0; white-space:pre-wrap">{"".join(out)}</p>'
