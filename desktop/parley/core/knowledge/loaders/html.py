"""HTML with the standard library's parser: the page's content, without its chrome or scripts.

No DTDs, no external entities, nothing fetched.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

from parley.core.knowledge.loaders.base import Block

# ---------------------------------------------------------------------------- HTML

_HTML_SKIP = frozenset(
    {"script", "style", "noscript", "template", "nav", "aside", "svg", "math", "head", "title",
     "button", "select", "textarea", "iframe", "object", "embed", "canvas", "dialog"}
)  # fmt: skip
_HTML_PAGE_CHROME = frozenset({"header", "footer"})
_HTML_CONTENT = frozenset({"article", "main"})
_HTML_VOID = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param",
     "source", "track", "wbr"}
)  # fmt: skip
_HTML_BLOCK = frozenset(
    {"p", "div", "section", "article", "main", "blockquote", "figure", "figcaption", "address",
     "details", "summary", "dl", "dt", "dd", "ul", "ol", "li", "body", "html", "form",
     "fieldset", "legend", "caption", "center", "hr"}
)  # fmt: skip
_HTML_SKIP_ROLES = frozenset({"navigation", "banner", "contentinfo", "complementary", "search"})
_HTML_SKIP_CLASSES = frozenset(
    {"navbar", "sidebar", "breadcrumb", "breadcrumbs", "cookie-banner", "cookie-consent",
     "skip-link", "site-header", "site-footer", "footer", "navheader", "navfooter",
     "headerlink"}
)  # fmt: skip
_WS = re.compile(r"\s+")


class _HtmlText(HTMLParser):
    """Visible text of an HTML page as blocks; boilerplate dropped.

    The stdlib parser never loads DTDs or external resources, and only knows HTML's own
    named character references, so there is no entity expansion to abuse.
    """

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[Block] = []
        self._stack: list[tuple[str, bool]] = []  # (tag, starts a skipped region)
        self._skip = 0
        self._buf: list[str] = []
        self._kind = "paragraph"
        self._level = 0
        self._line: int | None = None
        self._pre = 0
        self._tables: list[list[list[str]]] = []  # open tables: rows of cell texts
        self._cells: list[list[str] | None] = []  # each open table's open cell, if any
        self._links: list[int] = []  # stack positions of the open <a href> elements
        self._link_chars = 0  # link text in the open block
        self._table_links: list[int] = []  # link text in each open table
        self._in_title = False
        self._title: list[str] = []

    @property
    def title(self) -> str:
        """The page's ``<title>``, whitespace collapsed."""
        return _WS.sub(" ", "".join(self._title)).strip()[:300]

    # ---- helpers
    @property
    def _cell(self) -> list[str] | None:
        return self._cells[-1] if self._cells else None

    def _flush(self) -> None:
        if self._cell is not None:
            return  # text inside a table cell belongs to the cell
        raw = "".join(self._buf)
        text = raw.strip("\n").rstrip() if self._pre else _WS.sub(" ", raw).strip()
        if text:
            end = self.getpos()[0]
            start = self._line if self._line is not None else end
            kind = self._kind if not self._pre else "code"
            level = self._level if kind == "heading" else 0
            self.blocks.append(
                Block(
                    text,
                    kind,
                    level=level,
                    line_start=start,
                    line_end=max(start, end),
                    link_chars=min(self._link_chars, len(text)),
                )
            )
        self._buf = []
        self._line = None
        self._link_chars = 0

    def _skips(self, tag: str, attrs: list[tuple[str, str | None]]) -> bool:
        if tag in _HTML_SKIP:
            return True
        if tag in _HTML_PAGE_CHROME and not any(
            t in _HTML_CONTENT or t == "section" for t, _ in self._stack
        ):
            return True
        a = {k: (v or "") for k, v in attrs}
        if "hidden" in a or a.get("aria-hidden", "").lower() == "true":
            return True
        if a.get("role", "").lower() in _HTML_SKIP_ROLES:
            return True
        if "display:none" in a.get("style", "").replace(" ", "").lower():
            return True
        classes = set(a.get("class", "").lower().split()) | {a.get("id", "").lower()}
        return bool(classes & _HTML_SKIP_CLASSES)

    # ---- parser callbacks
    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _HTML_VOID:
            if tag == "br" and not self._skip:
                self.handle_data("\n" if self._pre else " ")
            if tag == "hr" and not self._skip:
                self._flush()
            return
        # Implicitly closed elements: a new <p>/<li>/<tr>/<td> ends the open one.
        if tag in ("p", "li", "dt", "dd", "tr", "td", "th", "option") and self._stack:
            closers = {"li": ("ul", "ol"), "tr": ("table",), "td": ("tr",), "th": ("tr",)}
            scope = closers.get(tag, ())
            for k in range(len(self._stack) - 1, -1, -1):
                t = self._stack[k][0]
                if t in scope:
                    break
                if t == tag or (tag in ("td", "th") and t in ("td", "th")):
                    self.handle_endtag(t)
                    break
                if tag == "p" or t in _HTML_BLOCK:
                    break
        skip = self._skips(tag, attrs)
        if tag == "title" and not self._title:
            self._in_title = True
        self._stack.append((tag, skip))
        if skip:
            self._skip += 1
            return
        if self._skip:
            return
        if tag == "a" and any(k == "href" for k, _ in attrs):
            self._links.append(len(self._stack) - 1)
        if tag in ("h1", "h2", "h3", "h4", "h5", "h6"):
            self._flush()
            self._kind, self._level = "heading", int(tag[1])
        elif tag == "pre":
            self._flush()
            self._pre += 1
        elif tag == "table":
            self._flush()
            self._tables.append([])
            self._cells.append(None)
            self._table_links.append(0)
        elif tag == "tr" and self._tables:
            self._tables[-1].append([])
        elif tag in ("td", "th") and self._tables:
            if not self._tables[-1]:
                self._tables[-1].append([])
            self._cells[-1] = []
        elif tag == "li":
            self._flush()
            self._kind = "list"
        elif tag in _HTML_BLOCK:
            self._flush()
            self._kind = "paragraph"

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        if tag in _HTML_VOID or not any(t == tag for t, _ in self._stack):
            return  # stray end tag: ignore, as browsers do
        while self._stack:
            t, skip = self._stack.pop()
            if skip:
                self._skip -= 1
            elif not self._skip:
                self._close(t)
            if t == tag:
                break

    def _close(self, tag: str) -> None:
        if tag == "a" and self._links and self._links[-1] >= len(self._stack):
            self._links.pop()
        if tag in ("h1", "h2", "h3", "h4", "h5", "h6"):
            self._flush()
            self._kind, self._level = "paragraph", 0
        elif tag == "pre":
            self._flush()
            self._pre = max(0, self._pre - 1)
        elif tag in ("td", "th") and self._tables and self._cell is not None:
            cell = _WS.sub(" ", "".join(self._cell)).strip()
            self._cells[-1] = None
            self._tables[-1][-1].append(cell)
        elif tag == "table" and self._tables:
            rows = self._tables.pop()
            self._cells.pop()
            links = self._table_links.pop() if self._table_links else 0
            text = "\n".join(" | ".join(r) for r in rows if any(r))
            if text and self._cell is not None:  # a table nested in a cell: flatten into it
                self._cell.append(" " + " / ".join(" | ".join(r) for r in rows if any(r)) + " ")
                if self._table_links:
                    self._table_links[-1] += links
            elif text:
                line = self.getpos()[0]
                self.blocks.append(
                    Block(
                        text,
                        "table",
                        line_start=self._line or line,
                        line_end=line,
                        link_chars=min(links, len(text)),
                    )
                )
                self._line = None
        elif tag == "li" or tag in _HTML_BLOCK:
            self._flush()
            self._kind = "paragraph"

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self._title.append(data)
        if self._skip:
            return
        if self._links:
            n = len(data.strip())
            if self._cell is not None and self._table_links:
                self._table_links[-1] += n
            else:
                self._link_chars += n
        if self._cell is not None:
            self._cell.append(data)
            if self._line is None:
                self._line = self.getpos()[0]
            return
        if self._line is None and data.strip():
            self._line = self.getpos()[0]
        self._buf.append(data)

    def close(self) -> None:
        super().close()
        while self._tables:
            self._close("table")
        self._flush()


def _html_blocks(text: str) -> list[Block]:
    return _html_parse(text)[0]


def _html_parse(text: str) -> tuple[list[Block], str]:
    """Blocks and ``<title>`` of an HTML page."""
    parser = _HtmlText()
    parser.feed(text)
    parser.close()
    return parser.blocks, parser.title
