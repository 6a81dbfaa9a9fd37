"""read_file: numbered lines, windows, caps with a continuation note, encodings."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from parley.core.tools import FolderPolicy, ToolRegistry, make_file_tools
from parley.core.tools.read_file import MAX_CHARS, MAX_LINE_CHARS, MAX_LINES


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "docs"
    root.mkdir()
    return root


def run(folder: Path, **arguments: object) -> tuple[str, bool]:
    registry = ToolRegistry(make_file_tools(FolderPolicy([folder])))
    result = asyncio.run(registry.run("read_file", json.dumps(arguments)))
    return result.content, result.is_error


def numbered(content: str) -> list[tuple[int, str]]:
    """The (number, text) lines of a result, without its header and note."""
    out = []
    for line in content.splitlines()[1:]:
        number, sep, text = line.partition("\t")
        if sep and number.strip().isdigit():
            out.append((int(number), text))
    return out


def test_long_file_is_cut_at_400_lines_with_the_exact_note(folder: Path) -> None:
    (folder / "long.txt").write_text("".join(f"row {i}\n" for i in range(1, 1235)))
    content, is_error = run(folder, path="long.txt")
    assert not is_error
    lines = content.splitlines()
    assert lines[0] == "long.txt (lines 1-400 of 1,234)"
    assert numbered(content) == [(i, f"row {i}") for i in range(1, MAX_LINES + 1)]
    assert lines[-1] == "… cut at line 400 of 1,234; call again with start_line=401"
    # Following the note continues exactly where it stopped, to the end.
    content, _ = run(folder, path="long.txt", start_line=401)
    assert numbered(content)[0] == (401, "row 401")
    content, _ = run(folder, path="long.txt", start_line=801)
    assert numbered(content)[-1] == (1200, "row 1200")
    content, _ = run(folder, path="long.txt", start_line=1201)
    assert content.splitlines()[0] == "long.txt (lines 1,201-1,234 of 1,234)"
    assert numbered(content)[-1] == (1234, "row 1234")
    assert "cut at" not in content


def test_start_and_end_lines(folder: Path) -> None:
    (folder / "f.txt").write_text("a\nb\nc\nd\ne")  # no final newline: still 5 lines
    content, _ = run(folder, path="f.txt", start_line=2, end_line=4)
    assert content == "f.txt (lines 2-4 of 5)\n2\tb\n3\tc\n4\td"
    content, _ = run(folder, path="f.txt", start_line=5)
    assert content == "f.txt (lines 5-5 of 5)\n5\te"
    content, _ = run(folder, path="f.txt", start_line=4, end_line=99)
    assert content == "f.txt (lines 4-5 of 5)\n4\td\n5\te\n(end of file at line 5)"


def test_bad_windows_are_errors(folder: Path) -> None:
    (folder / "f.txt").write_text("a\nb\n")
    content, is_error = run(folder, path="f.txt", start_line=3)
    assert is_error and content == "read_file: start_line 3 is past the end of 'f.txt' (2 lines)."
    content, is_error = run(folder, path="f.txt", start_line=2, end_line=1)
    assert is_error and "end_line (1) is before start_line (2)" in content
    content, is_error = run(folder, path="f.txt", start_line=0)
    assert is_error and "'start_line': Input should be greater than or equal to 1" in content


def test_empty_file(folder: Path) -> None:
    (folder / "empty.txt").write_text("")
    assert run(folder, path="empty.txt") == ("empty.txt is empty.", False)


def test_64_kb_cap_with_a_note(folder: Path) -> None:
    (folder / "wide.txt").write_text("".join(f"{i:04d}" + "x" * 996 + "\n" for i in range(1, 201)))
    content, is_error = run(folder, path="wide.txt")
    assert not is_error
    rows = numbered(content)
    shown = len(rows)
    assert 50 < shown < 70  # about 64 KB of 1,000-character lines
    assert sum(len(text) + 1 for _, text in rows) <= MAX_CHARS
    assert content.splitlines()[-1] == (
        f"… cut at line {shown} of 200; call again with start_line={shown + 1}"
    )


def test_a_huge_single_line_is_cut(folder: Path) -> None:
    (folder / "min.js").write_text("var a=1;" * 200_000 + "\nsecond line\n")
    content, is_error = run(folder, path="min.js")
    assert not is_error
    rows = numbered(content)
    assert rows[0][1].startswith("var a=1;var a=1;")
    assert rows[0][1].endswith("… [line cut; it is 1,600,000 bytes long]")
    assert len(rows[0][1]) < MAX_LINE_CHARS + 60
    assert rows[1] == (2, "second line")


def test_crlf_tabs_and_utf8(folder: Path) -> None:
    (folder / "w.txt").write_bytes("première ligne\r\n\tindentée ✓\r\n".encode())
    content, _ = run(folder, path="w.txt")
    assert numbered(content) == [(1, "première ligne"), (2, "\tindentée ✓")]


def test_utf8_bom_and_utf16(folder: Path) -> None:
    (folder / "bom.txt").write_bytes("\ufeffhello\nwörld\n".encode())
    assert numbered(run(folder, path="bom.txt")[0]) == [(1, "hello"), (2, "wörld")]
    (folder / "u16.txt").write_bytes("Grüße\naus Köln\n".encode("utf-16"))
    assert numbered(run(folder, path="u16.txt")[0]) == [(1, "Grüße"), (2, "aus Köln")]


def test_legacy_encoding_is_detected(folder: Path) -> None:
    text = "Le café était très animé; les élèves déjeunaient à côté du théâtre.\n" * 20
    (folder / "latin.txt").write_bytes(text.encode("cp1252"))
    content, is_error = run(folder, path="latin.txt")
    assert not is_error
    assert numbered(content)[0][1] == text.splitlines()[0]


def test_binary_files_are_refused(folder: Path) -> None:
    (folder / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    content, is_error = run(folder, path="image.png")
    assert is_error and "binary file" in content


def test_big_file_reads_only_what_it_needs(folder: Path) -> None:
    # 40 MB: the window comes back and the total is still counted (under the count limit).
    line = "y" * 99 + "\n"
    (folder / "big.log").write_text(line * 400_000)
    content, is_error = run(folder, path="big.log", start_line=200_000, end_line=200_002)
    assert not is_error
    assert content.splitlines()[0] == "big.log (lines 200,000-200,002 of 400,000)"
    assert [n for n, _ in numbered(content)] == [200_000, 200_001, 200_002]


def make_pdf(pages: list[str]) -> bytes:
    """A minimal valid PDF with one line of Helvetica text per page (no PDF library needed)."""
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b""]
    kids = []
    for text in pages:
        stream = f"BT /F1 18 Tf 72 720 Td ({text}) Tj ET".encode("latin-1")
        content_id = len(objects) + 2
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources "
            b"<< /Font << /F1 << /Type /Font /Subtype /Type1 /BaseFont /Helvetica >> >> >> "
            + f"/Contents {content_id} 0 R >>".encode()
        )
        kids.append(f"{len(objects)} 0 R")
        objects.append(f"<< /Length {len(stream)} >>\nstream\n".encode() + stream + b"\nendstream")
    objects[1] = f"<< /Type /Pages /Kids [{' '.join(kids)}] /Count {len(kids)} >>".encode()
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    out += (
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    )
    return bytes(out)


def test_pdf_through_the_knowledge_loaders(folder: Path) -> None:
    (folder / "report.pdf").write_bytes(make_pdf(["Revenue grew strongly", "Costs fell slightly"]))
    content, is_error = run(folder, path="report.pdf")
    assert not is_error, content
    rows = [text for _, text in numbered(content)]
    assert content.startswith("report.pdf (lines 1-")
    assert rows.index("[page 1]") < rows.index("Revenue grew strongly")
    assert rows.index("[page 2]") < rows.index("Costs fell slightly")
    # Windows work on the extracted text like on any file.
    page2 = rows.index("[page 2]") + 1
    content, _ = run(folder, path="report.pdf", start_line=page2, end_line=page2)
    assert numbered(content) == [(page2, "[page 2]")]


def test_damaged_pdf_is_a_clear_error(folder: Path) -> None:
    (folder / "broken.pdf").write_bytes(b"%PDF-1.4\nthis is not really a pdf")
    content, is_error = run(folder, path="broken.pdf")
    assert is_error
    assert content.startswith("read_file: This document cannot be read: ")


def test_documents_through_an_isolated_loader(folder: Path) -> None:
    from parley.core.knowledge.loaders import IsolatedLoader

    (folder / "memo.pdf").write_bytes(make_pdf(["Isolated parsing works"]))
    with IsolatedLoader(timeout_s=30) as loader:
        registry = ToolRegistry(make_file_tools(FolderPolicy([folder]), load_document=loader.load))
        result = asyncio.run(registry.run("read_file", '{"path": "memo.pdf"}'))
    assert not result.is_error, result.content
    assert "Isolated parsing works" in result.content


def test_docx_through_the_knowledge_loaders(folder: Path) -> None:
    import docx

    document = docx.Document()
    document.add_heading("Quarterly plan", level=1)
    document.add_paragraph("First paragraph about budgets.")
    document.add_paragraph("Second paragraph about hiring.")
    document.save(str(folder / "plan.docx"))
    content, is_error = run(folder, path="plan.docx")
    assert not is_error, content
    assert content.startswith("plan.docx (lines 1-")
    assert "\t# Quarterly plan" in content
    assert "First paragraph about budgets." in content
    assert "Second paragraph about hiring." in content
