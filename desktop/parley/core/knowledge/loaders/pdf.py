"""PDF with pypdf: text per page, headings from the outline, decompression bombs refused."""

from __future__ import annotations

import io
import re
from typing import Any

from parley.core.knowledge.loaders.base import Block, FileSkipped, _short
from parley.core.knowledge.loaders.text import _paragraphs

MAX_EXTRACTED_CHARS = 100 * 2**20
"""Text extracted from one PDF beyond this many characters means a decompression bomb."""


# ---------------------------------------------------------------------------- PDF


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
