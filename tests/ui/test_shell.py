"""The window's shell (issue 14): the model new chats start with, restore, layout, basics.

Real window, real services, the fake server on loopback; nothing of Parley is replaced.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from parley.core.settings import load_settings
from tests.fakes.server import FakeLLMServer
from tests.ui.harness import WindowHarness, chat_requests, local_settings


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
