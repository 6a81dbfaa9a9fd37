"""One decoder: indexing, read_file and attachments read the same bytes as the same text.

Before issue 15 each path had its own rules (``loaders.decode_text``, ``files._guess_encoding``,
``attachments._decode``): a BOM-less UTF-16 file was "binary" to all three, a UTF-8 file with a
few damaged bytes became a legacy code page as an attachment, and read_file chose the encoding
from the first 8 KB only. Each hostile input below goes through the three real entry points
(``loaders.load_file``, the ``read_file`` tool, ``read_attachment``) and must come out the
same, or be refused by all three. The attachment reader is plain Python (no widget needed).
"""

from __future__ import annotations

import array
from pathlib import Path

import pytest

from parley.core.knowledge.loaders import FileSkipped, load_file
from parley.core.tools import FolderPolicy, ToolError
from parley.core.tools.read_file import read_file_impl
from parley.ui.attachments import AttachmentRefused, read_attachment

GERMAN = "Grüße aus Köln, schön daß Sie da sind.\nZweite Zeile: „Prost“ – 10 €.\nEnde"
FRENCH = "\n".join(["Le café était très animé; les élèves déjeunaient à côté du théâtre."] * 20)
LINE = "Grüße aus München — naïve café."

TEXTS: dict[str, tuple[bytes, str | None]] = {
    # name: (bytes on disk, the text every path must read; None: decoded by the rules only)
    "utf-16-le without BOM": (GERMAN.encode("utf-16-le"), GERMAN),
    "utf-16-be without BOM": (GERMAN.encode("utf-16-be"), GERMAN),
    "utf-16 with BOM": (GERMAN.encode("utf-16"), GERMAN),
    "utf-32 with BOM": (GERMAN.encode("utf-32"), GERMAN),
    "utf-8 with BOM": (b"\xef\xbb\xbf" + GERMAN.encode(), GERMAN),
    "windows-1252": (FRENCH.encode("cp1252"), FRENCH),
    "damaged utf-8": (
        "\n".join([LINE] * 5).encode() + b"\xff\xfe\xc3\n" + "\n".join([LINE] * 5).encode(),
        "\n".join([LINE] * 5) + "\ufffd\ufffd\ufffd\n" + "\n".join([LINE] * 5),
    ),
    "overlong and surrogate utf-8": (
        "café ".encode() + b"\xc0\xaf \xed\xa0\x80 end",
        None,
    ),
    "NUL past the sniffed start": (
        b"a plain line of text, long enough to pass the sniffed 8 KB soon\n" * 150
        + b"x\x00y\nlast",
        None,
    ),
    "ANSI colours and bidi controls": (
        b"\x1b[31mred\x1b[0m text \xe2\x80\xae evil \xe2\x80\xac\nnext line",
        "\x1b[31mred\x1b[0m text \u202e evil \u202c\nnext line",
    ),
    "CRLF line ends": (b"first\r\nsecond\r\nthird", "first\nsecond\nthird"),
}

BINARY: dict[str, bytes] = {
    "png": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)),
    "control bytes": bytes(range(1, 9)) * 500 + b"some text",
    "16-bit numbers": array.array("H", [7, 300, 2, 9] * 200).tobytes(),
}


def _via_loaders(path: Path) -> str | None:
    try:
        doc = load_file(path)
    except FileSkipped as exc:
        assert exc.reason == "binary file"
        return None
    assert len(doc.blocks) == 1  # the inputs have no blank lines: one paragraph
    return doc.blocks[0].text


def _via_read_file(path: Path, start_line: int = 1) -> str | None:
    # The tool's body, called as the registry calls it (in a thread; here no event loop is
    # needed, and a UI test must not start its own).
    try:
        content = read_file_impl(FolderPolicy([path.parent]), path.name, start_line)
    except ToolError as exc:
        assert "is a binary file" in str(exc)
        return None
    rows = content.split("\n")[1:]  # after the header: "n<TAB>text" rows
    return "\n".join(row.partition("\t")[2] for row in rows)


def _via_attachment(path: Path) -> str | None:
    try:
        text = read_attachment(path).text
    except AttachmentRefused as exc:
        assert "not a text file" in exc.user_message
        return None
    return text.replace("\r\n", "\n")


@pytest.mark.parametrize("name", list(TEXTS))
def test_the_three_paths_read_hostile_text_the_same(tmp_path: Path, name: str) -> None:
    raw, expected = TEXTS[name]
    path = tmp_path / "input.txt"
    path.write_bytes(raw)
    indexed, read, attached = _via_loaders(path), _via_read_file(path), _via_attachment(path)
    assert attached is not None, "refused as binary"
    assert indexed == read == attached
    if expected is not None:
        assert attached == expected
    assert "\x00" not in attached


@pytest.mark.parametrize("name", list(BINARY))
def test_the_three_paths_refuse_the_same_binaries(tmp_path: Path, name: str) -> None:
    path = tmp_path / "input.txt"
    path.write_bytes(BINARY[name])
    assert (_via_loaders(path), _via_read_file(path), _via_attachment(path)) == (None, None, None)


def test_read_file_judges_a_big_file_by_more_than_its_first_8_kb(tmp_path: Path) -> None:
    # ASCII for 100 KB, then Windows-1252 accents: the encoding shows only past the start.
    text = "x" * 99 + "\n"
    raw = (text * 1000).encode() + FRENCH.encode("cp1252")
    path = tmp_path / "late.txt"
    path.write_bytes(raw)
    assert _via_read_file(path, start_line=1001) == FRENCH
    assert _via_loaders(path) == _via_attachment(path) == (text * 1000 + FRENCH).strip()
