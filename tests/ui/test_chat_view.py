"""The chat view on real widgets (offscreen): lazy layout, streaming, links, copy, selection."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from PySide6.QtCore import QElapsedTimer, QEvent, QObject, QPoint, QPointF, Qt, QTimer
from PySide6.QtGui import (
    QColor,
    QGuiApplication,
    QImage,
    QPalette,
    QTextDocument,
    QWheelEvent,
)
from PySide6.QtWidgets import QApplication, QWidget
from pytestqt.qtbot import QtBot

from parley.ui.chat.markdown import MarkdownRenderer
from parley.ui.chat.model import (
    ChatItem,
    ChatModel,
    ChatRole,
    FooterItem,
    ItemRole,
    MessageStatus,
)
from parley.ui.chat.view import (
    LAYOUT_CACHE_SIZE,
    MAX_FRAME_INTERVAL_MS,
    UPDATE_INTERVAL_MS,
    ChatView,
    SafeTextDocument,
    theme_from_palette,
)

ANSWER = textwrap.dedent(
    """\
    ## Plan

    First a paragraph with a [link](https://example.com/docs) and `inline` code.

    1. step one
    2. step two

    ```python
    def greet(name):
        return f"hi {name}"
    ```

    | a | b |
    |---|--:|
    | 1 | 2 |

    > a quote

    Done.
    """
)


def make_view(qtbot: QtBot, width: int = 700, height: int = 500) -> ChatView:
    view = ChatView()
    qtbot.addWidget(view)
    view.resize(width, height)
    view.show()
    qtbot.waitExposed(view)
    return view


def history(n: int, with_code_every: int = 5) -> list[ChatItem]:
    items = []
    for i in range(n):
        if i % 2 == 0:
            items.append(ChatItem(f"m{i}", ChatRole.USER, f"question {i}"))
        else:
            text = f"Answer {i}. " * 8
            if (i // 2) % with_code_every == 0:
                text += f"\n\n```python\nx = {i}\n```\n"
            items.append(ChatItem(f"m{i}", ChatRole.ASSISTANT, text))
    return items


def click(qtbot: QtBot, view: ChatView, point: QPointF) -> None:
    qtbot.mouseClick(view.canvas().viewport(), Qt.MouseButton.LeftButton, pos=point.toPoint())


def clipboard() -> str:
    return QGuiApplication.clipboard().text()


# ---------------------------------------------------------------- model


def test_chat_item_validates_its_fields() -> None:
    assert ChatItem("a", "user").role is ChatRole.USER  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown chat role"):
        ChatItem("a", "robot")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown message status"):
        ChatItem("a", ChatRole.USER, status="done")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="message_id"):
        ChatItem("", ChatRole.USER)


def test_model_buffers_deltas_and_bumps_revisions(qtbot: QtBot) -> None:
    model = ChatModel()
    model.set_items([ChatItem("a", ChatRole.ASSISTANT, "Hel")])
    with pytest.raises(ValueError, match="duplicate"):
        model.append(ChatItem("a", ChatRole.USER))
    assert model.append_text("a", "lo ") and model.append_text("a", "there")
    assert not model.append_text("missing", "x")
    assert model.item_at(0).text == "Hel"  # not applied yet: the view's rendered state
    assert model.item("a").text == "Hello there"  # type: ignore[union-attr]
    text0, meta0 = model.revisions(0)
    with qtbot.waitSignal(model.dataChanged) as blocker:
        assert model.take_pending("a") == "lo there"
    assert ItemRole.TEXT in blocker.args[2]
    text1, meta1 = model.revisions(0)
    assert text1 != text0 and meta1 == meta0  # a text change leaves the decorations' revision
    model.update("a", status=MessageStatus.ERROR, error="boom")
    text2, meta2 = model.revisions(0)
    assert text2 == text1 and meta2 != meta1
    assert model.data(model.index(0), ItemRole.STATUS) == "error"
    with pytest.raises(ValueError, match="unknown chat item field"):
        model.update("a", colour="red")
    # A reload (or a message removed and shown again) never reuses a revision: caches keyed
    # by (message id or row, revision) cannot mistake the new version for the old one.
    seen = {*model.revisions(0), text0, meta0, text1, meta1}
    model.set_items([ChatItem("a", ChatRole.ASSISTANT, "Hello there")])
    assert not seen & set(model.revisions(0))
    seen |= set(model.revisions(0))
    assert model.remove("a")
    model.append(ChatItem("a", ChatRole.ASSISTANT, "other version"))
    assert not seen & set(model.revisions(0))


# ---------------------------------------------------------------- lazy layout


def test_a_long_chat_lays_out_only_what_is_visible(qtbot: QtBot) -> None:
    view = make_view(qtbot)
    view.set_messages(history(1000))
    qtbot.waitUntil(lambda: "m999" in view.canvas().rendered_message_ids())
    rendered = view.canvas().rendered_message_ids()
    assert len(rendered) < 30
    assert "m0" not in rendered and view.is_following()
    # Jump to the top: the first messages get laid out, the cache stays bounded.
    qtbot.keyClick(view.canvas(), Qt.Key.Key_Home, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: "m0" in view.canvas().rendered_message_ids())
    assert not view.is_following()
    bar = view.canvas().verticalScrollBar()
    seen: set[str] = set()
    for _ in range(60):  # page down through a few hundred messages
        bar.setValue(bar.value() + bar.pageStep())
        view.canvas().viewport().repaint()
        seen.update(view.canvas().rendered_message_ids())
    assert len(seen) > LAYOUT_CACHE_SIZE
    assert len(view.canvas().rendered_message_ids()) <= LAYOUT_CACHE_SIZE
    assert "m0" not in view.canvas().rendered_message_ids()  # evicted, least recently used


def test_scrolling_up_keeps_the_visible_message_still(qtbot: QtBot) -> None:
    """Exact heights replacing estimates above the viewport must not move what is shown."""
    view = make_view(qtbot)
    view.set_messages(history(300))
    canvas = view.canvas()
    qtbot.waitUntil(lambda: "m299" in canvas.rendered_message_ids())
    bar = canvas.verticalScrollBar()
    for _ in range(15):
        bar.setValue(bar.value() - bar.pageStep())
        canvas.viewport().repaint()
    top_row = next(
        f"m{i}"
        for i in range(300)
        if canvas.message_rect(f"m{i}").bottom() > 0  # type: ignore[union-attr]
    )
    before = canvas.message_rect(top_row)
    bar.setValue(bar.value() - 40)  # a small scroll lays out rows just above
    canvas.viewport().repaint()
    after = canvas.message_rect(top_row)
    assert after is not None and before is not None
    assert after.top() == pytest.approx(before.top() + 40, abs=1.5)


# ---------------------------------------------------------------- streaming


def test_streaming_is_coalesced_and_ends_like_a_loaded_message(qtbot: QtBot) -> None:
    view = make_view(qtbot, height=300)
    view.append(ChatItem("live", ChatRole.ASSISTANT))
    view.begin_stream("live")
    renders: list[int] = []
    view.model().dataChanged.connect(
        lambda top, _bottom, roles: ItemRole.TEXT in roles and renders.append(top.row())
    )
    for i in range(0, len(ANSWER), 3):
        view.append_delta("live", ANSWER[i : i + 3])
    assert renders == []  # nothing renders per delta
    qtbot.waitUntil(lambda: len(renders) == 1)
    assert "writing…" in view.canvas().rendered_text("live")
    assert "def greet(name):" in view.canvas().rendered_text("live")
    # Stream more so the view scrolls (blits) while it follows, then finish.
    more = "\n\n".join(f"Point {i}: the answer continues." for i in range(12))
    for i in range(0, len(more), 7):
        view.append_delta("live", more[i : i + 7])
        if i % 70 == 0:
            view.flush()
            # What is on screen (partial repaints + blits) equals a full fresh render.
            assert screen_pixels(view) == view.grab().toImage()
    view.end_stream("live", MessageStatus.COMPLETE)
    final = ANSWER + more
    assert view.item("live").text == final  # type: ignore[union-attr]
    assert view.item("live").status is MessageStatus.COMPLETE  # type: ignore[union-attr]

    loaded = make_view(qtbot, height=300)
    loaded.set_messages([ChatItem("live", ChatRole.ASSISTANT, final)])
    assert view.canvas().rendered_text("live") == loaded.canvas().rendered_text("live")
    # The pixels on screen (the backing store, not a fresh render) must match too: partial
    # repaints and blits during the stream leave nothing stale behind.
    qtbot.waitUntil(lambda: screen_pixels(view) == screen_pixels(loaded))


def screen_pixels(view: ChatView) -> QImage:
    QApplication.processEvents()
    return view.screen().grabWindow(view.winId()).toImage()


class PaintCounter(QObject):
    """Counts the paint events a widget receives (each re-render ends in one)."""

    def __init__(self, widget: QWidget) -> None:
        super().__init__(widget)
        self.count = 0
        widget.installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Paint:
            self.count += 1
        return False


def call_repeatedly(qtbot: QtBot, fn: Callable[[], None], *, interval_ms: int, for_ms: int) -> int:
    """Call ``fn`` from a Qt timer every ``interval_ms`` (0: every loop turn).

    For at least ``for_ms``; returns the milliseconds that actually passed.
    """
    clock = QElapsedTimer()
    clock.start()
    timer = QTimer()
    timer.setInterval(interval_ms)
    timer.timeout.connect(fn)
    timer.start()
    qtbot.waitUntil(lambda: clock.elapsed() >= for_ms, timeout=for_ms + 20_000)
    timer.stop()
    return clock.elapsed()


def test_update_rate_is_capped_while_deltas_pour_in(qtbot: QtBot) -> None:
    view = make_view(qtbot)
    view.append(ChatItem("live", ChatRole.ASSISTANT))
    view.begin_stream("live")
    QApplication.processEvents()
    paints = PaintCounter(view.canvas().viewport())
    words = itertools.count()
    sent: list[int] = []

    def pour() -> None:  # a delta on every event-loop turn, as fast as possible
        n = next(words)
        if n >= 3000:  # enough to stay busy; a bigger backlog only makes the test slower
            return
        sent.append(n)
        view.append_delta("live", f"w{n} " + ("\n\n" if n % 40 == 0 else ""))

    elapsed = call_repeatedly(qtbot, pour, interval_ms=0, for_ms=300)
    assert paints.count >= 2  # it did render while the text poured in...
    assert len(sent) > 5 * paints.count  # ...but not per delta...
    assert paints.count <= elapsed / UPDATE_INTERVAL_MS + 3  # ...at most ~30 times a second
    view.end_stream("live")
    qtbot.waitUntil(lambda: "writing" not in view.canvas().rendered_text("live"))
    assert f"w{sent[-1]}" in view.canvas().rendered_text("live")


def test_a_stream_far_faster_than_reading_gets_fewer_frames(qtbot: QtBot) -> None:
    view = make_view(qtbot, height=300)
    view.append(ChatItem("live", ChatRole.ASSISTANT))
    view.begin_stream("live")
    QApplication.processEvents()
    paints = PaintCounter(view.canvas().viewport())
    text = "\n\n".join(f"Paragraph {i}: " + "word " * 30 for i in range(400))
    pos = 0

    def pour() -> None:  # 60 characters every 2 ms: about ten times 2,400 a second
        nonlocal pos
        if pos < len(text):
            view.append_delta("live", text[pos : pos + 60])
            pos += 60

    elapsed = call_repeatedly(qtbot, pour, interval_ms=2, for_ms=700)
    text = text[:pos]
    frames = paints.count
    assert frames >= 2  # it kept showing the stream...
    # ...in about ten frames a second instead of thirty (the rate stays the same or lower
    # when the machine is slow: each frame waits for its turn)
    assert frames <= elapsed / (0.9 * MAX_FRAME_INTERVAL_MS) + 3
    view.end_stream("live")
    qtbot.waitUntil(lambda: not view.canvas().active_streams(), timeout=20_000)
    loaded = make_view(qtbot, height=300)
    loaded.set_messages([ChatItem("live", ChatRole.ASSISTANT, text)])
    assert view.canvas().rendered_text("live") == loaded.canvas().rendered_text("live")


def test_a_backlog_renders_at_machine_speed_not_a_slice_per_frame(qtbot: QtBot) -> None:
    # A fast local server can deliver a whole answer before the view has shown much of it.
    # The backlog is rendered in small steps (the window keeps answering between them), but
    # back to back: not one 4 ms slice every 33 ms, which took ~4x the work's own time.
    view = make_view(qtbot, height=400)
    view.append(ChatItem("live", ChatRole.ASSISTANT))
    view.begin_stream("live")
    QApplication.processEvents()
    code = "```python\n" + "".join(f"total += value_{i} * {i}\n" for i in range(12)) + "```"
    text = "\n\n".join(
        f"## Part {i}\n\n" + "Some words to wrap. " * 20 + "\n\n" + code for i in range(60)
    )
    heartbeat_gaps: list[int] = []
    clock = QElapsedTimer()
    beat = QTimer()
    beat.setInterval(5)
    beat.timeout.connect(lambda: heartbeat_gaps.append(clock.restart()))
    view.append_delta("live", text)
    view.end_stream("live")
    sched0 = _gui_thread_schedstat()
    wall = QElapsedTimer()
    wall.start()
    clock.start()
    beat.start()
    qtbot.waitUntil(lambda: not view.canvas().active_streams(), timeout=60_000)
    beat.stop()
    took_ms = wall.elapsed()
    cpu_ms, queued_ms = (b - a for a, b in zip(sched0, _gui_thread_schedstat(), strict=True))
    assert cpu_ms > 50  # a real backlog (several ticks' worth)
    # Time the GUI thread spent waiting for a CPU (other processes on a loaded machine) is not
    # the view's pacing: only the rest (running + sleeping) is compared with the work itself.
    paced_ms = took_ms - queued_ms
    assert paced_ms < 2 * cpu_ms, (took_ms, queued_ms, cpu_ms)  # the old pacing: ~4x
    # ...while the loop still turned between steps: a heartbeat kept beating.
    assert len(heartbeat_gaps) >= took_ms / 50, (len(heartbeat_gaps), took_ms)
    loaded = make_view(qtbot, height=400)
    loaded.set_messages([ChatItem("live", ChatRole.ASSISTANT, text)])
    assert view.canvas().rendered_text("live") == loaded.canvas().rendered_text("live")


def test_autoscroll_follows_unless_the_person_scrolled_up(qtbot: QtBot) -> None:
    view = make_view(qtbot, height=300)
    view.set_messages(history(40))
    view.append(ChatItem("live", ChatRole.ASSISTANT))
    view.begin_stream("live")
    bar = view.canvas().verticalScrollBar()

    def grow(n: int = 5) -> None:
        for i in range(n):
            view.append_delta("live", f"Line {i} of the answer goes on.\n\n")
        view.flush()

    grow()
    assert bar.value() == bar.maximum() and view.is_following()
    # The person scrolls up with the wheel: new text must not pull the view down.
    wheel = QWheelEvent(
        QPointF(50, 50),
        QPointF(view.canvas().viewport().mapToGlobal(QPoint(50, 50))),
        QPoint(0, 0),
        QPoint(0, 360),
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.NoModifier,
        Qt.ScrollPhase.NoScrollPhase,
        False,
    )
    QApplication.sendEvent(view.canvas().viewport(), wheel)
    assert not view.is_following()
    held = bar.value()
    grow()
    assert bar.value() == held and bar.value() < bar.maximum()
    # Back at the bottom, following resumes.
    bar.setValue(bar.maximum())
    assert view.is_following()
    grow()
    assert bar.value() == bar.maximum()
    view.end_stream("live")


def test_stream_end_states_show_in_the_header(qtbot: QtBot) -> None:
    view = make_view(qtbot)
    for status, label in [
        (MessageStatus.PARTIAL, "incomplete"),
        (MessageStatus.CANCELLED, "stopped"),
    ]:
        mid = f"a-{status.value}"
        view.begin_stream(mid)
        view.append_delta(mid, "Some text")
        view.end_stream(mid, status)
        assert label in view.canvas().rendered_text(mid)
        assert "writing" not in view.canvas().rendered_text(mid)
    view.set_answered_by("a-partial", "gpt-4o-mini")
    assert "answered by gpt-4o-mini" in view.canvas().rendered_text("a-partial")


def test_deltas_for_a_cleared_chat_are_dropped(qtbot: QtBot) -> None:
    view = make_view(qtbot)
    view.begin_stream("a")
    view.append_delta("a", "partial")
    view.clear()
    view.append_delta("a", "late")
    view.end_stream("a")
    view.flush()
    assert view.item("a") is None
    with pytest.raises(TypeError):
        view.append_delta("a", b"bytes")  # type: ignore[arg-type]


# ---------------------------------------------------------------- links and buttons


def test_clicking_a_link_emits_it_and_unsafe_links_are_inert(qtbot: QtBot) -> None:
    view = make_view(qtbot)
    view.set_messages(
        [
            ChatItem("a", ChatRole.ASSISTANT, "Read [the docs](https://example.com/docs)."),
            ChatItem("b", ChatRole.ASSISTANT, "[run me](javascript:alert(1)) [f](file:///x)"),
        ]
    )
    point = view.canvas().anchor_point("a", "https://")
    assert point is not None
    with qtbot.waitSignal(view.sig_link_activated) as blocker:
        click(qtbot, view, point)
    assert blocker.args == ["https://example.com/docs"]
    assert view.canvas().anchor_point("b", "javascript:") is None
    assert view.canvas().anchor_point("b", "file:") is None
    assert "run me" in view.canvas().rendered_text("b")


def test_code_copy_button_copies_only_the_code(qtbot: QtBot) -> None:
    view = make_view(qtbot)
    code = 'if role == "user\u202e \u2066":  # admin\n    grant()\n'
    view.set_messages([ChatItem("a", ChatRole.ASSISTANT, f"Intro\n\n```python\n{code}```\n")])
    point = view.canvas().anchor_point("a", "parley-copy:")
    assert point is not None
    with qtbot.waitSignal(view.sig_copy_done) as blocker:
        click(qtbot, view, point)
    assert blocker.args == ["code"]
    assert clipboard() == 'if role == "user ":  # admin\n    grant()\n'  # no bidi controls
    assert "⟨U+202E⟩" in view.canvas().rendered_text("a")  # shown, not hidden


def test_copy_message_gives_the_raw_markdown(qtbot: QtBot) -> None:
    view = make_view(qtbot)
    view.set_messages([ChatItem("a", ChatRole.ASSISTANT, ANSWER + "\u200b")])
    point = view.canvas().anchor_point("a", "parley-copy-message:")
    assert point is not None
    with qtbot.waitSignal(view.sig_copy_done) as blocker:
        click(qtbot, view, point)
    assert blocker.args == ["message"]
    assert clipboard() == ANSWER
    QGuiApplication.clipboard().clear()
    menu = view.canvas().build_context_menu(point + QPointF(0, 60))
    assert menu is not None
    actions = {a.text(): a for a in menu.actions()}
    actions["Copy message"].trigger()
    assert clipboard() == ANSWER


def test_retry_is_offered_only_for_retryable_errors(qtbot: QtBot) -> None:
    view = make_view(qtbot)
    view.set_messages([ChatItem("a", ChatRole.ASSISTANT), ChatItem("b", ChatRole.ASSISTANT)])
    view.set_error("a", "Rate limited by the provider (try again in 20 s).", retryable=True)
    view.set_error("b", "Your API key was rejected.", retryable=False)
    assert "⚠ Rate limited" in view.canvas().rendered_text("a")
    assert view.canvas().anchor_point("b", "parley-retry:") is None
    point = view.canvas().anchor_point("a", "parley-retry:")
    assert point is not None
    with qtbot.waitSignal(view.sig_retry_requested) as blocker:
        click(qtbot, view, point)
    assert blocker.args == ["a"]
    assert view.item("a").status is MessageStatus.ERROR  # type: ignore[union-attr]


def test_footer_items_render_and_their_actions_are_emitted(qtbot: QtBot) -> None:
    view = make_view(qtbot)
    view.set_messages([ChatItem("a", ChatRole.ASSISTANT, "Answer.")])
    view.set_footer(
        "a",
        [
            FooterItem("calculator(2+2) = 4", kind="tool_call", href="parley-tool:1"),
            FooterItem("notes.md, p. 3", kind="citation"),
            FooterItem("evil", href="javascript:alert(1)"),
        ],
    )
    text = view.canvas().rendered_text("a")
    assert "calculator(2+2) = 4" in text and "notes.md, p. 3" in text
    assert view.canvas().anchor_point("a", "javascript:") is None
    point = view.canvas().anchor_point("a", "parley-tool:")
    assert point is not None
    with qtbot.waitSignal(view.sig_footer_activated) as blocker:
        click(qtbot, view, point)
    assert blocker.args == ["a", "parley-tool:1"]


# ---------------------------------------------------------------- selection


def test_drag_selects_text_and_ctrl_c_copies_it(qtbot: QtBot) -> None:
    view = make_view(qtbot)
    view.set_messages(
        [ChatItem("a", ChatRole.ASSISTANT, "Alpha beta gamma.\n\nSecond paragraph here.")]
    )
    canvas = view.canvas()
    rect = canvas.message_rect("a")
    assert rect is not None
    viewport = canvas.viewport()
    header = canvas.anchor_point("a", "parley-copy-message:")
    assert header is not None
    # From the left edge of the first body line to far below the message.
    start = QPoint(int(rect.left() + 14), int(header.y() + canvas.fontMetrics().height() * 1.4))
    qtbot.mousePress(viewport, Qt.MouseButton.LeftButton, pos=start)
    qtbot.mouseMove(viewport, pos=start + QPoint(5, 0))
    qtbot.mouseMove(viewport, pos=QPoint(int(rect.right() - 5), int(rect.bottom() - 2)))
    qtbot.mouseRelease(
        viewport, Qt.MouseButton.LeftButton, pos=QPoint(int(rect.right() - 5), int(rect.bottom()))
    )
    assert view.selected_text().endswith("Second paragraph here.")
    assert "gamma." in view.selected_text()
    qtbot.keyClick(canvas, Qt.Key.Key_C, Qt.KeyboardModifier.ControlModifier)
    assert clipboard() == view.selected_text()


def test_double_click_selects_a_word_and_select_all_the_message(qtbot: QtBot) -> None:
    view = make_view(qtbot)
    view.set_messages(
        [ChatItem("a", ChatRole.ASSISTANT, "Read [the docs](https://example.com) carefully.")]
    )
    canvas = view.canvas()
    link = canvas.anchor_point("a", "https://")
    assert link is not None
    metrics = canvas.fontMetrics()
    # The anchor point is the middle of "the docs"; aim at the middle of "carefully".
    offset = (
        metrics.horizontalAdvance("the docs careful") - metrics.horizontalAdvance("the docs") / 2
    )
    word = link + QPointF(offset - metrics.horizontalAdvance("ful") / 2, 0)
    qtbot.mouseDClick(canvas.viewport(), Qt.MouseButton.LeftButton, pos=word.toPoint())
    assert view.selected_text() == "carefully"
    qtbot.keyClick(canvas, Qt.Key.Key_A, Qt.KeyboardModifier.ControlModifier)
    assert view.selected_text() == "Read the docs carefully."


def test_selecting_across_a_code_block_copies_code_without_its_header(qtbot: QtBot) -> None:
    view = make_view(qtbot)
    view.set_messages([ChatItem("a", ChatRole.ASSISTANT, "Before.\n\n```python\nx = 1\n```")])
    view.canvas().select_message("a")
    assert view.selected_text() == "Before.\n\nx = 1"


# ---------------------------------------------------------------- safety and theme


def test_documents_never_load_resources(qtbot: QtBot, tmp_path: Path) -> None:
    image = QImage(64, 300, QImage.Format.Format_ARGB32)
    image.fill(QColor("red"))
    path = tmp_path / "tall.png"
    assert image.save(str(path))
    for src in (f"file://{path}", str(path)):
        html = f'<p>x</p><img src="{src}">'
        plain = QTextDocument()
        plain.setHtml(html)
        plain.setTextWidth(400)
        assert plain.size().height() >= 300  # Qt on its own reads the file from disk
        safe = SafeTextDocument()
        safe.setHtml(html)
        safe.setTextWidth(400)
        assert safe.size().height() < 64


def test_untrusted_message_renders_inert(qtbot: QtBot) -> None:
    view = make_view(qtbot)
    text = (
        '<img src="file:///etc/passwd"> <script>x()</script> ![t](https://t.example/p.png)\n'
        "\u202eevil"
    )
    view.set_messages([ChatItem("a", ChatRole.ASSISTANT, text)])
    shown = view.canvas().rendered_text("a")
    assert '<img src="file:///etc/passwd">' in shown and "<script>x()</script>" in shown
    assert "[image: t](https://t.example/p.png)" in shown
    assert "⟨U+202E⟩evil" in shown
    view.copy_message("a")
    assert "\u202e" not in clipboard()


def dark_palette() -> QPalette:
    pal = QPalette()
    for role, colour in [
        (QPalette.ColorRole.Window, "#1b1f24"),
        (QPalette.ColorRole.Base, "#0d1117"),
        (QPalette.ColorRole.Text, "#e6edf3"),
        (QPalette.ColorRole.WindowText, "#e6edf3"),
        (QPalette.ColorRole.Highlight, "#1f6feb"),
        (QPalette.ColorRole.HighlightedText, "#ffffff"),
        (QPalette.ColorRole.Link, "#0000ff"),
    ]:
        pal.setColor(role, QColor(colour))
    return pal


def test_theme_follows_the_palette(qtbot: QtBot) -> None:
    view = make_view(qtbot)
    light = theme_from_palette(view.palette(), view.font())
    dark = theme_from_palette(dark_palette(), view.font())
    assert not light.dark and dark.dark
    assert QColor(dark.code_background).lightnessF() < 0.25
    assert dark.link != "#0000ff"  # unreadable on a dark base: replaced
    assert dark.em == light.em > 0

    view.set_messages([ChatItem("a", ChatRole.ASSISTANT, "```\ncode\n```")])
    canvas = view.canvas()

    def code_background() -> QColor:
        point = canvas.anchor_point("a", "parley-copy:")
        assert point is not None
        x = int(canvas.viewport().width() / 2)
        return canvas.viewport().grab().toImage().pixelColor(x, int(point.y()))

    assert (
        code_background().name() == theme_from_palette(view.palette(), view.font()).code_background
    )
    view.setPalette(dark_palette())
    qtbot.waitUntil(lambda: code_background().name() == dark.code_background)


def test_layout_is_in_logical_pixels_at_200_percent(qtbot: QtBot) -> None:
    """Geometry comes from font metrics: at 2x scaling the logical layout is the same."""
    script = textwrap.dedent(
        f"""
        import json
        from PySide6.QtWidgets import QApplication, QWidget
        app = QApplication([])
        from parley.ui.chat.model import ChatItem, ChatRole
        from parley.ui.chat.view import ChatView
        view = ChatView(); view.resize(700, 500); view.show(); app.processEvents()
        view.set_messages([ChatItem("a", ChatRole.ASSISTANT, {ANSWER!r})])
        view.canvas().scroll_to_bottom()
        r = view.canvas().message_rect("a")
        print(json.dumps([r.width(), r.height(), view.grab().devicePixelRatio()]))
        """
    )
    results = []
    for scale in ("1", "2"):
        env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "QT_SCALE_FACTOR": scale}
        out = subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
        )
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    (w1, h1, dpr1), (w2, h2, dpr2) = results
    assert (dpr1, dpr2) == (1.0, 2.0)
    assert w1 == pytest.approx(w2, abs=1) and h1 == pytest.approx(h2, rel=0.03)


def test_guard_keeps_signal_heavy_code_alive() -> None:
    """Thousands of emits and void calls would abort CPython 3.11 under shiboken6 6.12."""
    script = textwrap.dedent(
        """
        from PySide6.QtCore import QObject, QPointF, Signal
        from parley.ui.qt_guard import guard_none_refcount
        guard_none_refcount()
        class O(QObject):
            s = Signal(int)
        o = O(); o.s.connect(lambda v: None); p = QPointF()
        for i in range(50_000):
            o.s.emit(i); p.setX(1.0)
        print("alive")
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "alive"


def test_resize_relayouts_and_keeps_following(qtbot: QtBot) -> None:
    view = make_view(qtbot)
    view.set_messages([ChatItem("a", ChatRole.ASSISTANT, "A long line of the answer. " * 60)])
    before = view.canvas().message_rect("a")
    view.resize(400, 500)
    qtbot.waitUntil(lambda: view.canvas().message_rect("a").width() < before.width())  # type: ignore[union-attr]
    after = view.canvas().message_rect("a")
    assert after is not None and before is not None
    assert after.height() > before.height()
    bar = view.canvas().verticalScrollBar()
    assert bar.value() == bar.maximum()


def test_the_view_does_not_render_what_it_does_not_show(qtbot: QtBot) -> None:
    """A stream below the viewport (person scrolled up) is not laid out until shown."""
    view = make_view(qtbot, height=250)
    view.set_messages(history(60))
    canvas = view.canvas()
    qtbot.keyClick(canvas, Qt.Key.Key_Home, Qt.KeyboardModifier.ControlModifier)
    view.begin_stream("live")
    for i in range(50):
        view.append_delta("live", f"Paragraph {i}.\n\n")
    view.flush()
    assert "live" not in canvas.rendered_message_ids()
    qtbot.keyClick(canvas, Qt.Key.Key_End, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: "live" in canvas.rendered_message_ids())
    assert "Paragraph 49." in canvas.rendered_text("live")
    view.end_stream("live")
    assert "writing" not in canvas.rendered_text("live")
    blocks = MarkdownRenderer().render(view.item("live").text)  # type: ignore[union-attr]
    assert len(blocks) == 50


def test_a_long_answer_renders_only_the_blocks_in_view(qtbot: QtBot) -> None:
    paragraphs = [f"Paragraph {i}: " + "words that fill the line " * 6 for i in range(300)]
    text = "\n\n".join(paragraphs) + "\n\n```python\nprint('end')\n```\n"
    view = make_view(qtbot, height=400)
    view.set_messages(
        [
            ChatItem("q", ChatRole.USER, "Tell me everything."),
            ChatItem("big", ChatRole.ASSISTANT, text),
        ]
    )
    canvas = view.canvas()
    qtbot.waitUntil(lambda: canvas.block_counts("big")[0] > 0)
    rendered, total = canvas.block_counts("big")
    assert total == 301 and rendered < 30
    assert view.is_following()
    bar = canvas.verticalScrollBar()
    assert bar.value() == bar.maximum()
    # Scrolling up renders the blocks coming into view without moving what is shown:
    # the old picture reappears exactly, shifted down by the scroll distance.
    for _ in range(6):
        before = canvas.viewport().grab().toImage()
        bar.setValue(bar.value() - 60)
        after = canvas.viewport().grab().toImage()
        height = before.height()
        assert after.copy(0, 60, before.width(), height - 60) == before.copy(
            0, 0, before.width(), height - 60
        )
    assert canvas.block_counts("big")[0] > rendered
    # Reading or selecting everything renders the rest.
    shown = canvas.rendered_text("big")
    assert "Paragraph 0:" in shown and "print('end')" in shown
    assert canvas.block_counts("big") == (301, 301)
    canvas.select_message("big")
    assert view.selected_text().startswith("Paragraph 0:")


def _gui_thread_schedstat() -> tuple[float, float]:
    """(ms on a CPU, ms runnable but waiting for one) of this thread, from the kernel.

    Linux's ``/proc/<pid>/task/<tid>/schedstat``; elsewhere the thread's CPU time and 0.
    """
    path = f"/proc/self/task/{threading.get_native_id()}/schedstat"
    try:
        with open(path) as f:
            on_cpu_ns, waiting_ns, _slices = (int(x) for x in f.read().split())
    except OSError:
        return time.thread_time() * 1000, 0.0
    return on_cpu_ns / 1e6, waiting_ns / 1e6
