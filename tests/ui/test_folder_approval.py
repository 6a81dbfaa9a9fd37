"""Issue 14 item 8: the window asks before the tools read a folder, and remembers "Always"."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QMessageBox, QPushButton

from parley.core.settings import KnowledgeSettings
from parley.core.tools.approval import folder_key
from parley.ui.folder_approval import BOX_NAME
from tests.fakes.script import Call, Text, ToolCalls
from tests.fakes.server import FakeLLMServer
from tests.ui.harness import WindowHarness, local_settings


def _button(box: QMessageBox, text: str) -> QPushButton:
    return next(b for b in box.findChildren(QPushButton) if b.text() == text)


def _read(path: str) -> ToolCalls:
    return ToolCalls([Call("read_file", f'{{"path": "{path}"}}')])


async def test_prompt_allows_always_then_stops_asking_and_settings_revoke(
    qtbot, tmp_path: Path
) -> None:
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "notes.txt").write_text("the secret fruit is apple\n")
    with FakeLLMServer() as srv:
        srv.enqueue(_read("notes.txt"), Text("It is apple."), _read("notes.txt"), Text("Again."))
        settings = local_settings(srv, knowledge=KnowledgeSettings(folders=[str(folder)]))
        async with WindowHarness(qtbot, server=srv, settings=settings) as h:
            w = h.w
            w.composer.tools_switch.setChecked(True)
            h.type_and_send("what fruit?")
            box = await h.until(lambda: w.findChild(QMessageBox, BOX_NAME), 15, "the prompt")
            assert str(folder.resolve()) in box.text()
            labels = {b.text() for b in box.findChildren(QPushButton)}
            assert {"Allow once", "Always for this folder", "Deny"} <= labels
            assert w.is_busy()  # the turn waits for the answer; the window does not
            _button(box, "Always for this folder").click()
            await h.until(lambda: not w.is_busy(), 15, "the turn")
            assert h.texts()[-1][1] == "It is apple."
            answer = int(h.items()[-1].message_id)
            calls = h.s.conversations.tool_calls(answer)
            assert calls[0].name == "read_file" and "apple" in (calls[0].result or "")
            approved = h.s.settings.current.tools.approved_folders
            assert approved == [folder_key(folder)]
            # The next turn reads it without asking.
            await h.send_and_wait("again?", timeout=15)
            assert w.findChild(QMessageBox, BOX_NAME) is None
            assert h.texts()[-1][1] == "Again."
            # Settings › Tools lists it, and Revoke forgets it.
            dialog = w.open_settings()
            assert dialog is not None
            page = dialog.approved_folders
            assert page.folders() == [folder_key(folder)]
            page.list.setCurrentRow(0)
            page.revoke_button.click()
            assert dialog.apply()
            assert h.s.settings.current.tools.approved_folders == []


async def test_deny_refuses_the_call_and_the_model_is_told(qtbot, tmp_path: Path) -> None:
    folder = tmp_path / "private"
    folder.mkdir()
    (folder / "diary.txt").write_text("dear diary\n")
    with FakeLLMServer() as srv:
        srv.enqueue(_read("diary.txt"), Text("I may not read it."))
        settings = local_settings(srv, knowledge=KnowledgeSettings(folders=[str(folder)]))
        async with WindowHarness(qtbot, server=srv, settings=settings) as h:
            w = h.w
            w.composer.tools_switch.setChecked(True)
            h.type_and_send("read my diary")
            box = await h.until(lambda: w.findChild(QMessageBox, BOX_NAME), 15, "the prompt")
            _button(box, "Deny").click()
            await h.until(lambda: not w.is_busy(), 15, "the turn")
            calls = h.s.conversations.tool_calls(int(h.items()[-1].message_id))
            assert calls[0].is_error and "did not allow" in (calls[0].result or "")
            assert "dear diary" not in str(srv.requests[-1].json)
            assert h.s.settings.current.tools.approved_folders == []
