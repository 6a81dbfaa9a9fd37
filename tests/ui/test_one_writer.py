"""The GUI thread never touches the database: writes go to the one writer, reads to workers.

SQLite reports every statement a connection runs to its trace callback, on the thread that
runs it. The test installs one on the real connection the window's store uses (no part of
Parley is replaced) and drives every conversation operation the window offers: send,
regenerate, switch versions, retry, edit and resend, model and switches, the chat's own
prompt, rename, delete, undo, and opening a chat.
"""

from __future__ import annotations

import asyncio
import threading

from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from parley.ui.chat.model import ChatRole
from tests.fakes.script import Text
from tests.fakes.server import FakeLLMServer
from tests.ui.harness import WindowHarness

_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE", "BEGIN", "COMMIT")


async def test_the_gui_thread_never_reads_or_writes_the_database(qtbot) -> None:
    with FakeLLMServer() as srv:
        srv.enqueue(Text("first answer"), Text("second answer"), Text("third"), Text("edited"))
        async with WindowHarness(qtbot, server=srv) as h:
            w = h.w
            store = h.s.conversations
            seen: list[tuple[str, str]] = []

            def trace(statement: str) -> None:
                seen.append((threading.current_thread().name, statement))

            await w.wait_startup()
            store.conn.set_trace_callback(trace)
            try:
                await h.send_and_wait("first question")
                cid = w.conversation_id
                assert cid is not None
                w.regenerate()
                await h.until(lambda: not w.is_busy() and h.texts()[-1][1] == "second answer")
                await h.until(lambda: h.versions_of() == (2, 2))
                answer = h.items()[-1].message_id
                versions = w.transcript.versions(answer) if w.transcript else None
                assert versions is not None
                await w.show_version(versions.ids[0])  # the branch switch, then the reload
                await h.until(lambda: h.versions_of() == (1, 2))
                await w.retry_message(versions.ids[0])  # rewind to the question, answer again
                await h.until(lambda: not w.is_busy() and h.texts()[-1][1] == "third")

                question = next(i for i in h.items() if i.role == ChatRole.USER)
                w.begin_edit(question.message_id)
                w.composer.set_text("edited question")
                w.composer.submit()
                await h.until(lambda: not w.is_busy() and h.texts()[-1][1] == "edited")

                w.composer.tools_switch.setChecked(True)
                w.picker.sig_model_chosen.emit("openai-compatible", "fake-model-2")
                dialog = w.open_settings()
                assert dialog is not None
                dialog.chat_prompt.setPlainText("Be kind.")
                assert dialog.apply()
                dialog.reject()

                w.sidebar.sig_rename_requested.emit(cid, "Renamed")
                await h.until(lambda: w.sidebar.title_of(cid) == "Renamed", what="renamed")
                w.sidebar.sig_delete_requested.emit(cid)
                await h.until(lambda: cid not in w.sidebar.ids(), what="deleted")
                QTest.mouseClick(w.notice.action_button, Qt.MouseButton.LeftButton)  # Undo
                await h.until(lambda: cid in w.sidebar.ids() and w.conversation_id == cid)
                w.new_chat()
                await w.open_conversation(cid)
                assert [role for role, _ in h.texts()] == ["user", "assistant"]
                await w.wait_startup()
            finally:
                store.conn.set_trace_callback(None)

            writes = [(t, s) for t, s in seen if s.lstrip().upper().startswith(_WRITES)]
            assert {t for t, _ in writes} == {"parley-db_0"}, writes  # the one writer
            gui = threading.main_thread().name
            assert [s for t, s in seen if t == gui] == []  # no read on the GUI thread either
            conv = await asyncio.to_thread(store.get, cid)
            assert conv is not None and conv.title == "Renamed"
            assert conv.system_prompt == "Be kind."
            assert conv.options["use_tools"] is True
            assert conv.options["model"] == "fake-model-2"
