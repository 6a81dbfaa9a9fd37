"""Plain text and code: binary sniffing, decoding (``core/decoding.py``) and paragraphs."""

from __future__ import annotations

import re
from collections.abc import Iterator

from parley.core.decoding import decode_text
from parley.core.knowledge.loaders.base import Block, FileSkipped

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
