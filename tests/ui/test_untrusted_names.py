"""Names from the file system and documents, shown in the window's tables, labels and tooltips.

They must show as what they are: control and bidi characters as visible escapes (the one
``core.display.safe_text``), and never taken for HTML (Qt guesses rich text from a leading
tag, so a file called ``<img src=...>.md`` in a tooltip or an auto-format label would load
an image). Each check renders the string the way Qt would and compares what a person sees.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import Qt as QtGui_Qt
from PySide6.QtGui import QTextDocument

from parley.core.knowledge.grounding import Source
from parley.ui.knowledge.citations import display_path, resolve_citation
from parley.ui.knowledge.panel import FolderRow, KnowledgePanel
from parley.ui.knowledge.sources_panel import SourcesPanel
from parley.ui.notices import NoticeBar
from parley.ui.sidebar import ConversationRow, Sidebar

HOSTILE = "evil<img src=icon.png>\x1b]0;pwned\x07\u202etxt.md"
SHOWN = "evil<img src=icon.png>\\x1b]0;pwned\\x07\\u202etxt.md"


def as_qt_shows(text: str) -> str:
    """What a tooltip or an auto-format label displays for ``text``."""
    if QtGui_Qt.mightBeRichText(text):
        doc = QTextDocument()
        doc.setHtml(text)
        return doc.toPlainText()
    return text


def label_shows(label: Any) -> str:
    if label.textFormat() == Qt.TextFormat.PlainText:
        return str(label.text())
    return as_qt_shows(label.text())


def test_skipped_files_table_and_tooltips(qtbot: Any, tmp_path: Path) -> None:
    panel = KnowledgePanel()
    qtbot.addWidget(panel)
    root = tmp_path / "notes"
    panel.set_folders([FolderRow(path=root, files=1, chunks=2, skipped=1, status="indexed")])
    panel.set_skipped(str(root), [(root / HOSTILE, "unsupported \x1b[31mtype")])
    model = panel.skipped_model
    name = model.index(0, 0)
    reason = model.index(0, 1)
    assert model.data(name, Qt.ItemDataRole.DisplayRole) == SHOWN
    assert model.data(reason, Qt.ItemDataRole.DisplayRole) == "unsupported \\x1b[31mtype"
    tip = model.data(name, Qt.ItemDataRole.ToolTipRole)
    assert as_qt_shows(tip) == f"{root}/{SHOWN}"  # the whole name, literally


def test_folder_list_labels_and_progress(qtbot: Any, tmp_path: Path) -> None:
    panel = KnowledgePanel()
    qtbot.addWidget(panel)
    folder = tmp_path / HOSTILE
    panel.set_folders([FolderRow(path=folder, files=1, chunks=2, skipped=0, status="indexed")])
    item = panel.folders.topLevelItem(0)
    assert item.text(0) == SHOWN
    assert as_qt_shows(item.toolTip(0)) == f"{tmp_path}/{SHOWN}"
    assert label_shows(panel.detail_label).startswith(f"{tmp_path}/{SHOWN} · last indexed")

    @dataclass
    class P:
        files_done: int = 1
        files_total: int = 3
        chunks: int = 4
        current: str | None = None
        eta_s: float | None = None
        phase: str = "indexing"
        reason: str | None = None

    panel.set_starting([str(folder)])
    assert label_shows(panel.progress_title) == f"Indexing {SHOWN}"
    panel.set_progress(P(current=str(folder / "a<b>c\x1b.md")))
    current = panel.progress_current
    assert current.textFormat() == Qt.TextFormat.PlainText and "\x1b" not in current.text()
    assert as_qt_shows(current.toolTip()).endswith("a<b>c\\x1b.md")
    # A rebuild says why (not "for the new model" when the index was damaged).
    panel.set_progress(P(phase="rebuilding", reason="it was damaged: header.bin is 0 bytes"))
    detail = label_shows(panel.progress_detail)
    assert "because it was damaged: header.bin is 0 bytes" in detail
    assert "new model" not in detail


def test_sources_panel_row_tooltip_and_location(qtbot: Any, tmp_path: Path) -> None:
    panel = SourcesPanel()
    qtbot.addWidget(panel)
    root = tmp_path / "notes"
    source = Source(
        n=1,
        path=str(root / HOSTILE),
        root=str(root),
        heading="<b>Budget</b>\x1b[8m",
        page=None,
        line_start=3,
        line_end=4,
        text="passage",
        score=0.03,
        dense_score=0.5,
        keyword_score=1.0,
    )
    panel.show_sources("7", [source])
    row = panel.table.topLevelItem(0)
    assert row.text(1) == f"notes/{SHOWN} · lines 3–4"
    assert as_qt_shows(row.toolTip(1)) == f"{root}/{SHOWN}"
    assert label_shows(panel.location) == (
        f"[1] {root}/{SHOWN} · lines 3–4 · under “<b>Budget</b>\\x1b[8m”"
    )


def test_notice_and_sidebar_show_text_literally(qtbot: Any) -> None:
    bar = NoticeBar()
    qtbot.addWidget(bar)
    bar.show_notice(f"Could not open {HOSTILE}: gone", kind="error")
    assert label_shows(bar.label) == f"Could not open {SHOWN}: gone"

    sidebar = Sidebar()
    qtbot.addWidget(sidebar)
    sidebar.set_conversations([ConversationRow(id=1, title=HOSTILE, updated_at=time.time())])
    items = [sidebar.list.item(i) for i in range(sidebar.list.count())]
    (conversation,) = [i for i in items if i.flags() & Qt.ItemFlag.ItemIsSelectable]
    assert conversation.text() == SHOWN
    assert as_qt_shows(conversation.toolTip()) == SHOWN


@pytest.mark.skipif(os.name != "posix", reason="only POSIX names hold raw bytes")
def test_citation_of_a_name_that_is_not_utf8_opens_the_real_file(tmp_path: Path) -> None:
    from parley.core.display import path_text

    root = tmp_path / "notes"
    root.mkdir()
    raw = os.fsencode(root) + b"/caf\xe9.md"
    with open(raw, "wb") as f:
        f.write(b"# Menu\n")
    real = os.fsdecode(raw)
    # Sources carry the text form (they go into the prompt, JSON and SQLite).
    source = Source(1, path_text(real), path_text(root), "", None, 1, 1, "x", 0.1, None, None)
    assert display_path(source) == "notes/caf\\xe9.md"
    request = resolve_citation([source], 1, [str(root)])
    assert os.fsencode(request.path) == raw
