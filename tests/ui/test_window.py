"""The main window driven like a person would, against the fake server (real SDK, real SQLite).

Send with Enter, stream, stop with Esc, regenerate, edit and resend (the old branch stays
reachable), errors inline with Retry, the rate-limit countdown, fallback labels, the sidebar
(groups, search, rename, delete + undo), shortcuts, the model picker and the status strip.
"""

from __future__ import annotations

import datetime as dt
import time

from PySide6.QtCore import QPointF, Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QInputDialog, QMessageBox

from parley.core.secrets import MemorySecretStore, Secrets
from parley.core.store.conversations import ConversationStore
from parley.ui.chat.model import MessageStatus
from parley.ui.model_picker import build_groups, describe_model
from parley.ui.sidebar import group_label
from tests.fakes.script import HTTPError, Text
from tests.fakes.server import FakeLLMServer
from tests.ui.harness import (
    WindowHarness,
    chat_requests,
    local_settings,
    openai_settings,
)


def _openai_secrets() -> Secrets:
    store = MemorySecretStore()
    store.set("openai", "sk-test-window")
    return Secrets(store, environ={})


# ---------------------------------------------------------------- sending and streaming
async def test_enter_sends_streams_and_saves(qtbot) -> None:
    with FakeLLMServer() as srv:
        srv.enqueue(Text("Hello **there**, friend.", chunk_chars=3, delay=0.01))
        async with WindowHarness(qtbot, server=srv) as h:
            w = h.w
            assert w.composer.send_button.isEnabled() is False  # empty draft
            h.type_and_send("Hi Parley")
            await h.until(w.is_busy, what="busy")
            assert not w.composer.send_button.isVisible() and w.composer.stop_button.isVisible()
            await h.until(lambda: not w.is_busy(), what="turn end")
            assert h.texts() == [("user", "Hi Parley"), ("assistant", "Hello **there**, friend.")]
            assert h.items()[-1].status == MessageStatus.COMPLETE
            assert w.composer.text() == ""
            assert w.composer.send_button.isVisible()
            # saved: the sidebar lists the new chat under Today with its title
            await h.until(lambda: w.sidebar.ids(), what="sidebar")
            assert w.sidebar.headers() == ["Today"]
            assert w.sidebar.title_of(w.conversation_id) == "Hi Parley"
            stored = h.s.conversations.branch(w.conversation_id)
            assert [(m.role, m.content, m.status) for m in stored] == [
                ("user", "Hi Parley", "complete"),
                ("assistant", "Hello **there**, friend.", "complete"),
            ]
            # the real SDK sent the question to the fake server
            assert chat_requests(srv)[-1].json["messages"][-1]["content"] == "Hi Parley"
            assert chat_requests(srv)[-1].json["model"] == "fake-model"
            # a local model is free
            assert "free (local)" in w.status.tokens_label.text()


async def test_shift_enter_inserts_a_line_break(qtbot) -> None:
    with FakeLLMServer() as srv:
        async with WindowHarness(qtbot, server=srv) as h:
            edit = h.w.composer.edit
            QTest.keyClicks(edit, "line one")
            QTest.keyClick(edit, Qt.Key.Key_Return, Qt.KeyboardModifier.ShiftModifier)
            QTest.keyClicks(edit, "line two")
            assert h.w.composer.text() == "line one\nline two"
            assert not h.w.is_busy()
            assert chat_requests(srv) == []
            QTest.keyClick(edit, Qt.Key.Key_Return)
            await h.until(lambda: not h.w.is_busy() and h.texts(), what="answer")
            await h.until(lambda: len(h.texts()) == 2 and h.texts()[1][1], what="answer text")
            assert h.texts()[0] == ("user", "line one\nline two")


async def test_send_button_disabled_while_a_turn_runs(qtbot) -> None:
    with FakeLLMServer() as srv:
        srv.enqueue(Text("slow " * 40, chunk_chars=5, delay=0.01))
        async with WindowHarness(qtbot, server=srv) as h:
            h.type_and_send("first")
            await h.until(h.w.is_busy)
            QTest.keyClicks(h.w.composer.edit, "second question")
            assert not h.w.composer.send_button.isEnabled()
            QTest.keyClick(h.w.composer.edit, Qt.Key.Key_Return)  # ignored while busy
            await h.until(lambda: not h.w.is_busy())
            assert len(chat_requests(srv)) == 1
            assert h.w.composer.text() == "second question"  # the draft is kept
            assert h.w.composer.send_button.isEnabled()


async def test_escape_stops_and_keeps_the_partial_answer(qtbot) -> None:
    with FakeLLMServer() as srv:
        srv.enqueue(Text("word " * 400, chunk_chars=5, delay=0.01))
        async with WindowHarness(qtbot, server=srv) as h:
            h.type_and_send("tell me a long story")
            await h.until(lambda: len(h.texts()) == 2 and len(h.texts()[1][1]) > 20, what="text")
            QTest.keyClick(h.w.composer.edit, Qt.Key.Key_Escape)
            await h.until(lambda: not h.w.is_busy(), what="stopped")
            item = h.items()[-1]
            assert item.status == MessageStatus.CANCELLED
            assert item.text.startswith("word word")
            assert len(item.text) < len("word " * 400)
            stored = h.s.conversations.branch(h.w.conversation_id)[-1]
            assert stored.status == "cancelled"
            assert stored.content and item.text.startswith(stored.content[:20])
            assert h.w.composer.send_button.isVisible()


async def test_stop_mid_burst_always_saves_the_partial_as_cancelled(qtbot) -> None:
    # At full speed the controller yields to Qt between events; a Stop landing in that yield
    # must still reach the core so it saves the partial answer (not leave it "streaming").
    with FakeLLMServer() as srv:
        async with WindowHarness(qtbot, server=srv) as h:
            w = h.w
            assert w.controller is not None
            for i in range(4):
                srv.enqueue(Text("word " * 8000, chunk_chars=4))
                stopped: list[int] = []

                def on_text(_mid: int, _text: str, stopped: list[int] = stopped) -> None:
                    turn = w.controller.turn if w.controller is not None else None
                    if not stopped and turn is not None and len(turn.streamed_text()) > 3000:
                        stopped.append(1)
                        w.stop()

                w.controller.sig_text_arrived.connect(on_text)
                w.new_chat()
                h.type_and_send(f"burst {i}")
                await h.until(w.is_busy)
                await h.until(lambda: not w.is_busy(), timeout=20)
                w.controller.sig_text_arrived.disconnect(on_text)
                assert stopped
                last = h.s.conversations.branch(w.conversation_id)[-1]
                assert last.status == "cancelled", f"round {i}: {last.status}"
                assert last.content.startswith("word word")
                assert h.items()[-1].status == MessageStatus.CANCELLED


async def test_stop_button_stops(qtbot) -> None:
    with FakeLLMServer() as srv:
        srv.enqueue(Text("word " * 400, chunk_chars=5, delay=0.01))
        async with WindowHarness(qtbot, server=srv) as h:
            h.type_and_send("go")
            await h.until(lambda: len(h.texts()) == 2 and h.texts()[1][1], what="text")
            QTest.mouseClick(h.w.composer.stop_button, Qt.MouseButton.LeftButton)
            await h.until(lambda: not h.w.is_busy())
            assert h.items()[-1].status == MessageStatus.CANCELLED


async def test_streams_run_in_the_worker_process_and_stop_there(qtbot) -> None:
    with FakeLLMServer() as srv:
        async with WindowHarness(qtbot, server=srv) as h:
            worker = h.s.providers.stream_worker
            assert worker is not None  # the window's core is built with one
            assert await worker.start()  # as settle_after_startup does after the first paint
            w = h.w
            srv.enqueue(Text("Through **the worker**, all of it.", chunk_chars=3))
            await h.send_and_wait("first")
            assert h.texts()[-1] == ("assistant", "Through **the worker**, all of it.")
            srv.enqueue(Text("word " * 400, chunk_chars=5, delay=0.01))
            h.type_and_send("second")
            await h.until(lambda: h.texts()[-1][1].startswith("word"), what="text")
            QTest.mouseClick(w.composer.stop_button, Qt.MouseButton.LeftButton)
            await h.until(lambda: not w.is_busy())
            assert h.items()[-1].status == MessageStatus.CANCELLED
            last = h.s.conversations.branch(w.conversation_id)[-1]
            assert last.status == "cancelled" and last.content.startswith("word")
            assert worker.ready  # Stop ends the request in the worker, not the worker
            srv.enqueue(Text("third answer"))
            await h.send_and_wait("third")
            assert h.texts()[-1] == ("assistant", "third answer")


# ---------------------------------------------------------------- branches
async def test_regenerate_keeps_the_old_answer_reachable(qtbot) -> None:
    with FakeLLMServer() as srv:
        srv.enqueue(Text("first answer"), Text("second answer"))
        async with WindowHarness(qtbot, server=srv) as h:
            w = h.w
            await h.send_and_wait("question")
            assert w.composer.regenerate_button.isEnabled()
            QTest.mouseClick(w.composer.regenerate_button, Qt.MouseButton.LeftButton)
            await h.until(w.is_busy)
            await h.until(lambda: not w.is_busy())
            assert h.texts() == [("user", "question"), ("assistant", "second answer")]
            # The switcher is on the answer (issue 14), not in the top bar.
            await h.until(lambda: h.versions_of() == (2, 2), what="switcher on the answer")
            assert not w.branch_bar.isVisible()
            assert "‹ 2/2 ›" in w.view.canvas().rendered_text(h.items()[-1].message_id)
            await h.click_anchor(h.items()[-1].message_id, "parley-action:version-prev")
            await h.until(lambda: h.texts()[-1][1] == "first answer", what="old answer")
            await h.until(lambda: h.versions_of() == (1, 2))
            await h.click_anchor(h.items()[-1].message_id, "parley-action:version-next")
            await h.until(lambda: h.texts()[-1][1] == "second answer")


async def test_edit_and_resend_makes_a_branch(qtbot) -> None:
    with FakeLLMServer() as srv:
        srv.enqueue(Text("answer one"), Text("answer two"), Text("answer edited"))
        async with WindowHarness(qtbot, server=srv) as h:
            w = h.w
            await h.send_and_wait("question one")
            await h.send_and_wait("question two")
            first_q = h.items()[0].message_id
            # the context menu of the first question offers "Edit and resend…"
            assert w.actions_hook is not None and w.view is not None
            w.view.scroll_to_bottom()
            rect = w.view.canvas().message_rect(first_q)
            if rect is None or rect.top() < 0:
                w.view.canvas().verticalScrollBar().setValue(0)
                rect = w.view.canvas().message_rect(first_q)
            assert rect is not None
            menu = w.actions_hook.menu_for(QPointF(rect.center()))
            assert menu is not None
            labels = [a.text() for a in menu.actions()]
            assert "Edit and resend…" in labels
            next(a for a in menu.actions() if a.text() == "Edit and resend…").trigger()
            assert w.composer.editing_id() == int(first_q)
            assert w.composer.text() == "question one"
            w.composer.edit.selectAll()
            QTest.keyClicks(w.composer.edit, "question one, edited")
            QTest.keyClick(w.composer.edit, Qt.Key.Key_Return)
            await h.until(w.is_busy)
            await h.until(lambda: not w.is_busy())
            assert h.texts() == [
                ("user", "question one, edited"),
                ("assistant", "answer edited"),
            ]
            assert w.composer.editing_id() is None
            await h.until(lambda: h.versions_of("user") == (2, 2))
            # the request carried only the edited branch
            sent = [
                m["content"] for m in chat_requests(srv)[-1].json["messages"] if m["role"] == "user"
            ]
            assert sent == ["question one, edited"]
            # the old branch is still there
            await h.click_anchor(h.items()[0].message_id, "parley-action:version-prev")
            await h.until(lambda: len(h.texts()) == 4, what="old branch")
            assert h.texts() == [
                ("user", "question one"),
                ("assistant", "answer one"),
                ("user", "question two"),
                ("assistant", "answer two"),
            ]


async def test_up_in_empty_composer_edits_the_last_question_and_esc_cancels(qtbot) -> None:
    with FakeLLMServer() as srv:
        async with WindowHarness(qtbot, server=srv) as h:
            await h.send_and_wait("my question")
            QTest.keyClick(h.w.composer.edit, Qt.Key.Key_Up)
            assert h.w.composer.text() == "my question"
            assert h.w.composer.edit_bar.isVisible()
            QTest.keyClick(h.w.composer.edit, Qt.Key.Key_Escape)
            assert h.w.composer.editing_id() is None
            assert h.w.composer.text() == ""


# ---------------------------------------------------------------- errors
async def test_error_inline_then_retry(qtbot) -> None:
    with FakeLLMServer() as srv:
        srv.enqueue(*[HTTPError(500, retry_after=0.05)] * 3, Text("recovered"))
        async with WindowHarness(qtbot, server=srv) as h:
            w = h.w
            await h.send_and_wait("please answer")
            item = h.items()[-1]
            assert item.status == MessageStatus.ERROR
            assert item.error and item.retryable
            assert "500" in item.error or "server" in item.error.lower()
            assert len(chat_requests(srv)) == 3
            # Click the Retry link under the message, as a person would.
            assert w.view is not None
            w.view.flush()
            canvas = w.view.canvas()
            point = await h.until(
                lambda: canvas.anchor_point(item.message_id, "parley-retry:"), what="retry link"
            )
            QTest.mouseClick(canvas.viewport(), Qt.MouseButton.LeftButton, pos=point.toPoint())
            await h.until(w.is_busy, what="retry started")
            await h.until(lambda: not w.is_busy())
            assert h.texts() == [("user", "please answer"), ("assistant", "recovered")]
            assert h.items()[-1].status == MessageStatus.COMPLETE
            await h.until(lambda: h.versions_of() == (2, 2))


async def test_rate_limit_shows_a_live_countdown(qtbot) -> None:
    with FakeLLMServer() as srv:
        srv.enqueue(HTTPError(429, retry_after=2), Text("finally"))
        async with WindowHarness(qtbot, server=srv) as h:
            w = h.w
            h.type_and_send("hello")
            await h.until(lambda: "Retrying in 2 s" in w.notice.text(), what="countdown 2")
            assert w.notice.isVisible()
            await h.until(lambda: "Retrying in 1 s" in w.notice.text(), what="countdown 1")
            await h.until(lambda: not w.is_busy(), timeout=10)
            assert h.texts()[-1] == ("assistant", "finally")
            assert not w.notice.isVisible()


async def test_fallback_answer_is_labelled(qtbot) -> None:
    with FakeLLMServer() as srv:
        srv.enqueue(*[HTTPError(503, retry_after=0)] * 3, Text("from the fallback"))
        settings = local_settings(srv, fallback_model="backup-model")
        async with WindowHarness(qtbot, server=srv, settings=settings) as h:
            await h.send_and_wait("hi")
            item = h.items()[-1]
            assert item.text == "from the fallback"
            assert item.answered_by == "backup-model"
            assert chat_requests(srv)[-1].json["model"] == "backup-model"
            # reopening the chat keeps the label (it comes from the store)
            h.w.new_chat()
            await h.w.open_conversation(h.w.sidebar.ids()[0])
            assert h.items()[-1].answered_by == "backup-model"


async def test_failure_before_saving_keeps_the_text(qtbot) -> None:
    with FakeLLMServer() as srv:
        async with WindowHarness(qtbot, server=srv) as h:
            w = h.w
            await h.send_and_wait("first")
            cid = w.conversation_id
            # Another Parley process (the CLI) deletes the chat while it is open here.
            other = ConversationStore(h.s.paths.db_file)
            other.delete(cid)
            other.close()
            requests_before = len(chat_requests(srv))
            h.type_and_send("this must not be lost")
            await h.until(lambda: w.notice.isVisible(), what="notice")
            assert "no conversation" in w.notice.text().lower()
            assert w.composer.text() == "this must not be lost"
            assert not w.is_busy()
            assert len(chat_requests(srv)) == requests_before


async def test_missing_key_error_is_inline_with_retry(qtbot) -> None:
    with FakeLLMServer() as srv:
        # OpenAI chosen but no key anywhere: the question is saved, the error shown inline.
        async with WindowHarness(qtbot, server=srv, settings=openai_settings(srv)) as h:
            h.w.picker.set_current("openai", "gpt-4o-mini")
            await h.send_and_wait("hello")
            item = h.items()[-1]
            assert item.status == MessageStatus.ERROR
            assert "No API key for OpenAI" in (item.error or "")
            assert chat_requests(srv) == []


# ---------------------------------------------------------------- cost and tokens
async def test_status_strip_shows_cost_and_tokens(qtbot) -> None:
    with FakeLLMServer() as srv:
        srv.enqueue(Text("priced", input_tokens=10_000, output_tokens=5_000))
        srv.enqueue(Text("again", input_tokens=10_000, output_tokens=5_000))
        async with WindowHarness(
            qtbot, server=srv, settings=openai_settings(srv), secrets=_openai_secrets()
        ) as h:
            assert h.w.picker.current() == ("openai", "gpt-4o-mini")
            await h.send_and_wait("how much?")
            # gpt-4o-mini: $0.15 in / $0.60 out per 1M -> 0.0015 + 0.003
            assert h.w.status.tokens_label.text() == "Last turn: 10,000 in · 5,000 out · $0.0045"
            await h.until(lambda: h.w.status.cost_label.text() == "Chat cost: $0.0045")
            await h.send_and_wait("and now?")
            await h.until(lambda: h.w.status.cost_label.text() == "Chat cost: $0.0090")
            assert "128K context" in h.w.status.model_label.text()
            h.w.new_chat()
            assert h.w.status.cost_label.text() == "Chat cost: $0.00"


# ---------------------------------------------------------------- model picker
async def test_model_picker_groups_prices_and_local_models(qtbot) -> None:
    with FakeLLMServer() as srv:
        srv.models = ["llama3.2:3b", "qwen2.5:7b"]
        settings = local_settings(srv)
        async with WindowHarness(
            qtbot, server=srv, settings=settings, secrets=_openai_secrets()
        ) as h:
            picker = h.w.picker
            await h.until(
                lambda: any(m == "llama3.2:3b" for _, m, _ in picker.entries()), what="remote"
            )
            assert picker.headers() == ["OpenAI", "Local / OpenAI-compatible"]
            details = {(p, m): d for p, m, d in picker.entries()}
            assert details[("openai", "gpt-4o-mini")] == (
                "128K context · $0.15 in · $0.60 out per 1M"
            )
            assert details[("openai-compatible", "llama3.2:3b")] == "free (local)"
            assert ("openai-compatible", "qwen2.5:7b") in details
            assert ("anthropic", "claude-sonnet-4-6") not in details  # no key: not offered
            # choosing a model sticks to the conversation
            await h.send_and_wait("hello")
            row = next(i for i in range(picker.count()) if picker.itemText(i) == "llama3.2:3b")
            picker.setCurrentIndex(row)
            picker.activated.emit(row)
            cid = h.w.conversation_id
            await h.until(lambda: h.s.conversations.get(cid).options["model"] == "llama3.2:3b")
            await h.send_and_wait("again")
            assert chat_requests(srv)[-1].json["model"] == "llama3.2:3b"
            h.w.new_chat()
            await h.w.open_conversation(cid)
            assert picker.current() == ("openai-compatible", "llama3.2:3b")


def test_unknown_price_is_said_not_zero(tmp_path) -> None:
    from parley.core.providers.catalog import load_catalog

    catalog = load_catalog(tmp_path / "none.toml")
    groups = build_groups(
        catalog,
        ["openai-compatible"],
        is_local=lambda _p: False,
        remote={"openai-compatible": ["mystery-1"]},
    )
    assert groups[0].entries[-1].detail == "price unknown"
    assert describe_model(None, local=True) == "free (local)"
    assert describe_model(catalog.model("gpt-4o-mini"), local=False).endswith("per 1M")


# ---------------------------------------------------------------- switches
async def test_switches_are_stored_per_conversation_and_reach_the_turn(qtbot, tmp_path) -> None:
    with FakeLLMServer() as srv:
        async with WindowHarness(qtbot, server=srv) as h:
            w = h.w
            w.composer.tools_switch.setChecked(True)
            await h.send_and_wait("use tools please")
            cid = w.conversation_id
            assert h.s.conversations.get(cid).options["use_tools"] is True
            assert h.s.conversations.get(cid).options["use_knowledge"] is False
            assert "tools" in chat_requests(srv)[-1].json  # the agent offered the tools
            w.new_chat()
            assert w.composer.options() == (False, False)
            await h.send_and_wait("no tools")
            assert "tools" not in chat_requests(srv)[-1].json
            await w.open_conversation(cid)
            assert w.composer.options() == (True, False)
            w.composer.knowledge_switch.setChecked(True)
            await h.until(lambda: h.s.conversations.get(cid).options["use_knowledge"] is True)


# ---------------------------------------------------------------- sidebar
def test_group_labels() -> None:
    now = dt.datetime(2025, 6, 15, 12, 0)
    ts = lambda d: dt.datetime(2025, 6, d, 9, 0).timestamp()  # noqa: E731
    assert group_label(ts(15), now) == "Today"
    assert group_label(ts(14), now) == "Yesterday"
    assert group_label(ts(9), now) == "Previous 7 days"
    assert group_label(ts(7), now) == "Older"


async def test_sidebar_groups_search_rename_delete_undo(qtbot) -> None:
    with FakeLLMServer() as srv:
        async with WindowHarness(qtbot, server=srv) as h:
            w = h.w
            store = h.s.conversations
            now = time.time()
            ages = {"today chat": 0, "yesterday chat": 1, "last week chat": 4, "ancient chat": 40}
            ids = {}
            for title, days in ages.items():
                c = store.create(title)
                store.add_message(c.id, "user", f"about {title} and bananas" if days else "plain")
                with store.conn:
                    store.conn.execute(
                        "UPDATE conversations SET updated_at=? WHERE id=?",
                        (now - days * 86400 - 60, c.id),
                    )
                ids[title] = c.id
            w.refresh_sidebar(sync=True)
            assert w.sidebar.headers()[0] == "Today"
            assert set(w.sidebar.headers()) <= {"Today", "Yesterday", "Previous 7 days", "Older"}
            assert "Older" in w.sidebar.headers()
            assert w.sidebar.ids()[0] == ids["today chat"]
            assert w.sidebar.ids()[-1] == ids["ancient chat"]

            # search matches message text, debounced
            QTest.keyClicks(w.sidebar.search, "bananas")
            await h.until(lambda: ids["today chat"] not in w.sidebar.ids(), what="search")
            assert set(w.sidebar.ids()) == {
                ids["yesterday chat"],
                ids["last week chat"],
                ids["ancient chat"],
            }
            w.sidebar.search.clear()
            await h.until(lambda: len(w.sidebar.ids()) == 4, what="search cleared")

            # rename through the dialog
            w.sidebar.rename_interactively(ids["ancient chat"])
            dialog = await h.until(
                lambda: next(
                    (
                        d
                        for d in QApplication.topLevelWidgets()
                        if isinstance(d, QInputDialog) and d.isVisible()
                    ),
                    None,
                ),
                what="rename dialog",
            )
            dialog.setTextValue("Renamed chat")
            dialog.accept()
            await h.until(lambda: w.sidebar.title_of(ids["ancient chat"]) == "Renamed chat")
            assert store.get(ids["ancient chat"]).title == "Renamed chat"

            # delete (Delete key on the list) with Undo
            w.sidebar.select(ids["yesterday chat"])
            w.activateWindow()
            await h.until(lambda: QApplication.activeWindow() is w, what="active window")
            w.sidebar.list.setFocus()
            QTest.keyClick(w.sidebar.list, Qt.Key.Key_Delete)
            await h.until(lambda: ids["yesterday chat"] not in w.sidebar.ids(), what="deleted")
            assert store.get(ids["yesterday chat"]) is None
            assert w.notice.isVisible() and "Deleted" in w.notice.text()
            QTest.mouseClick(w.notice.action_button, Qt.MouseButton.LeftButton)
            await h.until(lambda: ids["yesterday chat"] in w.sidebar.ids(), what="undone")
            assert store.get(ids["yesterday chat"]) is not None
            assert w.conversation_id == ids["yesterday chat"]


async def test_opening_a_chat_from_the_sidebar_shows_its_branch(qtbot) -> None:
    with FakeLLMServer() as srv:
        srv.enqueue(Text("A1"), Text("B1"))
        async with WindowHarness(qtbot, server=srv) as h:
            w = h.w
            await h.send_and_wait("chat A")
            a = w.conversation_id
            w.new_chat()
            assert h.texts() == []
            await h.send_and_wait("chat B")
            b = w.conversation_id
            assert a != b
            await h.until(lambda: len(w.sidebar.ids()) == 2)
            w.sidebar.list.setCurrentRow(
                next(
                    i
                    for i in range(w.sidebar.list.count())
                    if w.sidebar._id(w.sidebar.list.item(i)) == a
                )
            )
            await h.until(lambda: w.conversation_id == a, what="opened")  # read off-thread
            assert h.texts() == [("user", "chat A"), ("assistant", "A1")]


async def test_switching_chats_mid_stream_and_back_shows_the_live_answer(qtbot) -> None:
    with FakeLLMServer() as srv:
        srv.enqueue(Text("done"), Text("x" * 600, chunk_chars=3, delay=0.005))
        async with WindowHarness(qtbot, server=srv) as h:
            w = h.w
            await h.send_and_wait("other chat")
            other = w.conversation_id
            w.new_chat()
            h.type_and_send("streaming chat")
            await h.until(lambda: len(h.texts()) == 2 and len(h.texts()[1][1]) > 30)
            streaming = w.conversation_id
            await w.open_conversation(other)
            assert h.texts() == [("user", "other chat"), ("assistant", "done")]
            await w.open_conversation(streaming)
            assert h.items()[-1].status == MessageStatus.STREAMING
            await h.until(lambda: not w.is_busy(), timeout=15)
            assert h.texts()[-1] == ("assistant", "x" * 600)
            assert h.items()[-1].status == MessageStatus.COMPLETE


# ---------------------------------------------------------------- shortcuts
async def test_shortcuts_new_search_settings(qtbot) -> None:
    with FakeLLMServer() as srv:
        async with WindowHarness(qtbot, server=srv) as h:
            w = h.w
            await h.send_and_wait("something")
            assert h.texts()
            w.activateWindow()
            QTest.keyClick(w.composer.edit, Qt.Key.Key_N, Qt.KeyboardModifier.ControlModifier)
            assert w.conversation_id is None and h.texts() == []
            QTest.keyClick(w.composer.edit, Qt.Key.Key_K, Qt.KeyboardModifier.ControlModifier)
            assert w.sidebar.search.hasFocus()
            QTest.keyClick(w.sidebar.search, Qt.Key.Key_Comma, Qt.KeyboardModifier.ControlModifier)
            await h.until(lambda: w.settings_dialog is not None and w.settings_dialog.isVisible())
            assert not w.settings_dialog.isModal()
            w.settings_dialog.reject()


# ---------------------------------------------------------------- links
async def test_links_ask_first_and_show_the_real_host(qtbot) -> None:
    with FakeLLMServer() as srv:
        async with WindowHarness(qtbot, server=srv, confirm_links=True) as h:
            assert h.w.view is not None

            def boxes() -> list[QMessageBox]:
                return [
                    b
                    for b in QApplication.topLevelWidgets()
                    if isinstance(b, QMessageBox) and b.isVisible()
                ]

            h.w.view.sig_link_activated.emit("javascript:alert(1)")
            h.w.view.sig_link_activated.emit("file:///etc/passwd")
            assert boxes() == []  # never offered
            # a look-alike host (Cyrillic "а") is shown in its punycode form
            h.w.view.sig_link_activated.emit("https://ex\u0430mple.com/login")
            box = await h.until(lambda: boxes() and boxes()[0], what="confirmation")
            assert box.windowModality() == Qt.WindowModality.WindowModal  # open(), not exec()
            assert "xn--" in box.informativeText()
            box.reject()  # never open a browser from a test
