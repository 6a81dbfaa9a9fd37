"""The citation preview: a cited passage shown in its file, inside Parley, highlighted.

Clicking ``[n]`` opens this pane (a dock) instead of another program: the file's text (PDF
and DOCX pages as text, each page headed by its number) with the cited lines or passage
highlighted and scrolled into view. "Open in default app" is the secondary way out; when
that fails the pane says so (nothing is claimed to have opened).

Files are read off the GUI thread; only checked requests reach it (inside an added folder,
see :func:`~parley.ui.knowledge.citations.resolve_citation`). Text is shown as plain text.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QTextCharFormat, QTextCursor, QTextFormat
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QTextEdit,
    QVBoxLayout,
    QWidget,
)

from parley.core.decoding import decode, text_encoding

if TYPE_CHECKING:
    from parley.core.knowledge.grounding import Source
    from parley.ui.knowledge.citations import OpenRequest

MAX_PREVIEW_BYTES = 4 * 1024 * 1024
"""Text files larger than this are shown up to here (the cited part is near the start of a
chunk's lines, which are counted from the start)."""

PAGED_SUFFIXES = frozenset({".pdf", ".docx", ".html", ".htm"})
"""Files shown through the document loader (as text) rather than read as text."""


def text_of(path: Path, load: Callable[[Path], Any] | None) -> tuple[str, dict[int, int]]:
    """The text the preview shows, and the line where each page starts (paged documents).

    Blocking: call it in a worker thread.
    """
    if path.suffix.lower() in PAGED_SUFFIXES and load is not None:
        doc = load(path)
        lines: list[str] = []
        pages: dict[int, int] = {}
        current: int | None = None
        for block in doc.blocks:
            if block.page is not None and block.page != current:
                current = block.page
                if lines:
                    lines.append("")
                pages[current] = len(lines) + 1
                lines.append(f"— page {current} —")
            lines.extend(block.text.splitlines() or [""])
        return "\n".join(lines), pages
    with path.open("rb") as handle:
        data = handle.read(MAX_PREVIEW_BYTES)
    # The one decoder (``core/decoding.py``): the file reads as it was indexed, so the cited
    # line numbers point at the same lines (a Windows-1252 or UTF-16 file too).
    codec = text_encoding(data, complete=len(data) < MAX_PREVIEW_BYTES) or "utf-8"
    return decode(data, codec), {}


class CitationPreview(QWidget):
    """Shows one cited passage in its file.

    Args:
        load: Parses PDF/DOCX/HTML (the knowledge feature's isolated loader), or None.
        parent: Optional parent widget.
    """

    # ---- Signals
    sig_open_external = Signal(object)
    """The "Open in default app" button was clicked: the :class:`OpenRequest`."""

    def __init__(
        self, load: Callable[[Path], Any] | None = None, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setObjectName("citationPreview")
        self._load = load
        self._request: OpenRequest | None = None
        self._generation = 0
        self.title = QLabel()
        self.title.setTextFormat(Qt.TextFormat.PlainText)  # file names are not markup
        self.title.setWordWrap(True)
        font = self.title.font()
        font.setBold(True)
        self.title.setFont(font)
        self.status = QLabel()
        self.status.setTextFormat(Qt.TextFormat.PlainText)
        self.status.setWordWrap(True)
        self.text = QPlainTextEdit()
        self.text.setReadOnly(True)
        self.text.setLineWrapMode(QPlainTextEdit.LineWrapMode.WidgetWidth)
        self.text.setAccessibleName("Cited file")
        self.open_button = QPushButton("Open in default app")
        self.open_button.setAccessibleName("Open in default app")
        self.open_button.setEnabled(False)
        self.open_button.clicked.connect(self._open_external)
        row = QHBoxLayout()
        row.addWidget(self.status, 1)
        row.addWidget(self.open_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.title)
        layout.addWidget(self.text, 1)
        layout.addLayout(row)

    # ---- Public API
    def request(self) -> OpenRequest | None:
        """What is shown (None: nothing yet)."""
        return self._request

    async def show_citation(self, request: OpenRequest, source: Source | None) -> bool:
        """Show ``request``'s file with the cited passage highlighted and scrolled to.

        Returns:
            False when the file could not be read (the pane says why).
        """
        self._generation += 1
        generation = self._generation
        self._request = request
        where = request.where()
        self.title.setText(f"[{request.n}] {request.path.name}" + (f" · {where}" if where else ""))
        self.status.setText("Reading…")
        self.text.setExtraSelections([])
        self.text.setPlainText("")  # never the previous file under this title
        self.open_button.setEnabled(True)
        try:
            text, pages = await asyncio.to_thread(text_of, request.path, self._load)
        except Exception as exc:
            if generation == self._generation:
                self.text.setPlainText("")
                self.status.setText(f"Could not read {request.path.name}: {exc}")
            return False
        if generation != self._generation:
            return False  # another citation was clicked meanwhile
        self.text.setPlainText(text)
        first, last = self._cited_lines(text, pages, request, source)
        self._highlight(first, last)
        self.status.setText(
            f"Lines {first}–{last} highlighted." if last > first else f"Line {first} highlighted."
        )
        return True

    def highlighted_text(self) -> str:
        """The highlighted text (for tests and accessibility)."""
        sel = self.text.extraSelections()
        return sel[0].cursor.selectedText().replace("\u2029", "\n") if sel else ""

    def first_visible_line(self) -> int:
        """1-based number of the first line shown at the top of the pane."""
        return self.text.firstVisibleBlock().blockNumber() + 1

    def say(self, text: str) -> None:
        """Show a one-line message under the text (e.g. the default app failed)."""
        self.status.setText(text)

    # ---- internals
    @staticmethod
    def _cited_lines(
        text: str, pages: dict[int, int], request: OpenRequest, source: Source | None
    ) -> tuple[int, int]:
        lines = text.split("\n")
        if request.page is not None and pages:
            start = pages.get(request.page, 1)
            end = min((p for p in pages.values() if p > start), default=len(lines) + 1) - 1
            # Narrow to the passage itself when its first words are found on the page.
            if source is not None and source.text.strip():
                probe = source.text.strip().splitlines()[0][:60]
                for i in range(start, end + 1):
                    if probe and probe in lines[i - 1]:
                        count = len(source.text.strip().splitlines())
                        return i, min(end, i + count - 1)
            return start, max(start, end)
        first = request.line or (source.line_start if source else None) or 1
        last = (source.line_end if source and source.line_end else first) or first
        return max(1, first), max(first, last)

    def _highlight(self, first: int, last: int) -> None:
        doc = self.text.document()
        start = doc.findBlockByNumber(first - 1)
        end = doc.findBlockByNumber(max(first, last) - 1)
        if not start.isValid():
            self.text.setExtraSelections([])
            return
        cursor = QTextCursor(start)
        if end.isValid():
            cursor.setPosition(
                end.position() + max(0, end.length() - 1), QTextCursor.MoveMode.KeepAnchor
            )
        else:
            cursor.movePosition(QTextCursor.MoveOperation.End, QTextCursor.MoveMode.KeepAnchor)
        selection = QTextEdit.ExtraSelection()
        fmt = QTextCharFormat()
        highlight = QColor(self.palette().color(self.palette().ColorRole.Highlight))
        highlight.setAlpha(70)
        fmt.setBackground(highlight)
        fmt.setProperty(QTextFormat.Property.FullWidthSelection, True)
        selection.format = fmt
        selection.cursor = cursor
        self.text.setExtraSelections([selection])
        # Scroll so the passage starts near the top (a little context above it).
        bar = self.text.verticalScrollBar()
        bar.setValue(bar.maximum())
        self.text.setTextCursor(QTextCursor(doc.findBlockByNumber(max(0, first - 3))))
        self.text.ensureCursorVisible()
        top = QTextCursor(start)
        self.text.setTextCursor(top)

    def _open_external(self) -> None:
        if self._request is not None:
            self.sig_open_external.emit(self._request)
