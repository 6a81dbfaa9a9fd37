"""A text file's bytes as text: the one decoder for indexing, ``read_file`` and attachments.

Untrusted files arrive in every encoding people have saved text in, and some are not text at
all. One set of rules decides for every path that turns file bytes into text, so a document
reads the same whether it is indexed (``knowledge/loaders``), read by the model
(``tools/read_file.py``) or dropped on the window as an attachment (``ui/attachments.py``):

1. A byte-order mark says the encoding: UTF-8, UTF-32 (LE/BE), UTF-16 (LE/BE).
2. UTF-16 without a mark is recognised by its zero bytes (every other byte of ASCII text is
   NUL), when the text it decodes to is not full of control characters.
3. Otherwise, a NUL byte, or more than 10 % control characters, in the first
   :data:`SNIFF_BYTES` means binary: :func:`text_encoding` returns None.
4. Strict UTF-8.
5. For HTML, a ``<meta charset>`` declaration.
6. Mostly valid UTF-8 with a few damaged bytes stays UTF-8 (U+FFFD marks the damage) instead
   of being re-read as a legacy code page.
7. charset-normalizer's guess from the lines of the first :data:`DETECT_BYTES` that are not
   ASCII; among look-alike Latin code pages, Windows-1252 wins when it reads as letters and
   punctuation.
8. UTF-8 with replacement characters.

Decoding never fails (``errors="replace"``) and drops NUL characters.
"""

from __future__ import annotations

import codecs
import contextlib
import re

__all__ = [
    "BOMS",
    "DETECT_BYTES",
    "SNIFF_BYTES",
    "WIDE_CODECS",
    "decode",
    "decode_text",
    "looks_binary",
    "text_encoding",
]

SNIFF_BYTES = 8192
"""How much of a file's start is inspected to tell text from binary."""

DETECT_BYTES = 512 * 1024
"""How much of a file the encoding detector reads (more costs time and tells little more)."""

BOMS = (
    (b"\xef\xbb\xbf", "utf-8-sig"),
    (b"\xff\xfe\x00\x00", "utf-32"),  # before UTF-16 LE: it starts with the same two bytes
    (b"\x00\x00\xfe\xff", "utf-32"),
    (b"\xff\xfe", "utf-16"),
    (b"\xfe\xff", "utf-16"),
)
"""Byte-order marks and the codec that reads them (and drops the mark)."""

WIDE_CODECS = frozenset({"utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be"})
"""Codecs :func:`text_encoding` may return whose newline is not the byte ``\\n``: a reader
cannot split their bytes into lines before decoding."""

# C0 controls that never appear in text (keeps \t \n \v \f \r and ESC for ANSI-coloured logs).
_BINARY_CONTROLS = bytes(c for c in range(32) if c not in (9, 10, 11, 12, 13, 27)) + b"\x7f"
_BINARY_CHARS = re.compile("[" + re.escape(_BINARY_CONTROLS.decode("ascii")) + "]")
_META_CHARSET = re.compile(
    rb"""<meta[^>]{1,512}?charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]{1,40})""", re.I
)  # bounded repeat: a page full of "<meta " must not backtrack quadratically

# Single-byte Latin code pages agree on ASCII and differ only in accented letters, and
# charset-normalizer often picks a Baltic or Central European one for short French or
# German text. Windows-1252 is by far the most common of them, so it wins whenever
# it reads as letters and ordinary punctuation.
_LATIN_CODEPAGES = frozenset(
    {"cp1250", "cp1252", "cp1254", "cp1257", "cp775", "cp850", "cp852", "cp858", "mac_latin2",
     "mac_roman", "mac_iceland", "latin_1", "iso8859_1", "iso8859_2", "iso8859_3", "iso8859_4",
     "iso8859_9", "iso8859_10", "iso8859_13", "iso8859_14", "iso8859_15", "iso8859_16"}
)  # fmt: skip
_CP1252_PUNCTUATION = frozenset("“”‘’‚„–—…«»‹›°€£¥§©®·¡¿×±¶•™ªº†‡\u00a0")


def looks_binary(head: bytes) -> bool:
    """Whether the first bytes of a file (BOM-less, not UTF-16) say it is not text.

    Any NUL byte, or more than 10 % control characters, means binary: text in UTF-8 or a
    legacy 8-bit code page has neither.
    """
    if not head:
        return False
    if b"\x00" in head:
        return True
    controls = len(head) - len(head.translate(None, _BINARY_CONTROLS))
    return controls * 10 > len(head)


def _utf16_without_bom(head: bytes) -> str | None:
    """``utf-16-le``/``-be`` when ``head`` is UTF-16 text without a byte-order mark."""
    pairs = len(head) // 2
    if pairs < 2:
        return None
    zero_even = head[0 : pairs * 2 : 2].count(0)
    zero_odd = head[1 : pairs * 2 : 2].count(0)
    # Latin-script text: the high byte of most characters is zero, the low byte rarely is
    # (U+0100, U+4E00...).
    if zero_odd * 10 >= pairs * 4 and zero_even * 20 <= pairs:
        codec = "utf-16-le"
    elif zero_even * 10 >= pairs * 4 and zero_odd * 20 <= pairs:
        codec = "utf-16-be"
    else:
        return None
    text = head[: pairs * 2].decode(codec, errors="replace")
    # Arrays of small 16-bit numbers have the same zero bytes; as text they are controls.
    if "\x00" in text or len(_BINARY_CHARS.findall(text)) * 10 > len(text):
        return None
    return codec


def _plausible_cp1252(raw: bytes) -> bool:
    try:
        text = raw.decode("cp1252")
    except UnicodeDecodeError:  # bytes cp1252 leaves undefined
        return False
    return all(ch.isalpha() or ch in _CP1252_PUNCTUATION for ch in text if ord(ch) > 0x7F)


def _valid_utf8(sample: bytes, *, complete: bool) -> bool:
    try:
        codecs.getincrementaldecoder("utf-8")().decode(sample, final=complete)
    except UnicodeDecodeError:
        return False
    return True


def text_encoding(sample: bytes, *, html: bool = False, complete: bool = True) -> str | None:
    """The codec that reads a text file, or None when the file is binary.

    Args:
        sample: The file's bytes, or its first bytes (at least :data:`DETECT_BYTES` of a
            larger file, for the same answer as the whole file would give).
        html: Honour an HTML ``<meta charset>`` declaration.
        complete: Whether ``sample`` is the whole file (a cut multi-byte character at the
            end of a partial sample is not damage).

    Returns:
        A codec name for :func:`decode`, or None for binary data.
    """
    for bom, codec in BOMS:
        if sample.startswith(bom):
            return codec
    head = sample[:SNIFF_BYTES]
    wide = _utf16_without_bom(head)
    if wide is not None:
        return wide
    if looks_binary(head):
        return None
    if _valid_utf8(sample, complete=complete):
        return "utf-8"
    if html:
        m = _META_CHARSET.search(sample[:4096])
        if m:
            declared = m.group(1).decode("ascii")
            with contextlib.suppress(LookupError):
                return codecs.lookup(declared).name
    lenient = sample.decode("utf-8", errors="replace")
    # Valid multi-byte UTF-8 sequences (characters above U+007F other than U+FFFD) mean the
    # file is UTF-8 with some damage, not a legacy code page.
    if any(ord(ch) > 0x7F for ch in lenient.replace("\ufffd", "")):
        return "utf-8"
    # The detector is shown only the lines that are not ASCII: in a long file with a few
    # accented lines, the ASCII rest drowns the evidence (it then guesses Arabic or Urdu
    # code pages for French).
    head = sample[:DETECT_BYTES]
    evidence = b"\n".join(line for line in head.split(b"\n") if not line.isascii()) or head
    try:
        from charset_normalizer import from_bytes

        best = from_bytes(evidence).best()
    except Exception:  # a detector failure must not lose the file
        best = None
    if best is not None and best.encoding:
        encoding = best.encoding
        if encoding.replace("-", "_").lower() in _LATIN_CODEPAGES and _plausible_cp1252(head):
            encoding = "cp1252"
        with contextlib.suppress(LookupError):
            return codecs.lookup(encoding).name
    return "utf-8"


def decode(raw: bytes, codec: str) -> str:
    """``raw`` read with ``codec`` (from :func:`text_encoding`): never fails, no NUL chars."""
    return raw.decode(codec, errors="replace").replace("\x00", "")


def decode_text(raw: bytes, *, html: bool = False) -> str | None:
    """A whole text file's bytes as text, or None when they are binary.

    Args:
        raw: The file's bytes.
        html: Honour an HTML ``<meta charset>`` declaration.

    Returns:
        The text (never fails on damaged bytes: U+FFFD marks them), or None for binary data.
    """
    codec = text_encoding(raw, html=html)
    return None if codec is None else decode(raw, codec)
