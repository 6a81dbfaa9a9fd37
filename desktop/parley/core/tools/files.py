"""File tools confined to the folders the person added: ``file_search`` and ``read_file``.

Everything a model asks for is untrusted (a document it read may tell it to fetch
``~/.ssh/id_rsa``), so :class:`FolderPolicy` decides every access:

- a path is allowed only if its fully resolved real path (symbolic links and ``..`` resolved)
  lies inside an added folder, compared by path components (``Path.is_relative_to``), never by
  string prefix, so ``/x/allowed_dir_extra`` is not inside ``/x/allowed``;
- NUL bytes, Windows device names (CON, NUL, COM1, ...) and ``/proc``, ``/sys``, ``/dev`` are
  refused on every OS; only regular files are read (no FIFOs, sockets or devices);
- files holding secrets are refused even inside a folder (``.env``, keys, ``.ssh/``, ...);
- a path outside the folders is refused without saying whether it exists;
- opening re-checks what was resolved (``O_NOFOLLOW``, ``O_NONBLOCK``, then ``fstat`` and the
  descriptor's own real path), so swapping a file for a symbolic link between the check and
  the open does not leak anything.

Refusals raise :class:`AccessDenied`; the registry turns them into error results the model
reads, so a refused call never breaks a conversation.
"""

from __future__ import annotations

import codecs
import fnmatch
import os
import re
import stat
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, BinaryIO, TypeVar

from pydantic import Field

from parley.core.display import path_from_text, path_text
from parley.core.tools.registry import CancelToken, Tool, ToolError, tool

__all__ = [
    "AccessDenied",
    "DocumentLoader",
    "FolderPolicy",
    "PathNotFound",
    "is_sensitive_name",
    "make_file_tools",
]


class AccessDenied(ToolError):
    """The path may not be read: outside the folders, sensitive, or not a regular file."""

    default_message = "That path is not inside the folders you allowed."


class PathNotFound(AccessDenied):
    """The path would be allowed but does not exist.

    A subclass of :class:`AccessDenied` so that callers of :meth:`FolderPolicy.resolve` see
    every refusal through one exception type.
    """

    default_message = "No such file or folder."


# ---------------------------------------------------------------- what is never read
_WINDOWS = os.name == "nt"

_DEVICE_NAMES = frozenset(
    {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$", "CLOCK$"}
    | {f"{kind}{n}" for kind in ("COM", "LPT") for n in (*"0123456789", "¹", "²", "³")}
)
"""Windows reserved names: ``NUL.txt`` or ``con`` open a device there, on any drive or folder."""

_SYSTEM_TREES = tuple(Path(p) for p in ("/proc", "/sys", "/dev"))
"""Pseudo file systems: their "files" are processes, kernel state and devices."""

SENSITIVE_DIRS = frozenset(
    {".ssh", ".gnupg", ".git", ".aws", ".azure", ".kube", ".docker", ".password-store", ".gcloud"}
)
"""Folders whose contents are never read (keys, credentials, repository internals)."""

SENSITIVE_FILES = (
    ".env",
    ".env.*",
    "*.env",
    "*.pem",
    "*.key",
    "*.p12",
    "*.pfx",
    "*.jks",
    "*.keystore",
    "*.ppk",
    "id_rsa*",
    "id_dsa*",
    "id_ecdsa*",
    "id_ed25519*",
    ".netrc",
    "_netrc",
    ".pgpass",
    ".npmrc",
    ".pypirc",
    ".git-credentials",
    ".htpasswd",
    "*.keychain",
    "*.keychain-db",
    "*.kdbx",
    "*.kdb",
    "secring.*",
    "credentials",
    "credentials.json",
    "client_secret*.json",
    "wallet.dat",
)
"""File-name patterns (case-insensitive) that are never read, even inside an added folder."""

_SENSITIVE_RE = re.compile("|".join(fnmatch.translate(p) for p in SENSITIVE_FILES))

SKIPPED_DIRS = frozenset(
    {"node_modules", "__pycache__", "venv", "site-packages", "bower_components", "CVS"}
)
"""Folders file_search does not walk (besides hidden ones and virtual environments)."""


def _norm_name(name: str) -> str:
    # Windows ignores trailing dots and spaces ("CON." is CON, ".env." is .env).
    return name.rstrip(". ").lower() or name.lower()


def is_sensitive_name(name: str) -> bool:
    """Whether a file name matches one of :data:`SENSITIVE_FILES` (or is a sensitive folder)."""
    norm = _norm_name(name)
    return norm in SENSITIVE_DIRS or _SENSITIVE_RE.match(norm) is not None


def _is_device_name(name: str) -> bool:
    stem = _norm_name(name).split(".", 1)[0].rstrip(" ").upper()
    return stem in _DEVICE_NAMES


def _sensitive_parts(parts: Sequence[str]) -> bool:
    """True if any folder in ``parts`` is sensitive or the last part is a sensitive file."""
    return any(_norm_name(p) in SENSITIVE_DIRS for p in parts) or (
        bool(parts) and is_sensitive_name(parts[-1])
    )


# ---------------------------------------------------------------- the policy
class FolderPolicy:
    """Which files the model may read: those really inside the folders the person added."""

    def __init__(self, roots: Sequence[Path]) -> None:
        """Resolve the folders; folders that do not exist (any more) are left out.

        Args:
            roots: The folders the person added.
        """
        resolved: list[Path] = []
        missing: list[Path] = []
        for root in roots:
            try:
                real = Path(root).expanduser().resolve(strict=True)
            except (OSError, RuntimeError):
                missing.append(Path(root))
                continue
            if not real.is_dir() or real in resolved:
                if not real.is_dir():
                    missing.append(Path(root))
                continue
            resolved.append(real)
        self.roots: tuple[Path, ...] = tuple(resolved)
        """The added folders, fully resolved."""
        self.missing: tuple[Path, ...] = tuple(missing)
        """Folders that were given but do not exist or are not folders."""
        self._labels = _unique_labels(self.roots)

    # ---- Public API
    def label(self, root: Path) -> str:
        """The short name a folder is known by in paths (its name, made unique)."""
        return "/".join(self._labels[self.roots.index(root)])

    def resolve(self, user_path: str) -> Path:
        """Resolve a path the model gave to a real path inside an added folder.

        Args:
            user_path: Relative to the (only) folder, starting with a folder's name, or absolute.

        Returns:
            The resolved real path (a file or a folder) inside one of :attr:`roots`.

        Raises:
            AccessDenied: Outside the folders, sensitive, a device, a NUL byte... (one line why).
            PathNotFound: Inside the folders but missing.
        """
        candidate, shown = self._candidate(user_path)
        return self._check_real(candidate, shown)

    def display(self, path: Path) -> str:
        r"""A path as results show it; ``read_file`` accepts it back.

        Relative to its folder, prefixed by the folder's name when there are several folders.
        Bytes of a name that are not UTF-8 show as ``\xNN`` (``core.display.path_text``).
        """
        root = self._root_of(Path(path))
        if root is None:
            return path_text(path)
        rel = path_text(Path(path).relative_to(root).as_posix())
        if len(self.roots) == 1:
            return rel
        label = path_text(self.label(root))
        return label if rel == "." else f"{label}/{rel}"

    def open_file(self, user_path: str) -> tuple[BinaryIO, Path, os.stat_result]:
        """Open a regular file for reading, defeating symbolic-link swaps.

        Args:
            user_path: As for :meth:`resolve`.

        Returns:
            The open binary file (unbuffered), its real path and its ``fstat``.

        Raises:
            AccessDenied: As :meth:`resolve`, or the path is not a regular file, or it changed
                between the check and the open.
        """
        real = self.resolve(user_path)
        shown = self.display(real)
        try:
            before = os.lstat(real)
        except OSError:
            raise PathNotFound(f"No such file: '{shown}'.") from None
        if stat.S_ISDIR(before.st_mode):
            raise AccessDenied(f"'{shown}' is a folder; use file_search to list its files.")
        if not stat.S_ISREG(before.st_mode):
            raise AccessDenied(f"'{shown}' is not a regular file (a device, FIFO or socket).")
        try:
            # O_NONBLOCK: a FIFO swapped in after the check must not block the open.
            fd = os.open(real, _OPEN_FLAGS)
        except OSError as exc:
            raise AccessDenied(f"'{shown}' could not be opened ({exc.strerror}).") from None
        try:
            after = os.fstat(fd)
            if not stat.S_ISREG(after.st_mode) or (after.st_ino, after.st_dev) != (
                before.st_ino,
                before.st_dev,
            ):
                raise AccessDenied(f"'{shown}' changed while it was being opened.")
            opened = _fd_real_path(fd)
            if opened is not None and opened != real:
                self._check_real(opened, shown)
            return os.fdopen(fd, "rb", buffering=0), real, after
        except BaseException:
            os.close(fd)
            raise

    # ---- Internals
    def _root_of(self, real: Path) -> Path | None:
        best: Path | None = None
        for root in self.roots:
            if real.is_relative_to(root) and (best is None or len(root.parts) > len(best.parts)):
                best = root
        return best

    def _candidate(self, user_path: str) -> tuple[Path, str]:
        """Turn the model's text into an absolute candidate path (not yet resolved)."""
        if not self.roots:
            raise AccessDenied("No folders have been added, so no files can be read.")
        if not isinstance(user_path, str) or not user_path.strip():
            raise AccessDenied("The path is empty.")
        text = user_path.strip()
        shown = text if len(text) <= 200 else text[:200] + "…"
        if "\x00" in text:
            raise AccessDenied("The path contains a NUL byte.")
        if text.startswith(("\\\\?\\", "\\\\.\\", "//?/", "//./")):
            raise AccessDenied(f"'{shown}': device and namespace paths are not allowed.")
        # A name with bytes that are not UTF-8 is shown as "caf\\xe9.txt": take it back to
        # the real name before backslashes are read as separators (POSIX only).
        text = path_from_text(text)
        # Models write Windows separators on any OS; treat both as separators.
        text = text.replace("\\", "/")
        parts = [p for p in text.split("/") if p]
        for part in parts:
            if _is_device_name(part):
                raise AccessDenied(f"'{shown}' names a device ({part}), not a file.")
            if _WINDOWS and ":" in part and not re.fullmatch(r"[A-Za-z]:", part):
                raise AccessDenied(f"'{shown}': alternate data streams are not allowed.")
        if text.startswith("~"):
            # Expanded, then confined like any absolute path: "~/.ssh" is refused either way.
            text = os.path.expanduser(text)
        path = Path(text)
        if _WINDOWS and path.drive and not path.root:
            raise AccessDenied(f"'{shown}': drive-relative paths are not allowed.")
        if path.is_absolute():
            return path, shown
        rel_parts = path.parts
        by_label = self._match_label(rel_parts)
        if len(self.roots) == 1:
            literal = self.roots[0].joinpath(*rel_parts)
            if by_label is not None and not os.path.lexists(literal):
                return by_label, shown
            return literal, shown
        if by_label is not None:
            return by_label, shown
        found = [
            r.joinpath(*rel_parts) for r in self.roots if os.path.lexists(r.joinpath(*rel_parts))
        ]
        names = ", ".join(self.label(r) for r in self.roots)
        if len(found) == 1:
            return found[0], shown
        if not found:
            raise PathNotFound(
                f"No such file: '{shown}'. Start the path with one of the folders: {names}."
            )
        raise AccessDenied(f"'{shown}' exists in several folders; start it with one of: {names}.")

    def _match_label(self, parts: Sequence[str]) -> Path | None:
        for root, label in zip(self.roots, self._labels, strict=True):
            if tuple(parts[: len(label)]) == label:
                return root.joinpath(*parts[len(label) :])
        return None

    def _check_real(self, candidate: Path, shown: str) -> Path:
        """Resolve ``candidate`` and apply every rule; return the real path."""
        lexical = Path(os.path.abspath(candidate))
        lexical_root = self._root_of(lexical)
        if _in_system_tree(lexical):
            raise AccessDenied(f"'{shown}' is a system path; it is never read.")
        try:
            real = Path(os.path.realpath(candidate, strict=True))
        except OSError:
            if lexical_root is None:
                raise AccessDenied(f"'{shown}' is outside the folders you added.") from None
            raise PathNotFound(f"No such file or folder: '{shown}'.") from None
        root = self._root_of(real)
        if root is None:
            if lexical_root is not None:
                raise AccessDenied(
                    f"'{shown}' is a link that points outside the folders you added."
                )
            raise AccessDenied(f"'{shown}' is outside the folders you added.")
        if _in_system_tree(real):
            raise AccessDenied(f"'{shown}' is a system path; it is never read.")
        sensitive = _sensitive_parts(real.relative_to(root).parts)
        if not sensitive and lexical_root is not None:
            sensitive = _sensitive_parts(lexical.relative_to(lexical_root).parts)
        if sensitive:
            raise AccessDenied(
                f"'{shown}' may hold secrets (keys, passwords, tokens); it is never read."
            )
        if _is_device_name(real.name):
            raise AccessDenied(f"'{shown}' names a device, not a file.")
        return real


_OPEN_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_NOCTTY", 0)
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_BINARY", 0)
)


_PLATFORM: str = sys.platform  # a variable, so type checkers keep every branch


def _fd_real_path(fd: int) -> Path | None:
    """Where an open descriptor really points, when the OS can say."""
    if _PLATFORM.startswith("linux"):
        try:
            return Path(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            return None
    if _PLATFORM == "darwin":  # pragma: no cover - macOS only
        import fcntl

        try:
            raw = fcntl.fcntl(fd, 50, b"\0" * 1024)  # F_GETPATH
            return Path(raw.split(b"\0", 1)[0].decode())
        except OSError:
            return None
    return None


def _in_system_tree(path: Path) -> bool:
    return os.name != "nt" and any(path.is_relative_to(t) for t in _SYSTEM_TREES)


def _unique_labels(roots: Sequence[Path]) -> list[tuple[str, ...]]:
    """Shortest trailing path parts that tell the folders apart (``docs``, ``a/docs``)."""
    labels: list[tuple[str, ...]] = []
    for root in roots:
        parts = root.parts[1:] or (root.anchor,)
        for n in range(1, len(parts) + 1):
            label = tuple(parts[-n:])
            clashes = [
                other
                for other in roots
                if other != root and tuple((other.parts[1:] or (other.anchor,))[-n:]) == label
            ]
            if not clashes:
                break
        labels.append(label)
    return labels


# ---------------------------------------------------------------- file_search
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
        fd = os.open(path, _OPEN_FLAGS)
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
            limit_text = f"over the {_human_size(MAX_CONTENT_BYTES)} search limit"
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
                if _SENSITIVE_RE.match(_norm_name(name)):
                    continue  # (sensitive folders are hidden ones, which the walk skips)
                if is_link:
                    real = _allowed_link_target(policy, path)
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


_UNITS = ("bytes", "KB", "MB", "GB", "TB")


def _human_size(n: int) -> str:
    """``1.0 GB``, ``256 MB``, ``900 bytes`` (binary multiples, as file managers count)."""
    size = float(n)
    for unit in _UNITS:
        if size < 1024 or unit == _UNITS[-1]:
            if unit == "bytes":
                return f"{int(size)} bytes"
            whole = size == int(size) and size >= 10
            return f"{size:.0f} {unit}" if whole else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} bytes"


MAX_UNSEARCHED_NAMED = 10
"""Files named one by one in the "not searched" note (then: "and N more")."""


def _unsearched_note(items: list[tuple[str, _Unsearched]]) -> str:
    """The skipped files as one sentence.

    E.g. ``1 file skipped: big.txt, 1.0 GB, over the 256 MB search limit.``
    """
    parts = []
    for shown, why in items[:MAX_UNSEARCHED_NAMED]:
        size = f", {_human_size(why.size)}" if why.size is not None else ""
        parts.append(f"{shown}{size}, {why.reason}")
    more = len(items) - MAX_UNSEARCHED_NAMED
    tail = f"; and {more} more" if more > 0 else ""
    one = len(items) == 1
    return (
        f"{len(items)} {'file' if one else 'files'} skipped: {'; '.join(parts)}{tail} "
        f"(not searched, so {'it' if one else 'they'} may hold matches)."
    )


def _allowed_link_target(policy: FolderPolicy, link: str) -> str | None:
    """A symbolic link found while walking is followed only to a regular file inside a folder."""
    try:
        real = Path(os.path.realpath(link, strict=True))
    except OSError:
        return None
    root = policy._root_of(real)
    if root is None or _sensitive_parts(real.relative_to(root).parts) or not real.is_file():
        return None
    return str(real)


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


# ---------------------------------------------------------------- read_file
MAX_LINES = 400
"""Most lines read_file returns per call."""
MAX_CHARS = 64_000
"""Most characters (of file text) read_file returns per call."""
MAX_LINE_CHARS = 8_000
"""A longer single line is cut (minified files)."""
COUNT_LINES_UP_TO = 256 * 2**20
"""Total line counts are given for files up to this size."""
DOCUMENT_MAX_BYTES = 50 * 2**20
"""PDF and DOCX files larger than this are not read."""
_DOCUMENT_SUFFIXES = frozenset({".pdf", ".docx"})

DocumentLoader = Callable[[Path], Any]
"""Parses a document into an object with ``.blocks`` (``loaders.LoadedDocument``); raises
``loaders.FileSkipped``."""


def read_file_impl(
    policy: FolderPolicy,
    path: str,
    start_line: int = 1,
    end_line: int | None = None,
    cancel: CancelToken | None = None,
    *,
    load_document: DocumentLoader | None = None,
) -> str:
    """The body of the ``read_file`` tool (see its description); returns the result text."""
    cancel = cancel or CancelToken()
    if start_line < 1:
        raise ToolError("start_line must be 1 or more.")
    if end_line is not None and end_line < start_line:
        raise ToolError(f"end_line ({end_line}) is before start_line ({start_line}).")
    handle, real, st = policy.open_file(path)
    shown = policy.display(real)
    with handle:
        if real.suffix.lower() in _DOCUMENT_SUFFIXES:
            lines = _document_lines(real, st, load_document)
            window, total = _window_list(lines, start_line, end_line, cancel)
        else:
            window, total = _window_file(handle, st, shown, start_line, end_line, cancel)
    if not window:
        if start_line == 1:
            return f"{shown} is empty."
        raise ToolError(
            f"start_line {start_line:,} is past the end of '{shown}' ({total or 0:,} lines)."
        )
    return _format_window(shown, window, end_line, total)


def _document_lines(
    real: Path, st: os.stat_result, load_document: DocumentLoader | None
) -> list[str]:
    # Imported here: the loaders pull in pypdf/python-docx, which a calculator call never needs.
    from parley.core.knowledge import loaders

    try:
        if load_document is not None:
            doc = load_document(real)
        else:
            doc = loaders.load_file(real, max_bytes=DOCUMENT_MAX_BYTES)
    except loaders.FileSkipped as exc:
        reason = getattr(exc, "reason", str(exc))
        raise ToolError(f"This document cannot be read: {reason}") from None
    now = os.stat(real)
    if (now.st_ino, now.st_dev) != (st.st_ino, st.st_dev):
        raise AccessDenied("The file changed while it was being read.")
    lines: list[str] = []
    page: int | None = None
    for block in doc.blocks:
        if block.page is not None and block.page != page:
            page = block.page
            if lines:
                lines.append("")
            lines.append(f"[page {page}]")
        elif lines:
            lines.append("")
        text = block.text
        if getattr(block, "kind", "") == "heading" and text.strip():
            # Markdown-style markers keep the document's outline visible to the model.
            text = "#" * max(1, min(int(getattr(block, "level", 1) or 1), 6)) + " " + text
        lines.extend(text.splitlines() or [""])
    return lines


@dataclass
class _Line:
    no: int
    text: str
    cut_from: int | None = None  # the line's full length, when it was cut


def _window_list(
    lines: list[str], start: int, end: int | None, cancel: CancelToken
) -> tuple[list[_Line], int | None]:
    cancel.raise_if_cancelled()
    last = len(lines) if end is None else min(end, len(lines))
    window = [_Line(n, lines[n - 1]) for n in range(start, min(last, start + MAX_LINES - 1) + 1)]
    return _fit(window), len(lines)


def _fit(window: list[_Line]) -> list[_Line]:
    """Keep the first lines that fit MAX_LINES and MAX_CHARS (cutting one huge line if needed)."""
    kept: list[_Line] = []
    used = 0
    for line in window[:MAX_LINES]:
        if len(line.text) > MAX_LINE_CHARS:
            line = _Line(line.no, line.text[:MAX_LINE_CHARS], line.cut_from or len(line.text))
        if kept and used + len(line.text) + 1 > MAX_CHARS:
            break
        kept.append(line)
        used += len(line.text) + 1
    return kept


def _window_file(
    handle: BinaryIO,
    st: os.stat_result,
    shown: str,
    start: int,
    end: int | None,
    cancel: CancelToken,
) -> tuple[list[_Line], int | None]:
    """Lines start..end of a text file, reading no more than needed (except to count lines)."""
    head = handle.read(_SNIFF)
    handle.seek(0)
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        if st.st_size > 32 * 2**20:
            raise ToolError(f"'{shown}' is a UTF-16 file larger than 32 MB; it is not read.")
        text = handle.read().decode("utf-16", errors="replace")
        return _window_list(text.splitlines(), start, end, cancel)
    if b"\0" in head:
        raise ToolError(f"'{shown}' is a binary file; it has no text to show.")
    encoding = _guess_encoding(head)
    reader = _LineReader(handle)
    line_no = 0  # lines consumed so far
    while line_no < start - 1:
        if line_no % 10_000 == 0:
            cancel.raise_if_cancelled()
        if reader.read_line(0) is None:
            return [], line_no  # start_line is past the end
        line_no += 1
    window: list[_Line] = []
    used = 0
    unshown = 0  # a line read but left out because it did not fit
    last = start + MAX_LINES - 1 if end is None else min(end, start + MAX_LINES - 1)
    while line_no < last:
        raw = reader.read_line(MAX_LINE_CHARS * 4)
        if raw is None:
            break
        data, full_length = raw
        text = data.decode(encoding, errors="replace").rstrip("\r\n")
        cut_from = None
        was_cut = full_length > len(data) - (1 if data.endswith(b"\n") else 0)
        if was_cut or len(text) > MAX_LINE_CHARS:
            text, cut_from = text[:MAX_LINE_CHARS], full_length
        if window and used + len(text) + 1 > MAX_CHARS:
            unshown = 1
            break
        line_no += 1
        window.append(_Line(line_no, text, cut_from))
        used += len(text) + 1
    if st.st_size > COUNT_LINES_UP_TO and not reader.at_eof():
        return window, None  # too big to count every line
    return window, line_no + unshown + reader.count_remaining_lines(cancel)


def _guess_encoding(head: bytes) -> str:
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
        return "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        from charset_normalizer import from_bytes

        matches = list(from_bytes(head))
        if matches:
            best = min(matches, key=lambda m: m.chaos)
            # On short Western text the detector wavers between look-alike code pages
            # (mac_latin2, cp1250...); Windows-1252 is by far the commonest, so it wins ties.
            for m in matches:
                if m.encoding == "cp1252" and m.chaos <= best.chaos + 0.1:
                    return "cp1252"
            return str(best.encoding)
    except Exception:  # a detector failure must not stop the read: fall back below
        pass
    return "latin-1"


class _LineReader:
    """Reads lines from a binary file in big blocks; a line longer than asked is cut."""

    def __init__(self, handle: BinaryIO) -> None:
        self._handle = handle
        self._buf = b""
        self._pos = 0
        self._eof = False

    def _fill(self) -> bool:
        if self._eof:
            return False
        block = self._handle.read(2**20)
        if not block:
            self._eof = True
            return False
        self._buf = self._buf[self._pos :] + block
        self._pos = 0
        return True

    def at_eof(self) -> bool:
        return self._pos >= len(self._buf) and not self._fill()

    def read_line(self, limit: int) -> tuple[bytes, int] | None:
        """The next line, at most ``limit`` bytes of it kept, and its full length in bytes.

        The length excludes the newline; None at the end of the file.
        """
        if self.at_eof():
            return None
        kept = b""
        length = 0
        while True:
            nl = self._buf.find(b"\n", self._pos)
            end = len(self._buf) if nl < 0 else nl + 1
            if len(kept) < limit:
                kept += self._buf[self._pos : min(end, self._pos + limit - len(kept))]
            length += end - self._pos
            self._pos = end
            if nl >= 0:
                return kept, length - 1
            if not self._fill():
                return kept, length

    def count_remaining_lines(self, cancel: CancelToken) -> int:
        count = 0
        last = b""
        while True:
            rest = self._buf[self._pos :]
            if rest:
                count += rest.count(b"\n")
                last = rest[-1:]
            self._pos = len(self._buf)
            cancel.raise_if_cancelled()
            if not self._fill():
                break
        # A last line without a newline still counts.
        return count + (1 if last and last != b"\n" else 0)


def _format_window(shown: str, window: list[_Line], end: int | None, total: int | None) -> str:
    first, last = window[0].no, window[-1].no
    of_total = f" of {total:,}" if total is not None else ""
    width = len(str(last))
    out = [f"{shown} (lines {first:,}-{last:,}{of_total})"]
    for line in window:
        text = line.text
        if line.cut_from is not None:
            text += f" … [line cut; it is {line.cut_from:,} bytes long]"
        out.append(f"{line.no:>{width}}\t{text}")
    wanted_last = end if end is not None else total
    more_in_file = total is None or last < total
    if more_in_file and (wanted_last is None or last < wanted_last):
        out.append(f"… cut at line {last:,}{of_total}; call again with start_line={last + 1}")
    elif end is not None and total is not None and end > total:
        out.append(f"(end of file at line {total:,})")
    return "\n".join(out)


# ---------------------------------------------------------------- the tools
def make_file_tools(
    policy: FolderPolicy, *, load_document: DocumentLoader | None = None
) -> list[Tool]:
    """The ``file_search`` and ``read_file`` tools, confined by ``policy``.

    Args:
        policy: The folders the person added.
        load_document: Parses PDF and DOCX files for read_file, e.g. the ``load`` method of
            a long-lived ``parley.core.knowledge.loaders.IsolatedLoader`` (a worker process
            with a time limit and a memory cap: the right choice for untrusted documents).
            Without it they are parsed in-process by ``loaders.load_file``.

    Returns:
        ``[file_search, read_file]``.
    """

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

    @tool(name="read_file", timeout_s=60.0, max_output_chars=MAX_CHARS + 8_000)
    def read_file(  # noqa: D417 - `cancel` is injected by the runner, not told to the model
        path: str,
        start_line: Annotated[int, Field(ge=1)] = 1,
        end_line: Annotated[int, Field(ge=1)] | None = None,
        cancel: CancelToken | None = None,
    ) -> str:
        """Read a text file (or the text of a PDF or DOCX) from the folders the person added.

        Lines come back numbered. One call returns at most 400 lines or about 64 KB; when the
        text is cut, a last line says which start_line to use to continue. Files outside the
        added folders and files that may hold secrets cannot be read.

        Args:
            path: The file, relative to an added folder, as file_search shows it.
            start_line: First line to return (1-based).
            end_line: Last line to return (inclusive); by default as many as fit.
        """
        return read_file_impl(
            policy, path, start_line, end_line, cancel, load_document=load_document
        )

    return [file_search, read_file]
