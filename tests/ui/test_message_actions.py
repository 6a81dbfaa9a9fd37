"""Issue 14 item 4: actions on the message, the version switcher beside it, model and usage.

Real ``ChatView`` widgets offscreen, and a real window against the fake server.
"""

from __future__ import annotations

import pytest
from PySide6.QtCore import QEvent, QPoint, Qt
from PySide6.QtWidgets import QMessageBox
from pytestqt.qtbot import QtBot

from parley.core.secrets import MemorySecretStore, Secrets
from parley.ui.chat.model import ChatItem, ChatRole, FooterItem
from parley.ui.chat.transcript import usage_footer
from parley.ui.chat.view import ChatView
from tests.fakes.script import Text
from tests.fakes.server import FakeLLMServer
from tests.ui.harness import WindowHarness, openai_settings


def _view(qtbot: QtBot) -> ChatView:
    view = ChatView()
    qtbot.addWidget(view)
    view.resize(760, 520)
    view.show()
    qtbot.waitExposed(view)
    view.set_messages(
        [
            ChatItem("q", ChatRole.USER, "What is a monad?"),
            ChatItem("a", ChatRole.ASSISTANT, "A monoid in the category of endofunctors."),
        ]
    )
    return view


def _header_pixels(view: ChatView, message_id: str):
    rect = view.canvas().message_rect(message_id)
    assert rect is not None
    strip = rect.toRect().adjusted(0, 0, 0, -int(rect.height() - view.fontMetrics().height() * 2))
    return view.canvas().viewport().grab(strip).toImage()


def test_actions_show_on_hover_and_do_what_they_say(qtbot: QtBot) -> None:
    view = _view(qtbot)
    canvas = view.canvas()
    viewport = canvas.viewport()
    assert not canvas.actions_shown("a") and not canvas.actions_shown("q")
    quiet = _header_pixels(view, "a")
    rect = canvas.message_rect("a")
    assert rect is not None
    qtbot.mouseMove(viewport, QPoint(int(rect.center().x()), int(rect.center().y())))
    assert canvas.actions_shown("a") and not canvas.actions_shown("q")
    assert _header_pixels(view, "a") != quiet  # the actions are painted now
    # An answer offers Copy, Regenerate and Delete; a question Copy and Edit.
    assert canvas.anchor_point("a", "parley-copy-message:") is not None
    for action in ("regenerate", "delete"):
        assert canvas.anchor_point("a", f"parley-action:{action}") is not None
    assert canvas.anchor_point("a", "parley-action:edit") is None
    assert canvas.anchor_point("q", "parley-action:edit") is not None
    assert canvas.anchor_point("q", "parley-action:delete") is None
    got: list[tuple[str, str]] = []
    view.sig_message_action.connect(lambda mid, action: got.append((mid, action)))
    for mid, action in (("a", "regenerate"), ("a", "delete"), ("q", "edit")):
        point = canvas.anchor_point(mid, f"parley-action:{action}")
        assert point is not None
        qtbot.mouseMove(viewport, point.toPoint())
        qtbot.mouseClick(viewport, Qt.MouseButton.LeftButton, pos=point.toPoint())
    assert got == [("a", "regenerate"), ("a", "delete"), ("q", "edit")]
    # Leaving the view hides them.
    qtbot.mouseMove(view.window(), QPoint(1, 1))
    canvas.viewportEvent(_leave())
    assert not canvas.actions_shown("a")


def _leave() -> QEvent:
    return QEvent(QEvent.Type.Leave)


def test_actions_that_start_a_turn_are_greyed_out_while_busy(qtbot: QtBot) -> None:
    view = _view(qtbot)
    canvas = view.canvas()
    view.set_actions_enabled(False)
    assert canvas.anchor_point("a", "parley-action:regenerate") is None
    assert canvas.anchor_point("q", "parley-action:edit") is None
    assert canvas.anchor_point("a", "parley-copy-message:") is not None  # Copy stays
    view.set_actions_enabled(True)
    assert canvas.anchor_point("a", "parley-action:regenerate") is not None


def test_keyboard_focus_shows_the_focused_message_actions(qtbot: QtBot) -> None:
    view = _view(qtbot)
    canvas = view.canvas()
    canvas.setFocus(Qt.FocusReason.TabFocusReason)
    qtbot.waitUntil(canvas.hasFocus)
    assert canvas.actions_shown("a")  # the newest message first


def test_version_switcher_and_model_in_the_header(qtbot: QtBot) -> None:
    view = _view(qtbot)
    view.set_versions("a", (2, 3))
    view.set_usage("a", "gpt-4o-mini", usage_footer((1200, 200, 34), 0.00021, price="$0.15"))
    text = view.canvas().rendered_text("a")
    assert "Assistant · gpt-4o-mini" in text
    assert "‹ 2/3 ›" in text
    assert "1,234 tokens · $0.0002" in text
    got: list[str] = []
    view.sig_message_action.connect(lambda _mid, action: got.append(action))
    for action in ("version-prev", "version-next"):
        point = view.canvas().anchor_point("a", f"parley-action:{action}")
        assert point is not None
        qtbot.mouseClick(view.canvas().viewport(), Qt.MouseButton.LeftButton, pos=point.toPoint())
    assert got == ["version-prev", "version-next"]
    view.set_versions("a", (3, 3))  # the last version: no way further on
    assert view.canvas().anchor_point("a", "parley-action:version-next") is None
    assert view.canvas().anchor_point("a", "parley-action:version-prev") is not None


def test_usage_tooltip_says_input_cached_output_and_price() -> None:
    line = usage_footer((1000, 400, 50), 0.0012, price="$0.15 in · $0.60 out per 1M tokens")
    assert isinstance(line, FooterItem) and line.text == "1,050 tokens · $0.0012"
    assert line.tooltip is not None
    for part in ("Input: 1,000", "Cached input: 400", "Output: 50", "$0.15 in · $0.60 out"):
        assert part in line.tooltip
    assert "cost unknown" in usage_footer((10, None, 5), None).text  # never "$0"
    assert "free (local)" in usage_footer((10, 0, 5), 0.0, local=True).text


async def test_window_answer_names_model_and_cost_and_delete_removes_it(qtbot) -> None:
    with FakeLLMServer() as srv:
        srv.enqueue(
            Text("first answer", input_tokens=1200, output_tokens=34),
            Text("second answer", input_tokens=1200, output_tokens=40),
        )
        store = MemorySecretStore()
        store.set("openai", "sk-test")
        secrets = Secrets(store, environ={})
        async with WindowHarness(
            qtbot, server=srv, settings=openai_settings(srv), secrets=secrets
        ) as h:
            w = h.w
            await h.send_and_wait("question")
            answer = h.items()[-1]
            assert answer.model == "gpt-4o-mini"
            usage = next(f for f in answer.footer if f.kind == "usage")
            assert "tokens · $" in usage.text
            assert usage.tooltip and "Price used: $" in usage.tooltip
            assert "gpt-4o-mini" in w.view.canvas().rendered_text(answer.message_id)
            # Regenerate from the answer's own action.
            await h.click_anchor(answer.message_id, "parley-action:regenerate")
            await h.until(lambda: not w.is_busy() and h.texts()[-1][1] == "second answer")
            await h.until(lambda: h.versions_of() == (2, 2))
            # After a reload the stored usage and model are shown again.
            cid = w.conversation_id
            w.new_chat()
            await w.open_conversation(cid)
            await h.until(lambda: len(h.items()) == 2 and h.items()[-1].model == "gpt-4o-mini")
            assert any(f.kind == "usage" for f in h.items()[-1].footer)
            # Delete the newest version: it asks first, then version 1 shows.
            await h.click_anchor(h.items()[-1].message_id, "parley-action:delete")
            box = await h.until(lambda: w.findChild(QMessageBox, "delete-answer"))
            box.button(QMessageBox.StandardButton.Yes).click()
            await h.until(lambda: h.texts()[-1][1] == "first answer", what="version 1 shown")
            await h.until(lambda: h.versions_of() is None, what="no other version left")
            branch = h.s.conversations.branch(cid)
            assert [m.content for m in branch] == ["question", "first answer"]


@pytest.mark.qt_log_ignore("This plugin does not support")  # a popup, offscreen
def test_keyboard_moves_between_messages_and_opens_the_focused_ones_menu(qtbot: QtBot) -> None:
    from PySide6.QtGui import QContextMenuEvent
    from PySide6.QtWidgets import QApplication, QMenu

    view = _view(qtbot)
    canvas = view.canvas()
    canvas.setFocus(Qt.FocusReason.TabFocusReason)
    qtbot.waitUntil(canvas.hasFocus)
    assert canvas.actions_shown("a")
    qtbot.keyClick(canvas, Qt.Key.Key_Up, Qt.KeyboardModifier.AltModifier)
    assert canvas.actions_shown("q") and not canvas.actions_shown("a")
    qtbot.keyClick(canvas, Qt.Key.Key_Down, Qt.KeyboardModifier.AltModifier)
    assert canvas.actions_shown("a")
    # The menu key opens the focused message's menu (not the one under a stray pointer).
    QApplication.sendEvent(
        canvas,
        QContextMenuEvent(
            QContextMenuEvent.Reason.Keyboard, QPoint(0, 0), canvas.mapToGlobal(QPoint(0, 0))
        ),
    )
    menus = [m for m in canvas.findChildren(QMenu) if m.isVisible()]
    assert menus and "Copy message" in [a.text() for a in menus[-1].actions()]
    menus[-1].close()
