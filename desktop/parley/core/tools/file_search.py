"""The ``file_search`` tool: find text in, or names of, the files in the folders added.

The walk skips hidden, vendored and virtual-environment folders and files that may hold
secrets (``tools/confinement.py``); a symbolic link is followed only to a regular file inside
an added folder. Content search reads each file once, in blocks, with a time budget; a file
it could not search is named in the result, so "no matches" is never claimed for it.
"""

from __future__ import annotations

import fnmatch
import os
import re
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, TypeVar

from pydantic import Field

from parley.core.display import format_size, path_text
from parley.core.tools.confinement import (
    OPEN_FLAGS,
    AccessDenied,
    FolderPolicy,
    allowed_link_target,
    is_sensitive_file,
)
from parley.core.tools.registry import CancelToken, Tool, ToolError, tool

SKIPPED_DIRS = frozenset(
    {"node_modules", "__pycache__", "venv", "site-packages", "bower_components", "CVS"}
)
"""Folders file_search does not walk (besides hidden ones and virtual environments)."""


SEARCH_TIME_BUDGET_S = 20.0
"""file_search returns what it found (saying so) after this long, within the tool's timeout."""
MAX_CONTENT_BYTES = 256 * 2**20
"""Larger files are skipped by content search."""
_BLOCK = 4 * 2**20
_FIRST_READ = 64 * 1024
_SNIFF = 8192
LINE_WIDTH = 200
"""Matching lines are cut to this many characters around the match."""


_Text = TypeVar("_Text", bytes, str)
_SEP = os.sep


@dataclass
class _Match:
    line_no: int
    text: str


@dataclass(frozen=True)
class _Unsearched:
    """A file content search had to leave out (the result says so: no false "no matches")."""

    reason: str
    size: int | None = None


def _walk(root: Path, cancel: CancelToken, deadline: float) -> Iterator[tuple[str, str, str, bool]]:
    """Yield (path, relative path, name, is a link) under ``root``, sorted.

    Hidden, vendored and virtual-environment folders are skipped.
    """
    root_str = str(root)
    stack = [root_str]
    while stack:
        cancel.raise_if_cancelled()
        if time.monotonic() > deadline:
            return
        folder = stack.pop()
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError:
            continue
        if folder != root_str and any(e.name == "pyvenv.cfg" for e in entries):
            continue  # a virtual environment
        subdirs = []
        for entry in entries:
            name = entry.name
            try:
                if entry.is_dir(follow_symlinks=False):
                    if name.startswith(".") or name in SKIPPED_DIRS:
                        continue
                    subdirs.append(entry.path)
                elif entry.is_file(follow_symlinks=False):
                    yield entry.path, entry.path[len(root_str) + 1 :], name, False
                elif entry.is_symlink():
                    # Followed only to a regular file inside a folder (checked by the caller).
                    yield entry.path, entry.path[len(root_str) + 1 :], name, True
            except OSError:
                continue
        stack.extend(reversed(subdirs))


def _scan(
    path: str, needle: bytes | str, limit: int, cancel: CancelToken
) -> list[_Match] | _Unsearched | None:
    """Matching lines of one file (at most ``limit``).

    None when there is nothing to search (binary, vanished); :class:`_Unsearched` when text
    may be there but was not searched (too big, unreadable), so the result can say so.

    Most files fit in the first read, so the common case is open, read, close: no ``fstat``.
    The walk only hands over regular files (or links checked to point at one), and
    ``O_NOFOLLOW | O_NONBLOCK`` keeps a file swapped for a link or a FIFO from being followed
    or from blocking.
    """
    if cancel.is_set():
        return None
    try:
        fd = os.open(path, OPEN_FLAGS)
    except PermissionError:
        return _Unsearched("permission denied")
    except OSError:
        return None
    try:
        first = os.read(fd, _FIRST_READ)
        if b"\0" in first[:_SNIFF]:
            return None
        if len(first) < _FIRST_READ:
            if isinstance(needle, bytes):
                # The common case, inlined: most files do not match.
                hay = first.lower()
                if hay.find(needle) < 0:
                    return None
                return _find_lines(hay, first, needle, 0, limit)
            return _matches(first, needle, 0, limit) if first else None
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None
        if st.st_size > MAX_CONTENT_BYTES:
            limit_text = f"over the {format_size(MAX_CONTENT_BYTES)} search limit"
            return _Unsearched(limit_text, st.st_size)
        return _scan_blocks(fd, first, needle, limit, cancel)
    except OSError as exc:
        return _Unsearched(f"could not be read ({exc.strerror or exc})")
    finally:
        os.close(fd)


def _scan_blocks(
    fd: int, first: bytes, needle: bytes | str, limit: int, cancel: CancelToken
) -> list[_Match]:
    """Search a bigger file block by block, cutting blocks at line ends."""
    found: list[_Match] = []
    carry = b""
    lines_before = 0
    block = first
    while len(found) < limit:
        data = carry + block
        if not block:
            if data:
                found.extend(_matches(data, needle, lines_before, limit - len(found)))
            break
        cut = data.rfind(b"\n")
        if cut < 0 and len(data) < _BLOCK * 2:
            carry = data  # one very long line: keep reading it, up to two blocks
        else:
            head, carry = (data[: cut + 1], data[cut + 1 :]) if cut >= 0 else (data, b"")
            found.extend(_matches(head, needle, lines_before, limit - len(found)))
            lines_before += head.count(b"\n")
        cancel.raise_if_cancelled()
        block = os.read(fd, _BLOCK)
    return found


def _matches(data: bytes, needle: bytes | str, lines_before: int, limit: int) -> list[_Match]:
    """Lines of ``data`` containing ``needle`` (already lowercased), case-insensitively."""
    if isinstance(needle, bytes):
        # Fast path for ASCII queries: bytes.lower() folds only ASCII and keeps offsets.
        return _find_lines(data.lower(), data, needle, lines_before, limit)
    text = data.decode("utf-8", errors="replace")
    lowered = text.lower()
    # Lowering can change the length of a few characters; then show the lowered line.
    original = text if len(lowered) == len(text) else lowered
    return _find_lines(lowered, original, needle, lines_before, limit)


def _find_lines(
    hay: _Text, original: _Text, needle: _Text, lines_before: int, limit: int
) -> list[_Match]:
    nl = b"\n" if isinstance(hay, bytes) else "\n"
    found: list[_Match] = []
    counted_to, line_no = 0, lines_before + 1
    pos = hay.find(needle)
    while pos >= 0 and len(found) < limit:
        start = hay.rfind(nl, 0, pos) + 1
        end = hay.find(nl, pos)
        end = len(hay) if end < 0 else end
        line_no += hay.count(nl, counted_to, start)
        counted_to = start
        if isinstance(original, bytes):
            line = original[start:end].decode("utf-8", errors="replace")
            col = len(original[start:pos].decode("utf-8", errors="replace"))
        else:
            line, col = original[start:end], pos - start
        found.append(_Match(line_no, _clip(line, col)))
        pos = hay.find(needle, end + 1) if end < len(hay) else -1
    return found


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\u202a-\u202e\u2066-\u2069]")


def _clip(line: str, col: int) -> str:
    """Cut a long line to LINE_WIDTH characters around the match; drop control characters."""
    line = line.rstrip("\r")
    if len(line) > LINE_WIDTH:
        start = max(0, min(col - LINE_WIDTH // 3, len(line) - LINE_WIDTH))
        end = start + LINE_WIDTH
        line = ("…" if start else "") + line[start:end] + ("…" if end < len(line) else "")
    return _CONTROL.sub("", line.replace("\t", " "))


def _glob_matcher(glob: str) -> re.Pattern[str]:
    """Case-insensitive glob; a leading ``**/`` also matches at the top level."""
    pattern = (glob or "*").strip().replace("\\", "/").lower() or "*"
    variants = [pattern]
    while variants[-1].startswith("**/"):
        variants.append(variants[-1][3:])
    return re.compile("|".join(f"(?:{fnmatch.translate(v)})" for v in variants))


def file_search_impl(
    policy: FolderPolicy,
    query: str,
    glob: str = "*",
    content: bool = True,
    max_results: int = 50,
    cancel: CancelToken | None = None,
    *,
    time_budget_s: float = SEARCH_TIME_BUDGET_S,
) -> str:
    """The body of the ``file_search`` tool (see its description); returns the result text."""
    cancel = cancel or CancelToken()
    if not policy.roots:
        raise AccessDenied("No folders have been added, so there is nothing to search.")
    if content and not query.strip():
        raise ToolError("The query is empty; give text to look for, or set content to false.")
    if "\x00" in query or "\x00" in glob:
        raise ToolError("The query contains a NUL byte.")
    matcher = None if glob.strip() in ("", "*", "**") else _glob_matcher(glob)
    by_path = "/" in glob.replace("\\", "/")
    lowered = query.lower()
    needle: bytes | str = lowered.encode() if lowered.isascii() else lowered
    deadline = time.monotonic() + time_budget_s
    several = len(policy.roots) > 1

    def candidates() -> Iterator[tuple[str, str]]:
        for root in policy.roots:
            prefix = policy.label(root) + "/" if several else ""
            for path, rel, name, is_link in _walk(root, cancel, deadline):
                if _SEP != "/":
                    rel = rel.replace(_SEP, "/")
                if matcher is not None and not matcher.match((rel if by_path else name).lower()):
                    continue
                if is_sensitive_file(name):
                    continue  # (sensitive folders are hidden ones, which the walk skips)
                if is_link:
                    real = allowed_link_target(policy, path)
                    if real is None:
                        continue
                    path = real
                yield path, path_text(prefix + rel)  # read_file takes this form back

    lines: list[str] = []
    unsearched: list[tuple[str, _Unsearched]] = []
    files_seen = files_matched = 0
    stopped_early = False
    if not content:
        for _path, shown in candidates():
            files_seen += 1
            if lowered and lowered not in shown.lower():
                continue
            lines.append(shown)
            if len(lines) >= max_results:
                stopped_early = True
                break
    else:
        # One thread: with the GIL, worker threads made this slower on 2 cores (measured).
        for path, shown in candidates():
            files_seen += 1
            if time.monotonic() > deadline:
                break
            found = _scan(path, needle, max_results - len(lines), cancel)
            if isinstance(found, _Unsearched):
                unsearched.append((shown, found))
                continue
            if not found:
                continue
            files_matched += 1
            lines.extend(f"{shown}:{m.line_no}: {m.text}" for m in found)
            if len(lines) >= max_results:
                stopped_early = True
                break
    cancel.raise_if_cancelled()
    timed_out = time.monotonic() > deadline
    return _search_report(
        query,
        glob,
        content,
        lines,
        files_seen,
        files_matched,
        stopped_early,
        time_budget_s if timed_out else None,
        unsearched,
    )


MAX_UNSEARCHED_NAMED = 10
"""Files named one by one in the "not searched" note (then: "and N more")."""


def _unsearched_note(items: list[tuple[str, _Unsearched]]) -> str:
    """The skipped files as one sentence.

    E.g. ``1 file skipped: big.txt, 1.0 GB, over the 256 MB search limit.``
    """
    parts = []
    for shown, why in items[:MAX_UNSEARCHED_NAMED]:
        size = f", {format_size(why.size)}" if why.size is not None else ""
        parts.append(f"{shown}{size}, {why.reason}")
    more = len(items) - MAX_UNSEARCHED_NAMED
    tail = f"; and {more} more" if more > 0 else ""
    one = len(items) == 1
    return (
        f"{len(items)} {'file' if one else 'files'} skipped: {'; '.join(parts)}{tail} "
        f"(not searched, so {'it' if one else 'they'} may hold matches)."
    )


def _search_report(
    query: str,
    glob: str,
    content: bool,
    lines: list[str],
    files_seen: int,
    files_matched: int,
    stopped_early: bool,
    timed_out_after: float | None,
    unsearched: list[tuple[str, _Unsearched]] | None = None,
) -> str:
    what = f"'{query}'" if query else "files"
    where = f" in files matching '{glob}'" if glob not in ("", "*") else ""
    if not lines:
        head = f"No matches for {what}{where} ({files_seen:,} files looked at)."
    elif content:
        head = (
            f"{len(lines)} matching line(s) for {what} in {files_matched} file(s){where}"
            f" ({files_seen:,} files searched):"
        )
    else:
        named = f" whose path contains '{query}'" if query else ""
        pattern = f" matching '{glob}'" if glob not in ("", "*") else ""
        head = f"{len(lines)} file(s){named}{pattern}:"
    notes = []
    if stopped_early:
        notes.append(
            f"Stopped at max_results={len(lines)}; there may be more. Narrow the query or glob, "
            "or raise max_results."
        )
    if timed_out_after is not None:
        notes.append(f"The search stopped after {timed_out_after:g} s; results are partial.")
    if unsearched:
        # "No matches" must not claim a file holds no match when it was never searched.
        notes.append(_unsearched_note(unsearched))
    return "\n".join([head, *lines, *notes])


def file_search_tool(policy: FolderPolicy) -> Tool:
    """The ``file_search`` tool, confined by ``policy``."""

    @tool(name="file_search", timeout_s=SEARCH_TIME_BUDGET_S + 10, max_output_chars=64_000)
    def file_search(  # noqa: D417 - `cancel` is injected by the runner, not told to the model
        query: str,
        glob: str = "*",
        content: bool = True,
        max_results: Annotated[int, Field(ge=1, le=500)] = 50,
        cancel: CancelToken | None = None,
    ) -> str:
        """Search the files in the folders the person added, by content and by file name.

        Returns matching lines as "path:line: text" (content=true), or matching file paths
        (content=false). Matching is plain text and case-insensitive (not a regex). Paths are
        relative to the added folder (prefixed by the folder's name when there are several) and
        can be passed to read_file. Hidden folders, .git, node_modules, virtual environments,
        binary files and files that may hold secrets are skipped.

        Args:
            query: Text to find inside files. With content=false it filters file paths instead,
                and may be empty to list every file matching glob.
            glob: File-name pattern such as "*.py" or "*report*"; a pattern containing "/" is
                matched against the whole relative path, e.g. "docs/*.md".
            content: true to search inside files, false to match only file names and paths.
            max_results: Stop after this many matching lines (or files).
        """
        return file_search_impl(policy, query, glob, content, max_results, cancel)

    return file_search
