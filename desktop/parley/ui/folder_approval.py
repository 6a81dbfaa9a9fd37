"""The prompt "may the tools read this folder?" and the list of folders allowed for good.

The core asks through ``services.folder_asker`` (:mod:`parley.core.tools.approval`); the
window answers with :func:`ask_folder`: a window-modal box with "Allow once", "Always for
this folder" and "Deny" that never blocks the event loop (the turn awaits the answer).
Closing the box, or stopping the turn, counts as Deny. :class:`ApprovedFolders` is the
Settings page where remembered folders are revoked.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractButton,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from parley.core.tools.approval import Approval

BOX_NAME = "folder-approval"
"""Object name of the prompt (tests and UI automation find it by it)."""


async def ask_folder(parent: QWidget, folder: str) -> Approval:
    """Ask whether the tools may read ``folder``; Deny when the box is closed or cancelled."""
    box = QMessageBox(parent)
    box.setObjectName(BOX_NAME)
    box.setIcon(QMessageBox.Icon.Question)
    box.setWindowTitle("Allow reading a folder?")
    box.setTextFormat(Qt.TextFormat.PlainText)  # a folder's name is not markup
    box.setText(f"The answer wants to read or search files in:\n\n{folder}")
    box.setInformativeText(
        'Allow the tools to read this folder? "Always" is remembered; revoke it in '
        "Settings › Tools."
    )
    answers: dict[QAbstractButton, Approval] = {
        box.addButton("Allow once", QMessageBox.ButtonRole.AcceptRole): Approval.ONCE,
        box.addButton("Always for this folder", QMessageBox.ButtonRole.AcceptRole): (
            Approval.ALWAYS
        ),
        box.addButton("Deny", QMessageBox.ButtonRole.RejectRole): Approval.DENY,
    }
    for button in answers:
        button.setAccessibleName(button.text())
    future: asyncio.Future[Approval] = asyncio.get_running_loop().create_future()

    def clicked(button: QAbstractButton) -> None:
        if not future.done():
            future.set_result(answers.get(button, Approval.DENY))

    def finished(_result: int) -> None:
        if not future.done():
            future.set_result(Approval.DENY)

    box.buttonClicked.connect(clicked)
    box.finished.connect(finished)
    box.open()
    try:
        return await future
    finally:
        box.close()
        box.deleteLater()


class ApprovedFolders(QWidget):
    """Settings › Tools: the folders the tools may read without asking, each revocable.

    Args:
        folders: The remembered folders (``tools.approved_folders``).
    """

    def __init__(self, folders: Iterable[str], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.list = QListWidget()
        self.list.setAccessibleName("Folders the tools may read without asking")
        self.list.addItems(list(folders))
        self.revoke_button = QPushButton("Revoke")
        self.revoke_button.setAccessibleName("Revoke the selected folder")
        self.revoke_button.clicked.connect(self.revoke_selected)
        self.list.currentRowChanged.connect(lambda row: self.revoke_button.setEnabled(row >= 0))
        self.revoke_button.setEnabled(False)
        note = QLabel(
            "The tools ask before reading a folder for the first time. Folders you allowed "
            'with "Always for this folder" are listed here; revoke one to be asked again.'
        )
        note.setWordWrap(True)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.revoke_button)
        layout = QVBoxLayout(self)
        layout.addWidget(note)
        layout.addWidget(self.list, 1)
        layout.addLayout(buttons)

    def folders(self) -> list[str]:
        """The folders still allowed."""
        return [self.list.item(i).text() for i in range(self.list.count())]

    def revoke_selected(self) -> None:
        """Remove the selected folder (saved with the dialog's OK or Apply)."""
        row = self.list.currentRow()
        if row >= 0:
            self.list.takeItem(row)
