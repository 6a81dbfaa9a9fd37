"""Citations of grounded answers: footer items, and opening the cited file where it says.

A grounded answer carries the sources that were put into its prompt (``SourcesAttached`` while
it streams, ``meta["sources"]`` once stored). Each becomes a footer item
``[1] notes/q3.md · lines 10–24`` whose link is ``parley-cite:1``; the chat view also turns the
``[1]`` markers in the answer text into the same links (only for numbers that exist).

The model's text is untrusted, so a click never opens what the text says: the number is looked
up in the message's *stored* sources, and the file is opened only if it still exists and lies
inside one of the folders the person added (symbolic links resolved first, so a link inside a
folder cannot point outside it). :func:`open_command` decides how to show the page or line:

- PDF at a page: ``okular -p N``, ``evince``/``atril``/``xreader -i N`` or ``zathura -P N`` when
  found on ``PATH``. Otherwise the file opens in the system's viewer without a page: passing
  ``file:///x.pdf#page=3`` through ``xdg-open`` fails outright when the handler takes paths
  (it looks for a file literally named ``x.pdf#page=3``), and Windows and macOS drop the
  fragment anyway.
- Text or code at a line: ``$VISUAL``/``$EDITOR`` when it names a graphical editor whose
  line syntax is known (``gvim +N``, ``kate -l N``, ``code -g path:N``...), else ``code -g``
  when VS Code is on ``PATH``, else the system's default application. Terminal editors
  (vim, nano...) are skipped: a desktop app has no terminal to run them in.

Programs are started detached, with an argument list (never a shell), so no part of a path
or of the model's text is ever interpreted.
"""

from __future__ import annotations

import logging
import os
import re
import shlex
import shutil
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from parley.core.display import location_text, path_from_text, safe_text
from parley.ui.chat.model import FooterItem

if TYPE_CHECKING:
    from parley.core.knowledge.grounding import Source

log = logging.getLogger(__name__)

CITE_SCHEME = "parley-cite:"
"""Link scheme of citations in answers and footers: ``parley-cite:<n>``."""

CITATION_KIND = "citation"
"""``FooterItem.kind`` of a source line."""

PDF_SUFFIXES = frozenset({".pdf"})
"""Files opened at a page rather than at a line."""


class CitationRefused(Exception):
    """A citation that must not (or cannot) be opened; ``message`` says why, in one line."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class OpenRequest:
    """What a citation click asks to open: a checked, existing file and where in it."""

    path: Path
    """The file (resolved, inside an added folder)."""
    page: int | None = None
    """1-based page of a paged document (PDF)."""
    line: int | None = None
    """1-based first line of the cited passage (text and code)."""
    n: int = 0
    """The citation number that was clicked."""

    @property
    def is_pdf(self) -> bool:
        """Whether the file is opened in a document viewer at a page."""
        return self.path.suffix.lower() in PDF_SUFFIXES

    def where(self) -> str:
        """Where, for status messages: "page 3" / "line 10" / ""."""
        return location_text(self.page, self.line)


Opener = Callable[[OpenRequest], object]
"""Opens a checked :class:`OpenRequest` (the window's default starts a program; tests record)."""


# ---------------------------------------------------------------- sources


def parse_sources(items: Iterable[Any]) -> list[Source]:
    """Sources from ``SourcesAttached.sources`` objects or stored dicts (malformed ones dropped).

    Args:
        items: ``Source`` objects (a live turn) or their ``to_dict()`` form (``meta["sources"]``).

    Returns:
        The sources, in their order, without entries that lack a number or a path.
    """
    from parley.core.knowledge.grounding import Source

    out: list[Source] = []
    for item in items:
        if isinstance(item, Source):
            out.append(item)
            continue
        if not isinstance(item, Mapping):
            continue
        try:
            out.append(Source.from_dict(dict(item)))
        except (KeyError, TypeError, ValueError):
            log.info("ignored a malformed stored source: %r", item)
    return out


def sources_from_meta(meta: Mapping[str, Any]) -> list[Source] | None:
    """The sources stored with an answer, or None when the answer was not grounded.

    An empty list means the documents were searched and nothing relevant was found.
    """
    raw = meta.get("sources")
    if raw is None:
        return None
    if not isinstance(raw, list):
        return []
    return parse_sources(raw)


def display_path(source: Source) -> str:
    """``notes/q3.md``: the file relative to its folder's parent (the folder name shows).

    Safe to show: control and bidi characters are escaped (``core.display.safe_text``).
    """
    path = Path(source.path)
    root = Path(source.root) if source.root else None
    if root is not None:
        try:
            rel = path.relative_to(root)
        except ValueError:
            pass
        else:
            shown = (Path(root.name) / rel).as_posix() if root.name else rel.as_posix()
            return safe_text(shown, one_line=True)
    return safe_text(path.name or str(path), one_line=True)


def citation_label(source: Source) -> str:
    """``[1] notes/q3.md · lines 10–24``."""
    where = location_text(source.page, source.line_start, source.line_end)
    return f"[{source.n}] {display_path(source)}" + (f" · {where}" if where else "")


MORE_SENT_KIND = "sources_more"
"""The footer line "N more sent": sources sent with the question but not cited."""

SOURCES_HREF = "parley-sources:"
"""Its link: shows the answer's Sources panel."""

_CITED = re.compile(r"\[(\d{1,4})\]")


def cited_numbers(text: str) -> set[int]:
    """The numbers ``[n]`` an answer's text cites."""
    return {int(m.group(1)) for m in _CITED.finditer(text)}


def citation_footer(sources: Sequence[Source], text: str | None = None) -> tuple[FooterItem, ...]:
    """The source lines under an answer (the view makes ``[n]`` in the answer link to them).

    Args:
        sources: The passages sent with the question.
        text: The finished answer: only the passages it cites are listed, the others fold
            into one "N more sent" line (a link to the Sources panel). None while the answer
            is still being written: every passage is listed.
    """
    shown = list(sources)
    more = 0
    if text is not None:
        cited = cited_numbers(text)
        shown = [s for s in sources if s.n in cited]
        more = len(sources) - len(shown)
    items = [
        FooterItem(citation_label(s), kind=CITATION_KIND, href=f"{CITE_SCHEME}{s.n}") for s in shown
    ]
    if more:
        label = f"{more} more sent" if shown else f"{more} sources sent, none cited"
        items.append(FooterItem(label, kind=MORE_SENT_KIND, href=SOURCES_HREF))
    return tuple(items)


def without_citations(footer: Iterable[FooterItem]) -> tuple[FooterItem, ...]:
    """A footer with its source lines removed (to replace them)."""
    return tuple(f for f in footer if f.kind not in (CITATION_KIND, MORE_SENT_KIND))


def citation_number(href: str) -> int | None:
    """The number of a ``parley-cite:<n>`` link, or None for anything else."""
    if not href.startswith(CITE_SCHEME):
        return None
    digits = href[len(CITE_SCHEME) :]
    if not digits.isdigit() or not digits.isascii() or len(digits) > 4:
        return None
    return int(digits)


# ---------------------------------------------------------------- resolving a click


def resolve_citation(
    sources: Sequence[Source], n: int, allowed_roots: Iterable[Path | str]
) -> OpenRequest:
    """Check a clicked citation against the answer's stored sources and the added folders.

    Args:
        sources: The sources stored with the answer that was clicked.
        n: The citation number.
        allowed_roots: The folders the person added (only files inside them are opened).

    Returns:
        What to open.

    Raises:
        CitationRefused: ``n`` is not one of the sources, or the file is missing or outside
            every added folder.
    """
    source = next((s for s in sources if s.n == n), None)
    if source is None:
        raise CitationRefused(f"This answer has no source [{n}].")
    try:
        # Stored paths are in their text form (bytes that are not UTF-8 as \xNN).
        path = Path(path_from_text(source.path)).expanduser().resolve(strict=True)
    except (OSError, RuntimeError):
        raise CitationRefused(f"{display_path(source)} no longer exists.") from None
    if not path.is_file():
        raise CitationRefused(f"{display_path(source)} is not a file.")
    roots: list[Path] = []
    for r in allowed_roots:
        try:
            roots.append(Path(r).expanduser().resolve())
        except (OSError, RuntimeError):
            continue
    if not any(path == r or path.is_relative_to(r) for r in roots):
        raise CitationRefused(
            f"{display_path(source)} is not inside the folders you added, so Parley won't open it."
        )
    page = source.page if isinstance(source.page, int) and source.page > 0 else None
    start = source.line_start
    line = start if isinstance(start, int) and start > 0 else None
    return OpenRequest(path=path, page=page, line=line if page is None else None, n=n)


# ---------------------------------------------------------------- how to open it

_PDF_VIEWERS: tuple[tuple[str, Callable[[int, str], list[str]]], ...] = (
    ("okular", lambda page, path: ["-p", str(page), path]),
    ("evince", lambda page, path: ["-i", str(page), path]),
    ("atril", lambda page, path: ["-i", str(page), path]),
    ("xreader", lambda page, path: ["-i", str(page), path]),
    ("zathura", lambda page, path: ["-P", str(page), path]),
)
"""PDF viewers that open at a page, in order of preference, with their argument syntax."""

_PLUS_LINE = frozenset(
    {"gvim", "mvim", "gedit", "xed", "pluma", "gnome-text-editor", "emacs", "bbedit"}
)
_DASH_L_LINE = frozenset({"kate", "kwrite", "mate"})
_GOTO_LINE = frozenset({"code", "code-insiders", "codium", "vscodium", "cursor"})
_COLON_LINE = frozenset({"subl", "sublime_text", "zed"})
_TERMINAL_EDITORS = frozenset(
    {"vi", "vim", "nvim", "nano", "pico", "ed", "micro", "hx", "helix", "kak", "joe", "ne", "mg"}
)


def editor_args(program: str, extra: Sequence[str], path: str, line: int) -> list[str] | None:
    """The arguments that make a known graphical editor open ``path`` at ``line``.

    Args:
        program: The editor command (a name or a path; only its base name matters).
        extra: Arguments that came with it in ``$VISUAL``/``$EDITOR`` (kept first).
        path: The file.
        line: 1-based line.

    Returns:
        The argument list, or None when the editor's syntax is unknown or it needs a terminal.
    """
    name = Path(program).name.lower().removesuffix(".exe")
    args = list(extra)
    if name in _TERMINAL_EDITORS or ("emacs" in name and "-nw" in args):
        return None
    if name in _GOTO_LINE:
        return [*args, "-g", f"{path}:{line}"]
    if name in _COLON_LINE:
        return [*args, f"{path}:{line}"]
    if name in _PLUS_LINE:
        return [*args, f"+{line}", path]
    if name == "emacsclient":
        return [*args, *([] if "-n" in args else ["-n"]), f"+{line}", path]
    if name in _DASH_L_LINE:
        return [*args, "-l", str(line), path]
    if name in ("notepad++",):
        return [*args, f"-n{line}", path]
    return None


def open_command(
    request: OpenRequest,
    *,
    environ: Mapping[str, str] | None = None,
    which: Callable[[str], str | None] = shutil.which,
) -> tuple[str, list[str]] | None:
    """The program and arguments that show ``request`` at its page or line.

    Args:
        request: A checked request (:func:`resolve_citation`).
        environ: Where ``VISUAL``/``EDITOR`` are read (default: the process environment).
        which: Finds a program on ``PATH`` (tests inject one).

    Returns:
        ``(program, args)``, or None to let the system open the file with its default
        application (no page or line: none of the known programs is available).
    """
    env = os.environ if environ is None else environ
    path = str(request.path)
    if request.is_pdf:
        if request.page is None:
            return None
        for name, make_args in _PDF_VIEWERS:
            found = which(name)
            if found:
                return found, make_args(request.page, path)
        return None
    if request.line is None:
        return None
    for var in ("VISUAL", "EDITOR"):
        value = env.get(var, "").strip()
        if not value:
            continue
        try:
            parts = shlex.split(value)
        except ValueError:
            continue
        if not parts:
            continue
        found = which(parts[0])
        if not found:
            continue
        editor = editor_args(parts[0], parts[1:], path, request.line)
        if editor is not None:
            return found, editor
    code = which("code")
    if code:
        return code, ["-g", f"{path}:{request.line}"]
    return None


def system_open(request: OpenRequest) -> bool:
    """Start the right program detached, or the system's default application.

    Returns:
        False when nothing could be started (the caller says so: never "Opened" then).
    """
    from PySide6.QtCore import QProcess, QUrl
    from PySide6.QtGui import QDesktopServices

    command = open_command(request)
    if command is not None:
        program, args = command
        ok, _pid = QProcess.startDetached(program, args)
        if ok:
            return True
        log.warning("could not start %s; opening %s with the system viewer", program, request.path)
    return bool(QDesktopServices.openUrl(QUrl.fromLocalFile(str(request.path))))


__all__ = [
    "CITATION_KIND",
    "CITE_SCHEME",
    "CitationRefused",
    "OpenRequest",
    "Opener",
    "citation_footer",
    "citation_label",
    "citation_number",
    "display_path",
    "editor_args",
    "open_command",
    "parse_sources",
    "resolve_citation",
    "sources_from_meta",
    "system_open",
    "without_citations",
]
