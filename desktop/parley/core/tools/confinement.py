"""Confinement of the file tools to the folders the person added: :class:`FolderPolicy`.

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
reads, so a refused call never breaks a conversation. The tools themselves are
``tools/file_search.py`` and ``tools/read_file.py``.
"""

from __future__ import annotations

import fnmatch
import os
import re
import stat
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

from parley.core.display import path_from_text, path_text
from parley.core.tools.registry import ToolError

__all__ = [
    "OPEN_FLAGS",
    "AccessDenied",
    "FolderPolicy",
    "PathNotFound",
    "allowed_link_target",
    "is_sensitive_file",
    "is_sensitive_name",
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


def is_sensitive_file(name: str) -> bool:
    """Whether a file name matches one of :data:`SENSITIVE_FILES` (folders aside)."""
    return _SENSITIVE_RE.match(_norm_name(name)) is not None


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
            fd = os.open(real, OPEN_FLAGS)
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


OPEN_FLAGS = (
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


def allowed_link_target(policy: FolderPolicy, link: str) -> str | None:
    """A symbolic link found while walking is followed only to a regular file inside a folder."""
    try:
        real = Path(os.path.realpath(link, strict=True))
    except OSError:
        return None
    root = policy._root_of(real)
    if root is None or _sensitive_parts(real.relative_to(root).parts) or not real.is_file():
        return None
    return str(real)
