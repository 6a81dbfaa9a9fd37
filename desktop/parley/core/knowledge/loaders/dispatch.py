"""One file, parsed in this process by the loader for its kind: :func:`load_file`."""

from __future__ import annotations

import hashlib
from pathlib import Path

from parley.core.knowledge.loaders.base import (
    DEFAULT_MAX_BYTES,
    FileSkipped,
    LoadedDocument,
    _OutOfMemory,
    kind_for,
    read_bytes,
)
from parley.core.knowledge.loaders.docx import _docx_blocks
from parley.core.knowledge.loaders.html import _html_parse
from parley.core.knowledge.loaders.markup import _markdown_blocks, _rst_blocks
from parley.core.knowledge.loaders.pdf import _pdf_blocks
from parley.core.knowledge.loaders.text import _text_blocks, _text_of

# ---------------------------------------------------------------------------- public loader


def unsupported_reason(path: Path) -> str:
    """The skip reason for a file whose type has no loader."""
    suffix = path.suffix.lower()
    return f"unsupported file type ({suffix})" if suffix else "unsupported file type (no extension)"


def load_file(path: Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> LoadedDocument:
    """Parse one file in this process.

    Safe for plain text of any kind up to ``max_bytes``. For PDF, DOCX and HTML from
    untrusted sources prefer :meth:`IsolatedLoader.load`, which adds a time limit and a
    memory cap.

    Args:
        path: The file.
        max_bytes: Size cap; larger files are skipped.

    Returns:
        The document's blocks and identity (size, SHA-256 of the bytes).

    Raises:
        FileSkipped: Unsupported, binary, too large, unreadable, damaged, encrypted, ...
    """
    path = Path(path)
    kind = kind_for(path)
    if kind is None:
        raise FileSkipped(unsupported_reason(path))
    raw = read_bytes(path, max_bytes)
    digest = hashlib.sha256(raw).hexdigest()
    title = ""
    try:
        if kind == "pdf":
            blocks = _pdf_blocks(raw)
        elif kind == "docx":
            blocks = _docx_blocks(raw)
        else:
            text = _text_of(raw, html=kind == "html")
            if kind == "markdown":
                blocks = _markdown_blocks(text)
            elif kind == "rst":
                blocks = _rst_blocks(text)
            elif kind == "html":
                blocks, title = _html_parse(text)
            else:
                blocks = _text_blocks(text, kind)
    except MemoryError:
        raise _OutOfMemory("ran out of memory while parsing") from None
    return LoadedDocument(
        path=path, kind=kind, blocks=blocks, size=len(raw), sha256=digest, title=title
    )
