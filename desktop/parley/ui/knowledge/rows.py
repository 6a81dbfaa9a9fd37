"""The Knowledge panel's data: folder rows, progress, and the skipped-files table model.

Plain values and one Qt item model, no widgets: :mod:`parley.ui.knowledge.panel` shows them and
:mod:`parley.ui.knowledge.controller` fills them. The skipped-file list may hold 100,000 rows:
it is a flat table model over a Python list, filtered in Python (one list comprehension, a few
ms for 100k rows), so Qt never measures every row.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt

from parley.ui.plain import shown, tooltip

STATUS_LABELS = {
    "new": "Not indexed yet",
    "indexing": "Indexing…",
    "queued": "Waiting to index",
    "indexed": "Indexed",
    "incomplete": "Incomplete",
    "needs-reindex": "Needs re-index",
    "missing": "Folder missing",
}
"""How each folder status reads in the panel."""


class ProgressLike(Protocol):
    """What the panel reads of ``parley.core.knowledge.indexer.IndexProgress``."""

    files_done: int
    files_total: int
    chunks: int
    current: str | None
    eta_s: float | None
    phase: str


@dataclass(frozen=True)
class FolderRow:
    """One folder as the panel shows it."""

    path: Path
    files: int = 0
    """Files indexed."""
    chunks: int = 0
    skipped: int = 0
    """Files skipped or failed."""
    status: str = "new"
    """A key of :data:`STATUS_LABELS`."""
    last_indexed: datetime | None = None


def format_eta(seconds: float | None) -> str:
    """``about 12 s left`` / ``about 3 min left`` / ``""`` when unknown."""
    if seconds is None or seconds != seconds or seconds < 0:  # None or NaN
        return ""
    if seconds < 1:
        return "almost done"
    if seconds < 60:
        return f"about {max(1, round(seconds))} s left"
    if seconds < 3600:
        return f"about {round(seconds / 60)} min left"
    hours, rest = divmod(int(seconds), 3600)
    return f"about {hours} h {round(rest / 60)} min left"


def format_when(when: datetime | None, now: float | None = None) -> str:
    """``just now``, ``5 min ago``, ``3 h ago``, or a date, for "last indexed"."""
    if when is None:
        return "never"
    ts = when.timestamp() if when.tzinfo else when.replace(tzinfo=UTC).timestamp()
    age = (time.time() if now is None else now) - ts
    if age < 60:
        return "just now"
    if age < 3600:
        return f"{int(age // 60)} min ago"
    if age < 86400:
        return f"{int(age // 3600)} h ago"
    return when.astimezone().strftime("%Y-%m-%d %H:%M")


# ---------------------------------------------------------------- skipped files


def skipped_rows(
    root: Path | None, items: Sequence[tuple[Path | str, str]]
) -> list[tuple[str, str]]:
    """``(path relative to root, reason)`` rows; string operations only (100k rows: ~50 ms).

    ``Path.relative_to`` costs ~20 µs a call, 2 s for 100,000 files: too slow even for a
    worker thread's patience, let alone the GUI thread.
    """
    prefix = str(root).rstrip("/\\") + os.sep if root is not None else None
    out: list[tuple[str, str]] = []
    append = out.append
    for path, reason in items:
        text = str(path)
        if prefix is not None and text.startswith(prefix):
            text = text[len(prefix) :]
            if os.sep != "/":
                text = text.replace(os.sep, "/")
        append((text, str(reason)))
    return out


_Index = QModelIndex | QPersistentModelIndex


class SkippedModel(QAbstractTableModel):
    """Skipped files ``(path, reason)`` of one folder, with a substring filter."""

    HEADERS = ("File", "Reason")

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._root: Path | None = None
        self._all: list[tuple[str, str]] = []
        self._rows: list[tuple[str, str]] = []
        self._filter = ""

    # ---- Qt model interface
    def rowCount(self, parent: _Index = QModelIndex()) -> int:
        """Rows shown (after the filter)."""
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: _Index = QModelIndex()) -> int:
        """File and reason."""
        return 0 if parent.isValid() else 2

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        """The relative path or the reason; the full path as the file's tooltip."""
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        rel, reason = self._rows[index.row()]
        # Names and reasons are untrusted: shown escaped, tooltips never taken for HTML.
        if role == Qt.ItemDataRole.DisplayRole:
            return shown(rel if index.column() == 0 else reason)
        if role == Qt.ItemDataRole.ToolTipRole:
            if index.column() == 0 and self._root is not None:
                return tooltip(str(self._root / rel))
            return tooltip(reason)
        return None

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        """Column titles."""
        if (
            orientation == Qt.Orientation.Horizontal
            and role == Qt.ItemDataRole.DisplayRole
            and 0 <= section < 2
        ):
            return self.HEADERS[section]
        return None

    # ---- Public API
    def set_items(self, root: Path | None, items: Sequence[tuple[Path | str, str]]) -> None:
        """Show ``items`` (paths shown relative to ``root`` when they are inside it).

        Pass rows made by :func:`skipped_rows` in a worker thread for big lists; rows that
        are already relative are kept as they are.
        """
        self._root = root
        self._all = skipped_rows(root, items)
        self._apply()

    def set_filter(self, text: str) -> None:
        """Keep rows whose path or reason contains ``text`` (case-insensitive)."""
        text = text.strip().casefold()
        if text == self._filter:
            return
        self._filter = text
        self._apply()

    def total(self) -> int:
        """Rows before the filter."""
        return len(self._all)

    def row(self, i: int) -> tuple[str, str]:
        """A shown row: (relative path, reason)."""
        return self._rows[i]

    def _apply(self) -> None:
        self.beginResetModel()
        f = self._filter
        if f:
            self._rows = [r for r in self._all if f in r[0].casefold() or f in r[1].casefold()]
        else:
            self._rows = self._all
        self.endResetModel()
