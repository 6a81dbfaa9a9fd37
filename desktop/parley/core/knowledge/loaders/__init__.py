"""Turn one file into structured text (:class:`LoadedDocument`), safely.

Two ways in:

- :func:`load_file` parses in the calling process. It is right for small plain-text files
  (bounded by the size cap) and is what the ``read_file`` tool may call for them.
- :class:`IsolatedLoader` parses risky formats (PDF, DOCX, HTML) and anything above a few MB
  in a reused worker process with a time limit and a memory cap, so a PDF bomb, a zip-bomb
  DOCX, a billion-laughs XML part, a PDF whose xref table loops or a crashing parser cannot
  hang or crash the indexer (issue 4). The worker is started with ``forkserver`` (``spawn``
  where that is missing), never ``fork``: the parent may be a Qt app with threads.

Every refusal raises :class:`FileSkipped` whose ``reason`` is one line a person can read.
Nothing here ever fetches anything remote: HTML is read with the stdlib parser (no DTDs, no
external entities), DOCX XML parts carrying a DOCTYPE are refused before python-docx (whose
lxml parser already has ``resolve_entities=False``) sees them, and pypdf reads bytes only.

The rooms: ``base`` (document types, file kinds, reading bytes), ``text`` (binary sniff,
decoding, paragraphs), ``markup`` (Markdown, reStructuredText), ``html``, ``pdf``, ``docx``,
``dispatch`` (:func:`load_file`: the parser for a file's kind) and ``isolated`` (the worker
processes). Import from this package; its names below are the public ones.
"""

from __future__ import annotations

from parley.core.knowledge.loaders.base import (
    DEFAULT_MAX_BYTES,
    KIND_BY_EXT,
    RISKY_KINDS,
    Block,
    FileSkipped,
    LoadedDocument,
    kind_for,
    read_bytes,
    stat_document,
)
from parley.core.knowledge.loaders.dispatch import load_file, unsupported_reason
from parley.core.knowledge.loaders.docx import DOCX_MAX_PARTS, DOCX_MAX_RATIO, DOCX_MAX_UNPACKED
from parley.core.knowledge.loaders.isolated import IN_PROCESS_LIMIT, IsolatedLoader
from parley.core.knowledge.loaders.pdf import MAX_EXTRACTED_CHARS

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DOCX_MAX_PARTS",
    "DOCX_MAX_RATIO",
    "DOCX_MAX_UNPACKED",
    "IN_PROCESS_LIMIT",
    "KIND_BY_EXT",
    "MAX_EXTRACTED_CHARS",
    "RISKY_KINDS",
    "Block",
    "FileSkipped",
    "IsolatedLoader",
    "LoadedDocument",
    "kind_for",
    "load_file",
    "read_bytes",
    "stat_document",
    "unsupported_reason",
]
