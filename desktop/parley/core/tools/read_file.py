"""The ``read_file`` tool: numbered lines of a file in the folders added, a window at a time.

Text files are read no further than the window asked for (except to count lines); PDF and
DOCX files are parsed by the knowledge loaders (in a worker process when the caller passes
one). Every open goes through :meth:`FolderPolicy.open_file` (``tools/confinement.py``).
"""

from __future__ import annotations

import codecs
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, BinaryIO

from pydantic import Field

from parley.core.decoding import DETECT_BYTES, WIDE_CODECS, decode, text_encoding
from parley.core.display import format_size
from parley.core.tools.confinement import AccessDenied, FolderPolicy
from parley.core.tools.registry import CancelToken, Tool, ToolError, tool

MAX_LINES = 400
"""Most lines read_file returns per call."""
MAX_CHARS = 64_000
"""Most characters (of file text) read_file returns per call."""
MAX_LINE_CHARS = 8_000
"""A longer single line is cut (minified files)."""
COUNT_LINES_UP_TO = 256 * 2**20
"""Total line counts are given for files up to this size."""
WIDE_MAX_BYTES = 32 * 2**20
"""UTF-16 and UTF-32 files are decoded whole, up to this size."""
DOCUMENT_MAX_BYTES = 50 * 2**20
"""PDF and DOCX files larger than this are not read."""
_DOCUMENT_SUFFIXES = frozenset({".pdf", ".docx"})

DocumentLoader = Callable[[Path], Any]
"""Parses a document into an object with ``.blocks`` (``loaders.LoadedDocument``); raises
``loaders.FileSkipped``."""


def read_file_impl(
    policy: FolderPolicy,
    path: str,
    start_line: int = 1,
    end_line: int | None = None,
    cancel: CancelToken | None = None,
    *,
    load_document: DocumentLoader | None = None,
) -> str:
    """The body of the ``read_file`` tool (see its description); returns the result text."""
    cancel = cancel or CancelToken()
    if start_line < 1:
        raise ToolError("start_line must be 1 or more.")
    if end_line is not None and end_line < start_line:
        raise ToolError(f"end_line ({end_line}) is before start_line ({start_line}).")
    handle, real, st = policy.open_file(path)
    shown = policy.display(real)
    with handle:
        if real.suffix.lower() in _DOCUMENT_SUFFIXES:
            lines = _document_lines(real, st, load_document)
            window, total = _window_list(lines, start_line, end_line, cancel)
        else:
            window, total = _window_file(handle, st, shown, start_line, end_line, cancel)
    if not window:
        if start_line == 1:
            return f"{shown} is empty."
        raise ToolError(
            f"start_line {start_line:,} is past the end of '{shown}' ({total or 0:,} lines)."
        )
    return _format_window(shown, window, end_line, total)


def _document_lines(
    real: Path, st: os.stat_result, load_document: DocumentLoader | None
) -> list[str]:
    # Imported here: the loaders pull in pypdf/python-docx, which a calculator call never needs.
    from parley.core.knowledge import loaders

    try:
        if load_document is not None:
            doc = load_document(real)
        else:
            doc = loaders.load_file(real, max_bytes=DOCUMENT_MAX_BYTES)
    except loaders.FileSkipped as exc:
        reason = getattr(exc, "reason", str(exc))
        raise ToolError(f"This document cannot be read: {reason}") from None
    now = os.stat(real)
    if (now.st_ino, now.st_dev) != (st.st_ino, st.st_dev):
        raise AccessDenied("The file changed while it was being read.")
    lines: list[str] = []
    page: int | None = None
    for block in doc.blocks:
        if block.page is not None and block.page != page:
            page = block.page
            if lines:
                lines.append("")
            lines.append(f"[page {page}]")
        elif lines:
            lines.append("")
        text = block.text
        if getattr(block, "kind", "") == "heading" and text.strip():
            # Markdown-style markers keep the document's outline visible to the model.
            text = "#" * max(1, min(int(getattr(block, "level", 1) or 1), 6)) + " " + text
        lines.extend(text.splitlines() or [""])
    return lines


@dataclass
class _Line:
    no: int
    text: str
    cut_from: int | None = None  # the line's full length, when it was cut


def _window_list(
    lines: list[str], start: int, end: int | None, cancel: CancelToken
) -> tuple[list[_Line], int | None]:
    cancel.raise_if_cancelled()
    last = len(lines) if end is None else min(end, len(lines))
    window = [_Line(n, lines[n - 1]) for n in range(start, min(last, start + MAX_LINES - 1) + 1)]
    return _fit(window), len(lines)


def _fit(window: list[_Line]) -> list[_Line]:
    """Keep the first lines that fit MAX_LINES and MAX_CHARS (cutting one huge line if needed)."""
    kept: list[_Line] = []
    used = 0
    for line in window[:MAX_LINES]:
        if len(line.text) > MAX_LINE_CHARS:
            line = _Line(line.no, line.text[:MAX_LINE_CHARS], line.cut_from or len(line.text))
        if kept and used + len(line.text) + 1 > MAX_CHARS:
            break
        kept.append(line)
        used += len(line.text) + 1
    return kept


def _window_file(
    handle: BinaryIO,
    st: os.stat_result,
    shown: str,
    start: int,
    end: int | None,
    cancel: CancelToken,
) -> tuple[list[_Line], int | None]:
    """Lines start..end of a text file, reading no more than needed (except to count lines)."""
    # The one decoder's rules (``core/decoding.py``), judged on the file's first part.
    sample = handle.read(DETECT_BYTES)
    complete = len(sample) < DETECT_BYTES or st.st_size <= DETECT_BYTES
    codec = text_encoding(sample, complete=complete)
    if codec is None:
        raise ToolError(f"'{shown}' is a binary file; it has no text to show.")
    if codec in WIDE_CODECS:
        # UTF-16/32: a newline is not the byte "\n", so the file is decoded whole.
        if st.st_size > WIDE_MAX_BYTES:
            raise ToolError(
                f"'{shown}' is a {codec[:6].upper()} file larger than "
                f"{format_size(WIDE_MAX_BYTES)}; it is not read."
            )
        handle.seek(0)
        text = decode(handle.read(), codec)
        return _window_list(_split_lines(text), start, end, cancel)
    bom = codecs.BOM_UTF8 if codec == "utf-8-sig" else b""
    handle.seek(len(bom))
    encoding = "utf-8" if bom else codec
    reader = _LineReader(handle)
    line_no = 0  # lines consumed so far
    while line_no < start - 1:
        if line_no % 10_000 == 0:
            cancel.raise_if_cancelled()
        if reader.read_line(0) is None:
            return [], line_no  # start_line is past the end
        line_no += 1
    window: list[_Line] = []
    used = 0
    unshown = 0  # a line read but left out because it did not fit
    last = start + MAX_LINES - 1 if end is None else min(end, start + MAX_LINES - 1)
    while line_no < last:
        raw = reader.read_line(MAX_LINE_CHARS * 4)
        if raw is None:
            break
        data, full_length = raw
        text = decode(data, encoding).rstrip("\r\n")
        cut_from = None
        was_cut = full_length > len(data) - (1 if data.endswith(b"\n") else 0)
        if was_cut or len(text) > MAX_LINE_CHARS:
            text, cut_from = text[:MAX_LINE_CHARS], full_length
        if window and used + len(text) + 1 > MAX_CHARS:
            unshown = 1
            break
        line_no += 1
        window.append(_Line(line_no, text, cut_from))
        used += len(text) + 1
    if st.st_size > COUNT_LINES_UP_TO and not reader.at_eof():
        return window, None  # too big to count every line
    return window, line_no + unshown + reader.count_remaining_lines(cancel)


def _split_lines(text: str) -> list[str]:
    r"""Lines as the byte reader cuts them: at ``\n``, without the line end (``\r\n`` too)."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.rstrip("\r") for line in lines]


class _LineReader:
    """Reads lines from a binary file in big blocks; a line longer than asked is cut."""

    def __init__(self, handle: BinaryIO) -> None:
        self._handle = handle
        self._buf = b""
        self._pos = 0
        self._eof = False

    def _fill(self) -> bool:
        if self._eof:
            return False
        block = self._handle.read(2**20)
        if not block:
            self._eof = True
            return False
        self._buf = self._buf[self._pos :] + block
        self._pos = 0
        return True

    def at_eof(self) -> bool:
        return self._pos >= len(self._buf) and not self._fill()

    def read_line(self, limit: int) -> tuple[bytes, int] | None:
        """The next line, at most ``limit`` bytes of it kept, and its full length in bytes.

        The length excludes the newline; None at the end of the file.
        """
        if self.at_eof():
            return None
        kept = b""
        length = 0
        while True:
            nl = self._buf.find(b"\n", self._pos)
            end = len(self._buf) if nl < 0 else nl + 1
            if len(kept) < limit:
                kept += self._buf[self._pos : min(end, self._pos + limit - len(kept))]
            length += end - self._pos
            self._pos = end
            if nl >= 0:
                return kept, length - 1
            if not self._fill():
                return kept, length

    def count_remaining_lines(self, cancel: CancelToken) -> int:
        count = 0
        last = b""
        while True:
            rest = self._buf[self._pos :]
            if rest:
                count += rest.count(b"\n")
                last = rest[-1:]
            self._pos = len(self._buf)
            cancel.raise_if_cancelled()
            if not self._fill():
                break
        # A last line without a newline still counts.
        return count + (1 if last and last != b"\n" else 0)


def _format_window(shown: str, window: list[_Line], end: int | None, total: int | None) -> str:
    first, last = window[0].no, window[-1].no
    of_total = f" of {total:,}" if total is not None else ""
    width = len(str(last))
    out = [f"{shown} (lines {first:,}-{last:,}{of_total})"]
    for line in window:
        text = line.text
        if line.cut_from is not None:
            text += f" … [line cut; it is {line.cut_from:,} bytes long]"
        out.append(f"{line.no:>{width}}\t{text}")
    wanted_last = end if end is not None else total
    more_in_file = total is None or last < total
    if more_in_file and (wanted_last is None or last < wanted_last):
        out.append(f"… cut at line {last:,}{of_total}; call again with start_line={last + 1}")
    elif end is not None and total is not None and end > total:
        out.append(f"(end of file at line {total:,})")
    return "\n".join(out)


def read_file_tool(policy: FolderPolicy, *, load_document: DocumentLoader | None = None) -> Tool:
    """The ``read_file`` tool, confined by ``policy``.

    Args:
        policy: The folders the person added.
        load_document: Parses PDF and DOCX files, e.g. the ``load`` method of a long-lived
            ``parley.core.knowledge.loaders.IsolatedLoader`` (a worker process with a time
            limit and a memory cap: the right choice for untrusted documents). Without it
            they are parsed in-process by ``loaders.load_file``.
    """

    @tool(name="read_file", timeout_s=60.0, max_output_chars=MAX_CHARS + 8_000)
    def read_file(  # noqa: D417 - `cancel` is injected by the runner, not told to the model
        path: str,
        start_line: Annotated[int, Field(ge=1)] = 1,
        end_line: Annotated[int, Field(ge=1)] | None = None,
        cancel: CancelToken | None = None,
    ) -> str:
        """Read a text file (or the text of a PDF or DOCX) from the folders the person added.

        Lines come back numbered. One call returns at most 400 lines or about 64 KB; when the
        text is cut, a last line says which start_line to use to continue. Files outside the
        added folders and files that may hold secrets cannot be read.

        Args:
            path: The file, relative to an added folder, as file_search shows it.
            start_line: First line to return (1-based).
            end_line: Last line to return (inclusive); by default as many as fit.
        """
        return read_file_impl(
            policy, path, start_line, end_line, cancel, load_document=load_document
        )

    return read_file
