"""Drag and drop: files attach to the next message, folders join the documents.

Real ``QDragEnterEvent``/``QDropEvent`` with ``QMimeData`` URLs are sent to the window; the
attached text travels with the question to the fake server.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QMimeData, QPoint, Qt, QUrl
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from parley.core.store.conversations import ConversationStore
from parley.ui.attachments import MAX_ATTACHMENT_BYTES, AttachmentRefused, read_attachment
from tests.fakes.server import FakeLLMServer
from tests.ui.harness import (
    WindowHarness,
    chat_requests,
    drag_enter_event,
)


def _write(tmp_path: Path, name: str, data: bytes) -> str:
    p = tmp_path / name
    p.write_bytes(data)
    return str(p)


async def test_dropped_text_file_goes_with_the_next_question(qtbot, tmp_path) -> None:
    notes = _write(tmp_path, "notes.txt", "Meeting at 10:00 in room Zürich.\n".encode())
    code = _write(tmp_path, "tool.py", b"def f():\n    return 42\n")
    with FakeLLMServer() as srv:
        async with WindowHarness(qtbot, server=srv) as h:
            w = h.w
            h.drop([notes, code])
            await h.until(lambda: len(w.composer.attachments()) == 2, what="chips")
            chips = w.composer.chip_widgets()
            assert [c.attachment.name for c in chips] == ["notes.txt", "tool.py"]
            assert w.composer.chips.isVisible()
            # remove one with its ✕
            QTest.mouseClick(chips[1].remove_button, Qt.MouseButton.LeftButton)
            assert [a.name for a in w.composer.attachments()] == ["notes.txt"]
            await h.send_and_wait("When is the meeting?")
            content = chat_requests(srv)[-1].json["messages"][-1]["content"]
            assert content.startswith("When is the meeting?")
            assert '<attachment name="notes.txt">' in content
            assert "room Zürich" in content
            assert "return 42" not in content
            assert w.composer.attachments() == []
            assert not w.composer.chips.isVisible()
            user = h.items()[0]
            assert [f.text for f in user.footer] == ["📎 notes.txt"]
            # kept with the question: reopening shows it, and edits keep it
            w.new_chat()
            await w.open_conversation(w.sidebar.ids()[0])
            assert [f.text for f in h.items()[0].footer] == ["📎 notes.txt"]


async def test_binary_and_large_files_are_refused_clearly(qtbot, tmp_path) -> None:
    png = _write(tmp_path, "photo.png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(200))
    big = _write(tmp_path, "huge.log", b"x" * (MAX_ATTACHMENT_BYTES + 1))
    ok = _write(tmp_path, "ok.md", b"# fine\n")
    with FakeLLMServer() as srv:
        async with WindowHarness(qtbot, server=srv) as h:
            w = h.w
            h.drop([png, big, ok])
            await h.until(lambda: w.notice.tag == "attach", what="refusal notice")
            text = w.notice.text()
            assert "photo.png was not attached: it is not a text file" in text
            assert "huge.log is too large to attach (1 MB; the limit is 1 MB)" in text
            assert [a.name for a in w.composer.attachments()] == ["ok.md"]


async def test_failed_send_gives_back_text_and_attachments(qtbot, tmp_path) -> None:
    notes = _write(tmp_path, "notes.txt", b"some notes")
    with FakeLLMServer() as srv:
        async with WindowHarness(qtbot, server=srv) as h:
            w = h.w
            await h.send_and_wait("first")
            other = ConversationStore(h.s.paths.db_file)
            other.delete(w.conversation_id)  # deleted elsewhere while open here
            other.close()
            h.drop([notes])
            await h.until(lambda: w.composer.attachments())
            h.type_and_send("with notes")
            await h.until(lambda: w.notice.tag == "failed", what="failure notice")
            assert w.composer.text() == "with notes"
            assert [a.name for a in w.composer.attachments()] == ["notes.txt"]


async def test_dropped_folder_is_added_to_the_documents(qtbot, tmp_path) -> None:
    docs = tmp_path / "My Docs"
    docs.mkdir()
    (docs / "a.md").write_text("hello")
    with FakeLLMServer() as srv:
        async with WindowHarness(qtbot, server=srv) as h:
            w = h.w
            h.drop([str(docs)])
            assert h.s.settings.current.knowledge.folders == [str(docs.resolve())]
            assert w.notice.isVisible()
            assert "Added “My Docs” to your documents" in w.notice.text()
            # persisted
            from parley.core.settings import load_settings

            assert load_settings(h.s.paths.settings_file).knowledge.folders == [str(docs.resolve())]
            h.drop([str(docs)])
            assert "“My Docs” is already in your documents." in w.notice.text()
            assert h.s.settings.current.knowledge.folders == [str(docs.resolve())]
            assert w.composer.attachments() == []


async def test_non_file_drops_are_refused(qtbot) -> None:
    with FakeLLMServer() as srv:
        async with WindowHarness(qtbot, server=srv) as h:
            mime = QMimeData()
            mime.setUrls([QUrl("https://example.com/page")])
            enter = drag_enter_event(QPoint(10, 10), mime)
            QApplication.sendEvent(h.w, enter)
            assert not enter.isAccepted()


def test_read_attachment_rules(tmp_path) -> None:
    latin = _write(tmp_path, "latin1.txt", "Grüße aus Köln, ça va? Ñandú".encode("latin-1"))
    assert "Köln" in read_attachment(latin).text
    bom = _write(tmp_path, "bom.txt", "\ufeffhello".encode())
    assert read_attachment(bom).text == "hello"
    empty = _write(tmp_path, "empty.txt", b"   \n")
    try:
        read_attachment(empty)
    except AttachmentRefused as exc:
        assert "empty" in exc.user_message
    else:
        raise AssertionError("an empty file was attached")
    try:
        read_attachment(tmp_path)
    except AttachmentRefused as exc:
        assert "not a regular file" in exc.user_message
    else:
        raise AssertionError("a folder was attached")
