"""The Knowledge panel: the folders added, their index state, indexing progress, skipped files.

A view only: it shows what :class:`~parley.ui.knowledge.controller.KnowledgeController`
gives it and turns what the person does into signals (add, re-index, remove, cancel, show
the skipped files of a folder). Nothing here touches the store, the disk or the network; the
folder picker is a non-modal :class:`QFileDialog` (``open()``, never ``exec()``), and removing
a folder asks first in an inline bar (no modal box).

The skipped-file list may hold 100,000 rows: it is a flat table model over a Python list,
filtered in Python (one list comprehension, a few ms for 100k rows) after a short debounce,
shown in a view with uniform row heights so Qt never measures every row.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PySide6.QtCore import (
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QSplitter,
    QTableView,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from parley.core.display import safe_text
from parley.ui.knowledge.rows import (
    STATUS_LABELS,
    FolderRow,
    ProgressLike,
    SkippedModel,
    format_eta,
    format_when,
    skipped_rows,
)
from parley.ui.plain import plain_label, shown, tooltip

__all__ = [
    "STATUS_LABELS",
    "FolderRow",
    "KnowledgePanel",
    "SkippedModel",
    "format_eta",
    "format_when",
    "skipped_rows",
]

_STATUS_HINTS = {
    "new": "Parley has not indexed this folder yet.",
    "incomplete": "Indexing was stopped before the end; Re-index finishes it.",
    "needs-reindex": "The embedding model changed: the folder must be indexed again.",
    "missing": "The folder is not there (moved, renamed, or on a drive that is not plugged in).",
}

_FILTER_DEBOUNCE_MS = 150
"""Typing in the skipped-files filter re-filters after this pause."""

_COL_FOLDER, _COL_FILES, _COL_CHUNKS, _COL_SKIPPED, _COL_STATUS = range(5)


# ---------------------------------------------------------------- the panel


class ElidedLabel(QLabel):
    """A one-line label that elides its text in the middle to fit (file paths)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._full = ""
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        plain_label(self)  # file names: never guessed to be rich text

    def set_full_text(self, text: str) -> None:
        """Show ``text`` (elided to the width; the whole text is the tooltip)."""
        self._full = text
        self.setToolTip(tooltip(text))
        self._elide()

    def full_text(self) -> str:
        """The text before eliding."""
        return self._full

    def resizeEvent(self, event: Any) -> None:
        """Re-elide for the new width."""
        super().resizeEvent(event)
        self._elide()

    def _elide(self) -> None:
        width = max(10, self.contentsRect().width())
        self.setText(
            self.fontMetrics().elidedText(shown(self._full), Qt.TextElideMode.ElideMiddle, width)
        )


class KnowledgePanel(QWidget):
    """Folders, indexing progress and skipped files (see the module docstring).

    Args:
        parent: Optional parent widget.
    """

    # ---- Signals
    sig_add_requested = Signal(str)
    """A folder was chosen in the folder picker: its path."""
    sig_reindex_requested = Signal(str)
    """Re-index one folder: its path."""
    sig_reindex_all_requested = Signal()
    """Re-index everything ("Re-index now" after the embedding model changed)."""
    sig_remove_requested = Signal(str)
    """Removing a folder was confirmed: its path."""
    sig_cancel_requested = Signal()
    """Cancel the indexing run."""
    sig_skipped_requested = Signal(str)
    """The skipped files of a folder should be shown: its path."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("knowledgePanel")
        self._rows: list[FolderRow] = []
        self._skipped_for: str | None = None
        self._busy = False
        self.folder_dialog: QFileDialog | None = None
        """The folder picker while it is open (non-modal)."""
        self._build()

    # ---- construction
    def _build(self) -> None:
        em = self.fontMetrics().height()

        title = QLabel("Your documents")
        title.setObjectName("knowledgeTitle")
        font = title.font()
        font.setPointSizeF(font.pointSizeF() * 1.25)
        title.setFont(font)
        self.add_button = QPushButton("Add folder…")
        self.add_button.setToolTip("Add a folder; Parley indexes it so answers can cite it")
        self.add_button.clicked.connect(self.choose_folder)
        header = QHBoxLayout()
        header.addWidget(title)
        header.addStretch(1)
        header.addWidget(self.add_button)

        intro = QLabel(
            "Parley answers from these folders when “Use my documents” is on, and cites them. "
            "Files never leave this computer unless you chose OpenAI embeddings or a team server."
        )
        intro.setWordWrap(True)
        intro.setObjectName("knowledgeMuted")
        self.intro = intro

        # Re-index banner (the embedding model changed, or the vector index was lost).
        self.banner = QFrame()
        self.banner.setObjectName("knowledgeBanner")
        self.banner_label = QLabel(
            "The embedding model changed, so your documents must be indexed again before "
            "they can be searched."
        )
        self.banner_label.setWordWrap(True)
        self.reindex_now_button = QPushButton("Re-index now")
        self.reindex_now_button.clicked.connect(self.sig_reindex_all_requested)
        bl = QHBoxLayout(self.banner)
        bl.setContentsMargins(em // 2, em // 3, em // 2, em // 3)
        bl.addWidget(self.banner_label, 1)
        bl.addWidget(self.reindex_now_button)
        self.banner.setVisible(False)

        # Folders.
        self.folders = QTreeWidget()
        self.folders.setObjectName("knowledgeFolders")
        self.folders.setColumnCount(5)
        self.folders.setHeaderLabels(["Folder", "Files", "Chunks", "Skipped", "Status"])
        self.folders.setRootIsDecorated(False)
        self.folders.setUniformRowHeights(True)
        self.folders.setAlternatingRowColors(True)
        self.folders.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.folders.setAccessibleName("Folders added to Parley")
        hdr = self.folders.header()
        hdr.setStretchLastSection(False)
        hdr.setSectionResizeMode(_COL_FOLDER, QHeaderView.ResizeMode.Stretch)
        for col in (_COL_FILES, _COL_CHUNKS, _COL_SKIPPED, _COL_STATUS):
            hdr.setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)
        self.folders.itemSelectionChanged.connect(self._selection_changed)
        self.empty_label = QLabel(
            "No folders yet. Add one, or drop a folder on the window: Parley indexes it in the "
            "background."
        )
        self.empty_label.setWordWrap(True)
        self.empty_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty_label.setObjectName("knowledgeMuted")

        self.detail_label = plain_label(QLabel())
        self.detail_label.setObjectName("knowledgeMuted")
        self.detail_label.setWordWrap(True)
        self.detail_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.reindex_button = QPushButton("Re-index")
        self.reindex_button.setToolTip("Index the selected folder again (changed files only)")
        self.reindex_button.clicked.connect(self._reindex_clicked)
        self.remove_button = QPushButton("Remove…")
        self.remove_button.setToolTip("Remove the folder from your documents (files stay on disk)")
        self.remove_button.clicked.connect(self._remove_clicked)
        actions = QHBoxLayout()
        actions.addWidget(self.detail_label, 1)
        actions.addWidget(self.reindex_button)
        actions.addWidget(self.remove_button)

        # Inline confirmation for Remove (non-modal).
        self.confirm = QFrame()
        self.confirm.setObjectName("knowledgeConfirm")
        self.confirm_label = plain_label(QLabel())
        self.confirm_label.setWordWrap(True)
        self.confirm_remove_button = QPushButton("Remove")
        self.confirm_keep_button = QPushButton("Keep")
        self.confirm_remove_button.clicked.connect(self._confirm_remove)
        self.confirm_keep_button.clicked.connect(self.cancel_remove)
        cl = QHBoxLayout(self.confirm)
        cl.setContentsMargins(em // 2, em // 3, em // 2, em // 3)
        cl.addWidget(self.confirm_label, 1)
        cl.addWidget(self.confirm_remove_button)
        cl.addWidget(self.confirm_keep_button)
        self.confirm.setVisible(False)
        self._confirm_path: str | None = None

        # Progress.
        self.progress = QFrame()
        self.progress.setObjectName("knowledgeProgress")
        self.progress_title = plain_label(QLabel())
        self.progress_bar = QProgressBar()
        self.progress_bar.setTextVisible(False)
        self.progress_bar.setMaximumHeight(max(6, em // 2))
        self.progress_detail = plain_label(QLabel())
        self.progress_current = ElidedLabel()
        self.progress_current.setObjectName("knowledgeMuted")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop indexing; what is done stays indexed")
        self.cancel_button.clicked.connect(self.sig_cancel_requested)
        pl = QVBoxLayout(self.progress)
        pl.setContentsMargins(em // 2, em // 3, em // 2, em // 3)
        top = QHBoxLayout()
        top.addWidget(self.progress_title, 1)
        top.addWidget(self.cancel_button)
        pl.addLayout(top)
        pl.addWidget(self.progress_bar)
        pl.addWidget(self.progress_detail)
        pl.addWidget(self.progress_current)
        self.progress.setVisible(False)
        self._run_folders: list[str] = []
        self._rate_start: tuple[float, int] | None = None
        self.summary_label = plain_label(QLabel())
        self.summary_label.setObjectName("knowledgeMuted")
        self.summary_label.setWordWrap(True)
        self.summary_label.setVisible(False)

        self.loading_label = QLabel("Opening your documents…")
        self.loading_label.setObjectName("knowledgeMuted")
        self.loading_label.setVisible(False)
        self.error_label = plain_label(QLabel())
        self.error_label.setObjectName("knowledgeError")
        self.error_label.setWordWrap(True)
        self.error_label.setVisible(False)

        # Skipped files.
        self.skipped_title = QLabel("Skipped files")
        self.skipped_title.setObjectName("knowledgeTitle")
        self.skipped_filter = QLineEdit()
        self.skipped_filter.setPlaceholderText("Filter by name or reason")
        self.skipped_filter.setClearButtonEnabled(True)
        self.skipped_filter.setMinimumWidth(em * 9)
        self.skipped_model = SkippedModel(self)
        # A table, not a tree: QTreeView asks every row whether it has children when it lays
        # out (100,000 Python calls, ~0.4 s); QTableView only asks for the visible rows.
        self.skipped_view = QTableView()
        self.skipped_view.setObjectName("knowledgeSkipped")
        self.skipped_view.setModel(self.skipped_model)
        self.skipped_view.setShowGrid(False)
        self.skipped_view.setWordWrap(False)
        self.skipped_view.setAlternatingRowColors(True)
        self.skipped_view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.skipped_view.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.skipped_view.setAccessibleName("Skipped files")
        # Lines that quote folder and file names must not set the panel's width: a long
        # name would widen the window or push the panel's buttons out of view (issue 14
        # item 5). They are cut at the edge instead; the names are in the rows and tooltips.
        for label in (self.skipped_title, self.progress_title, self.progress_detail):
            label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        vheader = self.skipped_view.verticalHeader()
        vheader.setVisible(False)
        vheader.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        vheader.setDefaultSectionSize(self.fontMetrics().lineSpacing() + em // 3)
        hheader = self.skipped_view.horizontalHeader()
        hheader.setStretchLastSection(True)
        hheader.setHighlightSections(False)
        hheader.setDefaultAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        hheader.resizeSection(0, em * 16)
        self.skipped_empty = QLabel("Nothing was skipped.")
        self.skipped_empty.setObjectName("knowledgeMuted")
        self._filter_timer = QTimer(self)
        self._filter_timer.setSingleShot(True)
        self._filter_timer.setInterval(_FILTER_DEBOUNCE_MS)
        self._filter_timer.timeout.connect(self._apply_filter)
        self.skipped_filter.textChanged.connect(lambda _t: self._filter_timer.start())

        upper = QWidget()
        ul = QVBoxLayout(upper)
        ul.setContentsMargins(0, 0, 0, 0)
        ul.addWidget(self.folders, 1)
        ul.addWidget(self.empty_label)
        ul.addLayout(actions)
        ul.addWidget(self.confirm)
        lower = QWidget()
        ll = QVBoxLayout(lower)
        ll.setContentsMargins(0, em // 3, 0, 0)
        sh = QHBoxLayout()
        sh.addWidget(self.skipped_title, 1)  # takes the room left beside the filter
        sh.addWidget(self.skipped_filter, 1)
        ll.addLayout(sh)
        ll.addWidget(self.skipped_view, 1)
        ll.addWidget(self.skipped_empty)
        self.splitter = QSplitter(Qt.Orientation.Vertical)
        self.splitter.addWidget(upper)
        self.splitter.addWidget(lower)
        self.splitter.setChildrenCollapsible(False)
        self.splitter.setStretchFactor(0, 2)
        self.splitter.setStretchFactor(1, 3)
        self.splitter.setSizes([em * 10, em * 14])

        layout = QVBoxLayout(self)
        layout.setContentsMargins(em // 2, em // 2, em // 2, em // 2)
        layout.setSpacing(em // 3)
        layout.addLayout(header)
        layout.addWidget(intro)
        layout.addWidget(self.banner)
        layout.addWidget(self.progress)
        layout.addWidget(self.summary_label)
        layout.addWidget(self.loading_label)
        layout.addWidget(self.error_label)
        layout.addWidget(self.splitter, 1)
        self.folders.setVisible(False)  # until set_folders() brings rows
        self._update_actions()
        self._update_skipped_hint()

    # ---- Public API: data in
    def set_folders(self, rows: Sequence[FolderRow]) -> None:
        """Show ``rows`` (the selection is kept by path)."""
        selected = self.selected_folder()
        self._rows = list(rows)
        self.folders.blockSignals(True)
        try:
            self.folders.clear()
            for row in self._rows:
                item = QTreeWidgetItem(
                    [
                        shown(row.path.name or str(row.path)),
                        f"{row.files:,}",
                        f"{row.chunks:,}",
                        f"{row.skipped:,}",
                        STATUS_LABELS.get(row.status, row.status),
                    ]
                )
                item.setData(_COL_FOLDER, Qt.ItemDataRole.UserRole, str(row.path))
                item.setToolTip(_COL_FOLDER, tooltip(str(row.path)))
                hint = _STATUS_HINTS.get(row.status)
                if hint:
                    item.setToolTip(_COL_STATUS, hint)
                for col in (_COL_FILES, _COL_CHUNKS, _COL_SKIPPED):
                    item.setTextAlignment(
                        col, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
                    )
                if row.status in ("missing", "needs-reindex", "incomplete"):
                    item.setForeground(_COL_STATUS, self._warning_brush())
                self.folders.addTopLevelItem(item)
            target = selected if selected in {str(r.path) for r in self._rows} else None
            if target is None and self._rows:
                target = str(self._rows[0].path)
            for i in range(self.folders.topLevelItemCount()):
                it = self.folders.topLevelItem(i)
                if it is not None and it.data(_COL_FOLDER, Qt.ItemDataRole.UserRole) == target:
                    it.setSelected(True)
                    self.folders.setCurrentItem(it)
        finally:
            self.folders.blockSignals(False)
        has = bool(self._rows)
        self.folders.setVisible(has)
        self.empty_label.setVisible(not has)
        if self._confirm_path is not None and self._confirm_path not in {
            str(r.path) for r in self._rows
        }:
            self.cancel_remove()
        self._update_actions()
        current = self.selected_folder()
        chosen = next((r for r in self._rows if str(r.path) == current), None)
        if current != self._skipped_for:
            self._skipped_for = current
            if current is None:
                self.skipped_model.set_items(None, [])
                self._update_skipped_hint()
            else:
                self.sig_skipped_requested.emit(current)
        elif chosen is not None and chosen.skipped != self.skipped_model.total():
            # The run found more (or fewer) files to skip since the list was read.
            self.sig_skipped_requested.emit(current)

    def folder_rows(self) -> list[FolderRow]:
        """What is shown (for tests and the window)."""
        return list(self._rows)

    def set_needs_reindex(self, needed: bool) -> None:
        """Show or hide the "Re-index now" banner."""
        self.banner.setVisible(needed)

    def set_busy(self, busy: bool) -> None:
        """An indexing run is going (Re-index and Re-index now wait for it)."""
        self._busy = busy
        self.reindex_now_button.setEnabled(not busy)
        self._update_actions()

    def set_starting(self, folders: Sequence[str | Path]) -> None:
        """Indexing was asked for; the worker is starting (no numbers yet)."""
        self._run_folders = [str(f) for f in folders]
        self._rate_start = None
        self.progress_title.setText(shown(f"Indexing {_names(folders)}"))
        self.progress_bar.setRange(0, 0)  # busy indicator
        self.progress_detail.setText("Starting…")
        self.progress_current.set_full_text("")
        self.cancel_button.setEnabled(True)
        self.summary_label.setVisible(False)
        self.progress.setVisible(True)

    def set_progress(self, p: ProgressLike) -> None:
        """Show where the indexing run is."""
        eta = format_eta(p.eta_s)
        if p.phase == "scanning":
            self.progress_bar.setRange(0, 0)
            detail = "Looking for new and changed files…"
        elif p.phase == "rebuilding":
            self.progress_bar.setRange(0, 0)
            # Say why (a new model, a damaged index): "for the new model" was not always true.
            why = getattr(p, "reason", None)
            detail = f"Re-embedding stored passages: {p.chunks:,} done"
            detail += f" · {eta}" if eta else ""
            if why:
                detail = safe_text(f"Rebuilding the vector index because {why}.", one_line=True)
                detail += f"\nRe-embedding stored passages: {p.chunks:,} done"
                detail += f" · {eta}" if eta else ""
        else:
            total = max(0, p.files_total)
            self.progress_bar.setRange(0, max(1, total))
            self.progress_bar.setValue(min(p.files_done, max(1, total)))
            detail = f"{p.files_done:,} of {total:,} files · {p.chunks:,} chunks"
            inside = getattr(p, "file_chunks_total", 0)
            if inside and p.current:
                # A big file streams in batches: say how far into it the run is.
                done = getattr(p, "file_chunks_done", 0)
                detail += f" · this file: {done:,} of ~{inside:,} passages"
            eta = format_eta(self._eta(p)) if p.files_done < total else ""
            detail += f" · {eta}" if eta else ""
        self.progress_detail.setText(detail)
        self.progress_current.set_full_text(self._relative(p.current or ""))
        self.progress.setVisible(True)

    def set_finished(self, summary: str) -> None:
        """The run ended: hide the progress, say what it did."""
        self.progress.setVisible(False)
        self.progress_bar.setRange(0, 1)
        self.progress_bar.setValue(0)
        self._run_folders = []
        self.summary_label.setText(shown(f"Last run: {summary}") if summary else "")
        self.summary_label.setVisible(bool(summary))

    def _eta(self, p: ProgressLike) -> float | None:
        """The later of the indexer's estimate (by bytes) and one from the file rate.

        The indexer counts bytes, so a big file that is skipped at once makes its estimate
        far too short; the file rate alone misjudges a folder of one huge and many small
        files. The larger of the two is the honest guess.
        """
        now = time.monotonic()
        if self._rate_start is None:
            self._rate_start = (now, p.files_done)
            return p.eta_s
        t0, done0 = self._rate_start
        by_files = None
        if p.files_done > done0 and now > t0:
            rate = (p.files_done - done0) / (now - t0)
            by_files = (p.files_total - p.files_done) / rate
        guesses = [g for g in (p.eta_s, by_files) if g is not None]
        return max(guesses) if guesses else None

    def _relative(self, path: str) -> str:
        for folder in self._run_folders:
            prefix = folder.rstrip("/\\") + os.sep
            if path.startswith(prefix):
                return f"{Path(folder).name}/{path[len(prefix) :]}"
        return path

    def show_finished(self, _report: object, summary: str) -> None:
        """A run ended (the controller's ``sig_index_finished``): summary, fresh skipped list."""
        self.set_finished(summary)
        self.refresh_skipped()

    def set_loading(self, loading: bool) -> None:
        """Opening the documents (chromadb, the embedding model) is under way."""
        self.loading_label.setVisible(loading)

    def set_error(self, text: str | None) -> None:
        """Show a one-line error (None hides it)."""
        self.error_label.setText(safe_text(text or ""))
        self.error_label.setVisible(bool(text))

    def set_skipped(self, folder: str, items: Sequence[tuple[Path | str, str]]) -> None:
        """The skipped files of ``folder`` (ignored if another folder is selected now)."""
        if folder != self.selected_folder():
            return
        self.skipped_model.set_items(Path(folder), items)
        self._update_skipped_hint()

    def refresh_skipped(self) -> None:
        """Ask again for the selected folder's skipped files (after an indexing run)."""
        current = self.selected_folder()
        if current is not None:
            self._skipped_for = current
            self.sig_skipped_requested.emit(current)

    def select_folder(self, folder: str | Path) -> bool:
        """Select a folder's row (shows its skipped files); False if it is not listed."""
        target = str(folder)
        for i in range(self.folders.topLevelItemCount()):
            it = self.folders.topLevelItem(i)
            if it is not None and it.data(_COL_FOLDER, Qt.ItemDataRole.UserRole) == target:
                self.folders.setCurrentItem(it)
                it.setSelected(True)
                return True
        return False

    def selected_folder(self) -> str | None:
        """The selected folder's path, if any."""
        items = self.folders.selectedItems()
        if not items:
            return None
        value = items[0].data(_COL_FOLDER, Qt.ItemDataRole.UserRole)
        return str(value) if value else None

    def status_text(self, folder: str | Path) -> str:
        """The status shown for a folder ("" if not listed)."""
        for row in self._rows:
            if str(row.path) == str(folder):
                return STATUS_LABELS.get(row.status, row.status)
        return ""

    # ---- Public API: actions
    def choose_folder(self) -> QFileDialog:
        """Open the folder picker (non-modal); a chosen folder emits ``sig_add_requested``."""
        if self.folder_dialog is not None:
            self.folder_dialog.raise_()
            return self.folder_dialog
        dialog = QFileDialog(self, "Add a folder to your documents")
        dialog.setFileMode(QFileDialog.FileMode.Directory)
        dialog.setOption(QFileDialog.Option.ShowDirsOnly, True)
        dialog.setAcceptMode(QFileDialog.AcceptMode.AcceptOpen)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.fileSelected.connect(self._folder_chosen)
        dialog.finished.connect(lambda _r: setattr(self, "folder_dialog", None))
        self.folder_dialog = dialog
        dialog.open()
        return dialog

    def ask_remove(self, folder: str | None = None) -> None:
        """Ask (inline) whether to remove a folder (default: the selected one)."""
        folder = folder or self.selected_folder()
        row = next((r for r in self._rows if str(r.path) == folder), None)
        if row is None:
            return
        self._confirm_path = str(row.path)
        what = (
            f"Its {row.chunks:,} indexed passages are deleted from the index."
            if row.chunks
            else "It is no longer searched."
        )
        self.confirm_label.setText(
            f"Remove “{shown(row.path.name or str(row.path))}” from your documents? {what} "
            "The files on disk are not touched."
        )
        self.confirm.setVisible(True)
        self.confirm_keep_button.setFocus()

    def cancel_remove(self) -> None:
        """Close the remove confirmation without removing."""
        self._confirm_path = None
        self.confirm.setVisible(False)

    # ---- internals
    def _folder_chosen(self, path: str) -> None:
        if path:
            self.sig_add_requested.emit(path)

    def _selection_changed(self) -> None:
        self._update_actions()
        current = self.selected_folder()
        if current is not None and current != self._skipped_for:
            self._skipped_for = current
            self.skipped_model.set_items(Path(current), [])
            self.skipped_title.setText("Skipped files (loading…)")
            self.sig_skipped_requested.emit(current)

    def _update_actions(self) -> None:
        folder = self.selected_folder()
        row = next((r for r in self._rows if str(r.path) == folder), None)
        self.reindex_button.setEnabled(row is not None and row.status != "missing")
        self.remove_button.setEnabled(row is not None)
        if row is None:
            self.detail_label.setText("")
            return
        when = format_when(row.last_indexed)
        self.detail_label.setText(shown(f"{row.path} · last indexed {when}"))

    def _update_skipped_hint(self) -> None:
        total = self.skipped_model.total()
        visible = self.skipped_model.rowCount()
        folder = self._skipped_for
        name = Path(folder).name if folder else ""
        if total == 0:
            self.skipped_title.setText(f"Skipped files in {name}" if name else "Skipped files")
        elif visible == total:
            self.skipped_title.setText(f"Skipped files in {name} ({total:,})")
        else:
            self.skipped_title.setText(f"Skipped files in {name} ({visible:,} of {total:,})")
        self.skipped_empty.setVisible(total == 0 and folder is not None)
        self.skipped_view.setVisible(total > 0)
        self.skipped_filter.setEnabled(total > 0)

    def _apply_filter(self) -> None:
        self.skipped_model.set_filter(self.skipped_filter.text())
        self._update_skipped_hint()

    def _reindex_clicked(self) -> None:
        folder = self.selected_folder()
        if folder is not None:
            self.sig_reindex_requested.emit(folder)

    def _remove_clicked(self) -> None:
        self.ask_remove()

    def _confirm_remove(self) -> None:
        path = self._confirm_path
        self.cancel_remove()
        if path is not None:
            self.sig_remove_requested.emit(path)

    def _warning_brush(self) -> Any:
        from PySide6.QtGui import QBrush, QColor

        dark = self.palette().color(QPalette.ColorRole.Base).lightnessF() < 0.5
        return QBrush(QColor("#f0883e" if dark else "#bc4c00"))


def _names(folders: Sequence[str | Path]) -> str:
    names = [Path(f).name or str(f) for f in folders]
    if not names:
        return "your documents"
    if len(names) <= 3:
        return ", ".join(names)
    return f"{', '.join(names[:2])} and {len(names) - 2} more"
