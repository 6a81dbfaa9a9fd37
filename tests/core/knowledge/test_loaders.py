"""Loaders: every bad input from issue 4 is a test, with real files built here.

PDFs are written by hand (a text content stream in Helvetica) and then given bookmarks or
encryption by pypdf's own writer; DOCX files by python-docx; bombs by hand-assembled zips.
Isolation tests run real worker processes with short time limits.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import struct
import threading
import time
import zlib
from pathlib import Path

import psutil
import pytest

from parley.core.knowledge.loaders import (
    Block,
    FileSkipped,
    IsolatedLoader,
    LoadedDocument,
    kind_for,
    load_file,
)
from tests.unprivileged import denies_reads, run_as_nobody, shared_tmp

# ---------------------------------------------------------------------------- builders


def _pdf_string(s: str) -> bytes:
    return (
        b"("
        + s.encode("latin-1").replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")
        + b")"
    )


def pdf_bytes(pages: list[list[str]], *, objects: list[bytes] | None = None) -> bytes:
    """A minimal valid PDF: one page per entry, each line drawn with Tj / T*."""
    if objects is None:
        objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b""]
        kids = []
        font = 3
        objects.append(
            b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"
        )
        for lines in pages:
            ops = (
                b"BT /F1 12 Tf 14 TL 72 720 Td "
                + b" T* ".join(_pdf_string(x) + b" Tj" for x in lines)
                + b" ET"
            )
            content = len(objects) + 2
            kids.append(len(objects) + 1)
            objects.append(
                b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
                b"/Resources << /Font << /F1 %d 0 R >> >> /Contents %d 0 R >>" % (font, content)
            )
            objects.append(b"<< /Length %d >>\nstream\n" % len(ops) + ops + b"\nendstream")
        objects[1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (
            b" ".join(b"%d 0 R" % k for k in kids),
            len(kids),
        )
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for i, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def pdf_with(
    tmp_path: Path, pages: list[list[str]], *, outline=(), user_password=None, owner_password=None
) -> Path:
    """Hand-made PDF passed through pypdf's writer for bookmarks and/or encryption."""
    import io

    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf_bytes(pages))))
    for title, page in outline:
        writer.add_outline_item(title=title, page_number=page)
    if user_password is not None or owner_password is not None:
        writer.encrypt(
            user_password=user_password or "", owner_password=owner_password, algorithm="AES-128"
        )
    path = tmp_path / "doc.pdf"
    with open(path, "wb") as f:
        writer.write(f)
    return path


def xref_loop_pdf() -> bytes:
    """Two xref sections whose trailers name each other as /Prev."""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for i, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    table = b"0 4\n0000000000 65535 f \n" + b"".join(b"%010d 00000 n \n" % o for o in offsets)
    a = len(out)
    section_a = b"xref\n" + table + b"trailer\n<< /Size 4 /Root 1 0 R /Prev %010d >>\n"
    b = a + len(section_a % 0)
    section_a %= b
    section_b = b"xref\n" + table + b"trailer\n<< /Size 4 /Root 1 0 R /Prev %010d >>\n" % a
    out += section_a + section_b + b"startxref\n%d\n%%%%EOF\n" % a
    return bytes(out)


def slow_pdf(operators: int = 3_000_000) -> bytes:
    """A CPU bomb: one page whose compressed content stream holds millions of text operators."""
    ops = b"BT /F1 12 Tf 72 720 Td " + b"(a) Tj " * operators + b"ET"
    data = zlib.compress(ops, 9)
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
        b"/Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R >>",
        b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(data) + data + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    return pdf_bytes([], objects=objects)


_CONTENT_TYPES = (
    b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    b'<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    b'<Default Extension="rels" '
    b'ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    b'<Default Extension="xml" ContentType="application/xml"/>'
    b'<Override PartName="/word/document.xml" '
    b'ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/>'
    b"</Types>"
)
_RELS = (
    b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    b'<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    b'<Relationship Id="rId1" '
    b'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" '
    b'Target="word/document.xml"/></Relationships>'
)
_W = b'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'


def zip_bytes(entries: list[tuple[str, bytes, int, int]]) -> bytes:
    """A zip from (name, raw-deflate data, crc32, uncompressed size) — sizes may exceed data."""
    out = bytearray()
    central = bytearray()
    for name, data, crc, size in entries:
        n = name.encode()
        offset = len(out)
        out += struct.pack(
            "<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, 0x21, crc, len(data), size, len(n), 0
        )
        out += n + data
        central += struct.pack(
            "<IHHHHHHIIIHHHHHII",
            0x02014B50,
            20,
            20,
            0,
            8,
            0,
            0x21,
            crc,
            len(data),
            size,
            len(n),
            0,
            0,
            0,
            0,
            0,
            offset,
        )
        central += n
    out += central
    out += struct.pack(
        "<IHHHHIIH",
        0x06054B50,
        0,
        0,
        len(entries),
        len(entries),
        len(central),
        len(out) - len(central),
        0,
    )
    return bytes(out)


def deflated(data: bytes) -> tuple[bytes, int, int]:
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush(), zlib.crc32(data), len(data)


def bomb_docx(unpacked_gib: int = 2) -> bytes:
    """A DOCX whose document.xml inflates to GiBs (~1 MB per GiB on disk, never written out).

    Deflate output after a full flush does not depend on earlier input, so one compressed
    MiB of spaces is repeated instead of compressing GiBs here.
    """
    head = b'<?xml version="1.0"?><w:document ' + _W + b"><w:body><w:p><w:r><w:t>"
    tail = b"</w:t></w:r></w:p></w:body></w:document>"
    block = b" " * 2**20
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    start = c.compress(head) + c.flush(zlib.Z_FULL_FLUSH)
    one = c.compress(block) + c.flush(zlib.Z_FULL_FLUSH)
    again = c.compress(block) + c.flush(zlib.Z_FULL_FLUSH)
    assert one == again  # the trick holds
    blocks = unpacked_gib * 1024
    data = start + one * blocks + c.compress(tail) + c.flush()
    crc = zlib.crc32(head)
    for _ in range(blocks):
        crc = zlib.crc32(block, crc)
    crc = zlib.crc32(tail, crc)
    size = len(head) + blocks * len(block) + len(tail)
    return zip_bytes(
        [
            ("[Content_Types].xml", *deflated(_CONTENT_TYPES)),
            ("_rels/.rels", *deflated(_RELS)),
            ("word/document.xml", data, crc, size),
        ]
    )


def laughs_docx() -> bytes:
    """A DOCX whose document.xml is a billion-laughs entity bomb."""
    entities = b'<!ENTITY lol "lol">' + b"".join(
        b'<!ENTITY lol%d "%s">' % (i, (b"&lol%d;" % (i - 1) if i > 1 else b"&lol;") * 10)
        for i in range(1, 10)
    )
    xml = (
        b'<?xml version="1.0"?><!DOCTYPE w:document [' + entities + b"]><w:document " + _W + b">"
        b"<w:body><w:p><w:r><w:t>&lol9;</w:t></w:r></w:p></w:body></w:document>"
    )
    return zip_bytes(
        [
            ("[Content_Types].xml", *deflated(_CONTENT_TYPES)),
            ("_rels/.rels", *deflated(_RELS)),
            ("word/document.xml", *deflated(xml)),
        ]
    )


def skip_reason(path: Path, **kwargs) -> str:
    with pytest.raises(FileSkipped) as info:
        load_file(path, **kwargs)
    return info.value.reason


# ---------------------------------------------------------------------------- kinds


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("notes.txt", "text"),
        ("README.md", "markdown"),
        ("guide.MARKDOWN", "markdown"),
        ("index.rst", "rst"),
        ("main.py", "code"),
        ("App.TSX", "code"),
        ("query.sql", "code"),
        ("styles.scss", "code"),
        ("page.htm", "html"),
        ("paper.pdf", "pdf"),
        ("report.docx", "docx"),
        ("table.tsv", "data"),
        ("config.yml", "data"),
        ("README", "text"),
        ("Makefile", "code"),
        ("Dockerfile", "code"),
        ("photo.png", None),
        ("slides.pptx", None),
        ("archive.tar.gz", None),
        ("noextension", None),
        (".bashrc", None),
    ],
)
def test_kind_for(name: str, kind: str | None) -> None:
    assert kind_for(Path(name)) == kind


def test_unsupported_type_is_skipped_with_reason(tmp_path: Path) -> None:
    p = tmp_path / "slides.pptx"
    p.write_bytes(b"PK\x03\x04")
    assert skip_reason(p) == "unsupported file type (.pptx)"


# ---------------------------------------------------------------------------- text, encodings


def test_empty_file_is_an_empty_document(tmp_path: Path) -> None:
    p = tmp_path / "empty.txt"
    p.write_bytes(b"")
    doc = load_file(p)
    assert doc.blocks == []
    assert doc.size == 0
    assert doc.sha256 == hashlib.sha256(b"").hexdigest()
    assert doc.kind == "text"


def test_whitespace_only_file_has_no_blocks(tmp_path: Path) -> None:
    p = tmp_path / "blank.md"
    p.write_text("\n\n   \n\t\n")
    assert load_file(p).blocks == []


def test_binary_named_txt_is_skipped(tmp_path: Path) -> None:
    p = tmp_path / "image.txt"
    p.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + os.urandom(4000))
    assert skip_reason(p) == "binary file"


def test_control_characters_without_nul_are_binary(tmp_path: Path) -> None:
    p = tmp_path / "weird.log"
    p.write_bytes(bytes(range(1, 9)) * 500 + b"some text")
    assert skip_reason(p) == "binary file"


def test_ansi_coloured_log_is_text(tmp_path: Path) -> None:
    p = tmp_path / "build.log"
    p.write_bytes(b"\x1b[32mOK\x1b[0m step one\n" * 50)
    doc = load_file(p)
    assert "step one" in doc.blocks[0].text


@pytest.mark.parametrize(
    ("text", "codec"),
    [
        ("Le café crème était brûlant, déjà servi à côté de la fenêtre. ", "latin-1"),
        ("Grüße aus München, schön daß Sie da sind – „Prost“. ", "cp1252"),
        ("Привет, как дела? Это проверка кодировки. ", "cp1251"),
        ("Zażółć gęślą jaźń, powiedział stróż. ", "cp1250"),
    ],
)
def test_legacy_code_pages_are_detected_not_mangled(tmp_path: Path, text: str, codec: str) -> None:
    p = tmp_path / "legacy.txt"
    p.write_bytes((text * 20).encode(codec))
    doc = load_file(p)
    assert doc.blocks[0].text == (text * 20).strip()


def test_damaged_utf8_keeps_valid_text_and_marks_the_damage(tmp_path: Path) -> None:
    line = "Grüße aus München — naïve café.\n".encode()
    raw = line * 5 + b"\xff\xfe\xc3" + line * 5
    p = tmp_path / "damaged.txt"
    p.write_bytes(raw)
    text = load_file(p).blocks[0].text
    assert text.count("Grüße aus München") == 10
    assert "\ufffd" in text
    assert load_file(p).sha256 == hashlib.sha256(raw).hexdigest()


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-8-sig"])
def test_bom_encodings(tmp_path: Path, codec: str) -> None:
    text = "Ünïcödé line one\n\nSecond paragraph 東京\n"
    boms = {"utf-16-le": b"\xff\xfe", "utf-16-be": b"\xfe\xff"}
    raw = boms.get(codec, b"") + text.encode(codec)
    p = tmp_path / "bom.txt"
    p.write_bytes(raw)
    doc = load_file(p)
    assert [b.text for b in doc.blocks] == ["Ünïcödé line one", "Second paragraph 東京"]
    assert [(b.line_start, b.line_end) for b in doc.blocks] == [(1, 1), (3, 3)]


def test_crlf_and_line_ranges_of_plain_text(tmp_path: Path) -> None:
    p = tmp_path / "notes.txt"
    p.write_bytes(b"first para\r\nline two\r\n\r\n\r\n  second para\r\n\r\nthird\r\n")
    doc = load_file(p)
    assert [(b.text, b.line_start, b.line_end) for b in doc.blocks] == [
        ("first para\nline two", 1, 2),
        ("  second para", 5, 5),
        ("third", 7, 7),
    ]
    assert all(b.kind == "paragraph" for b in doc.blocks)


def test_code_blocks_track_lines(tmp_path: Path) -> None:
    source = "import os\n\n\ndef f():\n    return 1\n\n    # tail\n"
    p = tmp_path / "m.py"
    p.write_text(source)
    doc = load_file(p)
    assert doc.kind == "code"
    assert [(b.kind, b.line_start, b.line_end) for b in doc.blocks] == [
        ("code", 1, 1),
        ("code", 4, 5),
        ("code", 7, 7),
    ]
    lines = source.split("\n")
    for b in doc.blocks:  # each block is exactly its lines
        assert b.text == "\n".join(lines[b.line_start - 1 : b.line_end])


def test_size_cap_skips_a_100_mb_single_line(tmp_path: Path) -> None:
    p = tmp_path / "huge.txt"
    line = b"word " * (2**20 // 5) + b"w" * (2**20 % 5)
    with open(p, "wb") as f:
        for _ in range(100):
            f.write(line)  # one line, no newline anywhere
    assert p.stat().st_size == 100 * 2**20
    assert skip_reason(p) == "larger than 50 MB (100 MB)"
    assert skip_reason(p, max_bytes=99 * 2**20) == "larger than 99 MB (100 MB)"
    with (
        IsolatedLoader() as loader,
        pytest.raises(FileSkipped, match=r"^larger than 50 MB \(100 MB\)$"),
    ):
        loader.load(p)


def test_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs on this platform")
    p = tmp_path / "pipe.txt"
    os.mkfifo(p)
    assert skip_reason(p) == "not a regular file"


def test_directory_named_like_a_file(tmp_path: Path) -> None:
    p = tmp_path / "folder.md"
    p.mkdir()
    assert skip_reason(p) == "not a regular file"


def test_file_deleted_before_reading(tmp_path: Path) -> None:
    p = tmp_path / "gone.txt"
    p.write_text("listed by the walk a moment ago")
    p.unlink()
    assert skip_reason(p) == "file not found"
    with IsolatedLoader() as loader, pytest.raises(FileSkipped, match=r"^file not found$"):
        loader.load(p)


def test_file_deleted_and_recreated_while_read_is_never_torn(tmp_path: Path) -> None:
    """Another program replaces a file over and over: no load mixes two versions."""
    p = tmp_path / "churn.txt"
    versions = [(ch * 64 + "\n") * 40_000 for ch in "ab"]  # 2.6 MB each
    p.write_text(versions[0])
    stop = threading.Event()

    def churn() -> None:
        i = 0
        while not stop.is_set():
            p.unlink(missing_ok=True)
            p.write_text(versions[i % 2])
            i += 1

    t = threading.Thread(target=churn)
    t.start()
    seen: set[str] = set()
    try:
        for _ in range(30):
            try:
                doc = load_file(p)
            except FileSkipped as exc:
                seen.add(exc.reason)
            else:
                # A state the file really had: one version, whole or still being written
                # (a write in progress changes no size or time between our checks), never
                # a mix of two versions.
                text = "\n\n".join(b.text for b in doc.blocks)
                assert any(v.startswith(text) for v in versions)
                seen.add("whole" if text + "\n" in versions else "prefix")
    finally:
        stop.set()
        t.join()
    allowed = {
        "whole",
        "prefix",
        "file not found",
        "file vanished while reading",
        "file changed while reading",
    }
    assert seen <= allowed


def test_permission_denied(tmp_path: Path) -> None:
    if denies_reads():
        p = tmp_path / "secret.txt"
        p.write_text("private")
        p.chmod(0)
        try:
            assert skip_reason(p) == "permission denied"
        finally:
            p.chmod(0o600)
        return
    # root reads anything: ask as nobody instead
    d = shared_tmp()
    try:
        p = d / "secret.txt"
        p.write_text("private")
        p.chmod(0)
        code = (
            "import json\nfrom pathlib import Path\n"
            "from parley.core.knowledge.loaders import FileSkipped, load_file\n"
            f"try:\n    load_file(Path({str(p)!r}))\n    print('null')\n"
            "except FileSkipped as exc:\n    print(json.dumps(exc.reason))\n"
        )
        assert run_as_nobody(code) == "permission denied"
    finally:
        shutil.rmtree(d)


def test_file_growing_while_read_is_never_torn(tmp_path: Path) -> None:
    """A writer appends while we read: we get a consistent prefix or a clear skip, never a mix."""
    p = tmp_path / "growing.log"
    unit = b"0123456789abcdef\n"
    p.write_bytes(unit * 200_000)  # 3.4 MB: a read takes long enough to overlap the writer
    stop = threading.Event()
    started = threading.Event()

    def writer() -> None:
        with open(p, "ab", buffering=0) as f:
            while not stop.is_set():
                f.write(unit)
                started.set()

    t = threading.Thread(target=writer)
    t.start()
    reasons: list[str] = []
    try:
        assert started.wait(10)
        # At least 20 reads, and on until one overlapped the writer (a loaded machine can
        # schedule the writer thread so that 20 reads in a row miss it).
        deadline = time.monotonic() + 60
        tries = 0
        while tries < 20 or (not reasons and time.monotonic() < deadline):
            tries += 1
            try:
                doc = load_file(p)
            except FileSkipped as exc:
                reasons.append(exc.reason)
            else:
                text = "\n\n".join(b.text for b in doc.blocks)
                assert len(text) % len(unit) == len(unit) - 1  # whole lines only
                assert set(text.split("\n")) == {unit.decode().strip()}
                assert doc.size == len(text) + 1
    finally:
        stop.set()
        t.join()
    assert reasons, "an appended-to file was never noticed"
    assert set(reasons) == {"file changed while reading"}


@pytest.mark.parametrize(
    "name", ["Résumé – Zürich 東京 🚀.md", "é" * 126 + ".md", "x" * 252 + ".md"]
)
def test_non_ascii_and_255_byte_names(tmp_path: Path, name: str) -> None:
    assert len(name.encode()) <= 255
    p = tmp_path / name
    p.write_text("# Title\n\nBody.\n")
    doc = load_file(p)
    assert doc.path == p
    assert [b.kind for b in doc.blocks] == ["heading", "paragraph"]


# ---------------------------------------------------------------------------- Markdown, RST

MARKDOWN = """\
---
title: Front matter
tags: [a, b]
---

Guide
=====

Intro paragraph
over two lines.

## Install

- item one
- item two

| a | b |
|---|---|
| 1 | 2 |

```python
# not a heading: inside a fence
x = 1

y = 2
```

Setext two
----------

~~~
## still code
~~~~

### Deep #
***
Tail text.

````
unclosed fence
# swallowed to the end
"""


def test_markdown_structure(tmp_path: Path) -> None:
    p = tmp_path / "guide.md"
    p.write_text(MARKDOWN)
    blocks = load_file(p).blocks
    summary = [(b.kind, b.level, b.line_start, b.line_end) for b in blocks]
    assert summary == [
        ("code", 0, 1, 4),  # front matter kept whole
        ("heading", 1, 6, 7),
        ("paragraph", 0, 9, 10),
        ("heading", 2, 12, 12),
        ("list", 0, 14, 15),
        ("table", 0, 17, 19),
        ("code", 0, 21, 26),
        ("heading", 2, 28, 29),
        ("code", 0, 31, 33),
        ("heading", 3, 35, 35),
        ("paragraph", 0, 37, 37),
        ("code", 0, 39, 41),
    ]
    assert blocks[1].text == "Guide"
    assert blocks[7].text == "Setext two"
    assert blocks[9].text == "Deep"  # closing hashes removed
    assert "# not a heading" in blocks[6].text and "y = 2" in blocks[6].text
    assert blocks[8].text == "~~~\n## still code\n~~~~"
    lines = MARKDOWN.split("\n")
    for b in blocks:
        if b.kind in ("code", "list", "table", "paragraph"):
            assert b.text == "\n".join(lines[b.line_start - 1 : b.line_end]).strip("\n")


@pytest.mark.parametrize(
    ("line", "title"),
    [
        ("# Title", "Title"),
        ("### Deep ###", "Deep"),
        ("## C# and F#", "C# and F#"),
        ("## Ends with#", "Ends with#"),
        ("#hashtag", None),
        ("####### seven", None),
        ("   # indented", "indented"),
        ("    # code, not a heading", None),
    ],
)
def test_atx_headings(tmp_path: Path, line: str, title: str | None) -> None:
    p = tmp_path / "h.md"
    p.write_text(line + "\n")
    headings = [b.text for b in load_file(p).blocks if b.kind == "heading"]
    assert headings == ([title] if title else [])


def test_hostile_markdown_lines_parse_in_linear_time(tmp_path: Path) -> None:
    """Regexes meet untrusted text: no catastrophic backtracking on long lines."""
    p = tmp_path / "hostile.md"
    lines = ["# x" + " " * 300_000 + "y", "-" + " " * 300_000 + "x", "```" + "`" * 300_000]
    p.write_text("\n".join(lines) + "\n")
    t0 = time.process_time()
    blocks = load_file(p).blocks
    assert time.process_time() - t0 < 2
    assert blocks[0].kind == "heading" and blocks[0].text.endswith("y")


def test_rst_titles(tmp_path: Path) -> None:
    p = tmp_path / "doc.rst"
    p.write_text(
        "=======\nManual\n=======\n\nIntro.\n\nInstall\n=======\n\n"
        "Run this::\n\n    pip install x\n\nLinux\n-----\n\nText.\n\n----\n\n"
        "Usage\n=======\n\nMore.\n"
    )
    blocks = load_file(p).blocks
    assert [(b.kind, b.text, b.level) for b in blocks if b.kind == "heading"] == [
        ("heading", "Manual", 1),
        ("heading", "Install", 2),
        ("heading", "Linux", 3),
        ("heading", "Usage", 2),
    ]
    assert ("code", "    pip install x") in [(b.kind, b.text) for b in blocks]
    assert "----" not in [b.text for b in blocks]  # a transition is not text


# ---------------------------------------------------------------------------- HTML

HTML = """<!DOCTYPE html>
<html><head><title>Site title</title>
<script src="http://203.0.113.9/tracker.js"></script>
<link rel="stylesheet" href="http://203.0.113.9/x.css"><style>body { color: red }</style></head>
<body>
<header><nav><a href="/">Home</a> | <a href="/about">About</a></nav>Site banner</header>
<div class="sidebar">Sidebar links</div>
<main>
<article>
<header><h1>Article &amp; title</h1><p class="byline">By Ann</p></header>
<p>First <b>bold</b>
 paragraph.<img src="http://203.0.113.9/pixel.gif"></p>
<h2>Details</h2>
<ul><li>One<li>Two</ul>
<table><tr><th>Name<th>Value</tr><tr><td>a</td><td>1</td></tr></table>
<pre>
def f():
    return 1
</pre>
<div hidden>Hidden text</div><span aria-hidden="true">icon</span>
<script>document.write("Injected")</script><noscript>Enable JS</noscript>
</article>
</main>
<aside>Related posts</aside>
<footer>Copyright footer</footer>
</body></html>
"""


def test_html_keeps_visible_text_and_headings_only(tmp_path: Path) -> None:
    p = tmp_path / "page.html"
    p.write_text(HTML)
    blocks = load_file(p).blocks
    texts = [b.text for b in blocks]
    joined = "\n".join(texts)
    for gone in (
        "Home",
        "Site banner",
        "Sidebar",
        "Site title",
        "color: red",
        "Injected",
        "Enable JS",
        "Hidden text",
        "icon",
        "Related",
        "Copyright",
    ):
        assert gone not in joined, gone
    assert [(b.kind, b.level, b.text) for b in blocks if b.kind == "heading"] == [
        ("heading", 1, "Article & title"),
        ("heading", 2, "Details"),
    ]
    assert "First bold paragraph." in texts
    assert "By Ann" in texts  # an article's own header is content
    assert [b.text for b in blocks if b.kind == "list"] == ["One", "Two"]
    assert "Name | Value\na | 1" in texts
    code = [b for b in blocks if b.kind == "code"]
    assert code and code[0].text == "def f():\n    return 1"
    heading = next(b for b in blocks if b.kind == "heading")
    assert heading.line_start == 10


def test_html_meta_charset(tmp_path: Path) -> None:
    p = tmp_path / "old.htm"
    page = (
        '<html><head><meta charset="windows-1252"></head><body><p>“Quoted” – café</p></body></html>'
    )
    p.write_bytes(page.encode("cp1252"))
    assert [b.text for b in load_file(p).blocks] == ["“Quoted” – café"]


def test_html_nested_tables_and_line_breaks_in_cells(tmp_path: Path) -> None:
    p = tmp_path / "t.html"
    p.write_text(
        "<table><tr><td>outer<br>cell</td><td><table><tr><td>in1</td><td>in2</td></tr>"
        "<tr><td>in3</td></tr></table></td></tr><tr><td>last</td></tr></table><p>after</p>"
    )
    assert [(b.kind, b.text) for b in load_file(p).blocks] == [
        ("table", "outer cell | in1 | in2 / in3\nlast"),
        ("paragraph", "after"),
    ]


def test_html_malformed_does_not_lose_text(tmp_path: Path) -> None:
    p = tmp_path / "bad.html"
    p.write_text("<div><p>One<p>Two</span></div></div><h3>Three<p>Four &bogus; &#99999999;")
    texts = [b.text for b in load_file(p).blocks]
    assert texts[:3] == ["One", "Two", "Three"]
    assert texts[3].startswith("Four &bogus;")


# ---------------------------------------------------------------------------- PDF


def test_pdf_pages_and_bookmark_headings(tmp_path: Path) -> None:
    pages = [
        ["Preface text on page one."],
        ["Some words before.", "Chapter One", "Body of chapter one."],
        ["Chapter Two", "Body of chapter two."],
    ]
    p = pdf_with(tmp_path, pages, outline=[("Chapter One", 1), ("Chapter Two", 2)])
    doc = load_file(p)
    assert doc.kind == "pdf"
    assert [(b.kind, b.page, b.text.replace("\n", " ")) for b in doc.blocks] == [
        ("text", 1, "Preface text on page one."),
        ("text", 2, "Some words before."),
        ("heading", 2, "Chapter One"),
        ("text", 2, "Body of chapter one."),
        ("heading", 3, "Chapter Two"),
        ("text", 3, "Body of chapter two."),
    ]


def test_pdf_without_bookmarks_keeps_pages(tmp_path: Path) -> None:
    p = tmp_path / "plain.pdf"
    p.write_bytes(pdf_bytes([["alpha"], [], ["gamma (with) \\ parens"]]))
    doc = load_file(p)
    assert [(b.page, b.text) for b in doc.blocks] == [(1, "alpha"), (3, "gamma (with) \\ parens")]


def test_encrypted_pdf_is_skipped(tmp_path: Path) -> None:
    p = pdf_with(tmp_path, [["secret text"]], user_password="s3cret")
    assert skip_reason(p) == "encrypted PDF (password required)"


def test_pdf_with_owner_password_only_is_read(tmp_path: Path) -> None:
    p = pdf_with(tmp_path, [["printable text"]], owner_password="owner")
    assert [b.text for b in load_file(p).blocks] == ["printable text"]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "damaged PDF: empty file"),
        (b"GIF89a not a pdf at all" * 10, "damaged PDF: not a PDF file"),
        (b"%PDF-1.7\n" + b"\x00garbage\xff" * 100, "damaged PDF: "),
        (pdf_bytes([["cut short"]])[:150], "damaged PDF: "),
    ],
)
def test_corrupt_pdf(tmp_path: Path, data: bytes, reason: str) -> None:
    p = tmp_path / "broken.pdf"
    p.write_bytes(data)
    got = skip_reason(p)
    assert got.startswith(reason)
    assert "\n" not in got and len(got) < 200


def test_pdf_page_tree_loop(tmp_path: Path) -> None:
    p = tmp_path / "loop.pdf"
    p.write_bytes(
        pdf_bytes(
            [],
            objects=[
                b"<< /Type /Catalog /Pages 2 0 R >>",
                b"<< /Type /Pages /Kids [2 0 R 3 0 R] /Count 2 >>",
                b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] >>",
            ],
        )
    )
    assert skip_reason(p).startswith("damaged PDF: ")


def test_pdf_xref_loop_finishes_within_the_time_limit(tmp_path: Path) -> None:
    p = tmp_path / "xref-loop.pdf"
    p.write_bytes(xref_loop_pdf())
    good = pdf_with(tmp_path, [["warm-up"]])
    with IsolatedLoader(timeout_s=5) as loader:
        loader.load(good)  # start the worker first: the limit then measures parsing only
        t0 = time.monotonic()
        try:
            doc = loader.load(p)
        except FileSkipped as exc:
            assert exc.reason.startswith(("damaged PDF", "took longer than 5 s"))
        else:
            assert doc.blocks == []  # one empty page: pypdf noticed the loop and stopped
        assert time.monotonic() - t0 < 5 + 2  # within the limit, never a hang


# ---------------------------------------------------------------------------- DOCX


def _docx(tmp_path: Path) -> Path:
    import docx

    d = docx.Document()
    d.add_heading("Report", 0)  # the Title style
    d.add_paragraph("Opening paragraph.")
    d.add_heading("Findings", 1)
    d.add_paragraph("First finding", style="List Bullet")
    d.add_heading("Detail", 2)
    table = d.add_table(rows=2, cols=3)
    table.cell(0, 0).text = "Name"
    table.cell(0, 1).merge(table.cell(0, 2)).text = "Merged"
    table.cell(1, 0).text = "x"
    table.cell(1, 1).text = "1"
    table.cell(1, 2).text = "2"
    d.add_paragraph("")
    d.add_paragraph("Closing words.")
    path = tmp_path / "report.docx"
    d.save(str(path))
    return path


def test_docx_headings_paragraphs_and_tables(tmp_path: Path) -> None:
    doc = load_file(_docx(tmp_path))
    assert doc.kind == "docx"
    assert [(b.kind, b.level, b.text) for b in doc.blocks] == [
        ("heading", 1, "Report"),
        ("paragraph", 0, "Opening paragraph."),
        ("heading", 1, "Findings"),
        ("list", 0, "First finding"),
        ("heading", 2, "Detail"),
        ("table", 0, "Name | Merged\nx | 1 | 2"),
        ("paragraph", 0, "Closing words."),
    ]


def test_zip_bomb_docx_is_refused_before_inflating(tmp_path: Path) -> None:
    p = tmp_path / "bomb.docx"
    p.write_bytes(bomb_docx(2))
    assert p.stat().st_size < 4 * 2**20
    t0 = time.monotonic()
    reason = skip_reason(p)
    assert reason == "docx archive too large when unpacked (zip bomb?) (2 GB)"
    assert time.monotonic() - t0 < 2  # decided from the zip directory, nothing inflated


def test_small_zip_bomb_docx_is_refused_by_ratio(tmp_path: Path) -> None:
    """Under the total cap, but a 100 MiB part from a few hundred KB is no document."""
    head = b'<?xml version="1.0"?><w:document ' + _W + b"><w:body>"
    xml = head + b" " * (100 * 2**20) + b"</w:body></w:document>"
    p = tmp_path / "ratio.docx"
    p.write_bytes(
        zip_bytes(
            [
                ("[Content_Types].xml", *deflated(_CONTENT_TYPES)),
                ("_rels/.rels", *deflated(_RELS)),
                ("word/document.xml", *deflated(xml)),
            ]
        )
    )
    assert skip_reason(p).startswith("docx archive too large when unpacked (zip bomb?)")


def test_billion_laughs_docx_is_refused(tmp_path: Path) -> None:
    p = tmp_path / "laughs.docx"
    p.write_bytes(laughs_docx())
    assert skip_reason(p) == "docx contains XML entity declarations (unsafe)"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "damaged DOCX: empty file"),
        (b"this is plain text", "damaged DOCX: not a zip archive"),
        (b"PK\x03\x04" + b"\x00" * 100, "damaged DOCX: "),
    ],
)
def test_corrupt_docx(tmp_path: Path, data: bytes, reason: str) -> None:
    p = tmp_path / "broken.docx"
    p.write_bytes(data)
    assert skip_reason(p).startswith(reason)


def test_docx_without_main_part(tmp_path: Path) -> None:
    p = tmp_path / "hollow.docx"
    p.write_bytes(zip_bytes([("[Content_Types].xml", *deflated(_CONTENT_TYPES))]))
    assert skip_reason(p).startswith("damaged DOCX: ")


# ---------------------------------------------------------------------------- isolation


@pytest.fixture
def loader():
    with IsolatedLoader(timeout_s=20) as ld:
        yield ld


def _workers() -> list[psutil.Process]:
    """Loader worker processes: forkserver workers are children of the fork server."""
    me = psutil.Process()
    return [p for p in me.children(recursive=True) if p.ppid() != me.pid]


def test_isolated_matches_in_process(tmp_path: Path, loader: IsolatedLoader) -> None:
    html = tmp_path / "page.html"
    html.write_text(HTML)
    pdf = pdf_with(tmp_path, [["page one"], ["page two"]], outline=[("page two", 1)])
    docx_path = _docx(tmp_path)
    md = tmp_path / "guide.md"
    md.write_text(MARKDOWN)
    for p in (html, pdf, docx_path, md):
        isolated = loader.load(p)
        assert isinstance(isolated, LoadedDocument)
        assert isolated == load_file(p)


def test_small_text_takes_the_fast_path(tmp_path: Path) -> None:
    p = tmp_path / "a.txt"
    p.write_text("hello")
    with IsolatedLoader() as ld:
        assert ld.load(p).blocks == [Block("hello", "paragraph", line_start=1, line_end=1)]
        assert _workers() == []  # no worker was started for it


def test_cpu_bomb_pdf_times_out_and_the_next_file_still_loads(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.pdf"
    bomb.write_bytes(slow_pdf())
    assert bomb.stat().st_size < 200_000
    good = pdf_with(tmp_path, [["after the bomb"]])
    with IsolatedLoader(timeout_s=1) as ld:
        ld.load(good)  # worker up and warm: the limit then measures parsing only
        t0 = time.monotonic()
        with pytest.raises(FileSkipped, match=r"^took longer than 1 s to parse$"):
            ld.load(bomb)
        assert time.monotonic() - t0 < 4
        assert [b.text for b in ld.load(good).blocks] == ["after the bomb"]


def test_memory_cap_turns_into_a_skip(tmp_path: Path) -> None:
    p = tmp_path / "big.csv"
    row = b"alpha,beta,gamma,delta,epsilon\n"
    with open(p, "wb") as f:
        f.write(row * (60 * 2**20 // len(row)))
    # A worker starts at ~30 MB of address space; the file's bytes plus its text need 120.
    with IsolatedLoader(memory_mb=100, max_bytes=64 * 2**20) as ld:
        with pytest.raises(FileSkipped, match=r"^needs more than 100 MB of memory to parse$"):
            ld.load(p)
        small = tmp_path / "small.html"
        small.write_text("<p>still works</p>")
        assert [b.text for b in ld.load(small).blocks] == ["still works"]


def test_killed_worker_is_reported_and_replaced(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.pdf"
    bomb.write_bytes(slow_pdf())
    good = tmp_path / "ok.html"
    good.write_text("<p>fine</p>")
    with IsolatedLoader(timeout_s=30) as ld:
        ld.load(good)
        workers = _workers()
        assert len(workers) == 1
        result: list[BaseException] = []

        def parse() -> None:
            try:
                ld.load(bomb)
            except BaseException as exc:
                result.append(exc)

        t = threading.Thread(target=parse)
        t.start()
        deadline = time.monotonic() + 10
        while workers[0].cpu_times().user < 0.3 and time.monotonic() < deadline:
            time.sleep(0.02)  # polling a real process's CPU time, not waiting blindly
        workers[0].kill()
        t.join(10)
        assert len(result) == 1 and isinstance(result[0], FileSkipped)
        assert result[0].reason == "the parser crashed on this file (exit code -9)"
        assert [b.text for b in ld.load(good).blocks] == ["fine"]


def test_loader_is_thread_safe_with_several_workers(tmp_path: Path) -> None:
    paths = []
    for i in range(12):
        p = tmp_path / f"p{i}.html"
        p.write_text(f"<h1>Title {i}</h1><p>Body {i}</p>")
        paths.append(p)
    results: dict[int, list[str]] = {}
    with IsolatedLoader(workers=2) as ld:

        def work(k: int) -> None:
            for i in range(k, 12, 3):
                results[i] = [b.text for b in ld.load(paths[i]).blocks]

        threads = [threading.Thread(target=work, args=(k,)) for k in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert len(_workers()) == 2
    assert results == {i: [f"Title {i}", f"Body {i}"] for i in range(12)}


def test_closed_loader_refuses_work(tmp_path: Path) -> None:
    p = tmp_path / "x.html"
    p.write_text("<p>x</p>")
    ld = IsolatedLoader()
    assert ld.load(p).blocks[0].text == "x"
    ld.close()
    with pytest.raises(FileSkipped, match="closed"):
        ld.load(p)


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError):
        IsolatedLoader(timeout_s=0)


def test_html_title_links_and_page_chrome(tmp_path: Path) -> None:
    p = tmp_path / "page.html"
    p.write_text(
        "<html><head><title>INSERT &mdash; create rows</title></head><body>"
        '<div class="navheader"><table><tr><td><a href="a.html">Prev</a></td>'
        '<td><a href="b.html">Next</a></td></tr></table></div>'
        '<h1>INSERT<a class="headerlink" href="#insert">¶</a></h1>'
        '<p>Adds rows; see <a href="copy.html">COPY</a> and <a name="x">here</a>.</p>'
        '<table><tr><td><a href="t.html">Linked cell</a></td><td>plain</td></tr></table>'
        '<div id="footer">Last updated 2024</div></body></html>'
    )
    doc = load_file(p)
    assert doc.title == "INSERT — create rows"
    assert [(b.kind, b.text) for b in doc.blocks] == [
        ("heading", "INSERT"),
        ("paragraph", "Adds rows; see COPY and here."),
        ("table", "Linked cell | plain"),
    ]
    assert [b.link_chars for b in doc.blocks] == [0, 4, 11]
