"""Files dropped on the window become attachments of the next message (text only, capped).

:func:`handle_drop` is what a drop on the window does: files are read here and attached to the
composer, folders go to the documents (the caller's ``add_folders``).

Reading is plain Python (no Qt) so it can run in a worker thread (``asyncio.to_thread``):
the GUI thread never reads a file. A file is attached when it is a regular file of at most
:data:`MAX_ATTACHMENT_BYTES` whose bytes decode as text; anything else is refused with a
one-line reason that the window shows (nothing is half-attached).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from parley.core.decoding import decode_text
from parley.core.display import format_size

if TYPE_CHECKING:
    from PySide6.QtCore import QUrl
    from PySide6.QtGui import QDragEnterEvent, QDragMoveEvent, QDropEvent

    from parley.ui.composer import Composer
    from parley.ui.notices import NoticeBar
    from parley.ui.tasks import TaskSet

MAX_ATTACHMENT_BYTES = 2**20
"""Largest file that is attached (its text goes into the prompt): 1 MB, as sizes are shown."""

MAX_ATTACHMENTS = 10
"""Most files attached to one message."""


@dataclass(frozen=True)
class Attachment:
    """A text file attached to the next message."""

    name: str
    """The file name shown on the chip and sent to the model."""
    path: str
    """Where it was read from (absolute)."""
    text: str
    """The extracted text."""
    size: int
    """Size of the file in bytes."""

    def to_core(self) -> dict[str, str]:
        """The ``{"name", "text"}`` dict ``ChatSession.send(attachments=...)`` takes."""
        return {"name": self.name, "text": self.text}


class AttachmentRefused(Exception):
    """A dropped file cannot be attached; ``user_message`` says why in one line."""

    def __init__(self, user_message: str) -> None:
        super().__init__(user_message)
        self.user_message = user_message


def read_attachment(
    path: str | os.PathLike[str], max_bytes: int = MAX_ATTACHMENT_BYTES
) -> Attachment:
    """Read ``path`` as a text attachment.

    Args:
        path: The dropped file.
        max_bytes: Size cap.

    Returns:
        The attachment.

    Raises:
        AttachmentRefused: not a regular file, too large, unreadable or not text.
    """
    p = Path(path)
    name = p.name or str(p)
    try:
        st = p.stat()
    except OSError as exc:
        raise AttachmentRefused(f"{name} could not be read ({exc.strerror or exc}).") from None
    if not p.is_file():
        raise AttachmentRefused(f"{name} is not a regular file.")
    if st.st_size > max_bytes:
        raise AttachmentRefused(
            f"{name} is too large to attach ({format_size(st.st_size)}; "
            f"the limit is {format_size(max_bytes)})."
        )
    try:
        with p.open("rb") as fh:
            data = fh.read(max_bytes + 1)
    except OSError as exc:
        raise AttachmentRefused(f"{name} could not be read ({exc.strerror or exc}).") from None
    if len(data) > max_bytes:  # it grew since stat()
        raise AttachmentRefused(f"{name} is too large to attach (over {format_size(max_bytes)}).")
    text = decode_text(data)  # the one decoder (``core/decoding.py``)
    if text is None:
        raise AttachmentRefused(
            f"{name} was not attached: it is not a text file (only text can be attached)."
        )
    if not text.strip():
        raise AttachmentRefused(f"{name} was not attached: it is empty.")
    return Attachment(name=name, path=str(p.resolve()), text=text, size=st.st_size)


async def attach_files(
    paths: Sequence[str], *, room: int, add: Callable[[Attachment], bool]
) -> list[str]:
    """Read ``paths`` in a worker thread and ``add`` each (at most ``room`` of them).

    ``add`` returns whether it took the attachment (the composer skips a file it has).

    Returns:
        One-line reasons for the files that were not attached.
    """
    refused: list[str] = []
    for path in paths:
        if room <= 0:
            name = Path(path).name
            refused.append(f"{name} was not attached: at most {MAX_ATTACHMENTS} per message.")
            continue
        try:
            attachment = await asyncio.to_thread(read_attachment, path)
        except AttachmentRefused as exc:
            refused.append(exc.user_message)
            continue
        if add(attachment):
            room -= 1
    return refused


def handle_drop(
    paths: Sequence[str],
    *,
    composer: Composer,
    notice: NoticeBar,
    tasks: TaskSet,
    add_folders: Callable[[Sequence[str]], Any],
) -> asyncio.Task[None] | None:
    """Attach dropped files to the composer (read off the GUI thread); add folders.

    Returns:
        The task reading the files, or None when only folders were dropped.
    """
    folders = [p for p in paths if Path(p).is_dir()]
    files = [p for p in paths if not Path(p).is_dir()]
    if folders:
        add_folders(folders)
    if not files:
        return None

    async def attach() -> None:
        room = MAX_ATTACHMENTS - len(composer.attachments())
        refused = await attach_files(files, room=room, add=composer.add_attachment)
        if refused:
            notice.show_notice(" ".join(refused), kind="warning", timeout_s=12.0, tag="attach")

    return tasks.spawn(attach(), name="attach-files")


def local_paths(urls: Sequence[QUrl]) -> list[str]:
    """The local files and folders among dropped ``urls``."""
    return [u.toLocalFile() for u in urls if u.isLocalFile() and u.toLocalFile()]


def drag_entered(event: QDragEnterEvent, bound: bool) -> None:
    """Accept local files and folders (once the window is bound)."""
    if bound and local_paths(event.mimeData().urls() if event.mimeData().hasUrls() else []):
        event.acceptProposedAction()
    else:
        event.ignore()


def drag_moved(event: QDragMoveEvent, bound: bool) -> None:
    """Keep accepting while the drag moves over the window."""
    if bound and event.mimeData().hasUrls():
        event.acceptProposedAction()
    else:
        event.ignore()


def dropped(event: QDropEvent, bound: bool) -> list[str]:
    """The dropped local paths, the drop accepted; none (the drop ignored) when unbound."""
    paths = local_paths(event.mimeData().urls() if event.mimeData().hasUrls() else [])
    if not bound or not paths:
        event.ignore()
        return []
    event.acceptProposedAction()
    return paths
