"""Issue 14 item 1: the chat view shows what a fresh render shows, after the issue's sequence.

The sequence: send a question, send a second, press Escape mid-answer, Ctrl+R, Chat › Edit
last question and send, click another chat and back. Before the fix the screen showed the
"Your question" heading twice, one copy printed over the next paragraph: rows made exact
above the viewport while the view followed the bottom moved the pixels already painted
(a blit), although nothing on screen had moved.

What is compared:

- the pixels on screen (the window's backing store, as painted incrementally) with a full
  repaint of the same viewport at the same moment, and
- the conversation scrolled through, half a screen at a time, with a fresh ``ChatView`` given
  the same messages (no cache of the old view involved).
"""

from __future__ import annotations

import asyncio

from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QGuiApplication, QImage
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QMenu

from parley.ui.chat.view import ChatView
from tests.fakes.server import FakeLLMServer, demo_reply
from tests.ui.harness import WindowHarness


async def _screen_and_repaint(view: ChatView) -> tuple[QImage, QImage]:
    """(what the screen shows of the chat viewport, a full repaint of it)."""
    canvas = view.canvas()
    viewport = canvas.viewport()
    # Deliver pending paints, so the screen is what the incremental paints made it. Awaited,
    # not QApplication.processEvents() in a loop: on the qasync loop a nested processEvents
    # runs other tasks' steps inside this one's, which asyncio refuses ("Cannot enter into
    # task ...") and the refused task never runs again; a CI run hung for good on it.
    await asyncio.sleep(0.05)
    top_left = viewport.mapTo(viewport.window(), QPoint(0, 0))
    screen = QGuiApplication.primaryScreen()
    shown = screen.grabWindow(
        viewport.window().winId(), top_left.x(), top_left.y(), viewport.width(), viewport.height()
    ).toImage()
    fresh = viewport.grab().toImage()
    return shown.convertToFormat(fresh.format()), fresh


def _scroll_shots(view: ChatView) -> list[tuple[int, QImage]]:
    """Full repaints of the viewport scrolled from top to bottom, half a screen a step."""
    canvas = view.canvas()
    bar = canvas.verticalScrollBar()
    out = []
    y = 0
    while True:
        bar.setValue(y)
        out.append((bar.value(), canvas.viewport().grab().toImage()))
        if y >= bar.maximum():
            return out
        y += canvas.viewport().height() // 2


async def test_issue_sequence_renders_like_a_fresh_view(qtbot, tmp_path) -> None:
    """Stop, regenerate, edit, switch chats: the screen equals a fresh render, rows too."""
    with FakeLLMServer(default_reply=lambda r: demo_reply(r, delay=0.006)) as srv:
        async with WindowHarness(qtbot, server=srv) as h:
            w = h.w
            w.resize(1600, 1000)
            await h.send_and_wait("other chat", timeout=30)
            other = w.conversation_id
            w.new_chat()
            await h.send_and_wait("first question", timeout=30)
            h.type_and_send("second question")
            await h.until(
                lambda: len(h.texts()) == 4 and len(h.texts()[-1][1]) > 30, 30, "mid-answer"
            )
            QTest.keyClick(w.composer.edit, Qt.Key.Key_Escape)
            await h.until(lambda: not w.is_busy(), 30, "the stop")
            QTest.keyClick(w.composer.edit, Qt.Key.Key_R, Qt.KeyboardModifier.ControlModifier)
            await h.until(w.is_busy, 30, "the regenerate")
            await h.until(lambda: not w.is_busy(), 40, "the new answer")
            chat_menu = next(m for m in w.menuBar().findChildren(QMenu) if m.title() == "&Chat")
            next(a for a in chat_menu.actions() if a.text() == "Edit last question").trigger()
            assert w.composer.edit.toPlainText() == "second question"
            QTest.keyClick(w.composer.edit, Qt.Key.Key_Return)
            await h.until(w.is_busy, 30, "the edit")
            await h.until(lambda: not w.is_busy(), 40, "the edited answer")
            await asyncio.sleep(0.2)
            shown, repaint = await _screen_and_repaint(w.view)
            if shown != repaint:
                shown.save(str(tmp_path / "after_edit_screen.png"))
                repaint.save(str(tmp_path / "after_edit_repaint.png"))
            assert shown == repaint, f"stale pixels after the edit (see {tmp_path})"

            cid = w.conversation_id
            await w.open_conversation(other)
            await asyncio.sleep(0.2)
            await w.open_conversation(cid)
            await asyncio.sleep(0.5)  # the idle prefetch lays out the rows off screen
            shown, repaint = await _screen_and_repaint(w.view)
            if shown != repaint:
                shown.save(str(tmp_path / "after_switch_screen.png"))
                repaint.save(str(tmp_path / "after_switch_repaint.png"))
            assert shown == repaint, f"stale pixels after switching back (see {tmp_path})"

            # The same conversation in a view that never saw its history.
            fresh = ChatView()
            qtbot.addWidget(fresh)
            fresh.resize(w.view.size())
            fresh.show()
            fresh.set_messages(w.view.model().items())
            await asyncio.sleep(0.2)
            for view in (w.view, fresh):  # no message's actions shown (hover, focus)
                view.canvas().clearFocus()
            got = _scroll_shots(w.view)
            want = _scroll_shots(fresh)
            assert [y for y, _ in got] == [y for y, _ in want]  # same row heights in all
            for i, ((y, a), (_, b)) in enumerate(zip(got, want, strict=True)):
                if a != b:
                    a.save(str(tmp_path / f"got_{i}.png"))
                    b.save(str(tmp_path / f"want_{i}.png"))
                assert a == b, f"rows at scroll {y} differ from a fresh render (see {tmp_path})"
