"""The Sources panel: "did it use my docs?" for the selected answer.

Shows the exact passages that were sent with a grounded answer, numbered as the answer cites
them, with their scores (fused rank score, dense cosine similarity, keyword BM25) and where
they come from (file, heading, page or lines). The passage text is untrusted document
content: it is shown as plain text, never interpreted.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from parley.core.display import location_text
from parley.ui.chat.markdown import reveal_invisible
from parley.ui.knowledge.citations import display_path
from parley.ui.plain import plain_label, shown, tooltip

if TYPE_CHECKING:
    from parley.core.knowledge.grounding import Source

__all__ = ["SourcesPanel", "format_score"]

_COL_N, _COL_SOURCE, _COL_FUSED, _COL_DENSE, _COL_KEYWORD = range(5)

_HEADER_TIPS = {
    _COL_FUSED: "Combined: the meaning match plus a share of the keyword match, raised by "
    "the file's other good passages (higher is better).",
    _COL_DENSE: "Meaning match: how close the passage's meaning is to the question "
    "(cosine similarity of their embeddings; — when meaning search was not used).",
    _COL_KEYWORD: "Keyword match: how well the question's words occur in the passage "
    "(BM25; — when none of the question's words is in it).",
}


def format_score(value: float | None, digits: int = 3) -> str:
    """A score for the table; ``—`` when that search did not find the passage."""
    if value is None:
        return "—"
    return f"{value:.{digits}f}"


class SourcesPanel(QWidget):
    """The passages sent with one answer, their scores and locations.

    Args:
        parent: Optional parent widget.
    """

    # ---- Signals
    sig_open_requested = Signal(str, int)
    """Open a source at its page or line: (message id, source number)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("sourcesPanel")
        self._message_id: str | None = None
        self._sources: list[Source] = []
        self._query: str | None = None
        em = self.fontMetrics().height()

        self.title = QLabel()
        self.title.setWordWrap(True)
        font = self.title.font()
        font.setBold(True)
        self.title.setFont(font)
        self.hint = QLabel()
        self.hint.setWordWrap(True)
        self.hint.setEnabled(False)
        # The model's rewrite of a follow-up: untrusted text, shown plain.
        self.query = plain_label(QLabel())
        self.query.setObjectName("sourcesQuery")
        self.query.setWordWrap(True)
        self.query.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.query.setToolTip(
            "Your question leaned on earlier turns, so the chat model turned it into this "
            "standalone search; the answer still got your question as you wrote it."
        )

        self.table = QTreeWidget()
        self.table.setObjectName("sourcesTable")
        self.table.setColumnCount(5)
        self.table.setHeaderLabels(["#", "Source", "combined", "meaning match", "keyword match"])
        self.table.setRootIsDecorated(False)
        self.table.setUniformRowHeights(True)
        self.table.setAlternatingRowColors(True)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setAccessibleName("Sources of the selected answer")
        self.table.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        header = self.table.header()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(_COL_SOURCE, QHeaderView.ResizeMode.Stretch)
        for col in (_COL_N, _COL_FUSED, _COL_DENSE, _COL_KEYWORD):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)
        for col, tip in _HEADER_TIPS.items():
            self.table.headerItem().setToolTip(col, tip)
        self.table.itemSelectionChanged.connect(self._show_selected)
        self.table.itemActivated.connect(lambda *_: self._open_selected())

        self.location = plain_label(QLabel())
        self.location.setWordWrap(True)
        self.location.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.open_button = QPushButton("Open at this place")
        self.open_button.setToolTip("Open the file at the cited page or line")
        self.open_button.clicked.connect(self._open_selected)
        loc_row = QHBoxLayout()
        loc_row.addWidget(self.location, 1)
        loc_row.addWidget(self.open_button)
        self.text = QPlainTextEdit()
        self.text.setObjectName("sourceText")
        self.text.setReadOnly(True)
        self.text.setAccessibleName("The passage sent to the model")
        self.text.setLineWrapMode(QPlainTextEdit.LineWrapMode.WidgetWidth)

        detail = QWidget()
        dl = QVBoxLayout(detail)
        dl.setContentsMargins(0, em // 3, 0, 0)
        dl.addLayout(loc_row)
        dl.addWidget(self.text, 1)
        self.splitter = QSplitter(Qt.Orientation.Vertical)
        self.splitter.addWidget(self.table)
        self.splitter.addWidget(detail)
        self.splitter.setChildrenCollapsible(False)
        self.splitter.setStretchFactor(0, 2)
        self.splitter.setStretchFactor(1, 3)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(em // 2, em // 2, em // 2, em // 2)
        layout.setSpacing(em // 3)
        layout.addWidget(self.title)
        layout.addWidget(self.hint)
        layout.addWidget(self.query)
        layout.addWidget(self.splitter, 1)
        self.show_sources(None, None)

    # ---- Public API
    def message_id(self) -> str | None:
        """The answer whose sources are shown."""
        return self._message_id

    def sources(self) -> list[Source]:
        """The sources shown."""
        return list(self._sources)

    def search_query(self) -> str | None:
        """The rewritten search query shown (None: the question was searched as asked)."""
        return self._query

    def show_sources(
        self,
        message_id: str | None,
        sources: Sequence[Source] | None,
        *,
        select: int | None = None,
        search_query: str | None = None,
    ) -> None:
        """Show an answer's sources.

        Args:
            message_id: The answer (None: no answer selected).
            sources: Its sources; None when the answer did not search the documents, an empty
                list when the search found nothing relevant.
            select: The source number to select (default: the first).
            search_query: What was searched when it was not the question as asked (a
                follow-up rewritten into a standalone query).
        """
        self._message_id = message_id
        self._sources = list(sources or [])
        self.table.clear()
        shown_query = search_query if message_id is not None and sources is not None else None
        self._query = shown_query or None
        self.query.setText(
            shown(f"Searched for: “{shown_query}” (your follow-up, made standalone)")
            if shown_query
            else ""
        )
        self.query.setVisible(bool(shown_query))
        if message_id is None:
            self.title.setText("Sources")
            self.hint.setText(
                "Turn on “Use my documents” and ask a question: the passages sent with the "
                "answer show here. Click an answer to see its sources."
            )
        elif sources is None:
            self.title.setText("This answer did not use your documents")
            self.hint.setText("“Use my documents” was off for it, so nothing was searched.")
        elif not self._sources:
            self.title.setText("No passages were sent with this answer")
            self.hint.setText(
                "Your documents were searched, but nothing relevant was found; the model was "
                "told so."
            )
        else:
            n = len(self._sources)
            self.title.setText(f"{n} passage{'s' if n != 1 else ''} sent with this answer")
            self.hint.setText(
                "Exactly these passages were in the prompt; [n] in the answer refers to row n."
            )
        for s in self._sources:
            item = QTreeWidgetItem(
                [
                    str(s.n),
                    _one_line(display_path(s), location_text(s.page, s.line_start, s.line_end)),
                    format_score(s.score, 4),
                    format_score(s.dense_score),
                    format_score(s.keyword_score, 2),
                ]
            )
            item.setData(_COL_N, Qt.ItemDataRole.UserRole, s.n)
            item.setToolTip(_COL_SOURCE, tooltip(s.path))
            for col in (_COL_N, _COL_FUSED, _COL_DENSE, _COL_KEYWORD):
                item.setTextAlignment(
                    col, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
                )
            self.table.addTopLevelItem(item)
        has = bool(self._sources)
        self.splitter.setVisible(has)
        if has:
            target = select if select is not None else self._sources[0].n
            self.select(target)
        else:
            self._show_selected()

    def select(self, n: int) -> bool:
        """Select source ``n`` (shows its passage); False if the answer has no such source."""
        for i in range(self.table.topLevelItemCount()):
            item = self.table.topLevelItem(i)
            if item is not None and item.data(_COL_N, Qt.ItemDataRole.UserRole) == n:
                self.table.setCurrentItem(item)
                item.setSelected(True)
                self._show_selected()
                return True
        return False

    def selected(self) -> Source | None:
        """The source whose passage is shown."""
        items = self.table.selectedItems()
        if not items:
            return None
        n = items[0].data(_COL_N, Qt.ItemDataRole.UserRole)
        return next((s for s in self._sources if s.n == n), None)

    # ---- internals
    def _show_selected(self) -> None:
        s = self.selected()
        if s is None:
            self.location.setText("")
            self.text.setPlainText("")
            self.open_button.setEnabled(False)
            return
        bits = [f"[{s.n}] {s.path}"]
        where = location_text(s.page, s.line_start, s.line_end)
        if where:
            bits.append(where)
        if s.heading:
            bits.append(f"under “{s.heading}”")
        self.location.setText(shown(" · ".join(bits)))
        # Revealed, not stripped: a passage smuggling hidden text should show it here.
        self.text.setPlainText(reveal_invisible(s.text))
        self.open_button.setEnabled(self._message_id is not None)

    def _open_selected(self) -> None:
        s = self.selected()
        if s is not None and self._message_id is not None:
            self.sig_open_requested.emit(self._message_id, s.n)


def _one_line(path: str, where: str) -> str:
    return shown(f"{path} · {where}" if where else path)
