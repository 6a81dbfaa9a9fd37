"""The window's shell (issue 14): the model new chats start with, restore, layout, basics.

Real window, real services, the fake server on loopback; nothing of Parley is replaced.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from PySide6.QtCore import QPoint, QRect, Qt
from PySide6.QtTest import QTest

from parley.core.settings import load_settings
from tests.fakes.script import Text
from tests.fakes.server import FakeLLMServer
from tests.ui.harness import WindowHarness, chat_requests, local_settings


async def _activate(h: WindowHarness) -> None:
    """Make the window the active one (keyboard focus and shortcuts need that)."""
    h.w.activateWindow()
    h.w.raise_()
    await h.until(lambda: h.w.isActiveWindow(), what="the window to be active")


def _choose(picker, model: str) -> None:  # type: ignore[no-untyped-def]
    """Pick ``model`` in the picker as a person does (select the row, activated)."""
    row = next(i for i in range(picker.count()) if picker.itemText(i) == model)
    picker.setCurrentIndex(row)
    picker.activated.emit(row)


# ---------------------------------------------------------------- item 3
async def test_new_chats_keep_the_model_last_used_unless_a_default_is_fixed(qtbot) -> None:
    with FakeLLMServer() as srv:
        srv.models = ["fake-model", "other-model"]
        async with WindowHarness(qtbot, server=srv) as h:
            w = h.w
            await h.until(lambda: any(m == "other-model" for _, m, _ in w.picker.entries()))
            assert w.picker.current() == ("openai-compatible", "fake-model")  # the default
            _choose(w.picker, "other-model")
            await h.send_and_wait("which model?")
            assert chat_requests(srv)[-1].json["model"] == "other-model"
            w.new_chat()
            assert w.picker.current() == ("openai-compatible", "other-model")
            saved = load_settings(h.s.paths.settings_file)
            assert (saved.last_provider, saved.last_model) == ("openai-compatible", "other-model")

        # a new start of the window remembers it too
        async with WindowHarness(qtbot, server=srv, settings=saved) as h:
            await h.until(lambda: any(m == "other-model" for _, m, _ in h.w.picker.entries()))
            h.w.new_chat()
            assert h.w.picker.current() == ("openai-compatible", "other-model")

            # "Always the model below" in Settings: new chats start with the default again
            dialog = h.w.open_settings()
            assert dialog is not None
            dialog.tabs.setCurrentIndex(1)
            dialog.new_chat_model.setCurrentIndex(dialog.new_chat_model.findData("default"))
            assert dialog.apply()
            dialog.reject()
            h.w.new_chat()
            assert h.w.picker.current() == ("openai-compatible", "fake-model")
            assert load_settings(h.s.paths.settings_file).new_chat_model == "default"


async def test_opening_an_old_chat_does_not_change_the_model_new_chats_use(qtbot) -> None:
    with FakeLLMServer() as srv:
        srv.models = ["fake-model", "other-model"]
        async with WindowHarness(qtbot, server=srv, settings=local_settings(srv)) as h:
            w = h.w
            store = h.s.conversations
            old = store.create("an old chat", options={"provider": "openai-compatible"})
            store.set_options(old.id, provider="openai-compatible", model="other-model")
            store.add_message(old.id, "user", "hi")
            await w.open_conversation(old.id)
            assert w.picker.current() == ("openai-compatible", "other-model")
            w.new_chat()
            assert w.picker.current() == ("openai-compatible", "fake-model")
            QTest.keyClick(w, Qt.Key.Key_N, Qt.KeyboardModifier.ControlModifier)
            assert w.picker.current() == ("openai-compatible", "fake-model")


# ---------------------------------------------------------------- item 9
async def test_the_paperclip_attaches_files_from_a_picker(qtbot, tmp_path) -> None:
    note = tmp_path / "notes.txt"
    note.write_text("The Q3 budget is 1.2M.")
    with FakeLLMServer() as srv:
        async with WindowHarness(qtbot, server=srv) as h:
            w = h.w
            assert w.composer.attach_button.accessibleName() == "Attach"
            QTest.mouseClick(w.composer.attach_button, Qt.MouseButton.LeftButton)
            dialog = w.files.dialog if w.files is not None else None
            assert dialog is not None and dialog.isVisible()
            dialog.selectFile(str(note))
            dialog.accept()
            await h.until(lambda: w.composer.attachments(), what="the attachment")
            assert [a.name for a in w.composer.attachments()] == ["notes.txt"]
            await h.send_and_wait("what is the budget?")
            sent = chat_requests(srv)[-1].json["messages"][-1]["content"]
            assert "The Q3 budget is 1.2M." in sent


async def test_export_from_the_window_and_import_it_back(qtbot, tmp_path) -> None:
    with FakeLLMServer() as srv:
        async with WindowHarness(qtbot, server=srv) as h:
            w = h.w
            acts = w.menu_actions
            assert not acts.export_json.isEnabled()  # a new chat: nothing to export
            await h.send_and_wait("first question")
            await h.send_and_wait("second question")
            assert acts.export_json.isEnabled()
            shown = h.texts()
            acts.export_json.trigger()
            dialog = w.files.dialog if w.files is not None else None
            assert dialog is not None
            assert dialog.selectedFiles()[0].endswith(".json")
            target = tmp_path / "chat.json"
            dialog.selectFile(str(target))
            dialog.accept()
            await h.until(lambda: target.exists(), what="the export")
            cid = w.conversation_id

            w.new_chat()
            acts.import_chat.trigger()
            dialog = w.files.dialog if w.files is not None else None
            assert dialog is not None
            dialog.selectFile(str(target))
            dialog.accept()
            await h.until(
                lambda: w.conversation_id not in (None, cid) and h.texts() == shown,
                what="the imported chat shown",
            )
            new_id = w.conversation_id
            await h.until(lambda: set(w.sidebar.ids()) == {cid, new_id}, what="the list")

            # a bad file: one line in the notice bar, nothing else changes
            bad = tmp_path / "bad.json"
            bad.write_text('{"format": "not parley"}')
            task = w.files.import_from(str(bad)) if w.files is not None else None
            assert task is not None
            await task
            assert "not a conversation exported by Parley" in w.notice.text()
            assert len(w.sidebar.ids()) == 2


async def test_help_lists_the_shortcuts_and_tells_about_parley(qtbot) -> None:
    from parley import __version__

    with FakeLLMServer() as srv:
        async with WindowHarness(qtbot, server=srv) as h:
            w = h.w
            await _activate(h)
            QTest.keyClick(w.composer.edit, Qt.Key.Key_Slash, Qt.KeyboardModifier.ControlModifier)
            sheet = w.help_dialog
            assert sheet is not None and sheet.isVisible()
            rows = {(keys, what) for _group, keys, what in sheet.rows}  # type: ignore[attr-defined]
            assert ("Ctrl+N", "New chat") in rows
            assert ("Ctrl+K", "Search chats") in rows
            assert ("Ctrl+R", "Regenerate answer") in rows
            assert ("Esc", "Clear the search (in the search box)") in rows
            assert ("Shift+Enter", "New line in the question") in rows

            w.menu_actions.about.trigger()
            about = w.help_dialog
            assert about is not None and about is not sheet and about.isVisible()
            assert __version__ in about.version_label.text()  # type: ignore[attr-defined]
            assert about.data_label.text() == str(h.s.paths.data_dir)  # type: ignore[attr-defined]
            await about.loaded  # type: ignore[attr-defined]
            assert "MIT licence" in about.licence_text.text()  # type: ignore[attr-defined]
            assert "Qt for Python (PySide6)" in about.parts_label.text()  # type: ignore[attr-defined]
            assert "LGPL" in about.parts_label.text()  # type: ignore[attr-defined]


async def test_escape_clears_the_chat_search(qtbot) -> None:
    with FakeLLMServer() as srv:
        async with WindowHarness(qtbot, server=srv) as h:
            w = h.w
            store = h.s.conversations
            for title in ("apples", "pears"):
                c = store.create(title)
                store.add_message(c.id, "user", title)
            w.refresh_sidebar(sync=True)
            w.sidebar.focus_search()
            QTest.keyClicks(w.sidebar.search, "apples")
            await h.until(lambda: len(w.sidebar.ids()) == 1, what="the search")
            QTest.keyClick(w.sidebar.search, Qt.Key.Key_Escape)
            assert w.sidebar.search.text() == ""
            await h.until(lambda: len(w.sidebar.ids()) == 2, what="the whole list")
            # Esc in an empty search box still reaches the window (Stop answer)
            assert w.sidebar.search.hasFocus()


def _buttons_and_fields(w):  # type: ignore[no-untyped-def]
    from PySide6.QtWidgets import QAbstractButton, QComboBox, QLineEdit, QPlainTextEdit

    kinds = (QAbstractButton, QComboBox, QLineEdit, QPlainTextEdit)
    return [x for kind in kinds for x in w.findChildren(kind)]


async def test_every_icon_button_has_a_name_a_screen_reader_says(qtbot) -> None:
    import re

    from PySide6.QtWidgets import QAbstractButton

    with FakeLLMServer() as srv:
        async with WindowHarness(qtbot, server=srv) as h:
            w = h.w
            c = w.composer
            assert c.send_button.accessibleName() == "Send"
            assert c.stop_button.accessibleName() == "Stop"
            assert c.attach_button.accessibleName() == "Attach"
            assert w.settings_button.accessibleName() == "Settings"
            assert w.picker.accessibleName() == "Model"
            assert c.edit.accessibleName() == "Message"
            assert w.sidebar.search.accessibleName() == "Search chats"
            unnamed = []
            for x in _buttons_and_fields(w):
                if x.window() is not w:
                    continue
                is_button = isinstance(x, QAbstractButton)
                if is_button and not x.text() and x.icon().isNull():
                    continue  # shows nothing until it gets a label (the notice's action)
                said = x.accessibleName() or (x.text() if is_button else "")
                if not re.search(r"[A-Za-z]{2}", said):
                    where = x.parent().objectName() or type(x.parent()).__name__
                    unnamed.append((type(x).__name__, x.objectName(), where, said))
            assert unnamed == [], unnamed


async def test_tab_follows_the_layout(qtbot) -> None:
    with FakeLLMServer() as srv:
        async with WindowHarness(qtbot, server=srv) as h:
            w = h.w
            c = w.composer
            assert w.view is not None
            await h.send_and_wait("hello")  # the chat is shown
            c.set_text("draft")  # Send is enabled
            expected = [
                w.sidebar.new_button,
                w.sidebar.search,
                w.sidebar.list,
                w.picker,
                w.sources_button,
                w.documents_button,
                w.settings_button,
                w.view.canvas(),
                c.attach_button,
                c.edit,
                c.send_button,
                c.tools_switch,
                c.knowledge_switch,
            ]
            await _activate(h)
            w.sidebar.new_button.setFocus(Qt.FocusReason.TabFocusReason)
            seen = [w.focusWidget()]
            for _ in range(len(expected) - 1):
                w.focusNextChild()
                seen.append(w.focusWidget())
            assert seen == expected


async def test_focus_shows_a_ring(qtbot) -> None:
    with FakeLLMServer() as srv:
        async with WindowHarness(qtbot, server=srv) as h:
            w = h.w
            c = w.composer
            h.s.conversations.create("a chat")  # the list shows (it hides when empty)
            w.refresh_sidebar(sync=True)
            c.set_text("draft")
            controls = [
                w.sidebar.new_button,
                w.sidebar.search,
                w.sidebar.list,
                w.picker,
                w.settings_button,
                c.attach_button,
                c.send_button,
                c.tools_switch,
            ]

            def edge(widget):  # type: ignore[no-untyped-def]
                """The colours along the widget's outer 2 px (where a ring is drawn)."""
                image = widget.grab().toImage()
                wd, ht = image.width(), image.height()
                points = [(x, y) for x in range(wd) for y in (0, 1, ht - 2, ht - 1)]
                points += [(x, y) for y in range(ht) for x in (0, 1, wd - 2, wd - 1)]
                return [image.pixelColor(x, y) for x, y in points]

            def changed(a, b) -> int:  # type: ignore[no-untyped-def]
                return sum(
                    abs(p.red() - q.red()) + abs(p.green() - q.green()) + abs(p.blue() - q.blue())
                    > 90
                    for p, q in zip(a, b, strict=True)
                )

            await _activate(h)
            c.edit.setFocus(Qt.FocusReason.TabFocusReason)
            without = {x: edge(x) for x in controls}
            missing = []
            for x in controls:
                x.setFocus(Qt.FocusReason.TabFocusReason)
                assert x.hasFocus(), x
                # a ring: a good part of the outline changes colour when focus arrives
                if changed(without[x], edge(x)) < len(without[x]) // 4:
                    missing.append(x.accessibleName() or x.objectName() or type(x).__name__)
            assert missing == []
            # and the composer rings as a whole while its text box has the focus
            before = edge(c.frame)
            c.edit.setFocus(Qt.FocusReason.TabFocusReason)
            assert changed(before, edge(c.frame)) > len(before) // 4


async def test_the_settings_dialog_follows_a_theme_change_at_once(qtbot) -> None:
    from PySide6.QtWidgets import QApplication

    from parley.ui.theme import is_dark

    with FakeLLMServer() as srv:
        async with WindowHarness(qtbot, server=srv) as h:
            app = QApplication.instance()
            assert isinstance(app, QApplication)
            dialog = h.w.open_settings()
            assert dialog is not None
            dialog.tabs.setCurrentIndex(2)

            def background():  # type: ignore[no-untyped-def]
                return dialog.grab().toImage().pixelColor(dialog.width() // 2, 4)

            light = background()
            assert light.lightnessF() > 0.5
            dialog.theme.setCurrentIndex(dialog.theme.findData("dark"))  # no Apply yet
            assert is_dark(app.palette())
            await h.until(lambda: background().lightnessF() < 0.3, what="a dark dialog")
            assert h.w.grab().toImage().pixelColor(h.w.width() // 2, 4).lightnessF() < 0.3
            dialog.reject()  # Cancel: back to the saved theme
            assert not is_dark(app.palette())
            await h.until(lambda: h.w.grab().toImage().pixelColor(4, 4).lightnessF() > 0.5)
            assert h.s.settings.current.theme == "system"


# ---------------------------------------------------------------- item 7
def _long_chat(store, title: str, pairs: int = 60) -> int:  # type: ignore[no-untyped-def]
    c = store.create(title)
    for i in range(pairs):
        store.add_message(c.id, "user", f"Question {i} of {title}?")
        store.add_message(c.id, "assistant", f"Answer {i}.\n\n" + "A line of text. " * 30)
    return int(c.id)


async def test_a_new_start_reopens_the_chat_scrolled_where_it_was_with_its_draft(
    qtbot,
) -> None:
    with FakeLLMServer() as srv:
        async with WindowHarness(qtbot, server=srv) as h:
            w = h.w
            w.resize(1000, 700)
            store = h.s.conversations
            first = _long_chat(store, "first")
            second = _long_chat(store, "second", 2)
            w.refresh_sidebar(sync=True)

            # a draft in the new chat, one in each conversation
            QTest.keyClicks(w.composer.edit, "a new idea")
            await w.open_conversation(second)
            assert w.composer.text() == ""
            QTest.keyClicks(w.composer.edit, "unsent in second")
            await w.open_conversation(first)
            QTest.keyClicks(w.composer.edit, "half a question")
            await w.open_conversation(second)
            assert w.composer.text() == "unsent in second"  # drafts follow their chat
            await w.open_conversation(first)
            assert w.composer.text() == "half a question"
            assert w.view is not None
            target = w.view.model().items()[40].message_id
            assert w.view.scroll_to_anchor(target, 12.0)
            await h.until(lambda: w.view is not None and w.view.scroll_anchor() is not None)
            anchor = w.view.scroll_anchor()
            assert anchor is not None and anchor[0] == target

        # Parley starts again on the same data
        async with WindowHarness(qtbot, server=srv) as h:
            w = h.w
            w.resize(1000, 700)
            await w.wait_startup()
            await h.until(lambda: w.conversation_id == first, what="the chat reopened")
            assert w.composer.text() == "half a question"
            assert w.view is not None
            got = w.view.scroll_anchor()
            assert got is not None and got[0] == anchor[0] and abs(got[1] - anchor[1]) <= 2
            await w.open_conversation(second)
            assert w.composer.text() == "unsent in second"
            w.new_chat()
            assert w.composer.text() == "a new idea"

            # sending empties a chat's draft for good
            await w.open_conversation(second)
            QTest.keyClick(w.composer.edit, Qt.Key.Key_Return)
            await h.until(lambda: not w.is_busy() and w.composer.text() == "")
            await h.until(lambda: h.s.conversations.drafts().get(second) is None, what="saved")
            assert h.s.conversations.drafts() == {0: "a new idea", first: "half a question"}


async def test_the_sidebar_shows_a_chat_made_by_parley_ask_in_a_terminal(qtbot) -> None:
    import asyncio
    import os
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    with FakeLLMServer() as srv:
        async with WindowHarness(qtbot, server=srv) as h:
            w = h.w
            await w.wait_startup()
            assert w.sidebar.ids() == []
            env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
            env["PYTHONPATH"] = str(repo)
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "parley",
                "ask",
                "--provider",
                "openai-compatible",
                "--base-url",
                srv.openai_base_url,
                "--model",
                "fake-model",
                "asked from a terminal",
                env=env,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            out, err = await asyncio.wait_for(proc.communicate(), 60)
            assert proc.returncode == 0, err.decode()
            assert out.decode().strip() == "You said: asked from a terminal"
            # no restart, no click: the window notices the other process's write
            await h.until(lambda: len(w.sidebar.ids()) == 1, timeout=10, what="the new chat")
            assert w.sidebar.title_of(w.sidebar.ids()[0]) == "asked from a terminal"
            assert w.session is not None and w.session.polls >= 2


# ---------------------------------------------------------------- item 5
async def test_a_panel_overlays_the_chat_in_a_narrow_window(qtbot) -> None:
    from PySide6.QtWidgets import QPushButton

    with FakeLLMServer() as srv:
        async with WindowHarness(qtbot, server=srv) as h:
            w = h.w
            w.resize(720, 600)
            await h.until(lambda: w.width() == 720)
            pane = w.chat_pane
            chat_width = pane.width()
            panel = w.show_documents()
            assert panel is not None and w.docks is not None
            dock = w.docks.knowledge_dock
            assert dock is not None
            await h.until(lambda: dock.isVisible(), what="the panel")
            await h.until(lambda: w.panels.overlay.isVisible(), what="the overlay")
            # the window did not grow and the chat was not squeezed: the panel lies over it
            for _ in range(5):
                await asyncio.sleep(0.02)
            assert w.width() == 720
            assert pane.width() == chat_width
            assert w.panels is not None and w.panels.in_overlay(dock)
            over = w.panels.overlay.geometry()
            assert QRect(pane.mapTo(w, QPoint(0, 0)), pane.size()).contains(over)
            # its close button is in view, and its buttons are not clipped
            title = dock.titleBarWidget()
            close = title.close_button  # type: ignore[attr-defined]
            corner = close.mapTo(w, close.rect().bottomRight())
            assert close.isVisible() and w.rect().contains(corner)
            for b in panel.findChildren(QPushButton):
                if b.isVisible():
                    assert b.width() >= b.minimumSizeHint().width(), b.text()
                    right = b.mapTo(w.panels.overlay, b.rect().topRight()).x()
                    assert right < w.panels.overlay.width(), b.text()

            # a long folder name does not make the panel wider
            from parley.ui.knowledge.rows import FolderRow

            need = w.panels.need(dock)
            long = Path("/tmp") / ("a-folder-with-a-rather-long-name-" * 3)
            panel.set_folders([FolderRow(long, files=3, chunks=9, status="indexed")])
            panel.skipped_title.setText(f"Skipped files in {long.name}")  # one long line
            await asyncio.sleep(0.05)
            assert w.panels.need(dock) <= max(need, pane.width())
            # a panel that needs more room than the chat has goes over the sidebar too, with
            # its buttons and its close button still in the window
            panel.setMinimumWidth(pane.width() + 80)
            await h.until(lambda: w.panels.need(dock) > pane.width(), what="a wider panel")
            for _ in range(5):
                await asyncio.sleep(0.02)
            assert w.width() == 720
            assert w.rect().contains(w.panels.overlay.geometry())
            corner = close.mapTo(w, close.rect().bottomRight())
            assert close.isVisible() and w.rect().contains(corner)
            for b in panel.findChildren(QPushButton):
                if b.isVisible():
                    assert b.width() >= b.minimumSizeHint().width(), b.text()
            panel.set_folders([])
            panel.setMinimumWidth(0)
            QTest.mouseClick(close, Qt.MouseButton.LeftButton)
            await h.until(lambda: not w.panels.overlay.isVisible(), what="closed")
            assert not dock.isVisible()

            # a wide window docks it beside the chat, which keeps a readable width
            w.resize(1400, 800)
            await h.until(lambda: w.width() == 1400)
            w.show_documents()
            await h.until(lambda: dock.isVisible() and not w.panels.in_overlay(dock))
            assert w.dockWidgetArea(dock) == Qt.DockWidgetArea.RightDockWidgetArea
            await h.until(lambda: pane.width() >= 360, what="a readable chat")
            assert w.width() == 1400
            # content that would not fit beside the chat any more: over it instead, and
            # the window keeps its width
            w.resize(1050, 700)
            await h.until(lambda: w.width() == 1050 and not w.panels.in_overlay(dock))
            panel.setMinimumWidth(560)
            await h.until(lambda: w.panels.in_overlay(dock), what="moved over the chat")
            for _ in range(5):
                await asyncio.sleep(0.02)
            assert w.width() == 1050
            panel.setMinimumWidth(0)
            # narrowing the window moves it over the chat too
            w.resize(1400, 800)
            await h.until(lambda: not w.panels.in_overlay(dock), what="docked again")
            w.resize(900, 700)
            await h.until(lambda: w.panels.in_overlay(dock) and w.panels.overlay.isVisible())
            assert w.width() == 900


def test_first_start_opens_at_about_1200_by_800_within_the_screen() -> None:
    from PySide6.QtCore import QRect

    from parley.ui.window_layout import first_geometry

    big = QRect(0, 0, 1920, 1080)
    assert first_geometry(big) == QRect(360, 140, 1200, 800)
    small = QRect(0, 24, 1280, 696)  # a laptop with a menu bar
    g = first_geometry(small)
    assert small.contains(g) and g.width() == 1177 and g.height() == 640


async def test_the_window_fits_its_screen_at_first_start(qtbot) -> None:
    with FakeLLMServer() as srv:
        async with WindowHarness(qtbot, server=srv) as h:
            screen = h.w.screen().availableGeometry()
            assert screen.contains(h.w.geometry())
            expected = (
                min(1200, int(screen.width() * 0.92)),
                min(800, int(screen.height() * 0.92)),
            )
            assert (h.w.width(), h.w.height()) == expected


async def test_the_cost_panel_shows_its_content_unclipped_docked_and_overlaid(
    qtbot, parley_home
) -> None:
    """A panel whose content cannot scroll sideways is as wide as that content needs."""
    import time

    from PySide6.QtWidgets import QAbstractButton, QComboBox, QLabel, QWidget

    from tests.ui.harness import openai_settings
    from tests.ui.test_money import _secrets, _seed_history

    _seed_history(parley_home / "data" / "parley.sqlite3", time.time())  # '+ 1 unknown'

    def clipped(panel) -> list[str]:  # type: ignore[no-untyped-def]
        dock = panel.parentWidget()
        out = []
        for wdg in panel.findChildren(QWidget):
            if not isinstance(wdg, (QAbstractButton, QComboBox, QLabel)):
                continue
            if not wdg.isVisibleTo(panel) or not wdg.width():
                continue
            if isinstance(wdg, QAbstractButton) and wdg.objectName().startswith("qt_"):
                continue
            right = wdg.mapTo(dock, QPoint(wdg.width() - 1, 0)).x()
            seen = wdg.visibleRegion().boundingRect()  # what its parents do not clip
            if (
                right >= dock.width()
                or wdg.width() < wdg.minimumSizeHint().width()
                or seen.right() < wdg.width() - 1
            ):
                out.append(wdg.text() if hasattr(wdg, "text") else type(wdg).__name__)
        return out

    with FakeLLMServer() as srv:
        srv.enqueue(Text("Saturn has 146 known moons.", input_tokens=640, output_tokens=120))
        async with WindowHarness(
            qtbot, server=srv, settings=openai_settings(srv), secrets=_secrets()
        ) as h:
            w = h.w
            await w.wait_startup()
            await h.send_and_wait("How many moons does Saturn have?")
            assert w.money is not None
            for width, overlaid in ((1320, False), (800, True)):
                w.resize(width, 820)
                await h.until(lambda width=width: w.width() == width)
                panel = w.money.show_panel()
                await h.until(lambda p=panel: p.figures is not None, what="figures")
                dock = w.money.dock
                assert dock is not None and w.panels is not None
                await h.until(
                    lambda d=dock, o=overlaid: d.isVisible() and w.panels.in_overlay(d) == o,
                    what="placed",
                )
                for _ in range(5):
                    await asyncio.sleep(0.02)
                assert w.width() == width
                assert panel.export_button.isVisible()
                assert clipped(panel) == [], (width, clipped(panel))
                dock.hide()


async def test_the_composer_row_fits_an_800_px_window(qtbot) -> None:
    """The switches, the estimate and Regenerate all show whole (the estimate moves down)."""
    from PySide6.QtWidgets import QAbstractButton, QLabel, QToolButton

    def cut(composer) -> list[str]:  # type: ignore[no-untyped-def]
        out = []
        for wdg in composer.findChildren(QAbstractButton) + composer.findChildren(QLabel):
            if not wdg.isVisibleTo(composer) or (isinstance(wdg, QLabel) and wdg.wordWrap()):
                continue
            seen = wdg.visibleRegion().boundingRect()
            inside = composer.rect().contains(
                wdg.geometry().translated(wdg.parentWidget().mapTo(composer, QPoint(0, 0)))
            )
            round_button = isinstance(wdg, QToolButton)  # a fixed size, its icon inside
            short = not round_button and wdg.width() < wdg.sizeHint().width()
            if short or seen.width() < wdg.width() or not inside:
                out.append(getattr(wdg, "text", lambda: "")() or wdg.accessibleName())
        return out

    with FakeLLMServer() as srv:
        srv.enqueue(Text("Saturn has 146 known moons.", input_tokens=640, output_tokens=120))
        async with WindowHarness(qtbot, server=srv) as h:
            w = h.w
            await w.wait_startup()
            await h.send_and_wait("How many moons does Saturn have?")
            assert w.money is not None
            bar = w.money.estimate_bar
            for width in (1600, 800, 1600):
                w.resize(width, 600)
                await h.until(lambda width=width: w.width() == width)
                w.composer.set_text("And what are its rings made of?")
                await h.until(lambda: bar.isVisible() and bar.figures is not None, what="estimate")
                for _ in range(5):
                    await asyncio.sleep(0.02)
                assert cut(w.composer) == [], (width, cut(w.composer))
                row = w.composer.regenerate_button.geometry()
                beside = abs(bar.geometry().center().y() - row.center().y()) <= 2
                # one line when wide: the estimate beside Regenerate; below it when narrow
                assert beside == (width == 1600) == (not w.composer.status_below())


def test_the_spending_limits_line_up(qtbot) -> None:
    from parley.core.settings import Settings
    from parley.ui.settings.spending import SpendingPage

    page = SpendingPage(Settings())
    qtbot.addWidget(page)
    page.resize(700, 400)
    page.show()
    qtbot.waitExposed(page)
    daily, monthly = page.daily.amount, page.monthly.amount
    assert daily.mapTo(page, QPoint(0, 0)).x() == monthly.mapTo(page, QPoint(0, 0)).x()
