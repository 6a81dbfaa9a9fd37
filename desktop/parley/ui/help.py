"""Help: the keyboard shortcuts sheet and the About box.

:class:`ShortcutsSheet` lists the shortcuts from the window's own actions (so it can never
disagree with them) plus the keys the composer, the chat list and the search box handle
themselves. :class:`AboutDialog` shows the version, where Parley keeps its data, and the
licences of Parley and of the parts it ships (read from the installed packages' metadata in a
worker thread: reading ~15 packages' metadata is not for the GUI thread). Both are
non-modal (``show()``), like every dialog of the window.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

from PySide6.QtCore import Qt, QUrl
from PySide6.QtGui import QAction, QDesktopServices, QKeySequence
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from parley import __version__
from parley.ui.plain import plain_label
from parley.ui.tasks import TaskSet
from parley.ui.theme import SPACE, set_type

EXTRA_KEYS: tuple[tuple[str, str, str], ...] = (
    ("Writing", "Enter", "Send the question"),
    ("Writing", "Shift+Enter", "New line in the question"),
    ("Writing", "Up", "Edit the last question (in an empty box)"),
    ("Writing", "Esc", "Stop the answer, or leave editing"),
    ("Chats", "Esc", "Clear the search (in the search box)"),
    ("Chats", "F2", "Rename the selected chat"),
    ("Chats", "Del", "Delete the selected chat (Undo follows)"),
    ("Moving around", "Tab / Shift+Tab", "Next / previous control"),
    ("Moving around", "Ctrl+C", "Copy the selected text"),
)
"""Keys handled by widgets themselves (not window actions): (group, keys, what they do)."""

PARTS: tuple[tuple[str, str], ...] = (
    ("Qt for Python (PySide6)", "PySide6_Essentials"),
    ("qasync", "qasync"),
    ("OpenAI Python SDK", "openai"),
    ("Anthropic Python SDK", "anthropic"),
    ("Chroma", "chromadb"),
    ("ONNX Runtime", "onnxruntime"),
    ("tiktoken", "tiktoken"),
    ("keyring", "keyring"),
    ("pydantic", "pydantic"),
    ("markdown-it-py", "markdown-it-py"),
    ("Pygments", "Pygments"),
    ("pypdf", "pypdf"),
    ("python-docx", "python-docx"),
    ("tenacity", "tenacity"),
    ("platformdirs", "platformdirs"),
)
"""What Parley ships that has its own licence: (shown name, distribution name)."""


GROUPS = ("Chats", "Writing", "Answers", "Documents", "Window", "Moving around")
"""The order the sheet shows its groups in."""


def shortcut_rows(actions: Iterable[QAction]) -> list[tuple[str, str, str]]:
    """(group, keys, what) for every window action with a shortcut and :data:`EXTRA_KEYS`.

    Sorted by :data:`GROUPS` (stable within a group: menu order, then the widgets' keys).
    """
    rows: list[tuple[str, str, str]] = []
    for a in actions:
        keys = a.shortcut()
        if keys.isEmpty():
            continue
        group = str(a.property("shortcutGroup") or "Window")
        what = a.text().replace("&", "").rstrip("…").rstrip(".")
        rows.append((group, keys.toString(QKeySequence.SequenceFormat.NativeText), what))
    rows += EXTRA_KEYS
    order = {g: i for i, g in enumerate(GROUPS)}
    return sorted(rows, key=lambda r: order.get(r[0], len(GROUPS)))


class ShortcutsSheet(QDialog):
    """Help › Keyboard shortcuts: every shortcut, grouped, keys drawn as key caps.

    Args:
        actions: The window's actions (those with a shortcut are listed).
        parent: The window.
    """

    def __init__(self, actions: Sequence[QAction], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Keyboard shortcuts")
        self.rows = shortcut_rows(actions)
        """(group, keys, what) as listed."""
        body = QWidget()
        body.setObjectName("sheetBody")
        grid = QGridLayout(body)
        grid.setContentsMargins(SPACE["xl"], SPACE["l"], SPACE["xl"], SPACE["l"])
        grid.setHorizontalSpacing(SPACE["l"])
        grid.setVerticalSpacing(SPACE["s"])
        row = 0
        last_group = None
        for group, keys, what in self.rows:
            if group != last_group:
                heading = QLabel(group)
                heading.setObjectName("sheetTitle")
                set_type(heading, "subtitle")
                if row:
                    grid.setRowMinimumHeight(row, SPACE["s"])
                    row += 1
                grid.addWidget(heading, row, 0, 1, 2)
                row += 1
                last_group = group
            caps = QWidget()
            cl = QHBoxLayout(caps)
            cl.setContentsMargins(0, 0, 0, 0)
            cl.setSpacing(SPACE["xs"])
            for part in keys.split(" / "):
                cap = plain_label(QLabel(part))
                cap.setObjectName("sheetKey")
                cl.addWidget(cap)
            cl.addStretch(1)
            grid.addWidget(caps, row, 0)
            grid.addWidget(plain_label(QLabel(what)), row, 1)
            row += 1
        grid.setColumnStretch(1, 1)
        scroll = QScrollArea()
        scroll.setObjectName("pageScroll")
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setWidget(body)
        heading = QLabel("Keyboard shortcuts")
        heading.setObjectName("sheetTitle")
        set_type(heading, "title")
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, SPACE["xl"], SPACE["l"], SPACE["l"])
        layout.setSpacing(SPACE["s"])
        head = QHBoxLayout()
        head.setContentsMargins(SPACE["xl"], 0, 0, 0)
        head.addWidget(heading)
        layout.addLayout(head)
        layout.addWidget(scroll, 1)
        layout.addWidget(buttons)
        body.adjustSize()
        width = body.sizeHint().width() + scroll.verticalScrollBar().sizeHint().width()
        screen = self.screen().availableGeometry() if self.screen() is not None else None
        height = self.fontMetrics().lineSpacing() * 44
        if screen is not None:
            height = min(height, int(screen.height() * 0.85))
        self.resize(max(width + SPACE["xl"], 420), height)


def licence_of(distribution: str) -> tuple[str, str]:
    """(version, licence) of an installed distribution, from its metadata ("" when unknown)."""
    from importlib import metadata

    try:
        meta = metadata.metadata(distribution)
    except metadata.PackageNotFoundError:
        return "", ""

    def field(name: str) -> str:  # missing fields raise in some importlib versions
        values = meta.get_all(name) or []
        return str(values[0]) if values else ""

    version = field("Version")
    expression = field("License-Expression")
    if expression:
        return version, expression
    text = field("License").strip()
    if text and len(text) <= 60 and "\n" not in text:
        return version, text
    for classifier in meta.get_all("Classifier") or ():
        if classifier.startswith("License :: "):
            return version, classifier.rsplit(" :: ", 1)[-1]
    first = text.splitlines()[0].strip() if text else ""
    if first and len(first) <= 60 and "licen" in first.lower():  # the licence's full text
        return version, first
    return version, ""


def licences(parts: Sequence[tuple[str, str]] = PARTS) -> list[tuple[str, str, str]]:
    """(name, version, licence) of every part (blocking: run it in a worker thread)."""
    return [(name, *licence_of(dist)) for name, dist in parts]


class AboutDialog(QDialog):
    """Help › About Parley: version, data folder, licences.

    Args:
        data_dir: Where conversations, the index and the database live.
        config_dir: Where the settings live.
        tasks: Where the licences are read (off the GUI thread).
        parent: The window.
    """

    def __init__(
        self,
        *,
        data_dir: Path | None,
        config_dir: Path | None,
        tasks: TaskSet,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("About Parley")
        self._data_dir = data_dir
        title = QLabel("Parley")
        title.setObjectName("sheetTitle")
        set_type(title, "display")
        self.version_label = QLabel(
            f"Version {__version__} · Python {sys.version.split()[0]} · Qt {_qt_version()}"
        )
        self.version_label.setObjectName("mutedText")
        intro = QLabel(
            "A desktop chat assistant for OpenAI, Anthropic and models on your own computer. "
            "Your keys stay in the system keyring; your chats stay on this computer."
        )
        intro.setWordWrap(True)
        self.data_label = plain_label(QLabel(str(data_dir) if data_dir else "—"))
        self.data_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.config_label = plain_label(QLabel(str(config_dir) if config_dir else "—"))
        self.config_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.open_data_button = QPushButton("Open data folder")
        self.open_data_button.setEnabled(data_dir is not None)
        self.open_data_button.clicked.connect(self.open_data_folder)
        where = QGridLayout()
        where.setHorizontalSpacing(SPACE["m"])
        where.setVerticalSpacing(SPACE["xs"])
        where.addWidget(QLabel("Data folder:"), 0, 0)
        where.addWidget(self.data_label, 0, 1)
        where.addWidget(QLabel("Settings:"), 1, 0)
        where.addWidget(self.config_label, 1, 1)
        where.setColumnStretch(1, 1)

        lic_title = QLabel("Licences")
        lic_title.setObjectName("sheetTitle")
        set_type(lic_title, "subtitle")
        self.licence_text = plain_label(
            QLabel(
                "Parley is free software under the MIT licence. It includes the parts below, "
                "each under its own licence:"
            )
        )
        self.licence_text.setWordWrap(True)
        self.parts_label = plain_label(QLabel("Reading the installed packages…"))
        self.parts_label.setObjectName("mutedText")
        self.parts_label.setWordWrap(True)
        self.parts_label.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.parts_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        parts_scroll = QScrollArea()
        parts_scroll.setObjectName("pageScroll")
        parts_scroll.setWidgetResizable(True)
        parts_scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        parts_scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        parts_scroll.setWidget(self.parts_label)
        parts_scroll.setMinimumHeight(self.fontMetrics().lineSpacing() * 6)
        self.parts: list[tuple[str, str, str]] = []
        """(name, version, licence) once read."""

        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.addButton(self.open_data_button, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.rejected.connect(self.reject)
        close = buttons.button(QDialogButtonBox.StandardButton.Close)
        close.setDefault(True)
        self.open_data_button.setAutoDefault(False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(SPACE["xl"], SPACE["xl"], SPACE["xl"], SPACE["l"])
        layout.setSpacing(SPACE["s"])
        layout.addWidget(title)
        layout.addWidget(self.version_label)
        layout.addSpacing(SPACE["s"])
        layout.addWidget(intro)
        layout.addSpacing(SPACE["s"])
        layout.addLayout(where)
        layout.addSpacing(SPACE["m"])
        layout.addWidget(lic_title)
        layout.addWidget(self.licence_text)
        layout.addWidget(parts_scroll, 1)
        layout.addWidget(buttons)
        self.setMinimumWidth(self.fontMetrics().averageCharWidth() * 70)
        close.setFocus()
        self.loaded = tasks.spawn(self._load(), name="about-licences")

    async def _load(self) -> None:
        parts = await asyncio.to_thread(licences)
        self.parts = parts
        lines = [
            f"{name} {version} — {licence or 'see its package'}"
            for name, version, licence in parts
            if version
        ]
        self.parts_label.setText("\n".join(lines) or "(package information not available)")

    def open_data_folder(self) -> None:
        """Show the data folder in the file manager."""
        if self._data_dir is not None:
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(self._data_dir)))


def _qt_version() -> str:
    from PySide6.QtCore import qVersion

    return str(qVersion())
