"""What every loader shares: the document types, file kinds, and reading a file's bytes safely.

:func:`read_bytes` reads a regular file once, refusing what changes or grows while it is read,
and names every refusal in one line (:class:`FileSkipped`).
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from parley.core.display import format_size
from parley.core.errors import ParleyError

DEFAULT_MAX_BYTES = 50 * 2**20
"""Files larger than this are skipped (the ``max_bytes`` default)."""


# ---------------------------------------------------------------------------- data types


@dataclass(frozen=True)
class Block:
    """One structural piece of a document, in reading order."""

    text: str
    """The text (for headings: the title only, without ``#`` or underline)."""
    kind: str
    """``"heading"``, ``"paragraph"``, ``"code"``, ``"table"``, ``"list"`` or ``"text"``."""
    level: int = 0
    """Heading level 1..6 for headings, 0 otherwise."""
    page: int | None = None
    """1-based PDF page."""
    line_start: int | None = None
    """1-based first line, inclusive, for line-based formats (text, code, Markdown, HTML)."""
    line_end: int | None = None
    """1-based last line, inclusive."""
    link_chars: int = 0
    """Characters of ``text`` that are link text (HTML ``<a href>``): a block made of links
    (a table of contents, an index) says little about any one subject."""


@dataclass
class LoadedDocument:
    """A parsed file."""

    path: Path
    """The file that was read."""
    kind: str
    """``"text"``, ``"markdown"``, ``"rst"``, ``"code"``, ``"html"``, ``"pdf"``, ``"docx"``
    or ``"data"``."""
    blocks: list[Block]
    """Structure in reading order; empty for an empty file."""
    size: int
    """Bytes read."""
    sha256: str
    """Hex SHA-256 of the raw bytes read (what the index uses to see changes)."""
    title: str = ""
    """The document's own title where the format has one (HTML ``<title>``), else empty."""


class FileSkipped(ParleyError):
    """A file was not loaded; ``reason`` says why in one line (e.g. ``"binary file"``)."""

    default_message = "The file was skipped."

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = self.user_message


class _OutOfMemory(FileSkipped):
    """MemoryError while parsing (a worker names its cap instead)."""


# ---------------------------------------------------------------------------- file kinds

_TEXT_EXTS = {".txt", ".text", ".log", ".me", ".nfo", ".asc"}
_MARKDOWN_EXTS = {".md", ".markdown", ".mdown", ".mkd", ".mkdn", ".mdx"}
_RST_EXTS = {".rst", ".rest"}
_HTML_EXTS = {".html", ".htm", ".xhtml"}
_DATA_EXTS = {".csv", ".tsv", ".json", ".jsonl", ".ndjson", ".yaml", ".yml"}
_CODE_EXTS = {
    # Languages named in issue 4, plus their close relatives.
    ".py", ".pyi", ".pyw", ".js", ".mjs", ".cjs", ".ts", ".mts", ".cts", ".tsx", ".jsx",
    ".java", ".c", ".h", ".cc", ".cpp", ".cxx", ".hpp", ".hh", ".hxx", ".cs", ".go", ".rs",
    ".rb", ".php", ".swift", ".kt", ".kts", ".scala", ".sh", ".bash", ".zsh", ".fish",
    ".ps1", ".psm1", ".bat", ".cmd", ".sql", ".r", ".m", ".mm", ".lua", ".pl", ".pm",
    ".toml", ".ini", ".cfg", ".conf", ".properties", ".env", ".xml", ".xsd", ".xsl",
    ".css", ".scss", ".sass", ".less", ".vue", ".svelte", ".dart", ".ex", ".exs", ".erl",
    ".hrl", ".hs", ".clj", ".cljs", ".elm", ".fs", ".fsx", ".ml", ".mli", ".nim", ".zig",
    ".jl", ".groovy", ".gradle", ".tf", ".hcl", ".proto", ".graphql", ".gql", ".cmake",
    ".mk", ".make", ".dockerfile", ".vb", ".pas", ".f90", ".f", ".asm", ".s", ".tex",
    ".bib", ".ipynb", ".lisp", ".el", ".scm", ".rkt", ".v", ".sv", ".vhd", ".cu", ".glsl",
}  # fmt: skip
_NAMED_FILES = {
    # Extension-less files that are text by convention.
    "readme": "text", "license": "text", "licence": "text", "copying": "text",
    "authors": "text", "contributors": "text", "changelog": "text", "changes": "text",
    "news": "text", "notes": "text", "todo": "text", "install": "text", "notice": "text",
    "makefile": "code", "gnumakefile": "code", "dockerfile": "code", "containerfile": "code",
    "jenkinsfile": "code", "vagrantfile": "code", "gemfile": "code", "rakefile": "code",
    "procfile": "code", "cmakelists.txt": "code", "justfile": "code",
}  # fmt: skip

KIND_BY_EXT: dict[str, str] = {
    **dict.fromkeys(_TEXT_EXTS, "text"),
    **dict.fromkeys(_MARKDOWN_EXTS, "markdown"),
    **dict.fromkeys(_RST_EXTS, "rst"),
    **dict.fromkeys(_HTML_EXTS, "html"),
    **dict.fromkeys(_DATA_EXTS, "data"),
    **dict.fromkeys(_CODE_EXTS, "code"),
    ".pdf": "pdf",
    ".docx": "docx",
}
"""Loader kind by lower-case extension (with the dot)."""

RISKY_KINDS = frozenset({"pdf", "docx", "html"})
"""Formats whose parsers can be driven into huge time or memory use by a crafted file."""


def kind_for(path: Path) -> str | None:
    """The loader kind for a file name, or None when the type is not supported.

    Args:
        path: Any path; only its name is looked at.

    Returns:
        One of ``"text"``, ``"markdown"``, ``"rst"``, ``"code"``, ``"html"``, ``"pdf"``,
        ``"docx"``, ``"data"``, or None.
    """
    name = path.name.lower()
    named = _NAMED_FILES.get(name)
    if named is not None:
        return named
    dot = name.rfind(".")
    if dot <= 0:  # no extension, or a dot-file such as ".bashrc"
        stem = name.lstrip(".")
        return _NAMED_FILES.get(stem.split(".")[0]) if stem else None
    kind = KIND_BY_EXT.get(name[dot:])
    if kind is None and name[:dot] in _NAMED_FILES:  # README.old, LICENSE.MIT ...
        return "text"
    return kind


# ---------------------------------------------------------------------------- reading bytes


def _too_large(size: int, max_bytes: int) -> FileSkipped:
    return FileSkipped(f"larger than {format_size(max_bytes)} ({format_size(size)})")


def _os_error_reason(exc: OSError, *, started: bool = True) -> str:
    if isinstance(exc, FileNotFoundError):
        return "file vanished while reading" if started else "file not found"
    if isinstance(exc, PermissionError):
        return "permission denied"
    if exc.errno == errno.ELOOP:
        return "symlink loop"
    if exc.errno == errno.EISDIR:
        return "not a regular file"
    return f"could not be read ({exc.strerror or type(exc).__name__})"


def stat_document(path: Path, max_bytes: int) -> os.stat_result:
    """``os.stat`` of a would-be document: a regular file within the size cap.

    Raises:
        FileSkipped: Not found, unreadable, not a regular file, or too large.
    """
    try:
        st = os.stat(path)
    except OSError as exc:
        raise FileSkipped(_os_error_reason(exc, started=False)) from None
    if not stat.S_ISREG(st.st_mode):
        raise FileSkipped("not a regular file")
    if st.st_size > max_bytes:
        raise _too_large(st.st_size, max_bytes)
    return st


def read_bytes(path: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> bytes:
    """Read a whole regular file, refusing anything a person would not call a document.

    The file is stat'ed before opening (so a FIFO or device never blocks us), opened
    non-blocking, and compared before and after the read, so a file that grows, shrinks or
    is rewritten while we read is reported instead of indexed half-old, half-new.

    Args:
        path: The file.
        max_bytes: Size cap.

    Returns:
        The file's bytes.

    Raises:
        FileSkipped: Not found, not a regular file, too large, unreadable, or it vanished or
            changed while being read.
    """
    stat_document(path, max_bytes)  # before opening: a FIFO or device never blocks us
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise FileSkipped(_os_error_reason(exc)) from None
    try:
        before = os.fstat(fd)
        if not stat.S_ISREG(before.st_mode):  # swapped for a FIFO between stat and open
            raise FileSkipped("not a regular file")
        if before.st_size > max_bytes:
            raise _too_large(before.st_size, max_bytes)
        # One byte more than the size says, to notice a file that grows while we read.
        with open(fd, "rb", closefd=False) as f:
            data = f.read(before.st_size + 1)
        after = os.fstat(fd)
    except OSError as exc:
        raise FileSkipped(_os_error_reason(exc)) from None
    finally:
        os.close(fd)
    if (
        len(data) != before.st_size
        or after.st_size != before.st_size
        or after.st_mtime_ns != before.st_mtime_ns
    ):
        if len(data) > max_bytes:
            raise _too_large(len(data), max_bytes)
        raise FileSkipped("file changed while reading")
    try:
        now = os.stat(path)
    except OSError:
        raise FileSkipped("file vanished while reading") from None
    if (now.st_ino, now.st_dev) != (before.st_ino, before.st_dev):
        raise FileSkipped("file changed while reading")  # replaced by a new file meanwhile
    return data


def _short(exc: BaseException) -> str:
    msg = " ".join(str(exc).split()) or type(exc).__name__
    return msg if len(msg) <= 120 else msg[:117] + "..."
