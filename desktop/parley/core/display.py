r"""Text that is safe to show: on a terminal, in a widget, in JSON, in SQLite (issue 11).

File names, document text and model output are untrusted. Three things can go wrong when
they are shown or stored:

- **Terminal control.** ESC starts escape sequences (colours, cursor moves, OSC window
  titles, clearing the screen, hiding text), BEL rings, CR rewrites the line, and bidi
  overrides reorder what a line appears to say (Trojan Source). :func:`safe_text` shows each
  such character as a visible escape (``\x1b``, ``\r``, ``\u202e``) and keeps newlines and
  tabs. The chat view renders Markdown and has its own, richer revealer
  (``ui/chat/markdown.py``); everything else that shows untrusted plain text uses this one.
- **Undecodable file names.** On POSIX a file name is bytes; Python turns bytes that are not
  UTF-8 into lone surrogates (``surrogateescape``), which SQLite, JSON encoders, HTTP bodies
  and UTF-8 streams refuse ("surrogates not allowed"). :func:`path_text` is the one text form
  of such a path: each undecodable byte becomes ``\xNN``; everything else is unchanged, so
  ordinary names are never touched. :func:`path_from_text` turns that form back into the real
  name (the file tools accept it from the model). SQLite stores the raw bytes instead
  (``knowledge/store.py``), which is lossless.
- **Streaming.** :class:`TerminalText` applies :func:`safe_text` to a stream of chunks, so a
  CR (or a CR LF pair) split across two chunks is judged as a whole.

:func:`for_terminal` picks what a stream gets: :func:`safe_text` when it is a terminal, and
:func:`escape_surrogates` otherwise (a pipe or a file gets the exact text, but never a lone
surrogate that would make the write fail).

Two small forms every front end writes the same way: :func:`format_size` (file sizes) and
:func:`location_text` (where a passage is in its document).
"""

from __future__ import annotations

import os
import re
from typing import IO, Any

__all__ = [
    "TerminalText",
    "escape_surrogates",
    "for_terminal",
    "format_size",
    "is_terminal",
    "location_text",
    "path_from_text",
    "path_text",
    "safe_json",
    "safe_text",
]

_CONTROLS = "\x00-\x08\x0b-\x1f\x7f-\x9f"
"""C0 controls except TAB and LF (CR is among them), DEL, and the C1 controls (0x9B is a CSI
in some terminals)."""

_BIDI = "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
"""Bidi marks, embeddings, overrides and isolates: they reorder how a line is displayed."""

_SURROGATES = "\ud800-\udfff"

_UNSAFE = re.compile(f"\r\n|[\ud800-\udbff][\udc00-\udfff]|[{_CONTROLS}{_BIDI}{_SURROGATES}]")
_UNSAFE_ONE_LINE = re.compile(
    f"[\ud800-\udbff][\udc00-\udfff]|[\t\n{_CONTROLS}{_BIDI}{_SURROGATES}]"
)
_LONE_SURROGATE = re.compile(f"[{_SURROGATES}]")
_ESCAPED = re.compile(r"\\x([89a-fA-F][0-9a-fA-F])|\\u(d[89a-fA-F][0-9a-fA-F]{2})")

_NAMED = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _escape_char(ch: str) -> str:
    code = ord(ch)
    if ch in _NAMED:
        return _NAMED[ch]
    if 0xDC80 <= code <= 0xDCFF:
        return f"\\x{code - 0xDC00:02x}"  # a byte that was not UTF-8 (surrogateescape)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}"


def _replace(match: re.Match[str]) -> str:
    s = match.group()
    if s == "\r\n":
        return "\n"  # Windows line ends are line ends, not a carriage return
    if len(s) == 2:  # a surrogate pair split by the producer: the character it stands for
        return s.encode("utf-16-le", "surrogatepass").decode("utf-16-le")
    return _escape_char(s)


def _replace_one_line(match: re.Match[str]) -> str:
    s = match.group()
    if len(s) == 2:
        return s.encode("utf-16-le", "surrogatepass").decode("utf-16-le")
    return _escape_char(s)


def safe_text(text: str, *, one_line: bool = False) -> str:
    r"""``text`` with terminal controls and bidi reordering shown as visible escapes.

    Every character that could control a terminal or reorder a line is shown as an escape
    (``\x1b``, ``\x07``, ``\r``, ``\u202e``).

    Newlines and tabs stay (CR LF becomes LF) unless ``one_line``, where they become ``\n``
    and ``\t`` too (for names in a table, a tooltip, a one-line label). Bytes of a file name
    that were not UTF-8 show as ``\xNN``, as :func:`path_text` writes them.

    Args:
        text: Untrusted text: a file name, document text, model output.
        one_line: Escape newlines and tabs as well.

    Returns:
        The text, unchanged when it holds nothing to neutralise (the common case costs one
        regex scan).
    """
    pattern = _UNSAFE_ONE_LINE if one_line else _UNSAFE
    if pattern.search(text) is None:
        return text
    return pattern.sub(_replace_one_line if one_line else _replace, text)


def escape_surrogates(text: str) -> str:
    r"""``text`` with each lone surrogate written as an escape, everything else unchanged.

    A surrogate from ``surrogateescape`` (an undecodable byte of a file name) becomes
    ``\xNN``, any other lone surrogate ``\udNNN``. The result encodes as UTF-8, so it can go
    into SQLite, JSON, an HTTP body or a UTF-8 stream.
    """
    if _LONE_SURROGATE.search(text) is None:
        return text
    fixed = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")
    # Valid pairs were joined above; what is left are lone surrogates.
    return _LONE_SURROGATE.sub(lambda m: _escape_char(m.group()), fixed)


def path_text(path: str | os.PathLike[str]) -> str:
    r"""The text form of a path: itself, with bytes that are not UTF-8 written as ``\xNN``.

    Used wherever a path has to be Unicode text: JSON, Chroma metadata, tool results, the
    model's prompt, the window. :func:`path_from_text` reverses it.
    """
    return escape_surrogates(os.fspath(path))


def path_from_text(text: str) -> str:
    r"""The real path a :func:`path_text` form stands for (POSIX: ``\xNN`` back to the byte).

    On Windows the text is returned as it is: names there are Unicode, and ``\x..`` would
    be a folder separator followed by a name.
    """
    if os.name == "nt" or "\\" not in text or _ESCAPED.search(text) is None:
        return text
    raw = bytearray()
    pos = 0
    for m in _ESCAPED.finditer(text):
        raw += text[pos : m.start()].encode("utf-8", "surrogateescape")
        if m.group(1) is not None:
            raw.append(int(m.group(1), 16))
        else:
            raw += chr(int(m.group(2), 16)).encode("utf-8", "surrogatepass")
        pos = m.end()
    raw += text[pos:].encode("utf-8", "surrogateescape")
    return os.fsdecode(bytes(raw))


def is_terminal(stream: IO[Any] | Any) -> bool:
    """Whether ``stream`` is a terminal (False for None, closed or odd streams)."""
    try:
        return bool(stream is not None and stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def for_terminal(text: str, stream: IO[Any] | Any) -> str:
    """``text`` as it may be written to ``stream``.

    :func:`safe_text` on a terminal, :func:`escape_surrogates` elsewhere (exact text, but
    always encodable).
    """
    return safe_text(text) if is_terminal(stream) else escape_surrogates(text)


_JSON_UNSAFE = re.compile(f"[\x7f-\x9f{_BIDI}{_SURROGATES}]")


def safe_json(value: Any) -> str:
    r"""``json.dumps(value, ensure_ascii=False)``, with risky characters escaped.

    DEL, C1 controls, bidi controls and lone surrogates are written as ``\uXXXX`` escapes.

    JSON already escapes the C0 controls; these others are legal raw in a JSON string but can
    steer a terminal, reorder a line or fail to encode. The escapes decode to the same text,
    so the output stays exact for any JSON reader.
    """
    import json

    text = json.dumps(value, ensure_ascii=False)
    if _JSON_UNSAFE.search(text) is None:
        return text
    return _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


class TerminalText:
    """:func:`safe_text` for a stream of chunks (a streamed answer).

    A chunk that ends in CR (or a lone high surrogate) keeps it back until the next chunk
    says whether it is a CR LF line end (or half of a pair); every other character is judged
    on its own, so nothing else is held and streaming stays live.
    """

    def __init__(self) -> None:
        """Start with nothing held back."""
        self._held = ""

    def feed(self, chunk: str) -> str:
        """The safe text for ``chunk`` (possibly without its last character, held back)."""
        text = self._held + chunk
        self._held = ""
        if text and (text[-1] == "\r" or "\ud800" <= text[-1] <= "\udbff"):
            self._held = text[-1]
            text = text[:-1]
        return safe_text(text)

    def flush(self) -> str:
        """What was held back, made safe (call at the end of the stream)."""
        text, self._held = self._held, ""
        return safe_text(text)


# ---------------------------------------------------------------- sizes and places
_SIZE_UNITS = ("KB", "MB", "GB", "TB")


def format_size(n: int) -> str:
    """A size for people: ``"812 bytes"``, ``"50 MB"``, ``"104.9 MB"``, ``"1 GB"``.

    Binary units (1 KB = 1,024 bytes, as file managers count and as Parley's size limits are
    set); one decimal unless the value is whole. A value that rounds to 1,024 of a unit is
    written in the next one (``"1 MB"``, not ``"1024 KB"``).
    """
    if n < 1024:
        return f"{n} bytes"
    value, unit = n / 1024, 0
    while float(f"{value:.1f}") >= 1024 and unit < len(_SIZE_UNITS) - 1:
        value, unit = value / 1024, unit + 1
    return f"{value:.1f}".removesuffix(".0") + f" {_SIZE_UNITS[unit]}"


def location_text(
    page: int | None = None, line_start: int | None = None, line_end: int | None = None
) -> str:
    """Where a passage is: ``"page 3"``, ``"line 7"`` or ``"lines 10–24"`` (else ``""``).

    The one form for citations in the window, the model's sources and tool results, and the
    command line. A page wins over lines (paged documents cite pages); a range takes an en
    dash, as people write ranges.
    """
    if page is not None:
        return f"page {page}"
    if line_start is None:
        return ""
    end = line_end or line_start
    return f"line {line_start}" if end == line_start else f"lines {line_start}–{end}"
