"""``core.display``: untrusted text made safe to show, paths that are not UTF-8 kept lossless."""

from __future__ import annotations

import json
import os
import sqlite3

import pytest

from parley.core.display import (
    TerminalText,
    escape_surrogates,
    for_terminal,
    format_size,
    location_text,
    path_from_text,
    path_text,
    safe_json,
    safe_text,
)

HOSTILE = "a\x1b]0;pwned\x07b\x1b[2Jc\x9bd\u202ee\u2066f\x7fg\x00h\x08i"


def test_safe_text_shows_every_control_and_bidi_character() -> None:
    out = safe_text(HOSTILE)
    assert out == "a\\x1b]0;pwned\\x07b\\x1b[2Jc\\x9bd\\u202ee\\u2066f\\x7fg\\x00h\\x08i"
    assert not any(ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F for ch in out)


def test_safe_text_keeps_newlines_tabs_and_ordinary_text() -> None:
    text = "Zürich\tcafé 東京 🚀 👨‍👩‍👧\nsecond line"
    assert safe_text(text) is text  # nothing to do costs nothing
    assert safe_text("one\r\ntwo\rthree") == "one\ntwo\\rthree"  # CR LF is a line end
    assert safe_text("a\tb\nc", one_line=True) == "a\\tb\\nc"


def test_escape_surrogates_only_touches_lone_surrogates() -> None:
    name = os.fsdecode(b"caf\xe9 \xff.txt")
    assert escape_surrogates(name) == "caf\\xe9 \\xff.txt"
    assert escape_surrogates("x\ud83d\ude00y") == "x😀y"  # a split pair is one character
    assert escape_surrogates("x\ud800") == "x\\ud800"
    assert escape_surrogates(HOSTILE) is HOSTILE


@pytest.mark.skipif(os.name != "posix", reason="POSIX names are bytes")
@pytest.mark.parametrize(
    "raw", [b"caf\xe9.txt", b"\xff\xfe", b"ok.txt", b"mixed \xc3\xa9 \xe9 \\x41.md", b"\x80"]
)
def test_path_text_round_trips_every_byte(raw: bytes) -> None:
    name = os.fsdecode(raw)
    text = path_text(name)
    text.encode("utf-8")  # always valid text: SQLite, JSON, HTTP take it
    json.dumps(text, ensure_ascii=False).encode("utf-8")
    # (a literal "\x41" stays: bytes below 0x80 are never escaped, so never unescaped)
    assert os.fsencode(path_from_text(text)) == raw


def test_path_text_is_valid_in_sqlite_where_the_raw_name_is_not() -> None:
    name = os.fsdecode(b"/docs/caf\xe9.txt")
    db = sqlite3.connect(":memory:")
    with pytest.raises(UnicodeEncodeError):
        db.execute("SELECT ?", (name,))
    assert db.execute("SELECT ?", (path_text(name),)).fetchone()[0] == "/docs/caf\\xe9.txt"


def test_safe_json_is_exact_and_terminal_safe() -> None:
    value = {"path": "a\x1b]0;x\x07\u202e", "c1": "\x9b31m", "s": "x\udce9"}
    text = safe_json(value)
    assert json.loads(text) == value
    assert not any(0x7F <= ord(c) <= 0x9F or c in "\u202e\x1b\x07" for c in text)
    text.encode("utf-8")


@pytest.mark.parametrize(
    ("chunks", "expected"),
    [
        (["line\r", "\nnext"], "line\nnext"),  # CR LF split across chunks
        (["over\r", "write"], "over\\rwrite"),  # a lone CR split from what follows
        (["tail\r"], "tail\\r"),  # a CR at the very end
        (["a\x1b", "[2J"], "a\\x1b[2J"),  # ESC alone is shown, the rest is harmless text
        (["x\ud83d", "\ude00y"], "x😀y"),  # a surrogate pair split across chunks
        (["\u202e", "abc"], "\\u202eabc"),
    ],
)
def test_terminal_text_judges_split_sequences_whole(chunks: list[str], expected: str) -> None:
    t = TerminalText()
    out = "".join(t.feed(c) for c in chunks) + t.flush()
    assert out == expected


def test_terminal_text_streams_without_holding_ordinary_text() -> None:
    t = TerminalText()
    assert t.feed("Hello ") == "Hello "
    assert t.feed("world\r") == "world"
    assert t.feed("\n") == "\n"


def test_for_terminal_depends_on_the_stream() -> None:
    class Tty:
        def isatty(self) -> bool:
            return True

    class Pipe:
        def isatty(self) -> bool:
            return False

    name = os.fsdecode(b"x\xe9\x1b")
    assert for_terminal(name, Tty()) == "x\\xe9\\x1b"
    assert for_terminal(name, Pipe()) == "x\\xe9\x1b"  # a pipe gets the text, encodable
    assert for_terminal(name, None) == "x\\xe9\x1b"


# ---------------------------------------------------------------- sizes and places (issue 15)
@pytest.mark.parametrize(
    ("n", "shown"),
    [
        (0, "0 bytes"),
        (1023, "1023 bytes"),
        (1024, "1 KB"),
        (1536, "1.5 KB"),
        (2**20 - 1, "1 MB"),  # rounds up into the next unit, never "1024 KB"
        (50 * 2**20, "50 MB"),
        (int(104.9 * 2**20), "104.9 MB"),
        (2**30, "1 GB"),
        (5000 * 2**40, "5000 TB"),
    ],
)
def test_one_size_format(n: int, shown: str) -> None:
    assert format_size(n) == shown


def test_one_location_form() -> None:
    assert location_text(3, 10, 24) == "page 3"  # a page wins over lines
    assert location_text(None, 7, None) == "line 7"
    assert location_text(None, 7, 7) == "line 7"
    assert location_text(None, 10, 24) == "lines 10–24"
    assert location_text() == ""
