"""The window's file work: attach files (the paperclip), export a chat, import one.

Each action opens a non-modal file dialog (``open()``, STYLE.md §3) and then does the work
off the GUI thread: attachments are read by :func:`~parley.ui.attachments.handle_drop` (the
same path as a drop), an export is read from the database and written in a worker thread
(:mod:`parley.core.transfer` makes the text), and an import is read and checked in a worker
thread and stored by a ``ChatSession`` operation on the database's one writer. Failures are
one line in the notice bar; nothing is lost.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import QFileDialog, QWidget

from parley.core.errors import ParleyError

if TYPE_CHECKING:
    from parley.core.chat import ChatSession, OpChanges
    from parley.core.store.conversations import ConversationStore
    from parley.core.transfer import ExportFormat
    from parley.ui.notices import NoticeBar
    from parley.ui.status import StatusStrip
    from parley.ui.tasks import TaskSet

FORMAT_NAMES = {"md": "Markdown", "json": "JSON", "html": "HTML"}
"""How each export format is named in menus and dialogs."""


class FileActions(QObject):
    """Attach, export and import for the window.

    Args:
        parent: The window (dialogs open over it).
        store: Read (in worker threads) for exports.
        chat: Stores imports (an operation on the writer).
        run_op: Awaits an operation and redraws what changed (``ConversationList.run``).
        tasks: Where the work runs.
        notice: Failures and results.
        status: Short confirmations.
        shown: The conversation shown (None: a new chat, nothing to export).
        attach_paths: Attaches files to the composer (the drop path).
        open_conversation: Shows a conversation (the imported one).
    """

    # ---- Signals
    sig_exported = Signal(str)
    """A conversation was written to a file (its path)."""
    sig_imported = Signal(int)
    """A file became a new conversation (its id)."""

    def __init__(
        self,
        parent: QWidget,
        *,
        store: ConversationStore,
        chat: ChatSession,
        run_op: Callable[..., asyncio.Task[None]],
        tasks: TaskSet,
        notice: NoticeBar,
        status: StatusStrip,
        shown: Callable[[], int | None],
        attach_paths: Callable[[Sequence[str]], Any],
        open_conversation: Callable[[int], Any],
    ) -> None:
        super().__init__(parent)
        self._parent = parent
        self._store = store
        self._chat = chat
        self._run_op = run_op
        self._tasks = tasks
        self._notice = notice
        self._status = status
        self._shown = shown
        self._attach_paths = attach_paths
        self._open = open_conversation
        self.dialog: QFileDialog | None = None
        """The file dialog while one is open (tests answer it)."""
        self._folder = str(Path.home())

    # ---- attach
    def choose_attachments(self) -> QFileDialog:
        """The paperclip: pick files to attach to the next question."""
        dialog = self._dialog("Attach files", QFileDialog.AcceptMode.AcceptOpen)
        dialog.setFileMode(QFileDialog.FileMode.ExistingFiles)
        dialog.filesSelected.connect(lambda paths: self._attach_paths(list(paths)))
        dialog.open()
        return dialog

    # ---- export
    def choose_export(self, fmt: ExportFormat) -> QFileDialog | None:
        """File › Export › (format): where to write the shown conversation."""
        if self._shown() is None:
            self._notice.show_notice("Open a conversation to export it.", kind="info")
            return None
        from parley.core.transfer import SUFFIX

        name = FORMAT_NAMES[fmt]
        dialog = self._dialog(f"Export as {name}", QFileDialog.AcceptMode.AcceptSave)
        dialog.setDefaultSuffix(SUFFIX[fmt].lstrip("."))
        dialog.setNameFilters([f"{name} (*{SUFFIX[fmt]})", "All files (*)"])
        dialog.selectFile(f"conversation-{self._shown()}{SUFFIX[fmt]}")
        dialog.fileSelected.connect(lambda path: self.export_to(fmt, path))
        dialog.open()
        return dialog

    def export_to(self, fmt: ExportFormat, path: str) -> asyncio.Task[None] | None:
        """Write the shown conversation to ``path`` in ``fmt`` (read and written off-thread)."""
        cid = self._shown()
        if cid is None:
            return None
        store = self._store

        def write() -> None:
            from parley.core.transfer import export_text, read_conversation

            text = export_text(read_conversation(store, cid), fmt)
            _write_atomically(Path(path), text)

        async def run() -> None:
            try:
                await asyncio.to_thread(write)
            except ParleyError as exc:
                self._notice.show_notice(exc.user_message, kind="error", timeout_s=12.0)
                return
            except OSError as exc:
                self._notice.show_notice(
                    f"The conversation was not exported: {exc.strerror or exc}.",
                    kind="error",
                    timeout_s=12.0,
                )
                return
            self._folder = str(Path(path).parent)
            self._status.showMessage(f"Exported to {Path(path).name}.", 5000)
            self.sig_exported.emit(path)

        return self._tasks.spawn(run(), name="export")

    # ---- import
    def choose_import(self) -> QFileDialog:
        """File › Import: a JSON export becomes a new conversation."""
        dialog = self._dialog("Import a conversation", QFileDialog.AcceptMode.AcceptOpen)
        dialog.setFileMode(QFileDialog.FileMode.ExistingFile)
        dialog.setNameFilters(["Parley conversation (*.json)", "All files (*)"])
        dialog.fileSelected.connect(self.import_from)
        dialog.open()
        return dialog

    def import_from(self, path: str) -> asyncio.Task[None]:
        """Read and check ``path`` off-thread, store it on the writer, then show it."""

        def read() -> Any:
            from parley.core.transfer import MAX_IMPORT_BYTES, parse_import

            with open(path, "rb") as fh:
                return parse_import(fh.read(MAX_IMPORT_BYTES + 1))

        async def run() -> None:
            try:
                conversation = await asyncio.to_thread(read)
            except ParleyError as exc:
                self._notice.show_notice(exc.user_message, kind="error", timeout_s=12.0)
                return
            except OSError as exc:
                self._notice.show_notice(
                    f"{Path(path).name} could not be read: {exc.strerror or exc}.",
                    kind="error",
                    timeout_s=12.0,
                )
                return

            async def show(changes: OpChanges) -> None:
                if changes.conversation_id is None:
                    return
                self._status.showMessage("Conversation imported.", 5000)
                self.sig_imported.emit(changes.conversation_id)
                task = self._open(changes.conversation_id)
                if task is not None:
                    await task

            await self._run_op(self._chat.import_conversation(conversation), show, name="import")

        return self._tasks.spawn(run(), name="import")

    # ---- internals
    def _dialog(self, title: str, mode: QFileDialog.AcceptMode) -> QFileDialog:
        if self.dialog is not None:
            self.dialog.close()
        dialog = QFileDialog(self._parent, title, self._folder)
        dialog.setAcceptMode(mode)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.finished.connect(lambda _r: self._forget(dialog))
        self.dialog = dialog
        return dialog

    def _forget(self, dialog: QFileDialog) -> None:
        if self.dialog is dialog:
            self.dialog = None
            directory = dialog.directory().absolutePath()
            if directory:
                self._folder = directory


def _write_atomically(path: Path, text: str) -> None:
    """Write ``text`` as UTF-8 through a temporary file in the same folder."""
    fd, tmp = tempfile.mkstemp(prefix=".parley-export-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
