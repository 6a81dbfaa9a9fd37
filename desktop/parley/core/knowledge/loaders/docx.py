"""DOCX with python-docx: the archive is checked first (zip bombs, DOCTYPEs), then paragraphs."""

from __future__ import annotations

import contextlib
import io
import re
import zipfile
from typing import Any

from parley.core.display import format_size
from parley.core.knowledge.loaders.base import Block, FileSkipped, _short

DOCX_MAX_UNPACKED = 256 * 2**20
"""A DOCX whose parts declare more than this in total when unpacked is refused."""

DOCX_MAX_RATIO = 200
"""A DOCX part larger than 16 MiB that compresses better than this is a zip bomb."""

DOCX_MAX_PARTS = 10_000
"""A DOCX with more archive members than this is refused (real ones have dozens)."""


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
