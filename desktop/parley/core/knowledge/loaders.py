"""Turn one file into structured text (:class:`LoadedDocument`), safely.

Two ways in:

- :func:`load_file` parses in the calling process. It is right for small plain-text files
  (bounded by the size cap) and is what the ``read_file`` tool may call for them.
- :class:`IsolatedLoader` parses risky formats (PDF, DOCX, HTML) and anything above a few MB
  in a reused worker process with a time limit and a memory cap, so a PDF bomb, a zip-bomb
  DOCX, a billion-laughs XML part, a PDF whose xref table loops or a crashing parser cannot
  hang or crash the indexer (issue 4). The worker is started with ``forkserver`` (``spawn``
  where that is missing), never ``fork``: the parent may be a Qt app with threads.

Every refusal raises :class:`FileSkipped` whose ``reason`` is one line a person can read.
Nothing here ever fetches anything remote: HTML is read with the stdlib parser (no DTDs, no
external entities), DOCX XML parts carrying a DOCTYPE are refused before python-docx (whose
lxml parser already has ``resolve_entities=False``) sees them, and pypdf reads bytes only.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import os
import queue
import re
import stat
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from parley.core.decoding import decode_text
from parley.core.display import format_size
from parley.core.errors import ParleyError

DEFAULT_MAX_BYTES = 50 * 2**20
"""Files larger than this are skipped (the ``max_bytes`` default)."""

IN_PROCESS_LIMIT = 4 * 2**20
"""Plain-text files up to this size are parsed in the caller's process by IsolatedLoader."""

DOCX_MAX_UNPACKED = 256 * 2**20
"""A DOCX whose parts declare more than this in total when unpacked is refused."""

DOCX_MAX_RATIO = 200
"""A DOCX part larger than 16 MiB that compresses better than this is a zip bomb."""

DOCX_MAX_PARTS = 10_000
"""A DOCX with more archive members than this is refused (real ones have dozens)."""

MAX_EXTRACTED_CHARS = 100 * 2**20
"""Text extracted from one PDF beyond this many characters means a decompression bomb."""


# ---------------------------------------------------------------------------- data types


@dataclass(frozen=True)
class Block:
    """One structural piece of a document, in reading order."""

    text: str
    """The text (for headings: the title only, without ``#`` or underline)."""
    kind: str
    """``"heading"``, ``"paragraph"``, ``"code"``, ``"table"``, ``"list"`` or ``"text"``."""
    level: int = 0
    """Heading level 1..6 for headings, 0 otherwise."""
    page: int | None = None
    """1-based PDF page."""
    line_start: int | None = None
    """1-based first line, inclusive, for line-based formats (text, code, Markdown, HTML)."""
    line_end: int | None = None
    """1-based last line, inclusive."""
    link_chars: int = 0
    """Characters of ``text`` that are link text (HTML ``<a href>``): a block made of links
    (a table of contents, an index) says little about any one subject."""


@dataclass
class LoadedDocument:
    """A parsed file."""

    path: Path
    """The file that was read."""
    kind: str
    """``"text"``, ``"markdown"``, ``"rst"``, ``"code"``, ``"html"``, ``"pdf"``, ``"docx"``
    or ``"data"``."""
    blocks: list[Block]
    """Structure in reading order; empty for an empty file."""
    size: int
    """Bytes read."""
    sha256: str
    """Hex SHA-256 of the raw bytes read (what the index uses to see changes)."""
    title: str = ""
    """The document's own title where the format has one (HTML ``<title>``), else empty."""


class FileSkipped(ParleyError):
    """A file was not loaded; ``reason`` says why in one line (e.g. ``"binary file"``)."""

    default_message = "The file was skipped."

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = self.user_message


class _OutOfMemory(FileSkipped):
    """MemoryError while parsing (a worker names its cap instead)."""


# ---------------------------------------------------------------------------- file kinds

_TEXT_EXTS = {".txt", ".text", ".log", ".me", ".nfo", ".asc"}
_MARKDOWN_EXTS = {".md", ".markdown", ".mdown", ".mkd", ".mkdn", ".mdx"}
_RST_EXTS = {".rst", ".rest"}
_HTML_EXTS = {".html", ".htm", ".xhtml"}
_DATA_EXTS = {".csv", ".tsv", ".json", ".jsonl", ".ndjson", ".yaml", ".yml"}
_CODE_EXTS = {
    # Languages named in issue 4, plus their close relatives.
    ".py", ".pyi", ".pyw", ".js", ".mjs", ".cjs", ".ts", ".mts", ".cts", ".tsx", ".jsx",
    ".java", ".c", ".h", ".cc", ".cpp", ".cxx", ".hpp", ".hh", ".hxx", ".cs", ".go", ".rs",
    ".rb", ".php", ".swift", ".kt", ".kts", ".scala", ".sh", ".bash", ".zsh", ".fish",
    ".ps1", ".psm1", ".bat", ".cmd", ".sql", ".r", ".m", ".mm", ".lua", ".pl", ".pm",
    ".toml", ".ini", ".cfg", ".conf", ".properties", ".env", ".xml", ".xsd", ".xsl",
    ".css", ".scss", ".sass", ".less", ".vue", ".svelte", ".dart", ".ex", ".exs", ".erl",
    ".hrl", ".hs", ".clj", ".cljs", ".elm", ".fs", ".fsx", ".ml", ".mli", ".nim", ".zig",
    ".jl", ".groovy", ".gradle", ".tf", ".hcl", ".proto", ".graphql", ".gql", ".cmake",
    ".mk", ".make", ".dockerfile", ".vb", ".pas", ".f90", ".f", ".asm", ".s", ".tex",
    ".bib", ".ipynb", ".lisp", ".el", ".scm", ".rkt", ".v", ".sv", ".vhd", ".cu", ".glsl",
}  # fmt: skip
_NAMED_FILES = {
    # Extension-less files that are text by convention.
    "readme": "text", "license": "text", "licence": "text", "copying": "text",
    "authors": "text", "contributors": "text", "changelog": "text", "changes": "text",
    "news": "text", "notes": "text", "todo": "text", "install": "text", "notice": "text",
    "makefile": "code", "gnumakefile": "code", "dockerfile": "code", "containerfile": "code",
    "jenkinsfile": "code", "vagrantfile": "code", "gemfile": "code", "rakefile": "code",
    "procfile": "code", "cmakelists.txt": "code", "justfile": "code",
}  # fmt: skip

KIND_BY_EXT: dict[str, str] = {
    **dict.fromkeys(_TEXT_EXTS, "text"),
    **dict.fromkeys(_MARKDOWN_EXTS, "markdown"),
    **dict.fromkeys(_RST_EXTS, "rst"),
    **dict.fromkeys(_HTML_EXTS, "html"),
    **dict.fromkeys(_DATA_EXTS, "data"),
    **dict.fromkeys(_CODE_EXTS, "code"),
    ".pdf": "pdf",
    ".docx": "docx",
}
"""Loader kind by lower-case extension (with the dot)."""

RISKY_KINDS = frozenset({"pdf", "docx", "html"})
"""Formats whose parsers can be driven into huge time or memory use by a crafted file."""


def kind_for(path: Path) -> str | None:
    """The loader kind for a file name, or None when the type is not supported.

    Args:
        path: Any path; only its name is looked at.

    Returns:
        One of ``"text"``, ``"markdown"``, ``"rst"``, ``"code"``, ``"html"``, ``"pdf"``,
        ``"docx"``, ``"data"``, or None.
    """
    name = path.name.lower()
    named = _NAMED_FILES.get(name)
    if named is not None:
        return named
    dot = name.rfind(".")
    if dot <= 0:  # no extension, or a dot-file such as ".bashrc"
        stem = name.lstrip(".")
        return _NAMED_FILES.get(stem.split(".")[0]) if stem else None
    kind = KIND_BY_EXT.get(name[dot:])
    if kind is None and name[:dot] in _NAMED_FILES:  # README.old, LICENSE.MIT ...
        return "text"
    return kind


# ---------------------------------------------------------------------------- reading bytes


def _too_large(size: int, max_bytes: int) -> FileSkipped:
    return FileSkipped(f"larger than {format_size(max_bytes)} ({format_size(size)})")


def _os_error_reason(exc: OSError, *, started: bool = True) -> str:
    if isinstance(exc, FileNotFoundError):
        return "file vanished while reading" if started else "file not found"
    if isinstance(exc, PermissionError):
        return "permission denied"
    if exc.errno == errno.ELOOP:
        return "symlink loop"
    if exc.errno == errno.EISDIR:
        return "not a regular file"
    return f"could not be read ({exc.strerror or type(exc).__name__})"


def stat_document(path: Path, max_bytes: int) -> os.stat_result:
    """``os.stat`` of a would-be document: a regular file within the size cap.

    Raises:
        FileSkipped: Not found, unreadable, not a regular file, or too large.
    """
    try:
        st = os.stat(path)
    except OSError as exc:
        raise FileSkipped(_os_error_reason(exc, started=False)) from None
    if not stat.S_ISREG(st.st_mode):
        raise FileSkipped("not a regular file")
    if st.st_size > max_bytes:
        raise _too_large(st.st_size, max_bytes)
    return st


def read_bytes(path: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> bytes:
    """Read a whole regular file, refusing anything a person would not call a document.

    The file is stat'ed before opening (so a FIFO or device never blocks us), opened
    non-blocking, and compared before and after the read, so a file that grows, shrinks or
    is rewritten while we read is reported instead of indexed half-old, half-new.

    Args:
        path: The file.
        max_bytes: Size cap.

    Returns:
        The file's bytes.

    Raises:
        FileSkipped: Not found, not a regular file, too large, unreadable, or it vanished or
            changed while being read.
    """
    stat_document(path, max_bytes)  # before opening: a FIFO or device never blocks us
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise FileSkipped(_os_error_reason(exc)) from None
    try:
        before = os.fstat(fd)
        if not stat.S_ISREG(before.st_mode):  # swapped for a FIFO between stat and open
            raise FileSkipped("not a regular file")
        if before.st_size > max_bytes:
            raise _too_large(before.st_size, max_bytes)
        # One byte more than the size says, to notice a file that grows while we read.
        with open(fd, "rb", closefd=False) as f:
            data = f.read(before.st_size + 1)
        after = os.fstat(fd)
    except OSError as exc:
        raise FileSkipped(_os_error_reason(exc)) from None
    finally:
        os.close(fd)
    if (
        len(data) != before.st_size
        or after.st_size != before.st_size
        or after.st_mtime_ns != before.st_mtime_ns
    ):
        if len(data) > max_bytes:
            raise _too_large(len(data), max_bytes)
        raise FileSkipped("file changed while reading")
    try:
        now = os.stat(path)
    except OSError:
        raise FileSkipped("file vanished while reading") from None
    if (now.st_ino, now.st_dev) != (before.st_ino, before.st_dev):
        raise FileSkipped("file changed while reading")  # replaced by a new file meanwhile
    return data


# ---------------------------------------------------------------------------- decoding text


def _text_of(raw: bytes, *, html: bool = False) -> str:
    r"""Binary sniffing plus decoding; newlines normalised to ``\\n``."""
    text = decode_text(raw, html=html)  # the one decoder (``core/decoding.py``)
    if text is None:
        raise FileSkipped("binary file")
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text


# ---------------------------------------------------------------------------- plain text, code

_BLANK_RUN = re.compile(r"\n[ \t\f\v]*\n(?:[ \t\f\v]*\n)*")


def _paragraphs(text: str, kind: str, first_line: int = 1) -> Iterator[Block]:
    """Split text at blank lines into blocks carrying their 1-based line ranges."""
    pos = 0
    line = first_line
    n = len(text)
    while pos < n:
        m = _BLANK_RUN.search(text, pos)
        end = m.start() if m else n
        chunk = text[pos:end]
        stripped = chunk.strip("\n")
        if stripped.strip():
            lead = len(chunk) - len(chunk.lstrip("\n"))
            start_line = line + lead
            yield Block(
                text=stripped.rstrip(),
                kind=kind,
                line_start=start_line,
                line_end=start_line + stripped.count("\n"),
            )
        if m is None:
            break
        line += text.count("\n", pos, m.end())
        pos = m.end()


def _text_blocks(text: str, kind: str) -> list[Block]:
    block_kind = {"code": "code", "data": "text"}.get(kind, "paragraph")
    return list(_paragraphs(text, block_kind))


# ---------------------------------------------------------------------------- Markdown

_ATX = re.compile(r" {0,3}(#{1,6})(?=[ \t]|$)")  # the opening only: see _atx_title
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_FENCE_OPEN = re.compile(r"^[ \t]*(`{3,}|~{3,})(.*)$")
_LIST_ITEM = re.compile(r"^[ \t]*(?:[-*+]|\d{1,9}[.)])(?:[ \t]|$)")
_TABLE_ROW = re.compile(r"^ {0,3}\|")
_THEMATIC = re.compile(r"^ {0,3}(?:(?:-[ \t]*){3,}|(?:\*[ \t]*){3,}|(?:_[ \t]*){3,})$")


def _atx_title(line: str) -> tuple[int, str] | None:
    """(level, title) of an ATX heading line, else None.

    Done by hand rather than with one regex: ``(.*?)`` followed by an optional closing
    sequence backtracks quadratically on a long line of spaces (untrusted input).
    """
    m = _ATX.match(line)
    if m is None:
        return None
    title = line[m.end() :].strip(" \t")
    stripped = title.rstrip("#")
    if not stripped or stripped[-1] in " \t":  # a closing run of #s, or only #s
        title = stripped.rstrip(" \t")
    return len(m.group(1)), title


def _markdown_blocks(text: str) -> list[Block]:
    """Headings (ATX and setext), fenced code kept whole, lists, tables, paragraphs."""
    lines = text.split("\n")
    blocks: list[Block] = []
    para: list[str] = []
    para_kind = "paragraph"
    para_start = 0

    def flush() -> None:
        nonlocal para
        if para and any(s.strip() for s in para):
            body = "\n".join(para).strip("\n").rstrip()
            blocks.append(
                Block(body, para_kind, line_start=para_start, line_end=para_start + len(para) - 1)
            )
        para = []

    i = 0
    n = len(lines)
    # YAML front matter: kept whole as one block, never read as a setext heading.
    if n > 1 and lines[0].strip() == "---":
        for j in range(1, min(n, 500)):
            if lines[j].strip() in ("---", "..."):
                blocks.append(
                    Block("\n".join(lines[: j + 1]), "code", line_start=1, line_end=j + 1)
                )
                i = j + 1
                break
    while i < n:
        line = lines[i]
        lineno = i + 1
        fence = _FENCE_OPEN.match(line)
        if fence and not (fence.group(1)[0] == "`" and "`" in fence.group(2)):
            flush()
            marker = fence.group(1)
            closing = re.compile(
                r"^[ \t]*" + re.escape(marker[0]) + "{" + str(len(marker)) + r",}[ \t]*$"
            )
            j = i + 1
            while j < n and not closing.match(lines[j]):
                j += 1
            end = min(j, n - 1)  # an unclosed fence runs to the end of the file
            while end > i and not lines[end].strip():
                end -= 1
            blocks.append(
                Block("\n".join(lines[i : end + 1]), "code", line_start=lineno, line_end=end + 1)
            )
            i = end + 1
            continue
        if not line.strip():
            flush()
            i += 1
            continue
        atx = _atx_title(line)
        if atx:
            flush()
            level, title = atx
            if title:
                blocks.append(
                    Block(title, "heading", level=level, line_start=lineno, line_end=lineno)
                )
            i += 1
            continue
        setext = _SETEXT.match(line)
        if setext and para and para_kind == "paragraph":
            title = " ".join(s.strip() for s in para)
            level = 1 if setext.group(1)[0] == "=" else 2
            blocks.append(
                Block(title, "heading", level=level, line_start=para_start, line_end=lineno)
            )
            para = []
            i += 1
            continue
        if _THEMATIC.match(line):
            flush()
            i += 1
            continue
        if not para:
            para_start = lineno
            if _LIST_ITEM.match(line):
                para_kind = "list"
            elif _TABLE_ROW.match(line):
                para_kind = "table"
            else:
                para_kind = "paragraph"
        para.append(line)
        i += 1
    flush()
    return blocks


# ---------------------------------------------------------------------------- reStructuredText

_RST_ADORN = re.compile(r"^([!-/:-@\[-`{-~])\1{2,}[ \t]*$")


def _rst_blocks(text: str) -> list[Block]:
    """Section titles (underlined, optionally overlined; levels in order of first use)."""
    lines = text.split("\n")
    n = len(lines)
    styles: list[tuple[str, bool]] = []
    blocks: list[Block] = []
    body_start = 0  # first line (0-based) not yet emitted

    def emit_body(upto: int) -> None:
        if upto > body_start:
            chunk = "\n".join(lines[body_start:upto])
            blocks.extend(_paragraphs(chunk, "paragraph", first_line=body_start + 1))

    def level_of(style: tuple[str, bool]) -> int:
        if style not in styles:
            styles.append(style)
        return min(styles.index(style) + 1, 6)

    i = 0
    while i < n:
        line = lines[i]
        prev_blank = i == 0 or not lines[i - 1].strip()
        over = _RST_ADORN.match(line)
        if (
            over
            and prev_blank
            and i + 2 < n
            and lines[i + 1].strip()
            and lines[i + 2].rstrip() == line.rstrip()
        ):
            emit_body(i)
            title = lines[i + 1].strip()
            level = level_of((over.group(1), True))
            blocks.append(Block(title, "heading", level=level, line_start=i + 1, line_end=i + 3))
            i += 3
            body_start = i
            continue
        if (
            line.strip()
            and not line[0].isspace()
            and prev_blank
            and i + 1 < n
            and not _RST_ADORN.match(line)
        ):
            under = _RST_ADORN.match(lines[i + 1])
            if under and len(lines[i + 1].rstrip()) >= len(line.rstrip()):
                emit_body(i)
                level = level_of((under.group(1), False))
                blocks.append(
                    Block(line.strip(), "heading", level=level, line_start=i + 1, line_end=i + 2)
                )
                i += 2
                body_start = i
                continue
        i += 1
    emit_body(n)
    # Literal blocks (after "::" or a code directive) are code; a lone adornment line is a
    # transition, not text.
    out: list[Block] = []
    literal_next = False
    for b in blocks:
        if b.kind != "heading" and _RST_ADORN.match(b.text):
            continue
        if b.kind == "paragraph" and literal_next and b.text[:1] in (" ", "\t"):
            b = Block(b.text, "code", line_start=b.line_start, line_end=b.line_end)
        else:
            literal_next = b.kind == "paragraph" and (
                b.text.endswith("::")
                or bool(re.match(r"\.\. (code-block|code|sourcecode)::", b.text))
            )
        out.append(b)
    return out


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


# ---------------------------------------------------------------------------- PDF


def _short(exc: BaseException) -> str:
    msg = " ".join(str(exc).split()) or type(exc).__name__
    return msg if len(msg) <= 120 else msg[:117] + "..."


def _pdf_outline(reader: Any) -> dict[int, list[tuple[int, str]]]:
    """Bookmarks as {0-based page: [(level, title), ...]}; empty when absent or broken."""
    found: dict[int, list[tuple[int, str]]] = {}

    def walk(items: Any, level: int) -> None:
        for item in items:
            if isinstance(item, list):
                walk(item, level + 1)
                continue
            title = " ".join(str(getattr(item, "title", "") or "").split())
            if not title:
                continue
            try:
                page = reader.get_destination_page_number(item)
            except Exception:  # dangling destination: keep the rest
                continue
            if page is not None and page >= 0:
                found.setdefault(page, []).append((min(level, 6), title))

    try:
        walk(reader.outline, 1)
    except Exception:  # a broken outline must not lose the text
        return {}
    return found


def _place_headings(text: str, headings: list[tuple[int, str]], page: int) -> list[Block]:
    """Split one page's text at the bookmark titles found in it (else headings go first)."""
    out: list[Block] = []
    pos = 0
    for level, title in headings:
        pattern = r"\s+".join(re.escape(w) for w in title.split())
        m = re.compile(pattern, re.I).search(text, pos) if pattern else None
        if m:
            out.extend(_page_text(text[pos : m.start()], page))
            pos = m.end()
        out.append(Block(title, "heading", level=level, page=page))
    out.extend(_page_text(text[pos:], page))
    return out


def _page_text(text: str, page: int) -> list[Block]:
    return [Block(b.text, "text", page=page) for b in _paragraphs(text.replace("\r", "\n"), "text")]


def _pdf_blocks(raw: bytes) -> list[Block]:
    if not raw:
        raise FileSkipped("damaged PDF: empty file")
    if b"%PDF" not in raw[:1024]:
        raise FileSkipped("damaged PDF: not a PDF file")
    try:
        from pypdf import PdfReader
        from pypdf.errors import DependencyError, FileNotDecryptedError
    except ImportError:  # pragma: no cover - pypdf is a dependency
        raise FileSkipped("PDF support is not installed") from None
    try:
        reader = PdfReader(io.BytesIO(raw), strict=False)
        if reader.is_encrypted:
            # Many PDFs are "encrypted" with an empty user password (copy/print limits
            # only); those open fine. Anything else needs a password we do not have.
            try:
                ok = reader.decrypt("")
            except (DependencyError, NotImplementedError) as exc:
                raise FileSkipped(f"encrypted PDF ({_short(exc)})") from None
            if not ok:
                raise FileSkipped("encrypted PDF (password required)")
        headings = _pdf_outline(reader)
        blocks: list[Block] = []
        total = 0
        for index, page in enumerate(reader.pages):
            text = page.extract_text() or ""
            total += len(text)
            if total > MAX_EXTRACTED_CHARS:
                raise FileSkipped("damaged PDF: more than 100 million characters of text (bomb?)")
            if index in headings:
                blocks.extend(_place_headings(text, headings[index], index + 1))
            else:
                blocks.extend(_page_text(text, index + 1))
        return blocks
    except FileSkipped:
        raise
    except FileNotDecryptedError:
        raise FileSkipped("encrypted PDF (password required)") from None
    except MemoryError:
        raise
    except RecursionError:
        raise FileSkipped("damaged PDF: nested too deeply") from None
    except Exception as exc:  # pypdf raises many types on damaged files
        raise FileSkipped(f"damaged PDF: {_short(exc)}") from None


# ---------------------------------------------------------------------------- DOCX

_DOCTYPE = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.I)
_HEADING_STYLE = re.compile(r"^heading\s*([1-9])$", re.I)


def _check_docx_archive(raw: bytes) -> None:
    """Refuse zip bombs and XML with DTDs before python-docx unpacks anything.

    Python's zipfile stops each member at its declared size (and then fails the CRC
    check), so the declared sizes bound what python-docx can inflate.
    """
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as z:
            infos = z.infolist()
            if len(infos) > DOCX_MAX_PARTS:
                raise FileSkipped(f"docx archive has too many parts ({len(infos)})")
            total = sum(i.file_size for i in infos)
            bomb = total > DOCX_MAX_UNPACKED or any(
                i.file_size > 16 * 2**20 and i.file_size > DOCX_MAX_RATIO * max(i.compress_size, 1)
                for i in infos
            )
            if bomb:
                raise FileSkipped(
                    f"docx archive too large when unpacked (zip bomb?) ({format_size(total)})"
                )
            for info in infos:
                if info.filename.endswith((".xml", ".rels")):
                    if _DOCTYPE.search(z.read(info)):
                        raise FileSkipped("docx contains XML entity declarations (unsafe)")
    except FileSkipped:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError) as exc:
        raise FileSkipped(f"damaged DOCX: {_short(exc)}") from None
    except NotImplementedError as exc:  # e.g. an unsupported compression method
        raise FileSkipped(f"damaged DOCX: {_short(exc)}") from None


def _docx_blocks(raw: bytes) -> list[Block]:
    if not raw.startswith(b"PK"):
        raise FileSkipped("damaged DOCX: not a zip archive" if raw else "damaged DOCX: empty file")
    _check_docx_archive(raw)
    try:
        import docx
        from docx.oxml.ns import qn
        from docx.table import Table
        from docx.text.paragraph import Paragraph
    except ImportError:  # pragma: no cover - python-docx is a dependency
        raise FileSkipped("DOCX support is not installed") from None
    try:
        document = docx.Document(io.BytesIO(raw))
        body = document.element.body
        blocks: list[Block] = []
        p_tag, tbl_tag, sdt_tag, sdt_content = (
            qn("w:p"),
            qn("w:tbl"),
            qn("w:sdt"),
            qn("w:sdtContent"),
        )
        outline_tag, num_tag, val_attr = qn("w:outlineLvl"), qn("w:numPr"), qn("w:val")

        def para_block(el: Any) -> Block | None:
            para = Paragraph(el, document)
            text = para.text.strip()
            if not text:
                return None
            style = ""
            with contextlib.suppress(Exception):
                style = (para.style.name or "") if para.style is not None else ""
            m = _HEADING_STYLE.match(style)
            if m:
                return Block(text, "heading", level=min(int(m.group(1)), 6))
            if style.lower() == "title":
                return Block(text, "heading", level=1)
            ppr = el.pPr
            if ppr is not None:
                lvl = ppr.find(outline_tag)
                if (
                    lvl is not None
                    and (lvl.get(val_attr) or "").isdigit()
                    and int(lvl.get(val_attr)) < 6
                ):
                    return Block(text, "heading", level=int(lvl.get(val_attr)) + 1)
                if ppr.find(num_tag) is not None:
                    return Block(text, "list")
            if style.lower().startswith("list"):
                return Block(text, "list")
            return Block(text, "paragraph")

        def table_block(el: Any) -> Block | None:
            rows = []
            for row in Table(el, document).rows:
                seen: set[int] = set()
                cells = []
                for cell in row.cells:  # merged cells repeat: keep each once
                    if id(cell._tc) in seen:
                        continue
                    seen.add(id(cell._tc))
                    cells.append(" ".join(cell.text.split()))
                if any(cells):
                    rows.append(" | ".join(cells))
            return Block("\n".join(rows), "table") if rows else None

        def walk(parent: Any) -> None:
            for el in parent.iterchildren():
                if el.tag == p_tag:
                    b = para_block(el)
                elif el.tag == tbl_tag:
                    b = table_block(el)
                elif el.tag == sdt_tag:
                    content = el.find(sdt_content)
                    if content is not None:
                        walk(content)
                    continue
                else:
                    continue
                if b is not None:
                    blocks.append(b)

        walk(body)
        return blocks
    except FileSkipped:
        raise
    except MemoryError:
        raise
    except RecursionError:
        raise FileSkipped("damaged DOCX: nested too deeply") from None
    except Exception as exc:  # python-docx raises KeyError, ValueError, lxml errors ...
        raise FileSkipped(f"damaged DOCX: {_short(exc)}") from None


# ---------------------------------------------------------------------------- public loader


def unsupported_reason(path: Path) -> str:
    """The skip reason for a file whose type has no loader."""
    suffix = path.suffix.lower()
    return f"unsupported file type ({suffix})" if suffix else "unsupported file type (no extension)"


def load_file(path: Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> LoadedDocument:
    """Parse one file in this process.

    Safe for plain text of any kind up to ``max_bytes``. For PDF, DOCX and HTML from
    untrusted sources prefer :meth:`IsolatedLoader.load`, which adds a time limit and a
    memory cap.

    Args:
        path: The file.
        max_bytes: Size cap; larger files are skipped.

    Returns:
        The document's blocks and identity (size, SHA-256 of the bytes).

    Raises:
        FileSkipped: Unsupported, binary, too large, unreadable, damaged, encrypted, ...
    """
    path = Path(path)
    kind = kind_for(path)
    if kind is None:
        raise FileSkipped(unsupported_reason(path))
    raw = read_bytes(path, max_bytes)
    digest = hashlib.sha256(raw).hexdigest()
    title = ""
    try:
        if kind == "pdf":
            blocks = _pdf_blocks(raw)
        elif kind == "docx":
            blocks = _docx_blocks(raw)
        else:
            text = _text_of(raw, html=kind == "html")
            if kind == "markdown":
                blocks = _markdown_blocks(text)
            elif kind == "rst":
                blocks = _rst_blocks(text)
            elif kind == "html":
                blocks, title = _html_parse(text)
            else:
                blocks = _text_blocks(text, kind)
    except MemoryError:
        raise _OutOfMemory("ran out of memory while parsing") from None
    return LoadedDocument(
        path=path, kind=kind, blocks=blocks, size=len(raw), sha256=digest, title=title
    )


# ---------------------------------------------------------------------------- isolation


def _limit_resources(memory_mb: int) -> None:
    """Cap the worker's address space (POSIX); no core dumps from a crashing parser."""
    try:
        import resource
    except ImportError:  # Windows: no rlimits; the time limit still applies
        return
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    limit = memory_mb * 2**20
    with contextlib.suppress(ValueError, OSError):  # macOS does not enforce RLIMIT_AS
        _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def _worker_main(conn: Any, memory_mb: int) -> None:
    """Entry point of a loader worker: load paths sent over ``conn`` until told to stop."""
    import logging
    import warnings

    _limit_resources(memory_mb)
    # Parsers of damaged files are chatty; the skip reason carries what matters.
    warnings.simplefilter("ignore")
    logging.disable(logging.WARNING)
    conn.send(("ready", os.getpid()))
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        if job is None:
            return
        path, max_bytes = job
        reply: tuple[str, Any]
        try:
            reply = ("ok", load_file(Path(path), max_bytes=max_bytes))
        except (MemoryError, _OutOfMemory):
            reply = ("skip", f"needs more than {memory_mb} MB of memory to parse")
        except FileSkipped as exc:
            reply = ("skip", exc.reason)
        except RecursionError:
            reply = ("skip", "damaged file: nested too deeply")
        except Exception as exc:  # any parser bug becomes a skip, never a dead indexer
            reply = ("skip", f"could not be parsed ({type(exc).__name__}: {_short(exc)})")
        try:
            conn.send(reply)
        except MemoryError:
            conn.send(("skip", f"needs more than {memory_mb} MB of memory to parse"))


@dataclass(eq=False)
class _Worker:
    """One worker process and our end of its pipe."""

    process: Any
    conn: Any
    ready: bool = False
    jobs: int = field(default=0)

    def kill(self) -> None:
        with contextlib.suppress(Exception):
            self.process.kill()
        with contextlib.suppress(Exception):
            self.process.join(5)
        with contextlib.suppress(Exception):
            self.conn.close()


class IsolatedLoader:
    """Loads files with risky parsers in reused worker processes.

    PDF, DOCX and HTML, and any file above a few MB, are parsed in a worker with a time
    limit (the worker is killed and replaced when it runs over) and an address-space cap.
    Small plain-text files take the in-process fast path: the size cap bounds them.

    Thread-safe: each call borrows one idle worker (``workers`` of them at most), so several
    threads may call :meth:`load` at once. Use as a context manager or call :meth:`close`.

    Args:
        timeout_s: Longest time one parse may take.
        memory_mb: Address-space cap of each worker (POSIX only).
        max_bytes: Size cap; larger files are skipped without being read.
        workers: How many worker processes may run at once.
        in_process_limit: Plain-text files up to this size are parsed in-process.
    """

    def __init__(
        self,
        *,
        timeout_s: float = 30.0,
        memory_mb: int = 1024,
        max_bytes: int = DEFAULT_MAX_BYTES,
        workers: int = 1,
        in_process_limit: int = IN_PROCESS_LIMIT,
    ) -> None:
        if timeout_s <= 0 or memory_mb <= 0 or max_bytes <= 0 or workers < 1:
            raise ValueError("timeout_s, memory_mb, max_bytes and workers must be positive")
        self._timeout = timeout_s
        self._memory_mb = memory_mb
        self._max_bytes = max_bytes
        self._in_process_limit = in_process_limit
        self._idle: queue.Queue[_Worker | None] = queue.Queue()
        for _ in range(workers):
            self._idle.put(None)  # a slot whose process starts on first use
        self._lock = threading.Lock()
        self._live: set[_Worker] = set()
        self._closed = False
        import multiprocessing as mp

        method = "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"
        self._ctx: Any = mp.get_context(method)

    # ---- Public API
    def __enter__(self) -> IsolatedLoader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def load(self, path: Path) -> LoadedDocument:
        """Parse one file, in a worker unless it is small plain text.

        Args:
            path: The file.

        Returns:
            The parsed document.

        Raises:
            FileSkipped: For every reason :func:`load_file` gives, plus ``"took longer than
                30 s to parse"``, ``"needs more than 1024 MB of memory to parse"`` and
                ``"the parser crashed"``.
        """
        path = Path(path)
        kind = kind_for(path)
        if kind is None:
            raise FileSkipped(unsupported_reason(path))
        st = stat_document(path, self._max_bytes)
        if kind not in RISKY_KINDS and st.st_size <= self._in_process_limit:
            return load_file(path, max_bytes=self._max_bytes)
        return self._in_worker(path)

    def close(self) -> None:
        """Stop every worker (a parse in progress ends with ``FileSkipped``)."""
        with self._lock:
            self._closed = True
            live = list(self._live)
            self._live.clear()
        for w in live:
            with contextlib.suppress(Exception):
                w.conn.send(None)
            w.process.join(0.5)
            w.kill()

    # ---- Internals
    def _start(self) -> _Worker:
        parent, child = self._ctx.Pipe(duplex=True)
        proc = self._ctx.Process(
            target=_worker_main, args=(child, self._memory_mb), name="parley-loader", daemon=True
        )
        proc.start()
        child.close()
        worker = _Worker(proc, parent)
        with self._lock:
            if self._closed:
                worker.kill()
                raise FileSkipped("the loader was closed")
            self._live.add(worker)
        # Start-up (interpreter + imports) does not count against the parse time limit.
        if not parent.poll(max(60.0, self._timeout)):
            self._discard(worker)
            raise FileSkipped("the parser process did not start")
        try:
            parent.recv()
        except (EOFError, OSError):
            self._discard(worker)
            raise FileSkipped("the parser process did not start") from None
        worker.ready = True
        return worker

    def _discard(self, worker: _Worker) -> None:
        with self._lock:
            self._live.discard(worker)
        worker.kill()

    def _in_worker(self, path: Path) -> LoadedDocument:
        if self._closed:
            raise FileSkipped("the loader was closed")
        slot = self._idle.get()
        worker: _Worker | None = slot
        try:
            if worker is None or not worker.process.is_alive():
                if worker is not None:
                    self._discard(worker)
                worker = None
                worker = self._start()
            try:
                worker.conn.send((str(path), self._max_bytes))
                arrived = worker.conn.poll(self._timeout)
            except (OSError, EOFError, ValueError):
                arrived = False
                if self._closed:
                    raise FileSkipped("the loader was closed") from None
            if not arrived:
                self._discard(worker)
                worker = None
                if self._closed:
                    raise FileSkipped("the loader was closed")
                raise FileSkipped(f"took longer than {self._timeout:g} s to parse")
            try:
                status, payload = worker.conn.recv()
            except (EOFError, OSError, ValueError):
                worker.process.join(2)
                code = worker.process.exitcode
                self._discard(worker)
                worker = None
                if self._closed:
                    raise FileSkipped("the loader was closed") from None
                detail = f" (exit code {code})" if code is not None else ""
                raise FileSkipped(f"the parser crashed on this file{detail}") from None
            worker.jobs += 1
            if status == "ok":
                doc: LoadedDocument = payload
                return doc
            raise FileSkipped(str(payload))
        finally:
            self._idle.put(worker if worker is not None and not self._closed else None)
